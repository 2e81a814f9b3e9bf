/**
 * Lowering of a static graph to a program of the native CPU executor (runtime/executors/native/src): one
 * instruction per kernel, written into a Float64Array that the addon decodes once (checking every
 * access against its arena) and then replays with no host work. Pure: it knows nothing of the
 * addon, only where each node lives (`Place`). The kernels compute what the reference interpreter
 * (cpu.ts) defines; the elementwise operators come from the one table in ops.ts.
 */
import { type Expr, type GemmLayout, type Graph, GraphError, type Node, type Op, broadcastStrides, broadcastStridesOf, operandLayout, sizeOf, stridesOf } from "../../graph/graph.ts";
import { EW } from "../../graph/ops.ts";

/** Where a tensor lives: an arena (index into the program's ArrayBuffers) and a float offset. */
export interface Place {
  arena: number;
  offset: number;
}

export const NULL_PLACE: Place = { arena: -1, offset: 0 };

/**
 * Instruction codes, defined here once: `npm run gen:native` writes them to src/op_codes.inc,
 * which src/addon.cc's `enum Op` includes (each name in SCREAMING_SNAKE case: SumTo is SUM_TO).
 */
export const Code = {
  Ew: 1,
  Gemm: 2,
  SumTo: 3,
  Ln: 4,
  LnGrad: 5,
  Softmax: 6,
  SoftmaxGrad: 7,
  Copy: 8,
  Fill: 9,
  Adam: 10,
  GemmBf16: 11,
  Im2col: 12,
  Col2im: 13,
  Chain: 14,
} as const;

/** src/op_codes.inc: one `OP(NAME, code)` line per instruction code. */
export function opCodesInc(): string {
  const snake = (n: string) => n.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
  const lines = ["// generated from runtime/executors/native/lower.ts by `npm run gen:native`: do not edit", "// OP(NAME, code)"];
  for (const [name, code] of Object.entries(Code)) lines.push(`OP(${snake(name)}, ${code})`);
  return lines.join("\n") + "\n";
}

/** Operator ids: positions in the EW table. */
const EW_IDS = new Map(Object.keys(EW).map((k, i) => [k, i] as const));

/** runtime/executors/native/src/ew_ops.inc: one macro line per elementwise operator, from ops.ts. */
export function ewOpsInc(): string {
  const lines = ["// generated from runtime/graph/ops.ts by `npm run gen:native`: do not edit", "// EWn(id, name, C expression over float a[, b])"];
  for (const [name, def] of Object.entries(EW)) lines.push(`EW${def.arity}(${EW_IDS.get(name)}, ${name}, ${def.c})`);
  return lines.join("\n") + "\n";
}

/**
 * Merge adjacent axes that every access walks as one (stride[i] = stride[i+1] * shape[i+1]) and
 * drop unit axes: fewer, longer loops in the kernels.
 */
export function collapse(shape: readonly number[], strides: readonly (readonly number[])[]): { shape: number[]; strides: number[][] } {
  const keep = shape.map((d, i) => (d === 1 ? -1 : i)).filter((i) => i >= 0);
  let s = keep.map((i) => shape[i]);
  let st = strides.map((x) => keep.map((i) => x[i]));
  if (s.length === 0) return { shape: [1], strides: strides.map(() => [0]) };
  for (let i = s.length - 2; i >= 0; i--) {
    if (st.every((x) => x[i] === x[i + 1] * s[i + 1])) {
      s = [...s.slice(0, i), s[i] * s[i + 1], ...s.slice(i + 2)];
      st = st.map((x) => [...x.slice(0, i), x[i + 1], ...x.slice(i + 2)]);
    }
  }
  return { shape: s, strides: st };
}

/** Postfix code of an expression: [kind, op, constant] triples (0 operand, 1 constant, 2 operator). */
export function postfix(e: Expr, out: number[] = []): number[] {
  if ("c" in e) out.push(1, 0, e.c);
  else if ("in" in e) out.push(0, e.in, 0);
  else {
    for (const a of e.args) postfix(a, out);
    const id = EW_IDS.get(e.op);
    if (id === undefined) throw new GraphError(`no native form of elementwise operator ${e.op}`);
    out.push(2, id, 0);
  }
  return out;
}

/** A GEMM whose C is stored column by column (C[m, n] at m + n * ldc: a weight gradient of the [out, in] weight). */
export function writesColumns(L: GemmLayout): boolean {
  return L.c[2] === 1 && L.c[3] !== 1 && L.n > 1;
}

