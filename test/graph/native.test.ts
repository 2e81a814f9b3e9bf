/**
 * The native CPU executor (runtime/executors/native: src/ and native.ts): every kernel against the
 * reference interpreter (cpu.ts) on small graphs that reach its edge cases (tile remainders,
 * K blocks, transposed and batched strided GEMMs, broadcasts, strided windows, every
 * elementwise operator), the whole tiny-spec step (loss, every gradient, the clipped Adam + EMA
 * update) against the interpreter and tfjs autodiff, and the generated operator table against
 * ops.ts. The CLI runs (training against the tfjs engine, checkpoints both ways, bit-identical
 * resume, sampling) are in test/graph/native-cli.test.ts.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { loadCompiled, type LoadedSpec } from "../../cli/generated.ts";
import { initBackend } from "../../runtime/backend.ts";
import { evaluate } from "../../runtime/executors/interp/interp.ts";
import { fuse } from "../../runtime/graph/fuse.ts";
import { type EwOp, Graph, type Sym } from "../../runtime/graph/graph.ts";
import { compileGraph, configure, nativeAddon, NativeSetupError, NativeStep, paramArena } from "../../runtime/executors/native/native.ts";
import { collapse, ewOpsInc, opCodesInc, ProgramWriter, transposedGemm, writesColumns } from "../../runtime/executors/native/lower.ts";
import { EW } from "../../runtime/graph/ops.ts";
import { buildStepGraph, stepFeeds } from "../../runtime/engines/static/step.ts";
import { buildModel, flowLoss } from "../../runtime/train/trainer.ts";
import { LearnedPromptEncoder } from "../../runtime/text/learned.ts";
import { Rng } from "../../runtime/util/rng.ts";
import { atEachIsa, batchOf, differingBuffers, tinyTwoSteps } from "./helpers.ts";
import { normalParams } from "./random-params.ts";

let tiny: LoadedSpec;
beforeAll(async () => {
  await initBackend("cpu", { log: () => {} });
  tiny = await loadCompiled("generated/sd3-tiny");
});

describe("the native executor", () => {
  it("is built and loads (npm install builds it; CI must not test without it)", () => {
    const n = nativeAddon();
    expect(n.addon, n.why).not.toBeNull();
    expect(n.addon!.threads()).toBeGreaterThan(0);
  });
  it("runs the CPU's best ISA level by default, and refuses a level that is unknown or beyond the CPU", () => {
    const addon = nativeAddon().addon!;
    const levels = addon.isas();
    expect(levels[0]).toBe("x86-64");
    expect(["x86-64", "avx2", "avx512", "avx512bf16"].slice(0, levels.length)).toEqual(levels);
    if (!process.env.SDC_ISA) expect(addon.isa()).toBe(levels[levels.length - 1]);
    expect(() => addon.isa("avx9")).toThrow(/unknown ISA level 'avx9'/);
    if (levels.length < 3) expect(() => addon.isa("avx512")).toThrow(/this CPU does not support avx512/);
    expect(() => configure(addon, { SDC_ISA: "avx9" })).toThrow(NativeSetupError);
    expect(() => configure(addon, { SDC_THREADS: "two" })).toThrow(/SDC_THREADS must be a whole number/);
    expect(() => configure(addon, { SDC_WORKERS: "near" })).toThrow(/SDC_WORKERS must be apart .* or anywhere, got 'near'/);
    expect(() => addon.workers("near" as "apart")).toThrow(/'apart' or 'anywhere', got 'near'/);
    expect(() => addon.workers(2 as unknown as "apart")).toThrow(TypeError);
    expect(() => addon.isa(2 as unknown as string)).toThrow(TypeError);
  });
  it("has the elementwise operators of ops.ts and the instruction codes of lower.ts (runtime/executors/native/src/ew_ops.inc and op_codes.inc are generated; run npm run gen:native)", () => {
    expect(readFileSync("runtime/executors/native/src/ew_ops.inc", "utf8")).toBe(ewOpsInc());
    expect(readFileSync("runtime/executors/native/src/op_codes.inc", "utf8")).toBe(opCodesInc());
  });
  it("merges axes that every access walks as one", () => {
    expect(collapse([2, 3, 4], [[12, 4, 1]])).toEqual({ shape: [24], strides: [[1]] });
    expect(collapse([2, 3, 4], [[12, 4, 1], [4, 0, 1]])).toEqual({ shape: [2, 3, 4], strides: [[12, 4, 1], [4, 0, 1]] });
    expect(collapse([2, 1, 4], [[4, 4, 1], [0, 0, 1]])).toEqual({ shape: [2, 4], strides: [[4, 1], [0, 1]] });
    expect(collapse([1, 1], [[1, 1]])).toEqual({ shape: [1], strides: [[0]] });
  });
  it("refuses a program that reads outside its arenas (a lowering bug is an error, not a crash)", () => {
    const addon = nativeAddon().addon!;
    const bad = Float64Array.from([9, 0, 10, 5, 0]); // fill 5 floats at offset 10 of a 4-float arena
    expect(() => addon.build(bad, [new ArrayBuffer(16)])).toThrow(/outside its arena/);
    expect(() => addon.build(Float64Array.from([42]), [])).toThrow(/unknown instruction/);
  });
  it("asks the kernel for transparent huge pages over its arenas (the 2 MiB pages inside them: the 'hg' flag of their mappings)", () => {
    const addon = nativeAddon().addon!;
    // kB of this process's mappings advised MADV_HUGEPAGE
    const advisedKb = () => {
      let kb = 0;
      let size = 0;
      for (const line of readFileSync("/proc/self/smaps", "utf8").split("\n")) {
        if (line.startsWith("Size:")) size = Number(line.split(/\s+/)[1]);
        else if (line.startsWith("VmFlags:") && line.split(/\s+/).includes("hg")) kb += size;
      }
      return kb;
    };
    const thp = existsSync("/sys/kernel/mm/transparent_hugepage/enabled");
    const arena = new ArrayBuffer(32 << 20);
    const before = advisedKb();
    const program = addon.build(Float64Array.from([9, 0, 0, 16, 0]), [arena]); // fill 16 floats at 0
    addon.run(program);
    // every whole 2 MiB page of the 32 MiB arena: at least 30 MiB (both ends may be partial pages)
    if (thp) expect(advisedKb() - before).toBeGreaterThanOrEqual(30 << 10);
    else expect(advisedKb()).toBe(before);
  });
});

/** Run the graph's output on the interpreter and the native executor; the worst relative error. */
function compare(build: (g: Graph, ins: Sym[]) => Sym, shapes: number[][], seed = 1): number {
  const rng = new Rng(seed);
  const g = new Graph();
  const { ins, params } = normalParams(g, shapes, rng);
  const y = build(g, ins);
  const want = evaluate(g, new Map(), params)[y.id];
  fuse({ graph: g, loss: y, grads: new Map(), params: [], oneHots: [], batch: 1, dims: [1, 1, 1], text: "learned" });
  const got = compileGraph({ graph: g, v: y, batch: 1 }, paramArena(params)).run(new Map());
  let scale = 1e-6;
  for (const x of want) scale = Math.max(scale, Math.abs(x));
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]) / scale);
  if (Number.isNaN(got.reduce((a, b) => a + b, 0))) return Infinity;
  return worst;
}

