/**
 * The primitive operations a .mdl network is composed from: their signatures, shape rules and
 * parameter tensors. One table drives the checker (shapes, parameter counts), the generated code
 * (which runtime function or layer class to call) and the docs.
 */
import { type Dim, dimEq, dimOp, dimToString, isSym, shapeToString, type Value } from "./values.ts";

export type ArgType = "tensor" | "int" | "float" | "bool" | "ints" | "string";

export interface PrimArg {
  name: string;
  type: ArgType;
  /** undefined = required */
  default?: Value;
  doc: string;
}

export type Init = "torch_linear" | "zeros" | "ones" | "normal_0.02" | "fixed" | "xavier_uniform" | `normal:${number}` | `trunc_normal:${number}`;

/**
 * A linear layer's `init`, as the weight's and the bias's initializers: "torch" (PyTorch's
 * default, U(-1/sqrt(in), 1/sqrt(in)) for both), "zeros", and the ones DiT-style models use,
 * with zero biases: "xavier_uniform" (U(-a, a), a = sqrt(6 / (in + out))), "normal(STD)",
 * "trunc_normal(STD)" (normal, redrawn outside +-2 STD). Null when the string is none of these.
 */
export function linearInit(s: string): { weight: Init; bias: Init } | null {
  if (s === "torch") return { weight: "torch_linear", bias: "torch_linear" };
  if (s === "zeros") return { weight: "zeros", bias: "zeros" };
  if (s === "xavier_uniform") return { weight: "xavier_uniform", bias: "zeros" };
  const m = /^(normal|trunc_normal)\(\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*\)$/.exec(s);
  if (!m) return null;
  const std = Number(m[2]);
  if (!(std > 0) || !Number.isFinite(std)) return null;
  return { weight: `${m[1] as "normal" | "trunc_normal"}:${std}`, bias: "zeros" };
}

export interface WeightSpec {
  /** state-dict name relative to the call's label; null = the label itself */
  suffix: string | null;
  shape: Dim[];
  init: Init;
  /** buffers (fixed position tables) are saved with the weights but not trained or counted */
  buffer: boolean;
}

/**
 * State-dict suffix control, generic over every primitive with parameters: `weight_name: "scale"`
 * names the parameter whose suffix is "weight" `LABEL.scale` instead (BFL's Flux RMSNorm),
 * `bias_name` the one whose suffix is "bias". The checker takes these arguments itself (they are
 * in no entry's `args`); the generated code passes them to the layer as `weightName`/`biasName`.
 */
export const SUFFIX_ARGS: readonly { arg: string; suffix: string; field: string; doc: string }[] = [
  { arg: "weight_name", suffix: "weight", field: "weightName", doc: 'state-dict name of the weight under the call\'s name, e.g. "scale"' },
  { arg: "bias_name", suffix: "bias", field: "biasName", doc: 'state-dict name of the bias under the call\'s name' },
];

/**
 * Weight tying, generic over every primitive with parameters: `share: "embed"` makes the call
 * use the parameters of the earlier call named `embed` (relative to the block, dotted into
 * sub-blocks: "encoder.token_embedding") instead of creating its own. Each of the call's
 * parameters is the target's one of the same suffix, with the same shape; it is counted and
 * saved once, and gets the gradients of both uses. The call takes no `as` name.
 */
export const SHARE_ARG = { arg: "share", doc: "use the parameters of the earlier call of this name (weight tying) instead of creating them; the call then takes no `as` name" } as const;

/** A state-dict name part: identifiers or integers joined by dots (`scale`, `net.0.weight`). */
export function isStateDictName(s: string): boolean {
  return /^(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+)(?:\.(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+))*$/.test(s);
}

export type Args = Record<string, Value>;

/** What a shape rule may ask of the checker. */
export interface PrimContext {
  symbolic: boolean;
  /** report a problem with argument `arg` (points at that argument's source) */
  fail(arg: string, code: "SDC400" | "SDC500" | "SDC501" | "SDC502" | "SDC401" | "SDC407", message: string): never;
  /** check two dims are equal (only when both are known); message names what is compared */
  expectEq(arg: string, a: Dim, b: Dim, what: string): void;
  /** exact division a / b, checked when both are known */
  div(arg: string, a: Dim, b: Dim, what: string): Dim;
}

