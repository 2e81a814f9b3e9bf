/**
 * Calls: arguments evaluated, then a primitive (prims.ts) or a block. A block call binds the
 * block's parameters and, concrete, runs its forward at its state-dict path; symbolic, it checks
 * the inputs' ranks and records the module for the constructor.
 */
import type * as A from "../ast.ts";
import { exprNames } from "../ast.ts";
import { fail } from "../diagnostics.ts";
import { primitive, PRIMITIVES } from "../primitives.ts";
import { listType, typeName, type Value, valueToString } from "../values.ts";
import { labelPath, ownsWeights, recordModule } from "./modules.ts";
import { callPrimitive } from "./prims.ts";
import { bindShape, bindSymbolicInputs, checkReturned, symbolicOutputs } from "./shapes.ts";
import { execStmts } from "./stmts.ts";
import { exprText, joinPath, suggest } from "./text.ts";
import type { ModuleNode } from "../../ir/ir.ts";
import { type ArgValue, emptyScope, type Evaluator, MAX_CALL_DEPTH, type NamedArgs, type Scope } from "./types.ts";

export function evalNamedArgs(ev: Evaluator, call: A.Call, scope: Scope): NamedArgs {
  const named: NamedArgs = new Map();
  for (const a of call.args) {
    if (!a.name) continue;
    if (named.has(a.name)) fail("SDC301", a.nameSpan!, `argument '${a.name}' is given twice`);
    named.set(a.name, { value: ev.evalExpr(a.value, scope), arg: a });
  }
  return named;
}

export function evalCall(ev: Evaluator, call: A.Call, scope: Scope): Value {
  const prim = primitive(call.callee);
  const block = ev.blocks.get(call.callee);
  if (call.callee === "len" && !block) return evalLen(ev, call, scope);
  if (!prim && !block) {
    fail("SDC304", call.calleeSpan, `unknown block or primitive '${call.callee}'${suggest(call.callee, [...Object.keys(PRIMITIVES), ...ev.blocks.keys()])}`);
  }
  const positional = evalPositional(ev, call, scope);
  const named = evalNamedArgs(ev, call, scope);
  if (prim) return callPrimitive(ev, call, prim, positional, named, scope);
  return callBlockFromForward(ev, call, block!, positional, named, scope);
}

/** `len(xs)`: the length of a list (a symbol for a list-typed block parameter seen symbolically). */
function evalLen(ev: Evaluator, call: A.Call, scope: Scope): Value {
  const [arg, extra] = call.args;
  if (!arg || arg.name || extra) fail("SDC400", call.span, "len takes one list: `len(widths)`");
  if (call.label) fail("SDC406", call.label.span, "len(...) has no parameters, so it takes no name");
  const v = ev.evalExpr(arg.value, scope);
  if (v.t !== "list") fail("SDC401", arg.value.span, `len needs a list, got ${typeName(v)}`);
  return { t: "int", v: v.sym ? { op: "len", list: v.sym.name } : v.items.length };
}

function evalPositional(ev: Evaluator, call: A.Call, scope: Scope): ArgValue[] {
  const positional: ArgValue[] = [];
  let seenNamed = false;
  for (const a of call.args) {
    if (a.name) seenNamed = true;
    else {
      if (seenNamed) fail("SDC200", a.span, "positional arguments must come before named ones");
      positional.push({ value: ev.evalExpr(a.value, scope), arg: a });
    }
  }
  return positional;
}

/** A block called inside a forward: its tensor arguments, its name, then symbolic or concrete. */
function callBlockFromForward(ev: Evaluator, call: A.Call, block: A.BlockDecl, positional: ArgValue[], named: NamedArgs, scope: Scope): Value {
  const inputs = block.forward?.inputs ?? [];
  if (positional.length !== inputs.length) {
    fail("SDC400", positional[inputs.length]?.arg.span ?? call.span, `block ${block.name} takes ${inputs.length} tensor argument${inputs.length === 1 ? "" : "s"} (${inputs.map((i) => i.name).join(", ")}), got ${positional.length}`);
  }
  positional.forEach((p, i) => {
    if (p.value.t !== "tensor") fail("SDC401", p.arg.span, `argument '${inputs[i].name}' of ${block.name} must be a tensor, got ${typeName(p.value)}`);
  });
  const path = labelPath(ev, call, scope, ownsWeights(ev, block));
  if (scope.symbolic) return symbolicBlockCall(ev, call, block, positional, named, scope);
  const node: ModuleNode = { path: joinPath(scope.path, path), kind: block.name, params: 0, children: [] };
  // a weight-free helper called without a name is no module of the state dict
  if (call.label) scope.module?.children.push(node);
  return callBlock(ev, call, block, positional.map((p) => p.value), named, scope, joinPath(scope.path, path), node, positional.map((p) => p.arg));
}

/** Bind a block's parameters from named arguments (defaults, types, lets, requires). */
export function bindParams(ev: Evaluator, call: A.Call, block: A.BlockDecl, named: NamedArgs, symbolic: boolean): Map<string, Value> {
  const consts = new Map<string, Value>();
  const declared = new Set(block.params.map((p) => p.name));
  for (const [name, { arg }] of named) {
    if (!declared.has(name)) fail("SDC403", arg.nameSpan!, `block ${block.name} has no parameter '${name}'${suggest(name, [...declared])}`);
  }
  const inner = emptyScope(symbolic, consts);
  for (const p of block.params) consts.set(p.name, paramValue(ev, call, block, p, named.get(p.name), inner));
  for (const l of block.lets) consts.set(l.name, ev.evalExpr(l.value, inner));
  if (!symbolic) for (const r of block.requires) checkRequire(ev, call, block, r, inner);
  return consts;
}

