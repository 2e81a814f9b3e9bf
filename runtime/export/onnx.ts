/**
 * The static forward graph (runtime/graph: the velocity every executor runs, learned text encoder
 * included) lowered to ONNX: one lowering per graph op, none per architecture.
 *
 * The graph is traced at a fixed batch size; ONNX gets a dynamic batch axis by lowering the same
 * network traced at two batch sizes in lock step: every integer a lowering emits (reshape targets,
 * slice bounds, pads) is compared between the two, and a number that differs must be k * B (k the
 * same at both sizes), which becomes -1 in a reshape with one such dimension, else k times the
 * batch read from the image input at run time. Anything else that differs is refused.
 *
 * The interface is the IR's network's: the image and timestep inputs by their IR names, float32,
 * NHWC; a learned text encoder's token ids (int32 [B, T], `ids`; the padding mask is computed
 * from them inside the model), or a frozen encoder's features by their IR names; class labels
 * (int32 [B]) by theirs; the output is the velocity by the IR output's name.
 */
import { EW } from "../graph/ops.ts";
import { type Expr, type Graph, GraphError, broadcastShapes, type Node, type Op, liveNodes, sameShape, sizeOf } from "../graph/graph.ts";
import type { VelocityGraph } from "../graph/step-graph.ts";
import type { InputSig, TensorSig } from "../../ir/ir.ts";
import type { OnnxModel, OnnxNode, OnnxTensor, OnnxValue } from "./onnx-proto.ts";

/** The batch sizes of the two traces (any two distinct sizes work; small keeps tracing cheap). */
export const LOCKSTEP_BATCHES: readonly [number, number] = [2, 3];

/** The name the dynamic batch axis gets (the IR's). */
const BATCH = "B";

export interface OnnxInterface {
  /** the IR network's inputs (names, sources) and output */
  inputs: readonly InputSig[];
  output: TensorSig;
  /** a learned encoder's token count (its ids are an input of the exported model) */
  tokens?: number;
}

type Pair = [Node, Node];

/** An ONNX tensor name per graph node, nodes and initializers emitted in order. */
class Lowering {
  readonly nodes: OnnxNode[] = [];
  readonly inits: OnnxTensor[] = [];
  readonly inputs: OnnxValue[] = [];
  private readonly names = new Map<number, string>();
  private readonly consts = new Map<string, string>();
  private readonly initNames = new Set<string>();
  private tmp = 0;
  private batchDim: string | null = null;

  constructor(
    readonly g: [Graph, Graph],
    readonly b: readonly [number, number],
    /** an input whose axis 0 is the batch (the image) */
    private readonly batchSource: string,
  ) {}

  name(id: number): string {
    const n = this.names.get(id);
    if (n === undefined) throw new GraphError(`onnx: node ${id} was not lowered before its reader`);
    return n;
  }
  setName(id: number, name: string): void {
    this.names.set(id, name);
  }
  fresh(what: string): string {
    return `_${what}_${this.tmp++}`;
  }

  emit(op: string, inputs: string[], attrs?: OnnxNode["attrs"], out?: string): string {
    const o = out ?? this.fresh(op.toLowerCase());
    this.nodes.push({ op, inputs, outputs: [o], attrs });
    return o;
  }

  init(t: OnnxTensor): string {
    if (this.initNames.has(t.name)) throw new GraphError(`onnx: two initializers named ${t.name}`);
    this.initNames.add(t.name);
    this.inits.push(t);
    return t.name;
  }

  /** A float32 scalar constant (shared). */
  scalar(c: number): string {
    const key = `f:${Math.fround(c)}`;
    let n = this.consts.get(key);
    if (!n) {
      n = this.init({ name: `_c_${this.consts.size}`, dtype: "float", dims: [], data: Float32Array.of(c) });
      this.consts.set(key, n);
    }
    return n;
  }

  /** The int32 scalar 0. */
  int32Zero(): string {
    let n = this.consts.get("i32:0");
    if (!n) {
      n = this.init({ name: `_c_${this.consts.size}`, dtype: "int32", dims: [], data: Int32Array.of(0) });
      this.consts.set("i32:0", n);
    }
    return n;
  }

  /** A static int64 vector (shared). */
  ints(v: readonly number[]): string {
    const key = `i:${v.join(",")}`;
    let n = this.consts.get(key);
    if (!n) {
      n = this.init({ name: `_c_${this.consts.size}`, dtype: "int64", dims: [v.length], data: BigInt64Array.from(v, (x) => BigInt(x)) });
      this.consts.set(key, n);
    }
    return n;
  }

