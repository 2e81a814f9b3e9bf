/**
 * Expressions, one handler per node kind: literals, names, operators (numbers, bools, tensors
 * with broadcasting), conditionals, lists and calls (calls.ts). Every value is recorded for the
 * code generator (symbolic), shown to the observer, and, concrete, its tensor size checked.
 */
import type * as A from "../ast.ts";
import { fail } from "../diagnostics.ts";
import { broadcastShapes } from "../primitives.ts";
import { type ArithOp, type Dim, dimOp, dimToString, shapeToString, type Sym, symVar, typeName, listType, type Value, valueToString } from "../values.ts";
import { evalCall } from "./calls.ts";
import { evalMethod, symbolicElement } from "./lists.ts";
import { joinDeps } from "./deps.ts";
import { exprText, fmtCount, suggest } from "./text.ts";
import { Cascade, type Evaluator, MAX_ACTIVATION, type Scope, UNKNOWN } from "./types.ts";

export function evalExpr(ev: Evaluator, e: A.Expr, scope: Scope): Value {
  const v = (EXPRS[e.kind] as ExprCheck<A.Expr["kind"]>)(ev, e, scope);
  scope.analysis?.types.set(e, v);
  if (ev.observe) ev.observe(e, v, { symbolic: scope.symbolic, module: !scope.symbolic && e.kind === "call" && e.label ? scope.module?.children[scope.module.children.length - 1] : undefined });
  if (!scope.symbolic && v.t === "tensor") checkActivation(ev, e, v);
  return v;
}

/** The largest activation so far, and the limit on one (elements per sample). */
function checkActivation(ev: Evaluator, e: A.Expr, v: Extract<Value, { t: "tensor" }>) {
  let n = 1;
  for (const d of v.shape) if (typeof d === "number") n *= d;
  if (n > ev.maxActivation) {
    ev.maxActivation = n;
    ev.maxActivationAt = e.span;
  }
  if (n > MAX_ACTIVATION) fail("SDC602", e.span, `this tensor would hold ${fmtCount(n)} elements per sample (${shapeToString(v.shape)}); the limit is ${fmtCount(MAX_ACTIVATION)}`);
}

type ExprCheck<K extends A.Expr["kind"]> = (ev: Evaluator, e: Extract<A.Expr, { kind: K }>, scope: Scope) => Value;

const EXPRS: { [K in A.Expr["kind"]]: ExprCheck<K> } = {
  number: evalNumber,
  string: (_ev, e) => ({ t: "string", v: e.value }),
  bool: (_ev, e) => ({ t: "bool", v: e.value }),
  ident: evalIdent,
  unary: evalUnary,
  binary: evalBinary,
  ternary: evalTernary,
  list: (ev, e, scope) => ({ t: "list", items: e.items.map((x) => ev.evalExpr(x, scope)) }),
  index: evalIndex,
  method: (ev, e, scope) => evalMethod(ev, e, scope, false),
  shape: (_ev, e) => fail("SDC401", e.span, "a tensor type is only allowed in a forward signature"),
  call: evalCall,
};

function evalNumber(_ev: Evaluator, e: A.NumberLit): Value {
  if (e.isInt) {
    if (!Number.isSafeInteger(e.value)) fail("SDC106", e.span, `integer ${e.text} is too large (more than 2^53)`);
    return { t: "int", v: e.value };
  }
  if (!Number.isFinite(e.value)) fail("SDC106", e.span, `number ${e.text} is out of range`);
  return { t: "float", v: e.value };
}

function evalIdent(_ev: Evaluator, e: A.Ident, scope: Scope): Value {
  const v = scope.vars.get(e.name) ?? scope.consts.get(e.name);
  // a name whose statement already failed: skip this statement quietly instead of a second, bogus error
  if (v === UNKNOWN) throw new Cascade();
  if (v) return v;
  const d = scope.dims.get(e.name);
  if (d !== undefined) return { t: "int", v: d };
  if (scope.symbolsOk) return { t: "symbol", v: e.name };
  const known = [...scope.vars.keys(), ...scope.consts.keys(), ...scope.dims.keys()];
  fail("SDC300", e.span, `unknown identifier '${e.name}'${suggest(e.name, known)}`);
}

