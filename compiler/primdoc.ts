/**
 * The primitives' reference, generated from the compiler's own table (primitives.ts): each
 * entry's signature and documentation, and what its shape and parameter rules give on the
 * entry's example arguments (run here, the same code the checker runs), so `sdc primitives` and
 * docs/primitives.md cannot drift from what the compiler accepts. Pure.
 */
import type * as A from "./ast.ts";
import { parseExpression } from "./parser.ts";
import { type Args, type PrimArg, type PrimContext, type Primitive, PRIMITIVES, SUFFIX_ARGS, type WeightSpec } from "./primitives.ts";
import { type Dim, dimOp, isSym, shapeToString, symVar, type Value, valueToString } from "./values.ts";

export interface PrimitiveParamDoc {
  /** state-dict name, `NAME` standing for the call's `as` name */
  name: string;
  shape: string;
  init: string;
  /** fixed (saved, not trained or counted) */
  buffer: boolean;
}

export interface PrimitiveDoc {
  name: string;
  doc: string;
  /** `linear(x: tensor, out: int, bias: bool = true, ...)` */
  signature: string;
  args: { name: string; type: string; default?: string; optional?: boolean; doc: string }[];
  variadic: boolean;
  /** the example call, as it would be written in a spec */
  example: string;
  /** its inputs (the tensor arguments) and its output, as the shape rule computes them */
  inputs: { name: string; shape: string }[];
  output: string;
  /** the parameters the example call creates (none: the primitive is stateless) */
  params: PrimitiveParamDoc[];
  /** other parameter sets, for a flag set against its default (`bias: false`) */
  paramVariants: { when: string; params: PrimitiveParamDoc[] }[];
  /** the runtime function or layer the generated code calls */
  runtime: string;
}

function argType(a: PrimArg): string {
  return a.type === "ints" ? "int list" : a.type === "operand" ? "tensor or number" : a.type;
}

function defaultText(v: Value): string {
  return valueToString(v);
}

/** An expression of the example (a shape or a size) as a checker value. */
function dimOf(e: A.Expr): Dim {
  switch (e.kind) {
    case "number":
      return e.value;
    case "ident":
      return symVar(e.name);
    case "unary":
      if (e.op === "-") return dimOp("-", 0, dimOf(e.operand));
      break;
    case "binary":
      if (e.op === "+" || e.op === "-" || e.op === "*" || e.op === "/" || e.op === "div" || e.op === "%") return dimOp(e.op, dimOf(e.left), dimOf(e.right));
      break;
    default:
      break;
  }
  throw new Error(`internal: example size ${JSON.stringify(e)} is not a dimension`);
}

function exampleValue(prim: Primitive, spec: PrimArg | undefined, text: string): Value {
  const r = parseExpression(`example of ${prim.name}`, text);
  if (!r.expr) throw new Error(`internal: the example of ${prim.name} does not parse: ${text}`);
  const e = r.expr;
  const type = spec?.type === "operand" ? (e.kind === "shape" || e.kind === "list" ? "tensor" : "float") : (spec?.type ?? "tensor");
  if (type === "tensor") {
    if (e.kind === "shape") return { t: "tensor", dtype: e.dtype, shape: e.dims.map(dimOf) };
    if (e.kind === "list") return { t: "tensor", dtype: "float32", shape: e.items.map(dimOf) };
    throw new Error(`internal: the example tensor of ${prim.name} must be a shape: ${text}`);
  }
  if (type === "ints") {
    if (e.kind !== "list") throw new Error(`internal: the example list of ${prim.name} must be [..]: ${text}`);
    return { t: "list", items: e.items.map((x) => ({ t: "int", v: dimOf(x) })) };
  }
  if (type === "bool") {
    if (e.kind !== "bool") throw new Error(`internal: the example flag of ${prim.name} must be true or false: ${text}`);
    return { t: "bool", v: e.value };
  }
  if (type === "string") return { t: "string", v: e.kind === "string" ? e.value : text };
  return { t: type, v: dimOf(e) } as Value;
}