  /** The batch size at run time, as an int64 [1] (read once from the image input). */
  private batch(): string {
    if (!this.batchDim) {
      const shape = this.emit("Shape", [this.batchSource]);
      this.batchDim = this.emit("Slice", [shape, this.ints([0]), this.ints([1])], undefined, "batch_size");
    }
    return this.batchDim;
  }

  /**
   * An int64 vector whose entries are v1 at the first batch size and v2 at the second: entries
   * that differ are k * B. `minusOne`: a reshape target, where one such entry may be -1.
   */
  dims(v1: readonly number[], v2: readonly number[], what: string, minusOne = false): string {
    if (v1.length !== v2.length) throw new GraphError(`onnx: ${what} has rank ${v1.length} at batch ${this.b[0]} and ${v2.length} at batch ${this.b[1]}`);
    const k = v1.map((x, i) => {
      if (x === v2[i]) return 0;
      const f = x / this.b[0];
      if (!Number.isInteger(f) || f * this.b[1] !== v2[i]) throw new GraphError(`onnx: ${what}: ${x} at batch ${this.b[0]} and ${v2[i]} at batch ${this.b[1]} is not a multiple of the batch`);
      return f;
    });
    const dyn = k.filter((f) => f !== 0).length;
    if (dyn === 0) return this.ints(v1);
    if (dyn === 1 && minusOne) return this.ints(v1.map((x, i) => (k[i] !== 0 ? -1 : x)));
    const parts = v1.map((x, i) => (k[i] === 0 ? this.ints([x]) : k[i] === 1 ? this.batch() : this.emit("Mul", [this.batch(), this.ints([k[i]])])));
    return this.emit("Concat", parts, { axis: 0 });
  }
}

const shapes = (p: Pair): [number[], number[]] => [[...p[0].shape], [...p[1].shape]];

/** The elementwise expression of an ew node as ONNX operators. */
function lowerExpr(L: Lowering, e: Expr, operands: string[]): string {
  if ("c" in e) return L.scalar(e.c);
  if ("in" in e) return operands[e.in];
  const a = lowerExpr(L, e.args[0], operands);
  const b = EW[e.op].arity === 2 ? lowerExpr(L, e.args[1], operands) : "";
  const unary: Partial<Record<string, string>> = { id: "Identity", neg: "Neg", sqrt: "Sqrt", exp: "Exp", log: "Log", abs: "Abs", sin: "Sin", cos: "Cos", sigmoid: "Sigmoid", tanh: "Tanh", relu: "Relu" };
  const binary: Partial<Record<string, string>> = { add: "Add", sub: "Sub", mul: "Mul", div: "Div", min: "Min", max: "Max", pow: "Pow" };
  const u = unary[e.op];
  if (u) return L.emit(u, [a]);
  const bi = binary[e.op];
  if (bi) return L.emit(bi, [a, b]);
  const half = L.scalar(0.5);
  const one = L.scalar(1);
  switch (e.op) {
    case "square":
      return L.emit("Mul", [a, a]);
    case "rsqrt":
      return L.emit("Reciprocal", [L.emit("Sqrt", [a])]);
    case "silu":
      return L.emit("Mul", [a, L.emit("Sigmoid", [a])]);
    case "gelu_tanh": {
      // 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
      const x3 = L.emit("Mul", [L.emit("Mul", [a, a]), a]);
      const inner = L.emit("Mul", [L.scalar(Math.sqrt(2 / Math.PI)), L.emit("Add", [a, L.emit("Mul", [L.scalar(0.044715), x3])])]);
      return L.emit("Mul", [L.emit("Mul", [half, a]), L.emit("Add", [one, L.emit("Tanh", [inner])])]);
    }
    case "gelu_erf":
      return L.emit("Mul", [L.emit("Mul", [half, a]), L.emit("Add", [one, L.emit("Erf", [L.emit("Mul", [a, L.scalar(Math.SQRT1_2)])])])]);
    case "ge":
      return L.emit("Cast", [L.emit("GreaterOrEqual", [a, b])], { to: 1 });
    case "keep":
      return L.emit("Where", [L.emit("Equal", [a, L.scalar(0)]), L.scalar(0), b]);
    case "drop":
      return L.emit("Where", [L.emit("Equal", [a, L.scalar(0)]), b, L.scalar(0)]);
    default:
      throw new GraphError(`onnx: the elementwise operator ${e.op} is a gradient; the forward pass never uses it`);
  }
}

