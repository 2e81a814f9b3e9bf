/**
 * The native bf16 GEMM (a gemm node with `precision: "bf16"`, instruction GEMM_BF16): at every ISA
 * level this CPU has (the portable path at each, vdpbf16ps at avx512bf16), the result equals the
 * fp32 GEMM of the bf16-rounded operands up to fp32 summation order (1e-5 of sum |a||b| per
 * element), on the layouts a training step uses (x W^T, dy W, dy^T x, batched attention, a
 * strided output, a bias) with K beyond one block and odd sizes; and the rounding itself (ties to
 * even, NaN, Inf, overflow, subnormals, signed zero) against hard-coded bit patterns; and the same
 * bits for 1, 2 and 3 threads.
 */
import { describe, expect, it } from "vitest";
import { evaluate, roundBf16 } from "../../runtime/executors/interp/interp.ts";
import { type GemmLayout, Graph, type Sym } from "../../runtime/graph/graph.ts";
import { compileGraph, nativeAddon, paramArena } from "../../runtime/executors/native/native.ts";
import { Rng } from "../../runtime/util/rng.ts";
import { atEachIsa } from "./helpers.ts";

type L4 = [number, number, number, number];
const bits = (u: number) => new Float32Array(new Uint32Array([u]).buffer)[0];
const bitsOf = (x: number) => new Uint32Array(new Float32Array([x]).buffer)[0];

/** The native result of `build` and the graph, on the given parameter values. */
function runNative(build: (g: Graph, ins: Sym[]) => Sym, shapes: number[][], values: Float32Array[]): { got: Float32Array; g: Graph; y: Sym; params: Map<string, Float32Array> } {
  const g = new Graph();
  const params = new Map<string, Float32Array>();
  const ins = shapes.map((s, i) => {
    params.set(`p${i}`, values[i]);
    return g.param(`p${i}`, s);
  });
  const y = build(g, ins);
  const got = compileGraph({ graph: g, v: y, batch: 1 }, paramArena(params)).run(new Map());
  return { got, g, y, params };
}

/** Worst |native - reference| / (|alpha| sum_k |a||b| + 1e-30) over the output: the reference is the
 * exact (float64) GEMM of the bf16-rounded operands, from the layout itself. */
function worstError(L: GemmLayout, a: Float32Array, b: Float32Array, bias: Float32Array | null, got: ArrayLike<number>): number {
  let worst = 0;
  for (let b1 = 0; b1 < L.batch[0]; b1++)
    for (let b2 = 0; b2 < L.batch[1]; b2++)
      for (let m = 0; m < L.m; m++)
        for (let j = 0; j < L.n; j++) {
          let s = 0;
          let mag = 0;
          const ao = b1 * L.a[0] + b2 * L.a[1] + m * L.a[2];
          const bo = b1 * L.b[0] + b2 * L.b[1] + j * L.b[3];
          for (let k = 0; k < L.k; k++) {
            const p = roundBf16(a[ao + k * L.a[3]]) * roundBf16(b[bo + k * L.b[2]]);
            s += p;
            mag += Math.abs(p);
          }
          const want = s * L.alpha + (bias ? bias[j] : 0);
          const c = got[b1 * L.c[0] + b2 * L.c[1] + m * L.c[2] + j * L.c[3]];
          worst = Math.max(worst, Math.abs(c - want) / (Math.abs(L.alpha) * mag + (bias ? Math.abs(bias[j]) : 0) + 1e-30));
        }
  return worst;
}

const plain = (m: number, n: number, k: number): GemmLayout => ({ batch: [1, 1], m, n, k, alpha: 1, a: [0, 0, k, 1], b: [0, 0, n, 1], c: [0, 0, n, 1], precision: "bf16" });
const xwt = (m: number, n: number, k: number): GemmLayout => ({ batch: [1, 1], m, n, k, alpha: 1, a: [0, 0, k, 1], b: [0, 0, 1, k], c: [0, 0, n, 1], precision: "bf16" });
const dyx = (m: number, n: number, k: number): GemmLayout => ({ batch: [1, 1], m, n, k, alpha: 1, a: [0, 0, 1, m], b: [0, 0, n, 1], c: [0, 0, n, 1], precision: "bf16" });
const attn = (B: number, H: number, N: number, D: number): GemmLayout => ({ batch: [B, H], m: N, n: N, k: D, alpha: 1 / Math.sqrt(D), a: [N * H * D, D, H * D, 1] as L4, b: [N * H * D, D, 1, H * D] as L4, c: [H * N * N, N * N, N, 1] as L4, precision: "bf16" });

