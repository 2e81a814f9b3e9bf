/**
 * Calls of primitives: arguments bound to the primitive's signature and type-checked, its shape
 * rule run, its weights created (concrete) or recorded for the constructor (symbolic).
 */
import type * as A from "../ast.ts";
import { fail, type Span } from "../diagnostics.ts";
import { type Args, isStateDictName, type PrimArg, type PrimContext, type Primitive, SHARE_ARG, SUFFIX_ARGS, type WeightSpec } from "../primitives.ts";
import { dimEq, dimOp, dimToString, isSym, type Sym, symVar, typeName, type Value, valueToString } from "../values.ts";
import { type DepNode, joinDeps, NO_DEPS } from "./deps.ts";
import { labelPath, recordModule } from "./modules.ts";
import { constructorSizes, createParams, renameWeights, shareWeights } from "./params.ts";
import { exprLabel, joinPath, suggest } from "./text.ts";
import type { ArgValue, Evaluator, NamedArgs, Scope } from "./types.ts";

type Share = { to: string; arg: A.Arg };

/** A primitive's arguments bound by name, with where each was written and the weight options. */
interface BoundArgs {
  args: Args;
  spans: Map<string, Span>;
  renames: Map<string, Share>;
  share?: Share;
}

export function callPrimitive(ev: Evaluator, call: A.Call, prim: Primitive, positional: ArgValue[], named: NamedArgs, scope: Scope): Value {
  const only = positional.length + named.size === 1 ? (positional[0] ?? named.get("x")) : undefined;
  if (prim.scalar && (only?.value.t === "int" || only?.value.t === "float")) return scalarCall(call, prim, prim.scalar, only);
  const bound = bindPositional(call, prim, positional);
  bindNamed(prim, named, bound);
  checkArgs(prim, call, bound);
  const ctx = primContext(call, bound.spans, scope.symbolic);
  const out = prim.infer(bound.args, ctx);
  const weights = renameWeights(prim, prim.weights?.(bound.args, ctx) ?? [], bound.renames);
  const ownTag = weights.length ? primWeights(ev, call, prim, weights, bound, scope) : noWeights(call, prim);
  if (scope.symbolic) return out;
  // concrete: the result depends on the tensor arguments and on this call's own weights
  let deps: DepNode = NO_DEPS;
  for (const v of Object.values(bound.args)) {
    if (v.t === "tensor") deps = joinDeps(deps, ev.depNode(v));
    else if (v.t === "list") for (const x of v.items) deps = joinDeps(deps, ev.depNode(x));
  }
  if (ownTag) deps = joinDeps(deps, { tag: ownTag });
  return ev.withDeps(out, deps);
}

/** sqrt, sin, cos, exp, log of a number: a float now (concrete) or a symbolic one (a block checked on its own). */
function scalarCall(call: A.Call, prim: Primitive, fn: NonNullable<Primitive["scalar"]>, x: ArgValue): Value {
  noWeights(call, prim);
  const v = (x.value as { v: number | Sym }).v;
  if (typeof v !== "number") return { t: "float", v: symVar(`${fn}(${dimToString(v)})`) };
  const r = Math[fn](v);
  if (!Number.isFinite(r)) fail("SDC601", call.span, `${fn}(${v}) is ${Number.isNaN(r) ? "not a number" : r}: out of ${fn}'s domain or range`);
  return { t: "float", v: r };
}

function bindPositional(call: A.Call, prim: Primitive, positional: ArgValue[]): BoundArgs {
  const args: Args = {};
  const spans = new Map<string, Span>();
  const specs = prim.args;
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
  return { args, spans, renames: new Map() };
}

