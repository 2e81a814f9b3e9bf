/**
 * Statements and control flow, one handler per statement kind. Concrete mode unrolls loops and
 * takes known branches; symbolic mode runs a loop body once with its variable as a symbol and
 * checks both branches of an `if`. A failing statement's error is collected and its targets bound
 * to UNKNOWN, so later lines do not cascade (concrete mode stops the block instead).
 */
import type * as A from "../ast.ts";
import { fail } from "../diagnostics.ts";
import { type Dim, dimEq, dimOp, substDim, symVar, typeName, type Value, valueToString } from "../values.ts";
import { evalMethod, symbolizeLists } from "./lists.ts";
import { freeDimNames } from "./text.ts";
import { intOf } from "./shapes.ts";
import { Abort, CARRIED, type Evaluator, MAX_UNROLL, type Scope, UNKNOWN } from "./types.ts";

type StmtCheck<K extends A.Stmt["kind"]> = (ev: Evaluator, s: Extract<A.Stmt, { kind: K }>, scope: Scope) => void;

const STMTS: { [K in A.Stmt["kind"]]: StmtCheck<K> } = {
  assign: execAssign,
  return: (ev, s, scope) => {
    scope.returned = s.values.map((e) => ev.evalExpr(e, scope));
  },
  if: execIf,
  method: (ev, s, scope) => {
    evalMethod(ev, s.call, scope, true);
  },
  for: (ev, s, scope) => (scope.symbolic ? symbolicFor(ev, s, scope) : unrollFor(ev, s, scope)),
};

export function execStmts(ev: Evaluator, stmts: A.Stmt[], scope: Scope): void {
  for (const s of stmts) {
    try {
      (STMTS[s.kind] as StmtCheck<A.Stmt["kind"]>)(ev, s, scope);
    } catch (e) {
      ev.collect(e);
      // keep going: bind the targets to an unknown so later lines don't cascade
      if (s.kind === "assign") for (const t of s.targets) scope.vars.set(t.name, UNKNOWN);
      if (!scope.symbolic) throw new Abort();
    }
  }
}

function execAssign(ev: Evaluator, s: A.Assign, scope: Scope) {
  const v = ev.evalExpr(s.value, scope);
  let values: Value[];
  if (s.targets.length === 1) values = [v.t === "tuple" && v.items.length === 1 ? v.items[0] : v];
  else {
    if (v.t !== "tuple") fail("SDC404", s.value.span, `${s.targets.length} names on the left but the right side is one ${typeName(v)}`);
    if (v.items.length !== s.targets.length) fail("SDC404", s.value.span, `${s.targets.length} names on the left but the right side gives ${v.items.length} results`);
    values = v.items;
  }
  // a list is built in place: a second name for it would see the generated array change under it
  if (values.some((x) => x.t === "list") && s.value.kind !== "list") fail("SDC401", s.value.span, `a list is only made by a list literal (\`${s.targets[0].name} = []\`) and changed by append and pop; this would give it a second name`);
  const bad = values.find((x) => x.t === "list" && !x.sym && x.items.some((y) => y.t !== "tensor"));
  if (bad) fail("SDC401", s.value.span, `a list in a forward holds tensors, got ${valueToString(bad)}`);
  s.targets.forEach((t, i) => {
    if (scope.consts.has(t.name)) fail("SDC301", t.span, `'${t.name}' is a parameter of the block and cannot be reassigned`);
    if (values[i].t === "tuple") fail("SDC404", s.value.span, `'${t.name}' would be bound to ${typeName(values[i])}; unpack it: \`a, b = ...\``);
    scope.vars.set(t.name, values[i]);
  });
  scope.analysis?.assigns.set(s, values);
}

function execIf(ev: Evaluator, s: A.IfStmt, scope: Scope) {
  const c = ev.evalExpr(s.cond, scope);
  if (c.t !== "bool") fail("SDC401", s.cond.span, `an \`if\` condition must be a bool, got ${typeName(c)}`);
  // both modes: a known condition takes one branch (symbolic mode still checks the other)
  if (typeof c.v === "boolean" && !scope.symbolic) return execStmts(ev, c.v ? s.then : (s.else ?? []), scope);
  if (!scope.symbolic) fail("SDC401", s.cond.span, "an `if` condition must be known when the model is built (a bool parameter or constant)");
  symbolicBranches(ev, s, scope);
}

function symbolicBranches(ev: Evaluator, s: A.IfStmt, scope: Scope) {
  const before = new Map(scope.vars);
  const thenScope: Scope = { ...scope, vars: new Map(scope.vars), guards: [...scope.guards, { cond: s.cond, negate: false }] };
  execStmts(ev, s.then, thenScope);
  const elseScope: Scope = { ...scope, vars: new Map(scope.vars), guards: [...scope.guards, { cond: s.cond, negate: true }] };
  if (s.else) execStmts(ev, s.else, elseScope);
  for (const [k, v] of elseScope.vars) scope.vars.set(k, v);
  for (const [k, v] of thenScope.vars) scope.vars.set(k, v);
  symbolizeLists(before, scope);
}

/** The loop's bounds (integers, possibly symbolic) and its variable checked against the names in scope. */
function loopBounds(ev: Evaluator, s: A.ForStmt, scope: Scope) {
  const from = intOf(ev.evalExpr(s.from, scope), s.from.span, "a loop bound");
  const to = intOf(ev.evalExpr(s.to, scope), s.to.span, "a loop bound");
  if (scope.consts.has(s.variable.name) || scope.vars.has(s.variable.name)) fail("SDC301", s.variable.span, `loop variable '${s.variable.name}' shadows an existing name`);
  return { from, to };
}

