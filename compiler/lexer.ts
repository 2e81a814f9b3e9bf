/**
 * Phase 1: bytes -> text -> tokens. Chevrotain lexer for .mdl files, plus the guards that
 * refuse input no parser should see (non-UTF-8, binary, too large, absurdly nested).
 */
import { createToken, Lexer, type IToken, type TokenType } from "chevrotain";
import { diag, type Diagnostic, type Span } from "./diagnostics.ts";

/** Largest spec file accepted (a real spec is a few KB). */
export const MAX_SOURCE_BYTES = 1 << 20;
/** Deepest bracket nesting accepted (the parser is recursive; this keeps it far from the stack limit). */
export const MAX_NESTING = 200;

export const WhiteSpace = createToken({ name: "WhiteSpace", pattern: /[ \t\r\n\uFEFF]+/, group: Lexer.SKIPPED });
export const LineComment = createToken({ name: "LineComment", pattern: /\/\/[^\n]*/, group: Lexer.SKIPPED });
export const BlockComment = createToken({ name: "BlockComment", pattern: /\/\*[\s\S]*?\*\//, group: Lexer.SKIPPED });
export const UnterminatedComment = createToken({ name: "UnterminatedComment", pattern: /\/\*[\s\S]*/ });
export const StringLit = createToken({ name: "StringLit", pattern: /"(?:[^"\\\n]|\\.)*"/ });
export const UnterminatedString = createToken({ name: "UnterminatedString", pattern: /"(?:[^"\\\n]|\\.)*/ });
export const FloatLit = createToken({ name: "FloatLit", pattern: /\d+\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+/ });
export const IntLit = createToken({ name: "IntLit", pattern: /\d+/ });
export const Ident = createToken({ name: "Ident", pattern: /[A-Za-z_][A-Za-z0-9_]*/ });

const kw = (name: string, word: string) => createToken({ name, pattern: new RegExp(`${word}\\b`), longer_alt: Ident });
export const Import = kw("Import", "import");
export const Spec = kw("Spec", "spec");
export const Block = kw("Block", "block");
export const Param = kw("Param", "param");
export const Let = kw("Let", "let");
export const Require = kw("Require", "require");
export const Forward = kw("Forward", "forward");
export const Return = kw("Return", "return");
export const For = kw("For", "for");
export const In = kw("In", "in");
export const If = kw("If", "if");
export const Else = kw("Else", "else");
export const As = kw("As", "as");
export const True = kw("True", "true");
export const False = kw("False", "false");
export const Variant = kw("Variant", "variant");
export const Network = kw("Network", "network");