const attnLayout = (B: number, H: number, N: number, D: number) => ({ batch: [B, H] as [number, number], m: N, n: N, k: D, alpha: 1 / Math.sqrt(D), a: [N * H * D, D, H * D, 1] as [number, number, number, number], b: [N * H * D, D, 1, H * D] as [number, number, number, number], c: [H * N * N, N * N, N, 1] as [number, number, number, number] });

describe("each kernel against the interpreter", () => atEachIsa(() => {
  it.each<[string, (g: Graph, p: Sym[]) => Sym, number[][]]>([
    ["linear: x W^T + b, tile remainders (m 37, n 45)", (g, [x, w, b]) => g.linear(x, w, b), [[37, 20], [45, 20], [45]]],
    ["linear with K in three blocks (k 700), n beyond one panel (n 600)", (g, [x, w, b]) => g.linear(x, w, b), [[9, 700], [600, 700], [600]]],
    ["linear with m beyond one block (m 300)", (g, [x, w]) => g.linear(x, w, null), [[300, 16], [33, 16]]],
    ["gemm, both operands plain (x W)", (g, [a, b]) => g.gemm(a, b, [13, 70], { batch: [1, 1], m: 13, n: 70, k: 29, alpha: 1, a: [0, 0, 29, 1], b: [0, 0, 70, 1], c: [0, 0, 70, 1] }), [[13, 29], [29, 70]]],
    ["gemm, A transposed (dy^T x: weight gradients)", (g, [a, b]) => g.gemm(a, b, [24, 40], { batch: [1, 1], m: 24, n: 40, k: 50, alpha: 1, a: [0, 0, 1, 24], b: [0, 0, 40, 1], c: [0, 0, 40, 1] }), [[50, 24], [50, 40]]],
    ["gemm, A transposed, m beyond one block (300), K in two blocks (k 390)", (g, [a, b]) => g.gemm(a, b, [300, 40], { batch: [1, 1], m: 300, n: 40, k: 390, alpha: 1, a: [0, 0, 1, 300], b: [0, 0, 40, 1], c: [0, 0, 40, 1] }), [[390, 300], [390, 40]]],
    ["gemm, both plain, K in two blocks (k 390), n beyond one column block (n 530)", (g, [a, b]) => g.gemm(a, b, [13, 530], { batch: [1, 1], m: 13, n: 530, k: 390, alpha: 1, a: [0, 0, 390, 1], b: [0, 0, 530, 1], c: [0, 0, 530, 1] }), [[13, 390], [390, 530]]],
    ["gemm with n = 1 (a one-channel output: matrix-vector), bias, m beyond one block (300)", (g, [x, w, b]) => g.linear(x, w, b), [[300, 37], [1, 37], [1]]],
    ["gemm with n = 1, A k-major (its weight gradient dy^T x), k 1000", (g, [a, b]) => g.gemm(a, b, [45, 1], { batch: [1, 1], m: 45, n: 1, k: 1000, alpha: 0.5, a: [0, 0, 1, 45], b: [0, 0, 1, 1], c: [0, 0, 1, 1] }), [[1000, 45], [1000, 1]]],
    ["batched gemm with n = 1 into a strided output", (g, [a, b]) => g.gemm(a, b, [3, 1, 2, 7], { batch: [3, 2], m: 7, n: 1, k: 5, alpha: 1, a: [70, 35, 5, 1], b: [10, 5, 1, 1], c: [14, 1, 2, 1] }), [[3, 2, 7, 5], [3, 2, 5]]],
    ["batched strided gemm (attention scores, alpha)", (g, [q, k]) => g.gemm(q, k, [2, 3, 5, 5], attnLayout(2, 3, 5, 4)), [[2, 5, 12], [2, 5, 12]]],
    ["batched attention scores, 12 batches (each task packs its batch's B), m past a panel, a last panel of one vector at every level (35)", (g, [q, k]) => g.gemm(q, k, [4, 3, 35, 35], attnLayout(4, 3, 35, 20)), [[4, 35, 60], [4, 35, 60]]],
    ["batched attention P V: a row-major B with a head stride, whole column panels read in place (n 32), K past a vector (24)", (g, [p, v]) => g.gemm(p, v, [2, 24, 3 * 32], { batch: [2, 3], m: 24, n: 32, k: 24, alpha: 1, a: [3 * 24 * 24, 24 * 24, 24, 1], b: [24 * 3 * 32, 32, 3 * 32, 1], c: [24 * 3 * 32, 32, 3 * 32, 1] }), [[2, 3, 24, 24], [2, 24, 96]]],
    ["batched P V with rows of B 288 floats apart (packed per task, not read in place), n 96", (g, [p, v]) => g.gemm(p, v, [2, 20, 288], { batch: [2, 3], m: 20, n: 96, k: 20, alpha: 1, a: [3 * 20 * 20, 20 * 20, 20, 1], b: [20 * 288, 96, 288, 1], c: [20 * 288, 96, 288, 1] }), [[2, 3, 20, 20], [2, 20, 288]]],
    ["gemm, A transposed, B plain (a weight gradient's C^T = B^T A^T) with K past one block (k 1024), whole panels of B in place", (g, [a, b]) => g.gemm(a, b, [64, 64], { batch: [1, 1], m: 64, n: 64, k: 1024, alpha: 1, a: [0, 0, 1, 64], b: [0, 0, 64, 1], c: [0, 0, 64, 1] }), [[1024, 64], [1024, 64]]],
    ["linear with a last column panel of at most one vector at every level (n 35), bias", (g, [x, w, b]) => g.linear(x, w, b), [[37, 20], [35, 20], [35]]],
    ["a weight gradient over a long, odd K (k 1037: B packed once in three parts of K, the last odd), few panels (n 70), B transposed", (g, [a, b]) => g.gemm(a, b, [24, 70], { batch: [1, 1], m: 24, n: 70, k: 1037, alpha: 1, a: [0, 0, 1, 24], b: [0, 0, 1, 1037], c: [0, 0, 70, 1] }), [[1037, 24], [70, 1037]]],
    ["gemm into a strided output (transposed C)", (g, [a, b]) => g.gemm(a, b, [6, 9], { batch: [1, 1], m: 9, n: 6, k: 7, alpha: 2, a: [0, 0, 7, 1], b: [0, 0, 1, 7], c: [0, 0, 1, 9] }), [[9, 7], [6, 7]]],
    ["gemm into a column-major C (a weight gradient stored [in, out]), m and n past a block, K in two blocks", (g, [a, b]) => g.gemm(a, b, [45, 300], { batch: [1, 1], m: 300, n: 45, k: 390, alpha: 1, a: [0, 0, 1, 300], b: [0, 0, 45, 1], c: [0, 0, 1, 300] }), [[390, 300], [390, 45]]],
    ["batched gemm into a column-major C (attention's dK)", (g, [a, b]) => g.gemm(a, b, [2, 3, 5, 4], { batch: [2, 3], m: 4, n: 5, k: 6, alpha: 0.5, a: [72, 24, 1, 4], b: [90, 30, 5, 1], c: [60, 20, 1, 4] }), [[2, 3, 6, 4], [2, 3, 6, 5]]],
    ["a skinny linear (m 64 rows against a weight of 301 x 390: run as its transpose, the weight read in place by rows, a last partial row panel), bias", (g, [x, w, b]) => g.linear(x, w, b), [[64, 390], [301, 390], [301]]],
    ["a skinny linear of 13 rows (one partial column panel of the transpose at every level)", (g, [x, w]) => g.linear(x, w, null), [[13, 40], [150, 40]]],
    ["a skinny dy W (m 40 against a row-major weight of 700 x 130: the weight read k-major in place, K in three blocks), alpha", (g, [a, b]) => g.gemm(a, b, [40, 130], { batch: [1, 1], m: 40, n: 130, k: 700, alpha: 0.5, a: [0, 0, 700, 1], b: [0, 0, 130, 1], c: [0, 0, 130, 1] }), [[40, 700], [700, 130]]],
    ["layer_norm", (g, [x]) => g.layerNorm(x, 1e-6), [[7, 33]]],
    ["layer_norm_grad", (g, [x, dy]) => g.add(x.shape, { kind: "layer_norm_grad", x: x.id, dy: dy.id, eps: 1e-5 }), [[5, 19], [5, 19]]],
    ["softmax", (g, [x]) => g.softmax(x), [[6, 29]]],
    ["softmax, rows of attention's 72 (a tail past the last whole vector at every level)", (g, [x]) => g.softmax(x), [[2, 3, 72]]],
    ["softmax_grad", (g, [y, dy]) => g.add(y.shape, { kind: "softmax_grad", y: y.id, dy: dy.id }), [[4, 9], [4, 9]]],
    ["sum_to: over rows (bias gradient)", (g, [x]) => g.sumTo(x, [17]), [[3, 11, 17]]],
    ["sum_to: over the last axis, scaled", (g, [x]) => g.sumTo(x, [3, 11, 1], 0.5), [[3, 11, 17]]],
    ["sum_to: middle axis (per-sample sums)", (g, [x]) => g.sumTo(x, [3, 1, 17]), [[3, 11, 17]]],
    ["sum_to: everything (the loss)", (g, [x]) => g.sumTo(x, [1]), [[5, 300]]],
    ["sum_to: over rows in several fixed row blocks, one partial (bias gradient of 600 rows)", (g, [x]) => g.sumTo(x, [40]), [[2, 300, 40]]],
    ["sum_to: per-sample sums, big enough to split by samples across threads", (g, [x]) => g.sumTo(x, [64, 1, 24], 0.25), [[64, 64, 24]]],
    ["slice, pad, permute, concat", (g, [x]) => g.concat([g.permute(g.pad(g.slice(x, 1, 2, 3), 1, 1, 6), [0, 2, 1]), g.permute(x, [0, 2, 1])], 2), [[2, 7, 5]]],
    ["concat, slice and permute big enough to split across threads (joint attention's token concat, 64 x 24 x 64)", (g, [a, b]) => g.permute(g.slice(g.concat([a, b], 1), 1, 4, 20), [1, 0, 2]), [[64, 16, 64], [64, 8, 64]]],
    ["broadcast ew over strided windows (adaLN modulate of chunks)", (g, [x, m]) => g.ew("add", [g.ew("mul", [x, g.ew("add", [g.reshape(g.slice(m, 1, 8, 8), [2, 1, 8]), 1])]), g.reshape(g.slice(m, 1, 0, 8), [2, 1, 8])]), [[2, 300, 8], [2, 24]]],
    ["ew over rows of three chunks, a broadcast and a transposed window, split across threads mid-row (the row index moved row by row)", (g, [x, y, z]) => g.ew("add", [g.ew("mul", [x, y]), g.permute(z, [0, 2, 1])]), [[3, 29, 600], [3, 1, 600], [3, 600, 29]]],
    ["ew with a long inner axis (chunk remainders)", (g, [x, y]) => g.ew("mul", [g.ew("sub", [x, y]), 3]), [[1000], [1000]]],
  ])("%s", (_, build, shapes) => {
    expect(compare(build, shapes)).toBeLessThan(2e-5);
  });

  const unary = Object.entries(EW).filter(([, d]) => d.arity === 1).map(([k]) => k as EwOp);
  const binary = Object.entries(EW).filter(([, d]) => d.arity === 2).map(([k]) => k as EwOp);
  it.each(unary)("unary %s", (op) => {
    // sqrt / rsqrt of |x| + 0.1, exp of small values: the domains where the operators are used
    const arg = (g: Graph, x: Sym) => (op === "sqrt" || op === "rsqrt" || op === "log" ? g.ew("add", [g.ew("square", [x]), 0.1]) : x);
    expect(compare((g, [x]) => g.ew(op, [arg(g, x)]), [[517]])).toBeLessThan(op === "exp" || op === "sin" || op === "cos" ? 2e-6 : 1e-5);
  });
  it("finds each softmax row's maximum wherever it is (rows shorter than a vector, of one, past one), and makes a row with a NaN all NaN", () => {
    // row p: small values but 300 at p and 250 at p + 1; a maximum that missed them would clamp
    // both exps (exp(x - max) beyond 88.3) and give 0.5 and 0.5 instead of 1 and e^-50
    for (const d of [5, 16, 17, 72]) {
      const rows = d;
      const x = new Float32Array(rows * d).map((_, i) => Math.sin(i));
      for (let p = 0; p < d - 1; p++) [x[p * d + p], x[p * d + p + 1]] = [300, 250];
      x[(rows - 1) * d + 1] = NaN;
      const g = new Graph();
      const y = g.softmax(g.constant(x, [rows, d]));
      const got = compileGraph({ graph: g, v: y, batch: 1 }, paramArena(new Map())).run(new Map());
      const want = evaluate(g, new Map(), new Map())[y.id];
      for (let i = 0; i < rows * d; i++) {
        if (i >= (rows - 1) * d) expect(got[i], `the NaN row, d ${d}`).toBeNaN();
        else expect(Math.abs(got[i] - want[i]), `row ${Math.floor(i / d)}, column ${i % d}, d ${d}`).toBeLessThan(1e-6);
      }
    }
  });
  it.each([undefined, "bf16"] as const)("computes a last column panel of at most one vector to the bits of a full panel's columns (precision %s)", (precision) => {
    // x W^T with n 35 (columns 32..34 in a narrow last panel at every level) and with n 64 (the
    // same columns in a full panel); alpha 1 and no bias: the stores add nothing
    const [m, k] = [21, 50];
    const rng = new Rng(5);
    const x = rng.normals(m * k);
    const w64 = rng.normals(64 * k);
    const run = (n: number) => {
      const g = new Graph();
      const y = g.gemm(g.param("x", [m, k]), g.param("w", [n, k]), [m, n], { batch: [1, 1], m, n, k, alpha: 1, a: [0, 0, k, 1], b: [0, 0, 1, k], c: [0, 0, n, 1], ...(precision ? { precision } : {}) });
      return compileGraph({ graph: g, v: y, batch: 1 }, paramArena(new Map([["x", x], ["w", w64.slice(0, n * k)]]))).run(new Map());
    };
    const [narrow, full] = [run(35), run(64)];
    let differ = 0;
    for (let i = 0; i < m; i++) for (let j = 0; j < 35; j++) if (narrow[i * 35 + j] !== full[i * 64 + j]) differ++;
    expect(differ).toBe(0);
  });
  it.each([
    ["x W^T with a bias, K in one block", "xwt", 390, 300],
    ["dy W (a row-major weight), K in three blocks, alpha 0.5", "dyw", 700, 130],
  ] as const)("computes a skinny GEMM (few rows against a weight: run as its transpose) to the bits of the general path's rows: %s", (_, layout, k, n) => {
    // the first m rows of a 72-row GEMM (the general path at every level) against the same GEMM
    // of m rows (skinny where m <= 2 NR: 64 rows at the avx512 level, 32 at avx2, 16 at x86-64)
    const rng = new Rng(6);
    const x = rng.normals(72 * k);
    const w = rng.normals(n * k);
    const bias = rng.normals(n);
    const alpha = layout === "xwt" ? 1 : 0.5;
    const run = (m: number) => {
      const g = new Graph();
      const shape = layout === "xwt" ? [n, k] : [k, n];
      const y = g.add([m, n], {
        kind: "gemm",
        a: g.param("x", [m, k]).id,
        b: g.param("w", shape).id,
        bias: layout === "xwt" ? g.param("bias", [n]).id : null,
        layout: { batch: [1, 1], m, n, k, alpha, a: [0, 0, k, 1], b: layout === "xwt" ? [0, 0, 1, k] : [0, 0, n, 1], c: [0, 0, n, 1] },
      });
      return compileGraph({ graph: g, v: y, batch: 1 }, paramArena(new Map([["x", x.slice(0, m * k)], ["w", w], ["bias", bias]]))).run(new Map());
    };
    const general = run(72);
    for (const m of [64, 40, 13, 1]) {
      const skinny = run(m);
      let differ = 0;
      for (let i = 0; i < m * n; i++) if (skinny[i] !== general[i]) differ++;
      expect(differ, `${m} rows`).toBe(0);
    }
  });
  it("computes a column-major C as C^T = B^T A^T, to the bits of the same GEMM unswapped (one with a zero bias)", () => {
    const [m, n, k] = [70, 45, 390];
    const layout = { batch: [1, 1] as [number, number], m, n, k, alpha: 1, a: [0, 0, 1, m] as [number, number, number, number], b: [0, 0, n, 1] as [number, number, number, number], c: [0, 0, 1, m] as [number, number, number, number] };
    expect(writesColumns(layout)).toBe(true);
    expect(transposedGemm(layout)).toEqual({ ...layout, m: n, n: m, a: [0, 0, 1, n], b: [0, 0, m, 1], c: [0, 0, m, 1] });
    const rng = new Rng(4);
    const params = new Map([["a", rng.normals(k * m)], ["b", rng.normals(k * n)], ["zero", new Float32Array(n)]]);
    const run = (bias: boolean) => {
      const g = new Graph();
      const y = g.add([n, m], { kind: "gemm", a: g.param("a", [k, m]).id, b: g.param("b", [k, n]).id, bias: bias ? g.param("zero", [n]).id : null, layout });
      return compileGraph({ graph: g, v: y, batch: 1 }, paramArena(params)).run(new Map());
    };
    const [swapped, plain] = [run(false), run(true)];
    let differ = 0;
    for (let i = 0; i < swapped.length; i++) if (swapped[i] !== plain[i]) differ++;
    expect(differ).toBe(0);
  });
  it.each(binary)("binary %s (vector-vector, vector-scalar, scalar-vector)", (op) => {
    const den = (g: Graph, y: Sym) => (op === "div" ? g.ew("add", [g.ew("square", [y]), 0.5]) : y);
    // pow: a positive base (any exponent), or an integer exponent (any base)
    const base = (g: Graph, x: Sym) => (op === "pow" ? g.ew("add", [g.ew("abs", [x]), 0.5]) : x);
    expect(compare((g, [x, y]) => g.ew(op, [base(g, x), den(g, y)]), [[300], [300]])).toBeLessThan(1e-5);
    expect(compare((g, [x, y]) => g.ew(op, [base(g, x), den(g, y)]), [[4, 300], [4, 1]])).toBeLessThan(1e-5);
    expect(compare((g, [x, y]) => g.ew(op, [op === "pow" ? base(g, y) : den(g, y), x]), [[4, 300], [4, 1]])).toBeLessThan(1e-5);
    if (op === "pow") expect(compare((g, [x]) => g.ew("add", [g.ew("pow", [x, 3]), g.ew("pow", [x, -2])]), [[300]])).toBeLessThan(1e-5);
  });
}));

