/**
 * The fuzzer of issue 12, shared by the quick run in `npm test` (test/fuzz/fuzz.test.ts) and the
 * long one (bench/fuzz.ts --cases N). Seeded; four kinds of input, each case checked for:
 *   crash       an exception other than the module's own error type, an exit code 70, or SDC900
 *   hang        a case that used more CPU time than the limit (cases run synchronously; CPU time, so a
 *               loaded machine does not fake hangs; bench/fuzz.ts's parent adds a wall-clock backstop)
 *   unpositioned a diagnostic without a finite 1-based line and column, or without a file
 *   wrong acceptance  input that had to be refused but was accepted (see each kind's oracle)
 * Kinds:
 *   spec        mutations of the committed specs (delete/duplicate/insert/replace tokens and spans,
 *               hostile names, numbers, brackets), compiled in memory; accepted ones must generate
 *               TypeScript whose top level is only the generator's declarations; mutations that
 *               must fail (an unbalanced bracket, an unknown name) must be refused
 *   cli         command lines (subcommands, flags, hostile values) through `main`, on folders that
 *               do not exist so nothing runs for long; exit codes 0/1/2 only, no stack traces
 *   safetensors headers and bytes mutated; a file is read or refused with SafetensorsError, and
 *               what is read holds exactly shape-many values inside the file
 *   checkpoint  a checkpoint's files mutated (state.json values, bytes of any file, a file replaced
 *               by a device, FIFO, folder or symbolic link out of the folder, a safetensors file
 *               padded or cut with every checksum recomputed); refused with CheckpointError/
 *               SafetensorsError, or read back exactly as written
 *   runfolder   a trained run folder's config.json mutated (a value of any field, its checksum kept,
 *               recomputed or dropped; bytes flipped or cut; padding; replaced by a device, FIFO,
 *               folder or link out of the folder), then `sdc train GEN --resume RUN --steps 2`
 *               through `main`: exit 0/1/2 and one line; accepted (the run is "already at step 2")
 *               only when config.json is as written, or a consistent edit to a value an
 *               independent oracle (RULES) says is valid
 */
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { compile, memoryHost } from "../../compiler/index.ts";
import { readSafetensors, writeSafetensors } from "../../runtime/io/safetensors.ts";
import { type CheckpointContents, readCheckpoint, saveCheckpoint } from "../../runtime/train/checkpoint.ts";
import { HOSTILE_NAMES, topLevelProblems } from "../compiler/hostile.ts";

export type Kind = "spec" | "cli" | "safetensors" | "checkpoint" | "runfolder";
export const KINDS: Kind[] = ["spec", "cli", "safetensors", "checkpoint", "runfolder"];

export interface FuzzCounts {
  cases: Record<Kind, number>;
  accepted: Record<Kind, number>;
  refused: Record<Kind, number>;
  crashes: number;
  hangs: number;
  unpositioned: number;
  wrongAcceptances: number;
  /** the first failures, to reproduce: kind, seed of the case, what */
  failures: string[];
  seconds: number;
  /** CPU seconds of this process over the run (all its threads; the run folder's training included) */
  cpuSeconds: number;
}

/** mulberry32: small, fast, seeded. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
type R = () => number;
const pick = <T>(r: R, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
const int = (r: R, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));

/** CPU milliseconds of this process (all its threads): a loaded machine stretches a case's wall clock, not its CPU time. */
export function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}
/** The CPU and wall milliseconds since the clock started. */
function startClock(): () => { cpu: number; wall: number } {
  const cpu0 = cpuMs();
  const wall0 = performance.now();
  return () => ({ cpu: cpuMs() - cpu0, wall: performance.now() - wall0 });
}
/** A hang: a case that used more than `limitMs` of CPU time (its wall time is only reported). */
function tooSlow(c: FuzzCounts, limitMs: number, clock: () => { cpu: number; wall: number }, fail: (what: string) => void, what: string): void {
  const t = clock();
  if (t.cpu <= limitMs) return;
  c.hangs++;
  fail(`${what} took ${Math.round(t.cpu)} ms of CPU (${Math.round(t.wall)} ms wall)`);
}

// ------------------------------------------------------------------ specs

