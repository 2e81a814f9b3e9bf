/**
 * Attention masks, grouped-query attention and RoPE on both engines: one function per case,
 * run once on tfjs tensors (tfjs ops, tfjs autodiff) and once on symbolic tensors (the traced
 * graph: its gradient rules, the reference interpreter and the native CPU executor); the
 * forward values and every gradient must agree, and the graph's gradients match central
 * differences. Semantics: masked keys (and values) change nothing, a fully masked row is finite,
 * a grouped kv head equals its explicit copy per query head.
 */
import { readFileSync } from "node:fs";
import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { initBackend } from "../../runtime/backend.ts";
import { differentiate } from "../../runtime/graph/autodiff.ts";
import { evaluate } from "../../runtime/executors/interp/interp.ts";
import { fuseGraph } from "../../runtime/graph/fuse.ts";
import { Graph, type Sym } from "../../runtime/graph/graph.ts";
import { compileGraph, paramArena } from "../../runtime/executors/native/native.ts";
import { TraceContext, withTrace } from "../../runtime/graph/trace.ts";
import * as F from "../../runtime/nn/functional.ts";
import { Rng } from "../../runtime/util/rng.ts";
import { finiteDifferenceError } from "./helpers.ts";

beforeAll(async () => {
  await initBackend("cpu", { log: () => {} });
});

/* eslint-disable @typescript-eslint/no-explicit-any */
type Any = any;

/** A case: differentiable tensors (params), data tensors (inputs: fed to the graph, or constants), one function for both engines. */
interface Case {
  params: Record<string, number[]>;
  data?: Record<string, { shape: number[]; values: Float32Array; constant?: boolean }>;
  fn: (a: Record<string, Any>) => Any;
}

const size = (s: number[]) => s.reduce((p, q) => p * q, 1);

/** The key padding mask [B, S']: batch b keeps its first keep[b] keys. */
function prefixMask(sk: number, keep: number[]): Float32Array {
  const m = new Float32Array(keep.length * sk);
  keep.forEach((n, b) => m.fill(1, b * sk, b * sk + n));
  return m;
}

interface Built {
  g: Graph;
  y: Sym;
  loss: Sym;
  grads: Map<string, Sym>;
  params: Map<string, Float32Array>;
  feeds: Map<string, Float32Array>;
  w: Float32Array;
}

/** The traced graph of loss = sum(w * fn(...)) with its gradients. */
function build(c: Case, seed: number): Built {
  const rng = new Rng(seed);
  const g = new Graph();
  const params = new Map<string, Float32Array>();
  const feeds = new Map<string, Float32Array>();
  const args: Record<string, Sym> = {};
  for (const [n, s] of Object.entries(c.params)) {
    args[n] = g.param(n, s);
    params.set(n, rng.normals(size(s)));
  }
  for (const [n, d] of Object.entries(c.data ?? {})) {
    if (d.constant) args[n] = g.constant(d.values, d.shape);
    else {
      args[n] = g.input(n, d.shape);
      feeds.set(n, d.values);
    }
  }
  const y = withTrace(new TraceContext(g, new Map()), () => c.fn(args)) as Sym;
  const w = rng.normals(y.size);
  const loss = g.sumTo(g.ew("mul", [y, g.constant(w, y.shape)]), [1]);
  const { grads } = differentiate(g, loss);
  return { g, y, loss, grads, params, feeds, w };
}

/** The same on tfjs: value and gradients of sum(w * fn(...)) by tfjs autodiff. */
function tfjs(c: Case, b: Built): { y: Float32Array; grads: Map<string, Float32Array> } {
  const keep: { y: Float32Array; grads: Map<string, Float32Array> } = { y: new Float32Array(0), grads: new Map() };
  tf.tidy(() => {
    const names = Object.keys(c.params);
    const data: Record<string, tf.Tensor> = {};
    for (const [n, d] of Object.entries(c.data ?? {})) data[n] = tf.tensor(d.values, d.shape);
    const f = (...xs: tf.Tensor[]) => {
      const y = c.fn({ ...data, ...Object.fromEntries(names.map((n, i) => [n, xs[i]])) }) as tf.Tensor;
      return tf.sum(tf.mul(y, tf.tensor(b.w, y.shape)));
    };
    const xs = names.map((n) => tf.tensor(b.params.get(n)!, c.params[n]));
    const y = c.fn({ ...data, ...Object.fromEntries(names.map((n, i) => [n, xs[i]])) }) as tf.Tensor;
    const gs = tf.grads(f)(xs);
    keep.y = y.dataSync() as Float32Array;
    names.forEach((n, i) => keep.grads.set(n, gs[i].dataSync() as Float32Array));
  });
  return keep;
}