/**
 * Operand `id` of a gemm read through `strides` over the 4 axes of `sizes` (batch 1, batch 2,
 * rows, columns) as a [s0, s1, s2, s3] tensor: its storage reshaped to the axes ordered by
 * stride and transposed back. Axes read with stride 0 (a shared operand) stay of size 1, where
 * MatMul broadcasts; other layouts are refused.
 */
function readStrided(L: Lowering, p: Pair, sizes: [number[], number[]], strides: [number[], number[]], what: string): string {
  const axes = [0, 1, 2, 3].filter((i) => sizes[0][i] > 1 && strides[0][i] !== 0);
  for (const i of [0, 1, 2, 3]) if (sizes[0][i] > 1 && strides[0][i] === 0 && i >= 2) throw new GraphError(`onnx: ${what} is broadcast along a matrix axis`);
  const order = [...axes].sort((x, y) => strides[0][y] - strides[0][x] || x - y);
  const order2 = [...axes].sort((x, y) => strides[1][y] - strides[1][x] || x - y);
  if (order.join() !== order2.join()) throw new GraphError(`onnx: ${what} is laid out differently at the two batch sizes`);
  for (const t of [0, 1]) {
    let expect = 1;
    for (let j = order.length - 1; j >= 0; j--) {
      if (strides[t][order[j]] !== expect) throw new GraphError(`onnx: ${what} is not a permutation of its storage (strides ${strides[t]})`);
      expect *= sizes[t][order[j]];
    }
    if (expect !== sizeOf(p[t].shape)) throw new GraphError(`onnx: ${what} reads part of its storage`);
  }
  const src = L.name(p[0].id);
  const sorted = L.emit("Reshape", [src, L.dims(order.map((i) => sizes[0][i]), order.map((i) => sizes[1][i]), what, true)]);
  // back to the (b1, b2, m, k) order of the kept axes
  const perm = [...axes].map((i) => order.indexOf(i));
  const t = perm.every((q, i) => q === i) ? sorted : L.emit("Transpose", [sorted], { perm });
  const full = (s: number[], st: number[]) => s.map((d, i) => (st[i] === 0 ? 1 : d));
  return L.emit("Reshape", [t, L.dims(full(sizes[0], strides[0]), full(sizes[1], strides[1]), what, true)]);
}

function lowerGemm(L: Lowering, p: Pair, ops: [Extract<Op, { kind: "gemm" }>, Extract<Op, { kind: "gemm" }>]): string {
  const [l1, l2] = [ops[0].layout, ops[1].layout];
  const node = (t: 0 | 1, id: number) => L.g[t].node(id);
  const ab = (x: "a" | "b") => [node(0, ops[0][x]), node(1, ops[1][x])] as Pair;
  const aSizes = (l: typeof l1) => [l.batch[0], l.batch[1], l.m, l.k];
  const bSizes = (l: typeof l1) => [l.batch[0], l.batch[1], l.k, l.n];
  const a = readStrided(L, ab("a"), [aSizes(l1), aSizes(l2)], [l1.a, l2.a], `the left operand of node ${p[0].id}`);
  const b = readStrided(L, ab("b"), [bSizes(l1), bSizes(l2)], [l1.b, l2.b], `the right operand of node ${p[0].id}`);
  let c = L.emit("MatMul", [a, b]); // [b1, b2, m, n]
  if (l1.alpha !== 1) c = L.emit("Mul", [c, L.scalar(l1.alpha)]);
  if (ops[0].bias !== null) c = L.emit("Add", [c, L.name(ops[0].bias)]);
  // C written into this node's storage through the strides c: sort its axes by stride, then reshape
  const cSizes = (l: typeof l1) => [l.batch[0], l.batch[1], l.m, l.n];
  const s = [cSizes(l1), cSizes(l2)];
  const axes = [0, 1, 2, 3].filter((i) => s[0][i] > 1);
  const order = [...axes].sort((x, y) => l1.c[y] - l1.c[x] || x - y);
  let expect = 1;
  for (let j = order.length - 1; j >= 0; j--) {
    if (l1.c[order[j]] !== expect) throw new GraphError(`onnx: the output of node ${p[0].id} is not a permutation of its storage`);
    expect *= s[0][order[j]];
  }
  const kept = L.emit("Reshape", [c, L.dims(axes.map((i) => s[0][i]), axes.map((i) => s[1][i]), `the output of node ${p[0].id}`, true)]);
  const perm = order.map((i) => axes.indexOf(i));
  const t = perm.every((q, i) => q === i) ? kept : L.emit("Transpose", [kept], { perm });
  const [s1, s2] = shapes(p);
  return L.emit("Reshape", [t, L.dims(s1, s2, `node ${p[0].id}`, true)]);
}

