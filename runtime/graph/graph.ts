/**
 * A static tensor graph: the whole training step (forward, loss, backward) of a compiled network
 * at one fixed batch size, built once by tracing the generated model with symbolic tensors
 * (see trace.ts), then differentiated (autodiff.ts), fused (fuse.ts) and executed as a fixed
 * list of kernels (cpu.ts: a reference interpreter; webgpu.ts: WGSL kernels recorded once).
 *
 * Every node is float32, row-major and contiguous; a `view` shares its source's storage.
 */

import { GraphError } from "./error.ts";
import type { EwOp, Expr } from "./ops.ts";

// the elementwise operators are the names of ops.ts's table (one entry each)
export type { EwOp, Expr } from "./ops.ts";
export { GraphError } from "./error.ts";

export type Shape = readonly number[];

/** An operand read through a strided window: logical shape, element offset and strides. */
export interface InputAccess {
  shape: number[];
  base: number;
  strides: number[];
}

/** Batched strided matrix product: C[b1, b2, m, n] = alpha * sum_k A[b1, b2, m, k] * B[b1, b2, k, n] (+ bias[n]). */
export interface GemmLayout {
  /** strides (in elements) of A over (b1, b2, m, k) */
  a: [number, number, number, number];
  /** strides of B over (b1, b2, k, n) */
  b: [number, number, number, number];
  /** strides of C (this node's storage) over (b1, b2, m, n) */
  c: [number, number, number, number];
  batch: [number, number];
  m: number;
  n: number;
  k: number;
  alpha: number;
  /** "bf16": A and B rounded to bf16 (nearest even), products accumulated in fp32; fp32 when absent */
  precision?: "bf16";
}

export type Op =
  | { kind: "input"; name: string }
  | { kind: "param"; name: string }
  | { kind: "const"; data: Float32Array }
  | { kind: "view"; src: number }
  /**
   * Elementwise: the expression over `inputs` (operand j reads node inputs[j]; an id may repeat
   * with different `access`), broadcast to this node's shape. `access[j]` reads operand j as a
   * strided window of its node's storage (a fused slice), instead of the node as it is.
   */
  | { kind: "ew"; inputs: number[]; expr: Expr; access?: (InputAccess | null)[] }
  | { kind: "gemm"; a: number; b: number; bias: number | null; layout: GemmLayout }
  /** sum of src over the axes where this node's shape (right-aligned) has size 1 or is missing */
  | { kind: "sum_to"; src: number; scale: number }
  | { kind: "layer_norm"; src: number; eps: number }
  | { kind: "layer_norm_grad"; x: number; dy: number; eps: number }
  | { kind: "softmax"; src: number }
  | { kind: "softmax_grad"; y: number; dy: number }
  | { kind: "slice"; src: number; axis: number; start: number }
  /** the inverse of slice: src placed at `start` along `axis`, zeros elsewhere */
  | { kind: "pad"; src: number; axis: number; start: number }
  | { kind: "permute"; src: number; perm: number[] }
  | { kind: "concat"; inputs: number[]; axis: number }
  /**
   * The k x k windows of src [B, H, W, C] at stride s with zero padding p as columns
   * [B, Ho, Wo, k*k*C] (Ho = floor((H + 2p - k) / s) + 1): block (i, j) of column (oh, ow), C
   * channels, holds src[b, oh*s - p + i, ow*s - p + j, :], zeros where that is outside src.
   */
  | ({ kind: "im2col"; src: number } & Window)
  /** The adjoint of im2col: each column of src [B, Ho, Wo, k*k*C] added into its window of this node [B, H, W, C]. */
  | ({ kind: "col2im"; src: number } & Window);

/** A convolution window: square kernel k, stride, symmetric zero padding. */
export interface Window {
  k: number;
  stride: number;
  pad: number;
}

/** Output side of a window over an input side n: floor((n + 2 pad - k) / stride) + 1; an error when the padded input is shorter than k. */
export function windowOut(n: number, w: Window, where: string): number {
  for (const [name, v, lo] of [["kernel", w.k, 1], ["stride", w.stride, 1], ["padding", w.pad, 0]] as const) {
    if (!Number.isInteger(v) || v < lo) throw new GraphError(`${where}: ${name} ${v} must be an integer >= ${lo}`);
  }
  if (n + 2 * w.pad < w.k) throw new GraphError(`${where}: kernel ${w.k} is larger than the padded input side ${n} + 2 * ${w.pad}`);
  return Math.floor((n + 2 * w.pad - w.k) / w.stride) + 1;
}