export interface Primitive {
  name: string;
  doc: string;
  args: PrimArg[];
  /** all positional arguments are tensors collected into `xs` (concat) */
  variadic?: boolean;
  infer(a: Args, c: PrimContext): Value;
  /** parameter tensors this call creates; none = stateless */
  weights?(a: Args, c: PrimContext): WeightSpec[];
  /** runtime name: a layer class when weights() can be non-empty, else a function in `F` */
  runtime: string;
  /**
   * Example arguments by name, on which `sdc primitives` and docs/primitives.md run this entry's
   * own `infer` and `weights` to show its shapes and parameters (so the docs cannot drift from
   * the rules): tensors as shapes (`"[B, N, D]"`, `"int32[B, T]"`; a list of them for the
   * tensors of a variadic primitive, under `xs`), integers, `true`/`false`, or a name for a
   * symbolic size. Arguments left out take their defaults.
   */
  example: Record<string, string | string[]>;
}

const int = (v: number): Value => ({ t: "int", v });
const flt = (v: number): Value => ({ t: "float", v });
const bool = (v: boolean): Value => ({ t: "bool", v });
const str = (v: string): Value => ({ t: "string", v });

function tensor(a: Args, name: string): { dtype: "float32" | "int32"; shape: Dim[] } {
  const v = a[name];
  if (v?.t !== "tensor") throw new Error(`internal: ${name} is not a tensor`);
  return v;
}
function num(a: Args, name: string): Dim {
  const v = a[name];
  if (v?.t === "int" || v?.t === "float") return v.v;
  throw new Error(`internal: ${name} is not a number`);
}
function flag(a: Args, name: string): boolean | undefined {
  const v = a[name];
  return v?.t === "bool" && typeof v.v === "boolean" ? v.v : undefined;
}
function last(shape: Dim[]): Dim {
  return shape[shape.length - 1];
}
function normAxis(axis: Dim, rank: number, c: PrimContext, arg = "axis"): number {
  if (typeof axis !== "number") c.fail(arg, "SDC401", "axis must be a constant integer");
  const ax = axis < 0 ? axis + rank : axis;
  if (ax < 0 || ax >= rank) c.fail(arg, "SDC407", `axis ${axis} is out of range for a rank-${rank} tensor`);
  return ax;
}
function minRank(c: PrimContext, arg: string, shape: Dim[], r: number, what: string) {
  if (shape.length < r) c.fail(arg, "SDC501", `${what} needs a tensor of rank >= ${r}, got rank ${shape.length} ${shapeToString(shape)}`);
}
function rank(c: PrimContext, arg: string, shape: Dim[], r: number, what: string) {
  if (shape.length !== r) c.fail(arg, "SDC501", `${what} needs a rank-${r} tensor, got rank ${shape.length} ${shapeToString(shape)}`);
}
function floatTensor(shape: Dim[]): Value {
  return { t: "tensor", dtype: "float32", shape };
}
function positive(c: PrimContext, arg: string, d: Dim, what: string) {
  if (typeof d === "number" && (!Number.isInteger(d) || d <= 0)) c.fail(arg, "SDC407", `${what} must be a positive integer, got ${d}`);
}

const X: PrimArg = { name: "x", type: "tensor", doc: "input tensor" };

/** Pooling on [B, H, W, C] with window = stride = size. */
function pool(name: string, what: string, runtime: string): Primitive {
  return {
    name,
    doc: `${what} pooling on [B, H, W, C] with window = stride = size`,
    args: [X, { name: "size", type: "int", doc: "window and stride" }],
    runtime,
    example: { x: "[B, H, W, C]", size: "2" },
    infer(a, c) {
      const x = tensor(a, "x");
      rank(c, "x", x.shape, 4, name);
      const sz = num(a, "size");
      return floatTensor([x.shape[0], c.div("size", x.shape[1], sz, `${name}: size must divide the height`), c.div("size", x.shape[2], sz, `${name}: size must divide the width`), x.shape[3]]);
    },
  };
}

/** Most parts `chunk` makes (each is a value the checker and the generated code hold). */
export const MAX_CHUNKS = 4096;

/** The primitive called `name`, if any (own entries only: `toString` is not a primitive). */
export function primitive(name: string): Primitive | undefined {
  return Object.hasOwn(PRIMITIVES, name) ? PRIMITIVES[name] : undefined;
}