/** Named arguments: the signature's, `weight_name: "scale"` (a parameter's state-dict suffix) and `share:`. */
function bindNamed(prim: Primitive, named: NamedArgs, bound: BoundArgs) {
  const { args, spans } = bound;
  for (const [name, { value, arg }] of named) {
    const rename = prim.weights ? SUFFIX_ARGS.find((s) => s.arg === name) : undefined;
    if (prim.weights && name === SHARE_ARG.arg) {
      if (value.t !== "string") fail("SDC401", arg.value.span, `${prim.name}: argument 'share' must be a string (the name of an earlier call, e.g. "token_embedding"), got ${typeName(value)} ${valueToString(value)}`);
      if (!isStateDictName(value.v)) fail("SDC407", arg.value.span, `${prim.name}: share must name a call: identifiers or integers joined by dots (e.g. "token_embedding"), got ${JSON.stringify(value.v)}`);
      bound.share = { to: value.v, arg };
      continue;
    }
    if (rename) {
      if (value.t !== "string") fail("SDC401", arg.value.span, `${prim.name}: argument '${name}' must be a string (a state-dict name such as "scale"), got ${typeName(value)} ${valueToString(value)}`);
      if (!isStateDictName(value.v)) fail("SDC407", arg.value.span, `${prim.name}: ${name} must be a state-dict name: identifiers or integers joined by dots (e.g. "scale"), got ${JSON.stringify(value.v)}`);
      bound.renames.set(rename.suffix, { to: value.v, arg });
      continue;
    }
    const spec = prim.args.find((s) => s.name === name);
    if (!spec) fail("SDC403", arg.nameSpan!, `${prim.name} has no argument '${name}'${suggest(name, [...prim.args.map((s) => s.name), ...(prim.weights ? [...SUFFIX_ARGS.map((s) => s.arg), SHARE_ARG.arg] : [])])}`);
    if (args[name]) fail("SDC301", arg.nameSpan!, `argument '${name}' of ${prim.name} is given twice`);
    args[name] = value;
    spans.set(name, arg.value.span);
  }
}

/** Defaults filled in, missing arguments refused, each argument's type checked. */
function checkArgs(prim: Primitive, call: A.Call, { args, spans }: BoundArgs) {
  for (const spec of prim.args) {
    if (!args[spec.name]) {
      if (spec.default) args[spec.name] = spec.default;
      else if (spec.optional) continue;
      else fail("SDC402", call.span, `${prim.name}: missing argument '${spec.name}' (${spec.doc})`);
    }
    args[spec.name] = checkArgType(prim, spec, args[spec.name], spans.get(spec.name) ?? call.span);
  }
}

/** A call without parameters takes no name. */
function noWeights(call: A.Call, prim: Primitive): undefined {
  if (call.label) fail("SDC406", call.label.span, `${prim.name}(...) here has no parameters, so it takes no name; remove \`as ${exprLabel(call.label)}\``);
  return undefined;
}

/** The call's weights: shared, recorded (symbolic) or created (concrete). Returns its dependency tag. */
function primWeights(ev: Evaluator, call: A.Call, prim: Primitive, weights: WeightSpec[], { args, share }: BoundArgs, scope: Scope): string | undefined {
  if (share) {
    if (call.label) fail("SDC406", call.label.span, `${prim.name}(..., share: ${JSON.stringify(share.to)}) uses the parameters of '${share.to}' and creates none of its own, so it takes no name; remove \`as ${exprLabel(call.label)}\``);
    if (!scope.symbolic) return shareWeights(ev, prim, weights, scope.path, share);
    recordModule(call, scope, { prim, args }, share.to);
    constructorSizes(prim, call, weights, scope);
    return undefined;
  }
  const path = labelPath(ev, call, scope, true);
  if (scope.symbolic) {
    recordModule(call, scope, { prim, args });
    // the input width must be known from the block's parameters
    constructorSizes(prim, call, weights, scope);
    return undefined;
  }
  const full = joinPath(scope.path, path);
  const own = createParams(ev, prim, call, weights, full);
  scope.module?.children.push({ path: full, kind: prim.name, params: own, children: [] });
  if (own <= 0) return undefined;
  ev.owners.set(full, { call, op: prim.name, params: own });
  return full;
}

function checkArgType(prim: Primitive, spec: PrimArg, v: Value, span: Span): Value {
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

function primContext(call: A.Call, spans: Map<string, Span>, symbolic: boolean): PrimContext {
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