describe("the tiny spec's training step on the native executor", () => {
  it("gives the interpreter's and tfjs autodiff's loss and gradients, and the same clipped Adam + EMA update", async () => {
    const m = buildModel(tiny.spec, tiny.ir, 3);
    const B = 3;
    const b = batchOf(B, 5);
    const sg = buildStepGraph(m, B, [32, 32, 1]);
    const enc = m.text as LearnedPromptEncoder;
    const params = new Map<string, Float32Array>();
    for (const [name, v] of m.store.vars) params.set(name, Float32Array.from(v.dataSync() as Float32Array));
    const feeds = stepFeeds(sg, m.flow, b, { ids: enc.tokenizer.encodeBatch(b.prompts) });
    const vals = evaluate(sg.graph, feeds, params);
    const vars = [...m.store.vars.values()];
    const { value, grads: tg } = tf.variableGrads(() => flowLoss(m, b, [B, 32, 32, 1]), vars);
    const tfLoss = value.dataSync()[0];

    fuse(sg);
    const adam = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, decoupled: false, clip: 0.5, ema: 0.9, emaWarmup: false };
    const ns = new NativeStep(sg, adam);
    ns.setParams(params);
    const r = await ns.step(feeds);
    expect(r.loss).toBeCloseTo(vals[sg.loss.id][0], 5);
    expect(r.loss).toBeCloseTo(tfLoss, 5);
    const mine = (await ns.readFlat("g"))!;
    let worst = 0;
    let worstTf = 0;
    let where = "";
    let sq = 0;
    for (const [name, v] of m.store.vars) {
      const want = vals[sg.grads.get(name)!.id];
      const g2 = tg[v.name].dataSync();
      const got = mine.get(name)!;
      let scale = 1e-6;
      for (const x of want) scale = Math.max(scale, Math.abs(x));
      for (let i = 0; i < want.length; i++) {
        sq += want[i] * want[i];
        const e = Math.abs(got[i] - want[i]) / scale;
        if (e > worst) [worst, where] = [e, name];
        worstTf = Math.max(worstTf, Math.abs(got[i] - g2[i]) / scale);
      }
    }
    expect(worst, `worst relative gradient error vs the interpreter, in ${where}`).toBeLessThan(1e-4);
    expect(worstTf, "worst relative gradient error vs tfjs autodiff").toBeLessThan(1e-4);
    const norm = Math.sqrt(sq);
    expect(r.gradNorm).toBeCloseTo(norm, 3);

    // the update: clip to 0.5, one Adam step, EMA with decay 0.9 (reset to the parameters)
    const f = Math.min(1, adam.clip / (norm + 1e-6));
    const p1 = (await ns.readFlat("params"))!;
    const e1 = (await ns.readFlat("ema"))!;
    let worstP = 0;
    for (const [name, p0] of params) {
      const gr = vals[sg.grads.get(name)!.id];
      for (let i = 0; i < p0.length; i++) {
        const gi = gr[i] * f;
        const mi = (1 - adam.beta1) * gi;
        const vi = (1 - adam.beta2) * gi * gi;
        const want = p0[i] - (mi / (Math.sqrt(vi) / Math.sqrt(1 - adam.beta2) + adam.eps)) * (adam.lr / (1 - adam.beta1));
        worstP = Math.max(worstP, Math.abs(p1.get(name)![i] - want));
        expect(Math.abs(e1.get(name)![i] - (0.9 * p0[i] + 0.1 * p1.get(name)![i]))).toBeLessThan(1e-6);
      }
    }
    expect(worstP).toBeLessThan(2e-6);
    expect(ns.stepCount).toBe(1);
    tf.dispose([value, ...Object.values(tg)]);
    m.store.dispose();
  });
});

