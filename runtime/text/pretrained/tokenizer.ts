/**
 * A Hugging Face `tokenizer.json` interpreter, enough for the CLIP (byte-level BPE) and
 * T5 (SentencePiece Unigram) tokenizers that SD3's text encoders use.
 *
 * Pipeline, as in the `tokenizers` library:
 *   added tokens split out of the raw text -> normalizer -> pre-tokenizer -> model
 *   (BPE / Unigram) -> post-processor (special tokens).
 *
 * Pure: `loadTokenizerJson(json, what)` takes the parsed JSON; no file access here.
 *
 * Supported components:
 *   normalizers:    NFC, NFD, NFKC, NFKD, Lowercase, Strip, StripAccents, Replace, Prepend,
 *                   Sequence, Precompiled (approximated by NFKC; see note there)
 *   pre-tokenizers: ByteLevel (GPT-2 regex), Split (String/Regex, all behaviours, invert),
 *                   Metaspace, Whitespace, WhitespaceSplit, Digits, Punctuation, Sequence
 *   models:         BPE (merge ranks, unk/fuse_unk, byte_fallback, continuing_subword_prefix,
 *                   end_of_word_suffix, ignore_merges), Unigram (Viterbi, unk fuse, byte_fallback)
 *   post-processors: TemplateProcessing, RobertaProcessing, BertProcessing, ByteLevel, Sequence
 *   decoders:       ByteLevel, Metaspace, BPEDecoder, Replace, Strip, Fuse, ByteFallback, Sequence
 */

export class TokenizerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TokenizerError";
  }
}

export interface EncodePaddedOptions {
  /** Id written into padding positions (default: the tokenizer's pad id, see `Tokenizer.padId`). */
  padId?: number;
  /** Cut over-long text to fit (keeping the post-processor's special tokens, as HF does). Default true. */
  truncate?: boolean;
}

export interface Tokenizer {
  /** `${what}` given at load time, used in messages. */
  readonly what: string;
  readonly modelType: "BPE" | "Unigram";
  /** Default pad id: `padding.pad_id` of the JSON, else the `padToken` option, else `<pad>`, else 0. */
  readonly padId: number;
  /** Ids for `text`, with the post-processor's special tokens (e.g. BOS/EOS) added. */
  encode(text: string): number[];
  /** `encode` truncated/padded to exactly `length` ids; `mask` is 1 for real tokens, 0 for padding. */
  encodePadded(text: string, length: number, options?: EncodePaddedOptions): { ids: number[]; mask: number[] };
  /** Text for ids (special tokens skipped by default). */
  decode(ids: readonly number[], skipSpecialTokens?: boolean): string;
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
}

export interface LoadTokenizerOptions {
  /** Pad token (e.g. `pad_token` of tokenizer_config.json), used when the JSON has no padding section. */
  padToken?: string;
}

// ---------------------------------------------------------------------------------------------
// small JSON helpers

type Json = Record<string, unknown>;

function isObj(v: unknown): v is Json {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function str(o: Json, key: string, where: string): string {
  const v = o[key];
  if (typeof v !== "string") throw new TokenizerError(`${where}: '${key}' must be a string, got ${JSON.stringify(v)}`);
  return v;
}

function optStr(o: Json, key: string): string | null {
  const v = o[key];
  return typeof v === "string" ? v : null;
}

function bool(o: Json, key: string, dflt: boolean): boolean {
  const v = o[key];
  return typeof v === "boolean" ? v : dflt;
}

/** Compile a tokenizers-style pattern `{String: s}` or `{Regex: r}` to a global JS RegExp. */
function compilePattern(p: unknown, where: string): RegExp {
  if (!isObj(p)) throw new TokenizerError(`${where}: pattern must be {"String": ..} or {"Regex": ..}, got ${JSON.stringify(p)}`);
  if (typeof p.String === "string") return new RegExp(escapeRegExp(p.String), "gu");
  if (typeof p.Regex === "string") {
    try {
      return new RegExp(p.Regex, "gu");
    } catch {
      throw new TokenizerError(`${where}: regex ${JSON.stringify(p.Regex)} is not supported by the JavaScript regex engine`);
    }
  }
  throw new TokenizerError(`${where}: pattern must be {"String": ..} or {"Regex": ..}, got ${JSON.stringify(p)}`);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\\/-]/g, "\\$&");
}

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: false });

// ---------------------------------------------------------------------------------------------
// byte-level alphabet (GPT-2 bytes_to_unicode)

const BYTE_TO_CHAR: string[] = (() => {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  const out = new Array<string>(256);
  bs.forEach((b, i) => (out[b] = String.fromCodePoint(cs[i])));
  return out;
})();
const CHAR_TO_BYTE = new Map<string, number>(BYTE_TO_CHAR.map((c, b) => [c, b]));

