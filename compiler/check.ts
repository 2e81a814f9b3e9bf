/**
 * Phase 4: static checking. One evaluator runs a block's forward in two modes:
 *  - concrete: from the spec, with every parameter known, unrolling loops and taking branches,
 *    producing exact shapes, the full parameter list (state-dict names) and size checks;
 *  - symbolic: each block on its own, with its parameters as symbols, producing the typed view
 *    the code generator needs (shapes per statement, sub-modules with constructor arguments).
 * Diagnostics are thrown as DiagnosticError at the failing node and collected per statement,
 * so several independent errors are reported in one run.
 */
import type * as A from "./ast.ts";
import { CODES, type Diagnostic, DiagnosticError, diag, fail, type Span } from "./diagnostics.ts";
import { type Args, broadcastShapes, isStateDictName, type PrimArg, type PrimContext, type Primitive, primitive, PRIMITIVES, SHARE_ARG, SUFFIX_ARGS, type WeightSpec } from "./primitives.ts";
import type { ModuleNode, ParamRecord } from "../ir/ir.ts";
import { type Dim, dimEq, dimOp, dimToString, isSym, shapeToString, type Sym, symVar, typeName, type Value, valueToString } from "./values.ts";

/** Refuse models whose parameter count exceeds this before anything is allocated. */
export const MAX_PARAMS = 2_000_000_000;
/** Refuse a single activation larger than this many elements per sample. */
export const MAX_ACTIVATION = 1 << 28;
/** Refuse loops that would unroll beyond this. */
export const MAX_UNROLL = 10_000;
const MAX_CALL_DEPTH = 64;

/** A labeled call inside a block, seen symbolically: what the constructor must build. */
export interface ModuleDecl {
  call: A.Call;
  /** TS field name (unique within the block) */
  field: string;
  /** state-dict path relative to the block, without the loop index (e.g. "transformer_blocks") */
  path: string;
  /** the loop whose index names this module (`as blocks[i]`) */
  loop?: A.ForStmt;
  /** enclosing `if` conditions, with whether the module sits in the else branch */
  guards: { cond: A.Expr; negate: boolean }[];
  prim?: Primitive;
  block?: A.BlockDecl;
  /** argument values by name (symbolic), for constructor arguments */
  args: Args;
  /** a weight-free block called without `as name`: no state-dict path (`path` is "") */
  anonymous?: boolean;
  /** `share: "path"`: the layer is built on the parameters already at `path` (weight tying) */
  shared?: boolean;
}

export interface BlockAnalysis {
  block: A.BlockDecl;
  /** type of every evaluated expression node */
  types: Map<A.Expr, Value>;
  /** values bound by each assignment (one per target) */
  assigns: Map<A.Assign, Value[]>;
  modules: ModuleDecl[];
  /** modules by call node */
  moduleOf: Map<A.Call, ModuleDecl>;
  /** dim variables the forward uses in expressions (need `x.shape[i]` at run time) */
  dimVars: Map<string, { input: number; axis: number }>;
  /** declared output shapes, symbolic */
  outputs: Value[];
  inputs: Value[];
}

/**
 * What a tool (the language server) sees of evaluation: every expression's value as it is
 * computed, symbolic (each block on its own) or concrete (elaborated from the spec); for a named
 * call in concrete mode, the module it built (state-dict path and parameter count).
 */
export type ValueObserver = (e: A.Expr, v: Value, at: { symbolic: boolean; module?: ModuleNode }) => void;

interface Scope {
  symbolic: boolean;
  block?: A.BlockDecl;
  consts: Map<string, Value>;
  vars: Map<string, Value>;
  dims: Map<string, Dim>;
  /** state-dict prefix (concrete) */
  path: string;
  module?: ModuleNode;
  analysis?: BlockAnalysis;
  loops: { stmt: A.ForStmt; name: string }[];
  guards: { cond: A.Expr; negate: boolean }[];
  callStack: string[];
  /** in settings: bare unknown names are symbols instead of errors */
  symbolsOk?: boolean;
  /** names a `return` may produce (collected) */
  returned?: Value[];
}

export class Checker {
  readonly diagnostics: Diagnostic[] = [];
  readonly params: ParamRecord[] = [];
  private paramNames = new Map<string, Span>();
  private paramByName = new Map<string, ParamRecord>();
  maxActivation = 0;
  maxActivationAt?: Span;
  private unrolled = 0;
  /** trainable parameters recorded so far (totalParams, kept as it grows) */
  private trainable = 0;
  /** called with every evaluated expression (see ValueObserver); compilation ignores it */
  observe?: ValueObserver;

  constructor(readonly blocks: ReadonlyMap<string, A.BlockDecl>) {}

  /** Record a diagnostic from a thrown DiagnosticError; rethrow anything else. */
  collect(e: unknown): void {
    if (e instanceof Cascade) return;
    if (e instanceof DiagnosticError) {
      const d = e.diagnostic;
      if (!this.diagnostics.some((x) => x.code === d.code && x.span.start.offset === d.span.start.offset && x.span.file === d.span.file && x.message === d.message)) this.diagnostics.push(d);
      return;
    }
    throw e;
  }

  private weighty = new Map<string, boolean>();

  /**
   * Does a call of this block create parameters (or buffers)? Statically: some call in its
   * forward is a named primitive (a primitive takes `as name` only when it has parameters) or
   * calls a block that does. A block without any needs no `as name` where it is called.
   */
  ownsWeights(block: A.BlockDecl): boolean {
    const known = this.weighty.get(block.name);
    if (known !== undefined) return known;
    this.weighty.set(block.name, false); // a cycle (SDC604 elsewhere) adds nothing
    let found = false;
    const visit = (e: A.Expr): void => {
      if (found) return;
      switch (e.kind) {
        case "call": {
          const b = this.blocks.get(e.callee);
          if (b ? this.ownsWeights(b) : e.label !== undefined && PRIMITIVES[e.callee] !== undefined) found = true;
          e.args.forEach((x) => visit(x.value));
          return;
        }
        case "binary":
          visit(e.left);
          visit(e.right);
          return;
        case "unary":
          visit(e.operand);
          return;
        case "ternary":
          [e.cond, e.then, e.else].forEach(visit);
          return;
        case "list":
          e.items.forEach(visit);
          return;
        default:
          return;
      }
    };
    const walk = (stmts: A.Stmt[]): void => {
      for (const st of stmts) {
        if (st.kind === "assign") visit(st.value);
        else if (st.kind === "return") st.values.forEach(visit);
        else if (st.kind === "for") walk(st.body);
        else if (st.kind === "if") {
          walk(st.then);
          if (st.else) walk(st.else);
        }
      }
    };
    walk(block.forward?.body ?? []);
    this.weighty.set(block.name, found);
    return found;
  }

  get totalParams(): number {
    return this.trainable;
  }

  // ------------------------------------------------------------ symbolic analysis of a block

