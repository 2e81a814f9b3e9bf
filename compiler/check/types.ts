/**
 * The checker's shared vocabulary: what it produces (parameter records, the module tree, the
 * typed view of a block), the scope it evaluates in, its limits, and `Evaluator`, the part of the
 * checker that the per-concern modules of this folder see.
 */
import type * as A from "../ast.ts";
import type { Diagnostic, Span } from "../diagnostics.ts";
import type { ModuleNode, ParamRecord } from "../../ir/ir.ts";
import type { Args, Primitive } from "../primitives.ts";
import type { Dim, Value } from "../values.ts";
import { symVar } from "../values.ts";
import type { DepNode } from "./deps.ts";

/** Refuse models whose parameter count exceeds this before anything is allocated. */
export const MAX_PARAMS = 2_000_000_000;
/** Refuse a single activation larger than this many elements per sample. */
export const MAX_ACTIVATION = 1 << 28;
/** Refuse loops that would unroll beyond this. */
export const MAX_UNROLL = 10_000;
export const MAX_CALL_DEPTH = 64;

/** A labeled call inside a block, seen symbolically: what the constructor must build. */
export interface ModuleDecl {
  call: A.Call;
  /** TS field name (unique within the block) */
  field: string;
  /** state-dict path relative to the block, without the loop index (e.g. "transformer_blocks") */
  path: string;
  /** the loops whose indices name this module, outermost first (`as blocks[i]`: one; `as levels[l][i]`: two); [] for one module */
  loops: A.ForStmt[];
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

export interface Scope {
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

/** A scope with nothing bound yet (a block's parameters, a spec's constants). */
export function emptyScope(symbolic: boolean, consts: Map<string, Value> = new Map()): Scope {
  return { symbolic, consts, vars: new Map(), dims: new Map(), path: "", loops: [], guards: [], callStack: [] };
}

/** An evaluated argument with its syntax (for positions). */
export interface ArgValue {
  value: Value;
  arg: A.Arg;
}
export type NamedArgs = Map<string, ArgValue>;

/** A weight owner: the named primitive call whose trainable parameters sit at a state-dict path. */
export interface Owner {
  call: A.Call;
  op: string;
  params: number;
}

/**
 * The checker as the modules of this folder see it: its results so far, its counters and the
 * evaluation they recurse through. `Checker` (checker.ts) is the one implementation.
 */
export interface Evaluator {
  readonly blocks: ReadonlyMap<string, A.BlockDecl>;
  readonly diagnostics: Diagnostic[];
  readonly params: ParamRecord[];
  /** where each state-dict name was created */
  readonly paramNames: Map<string, Span>;
  readonly paramByName: Map<string, ParamRecord>;
  /** every weight owner met while elaborating, by state-dict path */
  readonly owners: Map<string, Owner>;
  /** whether a call of each block creates parameters (memo of ownsWeights) */
  readonly weighty: Map<string, boolean>;
  /** trainable parameters recorded so far (kept as it grows) */
  trainable: number;
  /** values in fixed buffers recorded so far */
  buffers: number;
  /** loop iterations unrolled so far (concrete) */
  unrolled: number;
  maxActivation: number;
  maxActivationAt?: Span;
  observe?: ValueObserver;
  evalExpr(e: A.Expr, scope: Scope): Value;
  collect(e: unknown): void;
  depNode(v: Value): DepNode;
  withDeps(v: Value, deps: DepNode): Value;
}

/**
 * Prefix of the symbol for a size a loop carries from one pass to the next (`~x.2`: axis 2 of
 * `x`) when it depends on the pass before (`x = concat(x, x)`); no spec name can contain `~`.
 */
export const CARRIED = "~";

/** Thrown to stop elaborating after the first error inside a concrete block body. */
export class Abort extends Error {}

/** Thrown (and dropped by `collect`) when a statement uses a name whose own statement failed. */
export class Cascade extends Error {}

/** What a name is bound to after its statement failed (symbolic mode keeps going). */
export const UNKNOWN: Value = { t: "tensor", dtype: "float32", shape: [symVar("?")] };
