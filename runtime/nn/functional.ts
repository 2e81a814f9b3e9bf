/**
 * Stateless primitives the generated code calls (`F.silu(x)`, `F.attention(q, k, v, heads)`).
 * Each is the tfjs equivalent of the reference's PyTorch op, channels-last.
 */
import * as tf from "@tensorflow/tfjs";
import { broadcastShapes, type Sym } from "../graph/graph.ts";
import { activeTrace, causalBias, gridPositions, isSym, MASKED, ropeFrequencies, T as G } from "../graph/trace.ts";

export class ShapeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ShapeError";
  }
}

type T = tf.Tensor;
type N = number | tf.Tensor;

/* eslint-disable @typescript-eslint/no-explicit-any */
type Any = any;

/**
 * One primitive at run time: its tfjs lowering (eager, on tf.Tensor) and its graph lowering
 * (trace.ts's `T`, appending nodes to the traced graph). `call` runs `prepare` (defaults, axes,
 * run-time checks: what both lowerings take) and then the graph lowering when the call is traced,
 * else the tfjs one. The generated code calls `call` by the name the compiler's entry gives
 * (compiler/primitives/: `runtime`, or `fn` for a layer primitive without parameters).
 */
export interface Lowering<A extends unknown[], R> {
  tf: (...a: A) => R;
  graph: (...a: Any[]) => unknown;
  /** the arguments both lowerings take: defaults filled in, axes normalised, bad sizes refused (ShapeError) */
  prepare?: (...a: NoInfer<A>) => NoInfer<A>;
  /** whether the call is traced; default: an argument (or an element of a list argument) is symbolic */
  traced?: (...a: NoInfer<A>) => boolean;
}

export interface PrimRecord<A extends unknown[], R> extends Lowering<A, R> {
  call: (...a: A) => R;
}

// A symbolic tensor (runtime/graph/trace.ts) routes each primitive to the graph builder.
const symbolic = (...xs: unknown[]): boolean => xs.some((x) => isSym(x) || (Array.isArray(x) && x.some(isSym)));
/** A constant (no tensor arguments) is a graph constant while a trace is active. */
const tracing = (): boolean => activeTrace() !== null;

function record<A extends unknown[], R>(l: Lowering<A, R>): PrimRecord<A, R> {
  const traced = l.traced ?? symbolic;
  const call = (...a: A): R => {
    const b = l.prepare ? l.prepare(...a) : a;
    return traced(...b) ? (l.graph(...b) as R) : l.tf(...b);
  };
  return { ...l, call };
}

/** `+ - * /` on tensors and numbers (the operators, not primitives). */
export const OPERATORS = {
  add: record({ tf: (a: N, b: N): T => tf.add(a, b), graph: G.add }),
  sub: record({ tf: (a: N, b: N): T => tf.sub(a, b), graph: G.sub }),
  mul: record({ tf: (a: N, b: N): T => tf.mul(a, b), graph: G.mul }),
  div: record({ tf: (a: N, b: N): T => tf.div(a, b), graph: G.div }),
};
export const add = OPERATORS.add.call;
export const sub = OPERATORS.sub.call;
export const mul = OPERATORS.mul.call;
export const div = OPERATORS.div.call;

/** Exact integer division, as the compiler checked it statically. */
export function idiv(a: number, b: number): number {
  if (b === 0 || a % b !== 0) throw new ShapeError(`${a} / ${b} is not an exact integer division`);
  return a / b;
}

/** Integer floor division (`a div b` in a spec), as the compiler folded it. */
export function floordiv(a: number, b: number): number {
  if (b === 0) throw new ShapeError(`${a} div 0: division by zero`);
  return Math.floor(a / b);
}

/** `xs[i]` in a spec: an element of a list, a negative index from the end (the compiler checked the range). */
export function at<T>(xs: readonly T[], i: number): T {
  const k = i < 0 ? xs.length + i : i;
  if (!Number.isInteger(k) || k < 0 || k >= xs.length) throw new ShapeError(`index ${i} is out of range for a list of length ${xs.length}`);
  return xs[k];
}