/** The optimizer kernel alone (gradient norm, clipping, Adam, EMA), two steps on fixed data: FNV-1a of every word of its arena after (p, g, m, v, EMA, hyper, stats). */
/**
 * FNV-1a of gelu_tanh and of gelu_tanh_grad (against a fixed dy) on every 4,096th fp32 bit
 * pattern (each nudged within its block), +-0, the smallest subnormals, +-inf, NaNs and 37 more
 * values: a length that ends in a chunk no multiple of a vector.
 */
function geluBits(): string[] {
  const u = new Uint32Array((1 << 20) + 8 + 37);
  let i = 0;
  for (let b = 0; b < 2 ** 32; b += 4096) u[i++] = (b + (Math.imul(b >>> 12, 2654435761) & 4095)) >>> 0;
  for (const x of [0, 0x80000000, 1, 0x80000001, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00001]) u[i++] = x;
  const x = new Float32Array(u.buffer);
  for (; i < u.length; i++) x[i] = Math.sin(i) * 6;
  const dy = new Float32Array(x.length).map((_, j) => Math.cos(j * 0.77) * 3.5);
  return (["gelu_tanh", "gelu_tanh_grad"] as const).map((op) => {
    const g = new Graph();
    const [a, b] = [g.param("x", [x.length]), g.param("dy", [x.length])];
    const y = compileGraph({ graph: g, v: op === "gelu_tanh" ? g.ew(op, [a]) : g.ew(op, [a, b]), batch: 1 }, paramArena(new Map([["x", x], ["dy", dy]]))).run(new Map());
    let h = 0x811c9dc5;
    for (const w of new Uint32Array(y.buffer, y.byteOffset, y.length)) h = Math.imul(h ^ w, 0x01000193) >>> 0;
    return h.toString(16).padStart(8, "0");
  });
}

