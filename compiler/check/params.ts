/**
 * Parameters: the state-dict entries a named primitive call creates (concrete), their sizes,
 * renames (`weight_name:`), weight tying (`share:`) and the model's size limit.
 */
import type * as A from "../ast.ts";
import { fail, type Span } from "../diagnostics.ts";
import type { Primitive, WeightSpec } from "../primitives.ts";
import { dimToString } from "../values.ts";
import { fmtCount, fmtSpan, freeDimNames, joinPath, suggest } from "./text.ts";
import type { ParamRecord } from "../../ir/ir.ts";
import { CARRIED, type Evaluator, MAX_PARAMS, type Scope } from "./types.ts";

/**
 * Create the parameters of a named primitive call at state-dict path `full` (concrete): each
 * weight's shape known and positive, each name new. Returns the trainable count it adds.
 */
export function createParams(ev: Evaluator, prim: Primitive, call: A.Call, weights: WeightSpec[], full: string): number {
  let own = 0;
  for (const w of weights) {
    const name = w.suffix === null ? full : joinPath(full, w.suffix);
    const shape = concreteShape(prim, call.span, w, name);
    const count = shape.reduce((p, q) => p * q, 1);
    // a buffer past the limit (or past 2^53, where the product is no longer exact) is refused like the parameters' total
    if (w.buffer && count > MAX_PARAMS) fail("SDC602", call.span, `${prim.name}: buffer ${name} [${shape.map(fmtInt).join(", ")}] would hold ${fmtInt(count)} values; the limit is ${fmtCount(MAX_PARAMS)}`);
    const at = call.label?.span ?? call.span;
    if (ev.paramNames.has(name)) fail("SDC307", at, `state-dict name '${name}' is defined twice (first at ${fmtSpan(ev.paramNames.get(name)!)})`);
    ev.paramNames.set(name, at);
    const rec: ParamRecord = { name, shape, count, init: w.init, buffer: w.buffer, op: prim.name };
    ev.params.push(rec);
    ev.paramByName.set(name, rec);
    if (!w.buffer) {
      own += count;
      ev.trainable += count;
    } else ev.buffers += count;
    if (ev.buffers > MAX_PARAMS) fail("SDC602", call.span, `the model's fixed buffers would hold more than ${fmtCount(MAX_PARAMS)} values (at ${name}: ${fmtInt(count)}); refusing to build it`);
    // a running total: summing ev.params here made checking quadratic in the parameter count
    if (ev.trainable > MAX_PARAMS) fail("SDC602", call.span, `the model would have more than ${fmtCount(MAX_PARAMS)} parameters (at ${name}: ${fmtCount(count)}); refusing to build it`);
  }
  return own;
}

const fmtInt = (n: number) => n.toLocaleString("en-US");

function concreteShape(prim: Primitive, span: Span, w: WeightSpec, name: string): number[] {
  return w.shape.map((d) => {
    if (typeof d !== "number") fail("SDC504", span, `${prim.name}: parameter ${name} has unknown size ${dimToString(d)}`);
    if (!(Math.abs(d) <= Number.MAX_SAFE_INTEGER)) fail("SDC601", span, `${prim.name}: ${w.buffer ? "buffer" : "parameter"} ${name} would have an axis of ${fmtInt(d)}, past 2^53: integer overflow in its size`);
    if (!Number.isInteger(d) || d <= 0) fail("SDC407", span, `${prim.name}: parameter ${name} would have shape [${w.shape.map((x) => dimToString(x)).join(", ")}]`);
    return d;
  });
}

/** The layer's constructor sizes must be known from the block's parameters (SDC504). */
export function constructorSizes(prim: Primitive, call: A.Call, weights: WeightSpec[], scope: Scope) {
  for (const w of weights) {
    for (const d of w.shape) {
      // (a dry pass of a loop, without analysis, is finding out which sizes are carried)
      const carried = scope.analysis && freeDimNames(d).find((n) => n.startsWith(CARRIED));
      if (carried) {
        const [name, axis] = carried.slice(CARRIED.length).split(".");
        fail("SDC504", call.span, `${prim.name}'s parameters would depend on axis ${axis} of '${name}', which each pass of the loop changes from the size the pass before left: the constructor cannot know it; give this layer a size from the block's parameters`);
      }
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
export function shareWeights(ev: Evaluator, prim: Primitive, weights: WeightSpec[], base: string, share: { to: string; arg: A.Arg }): string {
  const target = joinPath(base, share.to);
  const at = share.arg.value.span;
  const owner = ev.owners.get(target);
  const rel = (n: string) => (base && n.startsWith(base + ".") ? n.slice(base.length + 1) : n);
  if (!owner) {
    fail("SDC308", at, `share: no call before this one is named '${share.to}' with trainable parameters${suggest(share.to, [...ev.owners.keys()].map(rel))}`, "the call whose parameters are shared must come first (the layers are built in the order of the forward)");
  }
  for (const w of weights) {
    const name = w.suffix === null ? target : joinPath(target, w.suffix);
    const rec = ev.paramByName.get(name);
    const shape = w.shape.map((d) => (typeof d === "number" ? d : fail("SDC504", at, `${prim.name}: parameter ${name} has unknown size ${dimToString(d)}`)));
    if (!rec) {
      const theirs = ev.params.filter((p) => p.name === target || p.name.startsWith(target + ".")).map((p) => (p.name === target ? "the call's name itself" : p.name.slice(target.length + 1)));
      fail("SDC308", at, `share: '${share.to}' (${owner.op}) has no parameter '${rel(name)}' for this ${prim.name}'s ${w.suffix ?? "parameter"} (its parameters: ${theirs.join(", ")})`);
    }
    if (rec.shape.length !== shape.length || rec.shape.some((d, i) => d !== shape[i])) {
      fail("SDC500", at, `share: this ${prim.name}'s ${w.suffix ?? "parameter"} would be [${shape.join(", ")}] but ${rel(name)} is [${rec.shape.join(", ")}]`);
    }
  }
  return target;
}

/** The weights with `weight_name`/`bias_name` applied; a rename of a parameter the call lacks, or onto another's name, fails at its argument. */
export function renameWeights(prim: Primitive, weights: WeightSpec[], renames: Map<string, { to: string; arg: A.Arg }>): WeightSpec[] {
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