export const Arrow = createToken({ name: "Arrow", pattern: /->/ });
export const DotDot = createToken({ name: "DotDot", pattern: /\.\./ });
export const Dot = createToken({ name: "Dot", pattern: /\./ });
export const EqEq = createToken({ name: "EqEq", pattern: /==/ });
export const NotEq = createToken({ name: "NotEq", pattern: /!=/ });
export const LtEq = createToken({ name: "LtEq", pattern: /<=/ });
export const GtEq = createToken({ name: "GtEq", pattern: />=/ });
export const Lt = createToken({ name: "Lt", pattern: /</ });
export const Gt = createToken({ name: "Gt", pattern: />/ });
export const AndAnd = createToken({ name: "AndAnd", pattern: /&&/ });
export const OrOr = createToken({ name: "OrOr", pattern: /\|\|/ });
export const Bang = createToken({ name: "Bang", pattern: /!/ });
export const Eq = createToken({ name: "Eq", pattern: /=/ });
export const Plus = createToken({ name: "Plus", pattern: /\+/ });
export const Minus = createToken({ name: "Minus", pattern: /-/ });
export const Star = createToken({ name: "Star", pattern: /\*/ });
export const Slash = createToken({ name: "Slash", pattern: /\// });
export const Percent = createToken({ name: "Percent", pattern: /%/ });
export const Question = createToken({ name: "Question", pattern: /\?/ });
export const Colon = createToken({ name: "Colon", pattern: /:/ });
export const Comma = createToken({ name: "Comma", pattern: /,/ });
export const Semi = createToken({ name: "Semi", pattern: /;/ });
export const LParen = createToken({ name: "LParen", pattern: /\(/ });
export const RParen = createToken({ name: "RParen", pattern: /\)/ });
export const LBracket = createToken({ name: "LBracket", pattern: /\[/ });
export const RBracket = createToken({ name: "RBracket", pattern: /]/ });
export const LCurly = createToken({ name: "LCurly", pattern: /{/ });
export const RCurly = createToken({ name: "RCurly", pattern: /}/ });

export const allTokens: TokenType[] = [
  WhiteSpace, LineComment, BlockComment, UnterminatedComment, Arrow, DotDot, Dot,
  StringLit, UnterminatedString, FloatLit, IntLit,
  Import, Spec, Block, Param, Let, Require, Forward, Return, For, In, If, Else, As, True, False, Variant, Network,
  Ident,
  EqEq, NotEq, LtEq, GtEq, Lt, Gt, AndAnd, OrOr, Bang, Eq, Plus, Minus, Star, Slash, Percent, Question, Colon, Comma, Semi,
  LParen, RParen, LBracket, RBracket, LCurly, RCurly,
];

export const mdlLexer = new Lexer(allTokens, { positionTracking: "full", ensureOptimizations: false, skipValidations: true });

export function tokenSpan(file: string, t: IToken, end: IToken = t): Span {
  return {
    file,
    start: { offset: t.startOffset, line: t.startLine ?? 1, column: t.startColumn ?? 1 },
    end: { offset: (end.endOffset ?? end.startOffset) + 1, line: end.endLine ?? end.startLine ?? 1, column: (end.endColumn ?? end.startColumn ?? 1) + 1 },
  };
}

function pointSpan(file: string, text: string, offset: number): Span {
  let line = 1;
  let col = 1;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      col = 1;
    } else col++;
  }
  return { file, start: { offset, line, column: col }, end: { offset: offset + 1, line, column: col + 1 } };
}

/** SDC102 for a file of `size` bytes (checked before reading, and again on the bytes). */
export function tooLarge(file: string, size: number): Diagnostic {
  const at0: Span = { file, start: { offset: 0, line: 1, column: 1 }, end: { offset: 1, line: 1, column: 2 } };
  const mb = (n: number) => (n / (1 << 20)).toFixed(1);
  return diag("SDC102", at0, `input too large: ${file} is ${mb(size)} MiB; a spec may be at most ${mb(MAX_SOURCE_BYTES)} MiB`);
}

/**
 * Decode a file's bytes as UTF-8 and refuse what is not a spec: binary (NUL bytes), invalid
 * UTF-8, empty, or larger than MAX_SOURCE_BYTES. Pure.
 */
export function decodeSource(file: string, bytes: Uint8Array): { text?: string; diagnostics: Diagnostic[] } {
  const at0: Span = { file, start: { offset: 0, line: 1, column: 1 }, end: { offset: 1, line: 1, column: 2 } };
  if (bytes.byteLength > MAX_SOURCE_BYTES) return { diagnostics: [tooLarge(file, bytes.byteLength)] };
  const nul = bytes.indexOf(0);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    // find the first bad byte for the position (one linear scan: a 1 MiB file must not take minutes)
    const ok = firstInvalidUtf8(bytes);
    const partial = new TextDecoder().decode(bytes.subarray(0, ok));
    return { diagnostics: [diag("SDC100", pointSpan(file, partial, ok), `input is not valid UTF-8 text (byte 0x${bytes[ok]?.toString(16).padStart(2, "0")} at offset ${ok}); is this a binary file?`)] };
  }
  if (nul >= 0) return { diagnostics: [diag("SDC100", pointSpan(file, text, text.indexOf("\0")), `input contains a NUL byte at offset ${nul}: this looks like a binary file, not a .mdl spec`)] };
  if (text.trim() === "") return { diagnostics: [diag("SDC101", at0, `input is empty: ${file} contains no declarations`, "a spec file declares `spec NAME { ... }` and/or `block NAME(...) { ... }`")] };
  return { text, diagnostics: [] };
}

