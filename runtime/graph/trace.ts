/**
 * Tracing: the generated model code runs unchanged on symbolic tensors (`Sym`). The runtime's
 * primitives (nn/functional.ts, nn/layers.ts) check `isSym` and come here, where each call
 * appends graph nodes instead of computing. Parameters are looked up by their tf.Variable in
 * the active trace's name table (the ParamStore's state-dict names).
 */
import { type Graph, GraphError, type Sym, isSym, rootOf } from "./graph.ts";

/** Anything with a tfjs-Variable-like identity; the trace maps it to a state-dict name. */
type VarLike = object;

export interface OneHotInput {
  /** the graph input that receives the one-hot rows [B*T, vocab] */
  name: string;
  /** the integer input it is computed from (fed by the caller) */
  from: string;
  vocab: number;
}

/** A dropout mask the host draws for every step: keep / (1 - p) or 0 per element, fed as input `name`. */
export interface DropoutInput {
  name: string;
  shape: number[];
  p: number;
}

export class TraceContext {
  private readonly cache = new Map<VarLike, Sym>();
  readonly oneHots: OneHotInput[] = [];
  /** a training step (dropout active, its masks are inputs); false for the forward of sampling and validation */
  training = false;
  readonly dropouts: DropoutInput[] = [];
  constructor(
    readonly graph: Graph,
    private readonly names: Map<VarLike, { name: string; shape: readonly number[] }>,
  ) {}

  param(v: VarLike): Sym {
    const hit = this.cache.get(v);
    if (hit) return hit;
    const p = this.names.get(v);
    if (!p) throw new GraphError("a layer used a tensor that is not a parameter of the traced model");
    const s = this.graph.param(p.name, p.shape);
    this.cache.set(v, s);
    return s;
  }
}

let active: TraceContext | null = null;

/** The trace in progress, if any (layers without tensor arguments ask this). */
export function activeTrace(): TraceContext | null {
  return active;
}

/** Run `fn` with `ctx` as the active trace. */
export function withTrace<R>(ctx: TraceContext, fn: () => R): R {
  const prev = active;
  active = ctx;
  try {
    return fn();
  } finally {
    active = prev;
  }
}

function ctx(): TraceContext {
  if (!active) throw new GraphError("a symbolic tensor was used outside a trace");
  return active;
}

type Arg = Sym | number;
const graphOf = (...xs: unknown[]): Graph => {
  for (const x of xs) if (isSym(x)) return x.graph;
  throw new GraphError("no symbolic tensor among the arguments");
};
const checkArgs = (xs: unknown[]): Arg[] =>
  xs.map((x) => {
    if (typeof x === "number" || isSym(x)) return x;
    throw new GraphError("a concrete tensor met a symbolic one: every input of a traced model must be symbolic");
  });

/** The causal attention mask as a bias: -1e9 where query i must not see key j (j > i + sk - s), else 0; [s, sk] */
export function causalBias(s: number, sk: number): Float32Array {
  const bias = new Float32Array(s * sk);
  for (let i = 0; i < s; i++) for (let j = Math.max(0, i + sk - s + 1); j < sk; j++) bias[i * sk + j] = -1e9;
  return bias;
}

/**
 * RoPE's frequency matrix [A, d/2] (row-major, d = sum of axesDim): column j belongs to one axis
 * a (the axes in order) and holds theta^(-2i / axesDim[a]) there for its i-th pair, 0 elsewhere,
 * so positions [.., A] times it are the rotation angles [.., d/2] (Flux's `rope`, concatenated).
 */
export function ropeFrequencies(axesDim: readonly number[], theta: number): Float64Array {
  const half = axesDim.reduce((p, q) => p + q, 0) / 2;
  const w = new Float64Array(axesDim.length * half);
  let j = 0;
  axesDim.forEach((ad, a) => {
    for (let i = 0; i < ad / 2; i++) w[a * half + j++] = 1 / theta ** ((2 * i) / ad);
  });
  return w;
}

/** The (row, column) ids of a gh x gw grid, row-major: [gh*gw, 2]. */
export function gridPositions(gh: number, gw: number): Float32Array {
  const out = new Float32Array(gh * gw * 2);
  for (let i = 0; i < gh; i++) for (let j = 0; j < gw; j++) out.set([i, j], (i * gw + j) * 2);
  return out;
}

