/**
 * Stateless primitives the generated code calls (`F.silu(x)`, `F.attention(q, k, v, heads)`).
 * Each is the tfjs equivalent of the reference's PyTorch op, channels-last.
 */
import * as tf from "@tensorflow/tfjs";
import { broadcastShapes } from "../graph/graph.ts";
import { activeTrace, causalBias, gridPositions, isSym, MASKED, ropeFrequencies, T as G } from "../graph/trace.ts";

export class ShapeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ShapeError";
  }
}

type T = tf.Tensor;
type N = number | tf.Tensor;

// A symbolic tensor (runtime/graph/trace.ts) routes each primitive to the graph builder.
const sym = (...xs: unknown[]): boolean => xs.some(isSym);
/* eslint-disable @typescript-eslint/no-explicit-any */
type Any = any;

export const add = (a: N, b: N): T => (sym(a, b) ? (G.add(a, b) as Any) : tf.add(a, b));
export const sub = (a: N, b: N): T => (sym(a, b) ? (G.sub(a, b) as Any) : tf.sub(a, b));
export const mul = (a: N, b: N): T => (sym(a, b) ? (G.mul(a, b) as Any) : tf.mul(a, b));
export const div = (a: N, b: N): T => (sym(a, b) ? (G.div(a, b) as Any) : tf.div(a, b));

/** Exact integer division, as the compiler checked it statically. */
export function idiv(a: number, b: number): number {
  if (b === 0 || a % b !== 0) throw new ShapeError(`${a} / ${b} is not an exact integer division`);
  return a / b;
}

export const silu = (x: T): T => (sym(x) ? (G.silu(x as Any) as Any) : tf.mul(x, tf.sigmoid(x)));
export const relu = (x: T): T => (sym(x) ? (G.relu(x as Any) as Any) : tf.relu(x));
export const sigmoid = (x: T): T => (sym(x) ? (G.sigmoid(x as Any) as Any) : tf.sigmoid(x));
export const tanh = (x: T): T => (sym(x) ? (G.tanh(x as Any) as Any) : tf.tanh(x));
export const exp = (x: T): T => (sym(x) ? (G.exp(x as Any) as Any) : tf.exp(x));
export const log = (x: T): T => (sym(x) ? (G.log(x as Any) as Any) : tf.log(x));
export const sqrt = (x: T): T => (sym(x) ? (G.sqrt(x as Any) as Any) : tf.sqrt(x));
export const rsqrt = (x: T): T => (sym(x) ? (G.rsqrt(x as Any) as Any) : tf.rsqrt(x));
export const abs = (x: T): T => (sym(x) ? (G.abs(x as Any) as Any) : tf.abs(x));
/** softmax over the last axis */
export const softmax = (x: T): T => (sym(x) ? (G.softmax(x as Any) as Any) : tf.softmax(x));

// ---- elementwise: minimum, maximum, clamp, where, pow, square

/** Both operands broadcast to one shape first: tfjs's Maximum/Minimum gradients do not sum a broadcast back. */
function broadcastPair(a: N, b: N): [T, T] {
  const [ta, tb] = [typeof a === "number" ? tf.scalar(a) : a, typeof b === "number" ? tf.scalar(b) : b];
  const shape = broadcastShapes(ta.shape, tb.shape);
  const to = (x: T) => (x.shape.length === shape.length && x.shape.every((d, i) => d === shape[i]) ? x : tf.broadcastTo(x, shape));
  return [to(ta), to(tb)];
}