  analyzeBlock(block: A.BlockDecl): BlockAnalysis {
    const analysis: BlockAnalysis = { block, types: new Map(), assigns: new Map(), modules: [], moduleOf: new Map(), dimVars: new Map(), outputs: [], inputs: [] };
    const scope: Scope = { symbolic: true, block, consts: new Map(), vars: new Map(), dims: new Map(), path: "", analysis, loops: [], guards: [], callStack: [block.name] };
    const seen = new Set<string>();
    for (const p of block.params) {
      if (seen.has(p.name)) this.collect(new DiagnosticError(diag("SDC301", p.nameSpan, `duplicate parameter '${p.name}' in block ${block.name}`)));
      seen.add(p.name);
      const ty = p.type ?? "int";
      scope.consts.set(p.name, ty === "bool" ? { t: "bool", v: symVar(p.name) } : ty === "float" ? { t: "float", v: symVar(p.name) } : { t: "int", v: symVar(p.name) });
      if (p.type && !["int", "float", "bool"].includes(p.type)) this.collect(new DiagnosticError(diag("SDC401", p.span, `unknown parameter type '${p.type}': use int, float or bool`)));
      if (p.default) {
        try {
          this.evalExpr(p.default, { ...scope, consts: new Map() });
        } catch (e) {
          this.collect(e);
        }
      }
    }
    for (const l of block.lets) {
      if (scope.consts.has(l.name)) this.collect(new DiagnosticError(diag("SDC301", l.nameSpan, `'${l.name}' is already defined in block ${block.name}`)));
      try {
        const v = this.evalExpr(l.value, scope);
        scope.consts.set(l.name, v.t === "int" ? { t: "int", v: symVar(l.name) } : v.t === "float" ? { t: "float", v: symVar(l.name) } : v.t === "bool" ? { t: "bool", v: symVar(l.name) } : v);
      } catch (e) {
        this.collect(e);
        scope.consts.set(l.name, { t: "int", v: symVar(l.name) });
      }
    }
    for (const r of block.requires) {
      try {
        this.evalExpr(r.cond, scope);
      } catch (e) {
        this.collect(e);
      }
    }
    const fwd = block.forward;
    if (!fwd) {
      this.collect(new DiagnosticError(diag("SDC701", block.nameSpan, `block ${block.name} has no forward(...)`)));
      return analysis;
    }
    fwd.inputs.forEach((inp, i) => {
      try {
        const shape = inp.shape.dims.map((d, axis) => {
          if (d.kind === "ident" && !scope.consts.has(d.name)) {
            if (!scope.dims.has(d.name)) {
              scope.dims.set(d.name, symVar(d.name));
              analysis.dimVars.set(d.name, { input: i, axis });
            }
            return scope.dims.get(d.name)!;
          }
          return this.intOf(this.evalExpr(d, scope), d.span, "a dimension");
        });
        const v: Value = { t: "tensor", dtype: inp.shape.dtype, shape };
        if (scope.vars.has(inp.name)) this.collect(new DiagnosticError(diag("SDC301", inp.nameSpan, `duplicate input '${inp.name}'`)));
        scope.vars.set(inp.name, v);
        analysis.inputs.push(v);
      } catch (e) {
        this.collect(e);
      }
    });
    for (const o of fwd.outputs) {
      try {
        analysis.outputs.push(this.shapeValue(o, scope));
      } catch (e) {
        this.collect(e);
      }
    }
    this.checkReturnPlacement(fwd);
    this.execStmts(fwd.body, scope);
    this.checkLabels(analysis);
    return analysis;
  }

  private checkReturnPlacement(fwd: A.Forward) {
    const walk = (stmts: A.Stmt[], top: boolean) => {
      stmts.forEach((s, i) => {
        if (s.kind === "return" && (!top || i !== stmts.length - 1)) this.collect(new DiagnosticError(diag("SDC200", s.span, "`return` must be the last statement of forward, outside `if` and `for`")));
        if (s.kind === "for") walk(s.body, false);
        if (s.kind === "if") {
          walk(s.then, false);
          if (s.else) walk(s.else, false);
        }
      });
    };
    walk(fwd.body, true);
    const lastStmt = fwd.body[fwd.body.length - 1];
    if (!lastStmt || lastStmt.kind !== "return") this.collect(new DiagnosticError(diag("SDC404", fwd.span, "forward must end with `return`")));
  }

  /** Labels must be unique unless they sit in different branches of one `if`. */
  private checkLabels(a: BlockAnalysis) {
    const byPath = new Map<string, ModuleDecl[]>();
    for (const m of a.modules) {
      if (m.anonymous || m.shared) continue;
      const list = byPath.get(m.path) ?? [];
      for (const other of list) {
        const exclusive = m.guards.some((g) => other.guards.some((h) => h.cond === g.cond && h.negate !== g.negate));
        if (!exclusive) this.collect(new DiagnosticError(diag("SDC301", m.call.label!.span, `duplicate name '${m.path}' in block ${a.block.name}: each call with parameters needs its own name`)));
      }
      list.push(m);
      byPath.set(m.path, list);
    }
    for (const [, list] of byPath) {
      if (list.length > 1) list.forEach((m, k) => (m.field = `${m.field}_${k + 1}`));
    }
  }

  // ------------------------------------------------------------ concrete elaboration

  /**
   * Instantiate `call` (a block call) with concrete tensor inputs at state-dict prefix `path`.
   * Returns the block's outputs.
   */
  elaborate(call: A.Call, inputs: Value[], consts: Map<string, Value>, path: string, root: ModuleNode): Value {
    const scope: Scope = { symbolic: false, consts, vars: new Map(), dims: new Map(), path, module: root, loops: [], guards: [], callStack: [] };
    const block = this.blocks.get(call.callee);
    if (!block) fail("SDC304", call.calleeSpan, `unknown block '${call.callee}'${suggest(call.callee, [...this.blocks.keys()])}`);
    return this.callBlock(call, block, inputs, this.evalNamedArgs(call, scope), scope, path, root);
  }

  /** Evaluate a constant expression (spec parameters, settings) against known values. */
  evalConst(e: A.Expr, consts: Map<string, Value>, symbolsOk = false): Value {
    return this.evalExpr(e, { symbolic: false, consts, vars: new Map(), dims: new Map(), path: "", loops: [], guards: [], callStack: [], symbolsOk });
  }

  // ------------------------------------------------------------ statements

  private execStmts(stmts: A.Stmt[], scope: Scope): void {
    for (const s of stmts) {
      try {
        this.execStmt(s, scope);
      } catch (e) {
        this.collect(e);
        // keep going: bind the targets to an unknown so later lines don't cascade
        if (s.kind === "assign") for (const t of s.targets) scope.vars.set(t.name, UNKNOWN);
        if (!scope.symbolic) throw new Abort();
      }
    }
  }

