/**
 * The types of the primitive table: an entry's signature, shape rule, parameters, runtime name
 * and the facts the code generator needs, plus the arguments every primitive with parameters takes.
 */
import type { Init } from "../../ir/ir.ts";
import type { Dim, Value } from "../values.ts";

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
  /**
   * On a number (one positional argument, an int or a float), the call is this JavaScript `Math`
   * function evaluated at compile time (`sqrt(head_dim)`, `log(theta)`): a float, and `Math.NAME`
   * in the generated code. Elementwise on a tensor otherwise.
   */
  scalar?: "sqrt" | "sin" | "cos" | "exp" | "log";
  /** runtime name: a layer class when weights() can be non-empty, else a function in `F` */
  runtime: string;
  /** how the generated code builds the layer (`runtime`), for a primitive with parameters */
  layer?: LayerCodegen;
  /**
   * the `F` function the generated code calls when the call creates no parameters, with the
   * arguments it passes in order; default: `runtime` with every argument (a layer primitive
   * with `affine: false` calls e.g. `F.layerNorm(x, eps)`)
   */
  fn?: { name: string; args: string[] };
  /**
   * Example arguments by name, on which `sdc primitives` and docs/primitives.md run this entry's
   * own `infer` and `weights` to show its shapes and parameters (so the docs cannot drift from
   * the rules): tensors as shapes (`"[B, N, D]"`, `"int32[B, T]"`; a list of them for the
   * tensors of a variadic primitive, under `xs`), integers, `true`/`false`, or a name for a
   * symbolic size. Arguments left out take their defaults.
   */
  example: Record<string, string | string[]>;
}

/** A constructor argument of a layer: a primitive argument's expression, or the last size of a tensor argument. */
export type CtorArg = string | { lastDim: string };

/** How the generated code constructs and applies a layer primitive. */
export interface LayerCodegen {
  /** the layer's constructor arguments (its `args` object), by field, in the order written */
  ctor: Record<string, CtorArg>;
  /** the primitive arguments `apply()` takes (tensors and forward-time sizes), in order */
  apply: string[];
}