/** One parameter's value: given or defaulted, of its declared (or default's) type. */
function paramValue(ev: Evaluator, call: A.Call, block: A.BlockDecl, p: A.ParamDecl, given: ArgValue | undefined, inner: Scope): Value {
  let v: Value;
  if (given) v = given.value;
  else if (p.default) v = ev.evalExpr(p.default, inner);
  else fail("SDC402", call.span, `missing argument '${p.name}' of block ${block.name} (declared at ${p.span.file}:${p.span.start.line})`);
  const want = p.type ?? (p.default ? ev.evalExpr(p.default, inner).t : "int");
  const span = given?.arg.value.span ?? p.span;
  if (want === "int[]" || want === "float[]") return listParam(want, v, `parameter '${p.name}' of ${block.name}`, span);
  if (want === "float" && v.t === "int") v = { t: "float", v: v.v };
  if (v.t !== want) fail("SDC401", span, `parameter '${p.name}' of ${block.name} is ${want}, got ${typeName(v)} ${valueToString(v)}`);
  if (want === "int" && v.t === "int" && typeof v.v === "number" && !Number.isInteger(v.v)) fail("SDC401", span, `parameter '${p.name}' must be an integer, got ${valueToString(v)}`);
  return v;
}

function checkRequire(ev: Evaluator, call: A.Call, block: A.BlockDecl, r: A.RequireDecl, inner: Scope) {
  const c = ev.evalExpr(r.cond, inner);
  if (c.t !== "bool") fail("SDC401", r.cond.span, "`require` needs a bool condition");
  if (c.v !== false) return;
  const consts = inner.consts;
  const vals = [...exprNames(r.cond)].filter((n) => consts.has(n)).map((n) => `${n} = ${valueToString(consts.get(n)!)}`);
  fail("SDC600", call.span, `constraint of block ${block.name} failed: ${r.message ?? exprText(r.cond)} (${exprText(r.cond)}${vals.length ? ` with ${vals.join(", ")}` : ""})`, `the constraint is declared at ${r.span.file}:${r.span.start.line}:${r.span.start.column}`);
}

/**
 * Instantiate a block call concretely at state-dict prefix `path`: bind its parameters and inputs,
 * run its forward, check what it returns. Returns the block's outputs (a tuple for several).
 */
export function callBlock(ev: Evaluator, call: A.Call, block: A.BlockDecl, inputs: Value[], named: NamedArgs, outer: Scope, path: string, node: ModuleNode, argNodes?: A.Arg[]): Value {
  if (outer.callStack.includes(block.name)) fail("SDC604", call.calleeSpan, `block ${block.name} calls itself (${[...outer.callStack, block.name].join(" -> ")})`);
  if (outer.callStack.length > MAX_CALL_DEPTH) fail("SDC602", call.span, `blocks nest more than ${MAX_CALL_DEPTH} deep`);
  const firstParam = ev.params.length;
  const consts = bindParams(ev, call, block, named, false);
  const fwd = block.forward;
  if (!fwd) fail("SDC701", call.calleeSpan, `block ${block.name} has no forward(...)`);
  const scope: Scope = { ...emptyScope(false, consts), block, path, module: node, callStack: [...outer.callStack, block.name] };
  fwd.inputs.forEach((inp, i) => {
    const actual = inputs[i] as Extract<Value, { t: "tensor" }>;
    const span = argNodes?.[i]?.span ?? call.span;
    bindShape(ev, `argument '${inp.name}' of ${block.name}`, inp.shape, actual, scope, span);
    scope.vars.set(inp.name, actual);
  });
  execStmts(ev, fwd.body, scope);
  const ret = checkReturned(ev, block, fwd, scope.returned, scope);
  // the parameters this call created (all under its path), summed once rather than by filtering all so far
  let own = 0;
  for (let k = firstParam; k < ev.params.length; k++) if (!ev.params[k].buffer) own += ev.params[k].count;
  node.params = own;
  return ret.length === 1 ? ret[0] : { t: "tuple", items: ret };
}

function symbolicBlockCall(ev: Evaluator, call: A.Call, block: A.BlockDecl, positional: ArgValue[], named: NamedArgs, scope: Scope): Value {
  // a block that calls itself can never be built (its constructor would not end), used or not
  if (scope.callStack.includes(block.name)) fail("SDC604", call.calleeSpan, `block ${block.name} calls itself (${[...scope.callStack, block.name].join(" -> ")})`);
  const consts = bindParams(ev, call, block, named, true);
  const fwd = block.forward;
  if (!fwd) fail("SDC701", call.calleeSpan, `block ${block.name} has no forward(...)`);
  const inner: Scope = { ...emptyScope(true, consts), block };
  bindSymbolicInputs(block, fwd, positional, consts, inner);
  // the block's parameters (its lets left out): a set, as a filter over the list was quadratic in their number
  const declared = new Set(block.params.map((p) => p.name));
  recordModule(call, scope, { block, args: Object.fromEntries([...consts].filter(([k]) => declared.has(k))) });
  const outs = symbolicOutputs(ev, fwd, inner);
  return outs.length === 1 ? outs[0] : { t: "tuple", items: outs };
}

/** A value for an `int[]` or `float[]` parameter: a list of numbers of that type (ints widen to floats). */
export function listParam(want: "int[]" | "float[]", v: Value, what: string, span: A.Node["span"]): Value {
  const got = listType(v);
  if (!got || (want === "int[]" && got !== "int[]")) fail("SDC401", span, `${what} is ${want}, got ${typeName(v)} ${valueToString(v)}`);
  if (want === "int[]" || v.t !== "list" || v.sym) return v;
  return { t: "list", items: v.items.map((x) => (x.t === "int" ? { t: "float", v: x.v } : x)) };
}
