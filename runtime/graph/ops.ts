/**
 * The elementwise operators of graph.ts, each defined once in its three forms: a JS function
 * (the reference interpreter, cpu.ts), a WGSL expression (webgpu.ts) and a C expression (the
 * native CPU executor: `npm run gen:native` writes runtime/executors/native/src/ew_ops.inc from this table, and a
 * test fails when that file is stale). All use the same formulas, so the executors agree to
 * rounding. A new operator is one entry here, its gradient rule included.
 */
import { GraphError } from "./error.ts";

const C = Math.sqrt(2 / Math.PI);
const K = 0.044715;

/** erf (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7). */
function erf(x: number): number {
  const s = Math.sign(x);
  const a = Math.abs(x);
  const t = 1 / (1 + 0.3275911 * a);
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-a * a);
  return s * y;
}
const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

/** An elementwise expression over a node's inputs (`in`) and constants (`c`). */
export type Expr = { op: EwOp; args: Expr[] } | { in: number } | { c: number };

/** What a gradient rule builds with: elementwise nodes of the graph being differentiated (graph.ts's Graph, its values S = Sym). */
export interface EwGraph<S> {
  ew(op: EwOp, args: (S | number)[]): S;
}

export interface EwDef {
  arity: number;
  js: (...a: number[]) => number;
  wgsl: (...a: string[]) => string;
  /** a C expression over float operands `a` (and `b`); helpers sdc_* are in runtime/executors/native/src/kernels.cc */
  c: string;
  /**
   * the reverse-mode rule (autodiff.ts): given the operands, the output and its gradient, it adds
   * each operand's gradient with `at(i, d)` (ignored for a constant operand). None for the
   * operators only backward passes use (their uses are never differentiated).
   */
  grad?: <S extends object>(d: GradArgs<S>) => void;
}

/** What a gradient rule sees of one elementwise node (S: the graph's values). */
export interface GradArgs<S> {
  g: EwGraph<S>;
  /** the operands: graph values or constants */
  a: (S | number)[];
  /** the node's output */
  y: S;
  /** the gradient of the output */
  dy: S;
  at: (i: number, d: S) => void;
}

/** The rule of a unary operator whose derivative is its own `*_grad` operator of (x, dy). */
function viaGrad<S extends object>(op: EwOp, { g, a, dy, at }: GradArgs<S>): void {
  if (typeof a[0] !== "number") at(0, g.ew(op, [a[0], dy]));
}

/** minimum and maximum: the gradient goes to a where `pick` (a 0/1 mask) is 1, else to b. */
function minMaxGrad<S extends object>(g: EwGraph<S>, dy: S, at: GradArgs<S>["at"], pick: S): void {
  at(0, g.ew("keep", [pick, dy]));
  at(1, g.ew("drop", [pick, dy]));
}

/**
 * The operators by name; the name's order gives the native instruction codes (ew_ops.inc). A
 * `*_grad` operator is d/dx f(x) * dy of its operator f, as (x, dy).
 */