/** The context a shape rule runs in, symbolically: unknown sizes are not compared. */
function docContext(prim: Primitive): PrimContext {
  return {
    symbolic: true,
    fail: (arg, code, message) => {
      throw new Error(`internal: the example of ${prim.name} fails its own rule (${code} at '${arg}'): ${message}`);
    },
    expectEq() {},
    div(_arg, a, b, what) {
      if (typeof a === "number" && typeof b === "number" && a % b !== 0) throw new Error(`internal: the example of ${prim.name}: ${what}`);
      return dimOp("/", a, b);
    },
  };
}

function paramDocs(ws: WeightSpec[]): PrimitiveParamDoc[] {
  return ws.map((w) => ({ name: w.suffix === null ? "NAME" : `NAME.${w.suffix}`, shape: shapeToString(w.shape), init: w.init, buffer: w.buffer }));
}

function outputText(v: Value): string {
  if (v.t === "tuple") return `(${v.items.map(outputText).join(", ")})`;
  if (v.t === "tensor") return `${v.dtype === "int32" ? "int32" : ""}${shapeToString(v.shape)}`;
  return valueToString(v);
}

/** One primitive's reference entry, its example run through its own rules. */
export function describePrimitive(prim: Primitive): PrimitiveDoc {
  const args: Args = {};
  const given: string[] = [];
  const inputs: { name: string; shape: string }[] = [];
  if (prim.variadic) {
    const xs = prim.example.xs;
    const shapes = (Array.isArray(xs) ? xs : [xs ?? "[N]"]).map((t) => exampleValue(prim, undefined, t));
    args.xs = { t: "list", items: shapes };
    shapes.forEach((v, k) => {
      given.push(`x${k + 1}`);
      inputs.push({ name: `x${k + 1}`, shape: outputText(v) });
    });
  }
  for (const spec of prim.args) {
    const text = prim.example[spec.name];
    if (text !== undefined && !Array.isArray(text)) {
      const v = exampleValue(prim, spec, text);
      args[spec.name] = v;
      if (v.t === "tensor") inputs.push({ name: spec.name, shape: outputText(v) });
      // tensors by position, as specs write them (`attention(q, k, v, heads: 4)`), the rest by name
      // (an optional tensor by name: it follows named arguments)
      given.push(v.t === "tensor" ? (spec.optional ? `${spec.name}: ${spec.name}` : spec.name) : `${spec.name}: ${valueToString(v)}`);
    } else if (spec.default) args[spec.name] = spec.default;
    else if (!spec.optional) throw new Error(`internal: the example of ${prim.name} lacks its required argument '${spec.name}'`);
  }
  const c = docContext(prim);
  const out = prim.infer(args, c);
  const weights = prim.weights?.(args, c) ?? [];
  // each flag against its default, when that changes the parameters
  const paramVariants: PrimitiveDoc["paramVariants"] = [];
  for (const spec of prim.args) {
    if (spec.type !== "bool" || spec.default?.t !== "bool" || isSym(spec.default.v)) continue;
    const flipped = { ...args, [spec.name]: { t: "bool", v: !spec.default.v } as Value };
    const ws = prim.weights?.(flipped, c) ?? [];
    const a = JSON.stringify(paramDocs(ws));
    if (a !== JSON.stringify(paramDocs(weights))) paramVariants.push({ when: `${spec.name}: ${!spec.default.v}`, params: paramDocs(ws) });
  }
  const positional = prim.variadic ? "x1, x2, ..., " : "";
  // the generic renames (`weight_name: "scale"`) of the suffixes this primitive's parameters have
  const suffixes = new Set(weights.map((w) => w.suffix));
  const renames = SUFFIX_ARGS.filter((r) => suffixes.has(r.suffix)).map((r) => ({ name: r.arg, type: "string", default: JSON.stringify(r.suffix), doc: `(by name only) ${r.doc}` }));
  return {
    name: prim.name,
    doc: prim.doc,
    signature: `${prim.name}(${positional}${prim.args.map((a) => `${a.name}${a.optional ? "?" : ""}: ${argType(a)}${a.default ? ` = ${defaultText(a.default)}` : ""}`).join(", ")})`,
    args: [...prim.args.map((a) => ({ name: a.name, type: argType(a), default: a.default ? defaultText(a.default) : undefined, optional: a.optional, doc: a.doc })), ...renames],
    variadic: !!prim.variadic,
    example: `${prim.name}(${given.join(", ")})${weights.length ? " as NAME" : ""}`,
    inputs,
    output: outputText(out),
    params: paramDocs(weights),
    paramVariants,
    runtime: prim.runtime,
  };
}