/** FNV-1a of sum_to over 10 shapes that keep the last axis: bias gradients, per-sample sums, other kept axes, scaled or not. */
function sumToBits(): string {
  const rng = new Rng(3);
  // (sums along the last axis are left out: their compiled loop's order is the vectorizer's, so
  // it differs between ISA levels and builds)
  const cases: [number[], number[]][] = [[[4096, 96], [96]], [[64, 64, 96], [64, 1, 96]], [[3, 11, 17], [3, 1, 17]], [[3, 11, 17], [1, 11, 17]], [[64, 8, 96], [64, 1, 96]], [[2, 3, 130, 70], [2, 1, 1, 70]], [[2, 3, 130, 70], [1, 3, 1, 70]], [[64, 64, 384], [64, 1, 384]], [[513, 71], [71]], [[7, 5, 3], [7, 1, 3]]];
  return cases
    .map(([shape, to], i) => {
      // rows 8r and 8r + 1 hold +2^60 and -2^60, the rest normals: summed in row order the pair
      // cancels and the normals after it survive, in another order they are lost (a double sum of
      // floats of one scale is exact in any order, which would hide the order)
      const d = shape[shape.length - 1];
      const x = rng.normals(shape.reduce((a, b) => a * b, 1)).map((v, j) => (Math.floor(j / d) % 8 === 0 ? 2 ** 60 : Math.floor(j / d) % 8 === 1 ? -(2 ** 60) : v));
      const g = new Graph();
      const y = g.sumTo(g.param("x", shape), to, i % 3 === 0 ? 1 : 0.5);
      const r = compileGraph({ graph: g, v: y, batch: 1 }, paramArena(new Map([["x", x]]))).run(new Map());
      let h = 0x811c9dc5;
      for (const w of new Uint32Array(r.buffer, r.byteOffset, r.length)) h = Math.imul(h ^ w, 0x01000193) >>> 0;
      return h.toString(16);
    })
    .join(" ");
}