function byteLevelEncode(s: string): string {
  let out = "";
  for (const b of utf8.encode(s)) out += BYTE_TO_CHAR[b];
  return out;
}

/** GPT-2's pre-tokenization regex, as used by the ByteLevel pre-tokenizer. */
const GPT2_REGEX = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

// ---------------------------------------------------------------------------------------------
// normalizers

type Normalizer = (s: string) => string;

function buildNormalizer(cfg: unknown, where: string): Normalizer {
  if (cfg === null || cfg === undefined) return (s) => s;
  if (!isObj(cfg)) throw new TokenizerError(`${where}: normalizer must be an object`);
  const type = str(cfg, "type", where);
  const w = `${where} (${type})`;
  switch (type) {
    case "NFC":
    case "NFD":
    case "NFKC":
    case "NFKD":
      return (s) => s.normalize(type);
    case "Precompiled":
      // SentencePiece's compiled charsmap (T5: nmt_nfkc). NFKC is the standard approximation;
      // it differs only for a few control/whitespace characters.
      return (s) => s.normalize("NFKC");
    case "Lowercase":
      return (s) => s.toLowerCase();
    case "Strip": {
      const left = bool(cfg, "strip_left", true);
      const right = bool(cfg, "strip_right", true);
      return (s) => {
        let r = s;
        if (left) r = r.replace(/^\s+/u, "");
        if (right) r = r.replace(/\s+$/u, "");
        return r;
      };
    }
    case "StripAccents":
      return (s) => s.replace(/\p{Mn}/gu, "");
    case "Replace": {
      const re = compilePattern(cfg.pattern, w);
      const content = str(cfg, "content", w);
      return (s) => s.replace(re, () => content);
    }
    case "Prepend": {
      const prepend = str(cfg, "prepend", w);
      return (s) => (s.length ? prepend + s : s);
    }
    case "Sequence": {
      const list = cfg.normalizers;
      if (!Array.isArray(list)) throw new TokenizerError(`${w}: 'normalizers' must be a list`);
      const fns = list.map((n, i) => buildNormalizer(n, `${w}[${i}]`));
      return (s) => fns.reduce((acc, f) => f(acc), s);
    }
    case "BertNormalizer": {
      const lower = bool(cfg, "lowercase", true);
      const clean = bool(cfg, "clean_text", true);
      const chinese = bool(cfg, "handle_chinese_chars", true);
      const strip = cfg.strip_accents === null || cfg.strip_accents === undefined ? lower : cfg.strip_accents === true;
      return (s) => {
        let r = s;
        if (clean) r = r.replace(/[\u0000\ufffd\p{Cc}]/gu, (c) => (/\s/u.test(c) ? " " : "")).replace(/\s/gu, " ");
        if (chinese) r = r.replace(/[\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff]/gu, (c) => ` ${c} `);
        if (strip) r = r.normalize("NFD").replace(/\p{Mn}/gu, "");
        if (lower) r = r.toLowerCase();
        return r;
      };
    }
    default:
      throw new TokenizerError(`${where}: normalizer type '${type}' is not supported`);
  }
}

// ---------------------------------------------------------------------------------------------
// pre-tokenizers: string pieces in, string pieces out

interface Piece {
  text: string;
  /** True for the piece that starts the original input (Metaspace prepend_scheme "first"). */
  first: boolean;
}

type PreTokenizer = (pieces: Piece[]) => Piece[];

type SplitBehavior = "Removed" | "Isolated" | "MergedWithPrevious" | "MergedWithNext" | "Contiguous";

/** Split `s` into (text, isDelimiter) runs by the regex, then apply the behaviour (as tokenizers' NormalizedString::split). */
function splitBy(s: string, re: RegExp, behavior: SplitBehavior, invert: boolean): string[] {
  const runs: [string, boolean][] = [];
  let last = 0;
  re.lastIndex = 0;
  for (let m = re.exec(s); m !== null; m = re.exec(s)) {
    if (m[0].length === 0) {
      re.lastIndex++;
      continue;
    }
    if (m.index > last) runs.push([s.slice(last, m.index), false]);
    runs.push([m[0], true]);
    last = m.index + m[0].length;
  }
  if (last < s.length) runs.push([s.slice(last), false]);
  if (invert) for (const r of runs) r[1] = !r[1];
  const out: string[] = [];
  switch (behavior) {
    case "Removed":
      for (const [t, d] of runs) if (!d) out.push(t);
      break;
    case "Isolated":
      for (const [t] of runs) out.push(t);
      break;
    case "MergedWithPrevious": {
      let prevIsContent = false;
      for (const [t, d] of runs) {
        if (d && prevIsContent) out[out.length - 1] += t;
        else out.push(t);
        prevIsContent = !d;
      }
      break;
    }
    case "MergedWithNext": {
      let pending = "";
      for (const [t, d] of runs) {
        if (d) {
          if (pending) out.push(pending);
          pending = t;
        } else {
          out.push(pending + t);
          pending = "";
        }
      }
      if (pending) out.push(pending);
      break;
    }
    case "Contiguous": {
      let prevDelim = false;
      for (const [t, d] of runs) {
        if (d && prevDelim) out[out.length - 1] += t;
        else out.push(t);
        prevDelim = d;
      }
      break;
    }
  }
  return out.filter((t) => t.length > 0);
}