function evalUnary(ev: Evaluator, e: A.Unary, scope: Scope): Value {
  const v = ev.evalExpr(e.operand, scope);
  if (e.op === "!") {
    if (v.t !== "bool") fail("SDC401", e.operand.span, `'!' needs a bool, got ${typeName(v)}`);
    return { t: "bool", v: typeof v.v === "boolean" ? !v.v : symVar(`!${dimToString(v.v as Sym, 3)}`) };
  }
  if (v.t === "int" || v.t === "float") return { t: v.t, v: typeof v.v === "number" ? -v.v : dimOp("-", 0, v.v) } as Value;
  if (v.t === "tensor") return v;
  fail("SDC401", e.operand.span, `'-' needs a number or a tensor, got ${typeName(v)}`);
}

function evalTernary(ev: Evaluator, e: A.Ternary, scope: Scope): Value {
  const c = ev.evalExpr(e.cond, scope);
  if (c.t !== "bool") fail("SDC401", e.cond.span, `a condition must be a bool, got ${typeName(c)}`);
  if (typeof c.v === "boolean" && !scope.symbolic) return ev.evalExpr(c.v ? e.then : e.else, scope);
  const a = ev.evalExpr(e.then, { ...scope, guards: [...scope.guards, { cond: e.cond, negate: false }] });
  const b = ev.evalExpr(e.else, { ...scope, guards: [...scope.guards, { cond: e.cond, negate: true }] });
  if (typeof c.v === "boolean") return c.v ? a : b;
  if (a.t !== b.t) fail("SDC401", e.span, `both branches must have the same type: ${typeName(a)} vs ${typeName(b)}`);
  return a.t === "int" || a.t === "float" ? ({ t: a.t, v: symVar(`(?)`) } as Value) : a;
}

const COMPARISONS = ["==", "!=", "<", "<=", ">", ">="];
const isNum = (v: Value) => v.t === "int" || v.t === "float";

function evalBinary(ev: Evaluator, e: A.Binary, scope: Scope): Value {
  const l = ev.evalExpr(e.left, scope);
  const r = ev.evalExpr(e.right, scope);
  if (e.op === "&&" || e.op === "||") return logical(e, l, r);
  if (COMPARISONS.includes(e.op)) return compare(e, l, r);
  if (l.t === "tensor" || r.t === "tensor") return tensorArith(ev, e, l, r, scope);
  return scalarArith(e, l, r);
}

function logical(e: A.Binary, l: Value, r: Value): Value {
  const op = e.op;
  if (l.t !== "bool") fail("SDC401", e.left.span, `'${op}' needs bools, got ${typeName(l)}`);
  if (r.t !== "bool") fail("SDC401", e.right.span, `'${op}' needs bools, got ${typeName(r)}`);
  if (typeof l.v === "boolean" && typeof r.v === "boolean") return { t: "bool", v: op === "&&" ? l.v && r.v : l.v || r.v };
  return { t: "bool", v: symVar("(?)") };
}

function compare(e: A.Binary, l: Value, r: Value): Value {
  const op = e.op;
  if (l.t === "bool" && r.t === "bool" && (op === "==" || op === "!=")) {
    if (typeof l.v === "boolean" && typeof r.v === "boolean") return { t: "bool", v: op === "==" ? l.v === r.v : l.v !== r.v };
    return { t: "bool", v: symVar("(?)") };
  }
  if (!isNum(l)) fail("SDC401", e.left.span, `'${op}' compares numbers, got ${typeName(l)}`);
  if (!isNum(r)) fail("SDC401", e.right.span, `'${op}' compares numbers, got ${typeName(r)}`);
  const a = (l as { v: Dim }).v;
  const b = (r as { v: Dim }).v;
  if (typeof a === "number" && typeof b === "number") {
    const res = op === "==" ? a === b : op === "!=" ? a !== b : op === "<" ? a < b : op === "<=" ? a <= b : op === ">" ? a > b : a >= b;
    return { t: "bool", v: res };
  }
  return { t: "bool", v: symVar(`${dimToString(a)} ${op} ${dimToString(b)}`) };
}

/** Elementwise arithmetic with a tensor: shapes broadcast, the result depends on both sides. */
function tensorArith(ev: Evaluator, e: A.Binary, l: Value, r: Value, scope: Scope): Value {
  const op = e.op;
  if (op === "%" || op === "div") fail("SDC401", e.span, `'${op}' is integer arithmetic, not defined on tensors`);
  const ls = l.t === "tensor" ? l.shape : isNum(l) ? [] : fail("SDC401", e.left.span, `'${op}' needs a number or tensor, got ${typeName(l)}`);
  const rs = r.t === "tensor" ? r.shape : isNum(r) ? [] : fail("SDC401", e.right.span, `'${op}' needs a number or tensor, got ${typeName(r)}`);
  const b = broadcastShapes(ls, rs, scope.symbolic);
  if ("error" in b) fail("SDC500", e.span, `shape mismatch in '${op}': ${b.error}`);
  const res: Value = { t: "tensor", dtype: "float32", shape: b.shape };
  return scope.symbolic ? res : ev.withDeps(res, joinDeps(ev.depNode(l), ev.depNode(r)));
}