const ROOT = new URL("../../", import.meta.url).pathname;
// every architecture's spec and library, and the test specs of the language's constructs
const SPEC_FILES = ["specs/sd3.mdl", "specs/sd3-seed.mdl", "specs/judge.mdl", "specs/dit.mdl", "specs/flux.mdl", "specs/mmditx.mdl", "specs/unet.mdl", "specs/sd3-latent.mdl", "specs/lib/mmdit.mdl", "specs/lib/text.mdl", "specs/lib/dit.mdl", "specs/lib/flux.mdl", "specs/lib/mmditx.mdl", "specs/lib/unet.mdl", "test/specs/mmdit-tiny-a.mdl", "test/specs/mmdit-tiny-b.mdl", "test/specs/sd3-tiny-pretrained.mdl", "test/specs/elementwise.mdl", "test/specs/labels.mdl", "test/specs/masked.mdl", "test/specs/rope-gqa.mdl", "test/specs/tensor-ops.mdl", "test/specs/unet-tiny.mdl", "docs/examples/broken.mdl"];
/** A library is compiled through a spec that imports it. */
const ENTRY_OF_LIB: Record<string, string> = { "specs/lib/mmdit.mdl": "specs/sd3.mdl", "specs/lib/text.mdl": "specs/sd3.mdl", "specs/lib/dit.mdl": "specs/dit.mdl", "specs/lib/flux.mdl": "specs/flux.mdl", "specs/lib/mmditx.mdl": "specs/mmditx.mdl", "specs/lib/unet.mdl": "specs/unet.mdl" };
/** Specs with a `tiny` variant, compiled as it 19 times in 20 (their full sizes are slow to elaborate). */
const HAS_TINY = new Set(["specs/sd3.mdl", "specs/dit.mdl", "specs/flux.mdl", "specs/mmditx.mdl", "specs/unet.mdl", "specs/sd3-latent.mdl"]);
/** The library search path of the test specs' `import "sdc/lib/..."`: the shipped library (unmutated) under LIB/sdc/lib. */
const LIB = "fuzz-lib";
let corpus: Record<string, string> | undefined;
function specCorpus(): Record<string, string> {
  corpus ??= Object.fromEntries([
    ...SPEC_FILES.map((f): [string, string] => [f, readFileSync(join(ROOT, f), "utf8")]),
    ...SPEC_FILES.filter((f) => f.startsWith("specs/lib/")).map((f): [string, string] => [`${LIB}/sdc/lib/${f.slice("specs/lib/".length)}`, readFileSync(join(ROOT, f), "utf8")]),
  ]);
  return corpus;
}
const TOKENS = ["{", "}", "(", ")", "[", "]", ",", ":", "=", "->", "..", ".", "+", "-", "*", "/", "%", "==", "&&", "!", "?", "as", "for", "in", "if", "else", "return", "let", "param", "block", "spec", "import", "variant", "network", "0", "1", "-1", "2.5", "1e400", "99999999999999999999", "007", '"x"', '"*/"', '"\\n"', "int32", "true", "false", "\n", "//", "/*", "*/", "div", "init:", '"zeros"', '"normal(0.02)"', '"normal(-1)"', ...HOSTILE_NAMES];
const NUMBERS = ["0", "1", "2", "3", "-1", "0.5", "1e-3", "1e9", "4096", "65536", "1e300", "2147483648", "007", "3.0"];

/** One mutation of `text`; `mustFail`: the result is surely not a valid spec. */
function mutate(r: R, text: string): { text: string; mustFail: string | null } {
  const at = int(r, 0, text.length);
  const span = () => {
    const a = int(r, 0, text.length);
    return [a, Math.min(text.length, a + int(r, 1, 80))] as const;
  };
  switch (int(r, 0, 9)) {
    case 0: {
      const [a, b] = span();
      return { text: text.slice(0, a) + text.slice(b), mustFail: null };
    }
    case 1: {
      const [a, b] = span();
      return { text: text.slice(0, b) + text.slice(a, b) + text.slice(b), mustFail: null };
    }
    case 2:
      return { text: `${text.slice(0, at)} ${pick(r, TOKENS)} ${text.slice(at)}`, mustFail: null };
    case 3: {
      // an identifier replaced by a hostile name or another identifier of the file
      const ids = [...text.matchAll(/\b[A-Za-z_][A-Za-z0-9_]*\b/g)];
      if (!ids.length) return { text, mustFail: null };
      const m = pick(r, ids);
      const by = r() < 0.5 ? pick(r, HOSTILE_NAMES) : pick(r, ids)[0];
      return { text: text.slice(0, m.index!) + by + text.slice(m.index! + m[0].length), mustFail: null };
    }
    case 4: {
      const nums = [...text.matchAll(/\b\d+(?:\.\d+)?(?:e-?\d+)?\b/g)];
      if (!nums.length) return { text, mustFail: null };
      const m = pick(r, nums);
      return { text: text.slice(0, m.index!) + pick(r, NUMBERS) + text.slice(m.index! + m[0].length), mustFail: null };
    }
    case 5: {
      // lines swapped
      const lines = text.split("\n");
      const i = int(r, 0, lines.length - 1);
      const j = int(r, 0, lines.length - 1);
      [lines[i], lines[j]] = [lines[j], lines[i]];
      return { text: lines.join("\n"), mustFail: null };
    }
    case 6: {
      // a closing brace removed: the file can no longer be balanced
      const closes = [...text.matchAll(/}/g)];
      if (!closes.length) return { text, mustFail: null };
      const m = pick(r, closes);
      const cut = text.slice(0, m.index!) + text.slice(m.index! + 1);
      // a brace inside a comment or string does not count
      const code = cut.replace(/\/\/[^\n]*|"(?:[^"\\\n]|\\.)*"/g, "");
      return { text: cut, mustFail: (code.match(/{/g) ?? []).length !== (code.match(/}/g) ?? []).length ? "an unbalanced '{'" : null };
    }
    case 7: {
      // an unknown name used in a forward body
      const m = /\n(\s+)return /.exec(text.slice(at)) ?? /\n(\s+)return /.exec(text);
      if (!m) return { text, mustFail: null };
      const idx = (text.slice(at).includes(m[0]) ? at + text.slice(at).indexOf(m[0]) : text.indexOf(m[0])) + 1;
      return { text: `${text.slice(0, idx)}${m[1]}zz_fuzz_unknown = zz_fuzz_unknown_${int(r, 0, 99)} + 1\n${text.slice(idx)}`, mustFail: "an unknown identifier" };
    }
    case 8: {
      // random bytes / characters
      const chars = ["\0", "\u00ff", "\ud800", "\u202e", "\t", "\r", "é", "`", "$", "@", "#", "~", "\\"];
      return { text: text.slice(0, at) + pick(r, chars) + text.slice(at), mustFail: null };
    }
    default: {
      // several mutations
      let t = text;
      let must: string | null = null;
      for (let k = int(r, 2, 4); k > 0; k--) {
        const m = mutate(r, t);
        t = m.text;
        must = null; // later mutations may repair earlier ones
      }
      return { text: t, mustFail: must };
    }
  }
}