function mapPieces(pieces: Piece[], f: (p: Piece) => string[]): Piece[] {
  const out: Piece[] = [];
  for (const p of pieces) {
    const parts = f(p);
    parts.forEach((t, i) => out.push({ text: t, first: p.first && i === 0 }));
  }
  return out;
}

const BEHAVIORS: SplitBehavior[] = ["Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"];

function buildPreTokenizer(cfg: unknown, where: string): PreTokenizer {
  if (cfg === null || cfg === undefined) return (p) => p;
  if (!isObj(cfg)) throw new TokenizerError(`${where}: pre_tokenizer must be an object`);
  const type = str(cfg, "type", where);
  const w = `${where} (${type})`;
  switch (type) {
    case "ByteLevel": {
      const addPrefix = bool(cfg, "add_prefix_space", true);
      const useRegex = bool(cfg, "use_regex", true);
      return (pieces) =>
        mapPieces(pieces, (p) => {
          let t = p.text;
          if (addPrefix && !t.startsWith(" ")) t = " " + t;
          const parts = useRegex ? splitBy(t, GPT2_REGEX, "Isolated", false) : [t];
          return parts.map(byteLevelEncode);
        });
    }
    case "Split": {
      const re = compilePattern(cfg.pattern, w);
      const behavior = str(cfg, "behavior", w) as SplitBehavior;
      if (!BEHAVIORS.includes(behavior)) throw new TokenizerError(`${w}: unknown split behavior '${behavior}'`);
      const invert = bool(cfg, "invert", false);
      return (pieces) => mapPieces(pieces, (p) => splitBy(p.text, re, behavior, invert));
    }
    case "Whitespace":
      return (pieces) => mapPieces(pieces, (p) => splitBy(p.text, /\w+|[^\w\s]+/gu, "Removed", true));
    case "WhitespaceSplit":
      return (pieces) => mapPieces(pieces, (p) => splitBy(p.text, /\s+/gu, "Removed", false));
    case "Digits": {
      const individual = bool(cfg, "individual_digits", false);
      const re = individual ? /\p{N}/gu : /\p{N}+/gu;
      return (pieces) => mapPieces(pieces, (p) => splitBy(p.text, re, "Isolated", false));
    }
    case "Punctuation": {
      const behavior = (optStr(cfg, "behavior") ?? "Isolated") as SplitBehavior;
      return (pieces) => mapPieces(pieces, (p) => splitBy(p.text, /\p{P}/gu, behavior, false));
    }
    case "Metaspace": {
      const replacement = optStr(cfg, "replacement") ?? "\u2581";
      let scheme = optStr(cfg, "prepend_scheme");
      if (scheme === null) scheme = bool(cfg, "add_prefix_space", true) ? "always" : "never";
      if (!["always", "first", "never"].includes(scheme)) throw new TokenizerError(`${w}: unknown prepend_scheme '${scheme}'`);
      const split = bool(cfg, "split", true);
      const re = new RegExp(escapeRegExp(replacement), "gu");
      return (pieces) =>
        mapPieces(pieces, (p) => {
          let t = p.text.replace(/ /g, replacement);
          if (t.length > 0 && !t.startsWith(replacement) && (scheme === "always" || (scheme === "first" && p.first))) t = replacement + t;
          return split ? splitBy(t, re, "MergedWithNext", false) : [t];
        });
    }
    case "Sequence": {
      const list = cfg.pretokenizers;
      if (!Array.isArray(list)) throw new TokenizerError(`${w}: 'pretokenizers' must be a list`);
      const fns = list.map((n, i) => buildPreTokenizer(n, `${w}[${i}]`));
      return (pieces) => fns.reduce((acc, f) => f(acc), pieces);
    }
    default:
      throw new TokenizerError(`${where}: pre_tokenizer type '${type}' is not supported`);
  }
}

// ---------------------------------------------------------------------------------------------
// models

