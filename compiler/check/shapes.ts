/** Shapes: dimensions as integers, declared tensor types, and unifying them with actual tensors. */
import type * as A from "../ast.ts";
import { fail, type Span } from "../diagnostics.ts";
import { type Dim, dimEq, dimToString, isSym, shapeToString, symVar, typeName, type Value, valueToString } from "../values.ts";
import { exprListText, exprText } from "./text.ts";
import type { Evaluator, Scope } from "./types.ts";

type Tensor = Extract<Value, { t: "tensor" }>;

export function intOf(v: Value, span: Span, what: string): Dim {
  if (v.t !== "int") fail("SDC401", span, `${what} must be an integer, got ${typeName(v)} ${valueToString(v)}`);
  if (typeof v.v === "number" && v.v < 0) fail("SDC407", span, `${what} must not be negative, got ${v.v}`);
  return v.v;
}

/** A declared tensor type (`[B, N, D]`) as a value: unbound names become dimension variables. */
export function shapeValue(ev: Evaluator, s: A.ShapeExpr, scope: Scope): Value {
  return {
    t: "tensor",
    dtype: s.dtype,
    shape: s.dims.map((d) => {
      if (d.kind === "ident" && !scope.consts.has(d.name) && !scope.vars.has(d.name)) return scope.dims.get(d.name) ?? symVar(d.name);
      return intOf(ev.evalExpr(d, scope), d.span, "a dimension");
    }),
  };
}

/** Unify a declared input shape with an actual tensor, binding dimension names. */
export function bindShape(ev: Evaluator, what: string, declared: A.ShapeExpr, actual: Tensor, scope: Scope, span: Span) {
  if (actual.dtype !== declared.dtype) fail("SDC401", span, `${what} must be ${declared.dtype}, got ${actual.dtype} ${shapeToString(actual.shape)}`);
  if (actual.shape.length !== declared.dims.length) {
    fail("SDC501", span, `${what}: expected rank ${declared.dims.length} ${exprListText(declared.dims)}, got rank ${actual.shape.length} ${shapeToString(actual.shape)}`);
  }
  declared.dims.forEach((d, axis) => {
    const got = actual.shape[axis];
    if (d.kind === "ident" && !scope.consts.has(d.name)) {
      const bound = scope.dims.get(d.name);
      if (bound === undefined) scope.dims.set(d.name, got);
      else if (!dimEq(bound, got)) fail("SDC500", span, `${what}: expected ${exprListText(declared.dims)}, got ${shapeToString(actual.shape)}: axis ${axis} is ${dimToString(got)} but ${d.name} = ${dimToString(bound)}`);
      return;
    }
    const want = intOf(ev.evalExpr(d, scope), d.span, "a dimension");
    if (!dimEq(want, got)) fail("SDC500", span, `${what}: expected ${exprListText(declared.dims)} = ${shapeToString(declared.dims.map((x, k) => (k === axis ? want : actual.shape[k])))}, got ${shapeToString(actual.shape)}: axis ${axis} is ${dimToString(got)}, expected ${exprText(d)} = ${dimToString(want)}`);
  });
}

/** Symbolic call of a block: its inputs' ranks checked, their dimension names bound in `inner`. */
export function bindSymbolicInputs(block: A.BlockDecl, fwd: A.Forward, positional: { value: Value; arg: A.Arg }[], consts: Map<string, Value>, inner: Scope) {
  fwd.inputs.forEach((inp, i) => {
    const actual = positional[i].value as Tensor;
    if (actual.shape.length !== inp.shape.dims.length && !actual.shape.some((d) => isSym(d) && d.op === "var" && d.name === "?")) {
      fail("SDC501", positional[i].arg.span, `argument '${inp.name}' of ${block.name}: expected rank ${inp.shape.dims.length} ${exprListText(inp.shape.dims)}, got rank ${actual.shape.length} ${shapeToString(actual.shape)}`);
    }
    inp.shape.dims.forEach((d, axis) => {
      if (d.kind === "ident" && !consts.has(d.name) && !inner.dims.has(d.name)) inner.dims.set(d.name, actual.shape[axis] ?? symVar(d.name));
    });
  });
}

/** A symbolic call's outputs: the declared shapes, or their text where they cannot be evaluated. */
export function symbolicOutputs(ev: Evaluator, fwd: A.Forward, inner: Scope): Value[] {
  return fwd.outputs.map((o) => {
    try {
      return shapeValue(ev, o, inner);
    } catch {
      return { t: "tensor", dtype: o.dtype, shape: o.dims.map((d) => symVar(exprText(d))) } as Value;
    }
  });
}

/** A concrete call's returned values against the forward's declared outputs (SDC503). */
export function checkReturned(ev: Evaluator, block: A.BlockDecl, fwd: A.Forward, ret: Value[] | undefined, scope: Scope): Value[] {
  if (!ret) fail("SDC404", fwd.span, `block ${block.name}: forward must end with \`return\``);
  if (ret.length !== fwd.outputs.length) {
    const r = fwd.body[fwd.body.length - 1];
    fail("SDC503", r.span, `block ${block.name} declares ${fwd.outputs.length} output${fwd.outputs.length === 1 ? "" : "s"} but returns ${ret.length}`);
  }
  const retStmt = fwd.body[fwd.body.length - 1] as A.ReturnStmt;
  fwd.outputs.forEach((o, i) => {
    const got = ret[i];
    if (got.t !== "tensor") fail("SDC503", retStmt.values[i].span, `output ${i + 1} of ${block.name} must be a tensor, got ${typeName(got)}`);
    const want = shapeValue(ev, o, scope) as Tensor;
    const mismatch = got.shape.length !== want.shape.length || got.shape.some((d, k) => !dimEq(d, want.shape[k]));
    if (mismatch) fail("SDC503", retStmt.values[i].span, `output ${i + 1} of ${block.name} is declared ${shapeToString(want.shape)} (${exprListText(o.dims)}) but the value returned is ${shapeToString(got.shape)}`);
  });
  return ret;
}