/** The input of one spec case: which file is mutated into what, and what is compiled. */
export function specInput(r: R): { files: Record<string, string>; target: string; text: string; mustFail: string | null; entry: string; variant?: string; sets?: string[] } {
  const files = specCorpus();
  // the big reference spec (sd3-seed, 64M parameters to elaborate) now and then; the rest are small or compiled as their tiny variant
  const target = r() < 0.05 ? "specs/sd3-seed.mdl" : pick(r, SPEC_FILES.filter((f) => f !== "specs/sd3-seed.mdl"));
  const { text, mustFail } = mutate(r, files[target]);
  const entry = ENTRY_OF_LIB[target] ?? target;
  const variant = HAS_TINY.has(entry) && r() < 0.95 ? "tiny" : undefined;
  // now and then command-line overrides, hostile ones among them
  const sets = r() < 0.2 ? Array.from({ length: int(r, 1, 2) }, () => pick(r, SETS)) : undefined;
  return { files, target, text, mustFail, entry, variant, sets };
}

const SETS = ["heads=", "heads=3", "depth=1", "depth=-1", "depth=4096", "lr=0", "train.batch=0", "train.batch=65537", "train.steps=1e20", "constructor=1", "__proto__.x=1", "train.toString=2", "toString.batch=1", "heads=1+", "x=(", "flow.sampler=heun", "flow.sampler=toString", "text.tokens=2.5", "data.image=[16, 16, 1]", `heads=${"9".repeat(400)}`, `${"n".repeat(300)}=1`];

function specCase(r: R, c: FuzzCounts, limitMs: number, fail: (what: string) => void): void {
  const { files, target, text, mustFail, entry, variant, sets } = specInput(r);
  const host = memoryHost({ ...files, [target]: text }, { libPath: [LIB] });
  const clock = startClock();
  let result;
  try {
    result = compile(entry, host, { variant, sets });
  } catch (e) {
    c.crashes++;
    return fail(`compile threw ${(e as Error).name}: ${(e as Error).message.slice(0, 200)}`);
  }
  tooSlow(c, limitMs, clock, fail, "compile");
  for (const d of result.diagnostics) {
    const s = d.span;
    if (!s.file || !(s.start.line >= 1) || !(s.start.column >= 1) || !Number.isFinite(s.end.offset)) {
      c.unpositioned++;
      fail(`unpositioned ${d.code} ${s.file}:${s.start.line}:${s.start.column} ${d.message.slice(0, 120)}`);
    }
    if (d.code === "SDC900") {
      c.crashes++;
      fail(`internal error ${d.message.slice(0, 200)}`);
    }
  }
  if (result.files) {
    c.accepted.spec++;
    if (mustFail) {
      c.wrongAcceptances++;
      fail(`accepted ${mustFail} in ${target}`);
    }
    const gen = Object.fromEntries(result.files);
    const problems = [...topLevelProblems("model.ts", gen["model.ts"]), ...topLevelProblems("index.ts", gen["index.ts"])];
    if (problems.length) {
      c.wrongAcceptances++;
      fail(`accepted, but the generated code is wrong: ${problems[0]}`);
    }
  } else c.refused.spec++;
}

// ------------------------------------------------------------------ command lines

const SUBCOMMANDS = ["compile", "train", "sample", "plan", "forward", "eval", "ablate", "train-judge", "bogus", ""];
const FLAGS = ["--steps", "--batch-size", "--lr", "--seed", "--backend", "--engine", "--out", "--resume", "--sample-every", "--checkpoint-every", "--samples", "--sample-steps", "--n", "--cfg", "--sampler", "--prompt", "--checkpoint", "--weights", "--inputs", "--set", "--variant", "--out-dir", "--json", "--check", "--per-digit", "--reference", "--sweep", "--variants", "--text-encoders", "--context-tokens", "--epochs", "--shift", "--min-accuracy", "--nope", "-q", "--help"];
const VALUES = ["0", "1", "-1", "1e3", "99999999999999999999", "NaN", "Infinity", "-0", "0x10", "", " ", "abc", "1.5", "1e-400", "100000", "cpu", "wasm", "euler", "heun", "tfjs", "static", "auto", "/dev/full", "/nonexistent/x", "heads=", "=3", "constructor=1", "__proto__.x=1", "train.toString=2", "depth=2,4", "a".repeat(5000), "x*/y", "\n", "clip_l=/x", "1,2,,3", "--steps"];