/** im2col as ONNX: the zero-padded image, one strided Slice per window offset (i, j), concatenated. */
function lowerIm2col(L: Lowering, src: string, op: Extract<Op, { kind: "im2col" }>, cols: readonly number[]): string {
  const { k, stride: s, pad: p } = op;
  const [ho, wo] = [cols[1], cols[2]];
  const padded = p ? L.emit("Pad", [src, L.ints([0, p, p, 0, 0, p, p, 0]), L.scalar(0)]) : src;
  const blocks: string[] = [];
  for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) blocks.push(L.emit("Slice", [padded, L.ints([i, j]), L.ints([i + (ho - 1) * s + 1, j + (wo - 1) * s + 1]), L.ints([1, 2]), L.ints([s, s])]));
  return blocks.length === 1 ? blocks[0] : L.emit("Concat", blocks, { axis: 3 });
}

/**
 * col2im as ONNX: each window offset's block of C channels spread to stride s (zeros between),
 * cropped and padded into place (pixel oh*s - p + i), and the blocks summed.
 */
function lowerCol2im(L: Lowering, src: string, op: Extract<Op, { kind: "col2im" }>, cols: readonly number[], img: readonly number[]): string {
  const { k, stride: s, pad: p } = op;
  const [, h, w, c] = img;
  const [ho, wo] = [cols[1], cols[2]];
  const terms: string[] = [];
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < k; j++) {
      // rows r of the spread block land on r + i - p: keep r in [p - i, h + p - i) of [0, ho * s)
      const [r0, r1] = [Math.max(0, p - i), Math.min(ho * s, h + p - i)];
      const [q0, q1] = [Math.max(0, p - j), Math.min(wo * s, w + p - j)];
      if (r1 <= r0 || q1 <= q0) continue;
      let b = L.emit("Slice", [src, L.ints([(i * k + j) * c]), L.ints([(i * k + j + 1) * c]), L.ints([3])]); // [B, Ho, Wo, C]
      if (s > 1) {
        const wide = L.emit("Pad", [L.emit("Unsqueeze", [b, L.ints([2, 4])]), L.ints([0, 0, 0, 0, 0, 0, 0, 0, s - 1, 0, s - 1, 0]), L.scalar(0)]); // [B, Ho, s, Wo, s, C]
        b = L.emit("Reshape", [wide, L.ints([0, ho * s, wo * s, c])]);
      }
      const cut = L.emit("Slice", [b, L.ints([r0, q0]), L.ints([r1, q1]), L.ints([1, 2])]);
      const [top, left] = [r0 + i - p, q0 + j - p];
      terms.push(L.emit("Pad", [cut, L.ints([0, top, left, 0, 0, h - top - (r1 - r0), w - left - (q1 - q0), 0]), L.scalar(0)]));
    }
  }
  return terms.length === 1 ? terms[0] : L.emit("Sum", terms);
}