/**
 * The same product as C^T = B^T A^T: M and N swapped, A and B swapped (the caller swaps the
 * operands), every stride pair of (m, k), (k, n), (m, n) read the other way round. The kernels
 * then store C row by row (contiguous tiles) instead of scattering each tile's columns. Every
 * element is the same sum of the same products in the same K order: the same bits.
 */
export function transposedGemm(L: GemmLayout): GemmLayout {
  const t = (s: readonly number[]): [number, number, number, number] => [s[0], s[1], s[3], s[2]];
  return { ...L, m: L.n, n: L.m, a: t(L.b), b: t(L.a), c: t(L.c) };
}

export interface AdamArgs {
  g: Place;
  p: Place;
  m: Place;
  v: Place;
  ema: Place | null;
  /** 4 floats written per step: lr, 1 - beta1^t, sqrt(1 - beta2^t), EMA decay */
  hyper: Place;
  /** 2 floats out: gradient norm, clip factor */
  stats: Place;
  n: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  clip: number;
  decoupled: boolean;
}

/** Builds a program. */
export class ProgramWriter {
  private readonly w: number[] = [];
  /** one label per kernel, for profiles */
  readonly labels: string[] = [];
  /** the graph node of each kernel (-1: the optimizer), for profiles */
  readonly nodes: number[] = [];

  get kernels(): number {
    return this.labels.length;
  }

  private ptr(p: Place, plus = 0): void {
    this.w.push(p.arena, p.arena < 0 ? 0 : p.offset + plus);
  }

  finish(): Float64Array {
    return Float64Array.from(this.w);
  }

  /** The kernels of one node (none for inputs, parameters, constants and views). */
  node(g: Graph, node: Node, at: (id: number) => Place): void {
    if (this.emit(g, node, at)) this.mark(`${node.tag}:${node.op.kind}`, node.id);
  }

  /**
   * One instruction for a chain's nodes (chains.ts): CHAIN, the batch count, the step count, the
   * local tensors' count, each local tensor (where, floats of one batch), then each node's own
   * instruction; labelled `attention` when it has a softmax, else `chain`.
   */
  chain(g: Graph, nodes: readonly Node[], nbatch: number, locals: readonly { node: number; floats: number }[], at: (id: number) => Place): void {
    this.w.push(Code.Chain, nbatch, nodes.length, locals.length);
    for (const l of locals) {
      this.ptr(at(l.node));
      this.w.push(l.floats);
    }
    for (const n of nodes) {
      if (n.op.kind !== "gemm" && n.op.kind !== "softmax" && n.op.kind !== "softmax_grad") throw new GraphError(`a chain step must be a GEMM, a softmax or its gradient, not ${n.op.kind}`);
      this.emit(g, n, at);
    }
    this.mark(`${nodes[0].tag}:${nodes.some((n) => n.op.kind === "softmax" || n.op.kind === "softmax_grad") ? "attention" : "chain"}`, nodes[0].id);
  }