/** Every primitive, in the table's order. */
export function describePrimitives(): PrimitiveDoc[] {
  return Object.values(PRIMITIVES).map(describePrimitive);
}

const paramList = (ps: PrimitiveParamDoc[]) => (ps.length ? ps.map((p) => `\`${p.name}\` ${p.shape} (${p.buffer ? "fixed buffer" : `init ${p.init}`})`).join(", ") : "none");

/** `sdc primitives`: plain text, one paragraph per primitive. */
export function primitivesText(docs: PrimitiveDoc[] = describePrimitives()): string {
  return docs
    .map((d) => {
      const lines = [d.signature, `  ${d.doc}`];
      for (const a of d.args) lines.push(`    ${a.name}${a.optional ? "?" : ""}: ${a.type}${a.default !== undefined ? ` = ${a.default}` : ""}  ${a.doc}`);
      lines.push(`  e.g. ${d.example}${d.inputs.length ? ` with ${d.inputs.map((i) => `${i.name} ${i.shape}`).join(", ")}` : ""} -> ${d.output}`);
      lines.push(`  parameters: ${paramList(d.params)}`);
      for (const v of d.paramVariants) lines.push(`    with ${v.when}: ${paramList(v.params)}`);
      return lines.join("\n");
    })
    .join("\n\n");
}

/** Markdown text: `*` would start emphasis, `|` would end a table cell. */
const cell = (s: string) => s.replace(/[|*]/g, (c) => `\\${c}`);

/** The "Adding a primitive" section: which files an addition touches. */
const ADDING = [
  "## Adding a primitive",
  "",
  "A primitive is one compiler entry and one runtime record of the same name, plus its tests:",
  "",
  "1. **The compiler entry**, in its family's file under `compiler/primitives/` (`elementwise.ts`,",
  "   `shape.ts`, `norm.ts`, `conv.ts`, `attention.ts`, `position.ts`, `dense.ts`): signature, doc,",
  "   shape rule (`infer`), parameters (`weights`), the runtime name and an example call (this page",
  "   is generated from it). A primitive with parameters also gives `layer` (the layer class's",
  "   constructor and `apply()` arguments) and, if it can be called without them, `fn`; the code",
  "   generator reads these and has no per-primitive code. A function that means something on a",
  "   number too gives `scalar` (a `Math` function: `sqrt(head_dim)` is then a float computed when",
  "   the spec is checked, `Math.sqrt` in the generated code).",
  "2. **The runtime record** of the same name: in `FUNCTIONS` (`runtime/nn/functional.ts`) its tfjs",
  "   lowering and its graph lowering (the ops of `runtime/graph/trace.ts`, or `x.graph.ew(op, ...)`",
  "   for an elementwise operator), exported as `F.<runtime name>`; or, with parameters, the layer",
  "   class in `runtime/nn/layers.ts` and its `LAYERS` entry. `test/runtime/prim-records.test.ts`",
  "   fails when the two tables disagree.",
  "3. **The editor grammar**: the name in the primitive list of",
  "   `editors/vscode/syntaxes/mdl.tmLanguage.json` (`test/editors/grammar.test.ts` checks it).",
  "",
  "A primitive built from the graph operators there are touches exactly these three hand-written",
  "files (plus its tests and this generated page). One that needs a new elementwise graph operator",
  "adds a fourth: one entry in `EW_TABLE` (`runtime/graph/ops.ts`: its JS, WGSL and C forms and",
  "its gradient rule); the operator names (`EwOp`) are that table's keys, and `npm run gen:native`",
  "writes the C forms and the native instruction codes into the generated",
  "`runtime/executors/native/src/ew_ops.inc` and `op_codes.inc` (a test fails while they are",
  "stale). A new kind of graph node that is not elementwise touches more: its `Op` in",
  "`runtime/graph/graph.ts`, its gradient in `autodiff.ts`, its evaluator in",
  "`runtime/executors/interp/interp.ts` (`EVAL`, which the type checker makes complete), its",
  "WebGPU kernel (`runtime/executors/webgpu/kernels.ts`), its native lowering (`native/lower.ts`)",
  "and C++ kernel (`native/src/`), and its ONNX export (`runtime/export/onnx.ts`). Then regenerate",
  "this page (`npx sdc primitives --markdown > docs/primitives.md`) and test the new primitive",
  "against PyTorch (a committed fixture) or finite differences, on both engines.",
];

