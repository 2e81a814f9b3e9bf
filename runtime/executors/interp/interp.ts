/**
 * The reference interpreter of static graphs: plain loops over Float32Arrays, one op at a time.
 * It defines what every kernel computes; the WebGPU executor is tested against it, and it is
 * tested against tfjs autodiff (test/runtime/graph.test.ts).
 */
import { type Graph, GraphError, type Node, type Op, broadcastStrides, broadcastStridesOf, operandLayout, sizeOf, stridesOf } from "../../graph/graph.ts";
import { compileExpr } from "../../graph/ops.ts";

export type Feeds = Map<string, Float32Array>;

/** Multi-index iteration helper: calls fn(linear index, multi-index) in row-major order. */
function forEachIndex(shape: readonly number[], fn: (i: number, idx: number[]) => void): void {
  const n = sizeOf(shape);
  const idx = new Array<number>(shape.length).fill(0);
  for (let i = 0; i < n; i++) {
    fn(i, idx);
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

/** Execute nodes [0, upTo) and return every node's value, by node id. */
export function evaluate(g: Graph, feeds: Feeds, params: Feeds, upTo = g.nodes.length): Float32Array[] {
  const vals: Float32Array[] = [];
  for (const node of g.nodes.slice(0, upTo)) vals.push(evalNode(g, node, vals, feeds, params));
  return vals;
}

/** What an op's evaluator sees: the graph, the node, the values so far (by node id), the feeds and the node's size. */
interface EvalCtx {
  g: Graph;
  node: Node;
  v: Float32Array[];
  feeds: Feeds;
  params: Feeds;
  n: number;
}

type OpOf<K extends Op["kind"]> = Extract<Op, { kind: K }>;

/** A fed value of the node's size, or a GraphError naming it. */
function need(c: EvalCtx, m: Feeds, name: string, what: string): Float32Array {
  const x = m.get(name);
  if (!x) throw new GraphError(`missing ${what} "${name}"`);
  if (x.length !== c.n) throw new GraphError(`${what} "${name}" has ${x.length} values, expected ${c.n}`);
  return x;
}

function evalEw({ g, node, v, n }: EvalCtx, op: OpOf<"ew">): Float32Array {
  const f = compileExpr(op.expr);
  const layouts = op.inputs.map((_, j) => operandLayout(g, op, j));
  const st = layouts.map((L) => broadcastStridesOf(L.shape, L.strides, node.shape));
  const base = layouts.map((L) => L.base);
  const ins = op.inputs.map((i) => v[i]);
  const r = new Float32Array(n);
  const args = new Float64Array(ins.length);
  forEachIndex(node.shape, (i, idx) => {
    for (let k = 0; k < ins.length; k++) {
      let off = base[k];
      for (let d = 0; d < idx.length; d++) off += idx[d] * st[k][d];
      args[k] = ins[k][off];
    }
    r[i] = f(args);
  });
  return r;
}

function evalGemm({ v, n }: EvalCtx, op: OpOf<"gemm">): Float32Array {
  const L = op.layout;
  const A = v[op.a];
  const B = v[op.b];
  const bias = op.bias === null ? null : v[op.bias];
  const rd = L.precision === "bf16" ? roundBf16 : (x: number) => x;
  const r = new Float32Array(n);
  for (let b1 = 0; b1 < L.batch[0]; b1++)
    for (let b2 = 0; b2 < L.batch[1]; b2++)
      for (let m = 0; m < L.m; m++)
        for (let j = 0; j < L.n; j++) {
          let s = 0;
          const ao = b1 * L.a[0] + b2 * L.a[1] + m * L.a[2];
          const bo = b1 * L.b[0] + b2 * L.b[1] + j * L.b[3];
          for (let k = 0; k < L.k; k++) s += rd(A[ao + k * L.a[3]]) * rd(B[bo + k * L.b[2]]);
          s *= L.alpha;
          if (bias) s += bias[j];
          r[b1 * L.c[0] + b2 * L.c[1] + m * L.c[2] + j * L.c[3]] = s;
        }
  return r;
}

function evalSumTo({ g, node, v, n }: EvalCtx, op: OpOf<"sum_to">): Float32Array {
  const src = v[op.src];
  const srcShape = g.node(op.src).shape;
  const st = broadcastStrides(node.shape, srcShape);
  const r = new Float64Array(n);
  forEachIndex(srcShape, (i, idx) => {
    let off = 0;
    for (let d = 0; d < idx.length; d++) off += idx[d] * st[d];
    r[off] += src[i];
  });
  return Float32Array.from(r, (x) => x * op.scale);
}

/** Layer norm over the last axis, or its input gradient (dy given). */
function evalLayerNorm({ node, v, n }: EvalCtx, op: OpOf<"layer_norm" | "layer_norm_grad">): Float32Array {
  const d = node.shape[node.shape.length - 1];
  const x = v[op.kind === "layer_norm" ? op.src : op.x];
  const dy = op.kind === "layer_norm_grad" ? v[op.dy] : null;
  const r = new Float32Array(n);
  for (let row = 0; row < n / d; row++) {
    let mean = 0;
    for (let j = 0; j < d; j++) mean += x[row * d + j];
    mean /= d;
    let vr = 0;
    for (let j = 0; j < d; j++) vr += (x[row * d + j] - mean) ** 2;
    const rstd = 1 / Math.sqrt(vr / d + op.eps);
    if (!dy) {
      for (let j = 0; j < d; j++) r[row * d + j] = (x[row * d + j] - mean) * rstd;
      continue;
    }
    let mdy = 0;
    let mdyx = 0;
    for (let j = 0; j < d; j++) {
      const xh = (x[row * d + j] - mean) * rstd;
      mdy += dy[row * d + j];
      mdyx += dy[row * d + j] * xh;
    }
    mdy /= d;
    mdyx /= d;
    for (let j = 0; j < d; j++) r[row * d + j] = rstd * (dy[row * d + j] - mdy - (x[row * d + j] - mean) * rstd * mdyx);
  }
  return r;
}

function evalSoftmax({ node, v, n }: EvalCtx, op: OpOf<"softmax">): Float32Array {
  const d = node.shape[node.shape.length - 1];
  const r = new Float32Array(n);
  const x = v[op.src];
  for (let row = 0; row < n / d; row++) {
    let mx = -Infinity;
    for (let j = 0; j < d; j++) mx = Math.max(mx, x[row * d + j]);
    let s = 0;
    for (let j = 0; j < d; j++) s += Math.exp(x[row * d + j] - mx);
    for (let j = 0; j < d; j++) r[row * d + j] = Math.exp(x[row * d + j] - mx) / s;
  }
  return r;
}

function evalSoftmaxGrad({ node, v, n }: EvalCtx, op: OpOf<"softmax_grad">): Float32Array {
  const d = node.shape[node.shape.length - 1];
  const r = new Float32Array(n);
  const y = v[op.y];
  const dy = v[op.dy];
  for (let row = 0; row < n / d; row++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += y[row * d + j] * dy[row * d + j];
    for (let j = 0; j < d; j++) r[row * d + j] = y[row * d + j] * (dy[row * d + j] - s);
  }
  return r;
}

/** A window of the source along one axis (slice), or the source placed in zeros (pad). */
function evalSliceOrPad({ g, node, v, n }: EvalCtx, op: OpOf<"slice" | "pad">): Float32Array {
  const src = v[op.src];
  const srcShape = g.node(op.src).shape;
  const sst = stridesOf(srcShape);
  const r = new Float32Array(n);
  forEachIndex(node.shape, (i, idx) => {
    const a = idx[op.axis] + (op.kind === "slice" ? op.start : -op.start);
    if (a < 0 || a >= srcShape[op.axis]) return;
    let off = 0;
    for (let d = 0; d < idx.length; d++) off += (d === op.axis ? a : idx[d]) * sst[d];
    r[i] = src[off];
  });
  return r;
}

function evalPermute({ g, node, v, n }: EvalCtx, op: OpOf<"permute">): Float32Array {
  const src = v[op.src];
  const sst = stridesOf(g.node(op.src).shape);
  const st = op.perm.map((p) => sst[p]);
  const r = new Float32Array(n);
  forEachIndex(node.shape, (i, idx) => {
    let off = 0;
    for (let d = 0; d < idx.length; d++) off += idx[d] * st[d];
    r[i] = src[off];
  });
  return r;
}

function evalConcat({ g, node, v, n }: EvalCtx, op: OpOf<"concat">): Float32Array {
  const r = new Float32Array(n);
  const shapes = op.inputs.map((i) => g.node(i).shape);
  forEachIndex(node.shape, (i, idx) => {
    let a = idx[op.axis];
    let k = 0;
    while (a >= shapes[k][op.axis]) a -= shapes[k++][op.axis];
    const sst = stridesOf(shapes[k]);
    let off = 0;
    for (let d = 0; d < idx.length; d++) off += (d === op.axis ? a : idx[d]) * sst[d];
    r[i] = v[op.inputs[k]][off];
  });
  return r;
}

/**
 * im2col: column (b, oh, ow) block (i, j) is src[b, oh*s - p + i, ow*s - p + j, :] (zeros
 * outside); col2im: each output element the sum (in float64) of the column entries that im2col
 * would copy from it.
 */
function evalWindows({ g, node, v, n }: EvalCtx, op: OpOf<"im2col" | "col2im">): Float32Array {
  const { k, stride: s, pad: p } = op;
  const img = op.kind === "im2col" ? g.node(op.src).shape : node.shape; // [B, H, W, C]
  const cols = op.kind === "im2col" ? node.shape : g.node(op.src).shape; // [B, Ho, Wo, k*k*C]
  const [bs, h, w, c] = img;
  const [, ho, wo, kkc] = cols;
  const src = v[op.src];
  const r = op.kind === "im2col" ? new Float32Array(n) : new Float64Array(n);
  for (let b = 0; b < bs; b++)
    for (let oh = 0; oh < ho; oh++)
      for (let ow = 0; ow < wo; ow++)
        for (let i = 0; i < k; i++)
          for (let j = 0; j < k; j++) {
            const [y, x] = [oh * s - p + i, ow * s - p + j];
            if (y < 0 || y >= h || x < 0 || x >= w) continue;
            const at = ((b * h + y) * w + x) * c;
            const col = ((b * ho + oh) * wo + ow) * kkc + (i * k + j) * c;
            for (let ch = 0; ch < c; ch++) {
              if (op.kind === "im2col") r[col + ch] = src[at + ch];
              else r[at + ch] += src[col + ch];
            }
          }
  return r instanceof Float32Array ? r : Float32Array.from(r);
}

/** Each op kind's evaluator: what every kernel computes. */
const EVAL: { [K in Op["kind"]]: (c: EvalCtx, op: OpOf<K>) => Float32Array } = {
  input: (c, op) => need(c, c.feeds, op.name, "input"),
  param: (c, op) => need(c, c.params, op.name, "parameter"),
  const: (_, op) => op.data,
  view: (c, op) => c.v[op.src],
  ew: evalEw,
  gemm: evalGemm,
  sum_to: evalSumTo,
  layer_norm: evalLayerNorm,
  layer_norm_grad: evalLayerNorm,
  softmax: evalSoftmax,
  softmax_grad: evalSoftmaxGrad,
  slice: evalSliceOrPad,
  pad: evalSliceOrPad,
  permute: evalPermute,
  concat: evalConcat,
  im2col: evalWindows,
  col2im: evalWindows,
};

function evalNode(g: Graph, node: Node, v: Float32Array[], feeds: Feeds, params: Feeds): Float32Array {
  const evalOp = EVAL[node.op.kind] as (c: EvalCtx, op: Op) => Float32Array;
  return evalOp({ g, node, v, feeds, params, n: sizeOf(node.shape) }, node.op);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
/** x as float32, rounded to the nearest bfloat16 (ties to even; a NaN stays NaN): what a bf16 GEMM multiplies. */
export function roundBf16(x: number): number {
  f32[0] = x;
  const u = u32[0];
  if ((u & 0x7fffffff) > 0x7f800000) return Number.NaN;
  u32[0] = (((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) << 16) >>> 0;
  return f32[0];
}
