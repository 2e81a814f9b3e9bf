/**
 * The .mdl abstract syntax tree. Every node carries its source span so that each later phase
 * can point a diagnostic at the exact expression it is about.
 */
import type { Span } from "./diagnostics.ts";

export interface Node {
  span: Span;
}

// ---------------------------------------------------------------- expressions

export type Expr = NumberLit | StringLit | BoolLit | Ident | Binary | Unary | Ternary | Call | ListExpr | IndexExpr | MethodCall | ShapeExpr;

export interface NumberLit extends Node {
  kind: "number";
  value: number;
  /** true when written without a decimal point or exponent */
  isInt: boolean;
  text: string;
}
export interface StringLit extends Node {
  kind: "string";
  value: string;
}
export interface BoolLit extends Node {
  kind: "bool";
  value: boolean;
}
export interface Ident extends Node {
  kind: "ident";
  name: string;
}
/** `div`: integer floor division (`//` is a comment in .mdl); `%`: the remainder, integers only. */
export type BinaryOp = "+" | "-" | "*" | "/" | "div" | "%" | "==" | "!=" | "<" | "<=" | ">" | ">=" | "&&" | "||";
export interface Binary extends Node {
  kind: "binary";
  op: BinaryOp;
  left: Expr;
  right: Expr;
}
export interface Unary extends Node {
  kind: "unary";
  op: "-" | "!";
  operand: Expr;
}
export interface Ternary extends Node {
  kind: "ternary";
  cond: Expr;
  then: Expr;
  else: Expr;
}
export interface Arg extends Node {
  /** set for named arguments (`eps: 1e-6`) */
  name?: string;
  nameSpan?: Span;
  value: Expr;
}
export interface LabelSegment extends Node {
  /** a fixed path segment (`to_out`, `0`) or an index expression (`[i]`) */
  name?: string;
  index?: Expr;
}
export interface Label extends Node {
  segments: LabelSegment[];
}
export interface Call extends Node {
  kind: "call";
  callee: string;
  calleeSpan: Span;
  args: Arg[];
  /** `linear(x, width) as to_q`: names the call's parameters in the state dict */
  label?: Label;
}
export interface ListExpr extends Node {
  kind: "list";
  items: Expr[];
}
/** `widths[i]`: an element of a list (negative indices count from the end). */
export interface IndexExpr extends Node {
  kind: "index";
  target: Ident;
  index: Expr;
}
/** `skips.append(x)`, `skips.pop()`: a list's methods (the list a name in the forward). */
export interface MethodCall extends Node {
  kind: "method";
  target: Ident;
  method: string;
  methodSpan: Span;
  args: Expr[];
}
/** A tensor type in a signature: `[B, N, width]`, optionally `int32[B, T]`. */
export interface ShapeExpr extends Node {
  kind: "shape";
  dtype: "float32" | "int32";
  dims: Expr[];
}

// ---------------------------------------------------------------- walking expressions

/**
 * Calls `visit` on each direct child expression of `e`, in source order (a call's argument
 * values, then its label's index expressions). The one place that knows which fields of each
 * node kind hold expressions: a new kind does not compile until it is handled here.
 */
export function forEachChildExpr(e: Expr, visit: (child: Expr) => void): void {
  switch (e.kind) {
    case "number":
    case "string":
    case "bool":
    case "ident":
      return;
    case "binary":
      visit(e.left);
      visit(e.right);
      return;
    case "unary":
      visit(e.operand);
      return;
    case "ternary":
      visit(e.cond);
      visit(e.then);
      visit(e.else);
      return;
    case "call":
      for (const a of e.args) visit(a.value);
      for (const s of e.label?.segments ?? []) if (s.index) visit(s.index);
      return;
    case "list":
      for (const x of e.items) visit(x);
      return;
    case "index":
      visit(e.target);
      visit(e.index);
      return;
    case "method":
      visit(e.target);
      for (const x of e.args) visit(x);
      return;
    case "shape":
      for (const d of e.dims) visit(d);
      return;
    default:
      unhandledKind(e);
  }
}

/** The default of a switch over every kind of a node union: `node` is `never` there, unless a kind is left unhandled. */
export function unhandledKind(node: never): never {
  throw new Error(`internal error: node kind '${(node as { kind?: unknown }).kind}' has no case`);
}

/**
 * Calls `visit` on `e` and on every expression inside it, parents before children, in source
 * order; where `visit` returns false, the node's children are skipped.
 */