/** The score bias of a masked key: finite, so a row with every key masked stays a (uniform) softmax, not NaN. */
export const MASKED = -1e9;

/** RoPE's cos and sin tables for `pos` (constants when pos is one, else computed in the graph), shaped `table`. */
function ropeCosSin(g: Graph, pos: Sym, rows: number, half: number, axesDim: number[], theta: number, table: number[]): [Sym, Sym] {
  const axes = axesDim.length;
  const w = ropeFrequencies(axesDim, theta);
  const root = g.node(rootOf(g, pos.id)).op;
  if (root.kind === "const") {
    const [c, s] = [new Float32Array(rows * half), new Float32Array(rows * half)];
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < half; j++) {
        let ang = 0;
        for (let a = 0; a < axes; a++) ang += root.data[r * axes + a] * w[a * half + j];
        c[r * half + j] = Math.cos(ang);
        s[r * half + j] = Math.sin(ang);
      }
    }
    return [g.constant(c, table), g.constant(s, table)];
  }
  const ang = g.gemm(pos, g.constant(Float32Array.from(w), [axes, half]), [rows, half], { batch: [1, 1], m: rows, n: half, k: axes, alpha: 1, a: [0, 0, axes, 1], b: [0, 0, half, 1], c: [0, 0, half, 1] });
  return [g.reshape(g.ew("cos", [ang]), table), g.reshape(g.ew("sin", [ang]), table)];
}
const ropeTables = new WeakMap<Graph, Map<string, [Sym, Sym]>>();

