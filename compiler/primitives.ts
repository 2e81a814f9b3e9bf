/**
 * The primitive operations a .mdl network is composed from: their signatures, shape rules and
 * parameter tensors. One table drives the checker (shapes, parameter counts), the generated code
 * (which runtime function or layer class to call) and the docs.
 */
import { type Dim, dimEq, dimOp, dimToString, isSym, shapeToString, type Value } from "./values.ts";
import type { Init } from "../ir/ir.ts";
export type { Init };

/** `operand`: a tensor or a number (broadcast as a scalar) */
export type ArgType = "tensor" | "int" | "float" | "bool" | "ints" | "string" | "operand";

export interface PrimArg {
  name: string;
  type: ArgType;
  /** undefined = required (unless optional) */
  default?: Value;
  /** may be left out, with no default: the rule sees no value, the runtime gets `undefined` */
  optional?: boolean;
  doc: string;
}


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

/** A normalization's affine parameters over the last axis (weight 1, bias 0), unless affine: false. */
function affineWeights(a: Args): WeightSpec[] {
  if (flag(a, "affine") === false) return [];
  const d = last(tensor(a, "x").shape);
  return [
    { suffix: "weight", shape: [d], init: "ones", buffer: false },
    { suffix: "bias", shape: [d], init: "zeros", buffer: false },
  ];
}

/** A list argument's sizes. */
function intList(a: Args, name: string): Dim[] {
  return (a[name] as { items: Value[] }).items.map((v) => (v as { v: Dim }).v);
}
function product(shape: Dim[]): Dim {
  return shape.reduce((p: Dim, q) => dimOp("*", p, q), 1);
}
/** A shape's element count as a number times symbolic factors (products split, each factor by its text). */
function factors(shape: Dim[]): { num: number; syms: Dim[] } {
  let n = 1;
  const syms: Dim[] = [];
  const walk = (d: Dim) => {
    if (typeof d === "number") n *= d;
    else if (d.op === "*") {
      walk(d.a);
      walk(d.b);
    } else syms.push(d);
  };
  shape.forEach(walk);
  // a / k next to a factor k is a (heads * (width / heads) is width)
  for (let i = 0; i < syms.length; i++) {
    const q = syms[i];
    if (typeof q === "number" || q.op !== "/") continue;
    const j = syms.findIndex((k, at) => at !== i && dimEq(k, q.b));
    if (j < 0) continue;
    syms.splice(Math.max(i, j), 1);
    syms.splice(Math.min(i, j), 1);
    walk(q.a);
    i = -1;
  }
  return { num: n, syms };
}
/** have / want: the numeric ratio, the symbolic factors of `have` left over and those of `want` not in `have`. */
function cancel(have: { num: number; syms: Dim[] }, want: { num: number; syms: Dim[] }): { num: number; left: Dim[]; extra: Dim[] } {
  const left = [...have.syms];
  const extra: Dim[] = [];
  for (const w of want.syms) {
    const i = left.findIndex((h) => dimEq(h, w));
    if (i >= 0) left.splice(i, 1);
    else extra.push(w);
  }
  return { num: have.num / want.num, left, extra };
}

/** A tensor-or-number argument's shape ([] for a number). */
function operandShape(a: Args, name: string): Dim[] {
  const v = a[name];
  return v?.t === "tensor" ? v.shape : [];
}

/** minimum, maximum: two operands (at least one a tensor), broadcast. */
function binaryPrim(name: "minimum" | "maximum", doc: string): Primitive {
  return {
    name,
    doc,
    args: [{ name: "a", type: "operand", doc: "tensor (or number)" }, { name: "b", type: "operand", doc: "tensor or number" }],
    runtime: name,
    example: { a: "[B, N, D]", b: "[B, 1, D]" },
    infer(a, c) {
      if (a.a?.t !== "tensor" && a.b?.t !== "tensor") c.fail("a", "SDC401", `${name}: one of a and b must be a tensor`);
      const r = broadcastShapes(operandShape(a, "a"), operandShape(a, "b"), c.symbolic);
      if ("error" in r) return c.fail("b", "SDC500", `${name}: ${r.error}`);
      return floatTensor(r.shape);
    },
  };
}