function adamBits(wd: number, decoupled: boolean, ema: boolean): string {
  const addon = nativeAddon().addon!;
  const n = 98347; // three chunks of 2^15 and a remainder that is no multiple of a vector
  const arena = new ArrayBuffer((5 * n + 32) * 4);
  const f = new Float32Array(arena);
  for (let i = 0; i < n; i++) {
    f[i] = Math.sin(i) * 0.3;
    f[n + i] = Math.cos(i * 1.7) * 0.05 + (i % 97 === 0 ? 3 : 0);
    f[2 * n + i] = Math.sin(i * 0.3) * 0.01;
    f[3 * n + i] = Math.abs(Math.cos(i * 0.7)) * 1e-4;
    f[4 * n + i] = f[i] * 0.9;
  }
  f.set([3e-4, 0.271, Math.sqrt(1 - 0.999 ** 3), 0.9], 5 * n);
  const w = new ProgramWriter();
  const at = (i: number) => ({ arena: 0, offset: i * n });
  w.adam({ p: at(0), g: at(1), m: at(2), v: at(3), ema: ema ? at(4) : null, hyper: { arena: 0, offset: 5 * n }, stats: { arena: 0, offset: 5 * n + 16 }, n, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: wd, clip: 1, decoupled });
  const program = addon.build(w.finish(), [arena]);
  addon.run(program);
  addon.run(program);
  let h = 0x811c9dc5;
  for (const x of new Uint32Array(arena)) h = Math.imul(h ^ x, 0x01000193) >>> 0;
  return h.toString(16).padStart(8, "0");
}