export interface Node {
  readonly id: number;
  readonly shape: Shape;
  readonly op: Op;
  /** which part of the step made it (for profiles and dumps) */
  readonly tag: string;
}


/** The spec uses an op the static engine has no kernels for (the tfjs engine can train it). */
export class UnsupportedOpError extends GraphError {
  constructor(what: string) {
    super(`the static training engine has no ${what} yet; train this spec with --engine tfjs`);
    this.name = "UnsupportedOpError";
  }
}

/** The device cannot hold what a step or forward pass needs (a user-facing error). */
export class GpuMemoryError extends GraphError {
  constructor(message: string) {
    super(message);
    this.name = "GpuMemoryError";
  }
}

export const sizeOf = (s: Shape): number => s.reduce((a, b) => a * b, 1);
export const sameShape = (a: Shape, b: Shape): boolean => a.length === b.length && a.every((d, i) => d === b[i]);

/** Row-major strides. */
export function stridesOf(s: Shape): number[] {
  const st = new Array<number>(s.length).fill(1);
  for (let i = s.length - 2; i >= 0; i--) st[i] = st[i + 1] * s[i + 1];
  return st;
}

/** Numpy broadcasting of two shapes. */
export function broadcastShapes(a: Shape, b: Shape): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new GraphError(`cannot broadcast [${a}] with [${b}]`);
    out.push(Math.max(da, db));
  }
  return out;
}

/** Strides that read a contiguous input of shape `inp` broadcast to `out` (0 on broadcast axes). */
export function broadcastStrides(inp: Shape, out: Shape): number[] {
  return broadcastStridesOf(inp, stridesOf(inp), out);
}

/** Strides that read an operand of `shape` laid out with `strides` broadcast to `out`. */
export function broadcastStridesOf(shape: Shape, strides: readonly number[], out: Shape): number[] {
  return out.map((d, i) => {
    const j = i - (out.length - shape.length);
    if (j < 0) return 0;
    if (shape[j] === d) return shape[j] === 1 ? 0 : strides[j];
    if (shape[j] === 1) return 0;
    throw new GraphError(`cannot broadcast [${shape}] to [${out}]`);
  });
}

/** How operand j of an ew node is read: its logical shape, base offset and strides. */
export function operandLayout(g: Graph, op: Extract<Op, { kind: "ew" }>, j: number): InputAccess {
  const a = op.access?.[j];
  if (a) return a;
  const shape = [...g.node(op.inputs[j]).shape];
  return { shape, base: 0, strides: stridesOf(shape) };
}

/** A symbolic tensor: what the generated model code sees while it is traced. */
export class Sym {
  readonly dtype = "float32";
  constructor(
    readonly graph: Graph,
    readonly id: number,
    readonly shape: number[],
  ) {}
  get rank(): number {
    return this.shape.length;
  }
  get size(): number {
    return sizeOf(this.shape);
  }
}

export const isSym = (x: unknown): x is Sym => x instanceof Sym;

export class Graph {
  readonly nodes: Node[] = [];
  /** current tag for new nodes */
  tag = "forward";
  /**
   * "bf16": the GEMMs of linear layers and attention made from now on round their operands to
   * bf16 (fp32 accumulation), as under torch.autocast("cpu", bfloat16); their gradients' GEMMs
   * inherit it (autodiff.ts). Embeddings and tables (one-hot and RoPE GEMMs) stay fp32.
   */
  autocast: "bf16" | null = null;

  node(id: number): Node {
    const n = this.nodes[id];
    if (!n) throw new GraphError(`no node ${id}`);
    return n;
  }

  add(shape: Shape, op: Op): Sym {
    for (const d of shape) if (!Number.isInteger(d) || d < 1) throw new GraphError(`bad shape [${shape}] for ${op.kind}`);
    const id = this.nodes.length;
    this.nodes.push({ id, shape: [...shape], op, tag: this.tag });
    return new Sym(this, id, [...shape]);
  }

  sym(id: number): Sym {
    return new Sym(this, id, [...this.node(id).shape]);
  }