/** `xs.pop()` in a spec: the last element, removed (the compiler checked the list is not empty). */
export function pop<T>(xs: T[]): T {
  if (!xs.length) throw new ShapeError("pop() of an empty list");
  return xs.pop()!;
}

/** Both operands broadcast to one shape first: tfjs's Maximum/Minimum gradients do not sum a broadcast back. */
function broadcastPair(a: N, b: N): [T, T] {
  const [ta, tb] = [typeof a === "number" ? tf.scalar(a) : a, typeof b === "number" ? tf.scalar(b) : b];
  const shape = broadcastShapes(ta.shape, tb.shape);
  const to = (x: T) => (x.shape.length === shape.length && x.shape.every((d, i) => d === shape[i]) ? x : tf.broadcastTo(x, shape));
  return [to(ta), to(tb)];
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

function axisOf(x: T, axis: number): number {
  return axis < 0 ? axis + x.rank : axis;
}

function sizeOfShape(s: readonly number[]): number {
  return s.reduce((p, d) => p * d, 1);
}

/** The new shape with its one -1 filled in (the compiler checked the counts; this checks them again at run time). */
function resolveShape(what: string, size: number, from: readonly number[], shape: number[]): number[] {
  const s = [...shape];
  const hole = s.indexOf(-1);
  const known = s.reduce((p, d) => (d === -1 ? p : p * d), 1);
  if (hole >= 0) s[hole] = size / known;
  if (s.some((d) => !Number.isInteger(d) || d < 1) || s.reduce((p, d) => p * d, 1) !== size) throw new ShapeError(`${what}: cannot reshape [${from}] to [${shape}]`);
  return s;
}

/** The permutation that swaps axes a and b. */
function swapAxes(x: T, a: number, b: number): number[] {
  const p = x.shape.map((_, i) => i);
  const [i, j] = [axisOf(x, a), axisOf(x, b)];
  [p[i], p[j]] = [p[j], p[i]];
  return p;
}

/** x's shape without axis `axis`, which must have size 1. */
function squeezed(x: T, axis: number): number[] {
  const ax = axisOf(x, axis);
  if (x.shape[ax] !== 1) throw new ShapeError(`squeeze: axis ${ax} of [${x.shape}] does not have size 1`);
  return x.shape.filter((_, i) => i !== ax);
}

/** start + i * step for i < n, in float64, rounded once to float32. */
function rampValues(n: number, start: number, step: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => start + i * step);
}

/**
 * The neighbourhood attention mask of an h x w grid (row-major tokens), NATTEN's windows: along
 * each axis of length L the window of index i starts at clamp(i - floor(k / 2), 0, L - k) and
 * has k entries. [h*w, h*w]: row = query, column = key, 1 inside the window.
 */
function neighbourhoodTable(h: number, w: number, k: number): Float32Array {
  if (k > h || k > w || k % 2 === 0) throw new ShapeError(`neighbourhood_mask: kernel ${k} must be odd and at most the grid's sides ${h} x ${w}`);
  const start = (i: number, len: number) => Math.min(Math.max(i - (k >> 1), 0), len - k);
  const n = h * w;
  const m = new Float32Array(n * n);
  for (let i = 0; i < h; i++) {
    for (let j = 0; j < w; j++) {
      const [r0, c0] = [start(i, h), start(j, w)];
      for (let r = r0; r < r0 + k; r++) m.fill(1, (i * w + j) * n + r * w + c0, (i * w + j) * n + r * w + c0 + k);
    }
  }
  return m;
}

/** Dropout is active only inside `training` (the tfjs engine's loss): validation and sampling run it as the identity. */
let train: { seed: number; calls: number } | null = null;

/** Run `fn` (a training step's forward) with dropout active, its masks drawn from `seed` (the step). */
export function training<R>(seed: number, fn: () => R): R {
  const prev = train;
  train = { seed, calls: 0 };
  try {
    return fn();
  } finally {
    train = prev;
  }
}

