/**
 * Tensor lists in a forward: `skips = []`, `skips.append(x)`, `skips.pop()`, `skips[i]`,
 * `len(skips)`. A compile-time construct: concrete mode keeps every element with its exact
 * shape (each checked where it is used); the generated forward holds a plain array. A list is
 * a value bound to a name and rebound by each method (names never share a list), so the
 * checker's lists behave as the generated code's arrays. Symbolic mode runs loops once: a list
 * whose length a loop or a branch changes becomes a symbolic list whose elements have one
 * shape, a dimension that differs between them (or names the loop's variable) marked CARRIED.
 */
import type * as A from "../ast.ts";
import { fail } from "../diagnostics.ts";
import { dimEq, symVar, typeName, type Value, valueToString } from "../values.ts";
import { freeDimNames } from "./text.ts";
import { CARRIED, type Evaluator, type Scope } from "./types.ts";

type Tensor = Extract<Value, { t: "tensor" }>;
type List = Extract<Value, { t: "list" }>;

/** `xs.append(x)` / `xs.pop()`: the list rebound in scope; pop gives the element, append the list. */
export function evalMethod(ev: Evaluator, e: A.MethodCall, scope: Scope, statement: boolean): Value {
  const name = e.target.name;
  const list = ev.evalExpr(e.target, scope);
  if (list.t !== "list") fail("SDC401", e.target.span, `'${name}' is ${typeName(list)}, not a list: only lists have .${e.method}()`);
  if (scope.consts.has(name)) fail("SDC301", e.target.span, `'${name}' is a parameter of the block and cannot be changed`);
  if (e.method === "append") return append(ev, e, scope, list, statement);
  if (e.method === "pop") return pop(e, scope, list);
  fail("SDC304", e.methodSpan, `lists have no method '${e.method}': use append(x) or pop()`);
}

function append(ev: Evaluator, e: A.MethodCall, scope: Scope, list: List, statement: boolean): Value {
  if (!statement) fail("SDC401", e.span, `${e.target.name}.append(...) gives nothing: write it as a statement of its own`);
  if (e.args.length !== 1) fail("SDC400", e.span, `append takes one tensor, got ${e.args.length} arguments`);
  const x = ev.evalExpr(e.args[0], scope);
  if (x.t !== "tensor") fail("SDC401", e.args[0].span, `a list holds tensors: append takes a tensor, got ${typeName(x)} ${valueToString(x)}`);
  if (list.sym && list.sym.elem !== "tensor") fail("SDC401", e.target.span, `'${e.target.name}' is a list of numbers, not of tensors`);
  const next: List = list.sym?.elem === "tensor" ? { ...list, sym: { ...list.sym, tensor: unify(list.sym.name, list.sym.tensor, x) } } : { t: "list", items: [...list.items, x] };
  scope.vars.set(e.target.name, next);
  return next;
}

function pop(e: A.MethodCall, scope: Scope, list: List): Value {
  if (e.args.length) fail("SDC400", e.span, `pop takes no arguments (it removes the last element), got ${e.args.length}`);
  if (list.sym) {
    if (list.sym.elem !== "tensor") fail("SDC401", e.target.span, `'${e.target.name}' is a parameter list; it cannot be changed`);
    return list.sym.tensor;
  }
  if (!list.items.length) fail("SDC407", e.span, `${e.target.name}.pop(): '${e.target.name}' is empty here`);
  scope.vars.set(e.target.name, { t: "list", items: list.items.slice(0, -1) });
  return list.items[list.items.length - 1];
}

/** The shape two elements of a list share: a dimension where they differ marked CARRIED. */
function unify(name: string, a: Tensor, b: Tensor): Tensor {
  if (a.shape.length !== b.shape.length) return { ...a, shape: a.shape.map((_, k) => symVar(`${CARRIED}${name}.${k}`)) };
  return { ...a, shape: a.shape.map((d, k) => (dimEq(d, b.shape[k]) ? d : symVar(`${CARRIED}${name}.${k}`))) };
}

/** An element of a tensor list at an index known only as a symbol: the shape its elements share. */
export function symbolicElement(name: string, list: List): Tensor | undefined {
  if (list.sym) return list.sym.elem === "tensor" ? list.sym.tensor : undefined;
  const tensors = list.items.filter((x): x is Tensor => x.t === "tensor");
  if (!tensors.length || tensors.length !== list.items.length) return undefined;
  return tensors.slice(1).reduce((acc, x) => unify(name, acc, x), tensors[0]);
}

/**
 * After a symbolic loop or `if`: each tensor list whose elements the pass changed (`before` vs
 * `scope.vars`) becomes symbolic; a dimension naming `loopVar` is marked CARRIED (it differs
 * between the passes that appended).
 */
export function symbolizeLists(before: ReadonlyMap<string, Value>, scope: Scope, loopVar?: string) {
  for (const [name, v] of scope.vars) {
    if (v.t !== "list" || v.sym?.elem === "int" || v.sym?.elem === "float") continue;
    const old = before.get(name);
    if (old === v || (old?.t === "list" && !v.sym && old.items.length === v.items.length && old.items.every((x, k) => x === v.items[k]))) continue;
    // the elements before and after: a pass that pops leaves fewer, of the same kind
    const seen: List = old?.t === "list" && !old.sym ? { t: "list", items: [...old.items, ...(v.sym ? [] : v.items)], sym: v.sym } : v;
    const elem = symbolicElement(name, v.sym ? v : seen);
    if (!elem) continue;
    const shape = elem.shape.map((d, k) => (loopVar && freeDimNames(d).includes(loopVar) ? symVar(`${CARRIED}${name}.${k}`) : d));
    scope.vars.set(name, { t: "list", items: [], sym: { name, elem: "tensor", tensor: { ...elem, shape } } });
  }
}