  input(name: string, shape: Shape): Sym {
    return this.add(shape, { kind: "input", name });
  }
  param(name: string, shape: Shape): Sym {
    return this.add(shape, { kind: "param", name });
  }
  constant(data: Float32Array, shape: Shape): Sym {
    if (data.length !== sizeOf(shape)) throw new GraphError(`constant of ${data.length} values for shape [${shape}]`);
    return this.add(shape, { kind: "const", data });
  }

  reshape(x: Sym, shape: Shape): Sym {
    const s = [...shape];
    const neg = s.indexOf(-1);
    if (neg >= 0) s[neg] = x.size / sizeOf(s.filter((d) => d !== -1));
    if (sizeOf(s) !== x.size) throw new GraphError(`cannot reshape [${x.shape}] to [${shape}]`);
    if (sameShape(s, x.shape)) return x;
    const src = this.node(x.id).op.kind === "view" ? (this.node(x.id).op as { src: number }).src : x.id;
    return this.add(s, { kind: "view", src });
  }

  /** One elementwise operator over nodes and numbers, broadcast (numpy rules). */
  ew(op: EwOp, args: (Sym | number)[], outShape?: Shape): Sym {
    const inputs: number[] = [];
    const exprArgs: Expr[] = args.map((a) => {
      if (typeof a === "number") return { c: a };
      let i = inputs.indexOf(a.id);
      if (i < 0) i = inputs.push(a.id) - 1;
      return { in: i };
    });
    let shape: number[] = outShape ? [...outShape] : [];
    for (const a of args) if (typeof a !== "number") shape = broadcastShapes(shape, a.shape);
    if (outShape && !sameShape(shape, outShape)) throw new GraphError(`ew ${op}: inputs broadcast to [${shape}], not [${outShape}]`);
    if (inputs.length === 0) throw new GraphError(`ew ${op} has no tensor input`);
    return this.add(shape, { kind: "ew", inputs, expr: { op, args: exprArgs } });
  }

  /** Sum `x` down to `shape` (the inverse of broadcasting); identity when the shapes agree. */
  sumTo(x: Sym, shape: Shape, scale = 1): Sym {
    if (sameShape(x.shape, shape) && scale === 1) return x;
    if (sizeOf(shape) === x.size && scale === 1) return this.reshape(x, shape);
    broadcastStrides(shape, x.shape); // validates
    return this.add(shape, { kind: "sum_to", src: x.id, scale });
  }

  /** x [..., K] times W [N, K] transposed, plus bias [N]: the Linear layer. */
  linear(x: Sym, w: Sym, bias: Sym | null): Sym {
    const k = x.shape[x.rank - 1];
    const [n, kw] = w.shape;
    if (kw !== k || w.rank !== 2) throw new GraphError(`linear: input [${x.shape}] does not match weight [${w.shape}]`);
    if (bias && (bias.rank !== 1 || bias.shape[0] !== n)) throw new GraphError(`linear: bias [${bias.shape}] does not match weight [${w.shape}]`);
    const m = x.size / k;
    const layout: GemmLayout = this.autocasts({ batch: [1, 1], m, n, k, alpha: 1, a: [0, 0, k, 1], b: [0, 0, 1, k], c: [0, 0, n, 1] });
    return this.add([...x.shape.slice(0, -1), n], { kind: "gemm", a: x.id, b: w.id, bias: bias?.id ?? null, layout });
  }

  /** The layout of a GEMM under the graph's autocast: with its precision when autocast is on. */
  autocasts(layout: GemmLayout): GemmLayout {
    return this.autocast ? { ...layout, precision: this.autocast } : layout;
  }

  gemm(a: Sym, b: Sym, shape: Shape, layout: GemmLayout): Sym {
    return this.add(shape, { kind: "gemm", a: a.id, b: b.id, bias: null, layout });
  }

  layerNorm(x: Sym, eps: number): Sym {
    return this.add(x.shape, { kind: "layer_norm", src: x.id, eps });
  }

  softmax(x: Sym): Sym {
    return this.add(x.shape, { kind: "softmax", src: x.id });
  }

  slice(x: Sym, axis: number, start: number, len: number): Sym {
    const ax = axis < 0 ? axis + x.rank : axis;
    if (start < 0 || start + len > x.shape[ax]) throw new GraphError(`slice [${start}, ${start + len}) out of axis ${ax} of [${x.shape}]`);
    if (start === 0 && len === x.shape[ax]) return x;
    const shape = [...x.shape];
    shape[ax] = len;
    return this.add(shape, { kind: "slice", src: x.id, axis: ax, start });
  }

