/**
 * Modules: which calls own weights, their state-dict names (`as name`, `as blocks[i]`), and the
 * modules a block's constructor builds (recorded in symbolic mode for the code generator).
 */
import * as A from "../ast.ts";
import { DiagnosticError, diag, fail } from "../diagnostics.ts";
import { type Args, type Primitive, PRIMITIVES } from "../primitives.ts";
import { typeName } from "../values.ts";
import { exprText } from "./text.ts";
import type { BlockAnalysis, Evaluator, ModuleDecl, Scope } from "./types.ts";

/**
 * Does a call of this block create parameters (or buffers)? Statically: some call in its
 * forward is a named primitive (a primitive takes `as name` only when it has parameters) or
 * calls a block that does. A block without any needs no `as name` where it is called.
 */
export function ownsWeights(ev: Evaluator, block: A.BlockDecl): boolean {
  const known = ev.weighty.get(block.name);
  if (known !== undefined) return known;
  ev.weighty.set(block.name, false); // a cycle (SDC604 elsewhere) adds nothing
  let found = false;
  const visit = (root: A.Expr): void =>
    A.walkExpr(root, (e) => {
      if (found) return false;
      if (e.kind !== "call") return;
      const b = ev.blocks.get(e.callee);
      if (b ? ownsWeights(ev, b) : e.label !== undefined && PRIMITIVES[e.callee] !== undefined) found = true;
      // a label's index is a number known when the model is built: a call there is refused elsewhere
      for (const a of e.args) visit(a.value);
      return false;
    });
  // an `if`'s condition and a `for`'s bounds are numbers: a call there is refused elsewhere (SDC401)
  A.walkStmts(block.forward?.body ?? [], (e, owner) => owner.kind !== "if" && owner.kind !== "for" && visit(e));
  ev.weighty.set(block.name, found);
  return found;
}

/** The label's path; index segments evaluated in concrete mode. */
export function labelPath(ev: Evaluator, call: A.Call, scope: Scope, required: boolean): string {
  if (!call.label) {
    if (required) fail("SDC405", call.span, `'${call.callee}' has parameters: name it for the state dict, e.g. \`${call.callee}(...) as ${call.callee}\``);
    return "";
  }
  return call.label.segments
    .map((s) => {
      if (s.name !== undefined) return s.name;
      if (scope.symbolic) return `[${exprText(s.index!)}]`;
      const v = ev.evalExpr(s.index!, scope);
      if (v.t !== "int" || typeof v.v !== "number") fail("SDC406", s.span, `a name index must be an integer known when the model is built, got ${typeName(v)}`);
      return String(v.v);
    })
    .join(".");
}

type Built = { prim?: Primitive; block?: A.BlockDecl; args: Args };

/**
 * Record (symbolic mode) a module the block's constructor builds; nothing in concrete mode.
 * `sharedPath`: the layer is built on the parameters at that path (`share:`), relative to the block.
 */
export function recordModule(call: A.Call, scope: Scope, what: Built, sharedPath?: string) {
  const a = scope.analysis;
  if (!a) return;
  const decl = sharedPath !== undefined ? sharedDecl(call, scope, what, sharedPath) : !call.label ? anonymousDecl(call, scope, what, a) : labeledDecl(call, call.label, scope, what);
  a.modules.push(decl);
  a.moduleOf.set(call, decl);
}

/** Built (per loop iteration, under the same guards) on the parameters of another call. */
function sharedDecl(call: A.Call, scope: Scope, what: Built, path: string): ModuleDecl {
  const inner = scope.loops[scope.loops.length - 1];
  return { call, field: "", path, loops: inner ? [inner.stmt] : [], guards: [...scope.guards], shared: true, ...what };
}

/** A weight-free block called without `as`: a field of its own, no state-dict path. */
function anonymousDecl(call: A.Call, scope: Scope, what: Built, a: BlockAnalysis): ModuleDecl {
  const inner = scope.loops[scope.loops.length - 1];
  const base = `_${call.callee}`;
  let field = base;
  for (let k = 2; a.modules.some((m) => m.field === field); k++) field = `${base}_${k}`;
  return { call, field, path: "", loops: inner ? [inner.stmt] : [], guards: [...scope.guards], anonymous: true, ...what };
}

function labeledDecl(call: A.Call, label: A.Label, scope: Scope, what: Built): ModuleDecl {
  const loops = indexedLoops(label, scope);
  const staticPath = label.segments.filter((s) => !s.index).map((s) => s.name).join(".");
  const field = staticPath.replace(/[^A-Za-z0-9_]/g, "_").replace(/^(\d)/, "_$1");
  return { call, field, path: staticPath, loops, guards: [...scope.guards], ...what };
}

/**
 * The loops a label's trailing indices name, outermost first: `as blocks[i]` the innermost loop,
 * `as levels[l][i]` the innermost two (a module array per loop, nested). A call inside a loop
 * must be indexed by at least the innermost loop's variable.
 */
function indexedLoops(label: A.Label, scope: Scope): A.ForStmt[] {
  const first = label.segments.findIndex((s) => s.index);
  const innerName = scope.loops[scope.loops.length - 1]?.name;
  if (first < 0) {
    if (innerName !== undefined) fail("SDC406", label.span, `inside a \`for\`, name the call by the loop index, e.g. \`as ${label.segments[0].name ?? "blocks"}[${innerName}]\``);
    return [];
  }
  const idx = label.segments.slice(first);
  if (idx.some((s) => !s.index)) fail("SDC406", idx[0].span, "an indexed name must end in the innermost loop's variable, e.g. `as blocks[i]`");
  const loops = scope.loops.slice(Math.max(0, scope.loops.length - idx.length));
  for (let k = 1; k <= idx.length; k++) {
    const seg = idx[idx.length - k];
    const loop = scope.loops[scope.loops.length - k];
    if (seg.index!.kind === "ident" && loop && seg.index!.name === loop.name) continue;
    if (k === 1) fail("SDC406", seg.span, "an indexed name must end in the innermost loop's variable, e.g. `as blocks[i]`");
    if (!loop) fail("SDC406", seg.span, `${idx.length} indices name ${idx.length} nested loops, but this call is inside ${scope.loops.length}`);
    const inner = idx.slice(idx.length - k + 1).map((s) => `[${exprText(s.index!)}]`).join("");
    fail("SDC406", seg.span, `a nested module array's indices are the enclosing loops' variables, outermost first: here \`[${loop.name}]${inner}\``);
  }
  return loops.map((l) => l.stmt);
}

/** Labels must be unique unless they sit in different branches of one `if`. */
export function checkLabels(ev: Evaluator, a: BlockAnalysis) {
  const byPath = new Map<string, ModuleDecl[]>();
  for (const m of a.modules) {
    if (m.anonymous || m.shared) continue;
    const list = byPath.get(m.path) ?? [];
    for (const other of list) {
      const exclusive = m.guards.some((g) => other.guards.some((h) => h.cond === g.cond && h.negate !== g.negate));
      if (!exclusive) ev.collect(new DiagnosticError(diag("SDC301", m.call.label!.span, `duplicate name '${m.path}' in block ${a.block.name}: each call with parameters needs its own name`)));
    }
    list.push(m);
    byPath.set(m.path, list);
  }
  for (const [, list] of byPath) {
    if (list.length > 1) list.forEach((m, k) => (m.field = `${m.field}_${k + 1}`));
  }
}
