/**
 * The decoder fuzz of the native addon (issue 24): malformed programs, built and run in child
 * processes (test/graph/scripts/native-fuzz-child.ts) so that a crash is counted, not suffered.
 * Cases come from real lowered programs (lowerGraph on small graphs that reach every kernel, and
 * ProgramWriter.adam), one word mutated or the program cut short, arenas detached, resizable,
 * shared or shrunk, and random words. Each case has its own generator (seed, case index), so a
 * failure is replayed alone. A case the decoder must refuse (a NaN or a fraction in an integer
 * field, a negative size, an arena or offset past the end, an unknown instruction, a detached
 * arena...) that builds and runs is a wrong acceptance; one case in 8 fills its arenas with NaN
 * and infinities among finite values; a child killed by a signal is a crash; a
 * child that makes no progress for `hangMs` is a hang.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Graph, type Sym } from "../../runtime/graph/graph.ts";
import { lowerGraph, paramArena } from "../../runtime/executors/native/native.ts";
import { Code, ProgramWriter } from "../../runtime/executors/native/lower.ts";
import { Rng } from "../../runtime/util/rng.ts";
import { onLines } from "../fuzz/lines.ts";
import { normalParams } from "./random-params.ts";

/** A real lowered program and the byte lengths of its arenas. */
export interface Base {
  name: string;
  words: number[];
  arenaBytes: number[];
}

const attn = (B: number, H: number, N: number, D: number) => ({ batch: [B, H] as [number, number], m: N, n: N, k: D, alpha: 1 / Math.sqrt(D), a: [N * H * D, D, H * D, 1] as [number, number, number, number], b: [N * H * D, D, 1, H * D] as [number, number, number, number], c: [H * N * N, N * N, N, 1] as [number, number, number, number] });

/** softmax(q k^T / sqrt(d)) v over 3 heads of 4 and the GEMMs and softmax gradient of its backward pass, in bf16: a chain each (chains.ts). */
function attentionAndGradient(g: Graph, q: Sym, k: Sym, v: Sym, dO: Sym): Sym {
  const [B, H, N, D] = [2, 3, 5, 4];
  const rows: [number, number, number, number] = [N * H * D, D, H * D, 1]; // a head of [B, N, H * D]
  const pv = { batch: [B, H] as [number, number], m: N, n: D, k: N, alpha: 1, a: [H * N * N, N * N, N, 1] as [number, number, number, number], b: rows, c: rows, precision: "bf16" as const };
  const p = g.softmax(g.gemm(q, k, [B, H, N, N], { ...attn(B, H, N, D), precision: "bf16" }));
  const o = g.gemm(p, v, [B, N, H * D], pv);
  const dP = g.gemm(dO, v, [B, H, N, N], { ...attn(B, H, N, D), alpha: 1, precision: "bf16" });
  const dS = g.add(dP.shape, { kind: "softmax_grad", y: p.id, dy: dP.id });
  return g.ew("add", [o, g.gemm(dS, k, [B, N, H * D], { ...pv, alpha: 1 / Math.sqrt(D) })]);
}