/** Arithmetic on numbers: integer division exact, no overflow past 2^53, nothing infinite. */
function scalarArith(e: A.Binary, l: Value, r: Value): Value {
  const op = e.op;
  if (!isNum(l)) fail("SDC401", e.left.span, `'${op}' needs numbers, got ${typeName(l)}`);
  if (!isNum(r)) fail("SDC401", e.right.span, `'${op}' needs numbers, got ${typeName(r)}`);
  const a = (l as { v: Dim }).v;
  const b = (r as { v: Dim }).v;
  const bothInt = l.t === "int" && r.t === "int";
  if (op === "div" || op === "%") integerOperands(e, l, r);
  if ((op === "/" || op === "div" || op === "%") && b === 0) fail("SDC603", e.right.span, "division by zero");
  if (bothInt && op === "/" && typeof a === "number" && typeof b === "number" && a % b !== 0) {
    fail("SDC502", e.span, `${exprText(e.left)} / ${exprText(e.right)} is not exact: ${a} is not divisible by ${b}`);
  }
  const v = dimOp(op as ArithOp, a, b);
  if (typeof v === "number" && bothInt && !Number.isSafeInteger(v)) fail("SDC601", e.span, `integer overflow: ${exprText(e)} exceeds 2^53`);
  if (typeof v === "number" && !Number.isFinite(v)) fail("SDC601", e.span, `${exprText(e)} is out of range`);
  return bothInt ? { t: "int", v } : { t: "float", v: v as number | Sym };
}

/** `div` and `%` take integers: a float operand (even a whole one, `4.0`) is refused where it is. */
function integerOperands(e: A.Binary, l: Value, r: Value) {
  const hint = e.op === "div" ? "; for a float quotient use '/'" : "";
  if (l.t !== "int") fail("SDC401", e.left.span, `'${e.op}' needs integers, got ${typeName(l)} ${valueToString(l)}${hint}`);
  if (r.t !== "int") fail("SDC401", e.right.span, `'${e.op}' needs integers, got ${typeName(r)} ${valueToString(r)}${hint}`);
}

/**
 * `xs[i]`: an element of a list, a negative index counting from the end. A list-typed block
 * parameter seen symbolically, or a symbolic index, gives the element as a symbol (`widths[i]`).
 */
function evalIndex(ev: Evaluator, e: A.IndexExpr, scope: Scope): Value {
  const list = ev.evalExpr(e.target, scope);
  if (list.t !== "list") fail("SDC401", e.target.span, `'${e.target.name}' is ${typeName(list)}, not a list: only lists are indexed`);
  const i = ev.evalExpr(e.index, scope);
  if (i.t !== "int") fail("SDC401", e.index.span, `a list index must be an integer, got ${typeName(i)} ${valueToString(i)}`);
  if (typeof i.v === "number" && !list.sym) return listItem(e, list.items, i.v);
  if (list.sym?.elem === "tensor" || (!list.sym && !listType(list))) {
    const t = symbolicElement(e.target.name, list);
    if (!t) fail("SDC401", e.target.span, `the elements of '${e.target.name}' are not all tensors: index it by a constant`);
    return t;
  }
  const elem = list.sym?.elem ?? listType(list)?.slice(0, -2);
  if (elem !== "int" && elem !== "float") fail("SDC401", e.index.span, `'${e.target.name}' is indexed by ${dimToString(i.v)}, known only when the model is built: index it by a constant`);
  return { t: elem, v: { op: "at", list: e.target.name, a: i.v } } as Value;
}

function listItem(e: A.IndexExpr, items: Value[], i: number): Value {
  const n = items.length;
  if (i >= n || i < -n) fail("SDC407", e.index.span, `index ${i} is out of range for '${e.target.name}' of length ${n}${n ? ` (indices 0 .. ${n - 1}, or -${n} .. -1 from the end)` : ""}`);
  return items[i < 0 ? n + i : i];
}
