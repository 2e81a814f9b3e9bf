/**
 * The convolution window ops (im2col and its adjoint col2im, runtime/graph/graph.ts) and the
 * conv2d / conv_transpose2d lowerings on them (runtime/graph/trace.ts): against the lowering
 * they replaced (zero padding, strided slices and one concat; the transposed convolution as a
 * dilated, padded input convolved with the flipped kernel: kept here as the reference) on the
 * forward and every gradient, over kernels, strides and paddings with odd image sizes; the
 * native kernels against the interpreter at every ISA level and bit-identical on 1 and 3
 * threads; the shape rules; and the native decoder on zero sizes and malformed windows.
 * (PyTorch's own outputs for these layers: test/graph/nn.test.ts.)
 */
import { describe, expect, it } from "vitest";
import { differentiate } from "../../runtime/graph/autodiff.ts";
import { evaluate } from "../../runtime/executors/interp/interp.ts";
import { fuseGraph } from "../../runtime/graph/fuse.ts";
import { Graph, GraphError, type Sym } from "../../runtime/graph/graph.ts";
import { compileGraph, nativeAddon, paramArena } from "../../runtime/executors/native/native.ts";
import { Code } from "../../runtime/executors/native/lower.ts";
import { T, TraceContext, withTrace } from "../../runtime/graph/trace.ts";
import { Rng } from "../../runtime/util/rng.ts";
import { atEachIsa, worstRel } from "./helpers.ts";

// ---- the lowering these ops replaced (runtime/graph/trace.ts before them), as the reference ----

function padAxis(x: Sym, ax: number, before: number, after: number): Sym {
  const g = x.graph;
  let y = x;
  if (before < 0) y = g.slice(y, ax, -before, y.shape[ax] + before);
  if (after < 0) y = g.slice(y, ax, 0, y.shape[ax] + after);
  const [b, a] = [Math.max(0, before), Math.max(0, after)];
  return b || a ? g.pad(y, ax, b, y.shape[ax] + b + a) : y;
}
function strided(x: Sym, ax: number, start: number, n: number, s: number): Sym {
  const g = x.graph;
  if (s === 1) return g.slice(x, ax, start, n);
  const need = start + n * s;
  const y = g.slice(x.shape[ax] < need ? padAxis(x, ax, 0, need - x.shape[ax]) : x, ax, start, n * s);
  const pre = y.shape.slice(0, ax);
  const post = y.shape.slice(ax + 1);
  return g.reshape(g.slice(g.reshape(y, [...pre, n, s, ...post]), ax + 1, 0, 1), [...pre, n, ...post]);
}
function dilate(x: Sym, ax: number, s: number): Sym {
  if (s === 1) return x;
  const g = x.graph;
  const pre = x.shape.slice(0, ax + 1);
  const post = x.shape.slice(ax + 1);
  const n = x.shape[ax];
  const spread = g.pad(g.reshape(x, [...pre, 1, ...post]), ax + 1, 0, s);
  return g.slice(g.reshape(spread, [...x.shape.slice(0, ax), n * s, ...post]), ax, 0, (n - 1) * s + 1);
}
function sliceIm2col(x: Sym, k: number, s: number, ho: number, wo: number, at: (i: number, j: number) => [number, number]): Sym {
  const cols: Sym[] = [];
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < k; j++) {
      const [oi, oj] = at(i, j);
      cols.push(strided(strided(x, 1, oi, ho, s), 2, oj, wo, s));
    }
  }
  return x.graph.concat(cols, 3);
}
function oldConv2d(x: Sym, wt: Sym, bias: Sym, k: number, s: number, p: number): Sym {
  const g = x.graph;
  const [, h, w, ch] = x.shape;
  const [ho, wo] = [Math.floor((h + 2 * p - k) / s) + 1, Math.floor((w + 2 * p - k) / s) + 1];
  const cols = sliceIm2col(padAxis(padAxis(x, 1, p, p), 2, p, p), k, s, ho, wo, (i, j) => [i, j]);
  return g.linear(cols, g.reshape(g.permute(wt, [0, 2, 3, 1]), [wt.shape[0], k * k * ch]), bias);
}
function oldConvTranspose2d(x: Sym, wt: Sym, bias: Sym, k: number, s: number, p: number): Sym {
  const g = x.graph;
  const [, h, w, ch] = x.shape;
  const [ho, wo] = [(h - 1) * s - 2 * p + k, (w - 1) * s - 2 * p + k];
  const q = k - 1 - p;
  const xd = padAxis(padAxis(dilate(dilate(x, 1, s), 2, s), 1, q, q), 2, q, q);
  const cols = sliceIm2col(xd, k, 1, ho, wo, (i, j) => [k - 1 - i, k - 1 - j]);
  return g.linear(cols, g.reshape(g.permute(wt, [1, 2, 3, 0]), [wt.shape[1], k * k * ch]), bias);
}

