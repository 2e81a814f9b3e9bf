/**
 * Reachability (concrete): what each tensor depends on, as a DAG whose leaves are tags (a weight
 * owner's state-dict path, a network input). Weights whose owner never reaches the output get no
 * gradient; an input that never reaches it is ignored. A sound over-approximation (a split part
 * depends on all of its input).
 */
import type { Value } from "../values.ts";

/**
 * What a tensor depends on: a tag or the union of parts. Unions share their parts instead of
 * copying sets (copying made deep models quadratic).
 */
export interface DepNode {
  readonly tag?: string;
  readonly parts?: readonly DepNode[];
}
export const NO_DEPS: DepNode = {};

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

/** The dependencies of the values an elaboration computes, kept beside them (not in them). */
export class DepTable {
  private deps = new WeakMap<Value, DepNode>();

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
}