  /** Writes a node's instructions; false when it has none. Nodes of several kernels mark all but their last. */
  private emit(g: Graph, node: Node, at: (id: number) => Place): boolean {
    const op = node.op;
    const label = `${node.tag}:${op.kind}`;
    const out = at(node.id);
    const shapeOf = (id: number) => g.node(id).shape;
    switch (op.kind) {
      case "input":
      case "param":
      case "const":
      case "view":
        return false;
      case "ew": {
        const layouts = op.inputs.map((_, j) => operandLayout(g, op, j));
        const st = layouts.map((L) => broadcastStridesOf(L.shape, L.strides, node.shape));
        const c = collapse(node.shape, [stridesOf(node.shape), ...st]);
        this.w.push(Code.Ew);
        this.ptr(out);
        this.w.push(c.shape.length, ...c.shape, op.inputs.length);
        op.inputs.forEach((id, j) => {
          this.ptr(at(id), layouts[j].base);
          this.w.push(...c.strides[j + 1]);
        });
        const code = postfix(op.expr);
        this.w.push(code.length / 3, ...code);
        break;
      }
      case "gemm": {
        const swap = op.bias === null && writesColumns(op.layout);
        const L = swap ? transposedGemm(op.layout) : op.layout;
        this.w.push(L.precision === "bf16" ? Code.GemmBf16 : Code.Gemm);
        this.ptr(at(swap ? op.b : op.a));
        this.ptr(at(swap ? op.a : op.b));
        this.ptr(out);
        this.ptr(op.bias === null ? NULL_PLACE : at(op.bias));
        this.w.push(L.batch[0], L.batch[1], L.m, L.n, L.k, L.alpha, ...L.a, ...L.b, ...L.c);
        break;
      }
      case "sum_to": {
        const srcShape = shapeOf(op.src);
        const ost = broadcastStrides(node.shape, srcShape);
        const c = collapse(srcShape, [stridesOf(srcShape), ost]);
        this.w.push(Code.SumTo);
        this.ptr(out);
        this.ptr(at(op.src));
        this.w.push(c.shape.length, ...c.shape, ...c.strides[1], sizeOf(node.shape), op.scale);
        break;
      }
      case "layer_norm":
      case "layer_norm_grad":
      case "softmax":
      case "softmax_grad": {
        const d = node.shape[node.shape.length - 1];
        const rows = sizeOf(node.shape) / d;
        const code = { layer_norm: Code.Ln, layer_norm_grad: Code.LnGrad, softmax: Code.Softmax, softmax_grad: Code.SoftmaxGrad }[op.kind];
        this.w.push(code);
        this.ptr(out);
        if (op.kind === "layer_norm" || op.kind === "softmax") this.ptr(at(op.src));
        else {
          this.ptr(at(op.kind === "layer_norm_grad" ? op.x : op.y));
          this.ptr(at(op.dy));
        }
        this.w.push(rows, d);
        if (op.kind === "layer_norm" || op.kind === "layer_norm_grad") this.w.push(op.eps);
        break;
      }
      case "slice": {
        const sst = stridesOf(shapeOf(op.src));
        this.copy(out, 0, stridesOf(node.shape), at(op.src), op.start * sst[op.axis], sst, node.shape);
        break;
      }
      case "pad": {
        const src = shapeOf(op.src);
        const ost = stridesOf(node.shape);
        this.fill(out, sizeOf(node.shape), 0);
        this.mark(label, node.id);
        this.copy(out, op.start * ost[op.axis], ost, at(op.src), 0, stridesOf(src), src);
        break;
      }
      case "permute": {
        const sst = stridesOf(shapeOf(op.src));
        this.copy(out, 0, stridesOf(node.shape), at(op.src), 0, op.perm.map((p) => sst[p]), node.shape);
        break;
      }
      case "concat": {
        const ost = stridesOf(node.shape);
        let start = 0;
        op.inputs.forEach((id, i) => {
          const s = shapeOf(id);
          this.copy(out, start * ost[op.axis], ost, at(id), 0, stridesOf(s), s);
          if (i < op.inputs.length - 1) this.mark(label, node.id);
          start += s[op.axis];
        });
        break;
      }
      case "im2col":
      case "col2im": {
        const [img, cols] = op.kind === "im2col" ? [shapeOf(op.src), node.shape] : [node.shape, shapeOf(op.src)];
        this.w.push(op.kind === "im2col" ? Code.Im2col : Code.Col2im);
        this.ptr(out);
        this.ptr(at(op.src));
        this.w.push(...img, cols[1], cols[2], op.k, op.stride, op.pad);
        break;
      }
      default:
        throw new GraphError(`no native kernel for ${(op as Op).kind}`);
    }
    return true;
  }

  private mark(label: string, node: number): void {
    this.labels.push(label);
    this.nodes.push(node);
  }

  private copy(dst: Place, dstPlus: number, dstSt: readonly number[], src: Place, srcPlus: number, srcSt: readonly number[], shape: readonly number[]): void {
    const c = collapse(shape, [dstSt, srcSt]);
    this.w.push(Code.Copy);
    this.ptr(dst, dstPlus);
    this.ptr(src, srcPlus);
    this.w.push(c.shape.length, ...c.shape, ...c.strides[0], ...c.strides[1]);
  }

  private fill(dst: Place, n: number, value: number): void {
    this.w.push(Code.Fill);
    this.ptr(dst);
    this.w.push(n, value);
  }

  /** Gradient norm, clipping, Adam / AdamW and the EMA over the flat buffers. */
  adam(a: AdamArgs): void {
    this.w.push(Code.Adam);
    for (const p of [a.g, a.p, a.m, a.v, a.ema ?? NULL_PLACE, a.hyper, a.stats]) this.ptr(p);
    this.w.push(a.n, a.beta1, a.beta2, a.eps, a.weightDecay, a.clip, a.decoupled ? 1 : 0);
    this.mark("optimizer:adam", -1);
  }
}
