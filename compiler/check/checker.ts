/**
 * Phase 4: static checking. One evaluator runs a block's forward in two modes:
 *  - concrete: from the spec, with every parameter known, unrolling loops and taking branches,
 *    producing exact shapes, the full parameter list (state-dict names) and size checks;
 *  - symbolic: each block on its own, with its parameters as symbols, producing the typed view
 *    the code generator needs (shapes per statement, sub-modules with constructor arguments).
 * Diagnostics are thrown as DiagnosticError at the failing node and collected per statement,
 * so several independent errors are reported in one run.
 *
 * The checks live by concern in this folder (block.ts, stmts.ts, exprs.ts, calls.ts, prims.ts,
 * params.ts, modules.ts, shapes.ts, deps.ts); this class holds the state they share.
 */
import type * as A from "../ast.ts";
import { type Diagnostic, DiagnosticError, fail, type Span } from "../diagnostics.ts";
import type { Value } from "../values.ts";
import { analyzeBlock } from "./block.ts";
import { callBlock, evalNamedArgs } from "./calls.ts";
import { type DepNode, DepTable, flattenDeps } from "./deps.ts";
import { evalExpr } from "./exprs.ts";
import { ownsWeights } from "./modules.ts";
import { suggest } from "./text.ts";
import type { ModuleNode, ParamRecord } from "../../ir/ir.ts";
import { type BlockAnalysis, Cascade, emptyScope, type Evaluator, type Owner, type Scope, type ValueObserver } from "./types.ts";

export class Checker implements Evaluator {
  readonly diagnostics: Diagnostic[] = [];
  readonly params: ParamRecord[] = [];
  readonly paramNames = new Map<string, Span>();
  readonly paramByName = new Map<string, ParamRecord>();
  /** every weight owner met while elaborating, by state-dict path */
  readonly owners = new Map<string, Owner>();
  readonly weighty = new Map<string, boolean>();
  maxActivation = 0;
  maxActivationAt?: Span;
  unrolled = 0;
  /** trainable parameters recorded so far (totalParams, kept as it grows) */
  trainable = 0;
  buffers = 0;
  /** called with every evaluated expression (see ValueObserver); compilation ignores it */
  observe?: ValueObserver;
  private deps = new DepTable();

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

  /** Does a call of this block create parameters (or buffers)? (modules.ts) */
  ownsWeights(block: A.BlockDecl): boolean {
    return ownsWeights(this, block);
  }

  get totalParams(): number {
    return this.trainable;
  }

  /** The symbolic analysis of a block on its own (block.ts). */
  analyzeBlock(block: A.BlockDecl): BlockAnalysis {
    return analyzeBlock(this, block);
  }

  /**
   * Instantiate `call` (a block call) with concrete tensor inputs at state-dict prefix `path`.
   * Returns the block's outputs.
   */
  elaborate(call: A.Call, inputs: Value[], consts: Map<string, Value>, path: string, root: ModuleNode): Value {
    const scope: Scope = { ...emptyScope(false, consts), path, module: root };
    const block = this.blocks.get(call.callee);
    if (!block) fail("SDC304", call.calleeSpan, `unknown block '${call.callee}'${suggest(call.callee, [...this.blocks.keys()])}`);
    return callBlock(this, call, block, inputs, evalNamedArgs(this, call, scope), scope, path, root);
  }

  /** Evaluate a constant expression (spec parameters, settings) against known values. */
  evalConst(e: A.Expr, consts: Map<string, Value>, symbolsOk = false): Value {
    return this.evalExpr(e, { ...emptyScope(false, consts), symbolsOk });
  }

  evalExpr(e: A.Expr, scope: Scope): Value {
    return evalExpr(this, e, scope);
  }

  // ------------------------------------------------------------ reachability (deps.ts)

  /** The tags `v` depends on (a set built once from the dependency DAG: linear in its size). */
  depsOf(v: Value): ReadonlySet<string> {
    return flattenDeps(this.depNode(v));
  }

  depNode(v: Value): DepNode {
    return this.deps.depNode(v);
  }

  withDeps(v: Value, deps: DepNode): Value {
    return this.deps.withDeps(v, deps);
  }
}