/** Worst |a - b| relative to the largest |b|. */
function relErr(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let scale = 1e-6;
  for (const x of b) scale = Math.max(scale, Math.abs(x));
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / scale);
  return Number.isNaN(worst) ? Infinity : worst;
}

/** tfjs vs interpreter vs native: forward and every gradient. */
function compareEngines(c: Case, seed = 1): void {
  const b = build(c, seed);
  const vals = evaluate(b.g, b.feeds, b.params);
  const t = tfjs(c, b);
  expect(relErr(vals[b.y.id], t.y), "forward: interpreter vs tfjs").toBeLessThan(2e-5);
  for (const n of Object.keys(c.params)) expect(relErr(vals[b.grads.get(n)!.id], t.grads.get(n)!), `d/d${n}: interpreter vs tfjs autodiff`).toBeLessThan(1e-4);
  // native: the forward value and the gradients as one output
  const names = Object.keys(c.params);
  const flat = (s: Sym) => b.g.reshape(s, [s.size]);
  const out = b.g.concat([flat(b.y), ...names.map((n) => flat(b.grads.get(n)!))], 0);
  const want = evaluate(b.g, b.feeds, b.params)[out.id];
  fuseGraph(b.g, [out.id]);
  const got = compileGraph({ graph: b.g, v: out, batch: 1 }, paramArena(b.params)).run(b.feeds);
  expect(relErr(got, want), "native vs interpreter (forward and gradients)").toBeLessThan(1e-4);
}

/** The graph's gradients against central differences (worst error relative to max(1, |grad|)). */
function finiteDiff(c: Case, seed = 2): number {
  const b = build(c, seed);
  return finiteDifferenceError(b.g, b.loss, b.grads, b.params, b.feeds);
}

const mask2x5 = { shape: [2, 5], values: prefixMask(5, [3, 5]) };

const attentionCases: [string, Case][] = [
  ["key padding mask", { params: { q: [2, 3, 8], k: [2, 5, 8], v: [2, 5, 8] }, data: { m: mask2x5 }, fn: (a) => F.attention(a.q, a.k, a.v, 2, false, a.m) }],
  ["key padding mask + causal", { params: { q: [2, 3, 8], k: [2, 5, 8], v: [2, 5, 8] }, data: { m: { shape: [2, 5], values: prefixMask(5, [4, 2]) } }, fn: (a) => F.attention(a.q, a.k, a.v, 2, true, a.m) }],
  ["a row with every key masked (finite)", { params: { q: [2, 3, 8], k: [2, 5, 8], v: [2, 5, 8] }, data: { m: { shape: [2, 5], values: prefixMask(5, [0, 3]) } }, fn: (a) => F.attention(a.q, a.k, a.v, 2, false, a.m) }],
  ["a computed mask (graph node, not an input)", { params: { q: [2, 3, 8], k: [2, 5, 8], v: [2, 5, 8] }, data: { m: mask2x5 }, fn: (a) => F.attention(a.q, a.k, a.v, 2, false, F.mul(F.add(a.m, 1), 0.5)) }],
  ["grouped-query attention (4 heads, 2 kv heads)", { params: { q: [2, 3, 16], k: [2, 5, 8], v: [2, 5, 8] }, fn: (a) => F.attention(a.q, a.k, a.v, 4, false, undefined, 2) }],
  ["multi-query attention (6 heads, 1 kv head)", { params: { q: [1, 4, 12], k: [1, 3, 2], v: [1, 3, 2] }, fn: (a) => F.attention(a.q, a.k, a.v, 6, false, undefined, 1) }],
  ["grouped-query attention + mask + causal", { params: { q: [2, 3, 16], k: [2, 5, 8], v: [2, 5, 8] }, data: { m: mask2x5 }, fn: (a) => F.attention(a.q, a.k, a.v, 4, true, a.m, 2) }],
  ["a given scale (cosine-similarity style, 3)", { params: { q: [2, 3, 8], k: [2, 5, 8], v: [2, 5, 8] }, fn: (a) => F.attention(a.q, a.k, a.v, 2, false, undefined, undefined, 3) }],
  ["a given scale + mask + causal + grouped kv heads", { params: { q: [2, 3, 16], k: [2, 5, 8], v: [2, 5, 8] }, data: { m: mask2x5 }, fn: (a) => F.attention(a.q, a.k, a.v, 4, true, a.m, 2, 0.2) }],
];