// ---- helpers ---------------------------------------------------------------------------------

type Case = [k: number, s: number, p: number];
const CONV: Case[] = [[3, 1, 1], [3, 2, 1], [3, 2, 0], [2, 2, 0], [1, 2, 0], [5, 3, 2], [4, 2, 3], [3, 1, 0], [7, 1, 3]];
const CONV_T: Case[] = [[4, 2, 1], [3, 2, 2], [2, 2, 0], [3, 1, 0], [5, 3, 1], [1, 2, 0], [3, 2, 3]];
const [B, H, W, C, OUT] = [2, 7, 5, 3, 4];

/** Values for x [B, H, W, C] and the weight (OUT * C * k * k values, either layout) and bias of a (transposed) convolution. */
function values(k: number, seed: number): Map<string, Float32Array> {
  const rng = new Rng(seed);
  return new Map([
    ["x", rng.normals(B * H * W * C)],
    ["w", rng.normals(OUT * C * k * k)],
    ["b", rng.normals(OUT)],
  ]);
}

/** loss = sum(y * c) for a fixed random c; the output and the gradients of x, w, b. */
function withGrads(g: Graph, y: Sym, seed: number): Sym[] {
  const c = g.constant(new Rng(seed + 100).normals(y.size), y.shape);
  const loss = g.sumTo(g.ew("mul", [y, c]), [1]);
  const { grads } = differentiate(g, loss);
  return [y, grads.get("x")!, grads.get("w")!, grads.get("b")!];
}

/** The convolution through the runtime's lowering (trace.ts), on parameters x, w, b. */
function traced(transposed: boolean, [k, s, p]: Case): { g: Graph; outs: Sym[] } {
  const g = new Graph();
  const [wv, bv] = [{}, {}];
  const wShape = transposed ? [C, OUT, k, k] : [OUT, C, k, k];
  const x = g.param("x", [B, H, W, C]);
  const ctx = new TraceContext(g, new Map([[wv, { name: "w", shape: wShape }], [bv, { name: "b", shape: [OUT] }]]));
  const y = withTrace(ctx, () => (transposed ? T.convTranspose2d(x, wv, bv, k, s, p) : T.conv2d(x, wv, bv, k, s, p)));
  return { g, outs: withGrads(g, y, k * 10 + s) };
}

/** The same through the replaced lowering. */
function reference(transposed: boolean, [k, s, p]: Case): { g: Graph; outs: Sym[] } {
  const g = new Graph();
  const x = g.param("x", [B, H, W, C]);
  const w = g.param("w", transposed ? [C, OUT, k, k] : [OUT, C, k, k]);
  const b = g.param("b", [OUT]);
  const y = transposed ? oldConvTranspose2d(x, w, b, k, s, p) : oldConv2d(x, w, b, k, s, p);
  return { g, outs: withGrads(g, y, k * 10 + s) };
}

/** The native executor's values of `outs` (fused first, as the engines run them). */
function native(g: Graph, outs: Sym[], params: Map<string, Float32Array>): Float32Array[] {
  fuseGraph(g, outs.map((o) => o.id));
  return outs.map((o) => compileGraph({ graph: g, v: o, batch: 1 }, paramArena(params)).run(new Map()));
}

const NAMES = ["y", "dx", "dw", "db"];

describe.each([
  ["conv2d", false, CONV],
  ["conv_transpose2d", true, CONV_T],
] as const)("%s on im2col / col2im", (_, transposed, cases) => {
  it.each(cases)("k %i stride %i padding %i: the replaced lowering's output and gradients (interpreter)", (k, s, p) => {
    const params = values(k, k + s + p);
    const a = traced(transposed, [k, s, p]);
    const b = reference(transposed, [k, s, p]);
    const kinds = new Set(a.g.nodes.map((n) => n.op.kind));
    expect(kinds.has("concat") || kinds.has("pad") || kinds.has("slice"), "no pads, slices or concats").toBe(false);
    if (k > 1 || s > 1 || p > 0) expect(kinds.has(transposed ? "col2im" : "im2col")).toBe(true);
    expect(a.outs[0].shape).toEqual(b.outs[0].shape);
    const va = evaluate(a.g, new Map(), params);
    const vb = evaluate(b.g, new Map(), params);
    a.outs.forEach((o, i) => expect(worstRel(va[o.id], vb[b.outs[i].id]), NAMES[i]).toBeLessThan(1e-5));
  });

  it.each(cases)("k %i stride %i padding %i: native output and gradients = the interpreter's", (k, s, p) => {
    const params = values(k, k + s + p);
    const a = traced(transposed, [k, s, p]);
    const want = evaluate(a.g, new Map(), params);
    const got = native(a.g, a.outs, params);
    a.outs.forEach((o, i) => expect(worstRel(got[i], want[o.id]), NAMES[i]).toBeLessThan(2e-5));
  });
});