async function cliCase(r: R, c: FuzzCounts, limitMs: number, fail: (what: string) => void, main: (argv: string[]) => Promise<number>, scratch: string): Promise<void> {
  const sub = pick(r, SUBCOMMANDS);
  const argv: string[] = sub ? [sub] : [];
  // a target that does not exist: every command refuses it quickly after checking its flags
  if (sub && sub !== "train-judge" && r() < 0.9) argv.push(join(scratch, `missing-${int(r, 0, 9)}`));
  // commands with defaults that exist (the judge) get missing folders instead
  if (sub === "train-judge" || sub === "eval") argv.push(sub === "eval" ? "--judge" : "--generated", join(scratch, "missing-judge"));
  for (let k = int(r, 0, 4); k > 0; k--) {
    argv.push(pick(r, FLAGS));
    if (r() < 0.85) argv.push(pick(r, VALUES));
  }
  // never the real output folders: anything a command writes goes to the scratch folder
  for (let i = 0; i < argv.length; i++) if (["--out", "--out-dir"].includes(argv[i]) && argv[i + 1] !== undefined && !argv[i + 1].startsWith("/dev/")) argv[i + 1] = join(scratch, "out");
  let err = "";
  const write = process.stderr.write.bind(process.stderr);
  const writeOut = process.stdout.write.bind(process.stdout);
  process.stderr.write = ((s: string | Uint8Array) => ((err += String(s)), true)) as typeof process.stderr.write;
  process.stdout.write = (() => true) as typeof process.stdout.write;
  const clock = startClock();
  let code: number;
  try {
    code = await main(argv);
  } catch (e) {
    code = -1;
    err += `threw ${(e as Error).name}: ${(e as Error).message}`;
  } finally {
    process.stderr.write = write;
    process.stdout.write = writeOut;
  }
  tooSlow(c, limitMs, clock, fail, `sdc ${JSON.stringify(argv).slice(0, 200)}`);
  if (![0, 1, 2].includes(code) || /internal error|\n\s+at \S/.test(err)) {
    c.crashes++;
    return fail(`sdc ${JSON.stringify(argv).slice(0, 300)} exited ${code}: ${err.slice(0, 300)}`);
  }
  if (code === 0) c.accepted.cli++;
  else c.refused.cli++;
  // a refusal says what: one `error:` line (commander adds a usage hint after its own)
  if (code !== 0 && !/^error: \S/m.test(err) && !/^\S.*error/im.test(err)) {
    c.unpositioned++;
    fail(`sdc ${JSON.stringify(argv).slice(0, 200)} exited ${code} without saying why: ${JSON.stringify(err.slice(0, 200))}`);
  }
}

// ------------------------------------------------------------------ safetensors

function safetensorsCase(r: R, c: FuzzCounts, limitMs: number, fail: (what: string) => void): void {
  const n = int(r, 0, 3);
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (let i = 0; i < n; i++) {
    const shape = Array.from({ length: int(r, 0, 3) }, () => int(r, 0, 4));
    tensors.set(pick(r, ["w", "b", "__proto__", "constructor", `t${i}`, "a.b", ""]) + i, { shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)).map(() => r()) });
  }
  let bytes = writeSafetensors(tensors, r() < 0.5 ? { format: "pt" } : undefined);
  const hlen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + hlen))) as Record<string, { dtype: unknown; shape: unknown; data_offsets: unknown }>;
  const names = Object.keys(header).filter((k) => k !== "__metadata__");
  const junk = [-1, 0, 1, 2.5, 1e20, NaN, null, "3", [], {}, [1, 2, 3], 2 ** 53, -0, Number.MAX_SAFE_INTEGER];
  let mustFail: string | null = null;
  switch (int(r, 0, 7)) {
    case 0:
      if (names.length) (header[pick(r, names)] as Record<string, unknown>)[pick(r, ["dtype", "shape", "data_offsets"])] = pick(r, junk);
      break;
    case 1:
      if (names.length) header[pick(r, names)].dtype = pick(r, ["F16", "BF16", "I64", "I8", "U8", "BOOL", "F64", "toString", "constructor", "X9", ""]);
      break;
    case 2:
      if (names.length) header[pick(r, names)].shape = Array.from({ length: int(r, 0, 4) }, () => pick(r, [0, 1, 2, 1e9, -1, 1.5]));
      break;
    case 3:
      if (names.length) header[pick(r, names)].data_offsets = [int(r, -5, 200), int(r, -5, 200)];
      break;
    case 4:
      (header as Record<string, unknown>).__metadata__ = pick(r, junk);
      break;
    case 5:
      (header as Record<string, unknown>)[pick(r, ["__proto__", "constructor", "x"])] = pick(r, junk);
      break;
    default:
      break;
  }
  const text = new TextEncoder().encode(JSON.stringify(header));
  const body = bytes.subarray(8 + hlen);
  bytes = new Uint8Array(8 + text.length + body.length);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(text.length), true);
  bytes.set(text, 8);
  bytes.set(body, 8 + text.length);
  // byte-level damage: truncation, a flipped byte, a lying header length
  const dmg = int(r, 0, 5);
  if (dmg === 0 && bytes.length > 1) {
    bytes = bytes.subarray(0, int(r, 0, bytes.length - 1));
    if (bytes.length < 8 + text.length) mustFail = "a truncated header";
  } else if (dmg === 1 && bytes.length) bytes[int(r, 0, bytes.length - 1)] ^= 1 << int(r, 0, 7);
  else if (dmg === 2) new DataView(bytes.buffer, bytes.byteOffset).setBigUint64(0, BigInt(pick(r, [0, 1, 7, 2 ** 40, bytes.length, text.length + 1])), true);
  const clock = startClock();
  let file;
  try {
    file = readSafetensors(bytes, "fuzz.safetensors");
  } catch (e) {
    if ((e as Error).name !== "SafetensorsError") {
      c.crashes++;
      fail(`readSafetensors threw ${(e as Error).name}: ${(e as Error).message.slice(0, 200)}`);
    } else c.refused.safetensors++;
    return;
  } finally {
    tooSlow(c, limitMs, clock, fail, "readSafetensors");
  }
  c.accepted.safetensors++;
  if (mustFail) {
    c.wrongAcceptances++;
    fail(`readSafetensors accepted ${mustFail}`);
  }
  for (const [name, t] of file.tensors) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0) || t.data.length !== count) {
      c.wrongAcceptances++;
      fail(`accepted tensor '${name}' with shape [${t.shape}] and ${t.data.length} values`);
    }
  }
}