describe("masked and grouped-query attention: tfjs = interpreter = native, forward and gradients", () => {
  it.each(attentionCases)("%s", (_, c) => compareEngines(c));
});

describe("masked and grouped-query attention: gradients against finite differences", () => {
  it.each(attentionCases.filter(([n]) => !n.startsWith("multi")))("%s", (_, c) => {
    expect(finiteDiff(c)).toBeLessThan(2e-2);
  });
});

describe("attention semantics", () => {
  const rng = new Rng(7);
  const [q, k, v] = [rng.normals(2 * 3 * 8), rng.normals(2 * 5 * 8), rng.normals(2 * 5 * 8)];
  const run = (m: Float32Array, kk = k, vv = v) => F.attention(tf.tensor3d(q, [2, 3, 8]), tf.tensor3d(kk, [2, 5, 8]), tf.tensor3d(vv, [2, 5, 8]), 2, false, tf.tensor2d(m, [2, 5])).dataSync() as Float32Array;

  it("scale s is the default attention of q * s * sqrt(d) (d = 4); 1 / sqrt(d) is the default", () => {
    const m = prefixMask(5, [3, 5]);
    const at = (qq: Float32Array, scale?: number) => F.attention(tf.tensor3d(qq, [2, 3, 8]), tf.tensor3d(k, [2, 5, 8]), tf.tensor3d(v, [2, 5, 8]), 2, false, tf.tensor2d(m, [2, 5]), undefined, scale).dataSync() as Float32Array;
    const close = (a: Float32Array, b: Float32Array) => a.every((x, i) => Math.abs(x - b[i]) < 1e-5);
    expect(close(at(q, 0.5), at(q))).toBe(true);
    expect(close(at(q, 3), at(q.map((x) => x * 3 * 2)))).toBe(true);
    expect(close(at(q, 3), at(q))).toBe(false);
  });

  it("masked keys and values change nothing; unmasked ones do", () => {
    const m = prefixMask(5, [3, 5]);
    const y = run(m);
    const [k2, v2] = [Float32Array.from(k), Float32Array.from(v)];
    for (let j = 3 * 8; j < 5 * 8; j++) [k2[j], v2[j]] = [k2[j] + 5, v2[j] - 5]; // batch 0, keys 3 and 4 (masked)
    const y2 = run(m, k2, v2);
    for (let i = 0; i < y.length; i++) expect(y2[i]).toBeCloseTo(y[i], 6);
    // the same change with keys 3 and 4 unmasked moves the output
    const all = prefixMask(5, [5, 5]);
    expect(Math.abs(run(all, k2, v2)[0] - run(all)[0])).toBeGreaterThan(1e-3);
  });

  it("equals attention over the unmasked keys alone", () => {
    const y = run(prefixMask(5, [3, 3]));
    const cut = (x: Float32Array) => Float32Array.from({ length: 2 * 3 * 8 }, (_, i) => x[Math.floor(i / 24) * 40 + (i % 24)]);
    const want = F.attention(tf.tensor3d(q, [2, 3, 8]), tf.tensor3d(cut(k), [2, 3, 8]), tf.tensor3d(cut(v), [2, 3, 8]), 2).dataSync();
    for (let i = 0; i < y.length; i++) expect(y[i]).toBeCloseTo(want[i], 5);
  });

  it("a fully masked row is finite: the plain average of the values", () => {
    const y = run(prefixMask(5, [0, 5]));
    for (let i = 0; i < 3 * 8; i++) {
      let mean = 0;
      for (let j = 0; j < 5; j++) mean += v[j * 8 + (i % 8)] / 5;
      expect(y[i]).toBeCloseTo(mean, 4);
    }
    expect(y.every(Number.isFinite)).toBe(true);
  });

  it("a grouped kv head equals its explicit copy for each of its query heads", () => {
    // heads 4, kv heads 2, d 4: query heads 0, 1 read kv head 0; heads 2, 3 read kv head 1
    const [qq, kk, vv] = [rng.normals(2 * 3 * 16), rng.normals(2 * 5 * 8), rng.normals(2 * 5 * 8)];
    const rep = (x: Float32Array) => Float32Array.from({ length: 2 * 5 * 16 }, (_, i) => x[Math.floor(i / 16) * 8 + Math.floor((i % 16) / 8) * 4 + (i % 4)]);
    const y = F.attention(tf.tensor3d(qq, [2, 3, 16]), tf.tensor3d(kk, [2, 5, 8]), tf.tensor3d(vv, [2, 5, 8]), 4, false, undefined, 2).dataSync();
    const want = F.attention(tf.tensor3d(qq, [2, 3, 16]), tf.tensor3d(rep(kk), [2, 5, 16]), tf.tensor3d(rep(vv), [2, 5, 16]), 4).dataSync();
    for (let i = 0; i < y.length; i++) expect(y[i]).toBeCloseTo(want[i], 5);
  });
});

