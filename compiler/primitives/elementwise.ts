/** Elementwise functions (activations, minimum ... pow), softmax and dropout. */
import { bool, tensor, num, floatTensor, X, operandShape, broadcastShapes } from "./rules.ts";
import { type Primitive } from "./types.ts";

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


export const ELEMENTWISE: Record<string, Primitive> = {
  silu: { name: "silu", doc: "x * sigmoid(x)", args: [X], example: { x: "[B, N, D]" }, runtime: "silu", infer: (a) => floatTensor(tensor(a, "x").shape) },
  relu: { name: "relu", doc: "max(x, 0)", args: [X], example: { x: "[B, N, D]" }, runtime: "relu", infer: (a) => floatTensor(tensor(a, "x").shape) },
  sigmoid: { name: "sigmoid", doc: "1 / (1 + exp(-x))", args: [X], example: { x: "[B, N, D]" }, runtime: "sigmoid", infer: (a) => floatTensor(tensor(a, "x").shape) },
  tanh: { name: "tanh", doc: "tanh(x)", args: [X], example: { x: "[B, N, D]" }, runtime: "tanh", infer: (a) => floatTensor(tensor(a, "x").shape) },
  exp: { name: "exp", doc: "e^x; of a number, a float computed at compile time", args: [X], example: { x: "[B, N, D]" }, runtime: "exp", scalar: "exp", infer: (a) => floatTensor(tensor(a, "x").shape) },
  log: { name: "log", doc: "natural logarithm (NaN below 0, -inf at 0; of a number: positive numbers only); of a number, a float computed at compile time", args: [X], example: { x: "[B, N, D]" }, runtime: "log", scalar: "log", infer: (a) => floatTensor(tensor(a, "x").shape) },
  sqrt: { name: "sqrt", doc: "square root (of a number: non-negative numbers only); of a number, a float computed at compile time", args: [X], example: { x: "[B, N, D]" }, runtime: "sqrt", scalar: "sqrt", infer: (a) => floatTensor(tensor(a, "x").shape) },
  rsqrt: { name: "rsqrt", doc: "1 / sqrt(x)", args: [X], example: { x: "[B, N, D]" }, runtime: "rsqrt", infer: (a) => floatTensor(tensor(a, "x").shape) },
  abs: { name: "abs", doc: "|x| (gradient 0 at 0)", args: [X], example: { x: "[B, N, D]" }, runtime: "abs", infer: (a) => floatTensor(tensor(a, "x").shape) },
  sin: { name: "sin", doc: "sine (x in radians); of a number, a float computed at compile time", args: [X], example: { x: "[B, N, D]" }, runtime: "sin", scalar: "sin", infer: (a) => floatTensor(tensor(a, "x").shape) },
  cos: { name: "cos", doc: "cosine (x in radians); of a number, a float computed at compile time", args: [X], example: { x: "[B, N, D]" }, runtime: "cos", scalar: "cos", infer: (a) => floatTensor(tensor(a, "x").shape) },
  softmax: { name: "softmax", doc: "softmax over the last axis", args: [X], example: { x: "[B, N, D]" }, runtime: "softmax", infer: (a) => floatTensor(tensor(a, "x").shape) },
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
};