interface Model {
  readonly type: "BPE" | "Unigram";
  tokenize(piece: string): number[];
  vocab: Map<string, number>;
}

function byteFallbackIds(text: string, vocab: Map<string, number>): number[] | null {
  const ids: number[] = [];
  for (const b of utf8.encode(text)) {
    const id = vocab.get(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
    if (id === undefined) return null;
    ids.push(id);
  }
  return ids;
}

function buildBpe(cfg: Json, where: string): Model {
  const w = `${where} (BPE)`;
  if (!isObj(cfg.vocab)) throw new TokenizerError(`${w}: 'vocab' must be an object of token -> id`);
  const vocab = new Map<string, number>();
  for (const [tok, id] of Object.entries(cfg.vocab)) {
    if (typeof id !== "number") throw new TokenizerError(`${w}: vocab id of ${JSON.stringify(tok)} is not a number`);
    vocab.set(tok, id);
  }
  if (!Array.isArray(cfg.merges)) throw new TokenizerError(`${w}: 'merges' must be a list`);
  const ranks = new Map<string, number>();
  cfg.merges.forEach((m: unknown, rank: number) => {
    let a: string, b: string;
    if (typeof m === "string") {
      const sp = m.indexOf(" ", 1);
      if (sp < 0) throw new TokenizerError(`${w}: merge ${rank} ${JSON.stringify(m)} is not "a b"`);
      a = m.slice(0, sp);
      b = m.slice(sp + 1);
    } else if (Array.isArray(m) && m.length === 2 && typeof m[0] === "string" && typeof m[1] === "string") {
      [a, b] = m as [string, string];
    } else throw new TokenizerError(`${w}: merge ${rank} is neither "a b" nor ["a", "b"]`);
    const key = a + "\u0000" + b;
    if (!ranks.has(key)) ranks.set(key, rank);
  });
  const unkToken = optStr(cfg, "unk_token");
  const unkId = unkToken === null ? undefined : vocab.get(unkToken);
  const prefix = optStr(cfg, "continuing_subword_prefix") ?? "";
  const suffix = optStr(cfg, "end_of_word_suffix") ?? "";
  const fuseUnk = bool(cfg, "fuse_unk", false);
  const byteFallback = bool(cfg, "byte_fallback", false);
  const ignoreMerges = bool(cfg, "ignore_merges", false);
  const cache = new Map<string, number[]>();

  interface Sym {
    tok: string;
    id: number;
    mergeable: boolean;
  }

  function tokenize(word: string): number[] {
    const hit = cache.get(word);
    if (hit) return hit;
    if (ignoreMerges) {
      const id = vocab.get(word);
      if (id !== undefined) return [id];
    }
    const chars = Array.from(word);
    let syms: Sym[] = [];
    chars.forEach((c, i) => {
      let s = c;
      if (i > 0 && prefix) s = prefix + s;
      if (i === chars.length - 1 && suffix) s = s + suffix;
      const id = vocab.get(s);
      if (id !== undefined) {
        syms.push({ tok: s, id, mergeable: true });
        return;
      }
      if (byteFallback) {
        const bytes = byteFallbackIds(c, vocab);
        if (bytes) {
          for (const b of bytes) syms.push({ tok: "", id: b, mergeable: false });
          return;
        }
      }
      if (unkId !== undefined) {
        const prev = syms[syms.length - 1];
        if (fuseUnk && prev && !prev.mergeable && prev.id === unkId) return;
        syms.push({ tok: unkToken as string, id: unkId, mergeable: false });
      }
      // no unk token: the character is dropped, as the tokenizers library does
    });
    for (;;) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i + 1 < syms.length; i++) {
        if (!syms[i].mergeable || !syms[i + 1].mergeable) continue;
        const r = ranks.get(syms[i].tok + "\u0000" + syms[i + 1].tok);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) break;
      const b = syms[best + 1].tok;
      const merged = syms[best].tok + (prefix && b.startsWith(prefix) ? b.slice(prefix.length) : b);
      const id = vocab.get(merged);
      if (id === undefined) break; // a merge whose result is not in the vocab: the library would refuse to load; stop merging
      syms = [...syms.slice(0, best), { tok: merged, id, mergeable: true }, ...syms.slice(best + 2)];
    }
    const ids = syms.map((s) => s.id);
    if (cache.size < 50_000) cache.set(word, ids);
    return ids;
  }
  return { type: "BPE", tokenize, vocab };
}