// ---------------------------------------------------------------- RoPE

/** Flux-style ids: `text` tokens at 0, then a gh x gw grid at (0, row, col); [text + gh*gw, 3]. */
function fluxIds(text: number, gh: number, gw: number): Float32Array {
  const ids = new Float32Array((text + gh * gw) * 3);
  for (let i = 0; i < gh; i++) for (let j = 0; j < gw; j++) ids.set([0, i, j], (text + i * gw + j) * 3);
  return ids;
}

/** Flux's rope + apply_rope (src/flux/math.py), transcribed loop by loop: x [N, H*d] for one sample, ids [N, A]. */
function fluxRope(x: Float32Array, ids: Float32Array, n: number, heads: number, axesDim: number[], theta: number): Float64Array {
  const d = axesDim.reduce((p, q) => p + q, 0);
  const out = new Float64Array(x.length);
  for (let t = 0; t < n; t++) {
    // EmbedND: the 2x2 rotations of each axis, concatenated over the pair axis
    const rot: number[][] = [];
    axesDim.forEach((dim, a) => {
      for (let k = 0; k < dim; k += 2) {
        const omega = 1 / theta ** (k / dim);
        const ang = ids[t * axesDim.length + a] * omega;
        rot.push([Math.cos(ang), -Math.sin(ang), Math.sin(ang), Math.cos(ang)]);
      }
    });
    for (let h = 0; h < heads; h++) {
      for (let j = 0; j < d / 2; j++) {
        const base = t * heads * d + h * d + 2 * j;
        const [x0, x1] = [x[base], x[base + 1]];
        // xq_out = freqs_cis[..., 0] * xq_[..., 0] + freqs_cis[..., 1] * xq_[..., 1]
        out[base] = rot[j][0] * x0 + rot[j][1] * x1;
        out[base + 1] = rot[j][2] * x0 + rot[j][3] * x1;
      }
    }
  }
  return out;
}

const ids = (n: number, a: number, seed: number) => {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n * a }, () => Math.floor(rng.uniform() * 9) + (rng.uniform() < 0.3 ? 0.5 : 0));
};

const ropeCases: [string, Case][] = [
  ["rope, Flux's 3 axes, constant ids (host tables)", { params: { x: [2, 7, 24] }, data: { pos: { shape: [7, 3], values: fluxIds(1, 2, 3), constant: true } }, fn: (a) => F.rope(a.x, a.pos, 2, [4, 4, 4]) }],
  ["rope, ids as a graph input (sin/cos in the graph)", { params: { x: [2, 7, 24] }, data: { pos: { shape: [7, 3], values: ids(7, 3, 4) } }, fn: (a) => F.rope(a.x, a.pos, 2, [2, 4, 6], 100) }],
  ["rope, per-sample ids [B, N, A]", { params: { x: [2, 5, 16] }, data: { pos: { shape: [2, 5, 2], values: ids(10, 2, 5) } }, fn: (a) => F.rope(a.x, a.pos, 2, [4, 4]) }],
  ["rope, rotate-half pairs", { params: { x: [2, 5, 24] }, data: { pos: { shape: [5, 2], values: ids(5, 2, 6) } }, fn: (a) => F.rope(a.x, a.pos, 3, [4, 4], 10000, false) }],
  ["rope, rotate-half, constant per-sample ids", { params: { x: [2, 5, 16] }, data: { pos: { shape: [2, 5, 1], values: ids(10, 1, 7), constant: true } }, fn: (a) => F.rope(a.x, a.pos, 2, [8], 10000, false) }],
  [
    "rope on q and k, then masked grouped-query attention (Flux's attention with GQA)",
    {
      params: { q: [2, 4, 16], k: [2, 4, 8], v: [2, 4, 8] },
      data: { pos: { shape: [4, 2], values: ids(4, 2, 8) }, m: { shape: [2, 4], values: prefixMask(4, [2, 4]) } },
      fn: (a) => F.attention(F.rope(a.q, a.pos, 4, [2, 2]), F.rope(a.k, a.pos, 2, [2, 2]), a.v, 4, false, a.m, 2),
    },
  ],
];