// ------------------------------------------------------------------ checkpoints

const irText = '{"sdc": 1}\n';
function goodContents(): CheckpointContents {
  return {
    network: new Map([["w", { shape: [2, 2], data: Float32Array.from([1, 2, 3, 4]) }]]),
    text: new Map([["text_encoder.e", { shape: [3], data: Float32Array.from([1, 2, 3]) }]]),
    ema: new Map([["w", { shape: [2, 2], data: Float32Array.from([1, 2, 3, 4]) }]]),
    optimizer: new Map([["exp_avg.w", { shape: [2, 2], data: new Float32Array(4) }], ["exp_avg_sq.w", { shape: [2, 2], data: new Float32Array(4) }]]),
    state: {
      format: "sdc-checkpoint", version: 1, spec: "tiny", irHash: createHash("sha256").update(irText).digest("hex"), step: 3, seed: 0, rng: [1, 2, 3, 4, 0, 0],
      sampler: { version: 1, dataset: "mnist-train", datasetSize: 60000, batchSize: 4, epoch: 0, cursor: 12, epochRng: [5, 6, 7, 8, 0, 0], itemRng: [9, 10, 11, 12, 1, 0.5] },
      words: ["<pad>", "<unk>", "seven"], optimizerSteps: 3, emaUpdates: 3, lastLoss: 0.5, elapsedSeconds: 1.5,
    },
    irText,
  };
}

/** An independent check (no ajv) of what a state may hold, for the oracle. */
function validState(s: Record<string, unknown>): boolean {
  const count = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
  const gen = (v: unknown) => Array.isArray(v) && (v.length === 5 || v.length === 6) && v.slice(0, 4).every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffffffff) && v.slice(0, 4).some((w) => w !== 0) && (v[4] === 0 || v[4] === 1) && (v.length === 5 || typeof v[5] === "number");
  const sp = s.sampler as Record<string, unknown> | null;
  const samplerOk = sp === null || (typeof sp === "object" && !Array.isArray(sp) && sp.version === 1 && typeof sp.dataset === "string" && count(sp.datasetSize) && Number.isInteger(sp.batchSize) && (sp.batchSize as number) >= 1 && count(sp.epoch) && count(sp.cursor) && (sp.cursor as number) <= (sp.datasetSize as number) && gen(sp.epochRng) && gen(sp.itemRng));
  return s.format === "sdc-checkpoint" && s.version === 1 && typeof s.spec === "string" && typeof s.irHash === "string" && /^[0-9a-f]{64}$/.test(s.irHash) && count(s.step) && count(s.seed) && gen(s.rng) && samplerOk && Array.isArray(s.words) && s.words.every((w) => typeof w === "string") && count(s.optimizerSteps) && count(s.emaUpdates) && (s.emaUpdates as number) <= (s.optimizerSteps as number) && (s.lastLoss === null || typeof s.lastLoss === "number") && typeof s.elapsedSeconds === "number" && s.elapsedSeconds >= 0;
}

function checkpointCase(r: R, c: FuzzCounts, limitMs: number, fail: (what: string) => void, good: string, scratch: string): void {
  const dir = join(scratch, "ck");
  rmSync(dir, { recursive: true, force: true });
  cpSync(good, dir, { recursive: true });
  const files = readdirSync(dir);
  const junk = [-5, 2.5, "abc", null, true, [], {}, [0, 0, 0, 0, 0, 0], 1e300, -1, 0, 2 ** 32, "0".repeat(64), "../x", { "../../etc/passwd": "0".repeat(64) }];
  const mode = int(r, 0, 5);
  let changedContent = false;
  let consistentEdit = false;
  let mustFail: string | null = null;
  if (mode === 0) {
    // a value of state.json replaced, its checksum recomputed or not
    const s = JSON.parse(readFileSync(join(dir, "state.json"), "utf8")) as Record<string, unknown>;
    const keys = Object.keys(s);
    const key = pick(r, [...keys, "sampler.cursor", "sampler.epochRng", "sampler.batchSize", "files.model.safetensors", "files.x"]);
    const v = pick(r, junk);
    const [a, b] = key.split(/\.(.*)/s);
    if (b !== undefined && s[a] && typeof s[a] === "object") (s[a] as Record<string, unknown>)[b] = v;
    else s[key] = v;
    if (r() < 0.5) {
      delete s.checksum;
      if (r() < 0.5) s.checksum = createHash("sha256").update(JSON.stringify(s, null, 2) + "\n").digest("hex");
      consistentEdit = true;
    }
    writeFileSync(join(dir, "state.json"), JSON.stringify(s, null, 2) + "\n");
    changedContent = true;
  } else if (mode === 1) {
    // a flipped byte in any file
    const f = join(dir, pick(r, files));
    const b = readFileSync(f);
    if (b.length) {
      b[int(r, 0, b.length - 1)] ^= 1 << int(r, 0, 7);
      writeFileSync(f, b);
      changedContent = true;
    }
  } else if (mode === 2) {
    // a truncated or removed file
    const f = join(dir, pick(r, files));
    if (r() < 0.5) rmSync(f);
    else writeFileSync(f, readFileSync(f).subarray(0, int(r, 0, 40)));
    changedContent = true;
  } else if (mode === 3) {
    // a file replaced by what is not a regular file of the folder (a link out: to the good copy, same bytes)
    const name = pick(r, files);
    const how = replaceEntry(r, join(dir, name), join(good, name), scratch);
    mustFail = `${name} ${how}`;
  } else if (mode === 4) {
    // a safetensors file padded or cut, with its checksum and state.json's recomputed: only the header can tell
    const name = pick(r, files.filter((f) => f.endsWith(".safetensors")));
    const b = readFileSync(join(dir, name));
    const cut = r() < 0.5 && b.length > 1;
    const nb = cut ? b.subarray(0, int(r, 0, b.length - 1)) : Buffer.concat([b, Buffer.alloc(int(r, 1, 100_000), int(r, 0, 255))]);
    writeFileSync(join(dir, name), nb);
    const s = JSON.parse(readFileSync(join(dir, "state.json"), "utf8")) as Record<string, unknown> & { files: Record<string, string> };
    delete s.checksum;
    s.files[name] = createHash("sha256").update(nb).digest("hex");
    writeFileSync(join(dir, "state.json"), JSON.stringify({ ...s, checksum: createHash("sha256").update(JSON.stringify(s, null, 2) + "\n").digest("hex") }, null, 2) + "\n");
    mustFail = `${name} ${cut ? "cut" : "padded"} to ${nb.length} bytes`;
  }
  const clock = startClock();
  let ck;
  try {
    ck = readCheckpoint(dir);
  } catch (e) {
    if (!["CheckpointError", "SafetensorsError"].includes((e as Error).name)) {
      c.crashes++;
      fail(`readCheckpoint threw ${(e as Error).name}: ${(e as Error).message.slice(0, 200)}`);
    } else c.refused.checkpoint++;
    return;
  } finally {
    tooSlow(c, limitMs, clock, fail, "readCheckpoint");
  }
  c.accepted.checkpoint++;
  if (mustFail) {
    c.wrongAcceptances++;
    return fail(`readCheckpoint accepted ${mustFail}`);
  }
  // accepted: it must be what was written (a change that leaves the content equal is fine), or a
  // consistent edit of state.json (its checksum recomputed or dropped) to values that are valid
  const want = goodContents();
  const sameFiles = [...ck.network].every(([k, t]) => t.data.every((x, i) => x === want.network.get(k)!.data[i])) && ck.irText === irText;
  const same = JSON.stringify(ck.state) === JSON.stringify(want.state) && sameFiles;
  if (!same && !(consistentEdit && sameFiles && validState(ck.state as unknown as Record<string, unknown>))) {
    c.wrongAcceptances++;
    fail(`readCheckpoint accepted a changed checkpoint (mode ${mode}, changed ${changedContent}): state ${JSON.stringify(ck.state).slice(0, 200)}`);
  }
}