describe("the native window kernels", () => atEachIsa(() => {
  it.each<[string, number[], Case]>([
    ["im2col, wide image, C = 1", [3, 9, 31, 1], [3, 2, 1]],
    ["im2col, kernel as large as the padded image", [2, 4, 3, 5], [5, 1, 1]],
    ["im2col, stride beyond the kernel", [1, 11, 10, 6], [2, 4, 0]],
  ])("%s: im2col and col2im (its gradient) = the interpreter's", (_, shape, [k, s, p]) => {
    const g = new Graph();
    const x = g.param("x", shape);
    const cols = g.im2col(x, { k, stride: s, pad: p });
    const c = g.constant(new Rng(3).normals(cols.size), cols.shape);
    const { grads } = differentiate(g, g.sumTo(g.ew("mul", [cols, c]), [1]));
    const dx = grads.get("x")!;
    expect(g.node(dx.id).op.kind).toBe("col2im");
    const params = new Map([["x", new Rng(4).normals(x.size)]]);
    const want = evaluate(g, new Map(), params);
    const got = native(g, [cols, dx], params);
    expect(got[0]).toEqual(want[cols.id]); // a copy: exact
    expect(worstRel(got[1], want[dx.id])).toBeLessThan(1e-6);
  });
}));

describe("the window ops' results do not depend on the thread count", () => {
  it("im2col and col2im of a 64-channel image are bit-identical on 1 and 3 threads", () => {
    const addon = nativeAddon().addon!;
    const before = addon.threads();
    const run = (threads: number) => {
      addon.threads(threads);
      const g = new Graph();
      const x = g.param("x", [3, 17, 13, 64]);
      const cols = g.im2col(x, { k: 3, stride: 1, pad: 1 });
      const back = g.col2im(g.ew("mul", [cols, 1.5]), 17, 13, { k: 3, stride: 1, pad: 1 });
      return native(g, [cols, back], new Map([["x", new Rng(9).normals(x.size)]]));
    };
    try {
      const one = run(1);
      const three = run(3);
      expect(three[0]).toEqual(one[0]);
      expect(three[1]).toEqual(one[1]);
    } finally {
      addon.threads(before);
    }
  });
});

describe("the shape rules", () => {
  const g = new Graph();
  const x = g.param("x", [2, 4, 6, 3]);
  it("give the output sides floor((n + 2p - k) / s) + 1 and k*k*C columns", () => {
    expect(g.im2col(x, { k: 3, stride: 2, pad: 1 }).shape).toEqual([2, 2, 3, 27]);
    expect(g.im2col(x, { k: 6, stride: 1, pad: 1 }).shape).toEqual([2, 1, 3, 108]);
    const cols = g.param("cols", [2, 2, 3, 27]);
    expect(g.col2im(cols, 4, 6, { k: 3, stride: 2, pad: 1 }).shape).toEqual([2, 4, 6, 3]);
    expect(g.col2im(cols, 3, 5, { k: 3, stride: 2, pad: 1 }).shape).toEqual([2, 3, 5, 3]);
  });
  it("refuse a kernel larger than the padded image, bad window numbers, and columns that do not fit the image", () => {
    expect(() => g.im2col(x, { k: 7, stride: 1, pad: 1 })).toThrow(/im2col: kernel 7 is larger than the padded input side 4 \+ 2 \* 1/);
    expect(() => g.im2col(x, { k: 3, stride: 0, pad: 1 })).toThrow(/stride 0 must be an integer >= 1/);
    expect(() => g.im2col(x, { k: 2.5, stride: 1, pad: 0 })).toThrow(/kernel 2.5 must be an integer >= 1/);
    expect(() => g.im2col(x, { k: 3, stride: 1, pad: -1 })).toThrow(/padding -1 must be an integer >= 0/);
    expect(() => g.im2col(g.param("flat", [4, 3]), { k: 1, stride: 1, pad: 0 })).toThrow(/is not \[B, H, W, C\]/);
    const cols = g.param("cols2", [2, 2, 3, 27]);
    expect(() => g.col2im(cols, 6, 6, { k: 3, stride: 2, pad: 1 })).toThrow(/col2im: windows of a 6 x 6 input give 3 x 3 columns, not 2 x 3/);
    expect(() => g.col2im(cols, 4, 6, { k: 4, stride: 2, pad: 1 })).toThrow(/is not \[B, Ho, Wo, 4\*4\*C\]/);
    expect(() => g.im2col(x, { k: 7, stride: 1, pad: 1 })).toThrow(GraphError);
  });
});