const EW_TABLE = {
  id: { arity: 1, js: (a) => a, wgsl: (a) => a, c: "a", grad: ({ dy, at }) => at(0, dy) },
  add: {
    arity: 2,
    js: (a, b) => a + b,
    wgsl: (a, b) => `(${a} + ${b})`,
    c: "(a + b)",
    grad: ({ dy, at }) => {
      at(0, dy);
      at(1, dy);
    },
  },
  sub: {
    arity: 2,
    js: (a, b) => a - b,
    wgsl: (a, b) => `(${a} - ${b})`,
    c: "(a - b)",
    grad: ({ g, a, dy, at }) => {
      at(0, dy);
      if (typeof a[1] !== "number") at(1, g.ew("neg", [dy]));
    },
  },
  mul: {
    arity: 2,
    js: (a, b) => a * b,
    wgsl: (a, b) => `(${a} * ${b})`,
    c: "(a * b)",
    grad: ({ g, a, dy, at }) => {
      if (typeof a[0] !== "number") at(0, g.ew("mul", [dy, a[1]]));
      if (typeof a[1] !== "number") at(1, g.ew("mul", [dy, a[0]]));
    },
  },
  div: {
    arity: 2,
    js: (a, b) => a / b,
    wgsl: (a, b) => `(${a} / ${b})`,
    c: "(a / b)",
    grad: ({ g, a, y, dy, at }) => {
      if (typeof a[0] !== "number") at(0, g.ew("div", [dy, a[1]]));
      if (typeof a[1] !== "number") at(1, g.ew("neg", [g.ew("div", [g.ew("mul", [dy, y]), a[1]])]));
    },
  },
  neg: { arity: 1, js: (a) => -a, wgsl: (a) => `(-${a})`, c: "(-a)", grad: ({ g, dy, at }) => at(0, g.ew("neg", [dy])) },
  square: { arity: 1, js: (a) => a * a, wgsl: (a) => `sq(${a})`, c: "(a * a)", grad: ({ g, a, dy, at }) => at(0, g.ew("mul", [g.ew("mul", [dy, a[0]]), 2])) },
  sqrt: { arity: 1, js: Math.sqrt, wgsl: (a) => `sqrt(${a})`, c: "std::sqrt(a)", grad: ({ g, y, dy, at }) => at(0, g.ew("div", [g.ew("mul", [dy, 0.5]), y])) },
  rsqrt: {
    arity: 1,
    js: (a) => 1 / Math.sqrt(a),
    wgsl: (a) => `inverseSqrt(${a})`,
    c: "(1.0f / std::sqrt(a))",
    // d/dx x^-1/2 = -1/2 y^3
    grad: ({ g, y, dy, at }) => at(0, g.ew("mul", [g.ew("mul", [dy, -0.5]), g.ew("mul", [y, g.ew("square", [y])])])),
  },
  exp: { arity: 1, js: Math.exp, wgsl: (a) => `exp(${a})`, c: "sdc_exp(a)", grad: ({ g, y, dy, at }) => at(0, g.ew("mul", [dy, y])) },
  log: { arity: 1, js: Math.log, wgsl: (a) => `log(${a})`, c: "std::log(a)", grad: ({ g, a, dy, at }) => at(0, g.ew("div", [dy, a[0]])) },
  abs: { arity: 1, js: Math.abs, wgsl: (a) => `abs(${a})`, c: "std::fabs(a)", grad: (d) => viaGrad("abs_grad", d) },
  sin: {
    arity: 1,
    js: Math.sin,
    wgsl: (a) => `sin(${a})`,
    c: "std::sin(a)",
    grad: ({ g, a, dy, at }) => {
      if (typeof a[0] !== "number") at(0, g.ew("mul", [dy, g.ew("cos", [a[0]])]));
    },
  },
  cos: {
    arity: 1,
    js: Math.cos,
    wgsl: (a) => `cos(${a})`,
    c: "std::cos(a)",
    grad: ({ g, a, dy, at }) => {
      if (typeof a[0] !== "number") at(0, g.ew("neg", [g.ew("mul", [dy, g.ew("sin", [a[0]])])]));
    },
  },
  sigmoid: { arity: 1, js: sigmoid, wgsl: (a) => `sigm(${a})`, c: "sdc_sigmoid(a)", grad: (d) => viaGrad("sigmoid_grad", d) },
  tanh: { arity: 1, js: Math.tanh, wgsl: (a) => `tanh_(${a})`, c: "sdc_tanh(a)", grad: (d) => viaGrad("tanh_grad", d) },
  relu: { arity: 1, js: (a) => Math.max(a, 0), wgsl: (a) => `max(${a}, 0.0)`, c: "(a > 0.0f ? a : 0.0f)", grad: (d) => viaGrad("relu_grad", d) },
  silu: { arity: 1, js: (a) => a * sigmoid(a), wgsl: (a) => `silu(${a})`, c: "(a * sdc_sigmoid(a))", grad: (d) => viaGrad("silu_grad", d) },
  gelu_tanh: { arity: 1, js: (x) => 0.5 * x * (1 + Math.tanh(C * (x + K * x * x * x))), wgsl: (a) => `gelu_t(${a})`, c: "sdc_gelu_t(a)", grad: (d) => viaGrad("gelu_tanh_grad", d) },
  gelu_erf: { arity: 1, js: (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)), wgsl: (a) => `gelu_e(${a})`, c: "sdc_gelu_e(a)", grad: (d) => viaGrad("gelu_erf_grad", d) },
  silu_grad: {
    arity: 2,
    js: (x, dy) => {
      const s = sigmoid(x);
      return dy * s * (1 + x * (1 - s));
    },
    wgsl: (a, b) => `silu_g(${a}, ${b})`,
    c: "sdc_silu_g(a, b)",
  },
  gelu_tanh_grad: {
    arity: 2,
    js: (x, dy) => {
      const t = Math.tanh(C * (x + K * x * x * x));
      return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * C * (1 + 3 * K * x * x));
    },
    wgsl: (a, b) => `gelu_t_g(${a}, ${b})`,
    c: "sdc_gelu_t_g(a, b)",
  },
  gelu_erf_grad: {
    arity: 2,
    js: (x, dy) => dy * (0.5 * (1 + erf(x / Math.SQRT2)) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI)),
    wgsl: (a, b) => `gelu_e_g(${a}, ${b})`,
    c: "sdc_gelu_e_g(a, b)",
  },
  sigmoid_grad: {
    arity: 2,
    js: (x, dy) => {
      const s = sigmoid(x);
      return dy * s * (1 - s);
    },
    wgsl: (a, b) => `(${b} * sigm(${a}) * (1.0 - sigm(${a})))`,
    c: "(b * sdc_sigmoid(a) * (1.0f - sdc_sigmoid(a)))",
  },
  tanh_grad: {
    arity: 2,
    js: (x, dy) => {
      const t = Math.tanh(x);
      return dy * (1 - t * t);
    },
    wgsl: (a, b) => `(${b} * (1.0 - sq(tanh_(${a}))))`,
    c: "(b * (1.0f - sdc_tanh(a) * sdc_tanh(a)))",
  },
  relu_grad: { arity: 2, js: (x, dy) => (x > 0 ? dy : 0), wgsl: (a, b) => `select(0.0, ${b}, ${a} > 0.0)`, c: "(a > 0.0f ? b : 0.0f)" },
  abs_grad: { arity: 2, js: (x, dy) => (x > 0 ? dy : x < 0 ? -dy : 0), wgsl: (a, b) => `select(select(0.0, -${b}, ${a} < 0.0), ${b}, ${a} > 0.0)`, c: "(a > 0.0f ? b : (a < 0.0f ? -b : 0.0f))" },
  // minimum, maximum, clamp, where, pow (and their gradients: ge, keep, drop)
  min: {
    arity: 2,
    js: (a, b) => (a <= b ? a : b),
    wgsl: (a, b) => `select(${b}, ${a}, ${a} <= ${b})`,
    c: "(a <= b ? a : b)",
    // to a where a <= b, else to b (tfjs: lessEqual / greater)
    grad: ({ g, a, dy, at }) => minMaxGrad(g, dy, at, g.ew("ge", [a[1], a[0]])),
  },
  max: {
    arity: 2,
    js: (a, b) => (a >= b ? a : b),
    wgsl: (a, b) => `select(${b}, ${a}, ${a} >= ${b})`,
    c: "(a >= b ? a : b)",
    // to a where a >= b, else to b (tfjs: greaterEqual / less)
    grad: ({ g, a, dy, at }) => minMaxGrad(g, dy, at, g.ew("ge", [a[0], a[1]])),
  },
  ge: {
    arity: 2,
    js: (a, b) => (a >= b ? 1 : 0),
    wgsl: (a, b) => `select(0.0, 1.0, ${a} >= ${b})`,
    c: "(a >= b ? 1.0f : 0.0f)",
    // a step: zero almost everywhere
    grad: () => {},
  },
  keep: {
    arity: 2,
    js: (c, x) => (c !== 0 ? x : 0),
    wgsl: (a, b) => `select(0.0, ${b}, ${a} != 0.0)`,
    c: "(a != 0.0f ? b : 0.0f)",
    // the condition gets none (as tfjs's where)
    grad: ({ g, a, dy, at }) => at(1, g.ew("keep", [a[0], dy])),
  },
  drop: { arity: 2, js: (c, x) => (c !== 0 ? 0 : x), wgsl: (a, b) => `select(${b}, 0.0, ${a} != 0.0)`, c: "(a != 0.0f ? 0.0f : b)", grad: ({ g, a, dy, at }) => at(1, g.ew("drop", [a[0], dy])) },
  pow: {
    arity: 2,
    js: Math.pow,
    wgsl: (a, b) => `pow_(${a}, ${b})`,
    c: "std::pow(a, b)",
    grad: ({ g, a, dy, at }) => {
      // d/dx x^p = p x^(p-1); the exponent is a constant (the spec's pow)
      const [x, p] = a;
      if (typeof p !== "number") throw new GraphError("pow: the exponent must be a constant");
      if (typeof x !== "number") at(0, g.ew("mul", [dy, g.ew("mul", [g.ew("pow", [x, p - 1]), p])]));
    },
  },
} satisfies Record<string, EwDef>;