  private execStmt(s: A.Stmt, scope: Scope): void {
    switch (s.kind) {
      case "assign": {
        const v = this.evalExpr(s.value, scope);
        let values: Value[];
        if (s.targets.length === 1) values = [v.t === "tuple" && v.items.length === 1 ? v.items[0] : v];
        else {
          if (v.t !== "tuple") fail("SDC404", s.value.span, `${s.targets.length} names on the left but the right side is one ${typeName(v)}`);
          if (v.items.length !== s.targets.length) fail("SDC404", s.value.span, `${s.targets.length} names on the left but the right side gives ${v.items.length} results`);
          values = v.items;
        }
        s.targets.forEach((t, i) => {
          if (scope.consts.has(t.name)) fail("SDC301", t.span, `'${t.name}' is a parameter of the block and cannot be reassigned`);
          if (values[i].t === "tuple") fail("SDC404", s.value.span, `'${t.name}' would be bound to ${typeName(values[i])}; unpack it: \`a, b = ...\``);
          scope.vars.set(t.name, values[i]);
        });
        scope.analysis?.assigns.set(s, values);
        return;
      }
      case "return": {
        scope.returned = s.values.map((e) => this.evalExpr(e, scope));
        return;
      }
      case "if": {
        const c = this.evalExpr(s.cond, scope);
        if (c.t !== "bool") fail("SDC401", s.cond.span, `an \`if\` condition must be a bool, got ${typeName(c)}`);
        if (typeof c.v === "boolean") {
          // both modes: a known condition takes one branch (symbolic mode still checks the other)
          if (scope.symbolic) {
            this.symbolicBranches(s, scope);
            return;
          }
          this.execStmts(c.v ? s.then : (s.else ?? []), scope);
          return;
        }
        if (!scope.symbolic) fail("SDC401", s.cond.span, "an `if` condition must be known when the model is built (a bool parameter or constant)");
        this.symbolicBranches(s, scope);
        return;
      }
      case "for": {
        const from = this.intOf(this.evalExpr(s.from, scope), s.from.span, "a loop bound");
        const to = this.intOf(this.evalExpr(s.to, scope), s.to.span, "a loop bound");
        if (scope.consts.has(s.variable.name) || scope.vars.has(s.variable.name)) fail("SDC301", s.variable.span, `loop variable '${s.variable.name}' shadows an existing name`);
        if (scope.symbolic) {
          const inner: Scope = { ...scope, consts: new Map(scope.consts), loops: [...scope.loops, { stmt: s, name: s.variable.name }] };
          inner.consts.set(s.variable.name, { t: "int", v: symVar(s.variable.name) });
          this.execStmts(s.body, inner);
          for (const [k, v] of inner.vars) scope.vars.set(k, v);
          return;
        }
        if (typeof from !== "number" || typeof to !== "number") fail("SDC401", s.span, "loop bounds must be known when the model is built");
        const n = to - from;
        this.unrolled += Math.max(0, n);
        if (n > MAX_UNROLL || this.unrolled > MAX_UNROLL * 4) fail("SDC602", s.span, `this loop would unroll ${n} times (limit ${MAX_UNROLL}): the model is absurdly deep`);
        for (let i = from; i < to; i++) {
          const inner: Scope = { ...scope, consts: new Map(scope.consts), loops: [...scope.loops, { stmt: s, name: s.variable.name }] };
          inner.consts.set(s.variable.name, { t: "int", v: i });
          this.execStmts(s.body, inner);
          for (const [k, v] of inner.vars) scope.vars.set(k, v);
        }
        return;
      }
    }
  }

  private symbolicBranches(s: A.IfStmt, scope: Scope) {
    const thenScope: Scope = { ...scope, vars: new Map(scope.vars), guards: [...scope.guards, { cond: s.cond, negate: false }] };
    this.execStmts(s.then, thenScope);
    const elseScope: Scope = { ...scope, vars: new Map(scope.vars), guards: [...scope.guards, { cond: s.cond, negate: true }] };
    if (s.else) this.execStmts(s.else, elseScope);
    for (const [k, v] of elseScope.vars) scope.vars.set(k, v);
    for (const [k, v] of thenScope.vars) scope.vars.set(k, v);
  }

  // ------------------------------------------------------------ expressions

  evalExpr(e: A.Expr, scope: Scope): Value {
    const v = this.evalExprInner(e, scope);
    scope.analysis?.types.set(e, v);
    if (this.observe) this.observe(e, v, { symbolic: scope.symbolic, module: !scope.symbolic && e.kind === "call" && e.label ? scope.module?.children[scope.module.children.length - 1] : undefined });
    if (!scope.symbolic && v.t === "tensor") {
      let n = 1;
      for (const d of v.shape) if (typeof d === "number") n *= d;
      if (n > this.maxActivation) {
        this.maxActivation = n;
        this.maxActivationAt = e.span;
      }
      if (n > MAX_ACTIVATION) fail("SDC602", e.span, `this tensor would hold ${fmtCount(n)} elements per sample (${shapeToString(v.shape)}); the limit is ${fmtCount(MAX_ACTIVATION)}`);
    }
    return v;
  }

  private evalExprInner(e: A.Expr, scope: Scope): Value {
    switch (e.kind) {
      case "number":
        if (e.isInt) {
          if (!Number.isSafeInteger(e.value)) fail("SDC106", e.span, `integer ${e.text} is too large (more than 2^53)`);
          return { t: "int", v: e.value };
        }
        if (!Number.isFinite(e.value)) fail("SDC106", e.span, `number ${e.text} is out of range`);
        return { t: "float", v: e.value };
      case "string":
        return { t: "string", v: e.value };
      case "bool":
        return { t: "bool", v: e.value };
      case "ident": {
        const v = scope.vars.get(e.name) ?? scope.consts.get(e.name);
        // a name whose statement already failed: skip this statement quietly instead of a second, bogus error
        if (v === UNKNOWN) throw new Cascade();
        if (v) return v;
        const d = scope.dims.get(e.name);
        if (d !== undefined) {
          return { t: "int", v: d };
        }
        if (scope.symbolsOk) return { t: "symbol", v: e.name };
        const known = [...scope.vars.keys(), ...scope.consts.keys(), ...scope.dims.keys()];
        fail("SDC300", e.span, `unknown identifier '${e.name}'${suggest(e.name, known)}`);
      }
      // falls through (fail never returns)
      case "unary": {
        const v = this.evalExpr(e.operand, scope);
        if (e.op === "!") {
          if (v.t !== "bool") fail("SDC401", e.operand.span, `'!' needs a bool, got ${typeName(v)}`);
          return { t: "bool", v: typeof v.v === "boolean" ? !v.v : symVar(`!${dimToString(v.v as Sym, 3)}`) };
        }
        if (v.t === "int" || v.t === "float") return { t: v.t, v: typeof v.v === "number" ? -v.v : dimOp("-", 0, v.v) } as Value;
        if (v.t === "tensor") return v;
        fail("SDC401", e.operand.span, `'-' needs a number or a tensor, got ${typeName(v)}`);
      }
      // falls through
      case "binary":
        return this.evalBinary(e, scope);
      case "ternary": {
        const c = this.evalExpr(e.cond, scope);
        if (c.t !== "bool") fail("SDC401", e.cond.span, `a condition must be a bool, got ${typeName(c)}`);
        if (typeof c.v === "boolean" && !scope.symbolic) return this.evalExpr(c.v ? e.then : e.else, scope);
        const a = this.evalExpr(e.then, { ...scope, guards: [...scope.guards, { cond: e.cond, negate: false }] });
        const b = this.evalExpr(e.else, { ...scope, guards: [...scope.guards, { cond: e.cond, negate: true }] });
        if (typeof c.v === "boolean") return c.v ? a : b;
        if (a.t !== b.t) fail("SDC401", e.span, `both branches must have the same type: ${typeName(a)} vs ${typeName(b)}`);
        return a.t === "int" || a.t === "float" ? ({ t: a.t, v: symVar(`(?)`) } as Value) : a;
      }
      case "list":
        return { t: "list", items: e.items.map((x) => this.evalExpr(x, scope)) };
      case "shape":
        fail("SDC401", e.span, "a tensor type is only allowed in a forward signature");
      // falls through
      case "call":
        return this.evalCall(e, scope);
    }
  }