/** Graphs reaching every instruction: GEMM layouts, norms and their gradients, sums, copies, convolution windows, elementwise codes. */
const GRAPHS: [string, (g: Graph, p: Sym[]) => Sym, number[][]][] = [
  ["linear x W^T + b", (g, [x, w, b]) => g.linear(x, w, b), [[7, 20], [45, 20], [45]]],
  ["gemm x W", (g, [a, b]) => g.gemm(a, b, [13, 40], { batch: [1, 1], m: 13, n: 40, k: 9, alpha: 1, a: [0, 0, 9, 1], b: [0, 0, 40, 1], c: [0, 0, 40, 1] }), [[13, 9], [9, 40]]],
  ["gemm x W^T in bf16", (g, [a, b]) => g.gemm(a, b, [13, 40], { batch: [1, 1], m: 13, n: 40, k: 9, alpha: 1, a: [0, 0, 9, 1], b: [0, 0, 1, 9], c: [0, 0, 40, 1], precision: "bf16" }), [[13, 9], [40, 9]]],
  ["gemm dy^T x", (g, [a, b]) => g.gemm(a, b, [6, 10], { batch: [1, 1], m: 6, n: 10, k: 5, alpha: 1, a: [0, 0, 1, 6], b: [0, 0, 10, 1], c: [0, 0, 10, 1] }), [[5, 6], [5, 10]]],
  ["batched attention scores (a chain)", (g, [q, k]) => g.softmax(g.gemm(q, k, [2, 3, 5, 5], attn(2, 3, 5, 4))), [[2, 5, 12], [2, 5, 12]]],
  ["attention in bf16, its gradient (chains)", (g, [q, k, v, dO]) => attentionAndGradient(g, q, k, v, dO), [[2, 5, 12], [2, 5, 12], [2, 5, 12], [2, 5, 12]]],
  ["softmax", (g, [x]) => g.softmax(x), [[4, 9]]],
  ["layer_norm", (g, [x]) => g.layerNorm(x, 1e-6), [[7, 33]]],
  ["layer_norm_grad", (g, [x, dy]) => g.add(x.shape, { kind: "layer_norm_grad", x: x.id, dy: dy.id, eps: 1e-5 }), [[5, 19], [5, 19]]],
  ["softmax_grad", (g, [y, dy]) => g.add(y.shape, { kind: "softmax_grad", y: y.id, dy: dy.id }), [[4, 9], [4, 9]]],
  ["sum_to", (g, [x]) => g.ew("add", [g.sumTo(x, [3, 1, 17], 0.5), 1]), [[3, 11, 17]]],
  ["slice, pad, permute, concat", (g, [x]) => g.concat([g.permute(g.pad(g.slice(x, 1, 2, 3), 1, 1, 6), [0, 2, 1]), g.permute(x, [0, 2, 1])], 2), [[2, 7, 5]]],
  ["im2col and col2im", (g, [x]) => g.col2im(g.ew("mul", [g.im2col(x, { k: 3, stride: 2, pad: 1 }), 0.5]), 7, 5, { k: 3, stride: 2, pad: 1 }), [[2, 7, 5, 3]]],
  ["broadcast ew", (g, [x, m]) => g.ew("add", [g.ew("mul", [x, g.ew("tanh", [g.reshape(g.slice(m, 1, 8, 8), [2, 1, 8])])]), g.reshape(g.slice(m, 1, 0, 8), [2, 1, 8])]), [[2, 30, 8], [2, 24]]],
];

/** The base programs: each graph lowered, and one Adam update over a flat arena (with and without EMA). */
export function bases(): Base[] {
  const out: Base[] = [];
  for (const [name, build, shapes] of GRAPHS) {
    const g = new Graph();
    const { ins, params } = normalParams(g, shapes, new Rng(7));
    const y = build(g, ins);
    const l = lowerGraph({ graph: g, v: y, batch: 1 }, paramArena(params));
    out.push({ name, words: Array.from(l.program), arenaBytes: l.arenas.map((a) => a.byteLength) });
  }
  for (const ema of [true, false]) {
    const P = 48;
    const w = new ProgramWriter();
    const at = (k: number) => ({ arena: 0, offset: k * P });
    w.adam({ g: at(1), p: at(0), m: at(2), v: at(3), ema: ema ? at(4) : null, hyper: at(5), stats: { arena: 0, offset: 5 * P + 16 }, n: P, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, clip: 1, decoupled: ema });
    out.push({ name: `adam${ema ? " + ema" : ""}`, words: Array.from(w.finish()), arenaBytes: [(6 * P + 32) * 4] });
  }
  return out;
}

/** "float": a parameter (alpha, eps, Adam's: finite); "value": a constant or a fill value (NaN and infinities allowed) */
export type Tag = "op" | "arena" | "offset" | "int" | "float" | "value";