export function minimum(a: N, b: N): T {
  if (sym(a, b)) return G.minimum(a, b) as Any;
  return tf.tidy(() => tf.minimum(...broadcastPair(a, b)));
}
export function maximum(a: N, b: N): T {
  if (sym(a, b)) return G.maximum(a, b) as Any;
  return tf.tidy(() => tf.maximum(...broadcastPair(a, b)));
}
export function clamp(x: T, min: number, max: number): T {
  if (sym(x)) return G.clamp(x as Any, min, max) as Any;
  return tf.clipByValue(x, min, max);
}
/** cond ? a : b with cond a float mask (nonzero = true); cond gets no gradient. */
export function where(cond: T, a: N, b: N): T {
  if (sym(cond, a, b)) return G.where(cond, a, b) as Any;
  return tf.tidy(() => {
    const [ta, tb] = [typeof a === "number" ? tf.scalar(a) : a, typeof b === "number" ? tf.scalar(b) : b];
    // |sign(cond)| is exactly 0 or 1 (a cast of 0.3 is false on some backends), and has a (zero)
    // gradient in tfjs, where notEqual has none
    return tf.where(tf.cast(tf.abs(tf.sign(cond)), "bool"), ta, tb);
  });
}
export const pow = (x: T, p: number): T => (sym(x) ? (G.pow(x as Any, p) as Any) : tf.pow(x, p));
export const square = (x: T): T => (sym(x) ? (G.square(x as Any) as Any) : tf.square(x));

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
/** GELU; approximate = tanh form (PyTorch approximate="tanh"). */
export function gelu(x: T, approximate = false): T {
  if (sym(x)) return G.gelu(x as Any, approximate) as Any;
  return tf.tidy(() => {
    if (approximate) {
      const inner = tf.mul(SQRT_2_OVER_PI, tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
      return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)));
    }
    return tf.mul(tf.mul(0.5, x), tf.add(1, tf.erf(tf.div(x, Math.SQRT2))));
  });
}

/** LayerNorm over the last axis without affine parameters. */
export function layerNorm(x: T, eps = 1e-5): T {
  if (sym(x)) return G.layerNorm(x as Any, eps) as Any;
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(x, -1, true);
    return tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps)));
  });
}

/** RMSNorm over the last axis (per head slice when heads > 1), without weight. */
export function rmsNorm(x: T, eps = 1e-6, heads = 1): T {
  if (sym(x)) return G.rmsNorm(x as Any, eps, heads) as Any;
  return tf.tidy(() => {
    const shape = x.shape;
    const d = shape[shape.length - 1];
    const xs = heads > 1 ? tf.reshape(x, [...shape.slice(0, -1), heads, d / heads]) : x;
    const y = tf.mul(xs, tf.rsqrt(tf.add(tf.mean(tf.square(xs), -1, true), eps)));
    return heads > 1 ? tf.reshape(y, shape) : y;
  });
}

function axisOf(x: T, axis: number): number {
  return axis < 0 ? axis + x.rank : axis;
}

export function chunk(x: T, n: number, axis = -1): T[] {
  if (sym(x)) return G.chunk(x as Any, n, axis) as Any;
  return tf.split(x, n, axisOf(x, axis));
}

export function split(x: T, sizes: number[], axis = -1): T[] {
  if (sym(x)) return G.split(x as Any, sizes, axis) as Any;
  return tf.split(x, sizes, axisOf(x, axis));
}

export function concat(xs: T[], axis = -1): T {
  if (sym(...xs)) return G.concat(xs as Any, axis) as Any;
  return tf.concat(xs, axisOf(xs[0], axis));
}

export function unsqueeze(x: T, axis: number): T {
  if (sym(x)) return G.unsqueeze(x as Any, axis) as Any;
  return tf.expandDims(x, axis < 0 ? axis + x.rank + 1 : axis);
}

export function mean(x: T, axis: number): T {
  if (sym(x)) return G.mean(x as Any, axis) as Any;
  return tf.mean(x, axisOf(x, axis));
}

// ---- layout ops and constant tensors (reshape ... arange)

/** The new shape with its one -1 filled in (the compiler checked the counts; this checks them again at run time). */
function resolveShape(what: string, size: number, from: readonly number[], shape: number[]): number[] {
  const s = [...shape];
  const hole = s.indexOf(-1);
  const known = s.reduce((p, d) => (d === -1 ? p : p * d), 1);
  if (hole >= 0) s[hole] = size / known;
  if (s.some((d) => !Number.isInteger(d) || d < 1) || s.reduce((p, d) => p * d, 1) !== size) throw new ShapeError(`${what}: cannot reshape [${from}] to [${shape}]`);
  return s;
}

export function reshape(x: T, shape: number[]): T {
  const s = resolveShape("reshape", sizeOfShape(x.shape), x.shape, shape);
  if (sym(x)) return G.reshape(x as Any, s) as Any;
  return tf.reshape(x, s);
}