describe("thread counts", () => {
  /** Two training steps of the tiny spec (batch 8) on `threads` threads: the losses and every float of the state after. */
  async function twoSteps(threads: number): Promise<{ losses: number[]; state: Uint8Array[] }> {
    const addon = nativeAddon().addon!;
    const before = addon.threads();
    expect(addon.threads(threads)).toBe(threads);
    try {
      return await tinyTwoSteps(tiny);
    } finally {
      addon.threads(before);
    }
  }
  it("gives bit-identical training steps on 1, 2 and 3 threads (losses, parameters, gradients, Adam moments, EMA)", async () => {
    const one = await twoSteps(1);
    for (const t of [2, 3]) {
      const other = await twoSteps(t);
      expect(other.losses, `losses on ${t} threads`).toEqual(one.losses);
      expect(differingBuffers(one.state, other.state), `buffers that differ between 1 and ${t} threads`).toBe(0);
    }
  });
  /** "0-3,6" -> [0, 1, 2, 3, 6] */
  const cpuList = (l: string) => l.split(",").flatMap((r) => {
    const [lo, hi] = r.split("-").map(Number);
    return Array.from({ length: (hi ?? lo) - lo + 1 }, (_, i) => lo + i);
  });
  /** The CPUs a thread may run on (the Cpus_allowed_list of its status file). */
  const allowed = (status: string) => cpuList(/^Cpus_allowed_list:\s*(\S+)/m.exec(readFileSync(status, "utf8"))![1]);
  /** The CPUs each thread of this process may run on. */
  function masks(): number[][] {
    return readdirSync("/proc/self/task").flatMap((t) => {
      try {
        return [allowed(`/proc/self/task/${t}/status`)];
      } catch {
        return []; // the thread ended while the folder was read
      }
    });
  }
  it("keeps the team's workers off the caller's CPU (SDC_WORKERS=apart, the default) or lets the OS place them (anywhere), to the same bits", async () => {
    const addon = nativeAddon().addon!;
    const [before, placement] = [addon.threads(), addon.workers()];
    expect(placement).toBe(process.env.SDC_WORKERS || "apart");
    const all = allowed("/proc/self/status");
    try {
      // fresh workers (earlier tests' workers may have moved already): a change of placement restarts them
      addon.workers("anywhere");
      expect(addon.workers("apart")).toBe("apart");
      const moves0 = addon.workerMoves();
      const apart = await twoSteps(3);
      // a worker that moved may run on every CPU of the process but one; nothing else changes
      const narrowed = masks().filter((m) => m.length !== all.length || m.some((c, i) => c !== all[i]));
      for (const m of narrowed) {
        expect(m.length).toBe(all.length - 1);
        expect(m.every((c) => all.includes(c))).toBe(true);
      }
      expect(narrowed.length).toBeLessThanOrEqual(2);
      if (narrowed.length > 0) expect(addon.workerMoves()).toBeGreaterThan(moves0);
      // anywhere: new workers with the caller's mask, never moved
      expect(addon.workers("anywhere")).toBe("anywhere");
      const moves1 = addon.workerMoves();
      const anywhere = await twoSteps(3);
      expect(masks().every((m) => m.length === all.length)).toBe(true);
      expect(addon.workerMoves()).toBe(moves1);
      expect(anywhere.losses).toEqual(apart.losses);
      expect(differingBuffers(apart.state, anywhere.state)).toBe(0);
    } finally {
      addon.workers(placement);
      addon.threads(before);
    }
  });
  it("sums (sum_to) split across threads to the same bits as on one (bias gradients by fixed row blocks, per-sample sums by samples)", () => {
    const addon = nativeAddon().addon!;
    const before = addon.threads();
    const rng = new Rng(9);
    const cases: [number[], number[]][] = [[[4100, 40], [40]], [[64, 64, 24], [64, 1, 24]], [[3, 500, 33], [3, 500, 1]]];
    try {
      for (const [shape, to] of cases) {
        // rows 0 and 300 of each column +-1e30: the float64 sum loses the terms added between them, so
        // a different grouping of the terms (blocks that depended on the thread count) shows
        const x = rng.normals(shape.reduce((a, b) => a * b, 1));
        const inner = shape[shape.length - 1];
        for (let j = 0; j < inner; j++) [x[j], x[300 * inner + j]] = [1e30, -1e30];
        const runs = [1, 2, 3].map((t) => {
          addon.threads(t);
          const g = new Graph();
          const y = g.sumTo(g.param("x", shape), to);
          return Array.from(compileGraph({ graph: g, v: y, batch: 1 }, paramArena(new Map([["x", x]]))).run(new Map()));
        });
        expect(runs[1], `${shape} -> ${to} on 2 threads`).toEqual(runs[0]);
        expect(runs[2], `${shape} -> ${to} on 3 threads`).toEqual(runs[0]);
      }
    } finally {
      addon.threads(before);
    }
  });
  it("computes GEMMs whose row blocks depend on the thread count (weight-gradient shapes) to the same bits on 1, 2 and 3 threads, fp32 and bf16", () => {
    const addon = nativeAddon().addon!;
    const before = addon.threads();
    const rng = new Rng(10);
    // [m, n, k]: dy^T x with M = 384 (3 blocks of 128 rows on one thread; 4 of 96 on two; 6 of 64 on
    // three), 200 (not a multiple of MR), 1536 x 384 and 384 x 1536 (K 1024: four K blocks)
    const cases: [number, number, number][] = [[384, 384, 1024], [200, 96, 300], [1536, 384, 1024], [384, 1536, 1024]];
    try {
      for (const [m, n, k] of cases)
        for (const precision of [undefined, "bf16"] as const) {
          const [a, b] = [rng.normals(k * m), rng.normals(k * n)];
          const runs = [1, 2, 3].map((t) => {
            addon.threads(t);
            const g = new Graph();
            const y = g.gemm(g.param("a", [k, m]), g.param("b", [k, n]), [m, n], { batch: [1, 1], m, n, k, alpha: 1, a: [0, 0, 1, m], b: [0, 0, n, 1], c: [0, 0, n, 1], ...(precision ? { precision } : {}) });
            return compileGraph({ graph: g, v: y, batch: 1 }, paramArena(new Map([["a", a], ["b", b]]))).run(new Map());
          });
          const label = `${m} x ${n} x ${k} ${precision ?? "fp32"}`;
          const bytes = (x: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);
          expect(runs[0].length).toBe(m * n);
          expect(bytes(runs[1]).equals(bytes(runs[0])), `${label} on 2 threads`).toBe(true);
          expect(bytes(runs[2]).equals(bytes(runs[0])), `${label} on 3 threads`).toBe(true);
        }
    } finally {
      addon.threads(before);
    }
  });
  // Printed by the compiled `omp simd` loops of the release build (-O3, main at 383c722) on an AMD
  // EPYC (Zen 5): the baseline level without FMA, the levels with FMA all alike. The avx512 levels
  // now run gelu_tanh and its gradient hand-vectorized (kernels.cc v_gelu_t, v_gelu_t_g: explicit
  // FMAs where GCC contracted), which must keep the FMA bits in any build. The avx2 level still
  // runs the compiled loop, whose contraction is the optimizer's: the sanitizer build (-O1,
  // scripts/test-native-asan.sh) does not contract it and gives the baseline's bits there.
  const GELU_BITS = { baseline: "232cf731 48fee4ba", fma: "d8368f6e 9cea7f21" };
  it("runs gelu_tanh and its gradient at the avx512 levels to the bits of the compiled formula (release build), and at the baseline level to its own", () => {
    const addon = nativeAddon().addon!;
    const isa = addon.isa();
    try {
      for (const level of addon.isas()) {
        if (level === "avx2") continue;
        addon.isa(level);
        expect(geluBits().join(" "), level).toBe(level === "x86-64" ? GELU_BITS.baseline : GELU_BITS.fma);
      }
    } finally {
      addon.isa(isa);
    }
  });
  // Printed by the loops that loaded and stored each double sum once a row (main at 383c722), on an
  // AMD EPYC (Zen 5), the same on every level and in the sanitizer build: the avx512 levels now hold
  // 64 columns' sums in registers over the rows (kernels.cc add_rows), which must add in the same
  // order (adding a block's rows in reverse fails this).
  const SUM_TO_BITS = "33f607b f3b2990e c14074b7 a22c1a32 ff9c95cd c9fd5d92 bd9da652 3a06c910 99da7b27 67acb0d";
  it("sums (sum_to) to the same bits as before the sums were held in registers, on every ISA level", () => {
    const addon = nativeAddon().addon!;
    const isa = addon.isa();
    try {
      for (const level of addon.isas()) {
        addon.isa(level);
        expect(sumToBits(), level).toBe(SUM_TO_BITS);
      }
    } finally {
      addon.isa(isa);
    }
  });
  // Printed by the scalar loop the vectorized one replaced (main at 691559e), on an AMD EPYC
  // (Zen 4): the variants no / L2 / decoupled weight decay, each without and with the EMA. Every
  // level with FMA (avx2 and up) gives the same bits here; the baseline rounds a * b + c twice.
  const ADAM_BITS = { baseline: "533e36d7 4a5fd436 235c1b62 754859c4 479bb83e 3ad1336e", fma: "c5245409 a16c8b5f a00e3cb4 67d6ed3b 7095f3c2 fee23957" };
  it("runs the optimizer kernel to the same bits as before it was vectorized, on every ISA level and 1, 2 and 3 threads", () => {
    const addon = nativeAddon().addon!;
    const [isa, threads] = [addon.isa(), addon.threads()];
    try {
      for (const level of addon.isas())
        for (const t of [1, 2, 3]) {
          addon.isa(level);
          addon.threads(t);
          const got: string[] = [];
          for (const [wd, dec] of [[0, false], [0.01, false], [0.01, true]] as const) for (const ema of [false, true]) got.push(adamBits(wd, dec, ema));
          expect(got.join(" "), `${level}, ${t} threads`).toBe(level === "x86-64" ? ADAM_BITS.baseline : ADAM_BITS.fma);
        }
    } finally {
      addon.isa(isa);
      addon.threads(threads);
    }
  });
});