/** Replace `path` by a device link, a FIFO, a folder, a dangling link or a link out of its folder (to `outside`); says which. */
function replaceEntry(r: R, path: string, outside: string, scratch: string): string {
  rmSync(path, { recursive: true, force: true });
  switch (int(r, 0, 4)) {
    case 0:
      symlinkSync(pick(r, ["/dev/zero", "/dev/urandom", "/dev/null"]), path);
      return "a link to a device";
    case 1:
      execFileSync("mkfifo", [path]);
      return "a FIFO";
    case 2:
      mkdirSync(path);
      return "a folder";
    case 3:
      symlinkSync(join(scratch, "nothing-here"), path);
      return "a dangling link";
    default:
      symlinkSync(outside, path);
      return "a link out of the folder";
  }
}

// ------------------------------------------------------------------ run folders

const GEN = "generated/sd3-tiny";
const int32 = (v: unknown, min: number, max = Number.MAX_SAFE_INTEGER) => Number.isInteger(v) && (v as number) >= min && (v as number) <= max;
/**
 * The oracle of config.json edits, written apart from its schema: which values each field may
 * hold in this run (batch 4, accumulate 1, lr and seed tied to other fields). Fields not listed
 * (and unknown keys) accept nothing but their own value.
 */
const RULES: Record<string, (v: unknown) => boolean> = {
  "settings.steps": (v) => int32(v, 1, 1e9),
  "settings.batch": (v) => int32(v, 1, 65536),
  "settings.sampleEvery": (v) => int32(v, 0),
  "settings.checkpointEvery": (v) => int32(v, 0),
  "settings.samples": (v) => int32(v, 1, 1024),
  "settings.sampleSteps": (v) => int32(v, 1, 100000),
  "settings.warmup": (v) => int32(v, 0),
  "settings.keepCheckpoints": (v) => int32(v, 0),
  "settings.accumulate": (v) => v === 1 || v === 2 || v === 4,
  "settings.lrSchedule": (v) => v === "constant" || v === "linear" || v === "cosine",
  "settings.keepBest": (v) => typeof v === "boolean",
  "settings.precision": (v) => v === "fp32" || v === "bf16",
  "recipe.ema": (v) => typeof v === "number" && v >= 0 && v < 1,
  "recipe.clip": (v) => typeof v === "number" && v >= 0,
  "recipe.logEvery": (v) => Number.isInteger(v) && (v as number) >= 1,
  "recipe.optimizer.beta1": (v) => typeof v === "number" && v >= 0 && v < 1,
  "recipe.optimizer.kind": (v) => v === "adam" || v === "adamw",
  "backend": (v) => v === "tensorflow" || v === "webgpu" || v === "wasm" || v === "cpu",
  "engine": (v) => v === "tfjs" || v === "static",
  "created": (v) => typeof v === "string" && v.length <= 4096,
  "package": (v) => typeof v === "string" && v.length <= 4096,
  "versions.node": (v) => typeof v === "string" && v.length <= 4096,
  "command": (v) => Array.isArray(v) && v.length >= 1 && v.length <= 1000 && v.every((a) => typeof a === "string" && a.length <= 4096),
};
const CONFIG_PATHS = [...Object.keys(RULES), "settings.lr", "settings.seed", "seed", "version", "format", "irHash", "spec", "recipe.optimizer.lr", "command", "history", "versions.node", "settings.extra", "extra", "recipe.extra", "settings.__proto__", "__proto__", "checksum", "settings", "recipe"];
const CONFIG_JUNK: unknown[] = [-5, -1, 0, 1, 2, 3, 4, 2.5, 0.5, 1.5, 1e9, 1e300, 100001, 65537, "4", "fp32", "fp16", "bf16", "cosine", "bogus", "cpu", "static", "adamw", null, true, false, [], {}, ["sdc"], "x".repeat(5000), "0".repeat(64)];