function buildUnigram(cfg: Json, where: string): Model {
  const w = `${where} (Unigram)`;
  if (!Array.isArray(cfg.vocab)) throw new TokenizerError(`${w}: 'vocab' must be a list of [piece, score]`);
  const vocab = new Map<string, number>();
  const scores: number[] = [];
  let maxLen = 1;
  cfg.vocab.forEach((e: unknown, id: number) => {
    if (!Array.isArray(e) || typeof e[0] !== "string" || typeof e[1] !== "number") throw new TokenizerError(`${w}: vocab entry ${id} is not [piece, score]`);
    if (!vocab.has(e[0])) vocab.set(e[0], id);
    scores.push(e[1]);
    maxLen = Math.max(maxLen, Array.from(e[0]).length);
  });
  if (scores.length === 0) throw new TokenizerError(`${w}: empty vocab`);
  const unkId = typeof cfg.unk_id === "number" ? cfg.unk_id : null;
  if (unkId !== null && (unkId < 0 || unkId >= scores.length)) throw new TokenizerError(`${w}: unk_id ${unkId} is outside the vocab (size ${scores.length})`);
  const byteFallback = bool(cfg, "byte_fallback", false);
  const fuseUnk = true; // tokenizers' Unigram always fuses unknowns
  const unkScore = Math.min(...scores) - 10; // kUnkPenalty
  const cache = new Map<string, number[]>();

  function tokenize(text: string): number[] {
    const hit = cache.get(text);
    if (hit) return hit;
    const chars = Array.from(text);
    const n = chars.length;
    // best[i]: best path covering chars[0..i)
    const bestScore = new Float64Array(n + 1).fill(-Infinity);
    const bestStart = new Int32Array(n + 1).fill(-1);
    const bestId = new Int32Array(n + 1).fill(-1); // -1: unk node
    bestScore[0] = 0;
    for (let s = 0; s < n; s++) {
      if (bestStart[s] < 0 && s !== 0) continue;
      const base = bestScore[s];
      let hasSingle = false;
      let sub = "";
      for (let len = 1; len <= maxLen && s + len <= n; len++) {
        sub += chars[s + len - 1];
        const id = vocab.get(sub);
        if (id === undefined) continue;
        if (len === 1) hasSingle = true;
        const cand = base + scores[id];
        const e = s + len;
        if (bestStart[e] < 0 || cand > bestScore[e]) {
          bestScore[e] = cand;
          bestStart[e] = s;
          bestId[e] = id;
        }
      }
      if (!hasSingle) {
        const cand = base + unkScore;
        const e = s + 1;
        if (bestStart[e] < 0 || cand > bestScore[e]) {
          bestScore[e] = cand;
          bestStart[e] = s;
          bestId[e] = -1;
        }
      }
    }
    // backtrack
    const nodes: { start: number; end: number; id: number }[] = [];
    for (let e = n; e > 0; ) {
      const s = bestStart[e];
      nodes.push({ start: s, end: e, id: bestId[e] });
      e = s;
    }
    nodes.reverse();
    const ids: number[] = [];
    let prevUnk = false;
    for (const nd of nodes) {
      const isUnk = nd.id < 0 || nd.id === unkId;
      if (isUnk) {
        const piece = chars.slice(nd.start, nd.end).join("");
        if (byteFallback) {
          const bytes = byteFallbackIds(piece, vocab);
          if (bytes) {
            ids.push(...bytes);
            prevUnk = false;
            continue;
          }
        }
        if (fuseUnk && prevUnk) continue;
        if (unkId === null) throw new TokenizerError(`${w}: text ${JSON.stringify(piece)} has no vocab entry and the model has no unk_id`);
        ids.push(unkId);
        prevUnk = true;
      } else {
        ids.push(nd.id);
        prevUnk = false;
      }
    }
    if (cache.size < 50_000) cache.set(text, ids);
    return ids;
  }
  return { type: "Unigram", tokenize, vocab };
}

// ---------------------------------------------------------------------------------------------
// post-processors

interface PostProcessor {
  /** Number of ids added to a single sequence. */
  added: number;
  apply(ids: number[]): number[];
}