  private evalBinary(e: A.Binary, scope: Scope): Value {
    const l = this.evalExpr(e.left, scope);
    const r = this.evalExpr(e.right, scope);
    const op = e.op;
    if (op === "&&" || op === "||") {
      if (l.t !== "bool") fail("SDC401", e.left.span, `'${op}' needs bools, got ${typeName(l)}`);
      if (r.t !== "bool") fail("SDC401", e.right.span, `'${op}' needs bools, got ${typeName(r)}`);
      if (typeof l.v === "boolean" && typeof r.v === "boolean") return { t: "bool", v: op === "&&" ? l.v && r.v : l.v || r.v };
      return { t: "bool", v: symVar("(?)") };
    }
    const isNum = (v: Value) => v.t === "int" || v.t === "float";
    if (["==", "!=", "<", "<=", ">", ">="].includes(op)) {
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
    // arithmetic
    if (l.t === "tensor" || r.t === "tensor") {
      if (op === "%") fail("SDC401", e.span, "'%' is not defined on tensors");
      const ls = l.t === "tensor" ? l.shape : isNum(l) ? [] : fail("SDC401", e.left.span, `'${op}' needs a number or tensor, got ${typeName(l)}`);
      const rs = r.t === "tensor" ? r.shape : isNum(r) ? [] : fail("SDC401", e.right.span, `'${op}' needs a number or tensor, got ${typeName(r)}`);
      const b = broadcastShapes(ls, rs, scope.symbolic);
      if ("error" in b) fail("SDC500", e.span, `shape mismatch in '${op}': ${b.error}`);
      const res: Value = { t: "tensor", dtype: "float32", shape: b.shape };
      return scope.symbolic ? res : this.withDeps(res, joinDeps(this.depNode(l), this.depNode(r)));
    }
    if (!isNum(l)) fail("SDC401", e.left.span, `'${op}' needs numbers, got ${typeName(l)}`);
    if (!isNum(r)) fail("SDC401", e.right.span, `'${op}' needs numbers, got ${typeName(r)}`);
    const a = (l as { v: Dim }).v;
    const b = (r as { v: Dim }).v;
    const bothInt = l.t === "int" && r.t === "int";
    if ((op === "/" || op === "%") && b === 0) fail("SDC603", e.right.span, "division by zero");
    if (bothInt && op === "/" && typeof a === "number" && typeof b === "number" && a % b !== 0) {
      fail("SDC502", e.span, `${exprText(e.left)} / ${exprText(e.right)} is not exact: ${a} is not divisible by ${b}`);
    }
    const v = dimOp(op as "+" | "-" | "*" | "/" | "%", a, b);
    if (typeof v === "number" && bothInt && !Number.isSafeInteger(v)) fail("SDC601", e.span, `integer overflow: ${exprText(e)} exceeds 2^53`);
    if (typeof v === "number" && !Number.isFinite(v)) fail("SDC601", e.span, `${exprText(e)} is out of range`);
    return bothInt ? { t: "int", v } : { t: "float", v: v as number | Sym };
  }

  // ------------------------------------------------------------ calls

  private evalNamedArgs(call: A.Call, scope: Scope): Map<string, { value: Value; arg: A.Arg }> {
    const named = new Map<string, { value: Value; arg: A.Arg }>();
    for (const a of call.args) {
      if (!a.name) continue;
      if (named.has(a.name)) fail("SDC301", a.nameSpan!, `argument '${a.name}' is given twice`);
      named.set(a.name, { value: this.evalExpr(a.value, scope), arg: a });
    }
    return named;
  }

  private evalCall(call: A.Call, scope: Scope): Value {
    const prim = primitive(call.callee);
    const block = this.blocks.get(call.callee);
    if (!prim && !block) {
      fail("SDC304", call.calleeSpan, `unknown block or primitive '${call.callee}'${suggest(call.callee, [...Object.keys(PRIMITIVES), ...this.blocks.keys()])}`);
    }
    const positional: { value: Value; arg: A.Arg }[] = [];
    let seenNamed = false;
    for (const a of call.args) {
      if (a.name) seenNamed = true;
      else {
        if (seenNamed) fail("SDC200", a.span, "positional arguments must come before named ones");
        positional.push({ value: this.evalExpr(a.value, scope), arg: a });
      }
    }
    const named = this.evalNamedArgs(call, scope);
    if (prim) return this.callPrimitive(call, prim, positional, named, scope);
    const inputs = block!.forward?.inputs ?? [];
    if (positional.length !== inputs.length) {
      fail("SDC400", positional[inputs.length]?.arg.span ?? call.span, `block ${block!.name} takes ${inputs.length} tensor argument${inputs.length === 1 ? "" : "s"} (${inputs.map((i) => i.name).join(", ")}), got ${positional.length}`);
    }
    positional.forEach((p, i) => {
      if (p.value.t !== "tensor") fail("SDC401", p.arg.span, `argument '${inputs[i].name}' of ${block!.name} must be a tensor, got ${typeName(p.value)}`);
    });
    const path = this.labelPath(call, scope, this.ownsWeights(block!));
    if (scope.symbolic) return this.symbolicBlockCall(call, block!, positional, named, scope, path);
    const node: ModuleNode = { path: joinPath(scope.path, path), kind: block!.name, params: 0, children: [] };
    // a weight-free helper called without a name is no module of the state dict
    if (call.label) scope.module?.children.push(node);
    const out = this.callBlock(call, block!, positional.map((p) => p.value), named, scope, joinPath(scope.path, path), node, positional.map((p) => p.arg));
    return out;
  }

  /** Bind a block's parameters from named arguments (defaults, types, lets, requires). */
  private bindParams(call: A.Call, block: A.BlockDecl, named: Map<string, { value: Value; arg: A.Arg }>, symbolic: boolean): Map<string, Value> {
    const consts = new Map<string, Value>();
    const declared = new Set(block.params.map((p) => p.name));
    for (const [name, { arg }] of named) {
      if (!declared.has(name)) fail("SDC403", arg.nameSpan!, `block ${block.name} has no parameter '${name}'${suggest(name, [...declared])}`);
    }
    const inner: Scope = { symbolic, consts, vars: new Map(), dims: new Map(), path: "", loops: [], guards: [], callStack: [] };
    for (const p of block.params) {
      const given = named.get(p.name);
      let v: Value;
      if (given) v = given.value;
      else if (p.default) v = this.evalExpr(p.default, inner);
      else fail("SDC402", call.span, `missing argument '${p.name}' of block ${block.name} (declared at ${p.span.file}:${p.span.start.line})`);
      const want = p.type ?? (p.default ? this.evalExpr(p.default, inner).t : "int");
      const span = given?.arg.value.span ?? p.span;
      if (want === "float" && v.t === "int") v = { t: "float", v: v.v };
      if (v.t !== want) fail("SDC401", span, `parameter '${p.name}' of ${block.name} is ${want}, got ${typeName(v)} ${valueToString(v)}`);
      if (want === "int" && v.t === "int" && typeof v.v === "number" && !Number.isInteger(v.v)) fail("SDC401", span, `parameter '${p.name}' must be an integer, got ${valueToString(v)}`);
      consts.set(p.name, v);
    }
    for (const l of block.lets) consts.set(l.name, this.evalExpr(l.value, inner));
    if (!symbolic) {
      for (const r of block.requires) {
        const c = this.evalExpr(r.cond, inner);
        if (c.t !== "bool") fail("SDC401", r.cond.span, "`require` needs a bool condition");
        if (c.v === false) {
          const vals = [...freeNames(r.cond)].filter((n) => consts.has(n)).map((n) => `${n} = ${valueToString(consts.get(n)!)}`);
          fail("SDC600", call.span, `constraint of block ${block.name} failed: ${r.message ?? exprText(r.cond)} (${exprText(r.cond)}${vals.length ? ` with ${vals.join(", ")}` : ""})`, `the constraint is declared at ${r.span.file}:${r.span.start.line}:${r.span.start.column}`);
        }
      }
    }
    return consts;
  }

  private callBlock(call: A.Call, block: A.BlockDecl, inputs: Value[], named: Map<string, { value: Value; arg: A.Arg }>, outer: Scope, path: string, node: ModuleNode, argNodes?: A.Arg[]): Value {
    if (outer.callStack.includes(block.name)) fail("SDC604", call.calleeSpan, `block ${block.name} calls itself (${[...outer.callStack, block.name].join(" -> ")})`);
    if (outer.callStack.length > MAX_CALL_DEPTH) fail("SDC602", call.span, `blocks nest more than ${MAX_CALL_DEPTH} deep`);
    const firstParam = this.params.length;
    const consts = this.bindParams(call, block, named, false);
    const fwd = block.forward;
    if (!fwd) fail("SDC701", call.calleeSpan, `block ${block.name} has no forward(...)`);
    const scope: Scope = { symbolic: false, block, consts, vars: new Map(), dims: new Map(), path, module: node, loops: [], guards: [], callStack: [...outer.callStack, block.name] };
    fwd.inputs.forEach((inp, i) => {
      const actual = inputs[i] as Extract<Value, { t: "tensor" }>;
      const span = argNodes?.[i]?.span ?? call.span;
      this.bindShape(`argument '${inp.name}' of ${block.name}`, inp.shape, actual, scope, span);
      scope.vars.set(inp.name, actual);
    });
    this.execStmts(fwd.body, scope);
    const ret = scope.returned;
    if (!ret) fail("SDC404", fwd.span, `block ${block.name}: forward must end with \`return\``);
    if (ret.length !== fwd.outputs.length) {
      const r = fwd.body[fwd.body.length - 1];
      fail("SDC503", r.span, `block ${block.name} declares ${fwd.outputs.length} output${fwd.outputs.length === 1 ? "" : "s"} but returns ${ret.length}`);
    }
    const retStmt = fwd.body[fwd.body.length - 1] as A.ReturnStmt;
    fwd.outputs.forEach((o, i) => {
      const got = ret[i];
      if (got.t !== "tensor") fail("SDC503", retStmt.values[i].span, `output ${i + 1} of ${block.name} must be a tensor, got ${typeName(got)}`);
      const want = this.shapeValue(o, scope) as Extract<Value, { t: "tensor" }>;
      const mismatch = got.shape.length !== want.shape.length || got.shape.some((d, k) => !dimEq(d, want.shape[k]));
      if (mismatch) fail("SDC503", retStmt.values[i].span, `output ${i + 1} of ${block.name} is declared ${shapeToString(want.shape)} (${exprListText(o.dims)}) but the value returned is ${shapeToString(got.shape)}`);
    });
    // the parameters this call created (all under its path), summed once rather than by filtering all so far
    let own = 0;
    for (let k = firstParam; k < this.params.length; k++) if (!this.params[k].buffer) own += this.params[k].count;
    node.params = own;
    return ret.length === 1 ? ret[0] : { t: "tuple", items: ret };
  }

  /** Unify a declared input shape with an actual tensor, binding dimension names. */
  private bindShape(what: string, declared: A.ShapeExpr, actual: Extract<Value, { t: "tensor" }>, scope: Scope, span: Span) {
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
      const want = this.intOf(this.evalExpr(d, scope), d.span, "a dimension");
      if (!dimEq(want, got)) fail("SDC500", span, `${what}: expected ${exprListText(declared.dims)} = ${shapeToString(declared.dims.map((x, k) => (k === axis ? want : actual.shape[k])))}, got ${shapeToString(actual.shape)}: axis ${axis} is ${dimToString(got)}, expected ${exprText(d)} = ${dimToString(want)}`);
    });
  }

  private symbolicBlockCall(call: A.Call, block: A.BlockDecl, positional: { value: Value; arg: A.Arg }[], named: Map<string, { value: Value; arg: A.Arg }>, scope: Scope, path: string): Value {
    // a block that calls itself can never be built (its constructor would not end), used or not
    if (scope.callStack.includes(block.name)) fail("SDC604", call.calleeSpan, `block ${block.name} calls itself (${[...scope.callStack, block.name].join(" -> ")})`);
    const consts = this.bindParams(call, block, named, true);
    const fwd = block.forward;
    if (!fwd) fail("SDC701", call.calleeSpan, `block ${block.name} has no forward(...)`);
    const inner: Scope = { symbolic: true, block, consts, vars: new Map(), dims: new Map(), path: "", loops: [], guards: [], callStack: [] };
    fwd.inputs.forEach((inp, i) => {
      const actual = positional[i].value as Extract<Value, { t: "tensor" }>;
      if (actual.shape.length !== inp.shape.dims.length && !actual.shape.some((d) => isSym(d) && d.op === "var" && d.name === "?")) {
        fail("SDC501", positional[i].arg.span, `argument '${inp.name}' of ${block.name}: expected rank ${inp.shape.dims.length} ${exprListText(inp.shape.dims)}, got rank ${actual.shape.length} ${shapeToString(actual.shape)}`);
      }
      inp.shape.dims.forEach((d, axis) => {
        if (d.kind === "ident" && !consts.has(d.name) && !inner.dims.has(d.name)) inner.dims.set(d.name, actual.shape[axis] ?? symVar(d.name));
      });
    });
    this.recordModule(call, scope, path, { block, args: Object.fromEntries([...consts].filter(([k]) => block.params.some((p) => p.name === k))) });
    const outs = fwd.outputs.map((o) => {
      try {
        return this.shapeValue(o, inner);
      } catch {
        return { t: "tensor", dtype: o.dtype, shape: o.dims.map((d) => symVar(exprText(d))) } as Value;
      }
    });
    return outs.length === 1 ? outs[0] : { t: "tuple", items: outs };
  }

  private recordModule(call: A.Call, scope: Scope, path: string, what: { prim?: Primitive; block?: A.BlockDecl; args: Args }, shared = false) {
    const a = scope.analysis;
    if (!a) return;
    if (shared) {
      // built (per loop iteration, under the same guards) on the parameters at `path`, relative to the block
      const inner = scope.loops[scope.loops.length - 1];
      const decl: ModuleDecl = { call, field: "", path, loop: inner?.stmt, guards: [...scope.guards], shared: true, ...what };
      a.modules.push(decl);
      a.moduleOf.set(call, decl);
      return;
    }
    if (!call.label) {
      // a weight-free block called without `as`: a field of its own, no state-dict path
      const inner = scope.loops[scope.loops.length - 1];
      const base = `_${call.callee}`;
      let field = base;
      for (let k = 2; a.modules.some((m) => m.field === field); k++) field = `${base}_${k}`;
      const decl: ModuleDecl = { call, field, path: "", loop: inner?.stmt, guards: [...scope.guards], anonymous: true, ...what };
      a.modules.push(decl);
      a.moduleOf.set(call, decl);
      return;
    }
    const label = call.label!;
    const idx = label.segments.findIndex((s) => s.index);
    let loop: A.ForStmt | undefined;
    if (idx >= 0) {
      const seg = label.segments[idx];
      const inner = scope.loops[scope.loops.length - 1];
      if (idx !== label.segments.length - 1 || seg.index!.kind !== "ident" || !inner || seg.index!.name !== inner.name) {
        fail("SDC406", seg.span, "an indexed name must end in the innermost loop's variable, e.g. `as blocks[i]`");
      }
      loop = inner.stmt;
    } else if (scope.loops.length) {
      fail("SDC406", label.span, `inside a \`for\`, name the call by the loop index, e.g. \`as ${label.segments[0].name ?? "blocks"}[${scope.loops[scope.loops.length - 1].name}]\``);
    }
    const staticPath = label.segments.filter((s) => !s.index).map((s) => s.name).join(".");
    const field = staticPath.replace(/[^A-Za-z0-9_]/g, "_").replace(/^(\d)/, "_$1");
    const decl: ModuleDecl = { call, field, path: staticPath, loop, guards: [...scope.guards], ...what };
    a.modules.push(decl);
    a.moduleOf.set(call, decl);
    void path;
  }

  /** The label's path; index segments evaluated in concrete mode. */
  private labelPath(call: A.Call, scope: Scope, required: boolean): string {
    if (!call.label) {
      if (required) fail("SDC405", call.span, `'${call.callee}' has parameters: name it for the state dict, e.g. \`${call.callee}(...) as ${call.callee}\``);
      return "";
    }
    return call.label.segments
      .map((s) => {
        if (s.name !== undefined) return s.name;
        if (scope.symbolic) return `[${exprText(s.index!)}]`;
        const v = this.evalExpr(s.index!, scope);
        if (v.t !== "int" || typeof v.v !== "number") fail("SDC406", s.span, `a name index must be an integer known when the model is built, got ${typeName(v)}`);
        return String(v.v);
      })
      .join(".");
  }

  private callPrimitive(call: A.Call, prim: Primitive, positional: { value: Value; arg: A.Arg }[], named: Map<string, { value: Value; arg: A.Arg }>, scope: Scope): Value {
    const args: Args = {};
    const spans = new Map<string, Span>();
    let specs = prim.args;
    if (prim.variadic) {
      positional.forEach((p, k) => {
        if (p.value.t !== "tensor") fail("SDC401", p.arg.span, `${prim.name}: argument ${k + 1} must be a tensor, got ${typeName(p.value)}`);
        spans.set(`xs.${k}`, p.arg.span);
      });
      args.xs = { t: "list", items: positional.map((p) => p.value) };
      spans.set("xs", call.span);
    } else {
      if (positional.length > specs.length) fail("SDC400", positional[specs.length].arg.span, `${prim.name} takes at most ${specs.length} argument${specs.length === 1 ? "" : "s"} (${specs.map((s) => s.name).join(", ")}), got ${positional.length}`);
      positional.forEach((p, i) => {
        args[specs[i].name] = p.value;
        spans.set(specs[i].name, p.arg.span);
      });
    }
    // `weight_name: "scale"`: a parameter's state-dict suffix, generic over primitives with weights
    const renames = new Map<string, { to: string; arg: A.Arg }>();
    let share: { to: string; arg: A.Arg } | undefined;
    for (const [name, { value, arg }] of named) {
      const rename = prim.weights ? SUFFIX_ARGS.find((s) => s.arg === name) : undefined;
      if (prim.weights && name === SHARE_ARG.arg) {
        if (value.t !== "string") fail("SDC401", arg.value.span, `${prim.name}: argument 'share' must be a string (the name of an earlier call, e.g. "token_embedding"), got ${typeName(value)} ${valueToString(value)}`);
        if (!isStateDictName(value.v)) fail("SDC407", arg.value.span, `${prim.name}: share must name a call: identifiers or integers joined by dots (e.g. "token_embedding"), got ${JSON.stringify(value.v)}`);
        share = { to: value.v, arg };
        continue;
      }
      if (rename) {
        if (value.t !== "string") fail("SDC401", arg.value.span, `${prim.name}: argument '${name}' must be a string (a state-dict name such as "scale"), got ${typeName(value)} ${valueToString(value)}`);
        if (!isStateDictName(value.v)) fail("SDC407", arg.value.span, `${prim.name}: ${name} must be a state-dict name: identifiers or integers joined by dots (e.g. "scale"), got ${JSON.stringify(value.v)}`);
        renames.set(rename.suffix, { to: value.v, arg });
        continue;
      }
      const spec = specs.find((s) => s.name === name);
      if (!spec) fail("SDC403", arg.nameSpan!, `${prim.name} has no argument '${name}'${suggest(name, [...specs.map((s) => s.name), ...(prim.weights ? [...SUFFIX_ARGS.map((s) => s.arg), SHARE_ARG.arg] : [])])}`);
      if (args[name]) fail("SDC301", arg.nameSpan!, `argument '${name}' of ${prim.name} is given twice`);
      args[name] = value;
      spans.set(name, arg.value.span);
    }
    specs = prim.args;
    for (const spec of specs) {
      if (!args[spec.name]) {
        if (spec.default) args[spec.name] = spec.default;
        else if (spec.optional) continue;
        else fail("SDC402", call.span, `${prim.name}: missing argument '${spec.name}' (${spec.doc})`);
      }
      args[spec.name] = this.checkArgType(prim, spec, args[spec.name], spans.get(spec.name) ?? call.span);
    }
    const ctx = this.primContext(prim, call, spans, scope.symbolic);
    const out = prim.infer(args, ctx);
    let ownTag: string | undefined;
    const weights = renameWeights(prim, prim.weights?.(args, ctx) ?? [], renames);
    if (weights.length && share) {
      if (call.label) fail("SDC406", call.label.span, `${prim.name}(..., share: ${JSON.stringify(share.to)}) uses the parameters of '${share.to}' and creates none of its own, so it takes no name; remove \`as ${exprLabel(call.label)}\``);
      if (scope.symbolic) {
        this.recordModule(call, scope, share.to, { prim, args }, true);
        this.constructorSizes(prim, call, weights, scope);
      } else ownTag = this.shareWeights(prim, weights, scope.path, share);
    } else if (weights.length) {
      const path = this.labelPath(call, scope, true);
      if (scope.symbolic) {
        this.recordModule(call, scope, path, { prim, args });
        // the input width must be known from the block's parameters
        this.constructorSizes(prim, call, weights, scope);
      } else {
        const full = joinPath(scope.path, path);
        let own = 0;
        for (const w of weights) {
          const name = w.suffix === null ? full : joinPath(full, w.suffix);
          const shape = w.shape.map((d) => {
            if (typeof d !== "number") fail("SDC504", call.span, `${prim.name}: parameter ${name} has unknown size ${dimToString(d)}`);
            if (!Number.isInteger(d) || d <= 0) fail("SDC407", call.span, `${prim.name}: parameter ${name} would have shape [${w.shape.map((x) => dimToString(x)).join(", ")}]`);
            return d;
          });
          const count = shape.reduce((p, q) => p * q, 1);
          if (this.paramNames.has(name)) fail("SDC307", call.label?.span ?? call.span, `state-dict name '${name}' is defined twice (first at ${fmtSpan(this.paramNames.get(name)!)})`);
          this.paramNames.set(name, call.label?.span ?? call.span);
          const rec: ParamRecord = { name, shape, count, init: w.init, buffer: w.buffer, op: prim.name };
          this.params.push(rec);
          this.paramByName.set(name, rec);
          if (!w.buffer) {
            own += count;
            this.trainable += count;
          }
          // a running total: summing this.params here made checking quadratic in the parameter count
          if (this.trainable > MAX_PARAMS) fail("SDC602", call.span, `the model would have more than ${fmtCount(MAX_PARAMS)} parameters (at ${name}: ${fmtCount(count)}); refusing to build it`);
        }
        scope.module?.children.push({ path: full, kind: prim.name, params: own, children: [] });
        if (own > 0) {
          ownTag = full;
          this.owners.set(full, { call, op: prim.name, params: own });
        }
      }
    } else if (call.label) {
      fail("SDC406", call.label.span, `${prim.name}(...) here has no parameters, so it takes no name; remove \`as ${exprLabel(call.label)}\``);
    }
    if (scope.symbolic) return out;
    // concrete: the result depends on the tensor arguments and on this call's own weights
    let deps: DepNode = NO_DEPS;
    for (const v of Object.values(args)) {
      if (v.t === "tensor") deps = joinDeps(deps, this.depNode(v));
      else if (v.t === "list") for (const x of v.items) deps = joinDeps(deps, this.depNode(x));
    }
    if (ownTag) deps = joinDeps(deps, { tag: ownTag });
    return this.withDeps(out, deps);
  }

  // ------------------------------------------------------------ reachability (concrete)

  /**
   * What each concrete tensor depends on: the weight owners (state-dict paths of named
   * primitive calls with trainable parameters) and tags the caller adds (the network's inputs).
   * Weights whose owner never reaches the output get no gradient; an input that never reaches it
   * is ignored. A sound over-approximation (a split part depends on all of its input).
   */
  private deps = new WeakMap<Value, DepNode>();
  /** every weight owner met while elaborating, by state-dict path */
  readonly owners = new Map<string, { call: A.Call; op: string; params: number }>();

  /** The tags `v` depends on (a set built once from the dependency DAG: linear in its size). */
  depsOf(v: Value): ReadonlySet<string> {
    return flattenDeps(this.depNode(v));
  }

  /** `v`'s dependencies as a DAG node: a union is O(1), so deep models stay linear (a depth-4096 spec). */
  depNode(v: Value): DepNode {
    if (v.t === "tuple") return v.items.reduce<DepNode>((d, x) => joinDeps(d, this.depNode(x)), NO_DEPS);
    return this.deps.get(v) ?? NO_DEPS;
  }

  /** A copy of `v` (each item of a tuple) that depends on `deps` as well. */
  withDeps(v: Value, deps: DepNode): Value {
    if (v.t === "tuple") return { t: "tuple", items: v.items.map((x) => this.withDeps(x, deps)) };
    if (v.t !== "tensor") return v;
    const copy: Value = { ...v };
    this.deps.set(copy, joinDeps(this.depNode(v), deps));
    return copy;
  }

  /** The layer's constructor sizes must be known from the block's parameters (SDC504). */
  private constructorSizes(prim: Primitive, call: A.Call, weights: WeightSpec[], scope: Scope) {
    for (const w of weights) {
      for (const d of w.shape) {
        const free = freeDimNames(d).filter((n) => scope.dims.has(n));
        if (free.length) {
          fail("SDC504", call.span, `${prim.name}'s parameters would depend on '${free[0]}', a dimension bound from an input, not a block parameter: declare that axis with a parameter (e.g. \`x: [B, N, in_dim]\`)`);
        }
      }
    }
  }

  /**
   * `share: "target"` (concrete): each of the call's parameters must exist under the earlier
   * call `target` (relative to the block's path) with the same shape. Nothing is created or
   * counted; the result depends on the target's weights (its tag, returned).
   */
  private shareWeights(prim: Primitive, weights: WeightSpec[], base: string, share: { to: string; arg: A.Arg }): string {
    const target = joinPath(base, share.to);
    const at = share.arg.value.span;
    const owner = this.owners.get(target);
    const rel = (n: string) => (base && n.startsWith(base + ".") ? n.slice(base.length + 1) : n);
    if (!owner) {
      fail("SDC308", at, `share: no call before this one is named '${share.to}' with trainable parameters${suggest(share.to, [...this.owners.keys()].map(rel))}`, "the call whose parameters are shared must come first (the layers are built in the order of the forward)");
    }
    for (const w of weights) {
      const name = w.suffix === null ? target : joinPath(target, w.suffix);
      const rec = this.paramByName.get(name);
      const shape = w.shape.map((d) => (typeof d === "number" ? d : fail("SDC504", at, `${prim.name}: parameter ${name} has unknown size ${dimToString(d)}`)));
      if (!rec) {
        const theirs = this.params.filter((p) => p.name === target || p.name.startsWith(target + ".")).map((p) => (p.name === target ? "the call's name itself" : p.name.slice(target.length + 1)));
        fail("SDC308", at, `share: '${share.to}' (${owner.op}) has no parameter '${rel(name)}' for this ${prim.name}'s ${w.suffix ?? "parameter"} (its parameters: ${theirs.join(", ")})`);
      }
      if (rec.shape.length !== shape.length || rec.shape.some((d, i) => d !== shape[i])) {
        fail("SDC500", at, `share: this ${prim.name}'s ${w.suffix ?? "parameter"} would be [${shape.join(", ")}] but ${rel(name)} is [${rec.shape.join(", ")}]`);
      }
    }
    return target;
  }

  private checkArgType(prim: Primitive, spec: PrimArg, v: Value, span: Span): Value {
    const bad = () => fail("SDC401", span, `${prim.name}: argument '${spec.name}' must be ${spec.type === "ints" ? "a list of integers" : spec.type === "operand" ? "a tensor or a number" : spec.type}, got ${typeName(v)}${v.t !== "tensor" && v.t !== "tuple" ? ` ${valueToString(v)}` : ""}`);
    switch (spec.type) {
      case "tensor":
        if (v.t !== "tensor") bad();
        return v;
      case "operand":
        if (v.t === "int") return { t: "float", v: v.v };
        if (v.t !== "tensor" && v.t !== "float") bad();
        return v;
      case "int":
        if (v.t !== "int") bad();
        return v;
      case "float":
        if (v.t === "int") return { t: "float", v: v.v };
        if (v.t !== "float") bad();
        return v;
      case "bool":
        if (v.t !== "bool") bad();
        return v;
      case "string":
        if (v.t !== "string" && v.t !== "symbol") bad();
        return { t: "string", v: (v as { v: string }).v };
      case "ints":
        if (v.t !== "list" || !v.items.every((x) => x.t === "int")) bad();
        return v;
    }
  }

  private primContext(prim: Primitive, call: A.Call, spans: Map<string, Span>, symbolic: boolean): PrimContext {
    const at = (arg: string) => spans.get(arg) ?? call.span;
    return {
      symbolic,
      fail: (arg, code, message) => fail(code, at(arg), message),
      expectEq(arg, a, b, what) {
        if (dimEq(a, b)) return;
        if (symbolic && (isSym(a) || isSym(b))) return;
        fail("SDC500", at(arg), `${what}: ${dimToString(a)} vs ${dimToString(b)}`);
      },
      div(arg, a, b, what) {
        if (typeof a === "number" && typeof b === "number") {
          if (b === 0) fail("SDC603", at(arg), `${what}: division by zero`);
          if (a % b !== 0) fail("SDC502", at(arg), `${what}: ${a} is not divisible by ${b}`);
          return a / b;
        }
        return dimOp("/", a, b);
      },
    };
  }

  private shapeValue(s: A.ShapeExpr, scope: Scope): Value {
    return {
      t: "tensor",
      dtype: s.dtype,
      shape: s.dims.map((d) => {
        if (d.kind === "ident" && !scope.consts.has(d.name) && !scope.vars.has(d.name)) return scope.dims.get(d.name) ?? symVar(d.name);
        return this.intOf(this.evalExpr(d, scope), d.span, "a dimension");
      }),
    };
  }

  intOf(v: Value, span: Span, what: string): Dim {
    if (v.t !== "int") fail("SDC401", span, `${what} must be an integer, got ${typeName(v)} ${valueToString(v)}`);
    if (typeof v.v === "number" && v.v < 0) fail("SDC407", span, `${what} must not be negative, got ${v.v}`);
    return v.v;
  }
}