// [name, layout, shape of A, shape of B, output shape, bias]
const CASES: [string, GemmLayout, number[], number[], number[], boolean][] = [
  ["x W^T + b (forward), K beyond one block, odd sizes", xwt(37, 45, 301), [37, 301], [45, 301], [37, 45], true],
  ["x W^T at a step's shape (m 256, n 384, k 128)", xwt(256, 384, 128), [256, 128], [384, 128], [256, 384], false],
  ["dy W (input gradient), n beyond one column block (600), odd k", plain(19, 600, 33), [19, 33], [33, 600], [19, 600], false],
  ["dy^T x (weight gradient), m beyond one row block (300), odd k", dyx(300, 40, 257), [257, 300], [257, 40], [300, 40], false],
  ["batched strided attention scores (alpha, batch 2 x 3 heads)", attn(2, 3, 17, 8), [2, 17, 24], [2, 17, 24], [2, 3, 17, 17], false],
  ["batched attention scores, 12 batches, a last column panel of one vector at every level (35 tokens)", attn(4, 3, 35, 20), [4, 35, 60], [4, 35, 60], [4, 3, 35, 35], false],
  ["x W^T + b with a last column panel of at most one vector at every level (n 35)", xwt(37, 35, 40), [37, 40], [35, 40], [37, 35], true],
  ["strided output (transposed C), alpha 2", { batch: [1, 1], m: 9, n: 6, k: 7, alpha: 2, a: [0, 0, 7, 1], b: [0, 0, 1, 7], c: [0, 0, 1, 9], precision: "bf16" }, [9, 7], [6, 7], [6, 9], false],
  ["k = 1", plain(5, 70, 1), [5, 1], [1, 70], [5, 70], false],
  ["dy^T x over a long, odd K (k 1037: B packed in three parts of K, the last odd), few panels (n 70)", dyx(24, 70, 1037), [1037, 24], [1037, 70], [24, 70], false],
];

describe("the bf16 GEMM against the fp32 GEMM of bf16-rounded operands", () =>
  atEachIsa(() => {
    it.each(CASES)("%s", (_, L, sa, sb, sc, withBias) => {
      const rng = new Rng(7);
      const size = (s: number[]) => s.reduce((x, y) => x * y, 1);
      const a = rng.normals(size(sa));
      const b = rng.normals(size(sb));
      const bias = withBias ? rng.normals(L.n) : null;
      const values = bias ? [a, b, bias] : [a, b];
      const { got, g, y, params } = runNative(
        (g, [pa, pb, pbias]) => (pbias ? g.add(sc, { kind: "gemm", a: pa.id, b: pb.id, bias: pbias.id, layout: L }) : g.gemm(pa, pb, sc, L)),
        bias ? [sa, sb, [L.n]] : [sa, sb],
        values,
      );
      expect(worstError(L, a, b, bias, got)).toBeLessThan(1e-5);
      // the interpreter defines the same product (rounded operands, float64 sums, a float32 result)
      const want = evaluate(g, new Map(), params)[y.id];
      expect(worstError(L, a, b, bias, want)).toBeLessThan(1e-7);
      // and it is not the fp32 GEMM: rounding the operands changes the result
      const fp32 = runNative((g, [pa, pb]) => g.gemm(pa, pb, sc, { ...L, precision: undefined }), [sa, sb], [a, b]).got;
      if (!bias) expect(got.some((v, i) => Math.abs(v - fp32[i]) > 1e-4 * Math.abs(fp32[i]))).toBe(true);
    });
  }));