function sizeOfShape(s: readonly number[]): number {
  return s.reduce((p, d) => p * d, 1);
}

export function permute(x: T, perm: number[]): T {
  const p = perm.map((a) => axisOf(x, a));
  if (sym(x)) return G.permute(x as Any, p) as Any;
  return tf.transpose(x, p);
}

export function transpose(x: T, a: number, b: number): T {
  const p = x.shape.map((_, i) => i);
  const [i, j] = [axisOf(x, a), axisOf(x, b)];
  [p[i], p[j]] = [p[j], p[i]];
  return permute(x, p);
}

/** Elements start .. end - 1 along an axis; negative bounds count from the end. */
export function slice(x: T, start: number, end: number, axis = -1): T {
  const ax = axisOf(x, axis);
  const len = x.shape[ax];
  const s = start < 0 ? start + len : start;
  const e = end < 0 ? end + len : end;
  if (!(s >= 0 && e <= len && e > s)) throw new ShapeError(`slice: [${start}, ${end}) is out of range (or empty) for axis ${ax} of [${x.shape}]`);
  if (sym(x)) return G.slice(x as Any, ax, s, e - s) as Any;
  return tf.slice(x, x.shape.map((_, i) => (i === ax ? s : 0)), x.shape.map((d, i) => (i === ax ? e - s : d)));
}

/** n copies tiled along an axis. */
export function repeat(x: T, n: number, axis = -1): T {
  const ax = axisOf(x, axis);
  if (sym(x)) return G.repeat(x as Any, n, ax) as Any;
  return tf.tile(x, x.shape.map((_, i) => (i === ax ? n : 1)));
}

export function broadcastTo(x: T, shape: number[]): T {
  if (sym(x)) return G.broadcastTo(x as Any, shape) as Any;
  return tf.broadcastTo(x, shape);
}

/** Pad an axis with `before` and `after` elements of `value`. */
export function pad(x: T, before: number, after: number, axis = -1, value = 0): T {
  const ax = axisOf(x, axis);
  if (sym(x)) return G.pad(x as Any, before, after, ax, value) as Any;
  return tf.pad(
    x,
    x.shape.map((_, i) => (i === ax ? [before, after] : [0, 0])),
    value,
  );
}

export function squeeze(x: T, axis: number): T {
  const ax = axisOf(x, axis);
  if (x.shape[ax] !== 1) throw new ShapeError(`squeeze: axis ${ax} of [${x.shape}] does not have size 1`);
  return reshape(
    x,
    x.shape.filter((_, i) => i !== ax),
  );
}

/** A constant tensor of `shape` filled with `value` (a graph constant while tracing). */
export function full(shape: number[], value: number): T {
  if (activeTrace()) return G.constant(new Float32Array(sizeOfShape(shape)).fill(value), shape) as Any;
  return tf.fill(shape, value, "float32");
}
export const zeros = (shape: number[]): T => full(shape, 0);
export const ones = (shape: number[]): T => full(shape, 1);

/** 0, 1, ..., n - 1 as float32 [n]. */
export function arange(n: number): T {
  if (activeTrace()) return G.constant(Float32Array.from({ length: n }, (_, i) => i), [n]) as Any;
  return tf.range(0, n, 1, "float32");
}

/**
 * Multi-head scaled dot-product attention. q [B, S, D], k/v [B, S', D]; D = heads * d.
 * `mask` [B, S'] (1 = attend, 0 = padding) sets the scores of padded keys to -1e9 (scores * mask
 * + (1 - mask) * -1e9: finite, so a fully masked row is the plain average of the values, not NaN,
 * and its gradient is that function's). With `kvHeads` G, k and v are [B, S', G*d]
 * and query head h reads kv head floor(h / (heads / G)) (PyTorch's repeat_interleave).
 */