/** The traced forms of nn/functional.ts (same names and arguments). */
export const T = {
  add: (a: unknown, b: unknown): Sym => graphOf(a, b).ew("add", checkArgs([a, b])),
  sub: (a: unknown, b: unknown): Sym => graphOf(a, b).ew("sub", checkArgs([a, b])),
  mul: (a: unknown, b: unknown): Sym => graphOf(a, b).ew("mul", checkArgs([a, b])),
  div: (a: unknown, b: unknown): Sym => graphOf(a, b).ew("div", checkArgs([a, b])),
  silu: (x: Sym): Sym => x.graph.ew("silu", [x]),
  relu: (x: Sym): Sym => x.graph.ew("relu", [x]),
  sigmoid: (x: Sym): Sym => x.graph.ew("sigmoid", [x]),
  tanh: (x: Sym): Sym => x.graph.ew("tanh", [x]),
  exp: (x: Sym): Sym => x.graph.ew("exp", [x]),
  log: (x: Sym): Sym => x.graph.ew("log", [x]),
  sqrt: (x: Sym): Sym => x.graph.ew("sqrt", [x]),
  rsqrt: (x: Sym): Sym => x.graph.ew("rsqrt", [x]),
  abs: (x: Sym): Sym => x.graph.ew("abs", [x]),
  softmax: (x: Sym): Sym => x.graph.softmax(x),
  // ---- elementwise: minimum, maximum, clamp, where, pow, square
  minimum: (a: unknown, b: unknown): Sym => graphOf(a, b).ew("min", checkArgs([a, b])),
  maximum: (a: unknown, b: unknown): Sym => graphOf(a, b).ew("max", checkArgs([a, b])),
  clamp: (x: Sym, min: number, max: number): Sym => x.graph.ew("max", [x.graph.ew("min", [x, max]), min]),
  /** keep(cond, a) + drop(cond, b): exact for any a and b (an infinite b where cond is nonzero is not read) */
  where(cond: unknown, a: unknown, b: unknown): Sym {
    const g = graphOf(cond, a, b);
    const [c, x, y] = checkArgs([cond, a, b]);
    if (typeof c === "number") throw new GraphError("where: the condition must be a tensor");
    return g.ew("add", [g.ew("keep", [c, x]), g.ew("drop", [c, y])]);
  },
  pow: (x: Sym, p: number): Sym => x.graph.ew("pow", [x, p]),
  square: (x: Sym): Sym => x.graph.ew("square", [x]),
  gelu: (x: Sym, approximate: boolean): Sym => x.graph.ew(approximate ? "gelu_tanh" : "gelu_erf", [x]),
  layerNorm: (x: Sym, eps: number): Sym => x.graph.layerNorm(x, eps),
  /** RMSNorm per head slice of the last axis, composed: x * rsqrt(mean(x^2) + eps). */
  rmsNorm(x: Sym, eps: number, heads: number): Sym {
    const g = x.graph;
    const d = x.shape[x.rank - 1];
    const xs = g.reshape(x, [...x.shape.slice(0, -1), heads, d / heads]); // [..., H, d]
    const ms = g.sumTo(g.ew("square", [xs]), [...xs.shape.slice(0, -1), 1], heads / d); // [..., H, 1]
    const y = g.ew("mul", [xs, g.ew("rsqrt", [g.ew("add", [ms, eps])])]);
    return g.reshape(y, x.shape);
  },
  /** y (from rmsNorm) times a per-head-slice weight [d / heads]. */
  scaleHeads(y: Sym, weight: VarLike, heads: number): Sym {
    const g = y.graph;
    const d = y.shape[y.rank - 1];
    const ys = g.reshape(y, [...y.shape.slice(0, -1), heads, d / heads]);
    return g.reshape(g.ew("mul", [ys, ctx().param(weight)]), y.shape);
  },

  split(x: Sym, sizes: number[], axis: number): Sym[] {
    const ax = axis < 0 ? axis + x.rank : axis;
    let at = 0;
    return sizes.map((s) => {
      const out = x.graph.slice(x, ax, at, s);
      at += s;
      return out;
    });
  },
  chunk(x: Sym, n: number, axis: number): Sym[] {
    const ax = axis < 0 ? axis + x.rank : axis;
    if (x.shape[ax] % n) throw new GraphError(`chunk: axis ${ax} of [${x.shape}] does not split into ${n}`);
    return T.split(x, new Array<number>(n).fill(x.shape[ax] / n), ax);
  },
  concat: (xs: Sym[], axis: number): Sym => xs[0].graph.concat(xs, axis),
  unsqueeze(x: Sym, axis: number): Sym {
    const ax = axis < 0 ? axis + x.rank + 1 : axis;
    return x.graph.reshape(x, [...x.shape.slice(0, ax), 1, ...x.shape.slice(ax)]);
  },
  mean(x: Sym, axis: number): Sym {
    const ax = axis < 0 ? axis + x.rank : axis;
    const keep = x.shape.map((d, i) => (i === ax ? 1 : d));
    const s = x.graph.sumTo(x, keep, 1 / x.shape[ax]);
    return x.graph.reshape(
      s,
      x.shape.filter((_, i) => i !== ax),
    );
  },
  flatten: (x: Sym): Sym => x.graph.reshape(x, [x.shape[0], -1]),
  /** Average pooling, window = stride = size, on [B, H, W, C]: a mean over the window axes of a reshape. */
  avgPool(x: Sym, size: number): Sym {
    const g = x.graph;
    const [b, h, w, c] = x.shape;
    const y = g.reshape(x, [b, h / size, size, w / size, size, c]);
    return g.reshape(g.sumTo(y, [b, h / size, 1, w / size, 1, c], 1 / (size * size)), [b, h / size, w / size, c]);
  },
  /** Max pooling, window = stride = size, on [B, H, W, C]: the elementwise max of the window's size^2 strided slices (the first maximum takes the gradient). */
  maxPool(x: Sym, size: number): Sym {
    const g = x.graph;
    const [b, h, w, c] = x.shape;
    const y = g.reshape(x, [b, h / size, size, w / size, size, c]);
    let m: Sym | null = null;
    for (let i = 0; i < size; i++) {
      for (let j = 0; j < size; j++) {
        const v = g.slice(g.slice(y, 2, i, 1), 4, j, 1); // [B, H/s, 1, W/s, 1, C]
        m = m ? g.ew("max", [m, v]) : v;
      }
    }
    return g.reshape(m!, [b, h / size, w / size, c]);
  },
  // ---- layout ops (reshape ... squeeze; the constants are T.constant)
  reshape: (x: Sym, shape: number[]): Sym => x.graph.reshape(x, shape),
  permute: (x: Sym, perm: number[]): Sym => x.graph.permute(x, perm),
  slice: (x: Sym, axis: number, start: number, len: number): Sym => x.graph.slice(x, axis, start, len),
  /** n copies tiled along an axis: a new axis of n before it, broadcast (one elementwise copy), merged */
  repeat(x: Sym, n: number, axis: number): Sym {
    const g = x.graph;
    const split = [...x.shape.slice(0, axis), 1, ...x.shape.slice(axis)];
    const wide = [...x.shape.slice(0, axis), n, ...x.shape.slice(axis)];
    const y = g.ew("id", [g.reshape(x, split)], wide);
    return g.reshape(
      y,
      x.shape.map((d, i) => (i === axis ? n * d : d)),
    );
  },
  broadcastTo(x: Sym, shape: number[]): Sym {
    if (x.shape.length === shape.length && x.shape.every((d, i) => d === shape[i])) return x;
    return x.graph.ew("id", [x], shape);
  },
  /** zero padding (graph pad), plus the value where it padded: a constant [1, .., total, .., 1] */
  pad(x: Sym, before: number, after: number, axis: number, value: number): Sym {
    const g = x.graph;
    const total = before + x.shape[axis] + after;
    if (total === x.shape[axis]) return x;
    const y = g.pad(x, axis, before, total);
    if (value === 0) return y;
    const fill = new Float32Array(total);
    for (let i = 0; i < total; i++) if (i < before || i >= before + x.shape[axis]) fill[i] = value;
    return g.ew("add", [y, g.constant(fill, x.shape.map((_, i) => (i === axis ? total : 1)))]);
  },

  /**
   * softmax(q k^T * scale + bias) v per head (scale 1 / sqrt(d) unless given), heads read in place from [B, S, H*d] (no
   * transposes). The mask sets masked scores to -1e9 (scores * mask + (1 - mask) * -1e9, a key
   * padding mask [B, S'] as [B, 1, 1, S'], a mask per query [B or 1, S, S'] as [B or 1, 1, S, S']);
   * the causal mask is a constant bias.
   * Grouped kv heads (kvHeads G < heads) are broadcast to the H heads first (the gradient sums
   * them back).
   */
  attention(q: Sym, k: Sym, v: Sym, heads: number, causal = false, mask?: Sym, kvHeads?: number, scale?: number): Sym {
    const g = q.graph;
    const [b, s, dm] = q.shape;
    const sk = k.shape[1];
    const d = dm / heads;
    if (mask) checkArgs([mask]);
    if (kvHeads && kvHeads !== heads) {
      const expand = (x: Sym) => g.reshape(g.ew("id", [g.reshape(x, [b, sk, kvHeads, 1, d])], [b, sk, kvHeads, heads / kvHeads, d]), [b, sk, dm]);
      [k, v] = [expand(k), expand(v)];
    }
    let scores = g.gemm(q, k, [b, heads, s, sk], g.autocasts({
      batch: [b, heads],
      m: s,
      n: sk,
      k: d,
      alpha: scale ?? 1 / Math.sqrt(d),
      a: [s * dm, d, dm, 1],
      b: [sk * dm, d, 1, dm],
      c: [heads * s * sk, s * sk, sk, 1],
    })); // [B, H, S, S']
    if (causal) scores = g.ew("add", [scores, g.constant(causalBias(s, sk), [s, sk])]);
    if (mask) {
      const m = mask.rank === 3 ? g.reshape(mask, [mask.shape[0], 1, s, sk]) : g.reshape(mask, [b, 1, 1, sk]);
      scores = g.ew("add", [g.ew("mul", [scores, m]), g.ew("mul", [g.ew("sub", [1, m]), MASKED])]);
    }
    const p = g.softmax(scores);
    return g.gemm(p, v, [b, s, dm], g.autocasts({
      batch: [b, heads],
      m: s,
      n: d,
      k: sk,
      alpha: 1,
      a: [heads * s * sk, s * sk, sk, 1],
      b: [sk * dm, d, dm, 1],
      c: [s * dm, d, dm, 1],
    })); // [B, S, H*d]
  },

  /**
   * RoPE on x [B, N, H*d] at positions pos [N, A] or [B, N, A]: each pair (x0, x1) of each head
   * becomes (x0 cos - x1 sin, x0 sin + x1 cos). Pairs are (2i, 2i+1) (interleaved, Flux) or
   * (i, i + d/2) (rotate-half). The cos/sin tables are constants when pos is one (computed on
   * the host in float64), else computed in the graph (a GEMM with the frequency matrix, sin, cos).
   */
  rope(x: Sym, pos: Sym, heads: number, axesDim: number[], theta: number, interleaved: boolean): Sym {
    checkArgs([x, pos]);
    const g = x.graph;
    const [b, n, dm] = x.shape;
    const half = dm / heads / 2;
    const lead = pos.rank === 3 ? b : 1;
    const table: number[] = interleaved ? [lead, n, 1, half, 1] : [lead, n, 1, 1, half];
    // one cos/sin pair per positions node and frequencies (a Flux block's q and k, every block)
    const key = `${pos.id}|${axesDim.join(",")}|${theta}|${interleaved}`;
    let tables = ropeTables.get(g);
    if (!tables) ropeTables.set(g, (tables = new Map()));
    const hit = tables.get(key);
    const [cos, sin] = hit ?? ropeCosSin(g, pos, lead * n, half, axesDim, theta, table);
    if (!hit) tables.set(key, [cos, sin]);
    const ax = interleaved ? 4 : 3;
    const xr = g.reshape(x, interleaved ? [b, n, heads, half, 2] : [b, n, heads, 2, half]);
    const [x0, x1] = [g.slice(xr, ax, 0, 1), g.slice(xr, ax, 1, 1)];
    const o0 = g.ew("sub", [g.ew("mul", [x0, cos]), g.ew("mul", [x1, sin])]);
    const o1 = g.ew("add", [g.ew("mul", [x0, sin]), g.ew("mul", [x1, cos])]);
    return g.reshape(g.concat([o0, o1], ax), x.shape);
  },

  timestepEmbedding(t: Sym, dim: number, flip: boolean, maxPeriod: number, scale: number): Sym {
    const g = t.graph;
    const half = dim / 2;
    const freqs = new Float32Array(half);
    for (let i = 0; i < half; i++) freqs[i] = Math.exp((-Math.log(maxPeriod) * i) / half) * scale;
    const args = g.ew("mul", [g.reshape(t, [t.shape[0], 1]), g.constant(freqs, [1, half])]); // [B, half]
    const sin = g.ew("sin", [args]);
    const cos = g.ew("cos", [args]);
    return g.concat(flip ? [cos, sin] : [sin, cos], 1);
  },

  unpatchify(x: Sym, gh: number, gw: number, patch: number, channels: number): Sym {
    const g = x.graph;
    const b = x.shape[0];
    const y = g.permute(g.reshape(x, [b, gh, gw, patch, patch, channels]), [0, 1, 3, 2, 4, 5]);
    return g.reshape(y, [b, gh * patch, gw * patch, channels]);
  },
  patchify(x: Sym, patch: number): Sym {
    const g = x.graph;
    const [b, h, w, c] = x.shape;
    const y = g.permute(g.reshape(x, [b, h / patch, patch, w / patch, patch, c]), [0, 1, 3, 5, 2, 4]);
    return g.reshape(y, [b, (h / patch) * (w / patch), c * patch * patch]);
  },

  /** x [..., K] W^T + b for a Linear layer's variables. */
  linear(x: Sym, weight: VarLike, bias: VarLike | null): Sym {
    const c = ctx();
    return x.graph.linear(x, c.param(weight), bias ? c.param(bias) : null);
  },
  /**
   * 2-D convolution on [B, H, W, C], weight [out, C, k, k] (PyTorch): im2col (the padded
   * windows as columns [B, Ho, Wo, k*k*C]; none for a 1x1 kernel at stride 1) and one GEMM
   * against the weight as [out, k*k*C].
   */
  conv2d(x: Sym, weight: VarLike, bias: VarLike, k: number, s: number, p: number): Sym {
    const c = ctx();
    const g = x.graph;
    const ch = x.shape[3];
    const cols = k === 1 && s === 1 && p === 0 ? x : g.im2col(x, { k, stride: s, pad: p });
    const wt = c.param(weight);
    const out = wt.shape[0];
    return g.linear(cols, g.reshape(g.permute(wt, [0, 2, 3, 1]), [out, k * k * ch]), c.param(bias));
  },
  /**
   * Transposed 2-D convolution on [B, H, W, C], weight [C, out, k, k] (PyTorch ConvTranspose2d):
   * one GEMM gives each input position's k x k block of outputs [B, H, W, k*k*out], and col2im
   * adds the blocks into the output at stride s, cropped by the padding (out side
   * (H - 1) s - 2p + k); then the bias.
   */
  convTranspose2d(x: Sym, weight: VarLike, bias: VarLike, k: number, s: number, p: number): Sym {
    const c = ctx();
    const g = x.graph;
    const [, h, w, ch] = x.shape;
    const wt = c.param(weight); // [C, out, k, k]
    const out = wt.shape[1];
    const blocks = g.linear(x, g.reshape(g.permute(wt, [2, 3, 1, 0]), [k * k * out, ch]), null); // [B, H, W, k*k*out]
    const y = g.col2im(blocks, (h - 1) * s - 2 * p + k, (w - 1) * s - 2 * p + k, { k, stride: s, pad: p }); // [B, Ho, Wo, out]
    return g.ew("add", [y, c.param(bias)]);
  },
  /** GroupNorm without affine on [B, ..., C]: each group's channels and positions as one row of a layer_norm. */
  groupNorm(x: Sym, groups: number, eps: number): Sym {
    const g = x.graph;
    const b = x.shape[0];
    const ch = x.shape[x.rank - 1];
    const n = x.size / (b * ch);
    const cg = ch / groups;
    const rows = g.permute(g.reshape(x, [b, n, groups, cg]), [0, 2, 1, 3]); // [B, G, N, Cg]
    const y = g.layerNorm(g.reshape(rows, [b, groups, n * cg]), eps);
    return g.reshape(g.permute(g.reshape(y, [b, groups, n, cg]), [0, 2, 1, 3]), x.shape);
  },
  /** Nearest upsampling of [B, H, W, C]: a broadcast copy [B, H, f, W, f, C]. */
  upsampleNearest(x: Sym, f: number): Sym {
    const g = x.graph;
    const [b, h, w, ch] = x.shape;
    if (f === 1) return x;
    const y = g.ew("id", [g.reshape(x, [b, h, 1, w, 1, ch])], [b, h, f, w, f, ch]);
    return g.reshape(y, [b, h * f, w * f, ch]);
  },
  /** Dropout: in a training step x times a mask input the host draws per step; the identity otherwise. */
  dropout(x: Sym, p: number): Sym {
    const c = ctx();
    if (!c.training || p === 0) return x;
    const name = `dropout.${c.dropouts.length}`;
    c.dropouts.push({ name, shape: [...x.shape], p });
    return x.graph.ew("mul", [x, c.graph.input(name, x.shape)]);
  },
  /** A parameter (or a constant table) as a node. */
  param: (v: VarLike): Sym => ctx().param(v),
  constant: (data: Float32Array, shape: number[]): Sym => ctx().graph.constant(data, shape),

  /** Token embedding as one-hot rows times the table (the one-hot is made on the host). */
  embedding(ids: Sym, weight: VarLike, vocab: number, width: number): Sym {
    const c = ctx();
    const node = c.graph.node(ids.id);
    if (node.op.kind !== "input") throw new GraphError("embedding: token ids must be an input of the traced step");
    const rows = ids.size;
    const name = `${node.op.name}.onehot`;
    let oh = c.graph.nodes.find((n) => n.op.kind === "input" && n.op.name === name);
    if (!oh) {
      c.oneHots.push({ name, from: node.op.name, vocab });
      oh = c.graph.node(c.graph.input(name, [rows, vocab]).id);
    }
    const w = c.param(weight); // [vocab, width]
    const y = c.graph.gemm(c.graph.sym(oh.id), w, [rows, width], { batch: [1, 1], m: rows, n: width, k: vocab, alpha: 1, a: [0, 0, vocab, 1], b: [0, 0, width, 1], c: [0, 0, width, 1] });
    return c.graph.reshape(y, [...ids.shape, width]);
  },
};

export { isSym };