/** One pass of the body with the loop variable bound to `value`; its assignments flow out. */
function loopBody(ev: Evaluator, s: A.ForStmt, scope: Scope, value: Value) {
  const inner: Scope = { ...scope, consts: new Map(scope.consts), loops: [...scope.loops, { stmt: s, name: s.variable.name }] };
  inner.consts.set(s.variable.name, value);
  execStmts(ev, s.body, inner);
  for (const [k, v] of inner.vars) scope.vars.set(k, v);
}

/**
 * Symbolic: the body once, its variable a symbol. A tensor the body gives another shape
 * (`x = linear(x, widths[i])`) enters pass i with the shape pass i - 1 left: found by running
 * the body dry first, then bound to that (CARRIED where it depends on the pass before).
 */
function symbolicFor(ev: Evaluator, s: A.ForStmt, scope: Scope) {
  const { from } = loopBounds(ev, s, scope);
  const i: Value = { t: "int", v: symVar(s.variable.name) };
  for (const [name, v] of carriedEntries(ev, s, scope, i, from)) scope.vars.set(name, v);
  const before = new Map(scope.vars);
  loopBody(ev, s, scope, i);
  symbolizeLists(before, scope, s.variable.name);
  forgetLoopVariable(scope, s.variable.name);
}

/**
 * After a symbolic loop, a tensor's size that names the loop's variable (the width the last pass
 * left, `widths[level]`) is no size outside it: marked CARRIED, so a layer sized by it is SDC504.
 */
function forgetLoopVariable(scope: Scope, loop: string) {
  for (const [name, v] of scope.vars) {
    if (v.t !== "tensor" || !v.shape.some((d) => freeDimNames(d).includes(loop))) continue;
    scope.vars.set(name, { ...v, shape: v.shape.map((d, k) => (freeDimNames(d).includes(loop) ? symVar(`${CARRIED}${name}.${k}`) : d)) });
  }
}

type Tensor = Extract<Value, { t: "tensor" }>;

/** Tensors whose shape a pass of the loop changes, with the shape each pass starts from. */
function carriedEntries(ev: Evaluator, s: A.ForStmt, scope: Scope, i: Value, from: Dim): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  const changed = changedAxes(scope.vars, dryPass(ev, s, scope, i, scope.vars));
  if (!changed.size) return out;
  // again with each changed axis a marker: what comes out without the marker depends on i alone
  const mark = (name: string, k: number) => symVar(`${CARRIED}${name}.${k}`);
  const marked = new Map(scope.vars);
  for (const [name, axes] of changed) {
    const v = scope.vars.get(name) as Tensor;
    marked.set(name, { ...v, shape: v.shape.map((d, k) => (axes.includes(k) ? mark(name, k) : d)) });
  }
  const again = dryPass(ev, s, scope, i, marked);
  const loop = s.variable.name;
  for (const [name, axes] of changed) {
    const v = scope.vars.get(name) as Tensor;
    const after = again.get(name);
    const shape = v.shape.map((d, k) => {
      const g = after?.t === "tensor" ? after.shape[k] : undefined;
      if (!axes.includes(k)) return d;
      if (g === undefined || freeDimNames(g).some((n) => n.startsWith(CARRIED))) return mark(name, k);
      // the size pass i - 1 left; the first pass starts from the size before the loop
      const prev = substDim(g, loop, dimOp("-", symVar(loop), 1));
      return dimEq(substDim(prev, loop, from), d) ? prev : ({ op: "first", loop, from, a: d, b: prev } as Dim);
    });
    out.set(name, { ...v, shape });
  }
  return out;
}

/** The axes of each tensor whose size differs between `before` and `after` (same rank). */
function changedAxes(before: Map<string, Value>, after: Map<string, Value>): Map<string, number[]> {
  const changed = new Map<string, number[]>();
  for (const [name, b] of before) {
    const a = after.get(name);
    if (b.t !== "tensor" || a?.t !== "tensor" || a.shape.length !== b.shape.length) continue;
    const axes = b.shape.flatMap((d, k) => (dimEq(d, a.shape[k]) ? [] : [k]));
    if (axes.length) changed.set(name, axes);
  }
  return changed;
}

/** One pass of the body that records nothing (no analysis, no observer, its diagnostics dropped). */
function dryPass(ev: Evaluator, s: A.ForStmt, scope: Scope, i: Value, vars: Map<string, Value>): Map<string, Value> {
  const n = ev.diagnostics.length;
  const observe = ev.observe;
  ev.observe = undefined;
  const inner: Scope = { ...scope, analysis: undefined, vars: new Map(vars), consts: new Map(scope.consts), loops: [...scope.loops, { stmt: s, name: s.variable.name }] };
  inner.consts.set(s.variable.name, i);
  try {
    execStmts(ev, s.body, inner);
  } finally {
    ev.diagnostics.length = n;
    ev.observe = observe;
  }
  return inner.vars;
}

function unrollFor(ev: Evaluator, s: A.ForStmt, scope: Scope) {
  const { from, to } = loopBounds(ev, s, scope);
  if (typeof from !== "number" || typeof to !== "number") fail("SDC401", s.span, "loop bounds must be known when the model is built");
  const n = to - from;
  ev.unrolled += Math.max(0, n);
  if (n > MAX_UNROLL || ev.unrolled > MAX_UNROLL * 4) fail("SDC602", s.span, `this loop would unroll ${n} times (limit ${MAX_UNROLL}): the model is absurdly deep`);
  for (let i = from; i < to; i++) loopBody(ev, s, scope, { t: "int", v: i });
}