/** docs/primitives.md. */
export function primitivesMarkdown(docs: PrimitiveDoc[] = describePrimitives()): string {
  const out: string[] = [
    "# Primitives",
    "",
    "<!-- generated from compiler/primitives.ts (the entries in compiler/primitives/) by `npx sdc primitives --markdown > docs/primitives.md`; do not edit (a test fails when it is out of date) -->",
    "",
    "The operations a `.mdl` network is composed from. Each entry gives the signature (named",
    "arguments may be given by position, in this order), what the primitive computes, and what its",
    "shape and parameter rules (the checker's own) give on an example call. Parameters are named",
    "in the state dict by the call's `as NAME`: a call that creates parameters must be named, one",
    "that creates none must not; `weight_name:` and `bias_name:` rename a parameter's suffix",
    "(`rms_norm(q, weight_name: \"scale\") as norm` is `norm.scale`), and `share: \"NAME\"` (weight",
    "tying) makes a call use the parameters of the earlier call `NAME` instead of its own (same",
    "suffixes and shapes; counted once; such a call takes no `as`). Tensors are channels-last:",
    "images `[B, H, W, C]`, sequences `[B, N, D]`.",
    "",
    "Besides these: `+ - * /` on tensors and numbers, elementwise with numpy broadcasting, and unary `-`.",
    "",
    ...ADDING,
    "",
    "| primitive | parameters | what it computes |",
    "|---|---|---|",
    ...docs.map((d) => `| [\`${d.name}\`](#${d.name}) | ${d.params.length || d.paramVariants.some((v) => v.params.length) ? "yes" : ""} | ${cell(d.doc)} |`),
    "",
  ];
  for (const d of docs) {
    out.push(`## ${d.name}`, "", "```", d.signature, "```", "", cell(`${d.doc}.`.replace(/\.\.$/, ".")), "");
    out.push("| argument | type | default | |", "|---|---|---|---|");
    if (d.variadic) out.push("| `x1, x2, ...` | tensor | | the tensors (positional) |");
    for (const a of d.args) out.push(`| \`${a.name}\` | ${a.type} | ${a.default !== undefined ? `\`${cell(a.default)}\`` : a.optional ? "optional" : "required"} | ${cell(a.doc)} |`);
    out.push("");
    out.push(`Example: \`${d.example}\` with ${d.inputs.length ? d.inputs.map((i) => `\`${i.name}\` ${i.shape}`).join(", ") : "no tensor inputs"} gives ${d.output}.`, "");
    out.push(`Parameters: ${paramList(d.params)}.`);
    for (const v of d.paramVariants) out.push(`With \`${v.when}\`: ${paramList(v.params)}.`);
    out.push("", `Runtime: \`${d.params.length ? d.runtime : `F.${d.runtime}`}\`.`, "");
  }
  return out.join("\n");
}