/** Set `path` (dots) in `o` to `v` (an own `__proto__` key as JSON.parse makes it); false when a parent is not an object. */
function setPath(o: Record<string, unknown>, path: string, v: unknown): boolean {
  const parts = path.split(".");
  let at: unknown = o;
  for (const p of parts.slice(0, -1)) {
    at = (at as Record<string, unknown>)[p];
    if (at === null || typeof at !== "object" || Array.isArray(at)) return false;
  }
  Object.defineProperty(at, parts.at(-1)!, { value: v, enumerable: true, configurable: true, writable: true });
  return true;
}
function getPath(o: unknown, path: string): unknown {
  let at = o;
  for (const p of path.split(".")) at = at !== null && typeof at === "object" && Object.hasOwn(at, p) ? (at as Record<string, unknown>)[p] : undefined;
  return at;
}

/** Train the run the runfolder cases resume: 2 steps of the tiny spec, in `dir`. */
async function trainRun(main: (argv: string[]) => Promise<number>, dir: string): Promise<void> {
  const { code, err } = await quietly(() => main(["train", GEN, "--steps", "2", "--batch-size", "4", "--checkpoint-every", "2", "--sample-every", "0", "--samples", "4", "--sample-steps", "2", "--backend", "cpu", "--no-progress", "--out", dir]));
  if (code !== 0) throw new Error(`the run folder for the fuzz did not train (exit ${code}): ${err.slice(-500)}`);
}

async function quietly(f: () => Promise<number>): Promise<{ code: number; err: string }> {
  let err = "";
  const write = process.stderr.write.bind(process.stderr);
  const writeOut = process.stdout.write.bind(process.stdout);
  process.stderr.write = ((s: string | Uint8Array) => ((err += String(s)), true)) as typeof process.stderr.write;
  process.stdout.write = (() => true) as typeof process.stdout.write;
  try {
    return { code: await f(), err };
  } catch (e) {
    return { code: -1, err: err + `threw ${(e as Error).name}: ${(e as Error).message}` };
  } finally {
    process.stderr.write = write;
    process.stdout.write = writeOut;
  }
}

async function runFolderCase(r: R, c: FuzzCounts, limitMs: number, fail: (what: string) => void, main: (argv: string[]) => Promise<number>, goodRun: string, scratch: string): Promise<void> {
  const run = join(scratch, "run");
  const cfg = join(run, "config.json");
  // the working copy: config.json (and a replaced checkpoint file) restored from the good run
  rmSync(cfg, { recursive: true, force: true });
  cpSync(join(goodRun, "config.json"), cfg);
  const text = readFileSync(cfg, "utf8");
  const orig = JSON.parse(text) as Record<string, unknown>;
  const mode = int(r, 0, 6);
  let what = "unchanged";
  let mayAccept = true;
  if (mode <= 2) {
    // a field set to a value; its checksum kept (mode 0), recomputed (1) or dropped (2, an older sdc's config)
    const o = JSON.parse(text) as Record<string, unknown>;
    const path = pick(r, CONFIG_PATHS);
    const v = pick(r, CONFIG_JUNK);
    const before = getPath(orig, path);
    if (!setPath(o, path, v)) return runFolderCase(r, c, limitMs, fail, main, goodRun, scratch);
    const same = JSON.stringify(before) === JSON.stringify(v) && Object.hasOwn(getParent(orig, path), path.split(".").at(-1)!);
    delete o.checksum;
    const body = JSON.stringify(o, null, 2) + "\n";
    if (path === "checksum") writeFileSync(cfg, JSON.stringify({ ...o, checksum: v }, null, 2) + "\n");
    else if (mode === 0) writeFileSync(cfg, JSON.stringify({ ...o, checksum: orig.checksum }, null, 2) + "\n");
    else if (mode === 1) writeFileSync(cfg, JSON.stringify({ ...o, checksum: createHash("sha256").update(body).digest("hex") }, null, 2) + "\n");
    else writeFileSync(cfg, body);
    what = `${path} = ${JSON.stringify(v)?.slice(0, 40)} (checksum ${["kept", "recomputed", "dropped"][mode]})`;
    mayAccept = same || (mode !== 0 && path !== "checksum" && (Object.hasOwn(RULES, path) && RULES[path](v)));
    if (path === "checksum") mayAccept = false;
  } else if (mode === 3) {
    const b = Buffer.from(text);
    const at = int(r, 0, b.length - 1);
    b[at] ^= 1 << int(r, 0, 7);
    writeFileSync(cfg, b);
    what = `byte ${at} flipped`;
    // a flip inside the checksum's own hex digits, or in white space JSON ignores, may leave it valid: only if it parses to the same
    mayAccept = sameJson(b.toString("utf8"), orig);
  } else if (mode === 4) {
    const cut = int(r, 0, text.length - 1);
    writeFileSync(cfg, text.slice(0, cut));
    what = `cut to ${cut} bytes`;
    // only the final newline cut leaves the same JSON
    mayAccept = sameJson(text.slice(0, cut), orig);
  } else if (mode === 5) {
    const pad = pick(r, [1 << 10, 1 << 20, 50 << 20]);
    const padded = text.replace(/\n}\n$/, "\n" + " ".repeat(pad) + "}\n");
    writeFileSync(cfg, padded);
    what = `${pad} bytes of padding`;
    // white space is not content (the checksum covers the parsed value): only the size limit refuses it
    mayAccept = Buffer.byteLength(padded) <= 1 << 20;
  } else {
    what = `config.json ${replaceEntry(r, cfg, join(goodRun, "config.json"), scratch)}`;
    mayAccept = false;
  }
  const clock = startClock();
  const { code, err } = await quietly(() => main(["train", GEN, "--resume", run, "--steps", "2", "--backend", "cpu", "--no-progress"]));
  tooSlow(c, limitMs, clock, fail, `resume with ${what}`);
  if (![0, 1, 2].includes(code) || /internal error|\n\s+at \S/.test(err)) {
    c.crashes++;
    return fail(`resume with ${what} exited ${code}: ${err.slice(0, 300)}`);
  }
  if (!/^error: \S/.test(err.trim().split("\n").at(-1) ?? "")) {
    c.unpositioned++;
    fail(`resume with ${what} exited ${code} without an error line: ${JSON.stringify(err.slice(0, 300))}`);
  }
  const accepted = code === 1 && /is already at step 2; ask for more --steps/.test(err);
  if (!accepted) {
    c.refused.runfolder++;
    if (!/config\.json/.test(err)) fail(`resume with ${what} was refused without naming config.json: ${err.slice(0, 200)}`), c.unpositioned++;
    return;
  }
  c.accepted.runfolder++;
  if (!mayAccept) {
    c.wrongAcceptances++;
    fail(`resume accepted config.json with ${what}`);
  }
}