/** Offset of the first byte that does not start or continue a valid UTF-8 sequence (bytes.length if none). */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i];
    if (b < 0x80) {
      i++;
      continue;
    }
    // sequence length and the allowed range of the second byte (no overlongs, surrogates or > U+10FFFF)
    let n: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) n = 2;
    else if (b >= 0xe0 && b <= 0xef) {
      n = 3;
      if (b === 0xe0) lo = 0xa0;
      if (b === 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      n = 4;
      if (b === 0xf0) lo = 0x90;
      if (b === 0xf4) hi = 0x8f;
    } else return i;
    if (i + n > bytes.length) return i;
    if (bytes[i + 1] < lo || bytes[i + 1] > hi) return i;
    for (let k = 2; k < n; k++) if (bytes[i + k] < 0x80 || bytes[i + k] > 0xbf) return i;
    i += n;
  }
  return bytes.length;
}

export interface LexResult {
  tokens: IToken[];
  diagnostics: Diagnostic[];
}

/** Tokenise; unknown characters, unterminated comments/strings and absurd nesting are diagnostics. */
export function lex(file: string, text: string): LexResult {
  const r = mdlLexer.tokenize(text);
  const diagnostics: Diagnostic[] = [];
  for (const e of r.errors) {
    const span: Span = {
      file,
      start: { offset: e.offset, line: e.line ?? 1, column: e.column ?? 1 },
      end: { offset: e.offset + e.length, line: e.line ?? 1, column: (e.column ?? 1) + Math.max(1, Math.min(e.length, 1)) },
    };
    const ch = text.slice(e.offset, e.offset + 1);
    diagnostics.push(diag("SDC103", span, `unexpected character ${JSON.stringify(ch)}`));
    if (diagnostics.length >= 20) break;
  }
  const tokens: IToken[] = [];
  let depth = 0;
  const open: IToken[] = [];
  const raw = r.tokens;
  for (let ti = 0; ti < raw.length; ti++) {
    const t = raw[ti];
    if (t.tokenType === UnterminatedComment) {
      diagnostics.push(diag("SDC104", tokenSpan(file, t, t), "unterminated comment: `/*` has no closing `*/`"));
      diagnostics[diagnostics.length - 1].span.end = { ...diagnostics[diagnostics.length - 1].span.start, offset: t.startOffset + 2, column: (t.startColumn ?? 1) + 2 };
      continue;
    }
    if (t.tokenType === UnterminatedString) {
      diagnostics.push(diag("SDC105", tokenSpan(file, t), "unterminated string: missing closing `\"` on this line"));
      continue;
    }
    // a `(` or `[` still open where a new statement starts (or where a `}` closes the block): the
    // missing `)` or `]` belongs at the end of the previous token; say so there, not at the block
    const top = open[open.length - 1];
    if (top && top.tokenType !== LCurly && tokens.length && !diagnostics.length) {
      const prev = tokens[tokens.length - 1];
      const newLine = (t.startLine ?? 0) > (prev.endLine ?? prev.startLine ?? 0);
      const closesOuter = (t.tokenType === RCurly && open.some((o) => o.tokenType === LCurly)) || (t.tokenType === RParen && top.tokenType === LBracket) || (t.tokenType === RBracket && top.tokenType === LParen);
      // `block b(a: int,\n  depth = 2)`: in a parameter list `name = default` is no statement
      const paramList = open.length > 0 && tokenBefore(raw, top, 2)?.tokenType === Block;
      if (closesOuter || (newLine && startsStatement(raw, ti, paramList))) {
        diagnostics.push(missingClose(file, top, prev, t));
        while (open.length && open[open.length - 1].tokenType !== LCurly) {
          open.pop();
          depth--;
        }
        if (t.tokenType === RParen || t.tokenType === RBracket) continue;
      }
    }
    // a `)` or `]` with nothing of its kind open: an extra one
    if ((t.tokenType === RParen || t.tokenType === RBracket) && (!top || top.tokenType === LCurly) && !diagnostics.length) {
      const want = t.tokenType === RParen ? "(" : "[";
      diagnostics.push(diag("SDC200", tokenSpan(file, t), `unmatched \`${t.image}\`: no \`${want}\` is open here`, `remove it, or add the \`${want}\` it closes`));
      continue;
    }
    if (t.tokenType === LParen || t.tokenType === LBracket || t.tokenType === LCurly) {
      depth++;
      open.push(t);
      if (depth === MAX_NESTING + 1) {
        diagnostics.push(diag("SDC201", tokenSpan(file, t), `nesting too deep: more than ${MAX_NESTING} levels of brackets`));
        return { tokens: [], diagnostics };
      }
    } else if (t.tokenType === RParen || t.tokenType === RBracket || t.tokenType === RCurly) {
      depth = Math.max(0, depth - 1);
      open.pop();
    }
    tokens.push(t);
  }
  if (!diagnostics.length && open.length) {
    const t = open[open.length - 1];
    const what = t.tokenType === LCurly ? "block" : t.tokenType === LParen ? "parenthesis" : "bracket";
    const close = t.tokenType === LCurly ? "}" : t.tokenType === LParen ? ")" : "]";
    diagnostics.push(diag("SDC202", tokenSpan(file, t), `unterminated ${what}: \`${t.image}\` is never closed`, `add the matching \`${close}\``));
  }
  return { tokens, diagnostics };
}