describe("the bf16 GEMM's bits do not depend on the thread count", () =>
  atEachIsa(() => {
    it("1, 2 and 3 threads give the same bits (x W^T, dy^T x)", () => {
      const addon = nativeAddon().addon!;
      const before = addon.threads();
      const rng = new Rng(3);
      const a = rng.normals(200 * 300);
      const b = rng.normals(300 * 90);
      try {
        for (const [L, sa, sb] of [[xwt(200, 90, 300), [200, 300], [90, 300]], [dyx(200, 90, 300), [300, 200], [300, 90]]] as [GemmLayout, number[], number[]][]) {
          const runs = [1, 2, 3].map((t) => {
            addon.threads(t);
            return Array.from(runNative((g, [pa, pb]) => g.gemm(pa, pb, [200, 90], L), [sa, sb], [a, b]).got);
          });
          expect(runs[1]).toEqual(runs[0]);
          expect(runs[2]).toEqual(runs[0]);
        }
      } finally {
        addon.threads(before);
      }
    });
  }));

// [input bits, bf16-rounded bits, what]
const ROUNDING: [number, number, string][] = [
  [0x3f800000, 0x3f800000, "1 (exact)"],
  [0x3f808000, 0x3f800000, "1 + 2^-8: a tie, to the even 1"],
  [0x3f818000, 0x3f820000, "1 + 3 2^-8: a tie, to the even 1 + 2^-6"],
  [0x3f808001, 0x3f810000, "just above a tie: up"],
  [0x3f817fff, 0x3f810000, "just below a tie: down"],
  [0xbf818000, 0xbf820000, "a negative tie, to even"],
  [0x80000000, 0x80000000, "-0"],
  [0x7f800000, 0x7f800000, "+Inf"],
  [0xff800000, 0xff800000, "-Inf"],
  [0x7f7f0000, 0x7f7f0000, "the largest bf16"],
  [0x7f7f7fff, 0x7f7f0000, "below the tie with Inf: the largest bf16"],
  [0x7f7f8000, 0x7f800000, "the tie between the largest bf16 and Inf: Inf (even)"],
  [0x7f7fffff, 0x7f800000, "the largest float: Inf"],
  [0xff7fffff, 0xff800000, "minus the largest float: -Inf"],
  [0x00800000, 0x00800000, "the smallest normal"],
  [0x00008000, 0x00000000, "subnormal tie with 0: 0 (even)"],
  [0x00018000, 0x00020000, "subnormal tie: to even"],
  [0x00010001, 0x00010000, "subnormal: down"],
  [0x007fffff, 0x00800000, "the largest subnormal: up to the smallest normal"],
];
const SUBNORMAL = (u: number) => (u & 0x7f800000) === 0 && (u & 0x7fffff) !== 0;