export const PRIMITIVES: Record<string, Primitive> = {
  linear: {
    name: "linear",
    doc: "y = x W^T + b over the last axis; W is [out, in] as in PyTorch",
    args: [X, { name: "out", type: "int", doc: "output features" }, { name: "bias", type: "bool", default: bool(true), doc: "add a bias" }, { name: "init", type: "string", default: str("torch"), doc: 'weight init: "torch" (PyTorch default), "zeros", "xavier_uniform", "normal(STD)" or "trunc_normal(STD)" (the last three with zero bias)' }],
    runtime: "Linear",
    example: { x: "[B, N, D]", out: "out" },
    infer(a, c) {
      const x = tensor(a, "x");
      minRank(c, "x", x.shape, 1, "linear");
      positive(c, "out", num(a, "out"), "out");
      return floatTensor([...x.shape.slice(0, -1), num(a, "out")]);
    },
    weights(a, c) {
      const name = a.init?.t === "string" ? a.init.v : "torch";
      const init = linearInit(name);
      if (!init) return c.fail("init", "SDC407", `init must be "torch", "zeros", "xavier_uniform", "normal(STD)" or "trunc_normal(STD)" with STD > 0, got ${JSON.stringify(name)}`);
      const inF = last(tensor(a, "x").shape);
      const w: WeightSpec[] = [{ suffix: "weight", shape: [num(a, "out"), inF], init: init.weight, buffer: false }];
      if (flag(a, "bias") !== false) w.push({ suffix: "bias", shape: [num(a, "out")], init: init.bias, buffer: false });
      return w;
    },
  },
  layer_norm: {
    name: "layer_norm",
    doc: "LayerNorm over the last axis; affine adds weight and bias",
    args: [X, { name: "eps", type: "float", default: flt(1e-5), doc: "epsilon" }, { name: "affine", type: "bool", default: bool(true), doc: "learn weight and bias" }],
    runtime: "LayerNorm",
    example: { x: "[B, N, D]" },
    infer: (a) => floatTensor(tensor(a, "x").shape),
    weights(a) {
      if (flag(a, "affine") === false) return [];
      const d = last(tensor(a, "x").shape);
      return [
        { suffix: "weight", shape: [d], init: "ones", buffer: false },
        { suffix: "bias", shape: [d], init: "zeros", buffer: false },
      ];
    },
  },
  rms_norm: {
    name: "rms_norm",
    doc: "RMSNorm over the last axis, per head when heads > 1 (q/k norm)",
    args: [X, { name: "eps", type: "float", default: flt(1e-6), doc: "epsilon" }, { name: "heads", type: "int", default: int(1), doc: "normalise each of `heads` equal slices" }, { name: "affine", type: "bool", default: bool(true), doc: "learn a weight" }],
    runtime: "RmsNorm",
    example: { x: "[B, N, D]" },
    infer(a, c) {
      const x = tensor(a, "x");
      c.div("heads", last(x.shape), num(a, "heads"), "the last dimension must split into heads");
      return floatTensor(x.shape);
    },
    weights(a, c) {
      if (flag(a, "affine") === false) return [];
      return [{ suffix: "weight", shape: [c.div("heads", last(tensor(a, "x").shape), num(a, "heads"), "the last dimension must split into heads")], init: "ones", buffer: false }];
    },
  },
  silu: { name: "silu", doc: "x * sigmoid(x)", args: [X], example: { x: "[B, N, D]" }, runtime: "silu", infer: (a) => floatTensor(tensor(a, "x").shape) },
  relu: { name: "relu", doc: "max(x, 0)", args: [X], example: { x: "[B, N, D]" }, runtime: "relu", infer: (a) => floatTensor(tensor(a, "x").shape) },
  sigmoid: { name: "sigmoid", doc: "1 / (1 + exp(-x))", args: [X], example: { x: "[B, N, D]" }, runtime: "sigmoid", infer: (a) => floatTensor(tensor(a, "x").shape) },
  tanh: { name: "tanh", doc: "tanh(x)", args: [X], example: { x: "[B, N, D]" }, runtime: "tanh", infer: (a) => floatTensor(tensor(a, "x").shape) },
  exp: { name: "exp", doc: "e^x", args: [X], example: { x: "[B, N, D]" }, runtime: "exp", infer: (a) => floatTensor(tensor(a, "x").shape) },
  log: { name: "log", doc: "natural logarithm (NaN below 0, -inf at 0)", args: [X], example: { x: "[B, N, D]" }, runtime: "log", infer: (a) => floatTensor(tensor(a, "x").shape) },
  sqrt: { name: "sqrt", doc: "square root", args: [X], example: { x: "[B, N, D]" }, runtime: "sqrt", infer: (a) => floatTensor(tensor(a, "x").shape) },
  rsqrt: { name: "rsqrt", doc: "1 / sqrt(x)", args: [X], example: { x: "[B, N, D]" }, runtime: "rsqrt", infer: (a) => floatTensor(tensor(a, "x").shape) },
  abs: { name: "abs", doc: "|x| (gradient 0 at 0)", args: [X], example: { x: "[B, N, D]" }, runtime: "abs", infer: (a) => floatTensor(tensor(a, "x").shape) },
  softmax: { name: "softmax", doc: "softmax over the last axis", args: [X], example: { x: "[B, N, D]" }, runtime: "softmax", infer: (a) => floatTensor(tensor(a, "x").shape) },
  gelu: {
    name: "gelu",
    doc: "GELU; approximate: true is the tanh approximation",
    args: [X, { name: "approximate", type: "bool", default: bool(false), doc: "tanh approximation" }],
    runtime: "gelu",
    example: { x: "[B, N, D]" },
    infer: (a) => floatTensor(tensor(a, "x").shape),
  },
  chunk: {
    name: "chunk",
    doc: "split into n equal parts along an axis (a tuple)",
    args: [X, { name: "n", type: "int", doc: "number of parts" }, { name: "axis", type: "int", default: int(-1), doc: "axis" }],
    runtime: "chunk",
    example: { x: "[B, N, D]", n: "3" },
    infer(a, c) {
      const x = tensor(a, "x");
      const n = num(a, "n");
      if (typeof n !== "number") c.fail("n", "SDC401", "chunk count must be a constant");
      positive(c, "n", n, "n");
      // the parts are a tuple: 2^31 of them would exhaust the memory before any size is known
      if ((n as number) > MAX_CHUNKS) c.fail("n", "SDC407", `chunk: at most ${MAX_CHUNKS} parts, got ${n}`);
      const ax = normAxis(num(a, "axis"), x.shape.length, c);
      const part = c.div("n", x.shape[ax], n, `chunk: axis ${ax} must split into ${n} equal parts`);
      return { t: "tuple", items: Array.from({ length: n as number }, () => floatTensor(x.shape.map((d, i) => (i === ax ? part : d)))) };
    },
  },
  split: {
    name: "split",
    doc: "split along an axis into parts of the given sizes (a tuple)",
    args: [X, { name: "sizes", type: "ints", doc: "part sizes" }, { name: "axis", type: "int", default: int(-1), doc: "axis" }],
    runtime: "split",
    example: { x: "[B, N, D]", sizes: "[a, b]", axis: "1" },
    infer(a, c) {
      const x = tensor(a, "x");
      const sizes = (a.sizes as { items: Value[] }).items.map((v) => (v as { v: Dim }).v);
      const ax = normAxis(num(a, "axis"), x.shape.length, c);
      const total = sizes.reduce((p: Dim, q) => dimOp("+", p, q), 0);
      c.expectEq("sizes", total, x.shape[ax], `split: the sizes must add up to axis ${ax}`);
      return { t: "tuple", items: sizes.map((s) => floatTensor(x.shape.map((d, i) => (i === ax ? s : d)))) };
    },
  },
  concat: {
    name: "concat",
    doc: "concatenate tensors along an axis",
    args: [{ name: "axis", type: "int", default: int(-1), doc: "axis" }],
    variadic: true,
    runtime: "concat",
    example: { xs: ["[B, N, D]", "[B, M, D]"], axis: "1" },
    infer(a, c) {
      const xs = (a.xs as { items: Value[] }).items as { t: "tensor"; shape: Dim[]; dtype: "float32" | "int32" }[];
      if (xs.length < 1) c.fail("xs", "SDC400", "concat needs at least one tensor");
      const r = xs[0].shape.length;
      const ax = normAxis(num(a, "axis"), r, c);
      let total: Dim = 0;
      xs.forEach((x, k) => {
        if (x.shape.length !== r) c.fail(`xs.${k}`, "SDC501", `concat: tensor ${k + 1} has rank ${x.shape.length}, the first has rank ${r}`);
        x.shape.forEach((d, i) => {
          if (i !== ax) c.expectEq(`xs.${k}`, d, xs[0].shape[i], `concat: tensor ${k + 1} must match the first on axis ${i}`);
        });
        total = dimOp("+", total, x.shape[ax]);
      });
      return { t: "tensor", dtype: xs[0].dtype, shape: xs[0].shape.map((d, i) => (i === ax ? total : d)) };
    },
  },
  unsqueeze: {
    name: "unsqueeze",
    doc: "insert an axis of size 1",
    args: [X, { name: "axis", type: "int", doc: "position of the new axis" }],
    runtime: "unsqueeze",
    example: { x: "[B, D]", axis: "1" },
    infer(a, c) {
      const x = tensor(a, "x");
      const ax = normAxis(num(a, "axis"), x.shape.length + 1, c);
      const s = [...x.shape];
      s.splice(ax, 0, 1);
      return { t: "tensor", dtype: x.dtype, shape: s };
    },
  },
  mean: {
    name: "mean",
    doc: "mean over an axis (removed)",
    args: [X, { name: "axis", type: "int", doc: "axis" }],
    runtime: "mean",
    example: { x: "[B, N, D]", axis: "1" },
    infer(a, c) {
      const x = tensor(a, "x");
      const ax = normAxis(num(a, "axis"), x.shape.length, c);
      return floatTensor(x.shape.filter((_, i) => i !== ax));
    },
  },
  attention: {
    name: "attention",
    doc: "multi-head scaled dot-product attention; q [B, S, D], k and v [B, S', D], D split into heads",
    args: [{ name: "q", type: "tensor", doc: "queries" }, { name: "k", type: "tensor", doc: "keys" }, { name: "v", type: "tensor", doc: "values" }, { name: "heads", type: "int", doc: "number of heads" }, { name: "causal", type: "bool", default: bool(false), doc: "causal mask: query i attends to keys j <= i + S' - S (the last queries see every key)" }],
    runtime: "attention",
    example: { q: "[B, N, D]", k: "[B, M, D]", v: "[B, M, D]", heads: "heads" },
    infer(a, c) {
      const q = tensor(a, "q");
      const k = tensor(a, "k");
      const v = tensor(a, "v");
      rank(c, "q", q.shape, 3, "attention");
      rank(c, "k", k.shape, 3, "attention");
      rank(c, "v", v.shape, 3, "attention");
      c.expectEq("k", k.shape[0], q.shape[0], "attention: batch of k must match q");
      c.expectEq("k", k.shape[2], q.shape[2], "attention: width of k must match q");
      c.expectEq("v", v.shape[1], k.shape[1], "attention: sequence length of v must match k");
      c.expectEq("v", v.shape[0], q.shape[0], "attention: batch of v must match q");
      positive(c, "heads", num(a, "heads"), "heads");
      c.div("heads", q.shape[2], num(a, "heads"), "attention: heads must divide the width");
      return floatTensor([q.shape[0], q.shape[1], v.shape[2]]);
    },
  },
  patch_conv: {
    name: "patch_conv",
    doc: "patch embedding: a conv with kernel = stride = patch on [B, H, W, C], flattened to [B, (H/p)*(W/p), out]; weight [out, C, p, p] as PyTorch",
    args: [X, { name: "out", type: "int", doc: "output width" }, { name: "patch", type: "int", doc: "patch size" }],
    runtime: "PatchConv",
    example: { x: "[B, H, W, C]", out: "out", patch: "p" },
    infer(a, c) {
      const x = tensor(a, "x");
      rank(c, "x", x.shape, 4, "patch_conv");
      const p = num(a, "patch");
      positive(c, "patch", p, "patch");
      const gh = c.div("patch", x.shape[1], p, "patch_conv: the patch must divide the image height");
      const gw = c.div("patch", x.shape[2], p, "patch_conv: the patch must divide the image width");
      return floatTensor([x.shape[0], dimOp("*", gh, gw), num(a, "out")]);
    },
    weights(a) {
      const x = tensor(a, "x");
      const p = num(a, "patch");
      return [
        { suffix: "weight", shape: [num(a, "out"), x.shape[3], p, p], init: "torch_linear", buffer: false },
        { suffix: "bias", shape: [num(a, "out")], init: "torch_linear", buffer: false },
      ];
    },
  },
  conv2d: {
    name: "conv2d",
    doc: "2-D convolution on [B, H, W, C] with a square kernel, symmetric zero padding and a stride (out side floor((H + 2 * padding - kernel) / stride) + 1); weight [out, C, k, k] as PyTorch",
    args: [X, { name: "out", type: "int", doc: "output channels" }, { name: "kernel", type: "int", doc: "kernel size" }, { name: "stride", type: "int", default: int(1), doc: "stride" }, { name: "padding", type: "int", default: int(0), doc: "zero padding on each side" }],
    runtime: "Conv2d",
    example: { x: "[B, 32, 32, C]", out: "out", kernel: "3", padding: "1" },
    infer(a, c) {
      const x = tensor(a, "x");
      rank(c, "x", x.shape, 4, "conv2d");
      const [k, s, p] = [num(a, "kernel"), num(a, "stride"), num(a, "padding")];
      positive(c, "kernel", k, "kernel");
      positive(c, "stride", s, "stride");
      positive(c, "out", num(a, "out"), "out");
      // floor((side + 2 * padding - kernel) / stride) + 1, as PyTorch (a stride-2 3x3 conv halves an even side)
      const side = (d: Dim) => {
        const span = dimOp("-", dimOp("+", d, dimOp("*", 2, p)), k);
        return dimOp("+", typeof span === "number" && typeof s === "number" ? Math.floor(span / s) : dimOp("/", dimOp("-", span, dimOp("%", span, s)), s), 1);
      };
      const h = side(x.shape[1]);
      const w = side(x.shape[2]);
      if ((typeof h === "number" && h <= 0) || (typeof w === "number" && w <= 0)) c.fail("kernel", "SDC407", `conv2d: the kernel ${dimToString(k)} is larger than the padded input ${shapeToString(x.shape)}`);
      return floatTensor([x.shape[0], h, w, num(a, "out")]);
    },
    weights(a) {
      const x = tensor(a, "x");
      const k = num(a, "kernel");
      return [
        { suffix: "weight", shape: [num(a, "out"), x.shape[3], k, k], init: "torch_linear", buffer: false },
        { suffix: "bias", shape: [num(a, "out")], init: "torch_linear", buffer: false },
      ];
    },
  },
  conv_transpose2d: {
    name: "conv_transpose2d",
    doc: "transposed 2-D convolution on [B, H, W, C] (PyTorch ConvTranspose2d, no output padding): out side (H - 1) * stride - 2 * padding + kernel; weight [C, out, k, k] as PyTorch",
    args: [X, { name: "out", type: "int", doc: "output channels" }, { name: "kernel", type: "int", doc: "kernel size" }, { name: "stride", type: "int", default: int(1), doc: "stride" }, { name: "padding", type: "int", default: int(0), doc: "implicit zero padding removed from each side of the output" }],
    runtime: "ConvTranspose2d",
    example: { x: "[B, 16, 16, C]", out: "out", kernel: "4", stride: "2", padding: "1" },
    infer(a, c) {
      const x = tensor(a, "x");
      rank(c, "x", x.shape, 4, "conv_transpose2d");
      const [k, s, p] = [num(a, "kernel"), num(a, "stride"), num(a, "padding")];
      positive(c, "kernel", k, "kernel");
      positive(c, "stride", s, "stride");
      positive(c, "out", num(a, "out"), "out");
      if (typeof p === "number" && p < 0) c.fail("padding", "SDC407", `padding must not be negative, got ${p}`);
      const side = (d: Dim) => dimOp("+", dimOp("-", dimOp("*", dimOp("-", d, 1), s), dimOp("*", 2, p)), k);
      const h = side(x.shape[1]);
      const w = side(x.shape[2]);
      if ((typeof h === "number" && h <= 0) || (typeof w === "number" && w <= 0)) c.fail("padding", "SDC407", `conv_transpose2d: padding ${dimToString(p)} leaves no output of ${shapeToString(x.shape)} (side (H - 1) * stride - 2 * padding + kernel)`);
      return floatTensor([x.shape[0], h, w, num(a, "out")]);
    },
    weights(a) {
      const x = tensor(a, "x");
      const k = num(a, "kernel");
      // PyTorch's fan-in of a transposed conv weight [C, out, k, k] is out * k * k
      return [
        { suffix: "weight", shape: [x.shape[3], num(a, "out"), k, k], init: "torch_linear", buffer: false },
        { suffix: "bias", shape: [num(a, "out")], init: "torch_linear", buffer: false },
      ];
    },
  },
  group_norm: {
    name: "group_norm",
    doc: "GroupNorm on channels-last [B, ..., C]: mean and variance over the spatial axes and each of `groups` channel groups; affine adds weight and bias [C] (PyTorch GroupNorm)",
    args: [X, { name: "groups", type: "int", doc: "channel groups (divides C)" }, { name: "eps", type: "float", default: flt(1e-5), doc: "epsilon" }, { name: "affine", type: "bool", default: bool(true), doc: "learn weight and bias" }],
    runtime: "GroupNorm",
    example: { x: "[B, H, W, C]", groups: "32" },
    infer(a, c) {
      const x = tensor(a, "x");
      minRank(c, "x", x.shape, 2, "group_norm");
      positive(c, "groups", num(a, "groups"), "groups");
      c.div("groups", last(x.shape), num(a, "groups"), "group_norm: groups must divide the channels");
      return floatTensor(x.shape);
    },
    weights(a) {
      if (flag(a, "affine") === false) return [];
      const d = last(tensor(a, "x").shape);
      return [
        { suffix: "weight", shape: [d], init: "ones", buffer: false },
        { suffix: "bias", shape: [d], init: "zeros", buffer: false },
      ];
    },
  },
  upsample_nearest: {
    name: "upsample_nearest",
    doc: "nearest-neighbour upsampling of [B, H, W, C] by an integer factor: [B, H * factor, W * factor, C] (PyTorch interpolate mode nearest)",
    args: [X, { name: "factor", type: "int", doc: "scale factor" }],
    runtime: "upsampleNearest",
    example: { x: "[B, H, W, C]", factor: "2" },
    infer(a, c) {
      const x = tensor(a, "x");
      rank(c, "x", x.shape, 4, "upsample_nearest");
      const f = num(a, "factor");
      positive(c, "factor", f, "factor");
      return floatTensor([x.shape[0], dimOp("*", x.shape[1], f), dimOp("*", x.shape[2], f), x.shape[3]]);
    },
  },
  dropout: {
    name: "dropout",
    doc: "inverted dropout: in training each element is zeroed with probability p and the rest scaled by 1 / (1 - p) (masks drawn per step, on both engines); the identity in validation and sampling",
    args: [X, { name: "p", type: "float", doc: "drop probability, in [0, 1)" }],
    runtime: "dropout",
    example: { x: "[B, N, D]", p: "0.1" },
    infer(a, c) {
      const p = num(a, "p");
      if (typeof p === "number" && !(p >= 0 && p < 1)) c.fail("p", "SDC407", `dropout: p must be in [0, 1), got ${p}`);
      return floatTensor(tensor(a, "x").shape);
    },
  },
  avg_pool: pool("avg_pool", "average", "avgPool"),
  max_pool: pool("max_pool", "max", "maxPool"),
  flatten: {
    name: "flatten",
    doc: "[B, ...] -> [B, product of the rest]",
    args: [X],
    runtime: "flatten",
    example: { x: "[B, H, W, C]" },
    infer(a, c) {
      const x = tensor(a, "x");
      minRank(c, "x", x.shape, 2, "flatten");
      return floatTensor([x.shape[0], x.shape.slice(1).reduce((p: Dim, q) => dimOp("*", p, q), 1)]);
    },
  },
  unpatchify: {
    name: "unpatchify",
    doc: "[B, gh*gw, p*p*C] -> [B, gh*p, gw*p, C] (patch-major, channels last within a patch, as the reference)",
    args: [X, { name: "gh", type: "int", doc: "patch rows" }, { name: "gw", type: "int", doc: "patch columns" }, { name: "patch", type: "int", doc: "patch size" }, { name: "channels", type: "int", doc: "image channels" }],
    runtime: "unpatchify",
    example: { x: "[B, gh * gw, p * p * C]", gh: "gh", gw: "gw", patch: "p", channels: "C" },
    infer(a, c) {
      const x = tensor(a, "x");
      rank(c, "x", x.shape, 3, "unpatchify");
      const [gh, gw, p, ch] = [num(a, "gh"), num(a, "gw"), num(a, "patch"), num(a, "channels")];
      c.expectEq("x", x.shape[1], dimOp("*", gh, gw), "unpatchify: the token count must be gh * gw");
      c.expectEq("x", x.shape[2], dimOp("*", dimOp("*", p, p), ch), "unpatchify: the width must be patch * patch * channels");
      return floatTensor([x.shape[0], dimOp("*", gh, p), dimOp("*", gw, p), ch]);
    },
  },
  sincos_2d: {
    name: "sincos_2d",
    doc: "fixed 2-D sin-cos position embedding computed on a max_grid x max_grid grid and centre-cropped to gh x gw: [1, gh*gw, width]",
    args: [{ name: "gh", type: "int", doc: "rows" }, { name: "gw", type: "int", doc: "columns" }, { name: "width", type: "int", doc: "embedding width (multiple of 4)" }, { name: "max_grid", type: "int", doc: "grid the table is computed on" }, { name: "base", type: "int", default: int(0), doc: "base grid size for scaling (0 = gh)" }],
    runtime: "SinCos2d",
    example: { gh: "gh", gw: "gw", width: "D", max_grid: "M" },
    infer(a, c) {
      const [gh, gw, w, m] = [num(a, "gh"), num(a, "gw"), num(a, "width"), num(a, "max_grid")];
      c.div("width", w, 4, "sincos_2d: width must be a multiple of 4");
      if (typeof gh === "number" && typeof m === "number" && gh > m) c.fail("max_grid", "SDC407", `sincos_2d: the patch grid (${gh} rows) is larger than max_grid ${m}`);
      if (typeof gw === "number" && typeof m === "number" && gw > m) c.fail("max_grid", "SDC407", `sincos_2d: the patch grid (${gw} columns) is larger than max_grid ${m}`);
      return floatTensor([1, dimOp("*", gh, gw), w]);
    },
    weights(a) {
      const m = num(a, "max_grid");
      return [{ suffix: null, shape: [1, dimOp("*", m, m), num(a, "width")], init: "fixed", buffer: true }];
    },
  },
  timestep_embedding: {
    name: "timestep_embedding",
    doc: "sinusoidal embedding of t [B] -> [B, dim]; flip: cos half first (as the reference)",
    args: [{ name: "t", type: "tensor", doc: "timesteps [B]" }, { name: "dim", type: "int", doc: "channels (even)" }, { name: "flip", type: "bool", default: bool(true), doc: "cos first" }, { name: "max_period", type: "float", default: flt(10000), doc: "longest period" }, { name: "scale", type: "float", default: flt(1), doc: "multiply t first" }],
    runtime: "timestepEmbedding",
    example: { t: "[B]", dim: "D" },
    infer(a, c) {
      const t = tensor(a, "t");
      rank(c, "t", t.shape, 1, "timestep_embedding");
      c.div("dim", num(a, "dim"), 2, "timestep_embedding: dim must be even");
      return floatTensor([t.shape[0], num(a, "dim")]);
    },
  },
  embedding: {
    name: "embedding",
    doc: "token embedding: int32 ids -> [..., width]",
    args: [{ name: "ids", type: "tensor", doc: "token ids (int32)" }, { name: "vocab", type: "int", doc: "vocabulary size" }, { name: "width", type: "int", doc: "embedding width" }],
    runtime: "Embedding",
    example: { ids: "int32[B, T]", vocab: "V", width: "D" },
    infer(a, c) {
      const ids = tensor(a, "ids");
      if (ids.dtype !== "int32") c.fail("ids", "SDC401", `embedding: ids must be int32, got float32 ${shapeToString(ids.shape)}`);
      positive(c, "vocab", num(a, "vocab"), "vocab");
      return floatTensor([...ids.shape, num(a, "width")]);
    },
    weights: (a) => [{ suffix: "weight", shape: [num(a, "vocab"), num(a, "width")], init: "normal_0.02", buffer: false }],
  },
  parameter: {
    name: "parameter",
    doc: "a learned tensor of the given shape (e.g. learned positions), N(0, 0.02) init",
    args: [{ name: "shape", type: "ints", doc: "shape" }],
    runtime: "Parameter",
    example: { shape: "[N, D]" },
    infer: (a) => floatTensor((a.shape as { items: Value[] }).items.map((v) => (v as { v: Dim }).v)),
    weights: (a) => [{ suffix: null, shape: (a.shape as { items: Value[] }).items.map((v) => (v as { v: Dim }).v), init: "normal_0.02", buffer: false }],
  },
};

/** Broadcast two shapes numpy-style; returns null and a reason when they cannot be. */
export function broadcastShapes(a: Dim[], b: Dim[], symbolic: boolean): { shape: Dim[] } | { error: string } {
  const n = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < n; i++) {
    const da = i < n - a.length ? 1 : a[i - (n - a.length)];
    const db = i < n - b.length ? 1 : b[i - (n - b.length)];
    if (dimEq(da, db) || db === 1) out.push(da);
    else if (da === 1) out.push(db);
    else if (symbolic && (isSym(da) || isSym(db))) out.push(isSym(da) ? db : da);
    else return { error: `cannot broadcast ${shapeToString(a)} with ${shapeToString(b)}: axis ${i} is ${dimToString(da)} vs ${dimToString(db)}` };
  }
  return { shape: out };
}