/** What each word of a program is (mirrors decode() in runtime/executors/native/src/addon.cc); `nullable` marks pointers that may be -1. */
export function fieldMap(w: readonly number[]): { tags: Tag[]; nullable: boolean[]; starts: number[] } {
  const tags: Tag[] = [];
  const nullable: boolean[] = [];
  const starts: number[] = [];
  let i = 0;
  const put = (t: Tag, n = 1, nul = false) => {
    for (let j = 0; j < n; j++) {
      tags.push(t);
      nullable.push(nul);
    }
    i += n;
  };
  const ptr = (nul = false) => {
    put("arena", 1, nul);
    put("offset", 1, nul);
  };
  // one instruction; a chain's steps are instructions inside it (not starts: a program cut there is malformed)
  const instr = (top: boolean) => {
    if (top) starts.push(i);
    const op = w[i];
    put("op");
    switch (op) {
      case Code.Ew: {
        ptr();
        const nd = w[i];
        put("int");
        put("int", nd);
        const nin = w[i];
        put("int");
        for (let j = 0; j < nin; j++) {
          ptr();
          put("int", nd);
        }
        const nc = w[i];
        put("int");
        for (let j = 0; j < nc; j++) {
          put("int", 2);
          put("value");
        }
        break;
      }
      case Code.Gemm:
      case Code.GemmBf16:
        ptr();
        ptr();
        ptr();
        ptr(true);
        put("int", 5);
        put("float");
        put("int", 12);
        break;
      case Code.SumTo: {
        ptr();
        ptr();
        const nd = w[i];
        put("int");
        put("int", 2 * nd + 1);
        put("float");
        break;
      }
      case Code.Ln:
      case Code.LnGrad:
      case Code.Softmax:
      case Code.SoftmaxGrad:
        ptr();
        ptr();
        if (op === Code.LnGrad || op === Code.SoftmaxGrad) ptr();
        put("int", 2);
        if (op === Code.Ln || op === Code.LnGrad) put("float");
        break;
      case Code.Copy: {
        ptr();
        ptr();
        const nd = w[i];
        put("int");
        put("int", 3 * nd);
        break;
      }
      case Code.Fill:
        ptr();
        put("int");
        put("value");
        break;
      case Code.Im2col:
      case Code.Col2im:
        ptr();
        ptr();
        put("int", 9);
        break;
      case Code.Adam:
        for (let j = 0; j < 7; j++) ptr(j === 4);
        put("int");
        put("float", 5);
        put("int");
        break;
      case Code.Chain: {
        put("int");
        const n = w[i];
        put("int");
        const nl = w[i];
        put("int");
        for (let j = 0; j < nl; j++) {
          ptr();
          put("int");
        }
        for (let j = 0; j < n; j++) instr(false);
        break;
      }
      default:
        throw new Error(`fieldMap: unknown instruction ${op} at ${i - 1}`);
    }
  };
  while (i < w.length) instr(true);
  return { tags, nullable, starts };
}

export type Kind = "mutate" | "truncate" | "random" | "detach" | "resizable" | "shared" | "shrink" | "async-detach";
export const KINDS: Kind[] = ["mutate", "truncate", "random", "detach", "resizable", "shared", "shrink", "async-detach"];

/** One case: the program, its arenas, what is done to them after build, and whether it must be refused. */
export interface Case {
  kind: Kind;
  base: string;
  words: number[];
  arenas: { bytes: number; resizable?: boolean; shared?: boolean }[];
  /** arena to detach after build (before the run), or -1 */
  detach: number;
  async: boolean;
  /** arenas filled with NaN and infinities among the values (the kernels' float paths) */
  nonFinite: boolean;
  mustRefuse: boolean;
  what: string;
}

/** A resizable ArrayBuffer (ES2024; not in this TypeScript lib). */
export const resizableBuffer = (bytes: number, max: number): ArrayBuffer => new (ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ArrayBuffer)(bytes, { maxByteLength: max });

const I53 = 2 ** 53;
const OPS = new Set<number>(Object.values(Code));
const isInt = (x: number) => Number.isInteger(x) && Math.abs(x) <= I53;

/** A value for one word: edge cases of integers and floats, and small moves of the original. */
function edgeValue(rng: Rng, x: number, arenaFloats: number): number {
  const pool = [0, 1, -1, 2, -2, 3, 16, 255, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 32 + 1, I53, I53 + 2, 2 ** 62, -(2 ** 62), 2 ** 63, -(2 ** 63), 1e300, -1e300, NaN, Infinity, -Infinity, 0.5, -0.5, x + 0.5, x + 1, x - 1, x * 2, x + 16, -x, arenaFloats, arenaFloats + 1, arenaFloats - 1, 3.5e38, 1e-45];
  return pool[rng.nextU32() % pool.length];
}