  pad(x: Sym, axis: number, start: number, total: number): Sym {
    const shape = [...x.shape];
    shape[axis] = total;
    return this.add(shape, { kind: "pad", src: x.id, axis, start });
  }

  permute(x: Sym, perm: number[]): Sym {
    if (perm.every((p, i) => p === i)) return x;
    return this.add(
      perm.map((p) => x.shape[p]),
      { kind: "permute", src: x.id, perm },
    );
  }

  concat(xs: Sym[], axis: number): Sym {
    const ax = axis < 0 ? axis + xs[0].rank : axis;
    if (xs.length === 1) return xs[0];
    const shape = [...xs[0].shape];
    shape[ax] = xs.reduce((s, x) => {
      if (x.rank !== xs[0].rank || x.shape.some((d, i) => i !== ax && d !== xs[0].shape[i])) throw new GraphError(`concat: [${x.shape}] does not match [${xs[0].shape}] off axis ${ax}`);
      return s + x.shape[ax];
    }, 0);
    return this.add(shape, { kind: "concat", inputs: xs.map((x) => x.id), axis: ax });
  }

  /** im2col of x [B, H, W, C]: [B, Ho, Wo, k*k*C] (see the op). */
  im2col(x: Sym, w: Window): Sym {
    if (x.rank !== 4) throw new GraphError(`im2col: input [${x.shape}] is not [B, H, W, C]`);
    const [b, h, wd, c] = x.shape;
    const shape = [b, windowOut(h, w, "im2col"), windowOut(wd, w, "im2col"), w.k * w.k * c];
    return this.add(shape, { kind: "im2col", src: x.id, k: w.k, stride: w.stride, pad: w.pad });
  }

  /** col2im of cols [B, Ho, Wo, k*k*C] into [B, h, w, C]: the adjoint of im2col on [B, h, w, C], whose output must be [B, Ho, Wo, ..]. */
  col2im(cols: Sym, h: number, wd: number, w: Window): Sym {
    const [b, ho, wo, kkc] = cols.shape;
    const kk = w.k * w.k;
    if (cols.rank !== 4 || kkc % kk !== 0) throw new GraphError(`col2im: input [${cols.shape}] is not [B, Ho, Wo, ${w.k}*${w.k}*C]`);
    const [eh, ew] = [windowOut(h, w, "col2im"), windowOut(wd, w, "col2im")];
    if (eh !== ho || ew !== wo) throw new GraphError(`col2im: windows of a ${h} x ${wd} input give ${eh} x ${ew} columns, not ${ho} x ${wo}`);
    return this.add([b, h, wd, kkc / kk], { kind: "col2im", src: cols.id, k: w.k, stride: w.stride, pad: w.pad });
  }
}

/** The node ids an op reads. */
export function inputsOf(op: Op): number[] {
  switch (op.kind) {
    case "input":
    case "param":
    case "const":
      return [];
    case "view":
    case "sum_to":
    case "layer_norm":
    case "softmax":
    case "slice":
    case "pad":
    case "permute":
    case "im2col":
    case "col2im":
      return [op.src];
    case "ew":
    case "concat":
      return op.inputs;
    case "gemm":
      return op.bias === null ? [op.a, op.b] : [op.a, op.b, op.bias];
    case "layer_norm_grad":
      return [op.x, op.dy];
    case "softmax_grad":
      return [op.y, op.dy];
  }
}

/** Count the nodes that become kernels (views, inputs, params and constants are free). */
export function kernelCount(g: Graph, live?: Set<number>): number {
  return g.nodes.filter((n) => (!live || live.has(n.id)) && !["view", "input", "param", "const"].includes(n.op.kind)).length;
}

/** The node whose storage `id` uses (views share their source's). */
export function rootOf(g: Graph, id: number): number {
  const op = g.node(id).op;
  return op.kind === "view" ? rootOf(g, op.src) : id;
}

/** Nodes that the given outputs depend on. */
export function liveNodes(g: Graph, outputs: number[]): Set<number> {
  const live = new Set<number>();
  const stack = [...outputs];
  while (stack.length) {
    const id = stack.pop()!;
    if (live.has(id)) continue;
    live.add(id);
    stack.push(...inputsOf(g.node(id).op));
  }
  return live;
}