function buildPostProcessor(cfg: unknown, where: string, vocab: (t: string) => number | undefined): PostProcessor {
  const none: PostProcessor = { added: 0, apply: (ids) => ids };
  if (cfg === null || cfg === undefined) return none;
  if (!isObj(cfg)) throw new TokenizerError(`${where}: post_processor must be an object`);
  const type = str(cfg, "type", where);
  const w = `${where} (${type})`;
  const tokId = (v: unknown, key: string): number => {
    if (Array.isArray(v) && typeof v[1] === "number") return v[1];
    if (Array.isArray(v) && typeof v[0] === "string") {
      const id = vocab(v[0]);
      if (id !== undefined) return id;
    }
    throw new TokenizerError(`${w}: '${key}' must be [token, id]`);
  };
  switch (type) {
    case "RobertaProcessing":
    case "BertProcessing": {
      const cls = tokId(cfg.cls, "cls");
      const sep = tokId(cfg.sep, "sep");
      return { added: 2, apply: (ids) => [cls, ...ids, sep] };
    }
    case "ByteLevel":
      return none;
    case "TemplateProcessing": {
      const single = cfg.single;
      if (!Array.isArray(single)) throw new TokenizerError(`${w}: 'single' must be a list`);
      const specials = isObj(cfg.special_tokens) ? cfg.special_tokens : {};
      const parts: (number[] | "A")[] = single.map((item: unknown, i: number) => {
        if (isObj(item) && isObj(item.Sequence)) return "A";
        if (isObj(item) && isObj(item.SpecialToken)) {
          const name = str(item.SpecialToken, "id", `${w} single[${i}]`);
          const spec = specials[name];
          if (isObj(spec) && Array.isArray(spec.ids) && spec.ids.every((x) => typeof x === "number")) return spec.ids as number[];
          const id = vocab(name);
          if (id !== undefined) return [id];
          throw new TokenizerError(`${w}: special token '${name}' has no id in special_tokens or the vocab`);
        }
        throw new TokenizerError(`${w}: single[${i}] is neither Sequence nor SpecialToken`);
      });
      const added = parts.reduce((n, p) => n + (p === "A" ? 0 : p.length), 0);
      return { added, apply: (ids) => parts.flatMap((p) => (p === "A" ? ids : p)) };
    }
    case "Sequence": {
      const list = cfg.processors;
      if (!Array.isArray(list)) throw new TokenizerError(`${w}: 'processors' must be a list`);
      const pps = list.map((p, i) => buildPostProcessor(p, `${w}[${i}]`, vocab));
      return { added: pps.reduce((n, p) => n + p.added, 0), apply: (ids) => pps.reduce((acc, p) => p.apply(acc), ids) };
    }
    default:
      throw new TokenizerError(`${where}: post_processor type '${type}' is not supported`);
  }
}

// ---------------------------------------------------------------------------------------------
// decoders: token strings in, token strings out; joined at the end

type Decoder = (tokens: string[]) => string[];

function buildDecoder(cfg: unknown, where: string): Decoder {
  if (cfg === null || cfg === undefined) return (t) => [t.join(" ")];
  if (!isObj(cfg)) throw new TokenizerError(`${where}: decoder must be an object`);
  const type = str(cfg, "type", where);
  const w = `${where} (${type})`;
  switch (type) {
    case "ByteLevel":
      return (tokens) => {
        const bytes: number[] = [];
        for (const t of tokens) for (const c of t) bytes.push(CHAR_TO_BYTE.get(c) ?? 63);
        return [utf8Decoder.decode(new Uint8Array(bytes))];
      };
    case "Metaspace": {
      const replacement = optStr(cfg, "replacement") ?? "\u2581";
      let scheme = optStr(cfg, "prepend_scheme");
      if (scheme === null) scheme = bool(cfg, "add_prefix_space", true) ? "always" : "never";
      return (tokens) =>
        tokens.map((t, i) => {
          const r = t.split(replacement).join(" ");
          return i === 0 && scheme !== "never" && r.startsWith(" ") ? r.slice(1) : r;
        });
    }
    case "BPEDecoder": {
      const suffix = optStr(cfg, "suffix") ?? "</w>";
      return (tokens) => tokens.map((t, i) => t.split(suffix).join(i === tokens.length - 1 ? "" : " "));
    }
    case "Replace": {
      const re = compilePattern(cfg.pattern, w);
      const content = str(cfg, "content", w);
      return (tokens) => tokens.map((t) => t.replace(re, () => content));
    }
    case "Strip": {
      const content = optStr(cfg, "content") ?? " ";
      const start = typeof cfg.start === "number" ? cfg.start : 0;
      const stop = typeof cfg.stop === "number" ? cfg.stop : 0;
      return (tokens) =>
        tokens.map((t) => {
          let r = t;
          for (let i = 0; i < start && r.startsWith(content); i++) r = r.slice(content.length);
          for (let i = 0; i < stop && r.endsWith(content); i++) r = r.slice(0, r.length - content.length);
          return r;
        });
    }
    case "Fuse":
      return (tokens) => [tokens.join("")];
    case "ByteFallback":
      return (tokens) => {
        const out: string[] = [];
        let bytes: number[] = [];
        const flush = () => {
          if (bytes.length) out.push(utf8Decoder.decode(new Uint8Array(bytes)));
          bytes = [];
        };
        for (const t of tokens) {
          const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(t);
          if (m) bytes.push(parseInt(m[1], 16));
          else {
            flush();
            out.push(t);
          }
        }
        flush();
        return out;
      };
    case "Sequence": {
      const list = cfg.decoders;
      if (!Array.isArray(list)) throw new TokenizerError(`${w}: 'decoders' must be a list`);
      const fns = list.map((d, i) => buildDecoder(d, `${w}[${i}]`));
      return (tokens) => fns.reduce((acc, f) => f(acc), tokens);
    }
    default:
      throw new TokenizerError(`${where}: decoder type '${type}' is not supported`);
  }
}