function getParent(o: unknown, path: string): object {
  const parts = path.split(".");
  const p = parts.length > 1 ? getPath(o, parts.slice(0, -1).join(".")) : o;
  return p !== null && typeof p === "object" ? p : {};
}

/** Does `text` parse to the same value as `o` (key order included)? */
function sameJson(text: string, o: unknown): boolean {
  try {
    return JSON.stringify(JSON.parse(text)) === JSON.stringify(o);
  } catch {
    return false;
  }
}

// ------------------------------------------------------------------ the run

export interface FuzzOptions {
  seed: number;
  /** cases per kind */
  cases: Partial<Record<Kind, number>>;
  /** a case that uses more CPU milliseconds than this counts as a hang */
  limitMs?: number;
  /** progress lines */
  log?: (s: string) => void;
  /** the first case index of each kind (to rerun from a failing case) */
  from?: number;
  /** a line before each case (to find one that never ends) */
  trace?: (s: string) => void;
}

export async function runFuzz(o: FuzzOptions): Promise<FuzzCounts> {
  const zero = () => ({ spec: 0, cli: 0, safetensors: 0, checkpoint: 0, runfolder: 0 });
  const c: FuzzCounts = { cases: zero(), accepted: zero(), refused: zero(), crashes: 0, hangs: 0, unpositioned: 0, wrongAcceptances: 0, failures: [], seconds: 0, cpuSeconds: 0 };
  const t0 = performance.now();
  const cpu0 = cpuMs();
  const limitMs = o.limitMs ?? 5000;
  const scratch = mkdtempSync(join(tmpdir(), "sdc-fuzz-"));
  const good = join(scratch, "good");
  saveCheckpoint(good, goodContents());
  const { main } = await import("../../cli/main.ts");
  const goodRun = join(scratch, "good-run");
  if (o.cases.runfolder) {
    await trainRun(main, goodRun);
    cpSync(goodRun, join(scratch, "run"), { recursive: true });
  }
  try {
    for (const kind of KINDS) {
      const n = o.cases[kind] ?? 0;
      for (let i = o.from ?? 0; i < n; i++) {
        const caseSeed = (o.seed * 1_000_003 + KINDS.indexOf(kind) * 7_919_111 + i) >>> 0;
        const r = rng(caseSeed);
        const fail = (what: string) => {
          if (c.failures.length >= 20) return;
          c.failures.push(`${kind} case ${i} (seed ${caseSeed}): ${what}`);
          o.log?.(`failure: ${c.failures.at(-1)}`);
        };
        c.cases[kind]++;
        if (o.trace) o.trace(`${kind} case ${i} (seed ${caseSeed})`);
        if (kind === "spec") specCase(r, c, limitMs, fail);
        else if (kind === "cli") await cliCase(r, c, limitMs, fail, main, scratch);
        else if (kind === "safetensors") safetensorsCase(r, c, limitMs, fail);
        else if (kind === "checkpoint") checkpointCase(r, c, limitMs, fail, good, scratch);
        else await runFolderCase(r, c, limitMs, fail, main, goodRun, scratch);
        if (o.log && (i + 1) % 1000 === 0) o.log(`${kind}: ${i + 1}/${n} cases, ${c.crashes} crashes, ${c.hangs} hangs, ${c.unpositioned} unpositioned, ${c.wrongAcceptances} wrong acceptances (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
      }
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  c.seconds = (performance.now() - t0) / 1000;
  c.cpuSeconds = (cpuMs() - cpu0) / 1000;
  return c;
}