export function attention(q: T, k: T, v: T, heads: number, causal = false, mask?: T, kvHeads?: number): T {
  if (sym(q, k, v, mask)) return G.attention(q as Any, k as Any, v as Any, heads, causal, mask as Any, kvHeads) as Any;
  return tf.tidy(() => {
    const [b, s, dm] = q.shape as number[];
    const sk = k.shape[1] as number;
    const d = dm / heads;
    const split = (x: T, len: number) => tf.transpose(tf.reshape(x, [b, len, heads, d]), [0, 2, 1, 3]); // [B, H, S, d]
    // grouped kv heads: each repeated heads / G times in place ([B*S', G, 1, d] tiled to [B*S', G, r, d])
    const expand = (x: T) => (kvHeads && kvHeads !== heads ? tf.reshape(tf.tile(tf.reshape(x, [b * sk, kvHeads, 1, d]), [1, 1, heads / kvHeads, 1]), [b, sk, dm]) : x);
    const qh = split(q, s);
    const kh = split(expand(k), sk);
    const vh = split(expand(v), sk);
    let scores = tf.mul(tf.matMul(qh, kh, false, true), 1 / Math.sqrt(d)); // [B, H, S, S']
    if (causal) scores = tf.add(scores, tf.tensor2d(causalBias(s, sk), [s, sk]));
    if (mask) {
      const m = tf.reshape(mask, [b, 1, 1, sk]);
      scores = tf.add(tf.mul(scores, m), tf.mul(tf.sub(1, m), MASKED));
    }
    const o = tf.matMul(tf.softmax(scores, -1), vh); // [B, H, S, d]
    return tf.reshape(tf.transpose(o, [0, 2, 1, 3]), [b, s, dm]); // [B, S, D]
  });
}

/**
 * Rotary position embedding (Flux's EmbedND + apply_rope) of x [B, N, H*d], every head alike, at
 * positions pos [N, A] or [B, N, A]: axis a owns axesDim[a] channels (in order, adding up to d),
 * its i-th pair turned by the angle pos[., a] * theta^(-2i / axesDim[a]). Pairs are (2i, 2i+1)
 * when interleaved (Flux), else (i, i + d/2) (rotate-half: GPT-NeoX, HF Llama).
 */
export function rope(x: T, pos: T, heads: number, axesDim: number[], theta = 10000, interleaved = true): T {
  if (sym(x, pos)) return G.rope(x as Any, pos as Any, heads, axesDim, theta, interleaved) as Any;
  return tf.tidy(() => {
    const [b, n, dm] = x.shape as number[];
    const half = dm / heads / 2;
    const lead = pos.rank === 3 ? b : 1;
    const w = tf.tensor2d(Float32Array.from(ropeFrequencies(axesDim, theta)), [axesDim.length, half]);
    const ang = tf.reshape(tf.matMul(tf.reshape(pos, [-1, axesDim.length]), w), interleaved ? [lead, n, 1, half, 1] : [lead, n, 1, 1, half]);
    const [cos, sin] = [tf.cos(ang), tf.sin(ang)];
    const ax = interleaved ? 4 : 3;
    const [x0, x1] = tf.split(tf.reshape(x, interleaved ? [b, n, heads, half, 2] : [b, n, heads, 2, half]), 2, ax);
    const o0 = tf.sub(tf.mul(x0, cos), tf.mul(x1, sin));
    const o1 = tf.add(tf.mul(x0, sin), tf.mul(x1, cos));
    return tf.reshape(tf.concat([o0, o1], ax), [b, n, dm]);
  });
}

/** The position ids of a gh x gw grid: [gh*gw, 2], (row, column) per token, row-major. */
export function positions2d(gh: number, gw: number): T {
  if (activeTrace()) return G.constant(gridPositions(gh, gw), [gh * gw, 2]) as Any;
  return tf.tensor2d(gridPositions(gh, gw), [gh * gw, 2]);
}

/** Sinusoidal timestep embedding [B] -> [B, dim]; flip puts cos first (diffusers flip_sin_to_cos). */
export function timestepEmbedding(t: T, dim: number, flip = true, maxPeriod = 10000, scale = 1): T {
  if (sym(t)) return G.timestepEmbedding(t as Any, dim, flip, maxPeriod, scale) as Any;
  return tf.tidy(() => {
    const half = dim / 2;
    const freqs = new Float32Array(half);
    for (let i = 0; i < half; i++) freqs[i] = Math.exp((-Math.log(maxPeriod) * i) / half);
    const args = tf.mul(tf.mul(tf.expandDims(tf.cast(t, "float32"), 1), tf.tensor2d(freqs, [1, half])), scale); // [B, half]
    const sin = tf.sin(args);
    const cos = tf.cos(args);
    return flip ? tf.concat([cos, sin], 1) : tf.concat([sin, cos], 1);
  });
}