// ---------------------------------------------------------------------------------------------
// added tokens

interface AddedToken {
  id: number;
  content: string;
  special: boolean;
  lstrip: boolean;
  rstrip: boolean;
  singleWord: boolean;
}

type Segment = { text: string } | { id: number };

/** Split raw text on added tokens (leftmost, longest first), honouring lstrip/rstrip/single_word. */
function splitAddedTokens(text: string, added: AddedToken[]): Segment[] {
  if (added.length === 0 || text.length === 0) return text.length ? [{ text }] : [];
  const out: Segment[] = [];
  let start = 0; // start of pending plain text
  let i = 0;
  const isWord = (c: string | undefined) => c !== undefined && /[\p{L}\p{N}_]/u.test(c);
  while (i < text.length) {
    let match: AddedToken | null = null;
    for (const t of added) {
      if (!text.startsWith(t.content, i)) continue;
      if (t.singleWord && (isWord(text[i - 1]) || isWord(text[i + t.content.length]))) continue;
      if (!match || t.content.length > match.content.length) match = t;
    }
    if (!match) {
      i++;
      continue;
    }
    let left = i;
    let right = i + match.content.length;
    if (match.lstrip) while (left > start && /\s/u.test(text[left - 1])) left--;
    if (match.rstrip) while (right < text.length && /\s/u.test(text[right])) right++;
    if (left > start) out.push({ text: text.slice(start, left) });
    out.push({ id: match.id });
    start = right;
    i = right;
  }
  if (start < text.length) out.push({ text: text.slice(start) });
  return out;
}

// ---------------------------------------------------------------------------------------------
// the tokenizer

/** Build a tokenizer from a parsed `tokenizer.json`. Throws TokenizerError (plain message) for unsupported or malformed parts. */
export function loadTokenizerJson(json: unknown, what: string, options: LoadTokenizerOptions = {}): Tokenizer {
  if (!isObj(json)) throw new TokenizerError(`${what}: tokenizer.json must be a JSON object`);
  if (!isObj(json.model)) throw new TokenizerError(`${what}: tokenizer.json has no 'model' object`);
  const modelCfg = json.model;
  const modelType = typeof modelCfg.type === "string" ? modelCfg.type : Array.isArray(modelCfg.merges) ? "BPE" : Array.isArray(modelCfg.vocab) ? "Unigram" : "?";
  let model: Model;
  if (modelType === "BPE") model = buildBpe(modelCfg, `${what}: model`);
  else if (modelType === "Unigram") model = buildUnigram(modelCfg, `${what}: model`);
  else throw new TokenizerError(`${what}: model type '${modelType}' is not supported (BPE and Unigram are)`);

  const added: AddedToken[] = [];
  const idToTok = new Map<number, string>();
  for (const [tok, id] of model.vocab) if (!idToTok.has(id)) idToTok.set(id, tok);
  const specialIds = new Set<number>();
  const tokToId = new Map(model.vocab);
  if (json.added_tokens !== undefined && json.added_tokens !== null) {
    if (!Array.isArray(json.added_tokens)) throw new TokenizerError(`${what}: 'added_tokens' must be a list`);
    json.added_tokens.forEach((t: unknown, i: number) => {
      if (!isObj(t) || typeof t.id !== "number" || typeof t.content !== "string") throw new TokenizerError(`${what}: added_tokens[${i}] must have a numeric 'id' and a string 'content'`);
      const a: AddedToken = {
        id: t.id,
        content: t.content,
        special: bool(t, "special", false),
        lstrip: bool(t, "lstrip", false),
        rstrip: bool(t, "rstrip", false),
        singleWord: bool(t, "single_word", false),
      };
      if (a.content.length) added.push(a);
      idToTok.set(a.id, a.content);
      tokToId.set(a.content, a.id);
      if (a.special) specialIds.add(a.id);
    });
  }
  const lookup = (t: string) => tokToId.get(t);
  const normalize = buildNormalizer(json.normalizer, `${what}: normalizer`);
  const preTokenize = buildPreTokenizer(json.pre_tokenizer, `${what}: pre_tokenizer`);
  const post = buildPostProcessor(json.post_processor, `${what}: post_processor`, lookup);
  const decoder = buildDecoder(json.decoder, `${what}: decoder`);

  let padId = 0;
  const padding = json.padding;
  if (isObj(padding) && typeof padding.pad_id === "number") padId = padding.pad_id;
  else if (options.padToken !== undefined && lookup(options.padToken) !== undefined) padId = lookup(options.padToken) as number;
  else if (lookup("<pad>") !== undefined) padId = lookup("<pad>") as number;

  /** Model ids without the post-processor's special tokens. */
  function encodeRaw(text: string): number[] {
    if (typeof text !== "string") throw new TokenizerError(`${what}: text to encode must be a string, got ${typeof text}`);
    const ids: number[] = [];
    let first = true;
    for (const seg of splitAddedTokens(text, added)) {
      if ("id" in seg) {
        ids.push(seg.id);
        first = false;
        continue;
      }
      const normalized = normalize(seg.text);
      const pieces = preTokenize(normalized.length ? [{ text: normalized, first }] : []);
      first = false;
      for (const p of pieces) if (p.text.length) ids.push(...model.tokenize(p.text));
    }
    return ids;
  }

  return {
    what,
    modelType: model.type,
    padId,
    encode: (text) => post.apply(encodeRaw(text)),
    encodePadded(text, length, opts = {}) {
      if (!Number.isInteger(length) || length < post.added) {
        throw new TokenizerError(`${what}: padded length must be an integer of at least ${post.added} (the special tokens), got ${length}`);
      }
      let raw = encodeRaw(text);
      const room = length - post.added;
      if (raw.length > room) {
        if (opts.truncate === false) {
          throw new TokenizerError(`${what}: text ${JSON.stringify(text.length > 60 ? text.slice(0, 57) + "..." : text)} needs ${raw.length + post.added} tokens, more than the length ${length} (truncation is off)`);
        }
        raw = raw.slice(0, room);
      }
      const ids = post.apply(raw);
      const mask = ids.map(() => 1);
      const pad = opts.padId ?? padId;
      while (ids.length < length) {
        ids.push(pad);
        mask.push(0);
      }
      return { ids, mask };
    },
    decode(ids, skipSpecialTokens = true) {
      const toks: string[] = [];
      for (const id of ids) {
        if (skipSpecialTokens && specialIds.has(id)) continue;
        const t = idToTok.get(id);
        if (t !== undefined) toks.push(t);
      }
      return decoder(toks).join("");
    },
    tokenToId: (t) => tokToId.get(t),
    idToToken: (id) => idToTok.get(id),
  };
}