/**
 * The stateless primitives, by the compiler's names (test/runtime/prim-records.test.ts checks the
 * keys against compiler/primitives/). Each is the tfjs equivalent of the reference's PyTorch op,
 * channels-last; its graph form is trace.ts's.
 */
export const FUNCTIONS = {
  // ---- elementwise
  silu: record({ tf: (x: T): T => tf.mul(x, tf.sigmoid(x)), graph: G.silu }),
  relu: record({ tf: (x: T): T => tf.relu(x), graph: G.relu }),
  sigmoid: record({ tf: (x: T): T => tf.sigmoid(x), graph: G.sigmoid }),
  tanh: record({ tf: (x: T): T => tf.tanh(x), graph: G.tanh }),
  exp: record({ tf: (x: T): T => tf.exp(x), graph: G.exp }),
  log: record({ tf: (x: T): T => tf.log(x), graph: G.log }),
  sqrt: record({ tf: (x: T): T => tf.sqrt(x), graph: G.sqrt }),
  rsqrt: record({ tf: (x: T): T => tf.rsqrt(x), graph: G.rsqrt }),
  abs: record({ tf: (x: T): T => tf.abs(x), graph: G.abs }),
  sin: record({ tf: (x: T): T => tf.sin(x), graph: (x: Sym) => x.graph.ew("sin", [x]) }),
  cos: record({ tf: (x: T): T => tf.cos(x), graph: (x: Sym) => x.graph.ew("cos", [x]) }),
  /** softmax over the last axis */
  softmax: record({ tf: (x: T): T => tf.softmax(x), graph: G.softmax }),
  minimum: record({ tf: (a: N, b: N): T => tf.tidy(() => tf.minimum(...broadcastPair(a, b))), graph: G.minimum }),
  maximum: record({ tf: (a: N, b: N): T => tf.tidy(() => tf.maximum(...broadcastPair(a, b))), graph: G.maximum }),
  clamp: record({ tf: (x: T, min: number, max: number): T => tf.clipByValue(x, min, max), graph: G.clamp }),
  /** cond ? a : b with cond a float mask (nonzero = true); cond gets no gradient. */
  where: record({
    tf: (cond: T, a: N, b: N): T =>
      tf.tidy(() => {
        const [ta, tb] = [typeof a === "number" ? tf.scalar(a) : a, typeof b === "number" ? tf.scalar(b) : b];
        // |sign(cond)| is exactly 0 or 1 (a cast of 0.3 is false on some backends), and has a (zero)
        // gradient in tfjs, where notEqual has none
        return tf.where(tf.cast(tf.abs(tf.sign(cond)), "bool"), ta, tb);
      }),
    graph: G.where,
  }),
  pow: record({ tf: (x: T, p: number): T => tf.pow(x, p), graph: G.pow }),
  square: record({ tf: (x: T): T => tf.square(x), graph: G.square }),
  /** GELU; approximate = tanh form (PyTorch approximate="tanh"). */
  gelu: record({
    prepare: (x: T, approximate = false): [T, boolean] => [x, approximate],
    tf: (x: T, approximate?: boolean): T =>
      tf.tidy(() => {
        if (approximate) {
          const inner = tf.mul(SQRT_2_OVER_PI, tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
          return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)));
        }
        return tf.mul(tf.mul(0.5, x), tf.add(1, tf.erf(tf.div(x, Math.SQRT2))));
      }),
    graph: G.gelu,
  }),
  /** Inverted dropout: in training each element is zeroed with probability p and the rest scaled by 1 / (1 - p); the identity otherwise. */
  dropout: record({
    tf: (x: T, p: number): T => {
      if (!train || p === 0) return x;
      const seed = (Math.imul(train.seed + 1, 0x9e3779b1) ^ Math.imul(++train.calls, 0x85ebca6b)) >>> 0;
      return tf.tidy(() => tf.mul(x, tf.mul(tf.cast(tf.greaterEqual(tf.randomUniform(x.shape, 0, 1, "float32", seed), p), "float32"), 1 / (1 - p))));
    },
    graph: G.dropout,
  }),

  // ---- normalizations without parameters (the layers in layers.ts add weight and bias)
  /** LayerNorm over the last axis without affine parameters. */
  layer_norm: record({
    prepare: (x: T, eps = 1e-5): [T, number] => [x, eps],
    tf: (x: T, eps?: number): T =>
      tf.tidy(() => {
        const { mean, variance } = tf.moments(x, -1, true);
        return tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps!)));
      }),
    graph: G.layerNorm,
  }),
  /** RMSNorm over the last axis (per head slice when heads > 1), without weight. */
  rms_norm: record({
    prepare: (x: T, eps = 1e-6, heads = 1): [T, number, number] => [x, eps, heads],
    tf: (x: T, eps?: number, heads?: number): T =>
      tf.tidy(() => {
        const shape = x.shape;
        const d = shape[shape.length - 1];
        const xs = heads! > 1 ? tf.reshape(x, [...shape.slice(0, -1), heads!, d / heads!]) : x;
        const y = tf.mul(xs, tf.rsqrt(tf.add(tf.mean(tf.square(xs), -1, true), eps!)));
        return heads! > 1 ? tf.reshape(y, shape) : y;
      }),
    graph: G.rmsNorm,
  }),
  /** GroupNorm without affine on channels-last [B, ..., C] (PyTorch GroupNorm: biased variance over each group's positions and channels). */
  group_norm: record({
    prepare: (x: T, groups: number, eps = 1e-5): [T, number, number] => [x, groups, eps],
    tf: (x: T, groups: number, eps?: number): T =>
      tf.tidy(() => {
        const b = x.shape[0];
        const c = x.shape[x.rank - 1];
        const rows = tf.reshape(x, [b, -1, groups, c / groups]);
        const { mean, variance } = tf.moments(rows, [1, 3], true);
        return tf.reshape(tf.mul(tf.sub(rows, mean), tf.rsqrt(tf.add(variance, eps!))), x.shape);
      }),
    graph: G.groupNorm,
  }),

  // ---- layout ops, reductions and constant tensors
  chunk: record({ prepare: (x: T, n: number, axis = -1): [T, number, number] => [x, n, axis], tf: (x: T, n: number, axis?: number): T[] => tf.split(x, n, axisOf(x, axis!)), graph: G.chunk }),
  split: record({ prepare: (x: T, sizes: number[], axis = -1): [T, number[], number] => [x, sizes, axis], tf: (x: T, sizes: number[], axis?: number): T[] => tf.split(x, sizes, axisOf(x, axis!)), graph: G.split }),
  concat: record({ prepare: (xs: T[], axis = -1): [T[], number] => [xs, axis], tf: (xs: T[], axis?: number): T => tf.concat(xs, axisOf(xs[0], axis!)), graph: G.concat }),
  unsqueeze: record({ tf: (x: T, axis: number): T => tf.expandDims(x, axis < 0 ? axis + x.rank + 1 : axis), graph: G.unsqueeze }),
  mean: record({ tf: (x: T, axis: number): T => tf.mean(x, axisOf(x, axis)), graph: G.mean }),
  reshape: record({ prepare: (x: T, shape: number[]): [T, number[]] => [x, resolveShape("reshape", sizeOfShape(x.shape), x.shape, shape)], tf: (x: T, shape: number[]): T => tf.reshape(x, shape), graph: G.reshape }),
  permute: record({ prepare: (x: T, perm: number[]): [T, number[]] => [x, perm.map((a) => axisOf(x, a))], tf: (x: T, perm: number[]): T => tf.transpose(x, perm), graph: G.permute }),
  transpose: record({ tf: (x: T, a: number, b: number): T => tf.transpose(x, swapAxes(x, a, b)), graph: (x: Any, a: number, b: number) => G.permute(x, swapAxes(x, a, b)) }),
  /** Elements start .. end - 1 along an axis; negative bounds count from the end. */
  slice: record({
    prepare: (x: T, start: number, end: number, axis = -1): [T, number, number, number] => {
      const ax = axisOf(x, axis);
      const len = x.shape[ax];
      const s = start < 0 ? start + len : start;
      const e = end < 0 ? end + len : end;
      if (!(s >= 0 && e <= len && e > s)) throw new ShapeError(`slice: [${start}, ${end}) is out of range (or empty) for axis ${ax} of [${x.shape}]`);
      return [x, s, e, ax];
    },
    tf: (x: T, s: number, e: number, ax?: number): T =>
      tf.slice(
        x,
        x.shape.map((_, i) => (i === ax ? s : 0)),
        x.shape.map((d, i) => (i === ax ? e - s : d)),
      ),
    graph: (x: Any, s: number, e: number, ax: number) => G.slice(x, ax, s, e - s),
  }),
  /** n copies tiled along an axis. */
  repeat: record({ prepare: (x: T, n: number, axis = -1): [T, number, number] => [x, n, axisOf(x, axis)], tf: (x: T, n: number, ax?: number): T => tf.tile(x, x.shape.map((_, i) => (i === ax ? n : 1))), graph: G.repeat }),
  broadcast_to: record({ tf: (x: T, shape: number[]): T => tf.broadcastTo(x, shape), graph: G.broadcastTo }),
  /** Pad an axis with `before` and `after` elements of `value`. */
  pad: record({
    prepare: (x: T, before: number, after: number, axis = -1, value = 0): [T, number, number, number, number] => [x, before, after, axisOf(x, axis), value],
    tf: (x: T, before: number, after: number, ax?: number, value?: number): T =>
      tf.pad(
        x,
        x.shape.map((_, i) => (i === ax ? [before, after] : [0, 0])),
        value,
      ),
    graph: G.pad,
  }),
  squeeze: record({ tf: (x: T, axis: number): T => tf.reshape(x, squeezed(x, axis)), graph: (x: Any, axis: number) => G.reshape(x, squeezed(x, axis)) }),
  flatten: record({ tf: (x: T): T => tf.reshape(x, [x.shape[0], -1]), graph: G.flatten }),
  /** [B, gh*gw, p*p*C] -> [B, gh*p, gw*p, C] (PyTorch einsum "nhwpqc->nchpwq", channels last). */
  unpatchify: record({
    tf: (x: T, gh: number, gw: number, patch: number, channels: number): T =>
      tf.tidy(() => {
        const b = x.shape[0];
        const y = tf.reshape(x, [b, gh, gw, patch, patch, channels]);
        return tf.reshape(tf.transpose(y, [0, 1, 3, 2, 4, 5]), [b, gh * patch, gw * patch, channels]);
      }),
    graph: G.unpatchify,
  }),
  /** A constant tensor of `shape` filled with `value` (a graph constant while tracing). */
  full: record({ traced: tracing, tf: (shape: number[], value: number): T => tf.fill(shape, value, "float32"), graph: (shape: number[], value: number) => G.constant(new Float32Array(sizeOfShape(shape)).fill(value), shape) }),
  zeros: record({ traced: tracing, tf: (shape: number[]): T => tf.fill(shape, 0, "float32"), graph: (shape: number[]) => G.constant(new Float32Array(sizeOfShape(shape)), shape) }),
  ones: record({ traced: tracing, tf: (shape: number[]): T => tf.fill(shape, 1, "float32"), graph: (shape: number[]) => G.constant(new Float32Array(sizeOfShape(shape)).fill(1), shape) }),
  /** start, start + step, ..., start + (n - 1) step as float32 [n] (each computed in float64). */
  arange: record({
    traced: tracing,
    prepare: (n: number, start = 0, step = 1): [number, number, number] => [n, start, step],
    tf: (n: number, start?: number, step?: number): T => tf.tensor1d(rampValues(n, start!, step!), "float32"),
    graph: (n: number, start: number, step: number) => G.constant(rampValues(n, start, step), [n]),
  }),

  // ---- attention and positions
  /**
   * Multi-head scaled dot-product attention. q [B, S, D], k/v [B, S', D]; D = heads * d.
   * `mask` [B, S'] (1 = attend, 0 = padding) sets the scores of padded keys to -1e9 (scores * mask
   * + (1 - mask) * -1e9: finite, so a fully masked row is the plain average of the values, not NaN,
   * and its gradient is that function's). With `kvHeads` G, k and v are [B, S', G*d]
   * and query head h reads kv head floor(h / (heads / G)) (PyTorch's repeat_interleave). `scale`
   * multiplies the scores instead of 1 / sqrt(d).
   */
  attention: record({
    prepare: (q: T, k: T, v: T, heads: number, causal = false, mask?: T, kvHeads?: number, scale?: number): [T, T, T, number, boolean, T | undefined, number | undefined, number | undefined] => [q, k, v, heads, causal, mask, kvHeads, scale],
    tf: (q: T, k: T, v: T, heads: number, causal?: boolean, mask?: T, kvHeads?: number, scale?: number): T =>
      tf.tidy(() => {
        const [b, s, dm] = q.shape as number[];
        const sk = k.shape[1] as number;
        const d = dm / heads;
        const split = (x: T, len: number) => tf.transpose(tf.reshape(x, [b, len, heads, d]), [0, 2, 1, 3]); // [B, H, S, d]
        // grouped kv heads: each repeated heads / G times in place ([B*S', G, 1, d] tiled to [B*S', G, r, d])
        const expand = (x: T) => (kvHeads && kvHeads !== heads ? tf.reshape(tf.tile(tf.reshape(x, [b * sk, kvHeads, 1, d]), [1, 1, heads / kvHeads, 1]), [b, sk, dm]) : x);
        const qh = split(q, s);
        const kh = split(expand(k), sk);
        const vh = split(expand(v), sk);
        let scores = tf.mul(tf.matMul(qh, kh, false, true), scale ?? 1 / Math.sqrt(d)); // [B, H, S, S']
        if (causal) scores = tf.add(scores, tf.tensor2d(causalBias(s, sk), [s, sk]));
        if (mask) {
          const m = mask.rank === 3 ? tf.reshape(mask, [mask.shape[0], 1, s, sk]) : tf.reshape(mask, [b, 1, 1, sk]);
          scores = tf.add(tf.mul(scores, m), tf.mul(tf.sub(1, m), MASKED));
        }
        const o = tf.matMul(tf.softmax(scores, -1), vh); // [B, H, S, d]
        return tf.reshape(tf.transpose(o, [0, 2, 1, 3]), [b, s, dm]); // [B, S, D]
      }),
    graph: G.attention,
  }),
  /**
   * Rotary position embedding (Flux's EmbedND + apply_rope) of x [B, N, H*d], every head alike, at
   * positions pos [N, A] or [B, N, A]: axis a owns axesDim[a] channels (in order, adding up to d),
   * its i-th pair turned by the angle pos[., a] * theta^(-2i / axesDim[a]). Pairs are (2i, 2i+1)
   * when interleaved (Flux), else (i, i + d/2) (rotate-half: GPT-NeoX, HF Llama).
   */
  rope: record({
    prepare: (x: T, pos: T, heads: number, axesDim: number[], theta = 10000, interleaved = true): [T, T, number, number[], number, boolean] => [x, pos, heads, axesDim, theta, interleaved],
    tf: (x: T, pos: T, heads: number, axesDim: number[], theta?: number, interleaved?: boolean): T =>
      tf.tidy(() => {
        const [b, n, dm] = x.shape as number[];
        const half = dm / heads / 2;
        const lead = pos.rank === 3 ? b : 1;
        const w = tf.tensor2d(Float32Array.from(ropeFrequencies(axesDim, theta!)), [axesDim.length, half]);
        const ang = tf.reshape(tf.matMul(tf.reshape(pos, [-1, axesDim.length]), w), interleaved ? [lead, n, 1, half, 1] : [lead, n, 1, 1, half]);
        const [cos, sin] = [tf.cos(ang), tf.sin(ang)];
        const ax = interleaved ? 4 : 3;
        const [x0, x1] = tf.split(tf.reshape(x, interleaved ? [b, n, heads, half, 2] : [b, n, heads, 2, half]), 2, ax);
        const o0 = tf.sub(tf.mul(x0, cos), tf.mul(x1, sin));
        const o1 = tf.add(tf.mul(x0, sin), tf.mul(x1, cos));
        return tf.reshape(tf.concat([o0, o1], ax), [b, n, dm]);
      }),
    graph: G.rope,
  }),
  /** NATTEN's k x k neighbourhoods of an h x w grid as an attention mask [1, h*w, h*w] (1 = attend). */
  neighbourhood_mask: record({
    traced: tracing,
    tf: (h: number, w: number, k: number): T => tf.tensor3d(neighbourhoodTable(h, w, k), [1, h * w, h * w]),
    graph: (h: number, w: number, k: number) => G.constant(neighbourhoodTable(h, w, k), [1, h * w, h * w]),
  }),
  /** The position ids of a gh x gw grid: [gh*gw, 2], (row, column) per token, row-major. */
  positions_2d: record({ traced: tracing, tf: (gh: number, gw: number): T => tf.tensor2d(gridPositions(gh, gw), [gh * gw, 2]), graph: (gh: number, gw: number) => G.constant(gridPositions(gh, gw), [gh * gw, 2]) }),
  /** Sinusoidal timestep embedding [B] -> [B, dim]; flip puts cos first (diffusers flip_sin_to_cos). */
  timestep_embedding: record({
    prepare: (t: T, dim: number, flip = true, maxPeriod = 10000, scale = 1): [T, number, boolean, number, number] => [t, dim, flip, maxPeriod, scale],
    tf: (t: T, dim: number, flip?: boolean, maxPeriod?: number, scale?: number): T =>
      tf.tidy(() => {
        const half = dim / 2;
        const freqs = new Float32Array(half);
        for (let i = 0; i < half; i++) freqs[i] = Math.exp((-Math.log(maxPeriod!) * i) / half);
        const args = tf.mul(tf.mul(tf.expandDims(tf.cast(t, "float32"), 1), tf.tensor2d(freqs, [1, half])), scale!); // [B, half]
        const sin = tf.sin(args);
        const cos = tf.cos(args);
        return flip ? tf.concat([cos, sin], 1) : tf.concat([sin, cos], 1);
      }),
    graph: G.timestepEmbedding,
  }),

  // ---- images [B, H, W, C]
  /** Nearest-neighbour upsampling of [B, H, W, C] by an integer factor (each pixel repeated f x f). */
  upsample_nearest: record({
    tf: (x: T, factor: number): T =>
      tf.tidy(() => {
        const [b, h, w, c] = x.shape;
        // each pixel repeated along the width, then each row along the height: rank-3 tiles (tfjs has tile gradients up to rank 4)
        const cols = tf.tile(tf.reshape(x, [b * h * w, 1, c]), [1, factor, 1]); // [B*H*W, f, C]
        const rows = tf.tile(tf.reshape(cols, [b * h, 1, w * factor * c]), [1, factor, 1]); // [B*H, f, W*f*C]
        return tf.reshape(rows, [b, h * factor, w * factor, c]);
      }),
    graph: G.upsampleNearest,
  }),
  avg_pool: record({ tf: (x: T, size: number): T => tf.avgPool(x as tf.Tensor4D, size, size, "valid"), graph: G.avgPool }),
  max_pool: record({ tf: (x: T, size: number): T => tf.maxPool(x as tf.Tensor4D, size, size, "valid"), graph: G.maxPool }),
};