/** The case `index` of a run with `seed` (its own generator: replayable alone). */
export function makeCase(all: Base[], seed: number, index: number): Case {
  const rng = new Rng((Math.imul(seed, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0);
  const pick = <T>(xs: readonly T[]) => xs[rng.nextU32() % xs.length];
  const base = pick(all);
  const r = rng.nextU32() % 100;
  const kind: Kind = r < 55 ? "mutate" : r < 65 ? "truncate" : r < 77 ? "random" : r < 84 ? "detach" : r < 88 ? "resizable" : r < 91 ? "shared" : r < 97 ? "shrink" : "async-detach";
  const arenas: Case["arenas"] = base.arenaBytes.map((bytes) => ({ bytes }));
  const c: Case = { kind, base: base.name, words: [...base.words], arenas, detach: -1, async: false, nonFinite: rng.nextU32() % 8 === 0, mustRefuse: false, what: "" };
  const a = rng.nextU32() % arenas.length;
  switch (kind) {
    case "mutate": {
      const map = fieldMap(base.words);
      const at = rng.nextU32() % c.words.length;
      const old = c.words[at];
      const tag = map.tags[at];
      // the arena this word's pointer refers to (for offsets)
      const arenaIdx = tag === "offset" ? c.words[at - 1] : tag === "arena" ? old : 0;
      const floats = arenaIdx >= 0 && arenaIdx < arenas.length ? arenas[arenaIdx].bytes / 4 : 0;
      const v = edgeValue(rng, old, floats);
      c.words[at] = v;
      c.what = `word ${at} (${tag}) ${old} -> ${v}`;
      if (tag === "float") c.mustRefuse = !Number.isFinite(v) || Math.abs(v) > 3.4028234663852886e38;
      else if (tag === "value") c.mustRefuse = Number.isFinite(v) && Math.abs(v) > 3.4028234663852886e38;
      else if (!isInt(v)) c.mustRefuse = true;
      else if (tag === "op") c.mustRefuse = !OPS.has(v);
      else if (tag === "arena") c.mustRefuse = v < -1 || v >= arenas.length || (v === -1 && !map.nullable[at]);
      else if (tag === "offset") c.mustRefuse = c.words[at - 1] !== -1 && (v < 0 || v > floats);
      else c.mustRefuse = v < 0;
      if (v === old || Object.is(v, -0)) c.mustRefuse = false;
      break;
    }
    case "truncate": {
      const map = fieldMap(base.words);
      const cut = 1 + (rng.nextU32() % (c.words.length - 1));
      c.words = c.words.slice(0, cut);
      c.mustRefuse = !map.starts.includes(cut);
      c.what = `cut at ${cut} of ${base.words.length}`;
      break;
    }
    case "random": {
      const n = 1 + (rng.nextU32() % 40);
      const small = () => (rng.nextU32() % 12) - 1;
      c.words = Array.from({ length: n }, (_, i) => (i === 0 ? 1 + (rng.nextU32() % 10) : rng.nextU32() % 4 === 0 ? edgeValue(rng, 0, arenas[0].bytes / 4) : small()));
      c.what = `${n} random words`;
      break;
    }
    case "detach":
      c.detach = a;
      c.mustRefuse = arenas[a].bytes > 0;
      c.what = `arena ${a} detached after build`;
      break;
    case "resizable":
      arenas[a].resizable = true;
      c.mustRefuse = true;
      c.what = `arena ${a} resizable`;
      break;
    case "shared":
      arenas[a].shared = true;
      c.mustRefuse = true;
      c.what = `arena ${a} a SharedArrayBuffer`;
      break;
    case "shrink": {
      const bytes = 4 * (rng.nextU32() % Math.max(1, arenas[a].bytes / 4));
      c.what = `arena ${a} ${arenas[a].bytes} -> ${bytes} bytes`;
      arenas[a].bytes = bytes;
      break;
    }
    case "async-detach":
      c.detach = a;
      c.async = true;
      c.mustRefuse = arenas[a].bytes > 0;
      c.what = `arena ${a} detached after build, runAsync`;
      break;
  }
  return c;
}

export interface FuzzCounts {
  seed: number;
  cases: number;
  byKind: Record<Kind, number>;
  /** built and ran */
  ran: number;
  /** refused at build or at run with an Error */
  refused: number;
  /** refused cases the fuzz knew must be refused */
  mustRefuse: number;
  /** ran after the GEMM scratch was refused as too large */
  bigScratch: number;
  signals: number;
  hangs: number;
  wrongAcceptances: number;
  /** other child failures (a non-Error thrown, an exit without a signal) */
  errors: number;
  failures: string[];
  seconds: number;
}

const here = dirname(fileURLToPath(import.meta.url));
const CHILD = join(here, "scripts", "native-fuzz-child.ts");

/**
 * Run `cases` cases from `seed` in child processes of `perChild` cases, `parallel` at a time.
 * `selfTestSignal` makes the child kill itself with SIGSEGV at that case (the harness's own test).
 */
export async function runNativeFuzz(o: { seed: number; cases: number; perChild?: number; parallel?: number; hangMs?: number; selfTestSignal?: number; log?: (s: string) => void }): Promise<FuzzCounts> {
  const t0 = performance.now();
  const dir = mkdtempSync(join(tmpdir(), "sdc-native-fuzz-"));
  const basesFile = join(dir, "bases.json");
  writeFileSync(basesFile, JSON.stringify(bases()));
  const perChild = o.perChild ?? 1000;
  const hangMs = o.hangMs ?? 20_000;
  const c: FuzzCounts = { seed: o.seed, cases: 0, byKind: Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<Kind, number>, ran: 0, refused: 0, mustRefuse: 0, bigScratch: 0, signals: 0, hangs: 0, wrongAcceptances: 0, errors: 0, failures: [], seconds: 0 };
  const fail = (s: string) => {
    c.failures.push(s);
    o.log?.(s);
  };
  // one child over [from, to): restarted after the case that killed or hung it
  const runRange = (from: number, to: number): Promise<void> =>
    new Promise((resolve) => {
      const env = { ...process.env, SDC_FUZZ_SELFTEST: o.selfTestSignal === undefined ? "" : String(o.selfTestSignal) };
      const child = spawn(process.execPath, ["--import", "tsx", CHILD, basesFile, String(o.seed), String(from), String(to)], { env, stdio: ["ignore", "pipe", "pipe"] });
      let next = from; // the first case without a result
      let stderr = "";
      let hung = false;
      let timer = setTimeout(() => ((hung = true), child.kill("SIGKILL")), hangMs + 10_000); // + the child's start
      onLines(child.stdout, (line) => {
        const [idx, kind, outcome, must, ...rest] = line.split("\t");
        if (Number(idx) !== next) return;
        next++;
        c.cases++;
        c.byKind[kind as Kind]++;
        if (must === "1") c.mustRefuse++;
        if (outcome === "ran") c.ran++;
        else if (outcome === "refused") c.refused++;
        else if (outcome === "scratch") c.bigScratch++;
        else if (outcome === "wrong") {
          c.wrongAcceptances++;
          fail(`wrong acceptance: case ${idx} (seed ${o.seed}): ${rest.join(" ")}`);
        } else {
          c.errors++;
          fail(`error: case ${idx} (seed ${o.seed}): ${rest.join(" ")}`);
        }
        clearTimeout(timer);
        timer = setTimeout(() => ((hung = true), child.kill("SIGKILL")), hangMs);
      });
      child.stderr.setEncoding("utf8");
      child.stderr.on("data", (d: string) => (stderr = (stderr + d).slice(-65536)));
      child.on("close", (code, signal) => {
        clearTimeout(timer);
        // a sanitizer's report names itself on one line; otherwise the last lines
        const lines = stderr.trim().split("\n");
        const report = lines.find((l) => /ERROR: \w+Sanitizer|runtime error:/.test(l));
        const tail = report?.trim() ?? lines.slice(-3).join(" | ");
        if (next >= to && !hung && code === 0) return resolve();
        if (hung) {
          c.hangs++;
          fail(`hang: case ${next} (seed ${o.seed}) made no progress in ${hangMs} ms`);
        } else if (signal) {
          c.signals++;
          fail(`signal ${signal}: case ${next} (seed ${o.seed}) killed the child${tail ? `: ${tail}` : ""}`);
        } else {
          c.errors++;
          fail(`child exit ${code} at case ${next} (seed ${o.seed})${tail ? `: ${tail}` : ""}`);
        }
        c.cases++;
        if (next + 1 < to) runRange(next + 1, to).then(resolve);
        else resolve();
      });
    });
  const ranges: [number, number][] = [];
  for (let s = 0; s < o.cases; s += perChild) ranges.push([s, Math.min(o.cases, s + perChild)]);
  const parallel = o.parallel ?? 2;
  let k = 0;
  const worker = async () => {
    while (k < ranges.length) {
      const [a, b] = ranges[k++];
      await runRange(a, b);
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  rmSync(dir, { recursive: true, force: true });
  c.seconds = (performance.now() - t0) / 1000;
  return c;
}