/**
 * The `tokenizer.json` that `CLIPTokenizerFast` builds from a slow CLIP tokenizer's
 * `vocab.json` + `merges.txt` (as shipped in diffusers' `tokenizer/` folders), so such
 * folders load without conversion. Pure: parsed vocab object and merges text in.
 */
export function clipTokenizerJsonFromVocabMerges(vocab: unknown, mergesTxt: string, what: string, unkToken = "<|endoftext|>", bosToken = "<|startoftext|>", eosToken = "<|endoftext|>"): Json {
  if (!isObj(vocab)) throw new TokenizerError(`${what}: vocab.json must be an object of token -> id`);
  const merges = mergesTxt
    .split(/\r?\n/)
    .filter((l, i) => l.trim().length > 0 && !(i === 0 && l.startsWith("#version")))
    .map((l) => l.trim());
  const bos = vocab[bosToken];
  const eos = vocab[eosToken];
  if (typeof bos !== "number" || typeof eos !== "number") throw new TokenizerError(`${what}: vocab.json lacks ${bosToken} or ${eosToken}`);
  return {
    added_tokens: [
      { id: bos, content: bosToken, special: true, lstrip: false, rstrip: false, single_word: false, normalized: true },
      { id: eos, content: eosToken, special: true, lstrip: false, rstrip: false, single_word: false, normalized: true },
    ],
    normalizer: { type: "Sequence", normalizers: [{ type: "NFC" }, { type: "Replace", pattern: { Regex: "\\s+" }, content: " " }, { type: "Lowercase" }] },
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        { type: "Split", pattern: { Regex: "'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+" }, behavior: "Removed", invert: true },
        { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: { type: "RobertaProcessing", sep: [eosToken, eos], cls: [bosToken, bos], trim_offsets: false, add_prefix_space: false },
    // CLIPTokenizerFast decodes with ByteLevel and then replaces the "</w>" suffix by a space
    decoder: { type: "Sequence", decoders: [{ type: "ByteLevel" }, { type: "Replace", pattern: { String: "</w>" }, content: " " }] },
    model: { type: "BPE", vocab, merges, unk_token: unkToken, continuing_subword_prefix: "", end_of_word_suffix: "</w>", fuse_unk: false, byte_fallback: false },
  };
}