/**
 * What a tensor depends on, as a DAG: a tag (a weight owner's path, a network input) or the union
 * of parts. Unions share their parts instead of copying sets (copying made deep models quadratic).
 */
export interface DepNode {
  readonly tag?: string;
  readonly parts?: readonly DepNode[];
}
const NO_DEPS: DepNode = {};

export function joinDeps(a: DepNode, b: DepNode): DepNode {
  if (a === b || b === NO_DEPS) return a;
  if (a === NO_DEPS) return b;
  return { parts: [a, b] };
}

/** Every tag below a node, each node visited once. */
export function flattenDeps(d: DepNode): Set<string> {
  const out = new Set<string>();
  const seen = new Set<DepNode>();
  const stack = [d];
  while (stack.length) {
    const n = stack.pop()!;
    if (seen.has(n)) continue;
    seen.add(n);
    if (n.tag !== undefined) out.add(n.tag);
    if (n.parts) stack.push(...n.parts);
  }
  return out;
}

/** The weights with `weight_name`/`bias_name` applied; a rename of a parameter the call lacks, or onto another's name, fails at its argument. */
function renameWeights(prim: Primitive, weights: WeightSpec[], renames: Map<string, { to: string; arg: A.Arg }>): WeightSpec[] {
  if (!renames.size || !weights.length) return weights;
  for (const [suffix, r] of renames) {
    if (!weights.some((w) => w.suffix === suffix)) fail("SDC407", r.arg.nameSpan!, `${prim.name}(...) here has no parameter named '${suffix}' to rename (its parameters: ${weights.map((w) => w.suffix ?? "the call's name itself").join(", ")})`);
  }
  const out = weights.map((w) => (w.suffix !== null && renames.has(w.suffix) ? { ...w, suffix: renames.get(w.suffix)!.to } : w));
  out.forEach((w, i) => {
    const clash = out.findIndex((o, j) => j !== i && o.suffix === w.suffix);
    if (clash >= 0 && w.suffix !== weights[i].suffix) fail("SDC307", renames.get(weights[i].suffix!)!.arg.value.span, `${prim.name}: ${JSON.stringify(w.suffix)} would name two of its parameters`);
  });
  return out;
}