/** An input of the traced graph from the exported model's inputs. */
function lowerInput(L: Lowering, p: Pair, name: string, io: OnnxInterface, declare: (v: OnnxValue) => string): string {
  const bySource = (src: InputSig["source"]) => io.inputs.find((i) => i.source === src);
  const [s1] = shapes(p);
  const dims = (s: number[]) => [BATCH, ...s.slice(1)];
  const ids = () => declare({ name: "ids", dtype: "int32", dims: [BATCH, io.tokens ?? p[0].shape[1]] });
  const oneHot = (from: string, vocab: number) => {
    const idx = from === "ids" ? ids() : declare({ name: bySource("label")!.name, dtype: "int32", dims: [BATCH] });
    // rows of the identity: onnxruntime has no OneHot kernel for int32 ids and float rows
    const eye = L.init({ name: `_eye_${p[0].id}`, dtype: "float", dims: [vocab, vocab], data: Float32Array.from({ length: vocab * vocab }, (_, i) => (i % (vocab + 1) === 0 ? 1 : 0)) });
    const oh = L.emit("Gather", [eye, idx], { axis: 0 }); // [..., vocab]
    return L.emit("Reshape", [oh, L.dims(s1, [...p[1].shape], `the one-hot rows of ${from}`, true)]);
  };
  switch (name) {
    case "xt":
      return declare({ name: bySource("image")!.name, dtype: "float", dims: dims(s1) });
    case "t":
      return declare({ name: bySource("timestep")!.name, dtype: "float", dims: [BATCH] });
    case "ids":
      return L.emit("Cast", [ids()], { to: 1 });
    case "ids.onehot":
      return oneHot("ids", s1[1]);
    case "labels":
      return L.emit("Cast", [declare({ name: bySource("label")!.name, dtype: "int32", dims: [BATCH] })], { to: 1 });
    case "labels.onehot":
      return oneHot("labels", s1[1]);
    case "mask":
      // the learned encoder's padding mask: 1 for a token, 0 for padding (id 0)
      if (io.tokens !== undefined) return L.emit("Cast", [L.emit("Not", [L.emit("Equal", [ids(), L.int32Zero()])])], { to: 1 });
      return declare({ name: bySource("context_mask")!.name, dtype: "float", dims: dims(s1) });
    case "context":
    case "pooled":
      return declare({ name: bySource(name)!.name, dtype: "float", dims: dims(s1) });
    default:
      throw new GraphError(`onnx: the forward graph has an input "${name}" the exported model cannot feed`);
  }
}

/**
 * Lower the velocity graph, traced at the two LOCKSTEP_BATCHES sizes (`vgs`), to an ONNX model
 * with `params` as initializers.
 */