export function walkExpr(e: Expr, visit: (x: Expr) => boolean | void): void {
  if (visit(e) === false) return;
  forEachChildExpr(e, (child) => walkExpr(child, visit));
}

/** Every identifier an expression reads (calls' arguments, label indices and shape dims included). */
export function exprNames(e: Expr, out: Set<string> = new Set()): Set<string> {
  walkExpr(e, (x) => {
    if (x.kind === "ident") out.add(x.name);
  });
  return out;
}

// ---------------------------------------------------------------- statements

export type Stmt = Assign | ForStmt | IfStmt | ReturnStmt | MethodStmt;

/** A method call as a statement: `skips.append(x)`. */
export interface MethodStmt extends Node {
  kind: "method";
  call: MethodCall;
}

export interface Assign extends Node {
  kind: "assign";
  targets: Ident[];
  value: Expr;
}
export interface ForStmt extends Node {
  kind: "for";
  variable: Ident;
  from: Expr;
  to: Expr;
  body: Stmt[];
}
export interface IfStmt extends Node {
  kind: "if";
  cond: Expr;
  then: Stmt[];
  else?: Stmt[];
}
export interface ReturnStmt extends Node {
  kind: "return";
  values: Expr[];
}

/**
 * Walks statements and the bodies inside them in source order: `stmt` (if given) on each
 * statement first, then `expr` on each of its own expressions with the statement they belong to
 * (not their subexpressions: walk those with walkExpr), an `if`'s condition before its branches,
 * a `for`'s bounds before its body.
 */
export function walkStmts(stmts: readonly Stmt[], expr: (e: Expr, owner: Stmt) => void, stmt?: (s: Stmt) => void): void {
  for (const s of stmts) {
    stmt?.(s);
    switch (s.kind) {
      case "assign":
        expr(s.value, s);
        break;
      case "method":
        expr(s.call, s);
        break;
      case "return":
        for (const v of s.values) expr(v, s);
        break;
      case "for":
        expr(s.from, s);
        expr(s.to, s);
        walkStmts(s.body, expr, stmt);
        break;
      case "if":
        expr(s.cond, s);
        walkStmts(s.then, expr, stmt);
        if (s.else) walkStmts(s.else, expr, stmt);
        break;
      default:
        unhandledKind(s);
    }
  }
}

// ---------------------------------------------------------------- declarations

export type ScalarType = "int" | "float" | "bool";
/** A declared parameter type: a scalar or a list of numbers (`widths: int[]`). */
export type ParamType = ScalarType | "int[]" | "float[]";

export interface ParamDecl extends Node {
  name: string;
  nameSpan: Span;
  type?: ParamType;
  default?: Expr;
  doc?: string;
}
export interface LetDecl extends Node {
  name: string;
  nameSpan: Span;
  value: Expr;
}
export interface RequireDecl extends Node {
  cond: Expr;
  message?: string;
}
export interface TensorParam extends Node {
  name: string;
  nameSpan: Span;
  shape: ShapeExpr;
}
export interface Forward extends Node {
  inputs: TensorParam[];
  outputs: ShapeExpr[];
  body: Stmt[];
}
export interface BlockDecl extends Node {
  kind: "block";
  name: string;
  nameSpan: Span;
  doc?: string;
  params: ParamDecl[];
  lets: LetDecl[];
  requires: RequireDecl[];
  forward?: Forward;
  file: string;
}
export interface Setting extends Node {
  key: string;
  keySpan: Span;
  value: Expr;
}
export interface Section extends Node {
  name: string;
  nameSpan: Span;
  settings: Setting[];
}
export interface Override extends Node {
  name: string;
  nameSpan: Span;
  value: Expr;
}
export interface VariantDecl extends Node {
  name: string;
  nameSpan: Span;
  doc?: string;
  overrides: Override[];
}
export interface SpecDecl extends Node {
  kind: "spec";
  name: string;
  nameSpan: Span;
  title?: string;
  params: ParamDecl[];
  lets: LetDecl[];
  requires: RequireDecl[];
  sections: Section[];
  network?: Call;
  variants: VariantDecl[];
  file: string;
}
export interface ImportDecl extends Node {
  kind: "import";
  path: string;
}
export interface SourceFile {
  path: string;
  imports: ImportDecl[];
  blocks: BlockDecl[];
  specs: SpecDecl[];
}