/** zeros, ones, full: a constant float32 tensor of a shape (sizes may be symbolic, e.g. the batch B). */
function constantPrim(name: "zeros" | "ones" | "full", doc: string): Primitive {
  const args: PrimArg[] = [{ name: "shape", type: "ints", doc: "shape" }];
  if (name === "full") args.push({ name: "value", type: "float", doc: "the value of every element" });
  return {
    name,
    doc,
    args,
    runtime: name,
    example: name === "full" ? { shape: "[B, N, 1]", value: "0.5" } : { shape: "[B, N, 1]" },
    infer(a, c) {
      const dims = intList(a, "shape");
      for (const d of dims) positive(c, "shape", d, `${name}: a size`);
      return floatTensor(dims);
    },
  };
}

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
    weights: affineWeights,
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
  // ---- elementwise: minimum, maximum, clamp, where, pow, square
  minimum: binaryPrim("minimum", "the smaller of a and b, elementwise with broadcasting (gradient: to a where a <= b, else to b)"),
  maximum: binaryPrim("maximum", "the larger of a and b, elementwise with broadcasting (gradient: to a where a >= b, else to b)"),
  clamp: {
    name: "clamp",
    doc: "x limited to [min, max] (gradient: 1 inside, ends included, 0 outside)",
    args: [X, { name: "min", type: "float", doc: "lower bound" }, { name: "max", type: "float", doc: "upper bound" }],
    runtime: "clamp",
    example: { x: "[B, N, D]", min: "-1", max: "1" },
    infer(a, c) {
      const [lo, hi] = [num(a, "min"), num(a, "max")];
      if (typeof lo === "number" && typeof hi === "number" && lo > hi) c.fail("max", "SDC407", `clamp: max ${hi} is below min ${lo}`);
      return floatTensor(tensor(a, "x").shape);
    },
  },
  where: {
    name: "where",
    doc: "cond ? a : b elementwise, cond a float mask (nonzero = true), all three broadcast; no gradient to cond",
    args: [{ name: "cond", type: "tensor", doc: "mask (nonzero selects a)" }, { name: "a", type: "operand", doc: "where cond is nonzero" }, { name: "b", type: "operand", doc: "where cond is 0" }],
    runtime: "where",
    example: { cond: "[B, 1, N]", a: "[B, N, N]", b: "-1e4" },
    infer(a, c) {
      const cond = tensor(a, "cond").shape;
      const ab = broadcastShapes(operandShape(a, "a"), operandShape(a, "b"), c.symbolic);
      if ("error" in ab) return c.fail("b", "SDC500", `where: ${ab.error}`);
      const all = broadcastShapes(cond, ab.shape, c.symbolic);
      if ("error" in all) return c.fail("cond", "SDC500", `where: the mask ${all.error}`);
      return floatTensor(all.shape);
    },
  },
  pow: {
    name: "pow",
    doc: "x^p for a constant p (a negative x needs an integer p)",
    args: [X, { name: "p", type: "float", doc: "exponent" }],
    runtime: "pow",
    example: { x: "[B, N, D]", p: "3" },
    infer: (a) => floatTensor(tensor(a, "x").shape),
  },
  square: { name: "square", doc: "x * x", args: [X], example: { x: "[B, N, D]" }, runtime: "square", infer: (a) => floatTensor(tensor(a, "x").shape) },
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
  // ---- layout ops and constant tensors (reshape ... arange)
  reshape: {
    name: "reshape",
    doc: "the same elements in a new shape (row-major); one size may be -1 (inferred); the element counts must agree",
    args: [X, { name: "shape", type: "ints", doc: "the new shape: sizes, symbolic sizes (B), at most one -1" }],
    runtime: "reshape",
    example: { x: "[B, N, D]", shape: "[B, N, h, -1]" },
    infer(a, c) {
      const x = tensor(a, "x");
      const dims = intList(a, "shape");
      const holes = dims.filter((d) => d === -1).length;
      if (holes > 1) c.fail("shape", "SDC407", `reshape: at most one size may be -1, got ${shapeToString(dims)}`);
      for (const d of dims) if (typeof d === "number" && d !== -1 && (!Number.isInteger(d) || d <= 0)) c.fail("shape", "SDC407", `reshape: sizes must be positive (or one -1), got ${shapeToString(dims)}`);
      const have = factors(x.shape);
      const want = factors(dims.filter((d) => d !== -1));
      const rest = cancel(have, want);
      if (holes) {
        if (rest.extra.length || rest.num % 1 !== 0) {
          if (!c.symbolic) c.fail("shape", "SDC502", `reshape: ${shapeToString(x.shape)} (${dimToString(product(x.shape))} elements) does not split into ${shapeToString(dims)}`);
          const whole = Number.isInteger(rest.num);
          const hole = dimOp("/", product([whole ? rest.num : have.num, ...rest.left]), product([whole ? 1 : want.num, ...rest.extra]));
          return { t: "tensor", dtype: x.dtype, shape: dims.map((d) => (d === -1 ? hole : d)) };
        }
        return { t: "tensor", dtype: x.dtype, shape: dims.map((d) => (d === -1 ? rest.left.reduce((p: Dim, q) => dimOp("*", p, q), rest.num) : d)) };
      }
      if (rest.extra.length || rest.left.length || rest.num !== 1) {
        if (!c.symbolic || (!rest.extra.length && !rest.left.length)) c.fail("shape", "SDC500", `reshape: ${shapeToString(x.shape)} has ${dimToString(product(x.shape))} elements, ${shapeToString(dims)} has ${dimToString(product(dims))}`);
      }
      return { t: "tensor", dtype: x.dtype, shape: dims };
    },
  },
  permute: {
    name: "permute",
    doc: "reorder the axes: output axis i is input axis perm[i]",
    args: [X, { name: "perm", type: "ints", doc: "a permutation of 0 .. rank - 1 (negative counts from the end)" }],
    runtime: "permute",
    example: { x: "[B, N, H, d]", perm: "[0, 2, 1, 3]" },
    infer(a, c) {
      const x = tensor(a, "x");
      const perm = intList(a, "perm");
      if (perm.length !== x.shape.length) c.fail("perm", "SDC501", `permute: ${perm.length} axes for a rank-${x.shape.length} tensor ${shapeToString(x.shape)}`);
      const axes = perm.map((p) => normAxis(p, x.shape.length, c, "perm"));
      if (new Set(axes).size !== axes.length) c.fail("perm", "SDC407", `permute: ${shapeToString(perm)} is not a permutation (an axis repeats)`);
      return { t: "tensor", dtype: x.dtype, shape: axes.map((p) => x.shape[p]) };
    },
  },
  transpose: {
    name: "transpose",
    doc: "swap two axes",
    args: [X, { name: "a", type: "int", doc: "first axis" }, { name: "b", type: "int", doc: "second axis" }],
    runtime: "transpose",
    example: { x: "[B, N, D]", a: "1", b: "2" },
    infer(a, c) {
      const x = tensor(a, "x");
      const i = normAxis(num(a, "a"), x.shape.length, c, "a");
      const j = normAxis(num(a, "b"), x.shape.length, c, "b");
      const s = [...x.shape];
      [s[i], s[j]] = [s[j], s[i]];
      return { t: "tensor", dtype: x.dtype, shape: s };
    },
  },
  slice: {
    name: "slice",
    doc: "the elements start .. end - 1 along an axis (negative bounds count from the end, as in Python)",
    args: [X, { name: "start", type: "int", doc: "first index" }, { name: "end", type: "int", doc: "one past the last index" }, { name: "axis", type: "int", default: int(-1), doc: "axis" }],
    runtime: "slice",
    example: { x: "[B, N, D]", start: "1", end: "-1", axis: "1" },
    infer(a, c) {
      const x = tensor(a, "x");
      const ax = normAxis(num(a, "axis"), x.shape.length, c);
      const len = x.shape[ax];
      const bound = (arg: string): Dim => {
        const v = num(a, arg);
        if (typeof v === "number" && v < 0) return typeof len === "number" ? v + len : dimOp("-", len, -v);
        return v;
      };
      const [s, e] = [bound("start"), bound("end")];
      if (typeof len === "number") {
        if (typeof s === "number" && (s < 0 || s >= len)) c.fail("start", "SDC407", `slice: start ${dimToString(num(a, "start"))} is out of range for axis ${ax} of size ${len}`);
        if (typeof e === "number" && (e <= 0 || e > len)) c.fail("end", "SDC407", `slice: end ${dimToString(num(a, "end"))} is out of range for axis ${ax} of size ${len}`);
      }
      if (typeof s === "number" && typeof e === "number" && e <= s) c.fail("end", "SDC407", `slice: end ${dimToString(num(a, "end"))} must be after start ${dimToString(num(a, "start"))} (an empty slice)`);
      // (N - 1) - 1 is N - 2
      const n = typeof s === "number" && isSym(e) && e.op === "-" && typeof e.b === "number" ? dimOp("-", e.a, e.b + s) : dimOp("-", e, s);
      return { t: "tensor", dtype: x.dtype, shape: x.shape.map((d, i) => (i === ax ? n : d)) };
    },
  },
  repeat: {
    name: "repeat",
    doc: "tile n copies along an axis ([a, b] -> [a, b, a, b], as torch's Tensor.repeat)",
    args: [X, { name: "n", type: "int", doc: "number of copies" }, { name: "axis", type: "int", default: int(-1), doc: "axis" }],
    runtime: "repeat",
    example: { x: "[B, N, D]", n: "2", axis: "1" },
    infer(a, c) {
      const x = tensor(a, "x");
      const n = num(a, "n");
      positive(c, "n", n, "n");
      const ax = normAxis(num(a, "axis"), x.shape.length, c);
      return { t: "tensor", dtype: x.dtype, shape: x.shape.map((d, i) => (i === ax ? dimOp("*", n, d) : d)) };
    },
  },
  broadcast_to: {
    name: "broadcast_to",
    doc: "expand to a shape by numpy broadcasting (size-1 axes and missing leading axes are repeated)",
    args: [X, { name: "shape", type: "ints", doc: "the target shape" }],
    runtime: "broadcastTo",
    example: { x: "[B, 1, D]", shape: "[B, N, D]" },
    infer(a, c) {
      const x = tensor(a, "x");
      const dims = intList(a, "shape");
      for (const d of dims) positive(c, "shape", d, "broadcast_to: a size");
      if (dims.length < x.shape.length) c.fail("shape", "SDC501", `broadcast_to: cannot broadcast rank ${x.shape.length} ${shapeToString(x.shape)} to rank ${dims.length} ${shapeToString(dims)}`);
      const off = dims.length - x.shape.length;
      x.shape.forEach((d, i) => {
        if (d !== 1) c.expectEq("shape", dims[i + off], d, `broadcast_to: cannot broadcast ${shapeToString(x.shape)} to ${shapeToString(dims)} (axis ${i + off})`);
      });
      return { t: "tensor", dtype: x.dtype, shape: dims };
    },
  },
  pad: {
    name: "pad",
    doc: "pad an axis with `before` and `after` elements of a constant value",
    args: [X, { name: "before", type: "int", doc: "elements before" }, { name: "after", type: "int", doc: "elements after" }, { name: "axis", type: "int", default: int(-1), doc: "axis" }, { name: "value", type: "float", default: flt(0), doc: "the padding value" }],
    runtime: "pad",
    example: { x: "[B, N, D]", before: "1", after: "0", axis: "1" },
    infer(a, c) {
      const x = tensor(a, "x");
      const ax = normAxis(num(a, "axis"), x.shape.length, c);
      const [b, e] = [num(a, "before"), num(a, "after")];
      for (const [arg, v] of [["before", b], ["after", e]] as const) if (typeof v === "number" && (!Number.isInteger(v) || v < 0)) c.fail(arg, "SDC407", `pad: ${arg} must be a non-negative integer, got ${v}`);
      return floatTensor(x.shape.map((d, i) => (i === ax ? dimOp("+", dimOp("+", b, d), e) : d)));
    },
  },
  squeeze: {
    name: "squeeze",
    doc: "remove an axis of size 1",
    args: [X, { name: "axis", type: "int", doc: "the axis (of size 1)" }],
    runtime: "squeeze",
    example: { x: "[B, 1, D]", axis: "1" },
    infer(a, c) {
      const x = tensor(a, "x");
      const ax = normAxis(num(a, "axis"), x.shape.length, c);
      c.expectEq("axis", x.shape[ax], 1, `squeeze: axis ${ax} of ${shapeToString(x.shape)} must have size 1`);
      return { t: "tensor", dtype: x.dtype, shape: x.shape.filter((_, i) => i !== ax) };
    },
  },
  zeros: constantPrim("zeros", "a tensor of zeros"),
  ones: constantPrim("ones", "a tensor of ones"),
  full: constantPrim("full", "a tensor filled with one value"),
  arange: {
    name: "arange",
    doc: "0, 1, ..., n - 1 as a float32 [n] tensor",
    args: [{ name: "n", type: "int", doc: "length" }],
    runtime: "arange",
    example: { n: "N" },
    infer(a, c) {
      const n = num(a, "n");
      positive(c, "n", n, "n");
      return floatTensor([n]);
    },
  },
  attention: {
    name: "attention",
    doc: "multi-head scaled dot-product attention; q [B, S, H*d], k and v [B, S', H*d] (or [B, S', G*d] with kv_heads: G)",
    args: [
      { name: "q", type: "tensor", doc: "queries" },
      { name: "k", type: "tensor", doc: "keys" },
      { name: "v", type: "tensor", doc: "values" },
      { name: "heads", type: "int", doc: "number of heads" },
      { name: "causal", type: "bool", default: bool(false), doc: "causal mask: query i attends to keys j <= i + S' - S (the last queries see every key)" },
      { name: "mask", type: "tensor", optional: true, doc: "key padding mask, float32 [B, S']: 1 = attend, 0 = padding (the scores of padded keys become -1e9: a row with every key masked is the plain average of v, not NaN; combines with causal)" },
      { name: "kv_heads", type: "int", optional: true, doc: "grouped-query attention: k and v have G heads (G divides heads); query head h reads kv head floor(h / (heads / G))" },
    ],
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
      const heads = num(a, "heads");
      positive(c, "heads", heads, "heads");
      const d = c.div("heads", q.shape[2], heads, "attention: heads must divide the width");
      if (a.kv_heads) {
        const g = num(a, "kv_heads");
        positive(c, "kv_heads", g, "kv_heads");
        c.div("kv_heads", heads, g, "attention: kv_heads must divide heads");
        c.expectEq("k", k.shape[2], dimOp("*", g, d), "attention: width of k must be kv_heads * the head width (q's width / heads)");
      } else c.expectEq("k", k.shape[2], q.shape[2], "attention: width of k must match q");
      c.expectEq("v", v.shape[1], k.shape[1], "attention: sequence length of v must match k");
      c.expectEq("v", v.shape[0], q.shape[0], "attention: batch of v must match q");
      c.expectEq("v", v.shape[2], k.shape[2], "attention: width of v must match k");
      if (a.mask) {
        const m = tensor(a, "mask");
        if (m.dtype !== "float32") c.fail("mask", "SDC401", `attention: the mask must be float32 (1 = attend, 0 = padding), got ${m.dtype} ${shapeToString(m.shape)}`);
        rank(c, "mask", m.shape, 2, "attention's mask [B, S']");
        c.expectEq("mask", m.shape[0], k.shape[0], "attention: batch of the mask must match k");
        c.expectEq("mask", m.shape[1], k.shape[1], "attention: length of the mask must match the key length");
      }
      return floatTensor([q.shape[0], q.shape[1], q.shape[2]]);
    },
  },
  rope: {
    name: "rope",
    doc: "rotary position embedding of x [B, N, H*d] (each head alike) at positions pos [N, A] or [B, N, A]: axis a rotates axes_dim[a] channels with frequencies theta^(-2j/axes_dim[a]) (Flux's EmbedND + apply_rope)",
    args: [
      X,
      { name: "pos", type: "tensor", doc: "float32 position ids [N, A] or [B, N, A], one column per axis" },
      { name: "heads", type: "int", doc: "number of heads (RoPE acts on each head's d = width / heads channels)" },
      { name: "axes_dim", type: "ints", doc: "channels per axis (even, adding up to d)" },
      { name: "theta", type: "float", default: flt(10000), doc: "frequency base" },
      { name: "interleaved", type: "bool", default: bool(true), doc: "rotate pairs (2i, 2i+1) as Flux; false: the rotate-half pairs (i, i + d/2) of GPT-NeoX and HF Llama" },
    ],
    runtime: "rope",
    example: { x: "[B, N, D]", pos: "[N, 3]", heads: "H", axes_dim: "[16, 56, 56]" },
    infer(a, c) {
      const x = tensor(a, "x");
      const pos = tensor(a, "pos");
      rank(c, "x", x.shape, 3, "rope");
      if (pos.dtype !== "float32") c.fail("pos", "SDC401", `rope: positions must be float32, got ${pos.dtype} ${shapeToString(pos.shape)}`);
      if (pos.shape.length !== 2 && pos.shape.length !== 3) c.fail("pos", "SDC501", `rope needs positions [N, A] or [B, N, A], got rank ${pos.shape.length} ${shapeToString(pos.shape)}`);
      const heads = num(a, "heads");
      positive(c, "heads", heads, "heads");
      const d = c.div("heads", x.shape[2], heads, "rope: heads must divide the width");
      const axes = (a.axes_dim as { items: Value[] }).items.map((v) => (v as { v: Dim }).v);
      if (axes.length === 0) c.fail("axes_dim", "SDC407", "rope: axes_dim needs at least one axis");
      // a block parameter is symbolic here (checked once per block): numbers are checked now
      for (const ad of axes) {
        if (typeof ad === "number" && (!Number.isInteger(ad) || ad <= 0 || ad % 2)) c.fail("axes_dim", "SDC407", `rope: each axis needs a positive even number of channels, got ${ad}`);
      }
      const total = axes.reduce((p: Dim, q) => dimOp("+", p, q), 0);
      c.expectEq("axes_dim", total, d, "rope: axes_dim must add up to the head width (width / heads)");
      const lead = pos.shape.length - 2;
      if (lead) c.expectEq("pos", pos.shape[0], x.shape[0], "rope: batch of pos must match x");
      c.expectEq("pos", pos.shape[lead], x.shape[1], "rope: positions must have one row per token of x");
      c.expectEq("pos", pos.shape[lead + 1], axes.length, "rope: positions need one column per entry of axes_dim");
      const theta = num(a, "theta");
      if (typeof theta === "number" && !(theta > 0 && Number.isFinite(theta))) c.fail("theta", "SDC407", `rope: theta must be positive, got ${theta}`);
      return floatTensor(x.shape);
    },
  },
  positions_2d: {
    name: "positions_2d",
    doc: "position ids of a gh x gw grid: float32 [gh*gw, 2], (row, column) per token in row-major order (Flux's image ids, without the leading zero axis)",
    args: [{ name: "gh", type: "int", doc: "rows" }, { name: "gw", type: "int", doc: "columns" }],
    runtime: "positions2d",
    example: { gh: "gh", gw: "gw" },
    infer(a, c) {
      const [gh, gw] = [num(a, "gh"), num(a, "gw")];
      positive(c, "gh", gh, "gh");
      positive(c, "gw", gw, "gw");
      return floatTensor([dimOp("*", gh, gw), 2]);
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
    weights: affineWeights,
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