export const silu = FUNCTIONS.silu.call;
export const relu = FUNCTIONS.relu.call;
export const sigmoid = FUNCTIONS.sigmoid.call;
export const tanh = FUNCTIONS.tanh.call;
export const exp = FUNCTIONS.exp.call;
export const log = FUNCTIONS.log.call;
export const sqrt = FUNCTIONS.sqrt.call;
export const rsqrt = FUNCTIONS.rsqrt.call;
export const abs = FUNCTIONS.abs.call;
export const sin = FUNCTIONS.sin.call;
export const cos = FUNCTIONS.cos.call;
export const softmax = FUNCTIONS.softmax.call;
export const minimum = FUNCTIONS.minimum.call;
export const maximum = FUNCTIONS.maximum.call;
export const clamp = FUNCTIONS.clamp.call;
export const where = FUNCTIONS.where.call;
export const pow = FUNCTIONS.pow.call;
export const square = FUNCTIONS.square.call;
export const gelu = FUNCTIONS.gelu.call;
export const dropout = FUNCTIONS.dropout.call;
export const layerNorm = FUNCTIONS.layer_norm.call;
export const rmsNorm = FUNCTIONS.rms_norm.call;
export const groupNorm = FUNCTIONS.group_norm.call;
export const chunk = FUNCTIONS.chunk.call;
export const split = FUNCTIONS.split.call;
export const concat = FUNCTIONS.concat.call;
export const unsqueeze = FUNCTIONS.unsqueeze.call;
export const mean = FUNCTIONS.mean.call;
export const reshape = FUNCTIONS.reshape.call;
export const permute = FUNCTIONS.permute.call;
export const transpose = FUNCTIONS.transpose.call;
export const slice = FUNCTIONS.slice.call;
export const repeat = FUNCTIONS.repeat.call;
export const broadcastTo = FUNCTIONS.broadcast_to.call;
export const pad = FUNCTIONS.pad.call;
export const squeeze = FUNCTIONS.squeeze.call;
export const flatten = FUNCTIONS.flatten.call;
export const unpatchify = FUNCTIONS.unpatchify.call;
export const full = FUNCTIONS.full.call;
export const zeros = FUNCTIONS.zeros.call;
export const ones = FUNCTIONS.ones.call;
export const arange = FUNCTIONS.arange.call;
export const attention = FUNCTIONS.attention.call;
export const rope = FUNCTIONS.rope.call;
export const positions2d = FUNCTIONS.positions_2d.call;
export const neighbourhoodMask = FUNCTIONS.neighbourhood_mask.call;
export const timestepEmbedding = FUNCTIONS.timestep_embedding.call;
export const upsampleNearest = FUNCTIONS.upsample_nearest.call;
export const avgPool = FUNCTIONS.avg_pool.call;
export const maxPool = FUNCTIONS.max_pool.call;

