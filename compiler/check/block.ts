/**
 * The symbolic analysis of one block on its own: its parameters as symbols, its lets and
 * requires, its forward's inputs and outputs, the forward body (both branches, loops once), and
 * the typed view the code generator needs.
 */
import type * as A from "../ast.ts";
import { type DiagnosticCode, DiagnosticError, diag } from "../diagnostics.ts";
import { symVar, type Value } from "../values.ts";
import { checkLabels } from "./modules.ts";
import { intOf, shapeValue } from "./shapes.ts";
import { execStmts } from "./stmts.ts";
import type { BlockAnalysis, Evaluator, Scope } from "./types.ts";

export function analyzeBlock(ev: Evaluator, block: A.BlockDecl): BlockAnalysis {
  const analysis: BlockAnalysis = { block, types: new Map(), assigns: new Map(), modules: [], moduleOf: new Map(), dimVars: new Map(), outputs: [], inputs: [] };
  const scope: Scope = { symbolic: true, block, consts: new Map(), vars: new Map(), dims: new Map(), path: "", analysis, loops: [], guards: [], callStack: [block.name] };
  symbolicParams(ev, block, scope);
  symbolicLets(ev, block, scope);
  for (const r of block.requires) attempt(ev, () => ev.evalExpr(r.cond, scope));
  const fwd = block.forward;
  if (!fwd) {
    ev.collect(new DiagnosticError(diag("SDC701", block.nameSpan, `block ${block.name} has no forward(...)`)));
    return analysis;
  }
  fwd.inputs.forEach((inp, i) => attempt(ev, () => symbolicInput(ev, inp, i, scope, analysis)));
  for (const o of fwd.outputs) attempt(ev, () => analysis.outputs.push(shapeValue(ev, o, scope)));
  checkReturnPlacement(ev, fwd);
  execStmts(ev, fwd.body, scope);
  checkLabels(ev, analysis);
  return analysis;
}

/** Run `f`, collecting its diagnostic: the analysis goes on. */
function attempt(ev: Evaluator, f: () => unknown) {
  try {
    f();
  } catch (e) {
    ev.collect(e);
  }
}

const report = (ev: Evaluator, code: DiagnosticCode, span: A.Node["span"], message: string) => ev.collect(new DiagnosticError(diag(code, span, message)));

/** Each parameter a symbol of its type; its default checked on its own. */
function symbolicParams(ev: Evaluator, block: A.BlockDecl, scope: Scope) {
  const seen = new Set<string>();
  for (const p of block.params) {
    if (seen.has(p.name)) report(ev, "SDC301", p.nameSpan, `duplicate parameter '${p.name}' in block ${block.name}`);
    seen.add(p.name);
    const ty = p.type ?? "int";
    scope.consts.set(p.name, symbolicParam(p.name, ty));
    if (p.type && !["int", "float", "bool", "int[]", "float[]"].includes(p.type)) report(ev, "SDC401", p.span, `unknown parameter type '${p.type}': use int, float, bool, int[] or float[]`);
    const dflt = p.default;
    if (dflt) attempt(ev, () => ev.evalExpr(dflt, { ...scope, consts: new Map() }));
  }
}

/** A parameter of type `ty` as a symbol; a list's items unknown (its elements and length are symbols too). */
function symbolicParam(name: string, ty: A.ParamType): Value {
  if (ty === "int[]" || ty === "float[]") return { t: "list", items: [], sym: { name, elem: ty === "int[]" ? "int" : "float" } };
  return ty === "bool" ? { t: "bool", v: symVar(name) } : ty === "float" ? { t: "float", v: symVar(name) } : { t: "int", v: symVar(name) };
}

/** Each let a symbol of its value's type (a non-scalar value kept as it is). */
function symbolicLets(ev: Evaluator, block: A.BlockDecl, scope: Scope) {
  for (const l of block.lets) {
    if (scope.consts.has(l.name)) report(ev, "SDC301", l.nameSpan, `'${l.name}' is already defined in block ${block.name}`);
    try {
      const v = ev.evalExpr(l.value, scope);
      scope.consts.set(l.name, v.t === "int" ? { t: "int", v: symVar(l.name) } : v.t === "float" ? { t: "float", v: symVar(l.name) } : v.t === "bool" ? { t: "bool", v: symVar(l.name) } : v);
    } catch (e) {
      ev.collect(e);
      scope.consts.set(l.name, { t: "int", v: symVar(l.name) });
    }
  }
}

/** A forward input: unbound dimension names become the block's dimension variables. */
function symbolicInput(ev: Evaluator, inp: A.TensorParam, i: number, scope: Scope, analysis: BlockAnalysis) {
  const shape = inp.shape.dims.map((d, axis) => {
    if (d.kind === "ident" && !scope.consts.has(d.name)) {
      if (!scope.dims.has(d.name)) {
        scope.dims.set(d.name, symVar(d.name));
        analysis.dimVars.set(d.name, { input: i, axis });
      }
      return scope.dims.get(d.name)!;
    }
    return intOf(ev.evalExpr(d, scope), d.span, "a dimension");
  });
  const v: Value = { t: "tensor", dtype: inp.shape.dtype, shape };
  if (scope.vars.has(inp.name)) report(ev, "SDC301", inp.nameSpan, `duplicate input '${inp.name}'`);
  scope.vars.set(inp.name, v);
  analysis.inputs.push(v);
}

function checkReturnPlacement(ev: Evaluator, fwd: A.Forward) {
  const walk = (stmts: A.Stmt[], top: boolean) => {
    stmts.forEach((s, i) => {
      if (s.kind === "return" && (!top || i !== stmts.length - 1)) report(ev, "SDC200", s.span, "`return` must be the last statement of forward, outside `if` and `for`");
      if (s.kind === "for") walk(s.body, false);
      if (s.kind === "if") {
        walk(s.then, false);
        if (s.else) walk(s.else, false);
      }
    });
  };
  walk(fwd.body, true);
  const lastStmt = fwd.body[fwd.body.length - 1];
  if (!lastStmt || lastStmt.kind !== "return") report(ev, "SDC404", fwd.span, "forward must end with `return`");
}