/** Keywords that only ever begin a declaration or a statement (never inside an expression). */
const STATEMENT_KEYWORDS = new Set<TokenType>([Import, Spec, Block, Param, Let, Require, Forward, Return, For, If, Else, Variant, Network]);

/**
 * Does the token at `i` begin a statement or declaration: a keyword such as `return`, an
 * assignment `a, b = ...`, a setting `key: value` after a closed section, or a section `name {`?
 * Inside `( ... )` none of these can appear, so such a token on a new line means a bracket was
 * left open on the line before.
 */
function startsStatement(ts: readonly IToken[], i: number, paramList: boolean): boolean {
  const t = ts[i];
  if (STATEMENT_KEYWORDS.has(t.tokenType)) return true;
  if (t.tokenType !== Ident || paramList) return false;
  let j = i + 1;
  while (ts[j]?.tokenType === Comma && ts[j + 1]?.tokenType === Ident) j += 2;
  return ts[j]?.tokenType === Eq || (j === i + 1 && ts[j]?.tokenType === LCurly);
}

/** The token `k` places before `t` in `ts` (tokens are in offset order). */
function tokenBefore(ts: readonly IToken[], t: IToken, k: number): IToken | undefined {
  let lo = 0;
  let hi = ts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ts[mid].startOffset < t.startOffset) lo = mid + 1;
    else hi = mid;
  }
  return ts[lo - k];
}

/** SDC203 just after `prev`, the last token before the point where `open` should have been closed. */
function missingClose(file: string, open: IToken, prev: IToken, next: IToken): Diagnostic {
  const close = open.tokenType === LParen ? ")" : "]";
  const end = tokenSpan(file, prev).end;
  const at: Span = { file, start: end, end: { ...end, offset: end.offset + 1, column: end.column + 1 } };
  const where = (next.startLine ?? 0) > (prev.endLine ?? prev.startLine ?? 0) ? `before the next statement on line ${next.startLine}` : `before \`${next.image}\``;
  return diag("SDC203", at, `missing \`${close}\`: the \`${open.image}\` at ${open.startLine}:${open.startColumn} is not closed ${where}`, `add \`${close}\` where the ${open.tokenType === LParen ? "call or group" : "list or shape"} ends`);
}