export function lowerVelocity(vgs: [VelocityGraph, VelocityGraph], params: Map<string, Float32Array>, io: OnnxInterface): Pick<OnnxModel, "nodes" | "initializers" | "inputs" | "outputs"> {
  const [g1, g2] = [vgs[0].graph, vgs[1].graph];
  if (g1.nodes.length !== g2.nodes.length || vgs[0].v.id !== vgs[1].v.id) throw new GraphError("onnx: the network traces to different graphs at two batch sizes");
  const image = io.inputs.find((i) => i.source === "image");
  if (!image) throw new GraphError("onnx: the network has no image input");
  const L = new Lowering([g1, g2], [vgs[0].batch, vgs[1].batch], image.name);
  const declared = new Map<string, string>();
  const declare = (v: OnnxValue): string => {
    if (!declared.has(v.name)) {
      L.inputs.push(v);
      declared.set(v.name, v.name);
    }
    return v.name;
  };
  const live = liveNodes(g1, [vgs[0].v.id]);
  for (const n1 of g1.nodes) {
    if (!live.has(n1.id)) continue;
    const n2 = g2.node(n1.id);
    const p: Pair = [n1, n2];
    const [op, op2] = [n1.op, n2.op];
    if (op.kind !== op2.kind) throw new GraphError(`onnx: node ${n1.id} is a ${op.kind} at one batch size and a ${op2.kind} at the other`);
    const [s1, s2] = shapes(p);
    const out = `n${n1.id}`;
    let name: string;
    switch (op.kind) {
      case "input":
        name = lowerInput(L, p, op.name, io, declare);
        break;
      case "param": {
        const data = params.get(op.name);
        if (!data) throw new GraphError(`onnx: no value for the parameter ${op.name}`);
        if (data.length !== sizeOf(s1)) throw new GraphError(`onnx: ${op.name} has ${data.length} values, its shape [${s1}] needs ${sizeOf(s1)}`);
        name = L.init({ name: op.name, dtype: "float", dims: s1, data });
        break;
      }
      case "const": {
        const d2 = (op2 as typeof op).data;
        if (sameShape(s1, s2) && op.data.every((x, i) => x === d2[i])) name = L.init({ name: `_const_${n1.id}`, dtype: "float", dims: s1, data: op.data });
        else if (op.data.every((x) => x === op.data[0]) && d2.every((x) => x === op.data[0])) name = L.emit("Expand", [L.scalar(op.data[0]), L.dims(s1, s2, `node ${n1.id}`)], undefined, out); // zeros([B, ...]), full(...)
        else throw new GraphError(`onnx: the constant node ${n1.id} [${s1}] depends on the batch size`);
        break;
      }
      case "view":
        name = L.emit("Reshape", [L.name(op.src), L.dims(s1, s2, `node ${n1.id}`, true)], undefined, out);
        break;
      case "ew": {
        if (op.access?.some((a) => a)) throw new GraphError("onnx: lower the graph before fusion (an ew node reads a strided window)");
        let r = lowerExpr(L, op.expr, op.inputs.map((i) => L.name(i)));
        // an explicit output shape wider than the operands: broadcast
        const natural = op.inputs.reduce<number[]>((s, i) => broadcastShapes(s, g1.node(i).shape), []);
        if (!sameShape(natural, s1)) r = L.emit("Expand", [r, L.dims(s1, s2, `node ${n1.id}`)]);
        name = L.emit("Identity", [r], undefined, out);
        break;
      }
      case "gemm":
        name = L.emit("Identity", [lowerGemm(L, p, [op, op2 as typeof op])], undefined, out);
        break;
      case "sum_to": {
        const src = g1.node(op.src).shape;
        const off = src.length - s1.length;
        const axes = src.map((d, i) => i).filter((i) => src[i] !== 1 && (i < off || s1[i - off] === 1));
        let r = axes.length ? L.emit("ReduceSum", [L.name(op.src), L.ints(axes)], { keepdims: 1 }) : L.name(op.src);
        if (op.scale !== 1) r = L.emit("Mul", [r, L.scalar(op.scale)]);
        name = L.emit("Reshape", [r, L.dims(s1, s2, `node ${n1.id}`, true)], undefined, out);
        break;
      }
      case "layer_norm": {
        const d = s1[s1.length - 1];
        if (d !== s2[s2.length - 1]) throw new GraphError(`onnx: layer_norm over the batch axis (node ${n1.id})`);
        const ones = L.init({ name: `_ones_${n1.id}`, dtype: "float", dims: [d], data: new Float32Array(d).fill(1) });
        name = L.emit("LayerNormalization", [L.name(op.src), ones], { axis: -1, epsilon: { float: op.eps } }, out);
        break;
      }
      case "softmax":
        name = L.emit("Softmax", [L.name(op.src)], { axis: -1 }, out);
        break;
      case "slice": {
        const o2 = op2 as typeof op;
        const len: [number, number] = [s1[op.axis], s2[op.axis]];
        name = L.emit("Slice", [L.name(op.src), L.dims([op.start], [o2.start], `node ${n1.id}`), L.dims([op.start + len[0]], [o2.start + len[1]], `node ${n1.id}`), L.ints([op.axis])], undefined, out);
        break;
      }
      case "pad": {
        const o2 = op2 as typeof op;
        const src = [g1.node(op.src).shape, g2.node(o2.src).shape];
        const pads = (s: readonly number[], total: readonly number[], start: number) => [...s.map((_, i) => (i === op.axis ? start : 0)), ...s.map((d, i) => (i === op.axis ? total[i] - start - d : 0))];
        name = L.emit("Pad", [L.name(op.src), L.dims(pads(src[0], s1, op.start), pads(src[1], s2, o2.start), `node ${n1.id}`), L.scalar(0)], undefined, out);
        break;
      }
      case "permute":
        name = L.emit("Transpose", [L.name(op.src)], { perm: op.perm }, out);
        break;
      case "concat":
        name = L.emit("Concat", op.inputs.map((i) => L.name(i)), { axis: op.axis }, out);
        break;
      case "im2col":
        name = L.emit("Identity", [lowerIm2col(L, L.name(op.src), op, s1)], undefined, out);
        break;
      case "col2im":
        name = L.emit("Identity", [lowerCol2im(L, L.name(op.src), op, g1.node(op.src).shape, s1)], undefined, out);
        break;
      default:
        throw new GraphError(`onnx: the forward graph has a ${op.kind} node (node ${n1.id}), which only training steps use`);
    }
    L.setName(n1.id, name);
  }
  const v = vgs[0].v;
  L.emit("Identity", [L.name(v.id)], undefined, io.output.name);
  return {
    nodes: L.nodes,
    initializers: L.inits,
    inputs: L.inputs,
    outputs: [{ name: io.output.name, dtype: "float", dims: [BATCH, ...v.shape.slice(1)] }],
  };
}