describe("rope: tfjs = interpreter = native, forward and gradients", () => {
  it.each(ropeCases)("%s", (_, c) => compareEngines(c));
});

describe("rope: gradients against finite differences", () => {
  it.each(ropeCases.filter((_, i) => i % 2 === 0 || i === ropeCases.length - 1))("%s", (_, c) => {
    expect(finiteDiff(c)).toBeLessThan(2e-2);
  });
});

describe("rope semantics", () => {
  it("equals a loop-by-loop transcription of Flux's rope / apply_rope (EmbedND ids: text zeros, then (0, row, col))", () => {
    const rng = new Rng(11);
    const [n, heads, axesDim] = [8, 2, [4, 6, 6]];
    const x = rng.normals(n * heads * 16);
    const pos = fluxIds(2, 2, 3);
    const want = fluxRope(x, pos, n, heads, axesDim, 10000);
    const got = F.rope(tf.tensor3d(x, [1, n, heads * 16]), tf.tensor2d(pos, [n, 3]), heads, axesDim).dataSync();
    for (let i = 0; i < want.length; i++) expect(got[i]).toBeCloseTo(want[i], 5);
    // the same through the graph, the ids computed there: a zero column next to positions_2d (sin/cos in the graph)
    const g = new Graph();
    const y = withTrace(new TraceContext(g, new Map()), () => F.rope(g.input("x", [1, n, heads * 16]) as Any, F.concat([F.unsqueeze(F.mul(F.mean(F.positions2d(n, 1), 1), 0), 1), F.positions2d(2, 4)], 1) as Any, heads, [4, 6, 6])) as unknown as Sym;
    expect(y.shape).toEqual([1, n, 32]);
    // ids (0, row, col) of a 2 x 4 grid, as positions_2d gives them after a zero column
    const want2 = fluxRope(x, fluxIds(0, 2, 4), n, heads, axesDim, 10000);
    const v = evaluate(g, new Map([["x", x]]), new Map())[y.id];
    for (let i = 0; i < want2.length; i++) expect(v[i]).toBeCloseTo(want2[i], 5);
  });

  it("keeps norms per pair, is the identity at position 0, and rotates relative positions (q.k depends on i - j only)", () => {
    const rng = new Rng(12);
    const x = rng.normals(6 * 8);
    const pos = Float32Array.from([0, 1, 2, 3, 7, 11]);
    const y = F.rope(tf.tensor3d(x, [1, 6, 8]), tf.tensor2d(pos, [6, 1]), 1, [8], 10000, false).dataSync();
    for (let i = 0; i < 8; i++) expect(y[i]).toBeCloseTo(x[i], 6);
    for (let t = 0; t < 6; t++) for (let j = 0; j < 4; j++) expect(Math.hypot(y[t * 8 + j], y[t * 8 + j + 4])).toBeCloseTo(Math.hypot(x[t * 8 + j], x[t * 8 + j + 4]), 5);
    // the same vector at positions (p, p + 4) for p = 0, 3, 7: equal dot products
    const v = rng.normals(8);
    const w = rng.normals(8);
    const at = (vec: Float32Array, p: number) => F.rope(tf.tensor3d(vec, [1, 1, 8]), tf.tensor2d([p], [1, 1]), 1, [8]).dataSync() as Float32Array;
    const dot = (p: number) => at(v, p).reduce((s, e, i) => s + e * at(w, p + 4)[i], 0);
    expect(dot(3)).toBeCloseTo(dot(0), 4);
    expect(dot(7)).toBeCloseTo(dot(0), 4);
  });

  it("positions_2d: (row, column) per token, row-major, on both engines", () => {
    expect(Array.from(F.positions2d(2, 3).dataSync())).toEqual([0, 0, 0, 1, 0, 2, 1, 0, 1, 1, 1, 2]);
    const g = new Graph();
    const p = withTrace(new TraceContext(g, new Map()), () => F.positions2d(3, 2)) as unknown as Sym;
    expect(p.shape).toEqual([6, 2]);
    expect(Array.from(evaluate(g, new Map(), new Map())[p.id])).toEqual([0, 0, 0, 1, 1, 0, 1, 1, 2, 0, 2, 1]);
  });
});