/** [B, H, W, C] -> [B, (H/p)*(W/p), C*p*p] with features ordered (c, i, j), as a conv weight [D, C, p, p] flattens (PatchConv's input). */
export const patchify = record({
  tf: (x: T, patch: number): T =>
    tf.tidy(() => {
      const [b, h, w, c] = x.shape;
      const gh = h / patch;
      const gw = w / patch;
      const y = tf.reshape(x, [b, gh, patch, gw, patch, c]);
      return tf.reshape(tf.transpose(y, [0, 1, 3, 5, 2, 4]), [b, gh * gw, c * patch * patch]);
    }),
  graph: G.patchify,
}).call;

/** The fixed 2-D sin-cos table of diffusers' get_2d_sincos_pos_embed: [grid*grid, width], row-major. */
export function sincos2dTable(width: number, grid: number, base: number): Float32Array {
  const out = new Float32Array(grid * grid * width);
  const half = width / 2;
  const quarter = half / 2;
  const omega = Array.from({ length: quarter }, (_, i) => 1 / 10000 ** (i / quarter));
  for (let i = 0; i < grid; i++) {
    for (let j = 0; j < grid; j++) {
      const row = (i * grid + j) * width;
      const posW = j / (grid / base); // grid[0]: the w coordinate feeds the first half
      const posH = i / (grid / base);
      for (let k = 0; k < quarter; k++) {
        out[row + k] = Math.sin(posW * omega[k]);
        out[row + quarter + k] = Math.cos(posW * omega[k]);
        out[row + half + k] = Math.sin(posH * omega[k]);
        out[row + half + quarter + k] = Math.cos(posH * omega[k]);
      }
    }
  }
  return out;
}