/** Thrown to stop elaborating after the first error inside a concrete block body. */
export class Abort extends Error {}

/** Thrown (and dropped by `collect`) when a statement uses a name whose own statement failed. */
class Cascade extends Error {}

/** What a name is bound to after its statement failed (symbolic mode keeps going). */
const UNKNOWN: Value = { t: "tensor", dtype: "float32", shape: [symVar("?")] };

export function joinPath(a: string, b: string): string {
  return a && b ? `${a}.${b}` : a || b;
}

function freeDimNames(d: Dim): string[] {
  if (typeof d === "number") return [];
  if (d.op === "var") return [d.name];
  return [...freeDimNames(d.a), ...freeDimNames(d.b)];
}

function freeNames(e: A.Expr): Set<string> {
  const out = new Set<string>();
  const walk = (x: A.Expr) => {
    if (x.kind === "ident") out.add(x.name);
    else if (x.kind === "binary") {
      walk(x.left);
      walk(x.right);
    } else if (x.kind === "unary") walk(x.operand);
    else if (x.kind === "ternary") [x.cond, x.then, x.else].forEach(walk);
    else if (x.kind === "call") x.args.forEach((a) => walk(a.value));
    else if (x.kind === "list") x.items.forEach(walk);
  };
  walk(e);
  return out;
}