/** The elementwise operators: the table's names (a new operator is one entry of EW_TABLE). */
export type EwOp = keyof typeof EW_TABLE;
export const EW: Record<EwOp, EwDef> = EW_TABLE;

/** WGSL helper functions the expressions above use (prepended to every elementwise shader). */
export const WGSL_EW_PRELUDE = /* wgsl */ `
fn sq(x: f32) -> f32 { return x * x; }
fn sigm(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }
fn tanh_(x: f32) -> f32 { let e = exp(2.0 * clamp(x, -15.0, 15.0)); return (e - 1.0) / (e + 1.0); }
fn silu(x: f32) -> f32 { return x * sigm(x); }
fn silu_g(x: f32, dy: f32) -> f32 { let s = sigm(x); return dy * s * (1.0 + x * (1.0 - s)); }
const GC: f32 = ${C};
const GK: f32 = ${K};
fn gelu_t(x: f32) -> f32 { return 0.5 * x * (1.0 + tanh_(GC * (x + GK * x * x * x))); }
fn gelu_t_g(x: f32, dy: f32) -> f32 {
  let t = tanh_(GC * (x + GK * x * x * x));
  return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GC * (1.0 + 3.0 * GK * x * x));
}
fn erf_(x: f32) -> f32 {
  let a = abs(x);
  let t = 1.0 / (1.0 + 0.3275911 * a);
  let y = 1.0 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-a * a);
  return sign(x) * y;
}
fn gelu_e(x: f32) -> f32 { return 0.5 * x * (1.0 + erf_(x * 0.7071067811865476)); }
// x^p as C's pow: a negative base with an integer exponent keeps its sign rule, x^0 is 1
fn pow_(x: f32, p: f32) -> f32 {
  if (p == 0.0) { return 1.0; }
  if (x >= 0.0 || p != floor(p)) { return pow(x, p); }
  let r = pow(-x, p);
  return select(r, -r, fract(p * 0.5) != 0.0);
}
fn gelu_e_g(x: f32, dy: f32) -> f32 { return dy * (0.5 * (1.0 + erf_(x * 0.7071067811865476)) + x * exp(-0.5 * x * x) * 0.3989422804014327); }
`;