describe("bf16 rounding", () => {
  it.each(ROUNDING)("roundBf16: %s", (u, r) => {
    expect(bitsOf(roundBf16(bits(u)))).toBe(r);
  });
  it("roundBf16 keeps NaN (quiet and signalling, either sign)", () => {
    for (const u of [0x7fc00000, 0x7f800001, 0xffc00001, 0x7fffffff]) expect(roundBf16(bits(u))).toBeNaN();
  });

  atEachIsa((level) => {
    it("the GEMM rounds each operand to nearest even (1 x n x 1 products with 1; A and B)", () => {
      const vals = Float32Array.from(ROUNDING.map(([u]) => bits(u)));
      const n = vals.length;
      const one = new Float32Array([1]);
      const viaB = runNative((g, [a, b]) => g.gemm(a, b, [1, n], plain(1, n, 1)), [[1, 1], [1, n]], [one, vals]).got;
      const viaA = runNative((g, [a, b]) => g.gemm(a, b, [n, 1], plain(n, 1, 1)), [[n, 1], [1, 1]], [vals, one]).got;
      ROUNDING.forEach(([u, r, what], i) => {
        // at avx512bf16 an fp32 subnormal operand rounds to zero (vcvtne2ps2bf16's DAZ: the
        // largest ones, which to_bf16 rounds up to the smallest normal, too) and vdpbf16ps treats
        // bf16 subnormals as zero and flushes subnormal results (DAZ / FTZ, not configurable): a
        // subnormal operand gives 0. A sum that starts from +0 turns -0 into +0 (as the fp32 GEMM does).
        const zero = (r & 0x7fffffff) === 0 || (level === "avx512bf16" && SUBNORMAL(u));
        const want = zero ? [0, 0x80000000] : [r];
        expect(want, `${what} via B`).toContain(bitsOf(viaB[i]));
        expect(want, `${what} via A`).toContain(bitsOf(viaA[i]));
      });
    });
    it("full panels (16 rows, K 37: 16 k at a time, then the tail) round every element as the scalar path does: A row-major and k-major, B row-major and transposed", () => {
      // finite patterns of ROUNDING (ties, subnormals, the largest bf16 ...), either sign, times an
      // identity: each output element is one rounded operand (the zeros add nothing)
      const finite = ROUNDING.map(([u, r]) => [u, r]).filter(([u]) => (u & 0x7f800000) !== 0x7f800000 && u !== 0x7f7f8000 && u !== 0x7f7fffff && u !== 0xff7fffff);
      const M = 16;
      const K = 37;
      const vals = new Float32Array(M * K);
      const want = new Uint32Array(M * K);
      const subnormal = new Array<boolean>(M * K);
      for (let i = 0; i < M * K; i++) {
        const [u, r] = finite[i % finite.length]; // K = 37 and 14 patterns: every pattern at every position of a panel
        const neg = i % 3 === 0 ? 0x80000000 : 0;
        vals[i] = bits((u | neg) >>> 0);
        want[i] = (r | neg) >>> 0;
        subnormal[i] = SUBNORMAL(u);
      }
      const eye = new Float32Array(K * K).map((_, i) => (i % (K + 1) === 0 ? 1 : 0));
      const transpose = (x: Float32Array, rows: number, cols: number) => Float32Array.from({ length: rows * cols }, (_, i) => x[(i % rows) * cols + Math.floor(i / rows)]);
      const L = (a: L4, b: L4, m: number, n: number): GemmLayout => ({ batch: [1, 1], m, n, k: K, alpha: 1, a, b, c: [0, 0, n, 1], precision: "bf16" });
      const runs: [string, Float32Array][] = [
        ["A row-major", runNative((g, [a, b]) => g.gemm(a, b, [M, K], L([0, 0, K, 1], [0, 0, K, 1], M, K)), [[M, K], [K, K]], [vals, eye]).got],
        ["A k-major", runNative((g, [a, b]) => g.gemm(a, b, [M, K], L([0, 0, 1, M], [0, 0, K, 1], M, K)), [[K, M], [K, K]], [transpose(vals, M, K), eye]).got],
        // C^T = I B^T: B's rows are A's columns (K x M, row-major), and transposed (M x K)
        ["B row-major", transpose(runNative((g, [a, b]) => g.gemm(a, b, [K, M], L([0, 0, K, 1], [0, 0, M, 1], K, M)), [[K, K], [K, M]], [eye, transpose(vals, M, K)]).got, K, M)],
        ["B transposed", transpose(runNative((g, [a, b]) => g.gemm(a, b, [K, M], L([0, 0, K, 1], [0, 0, 1, K], K, M)), [[K, K], [M, K]], [eye, vals]).got, K, M)],
      ];
      for (const [what, got] of runs) {
        let bad = 0;
        for (let i = 0; i < M * K; i++) {
          const r = want[i];
          const zero = (r & 0x7fffffff) === 0 || (level === "avx512bf16" && subnormal[i]);
          const ok = zero ? (bitsOf(got[i]) & 0x7fffffff) === 0 : bitsOf(got[i]) === r;
          if (!ok) bad++;
        }
        expect(bad, `${what}: elements not rounded as to_bf16 (subnormals to zero at avx512bf16)`).toBe(0);
      }
    });
    it("NaN operands give NaN, Inf operands Inf", () => {
      const vals = new Float32Array([bits(0x7fc00000), bits(0x7f800001), Infinity, -Infinity]);
      const got = runNative((g, [a, b]) => g.gemm(a, b, [1, 4], plain(1, 4, 1)), [[1, 1], [1, 4]], [new Float32Array([2]), vals]).got;
      expect(got[0]).toBeNaN();
      expect(got[1]).toBeNaN();
      expect(got[2]).toBe(Infinity);
      expect(got[3]).toBe(-Infinity);
    });
  });
});
