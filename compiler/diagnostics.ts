/**
 * One diagnostic type for every phase (lexing, parsing, imports, checking, generation):
 * a stable code, a one-line message and a source span. Formatting with an excerpt and a caret
 * is kept apart from producing, so phases stay pure.
 */

export interface Position {
  /** 0-based character offset */
  offset: number;
  /** 1-based line */
  line: number;
  /** 1-based column */
  column: number;
}

export interface Span {
  file: string;
  start: Position;
  /** exclusive end */
  end: Position;
}

export type Severity = "error" | "warning";

export interface Diagnostic {
  code: DiagnosticCode;
  severity: Severity;
  message: string;
  span: Span;
  /** optional second line: what to do about it */
  hint?: string;
}

/**
 * Stable diagnostic codes. Never renumber: tests, docs and users' scripts refer to them.
 * SDC1xx input/lexing, SDC2xx syntax, SDC3xx names and imports, SDC4xx types and arguments,
 * SDC5xx shapes, SDC6xx constraints and sizes, SDC7xx spec sections, SDC9xx internal.
 */
export const CODES = {
  SDC100: "input is not valid UTF-8 text",
  SDC101: "input is empty",
  SDC102: "input too large",
  SDC103: "unexpected character",
  SDC104: "unterminated comment",
  SDC105: "unterminated string",
  SDC106: "number out of range",
  SDC200: "syntax error",
  SDC201: "nesting too deep",
  SDC202: "unterminated block",
  SDC203: "missing closing parenthesis or bracket",
  SDC300: "unknown identifier",
  SDC301: "duplicate name",
  SDC302: "import not found",
  SDC303: "cyclic import",
  SDC304: "unknown block or primitive",
  SDC305: "no spec in file",
  SDC306: "unknown variant",
  SDC307: "duplicate parameter name in the state dict",
  SDC308: "unknown parameter",
  SDC310: "unused parameter or input",
  SDC311: "weights never used",
  SDC400: "wrong number of arguments",
  SDC401: "wrong argument type",
  SDC402: "missing argument",
  SDC403: "unknown argument",
  SDC404: "wrong number of results",
  SDC405: "call needs a name",
  SDC406: "bad name",
  SDC407: "invalid value",
  SDC500: "shape mismatch",
  SDC501: "rank mismatch",
  SDC502: "not divisible",
  SDC503: "return shape mismatch",
  SDC504: "dimension is not a block parameter",
  SDC600: "constraint failed",
  SDC601: "integer overflow",
  SDC602: "model too large",
  SDC603: "division by zero",
  SDC604: "recursion",
  SDC700: "unknown setting",
  SDC701: "missing setting",
  SDC702: "bad setting value",
  SDC703: "interface mismatch",
  SDC704: "network ignores an input",
  SDC900: "internal error",
} as const;
export type DiagnosticCode = keyof typeof CODES;

/** Longest run of non-space text a message echoes (a 1.8 MB name is shown as its first 80 characters…). */
export const MAX_ECHO = 80;
/** Longest message. */
export const MAX_MESSAGE = 2000;

/** Shorten what a message echoes from the input: long names and paths, and the message as a whole. */
export function clipMessage(message: string): string {
  const clipped = message.replace(new RegExp(`[^\\s'"\`,;()[\\]]{${MAX_ECHO + 1},}`, "g"), (s) => `${s.slice(0, MAX_ECHO - 1)}…`);
  return clipped.length > MAX_MESSAGE ? `${clipped.slice(0, MAX_MESSAGE - 1)}…` : clipped;
}

export function diag(code: DiagnosticCode, span: Span, message: string, hint?: string): Diagnostic {
  return { code, severity: "error", message: clipMessage(message), span, hint: hint === undefined ? undefined : clipMessage(hint) };
}

/** A warning: reported with its position, but it does not stop compilation. */
export function warn(code: DiagnosticCode, span: Span, message: string, hint?: string): Diagnostic {
  return { code, severity: "warning", message: clipMessage(message), span, hint: hint === undefined ? undefined : clipMessage(hint) };
}

/** Thrown inside a phase to abandon the current node; caught by the phase, which records it. */
export class DiagnosticError extends Error {
  constructor(readonly diagnostic: Diagnostic) {
    super(diagnostic.message);
    this.name = "DiagnosticError";
  }
}

export function fail(code: DiagnosticCode, span: Span, message: string, hint?: string): never {
  throw new DiagnosticError(diag(code, span, message, hint));
}