/** [B, gh*gw, p*p*C] -> [B, gh*p, gw*p, C] (PyTorch einsum "nhwpqc->nchpwq", channels last). */
export function unpatchify(x: T, gh: number, gw: number, patch: number, channels: number): T {
  if (sym(x)) return G.unpatchify(x as Any, gh, gw, patch, channels) as Any;
  return tf.tidy(() => {
    const b = x.shape[0];
    const y = tf.reshape(x, [b, gh, gw, patch, patch, channels]);
    return tf.reshape(tf.transpose(y, [0, 1, 3, 2, 4, 5]), [b, gh * patch, gw * patch, channels]);
  });
}

/** [B, H, W, C] -> [B, (H/p)*(W/p), C*p*p] with features ordered (c, i, j), as a conv weight [D, C, p, p] flattens. */
export function patchify(x: T, patch: number): T {
  if (sym(x)) return G.patchify(x as Any, patch) as Any;
  return tf.tidy(() => {
    const [b, h, w, c] = x.shape;
    const gh = h / patch;
    const gw = w / patch;
    const y = tf.reshape(x, [b, gh, patch, gw, patch, c]);
    return tf.reshape(tf.transpose(y, [0, 1, 3, 5, 2, 4]), [b, gh * gw, c * patch * patch]);
  });
}

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

/** GroupNorm without affine on channels-last [B, ..., C] (PyTorch GroupNorm: biased variance over each group's positions and channels). */
export function groupNorm(x: T, groups: number, eps = 1e-5): T {
  if (sym(x)) return G.groupNorm(x as Any, groups, eps) as Any;
  return tf.tidy(() => {
    const b = x.shape[0];
    const c = x.shape[x.rank - 1];
    const rows = tf.reshape(x, [b, -1, groups, c / groups]);
    const { mean, variance } = tf.moments(rows, [1, 3], true);
    return tf.reshape(tf.mul(tf.sub(rows, mean), tf.rsqrt(tf.add(variance, eps))), x.shape);
  });
}

/** Nearest-neighbour upsampling of [B, H, W, C] by an integer factor (each pixel repeated f x f). */
export function upsampleNearest(x: T, factor: number): T {
  if (sym(x)) return G.upsampleNearest(x as Any, factor) as Any;
  return tf.tidy(() => {
    const [b, h, w, c] = x.shape;
    // each pixel repeated along the width, then each row along the height: rank-3 tiles (tfjs has tile gradients up to rank 4)
    const cols = tf.tile(tf.reshape(x, [b * h * w, 1, c]), [1, factor, 1]); // [B*H*W, f, C]
    const rows = tf.tile(tf.reshape(cols, [b * h, 1, w * factor * c]), [1, factor, 1]); // [B*H, f, W*f*C]
    return tf.reshape(rows, [b, h * factor, w * factor, c]);
  });
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

/** Inverted dropout: in training each element is zeroed with probability p and the rest scaled by 1 / (1 - p); the identity otherwise. */
export function dropout(x: T, p: number): T {
  if (sym(x)) return G.dropout(x as Any, p) as Any;
  if (!train || p === 0) return x;
  const seed = (Math.imul(train.seed + 1, 0x9e3779b1) ^ Math.imul(++train.calls, 0x85ebca6b)) >>> 0;
  return tf.tidy(() => tf.mul(x, tf.mul(tf.cast(tf.greaterEqual(tf.randomUniform(x.shape, 0, 1, "float32", seed), p), "float32"), 1 / (1 - p))));
}

export function avgPool(x: T, size: number): T {
  if (sym(x)) return G.avgPool(x as Any, size) as Any;
  return tf.avgPool(x as tf.Tensor4D, size, size, "valid");
}

export function maxPool(x: T, size: number): T {
  if (sym(x)) return G.maxPool(x as Any, size) as Any;
  return tf.maxPool(x as tf.Tensor4D, size, size, "valid");
}

export function flatten(x: T): T {
  if (sym(x)) return G.flatten(x as Any) as Any;
  return tf.reshape(x, [x.shape[0], -1]);
}