/** Evaluate an expression with input values `v` (cpu.ts). */
export function evalExpr(e: Expr, v: ArrayLike<number>): number {
  if ("c" in e) return e.c;
  if ("in" in e) return v[e.in];
  const def = EW[e.op];
  if (def.arity === 1) return def.js(evalExpr(e.args[0], v));
  return def.js(evalExpr(e.args[0], v), evalExpr(e.args[1], v));
}

/** Compile an expression to a JS function of the input values (cpu.ts, hot loop). */
export function compileExpr(e: Expr): (v: ArrayLike<number>) => number {
  if ("c" in e) {
    const c = e.c;
    return () => c;
  }
  if ("in" in e) {
    const i = e.in;
    return (v) => v[i];
  }
  const f = EW[e.op].js;
  const a = compileExpr(e.args[0]);
  if (EW[e.op].arity === 1) return (v) => f(a(v));
  const b = compileExpr(e.args[1]);
  return (v) => f(a(v), b(v));
}

/** A WGSL float literal. */
export function wgslFloat(x: number): string {
  if (!Number.isFinite(x)) throw new RangeError(`non-finite constant ${x} in a kernel`);
  const s = Math.fround(x).toString();
  return /[.eE]/.test(s) ? (s.includes("e") && !s.includes(".") ? s.replace("e", ".0e") : s) : `${s}.0`;
}

/** Expression to WGSL, inputs named by `name(i)`. */
export function exprToWgsl(e: Expr, name: (i: number) => string): string {
  if ("c" in e) return `f32(${wgslFloat(e.c)})`;
  if ("in" in e) return name(e.in);
  const def = EW[e.op];
  return def.wgsl(...e.args.map((a) => exprToWgsl(a, name)));
}