// ---------------------------------------------------------------- PyTorch fixtures

interface Arr {
  shape: number[];
  values: number[];
}
const REF = JSON.parse(readFileSync("test/fixtures/rope-attention/reference.json", "utf8")) as { cases: Record<string, Record<string, Any>> };
const t32 = (a: Arr) => tf.tensor(Float32Array.from(a.values), a.shape);

describe("PyTorch fixtures (test/fixtures/rope-attention/make.py)", () => {
  it.each(["flux_rope", "llama_rope"])("%s: output and d/dx within 1e-4 on both engines", (name) => {
    const c = REF.cases[name];
    const fn = (a: Record<string, Any>) => F.rope(a.x, a.pos, c.heads, c.axes_dim, c.theta, c.interleaved);
    const cs: Case = { params: { x: c.x.shape }, data: { pos: { shape: c.pos.shape, values: Float32Array.from(c.pos.values) } }, fn };
    const b = build(cs, 1);
    b.params.set("x", Float32Array.from(c.x.values));
    // the fixture's own output weights in the loss
    const g = b.g;
    const loss = g.sumTo(g.ew("mul", [b.y, g.constant(Float32Array.from(c.w), b.y.shape)]), [1]);
    const dx = differentiate(g, loss).grads.get("x")!;
    const vals = evaluate(g, b.feeds, b.params);
    const y = F.rope(t32(c.x), t32(c.pos), c.heads, c.axes_dim, c.theta, c.interleaved).dataSync() as Float32Array;
    expect(relErr(y, Float32Array.from(c.y))).toBeLessThan(1e-4);
    expect(relErr(vals[b.y.id], Float32Array.from(c.y))).toBeLessThan(1e-4);
    expect(relErr(vals[dx.id], Float32Array.from(c.dx))).toBeLessThan(1e-4);
  });

  it.each(["gqa_mask", "gqa_mask_causal"])("%s: output and d/dq, d/dk, d/dv within 1e-4 on both engines", (name) => {
    const c = REF.cases[name];
    const fn = (a: Record<string, Any>) => F.attention(a.q, a.k, a.v, c.heads, c.causal, a.mask, c.kv_heads);
    const cs: Case = { params: { q: c.q.shape, k: c.k.shape, v: c.v.shape }, data: { mask: { shape: c.mask.shape, values: Float32Array.from(c.mask.values) } }, fn };
    const b = build(cs, 1);
    for (const n of ["q", "k", "v"]) b.params.set(n, Float32Array.from(c[n].values));
    const g = b.g;
    const loss = g.sumTo(g.ew("mul", [b.y, g.constant(Float32Array.from(c.w), b.y.shape)]), [1]);
    const { grads } = differentiate(g, loss);
    const vals = evaluate(g, b.feeds, b.params);
    const y = F.attention(t32(c.q), t32(c.k), t32(c.v), c.heads, c.causal, t32(c.mask), c.kv_heads).dataSync() as Float32Array;
    expect(relErr(y, Float32Array.from(c.y))).toBeLessThan(1e-4);
    expect(relErr(vals[b.y.id], Float32Array.from(c.y))).toBeLessThan(1e-4);
    for (const n of ["q", "k", "v"]) expect(relErr(vals[grads.get(n)!.id], Float32Array.from(c[`d${n}`])), `d/d${n}`).toBeLessThan(1e-4);
  });
});