describe("the native decoder on window instructions", () => {
  const addon = () => nativeAddon().addon!;
  /** One instruction: dst at arena 0, src at arena 1, then B, H, W, C, Ho, Wo, k, stride, pad. */
  const prog = (code: number, f: number[]) => Float64Array.from([code, 0, 0, 1, 0, ...f]);
  const arenas = (dst: number, src: number) => [new ArrayBuffer(4 * dst), new ArrayBuffer(4 * src)];

  it("runs zero-size images (no batch, no channels) without touching memory", () => {
    for (const code of [Code.Im2col, Code.Col2im]) {
      for (const f of [[0, 4, 4, 3, 4, 4, 3, 1, 1], [2, 4, 4, 0, 4, 4, 3, 1, 1], [1, 0, 0, 2, 2, 2, 3, 1, 2]]) {
        const [b, h, w, c, ho, wo, k] = f;
        const [img, cols] = [b * h * w * c, b * ho * wo * k * k * c];
        const [dst, src] = code === Code.Im2col ? [cols, img] : [img, cols];
        const p = addon().build(prog(code, f), arenas(dst, src));
        expect(() => addon().run(p)).not.toThrow();
      }
    }
  });
  it("computes an all-padding window (an empty image side) as zeros", () => {
    // H = 0, W = 2, k 1, padding 1: 2 x 4 windows, every one on the padding
    const out = new ArrayBuffer(4 * 8);
    new Float32Array(out).fill(7);
    addon().run(addon().build(prog(Code.Im2col, [1, 0, 2, 1, 2, 4, 1, 1, 1]), [out, new ArrayBuffer(0)]));
    expect([...new Float32Array(out)]).toEqual(new Array(8).fill(0));
  });
  it.each<[string, number, number[], number, number, RegExp]>([
    ["columns not what the window gives", Code.Im2col, [1, 5, 5, 2, 4, 5, 3, 1, 1], 4 * 5 * 9 * 2, 50, /im2col.*output height.*4 is not what a window of 3 at stride 1 and padding 1 gives on 5/],
    ["a kernel beyond the padded image", Code.Col2im, [1, 2, 2, 1, 1, 1, 5, 1, 1], 4, 25, /col2im.*output height/],
    ["a zero stride", Code.Im2col, [1, 5, 5, 1, 5, 5, 1, 0, 0], 25, 25, /stride.*0 is outside \[1, /],
    ["a negative padding", Code.Col2im, [1, 5, 5, 1, 5, 5, 1, 1, -1], 25, 25, /pad.*-1 is outside \[0, /],
    ["columns past their arena", Code.Im2col, [1, 5, 5, 2, 5, 5, 3, 1, 1], 5 * 5 * 9 * 2 - 1, 50, /outside its arena/],
    ["an image past its arena", Code.Col2im, [1, 5, 5, 2, 5, 5, 3, 1, 1], 49, 5 * 5 * 9 * 2, /outside its arena/],
    ["sizes whose product overflows", Code.Im2col, [2 ** 31 - 1, 2 ** 31 - 1, 2 ** 31 - 1, 2 ** 31 - 1, 2 ** 31 - 1, 2 ** 31 - 1, 1, 1, 0], 4, 4, /integer overflow/],
  ])("refuses %s", (_, code, f, dst, src, msg) => {
    expect(() => addon().build(prog(code, f), arenas(dst, src))).toThrow(msg);
  });
  it("refuses a source that overlaps the destination", () => {
    const one = new ArrayBuffer(4 * 200);
    expect(() => addon().build(Float64Array.from([Code.Im2col, 0, 0, 0, 10, 1, 3, 3, 2, 3, 3, 1, 1, 0]), [one])).toThrow(/overlaps the destination/);
  });
});