export function positionAt(text: string, offset: number): Position {
  let line = 1;
  let lineStart = 0;
  const end = Math.min(offset, text.length);
  for (let i = 0; i < end; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { offset, line, column: offset - lineStart + 1 };
}

export function spanOf(file: string, text: string, start: number, end: number): Span {
  return { file, start: positionAt(text, start), end: positionAt(text, end) };
}

export function joinSpans(a: Span, b: Span): Span {
  return { file: a.file, start: a.start.offset <= b.start.offset ? a.start : b.start, end: a.end.offset >= b.end.offset ? a.end : b.end };
}

/** Longest source line an excerpt shows whole; a longer one is cut to a window this wide around the span. */
export const MAX_EXCERPT = 200;
/** Characters of a long line shown before the span's start. */
const EXCERPT_LEAD = 60;

/**
 * Render a diagnostic like a compiler does:
 *   specs/sd3.mdl:12:5: error SDC500: shape mismatch ...
 *      12 |     h = a + b
 *         |         ^^^^^
 * A long line is cut to a window around the span (a one-line 900 KB file gives a short excerpt).
 */
export function formatDiagnostic(d: Diagnostic, sources: ReadonlyMap<string, string> | ((file: string) => string | undefined), opts: { color?: boolean } = {}): string {
  const get = typeof sources === "function" ? sources : (f: string) => sources.get(f);
  const red = opts.color ? (s: string) => `\x1b[31;1m${s}\x1b[0m` : (s: string) => s;
  const bold = opts.color ? (s: string) => `\x1b[1m${s}\x1b[0m` : (s: string) => s;
  const { file, start, end } = d.span;
  const head = `${bold(`${file}:${start.line}:${start.column}`)}: ${red(d.severity)} ${d.code}: ${d.message}`;
  const text = get(file);
  const lines = [head];
  if (text !== undefined) {
    const src = sourceLine(text, start.line).replace(/\r$/, "");
    const caretEnd = end.line === start.line ? Math.max(end.column, start.column + 1) : src.length + 1;
    const x = excerpt(src, start.column - 1, caretEnd - 1);
    const gutter = String(start.line).length;
    lines.push(`${" ".repeat(gutter + 1)}|`);
    lines.push(`${start.line} | ${x.shown}`);
    lines.push(`${" ".repeat(gutter + 1)}| ${" ".repeat(x.caret)}${red("^".repeat(x.width))}`);
  }
  if (d.hint) lines.push(`  = help: ${d.hint}`);
  return lines.join("\n");
}

/**
 * The part of a source line shown for columns [from, to) (0-based): the whole line when it is
 * short, else at most MAX_EXCERPT characters from a little before `from`, with … where it is cut.
 * `caret` and `width`: where the carets go under `shown`.
 */
export function excerpt(src: string, from: number, to: number): { shown: string; caret: number; width: number } {
  const begin = src.length > MAX_EXCERPT && from > EXCERPT_LEAD ? Math.min(from, src.length) - EXCERPT_LEAD : 0;
  const stop = Math.min(src.length, begin + MAX_EXCERPT);
  const lead = begin > 0 ? "…" : "";
  const shown = lead + src.slice(begin, stop) + (stop < src.length ? "…" : "");
  const caret = Math.max(0, from - begin + lead.length);
  const width = Math.max(1, Math.min(to - begin + lead.length, shown.length) - caret);
  return { shown, caret, width };
}

/** Line starts of the last text asked for: formatting many diagnostics of one file splits it once, not once each. */
let lineIndex: { text: string; starts: number[] } | undefined;

/** The 1-based `line` of `text` without its newline ("" past the end). */
export function sourceLine(text: string, line: number): string {
  if (lineIndex?.text !== text) {
    const starts = [0];
    for (let i = text.indexOf("\n"); i >= 0; i = text.indexOf("\n", i + 1)) starts.push(i + 1);
    lineIndex = { text, starts };
  }
  const { starts } = lineIndex;
  if (!(line >= 1 && line <= starts.length)) return "";
  const next = line < starts.length ? starts[line] - 1 : text.length;
  return text.slice(starts[line - 1], next);
}

/** Diagnostics shown per code and severity before the rest are summarized in one line. */
export const SHOWN_PER_CODE = 20;

/**
 * The first `perCode` diagnostics of each code and severity, in order; the rest of each kind become
 * one diagnostic at the first one left out: "... and 29,980 more SDC310 warnings".
 */
export function summarizeDiagnostics(ds: readonly Diagnostic[], perCode = SHOWN_PER_CODE): Diagnostic[] {
  const seen = new Map<string, number>();
  const firstHidden = new Map<string, Diagnostic>();
  const out: Diagnostic[] = [];
  for (const d of ds) {
    const key = `${d.code} ${d.severity}`;
    const n = (seen.get(key) ?? 0) + 1;
    seen.set(key, n);
    if (n <= perCode) out.push(d);
    else if (n === perCode + 1) firstHidden.set(key, d);
  }
  for (const [key, d] of firstHidden) {
    const more = seen.get(key)! - perCode;
    out.push({ code: d.code, severity: d.severity, span: d.span, message: `... and ${more.toLocaleString("en-US")} more ${d.code} ${d.severity}${more === 1 ? "" : "s"} (the first of them here)` });
  }
  return out;
}

export function hasErrors(ds: readonly Diagnostic[]): boolean {
  return ds.some((d) => d.severity === "error");
}