describe("neighbourhood attention (neighbourhood_mask as attention's mask [1, S, S'])", () => {
  it("PyTorch's gather form of NATTEN's na2d (5 x 6 grid, k = 3, 2 heads): output and d/dq, d/dk, d/dv within 1e-4 on tfjs, the interpreter and the native executor", () => {
    const c = REF.cases.neighbourhood;
    const [gh, gw] = c.grid;
    const fn = (a: Record<string, Any>) => F.attention(a.q, a.k, a.v, c.heads, false, F.neighbourhoodMask(gh, gw, c.kernel));
    const b = build({ params: { q: c.q.shape, k: c.k.shape, v: c.v.shape }, fn }, 1);
    for (const n of ["q", "k", "v"]) b.params.set(n, Float32Array.from(c[n].values));
    const g = b.g;
    const loss = g.sumTo(g.ew("mul", [b.y, g.constant(Float32Array.from(c.w), b.y.shape)]), [1]);
    const { grads } = differentiate(g, loss);
    const names = ["q", "k", "v"];
    const out = g.concat([g.reshape(b.y, [b.y.size]), ...names.map((n) => g.reshape(grads.get(n)!, [grads.get(n)!.size]))], 0);
    const want = Float32Array.from([...c.y, ...names.flatMap((n) => c[`d${n}`])]);
    // tfjs: forward and autodiff
    const ts = names.map((n) => t32(c[n]));
    const w = tf.tensor(Float32Array.from(c.w), c.q.shape);
    const y = fn({ q: ts[0], k: ts[1], v: ts[2] }) as tf.Tensor;
    const tg = tf.grads((q: tf.Tensor, k: tf.Tensor, v: tf.Tensor) => tf.sum(tf.mul(fn({ q, k, v }), w)))(ts);
    expect(relErr(Float32Array.from([...y.dataSync(), ...tg.flatMap((x) => [...x.dataSync()])]), want), "tfjs").toBeLessThan(1e-4);
    expect(relErr(evaluate(g, b.feeds, b.params)[out.id], want), "interpreter").toBeLessThan(1e-4);
    fuseGraph(g, [out.id]);
    expect(relErr(compileGraph({ graph: g, v: out, batch: 1 }, paramArena(b.params)).run(b.feeds), want), "native").toBeLessThan(1e-4);
  });

  it("the windows are NATTEN's: k x k keys, shifted inside the grid at the borders", () => {
    const m = F.neighbourhoodMask(4, 5, 3).dataSync();
    const keys = (i: number, j: number) => [...m.subarray((i * 5 + j) * 20, (i * 5 + j + 1) * 20)].flatMap((x, n) => (x ? [[Math.floor(n / 5), n % 5]] : []));
    // corner (0, 0): rows 0-2, columns 0-2 (not a 2 x 2 clipped window)
    expect(keys(0, 0)).toEqual([0, 1, 2].flatMap((r) => [0, 1, 2].map((col) => [r, col])));
    // interior (2, 2): centred; last column 4 of row 3: rows 1-3, columns 2-4
    expect(keys(2, 2)).toEqual([1, 2, 3].flatMap((r) => [1, 2, 3].map((col) => [r, col])));
    expect(keys(3, 4)).toEqual([1, 2, 3].flatMap((r) => [2, 3, 4].map((col) => [r, col])));
    expect(() => F.neighbourhoodMask(4, 5, 2)).toThrow(/must be odd/);
  });

  it("a per-query mask [B, S, S'] (neighbourhoods times key padding) is the same on both engines, forward and gradients", () => {
    const pad = prefixMask(12, [12, 7]);
    const nb = F.neighbourhoodMask(3, 4, 3).dataSync() as Float32Array;
    const m = new Float32Array(2 * 12 * 12);
    for (let b = 0; b < 2; b++) for (let i = 0; i < 12; i++) for (let j = 0; j < 12; j++) m[(b * 12 + i) * 12 + j] = nb[i * 12 + j] * pad[b * 12 + j];
    compareEngines({ params: { q: [2, 12, 8], k: [2, 12, 8], v: [2, 12, 8] }, data: { m: { shape: [2, 12, 12], values: m } }, fn: (a) => F.attention(a.q, a.k, a.v, 2, false, a.m) });
  });
});

describe("rope in the graph", () => {
  it("computes the cos/sin tables once per positions node (q and k of every block share them)", () => {
    const g = new Graph();
    const pos = g.input("pos", [5, 2]);
    const [q, k] = [g.input("q", [1, 5, 16]), g.input("k", [1, 5, 8])];
    const count = () => g.nodes.filter((n) => n.op.kind === "ew" && n.op.expr && "op" in n.op.expr && n.op.expr.op === "cos").length;
    F.rope(q as Any, pos as Any, 2, [4, 4]);
    F.rope(k as Any, pos as Any, 1, [4, 4]);
    expect(count()).toBe(1);
    F.rope(k as Any, pos as Any, 1, [2, 6]); // other frequencies: a table of their own
    expect(count()).toBe(2);
  });
});