/** Source-like text of an expression (for messages and generated comments). */
export function exprText(e: A.Expr): string {
  switch (e.kind) {
    case "number":
      return e.text;
    case "string":
      return JSON.stringify(e.value);
    case "bool":
      return String(e.value);
    case "ident":
      return e.name;
    case "unary":
      return `${e.op}${exprText(e.operand)}`;
    case "binary": {
      const wrap = (x: A.Expr) => (x.kind === "binary" ? `(${exprText(x)})` : exprText(x));
      return `${wrap(e.left)} ${e.op} ${wrap(e.right)}`;
    }
    case "ternary":
      return `${exprText(e.cond)} ? ${exprText(e.then)} : ${exprText(e.else)}`;
    case "list":
      return `[${e.items.map(exprText).join(", ")}]`;
    case "shape":
      return `${e.dtype === "int32" ? "int32" : ""}[${e.dims.map(exprText).join(", ")}]`;
    case "call":
      return `${e.callee}(${e.args.map((a) => (a.name ? `${a.name}: ` : "") + exprText(a.value)).join(", ")})${e.label ? ` as ${exprLabel(e.label)}` : ""}`;
  }
}

export function exprLabel(l: A.Label): string {
  return l.segments.map((s, i) => (s.index ? `[${exprText(s.index)}]` : (i ? "." : "") + s.name)).join("");
}

function exprListText(dims: A.Expr[]): string {
  return `[${dims.map(exprText).join(", ")}]`;
}

export function fmtCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}

function fmtSpan(s: Span): string {
  return `${s.file}:${s.start.line}:${s.start.column}`;
}

/** " (did you mean 'x'?)" for a close match by edit distance. */
export function suggest(name: string, candidates: Iterable<string>): string {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(name, c);
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best !== undefined && bestD <= Math.max(1, Math.floor(name.length / 3)) ? ` (did you mean '${best}'?)` : "";
}

/** Edit distance counting insertions, deletions, substitutions and adjacent transpositions (OSA). */
function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 3) return 99;
  const dp = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) dp[0][j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) {
      dp[i][j] = Math.min(dp[i - 1][j] + 1, dp[i][j - 1] + 1, dp[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      // a swap of two neighbours (widht -> width) is one typo, not two
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) dp[i][j] = Math.min(dp[i][j], dp[i - 2][j - 2] + 1);
    }
  return dp[a.length][b.length];
}

export { CODES };
