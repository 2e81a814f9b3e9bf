/**
 * One pure transform per block: a checked block (its symbolic analysis) -> the structures of a
 * TypeScript args interface and a class with typed constructor arguments and a typed `forward`.
 * Declarations are ts-morph structures; statement bodies are written with its code writer.
 */
import type { ClassDeclarationStructure, CodeBlockWriter, InterfaceDeclarationStructure, OptionalKind, PropertyDeclarationStructure } from "ts-morph";
import { tsMorph } from "./lazy.ts";
import * as A from "../ast.ts";
import { type BlockAnalysis, exprText, type ModuleDecl } from "../check/index.ts";
import { primitive, SUFFIX_ARGS } from "../primitives.ts";
import { type Dim, listType, shapeToString, type Value } from "../values.ts";
import { commentText, moduleFields, Names, propName } from "./names.ts";

export function tensorType(v: Value | undefined): string {
  // a list made in a forward holds tensors (`skips = []`); a list of numbers is a parameter
  if (v?.t === "list") return v.items.length && listType(v) ? "number[]" : "tf.Tensor[]";
  if (!v || v.t !== "tensor") return "tf.Tensor";
  const r = v.shape.length;
  return r >= 1 && r <= 6 ? `tf.Tensor${r}D` : "tf.Tensor";
}

function shapeComment(v: Value | undefined): string {
  if (!v) return "";
  if (v.t === "tensor") return commentText(shapeToString(v.shape));
  if (v.t === "tuple") return v.items.map(shapeComment).join(", ");
  if (v.t === "list") return "a list of tensors";
  return "";
}

function paramTsType(p: A.ParamDecl): string {
  return p.type === "bool" ? "boolean" : p.type === "int[]" || p.type === "float[]" ? "readonly number[]" : "number";
}

interface Ctx {
  a: BlockAnalysis;
  /** names visible as plain TS locals: params, lets, loop variables, dim variables */
  locals: Set<string>;
  /** in the constructor (no tensors, no dims) */
  ctor: boolean;
  /** the package's names (classes, mangled locals) */
  n: Names;
  /** a spec name as a TypeScript local of this block */
  local: (name: string) => string;
  /** each module's field in this block's class */
  fields: Map<ModuleDecl, string>;
}

/** TS expression for a .mdl expression. */
function ts(e: A.Expr, c: Ctx, parentPrec = 0): string {
  const ty = c.a.types.get(e);
  switch (e.kind) {
    case "number":
      // leading zeros would be an octal literal, refused in strict mode
      return /^0\d/.test(e.text) ? String(e.value) : e.text;
    case "string":
      return JSON.stringify(e.value);
    case "bool":
      return String(e.value);
    case "ident":
      return c.local(e.name);
    case "unary": {
      const inner = ts(e.operand, c, 9);
      if (e.op === "-" && ty?.t === "tensor") return `tf.neg(${inner})`;
      // `- -x` must not become the decrement operator
      return inner.startsWith(e.op) ? `${e.op}(${inner})` : `${e.op}${inner}`;
    }
    case "binary": {
      const lt = c.a.types.get(e.left);
      const rt = c.a.types.get(e.right);
      const tensor = lt?.t === "tensor" || rt?.t === "tensor";
      if (tensor) {
        const fn = { "+": "add", "-": "sub", "*": "mul", "/": "div" }[e.op as "+"];
        return `F.${fn}(${ts(e.left, c)}, ${ts(e.right, c)})`;
      }
      if (e.op === "/" && lt?.t === "int" && rt?.t === "int") return `F.idiv(${ts(e.left, c)}, ${ts(e.right, c)})`;
      if (e.op === "div") return `F.floordiv(${ts(e.left, c)}, ${ts(e.right, c)})`;
      const op = e.op === "==" ? "===" : e.op === "!=" ? "!==" : e.op;
      const prec = { "||": 1, "&&": 2, "==": 3, "!=": 3, "<": 4, "<=": 4, ">": 4, ">=": 4, "+": 5, "-": 5, "*": 6, "/": 6, "%": 6 }[e.op];
      const s = `${ts(e.left, c, prec)} ${op} ${ts(e.right, c, prec + 1)}`;
      return prec < parentPrec ? `(${s})` : s;
    }
    case "ternary": {
      const s = `${ts(e.cond, c, 1)} ? ${ts(e.then, c, 1)} : ${ts(e.else, c, 1)}`;
      return parentPrec > 0 ? `(${s})` : s;
    }
    case "list":
      return `[${e.items.map((x) => ts(x, c)).join(", ")}]`;
    case "index":
      return `F.at(${ts(e.target, c)}, ${ts(e.index, c)})`;
    case "method":
      return e.method === "append" ? `${ts(e.target, c)}.push(${ts(e.args[0], c)})` : `F.pop(${ts(e.target, c)})`;
    case "shape":
      return "undefined";
    case "call":
      return callTs(e, c);
  }
}

function moduleRef(m: ModuleDecl, c: Ctx): string {
  const base = `this.${c.fields.get(m)!}${m.loops.map((l) => `[${loopOffset(l, c)}]`).join("")}`;
  return m.guards.length > 0 ? `need(${base}, ${JSON.stringify(m.path || m.field)})` : base;
}

/** The position of the loop's current iteration in a module array: `i`, or `i - (from)` for a loop not from 0. */
function loopOffset(loop: A.ForStmt, c: Ctx): string {
  const from = ts(loop.from, c);
  return from === "0" ? c.local(loop.variable.name) : `${c.local(loop.variable.name)} - (${from})`;
}

function callTs(call: A.Call, c: Ctx): string {
  const m = c.a.moduleOf.get(call);
  const prim = primitive(call.callee);
  const positional = call.args.filter((a) => !a.name);
  const named = new Map(call.args.filter((a) => a.name).map((a) => [a.name!, a]));
  if (call.callee === "len" && !m) return `${ts(call.args[0].value, c)}.length`;
  if (m?.block) {
    // results of primitives are plain tf.Tensor: cast to the rank the checker proved
    const arg = (a: A.Arg) => (a.value.kind === "ident" ? ts(a.value, c) : `${ts(a.value, c)} as ${tensorType(c.a.types.get(a.value))}`);
    return `${moduleRef(m, c)}.forward(${positional.map(arg).join(", ")})`;
  }
  if (!prim) return "undefined";
  if (prim.scalar && c.a.types.get(call)?.t === "float") return scalarCallTs(prim.scalar, call, c);
  if (prim.variadic) {
    const axis = named.get("axis");
    return `F.${prim.runtime}([${positional.map((a) => ts(a.value, c)).join(", ")}]${axis ? `, ${ts(axis.value, c)}` : ""})`;
  }
  // argument expressions by primitive argument name (given or default)
  const argTs = (name: string): string | undefined => {
    const i = prim.args.findIndex((s) => s.name === name);
    const given = named.get(name) ?? (i < positional.length ? positional[i] : undefined);
    if (given) return ts(given.value, c);
    const d = prim.args[i]?.default;
    if (!d) return undefined;
    return d.t === "string" ? JSON.stringify(d.v) : valueToTs(d, c);
  };
  if (m) {
    // a layer with parameters: tensors (and forward-time sizes) go to apply()
    return `${moduleRef(m, c)}.apply(${(prim.layer?.apply ?? []).map((n) => argTs(n)!).join(", ")})`;
  }
  const { name: fn, args: names } = prim.fn ?? { name: prim.runtime, args: prim.args.map((s) => s.name) };
  const list = names.map((n) => argTs(n));
  while (list.length && list[list.length - 1] === undefined) list.pop();
  // an optional argument left out before a given one
  return `F.${fn}(${list.map((x) => x ?? "undefined").join(", ")})`;
}

/** `sqrt(x)` of a number (compiler/primitives: an entry's `scalar`): JavaScript's Math function. */
function scalarCallTs(fn: string, call: A.Call, c: Ctx): string {
  return `Math.${fn}(${ts(call.args[0].value, c)})`;
}

function valueToTs(v: Value, c: Ctx): string {
  return v.t === "int" || v.t === "float" || v.t === "bool" ? (typeof v.v === "object" ? dimTs(v.v, c) : String(v.v)) : "undefined";
}

/** TS for a symbolic dimension (constructor sizes such as a linear's input width). */
function dimTs(d: Dim, c: Ctx): string {
  if (typeof d === "number") return String(d);
  if (d.op === "var") return c.local(d.name);
  if (d.op === "at") return `F.at(${c.local(d.list)}, ${dimTs(d.a, c)})`;
  if (d.op === "len") return `${c.local(d.list)}.length`;
  if (d.op === "first") return `(${c.local(d.loop)} === ${dimTs(d.from, c)} ? ${dimTs(d.a, c)} : ${dimTs(d.b, c)})`;
  const inner = (x: Dim) => (typeof x === "object" && x.op !== "var" ? `(${dimTs(x, c)})` : dimTs(x, c));
  if (d.op === "/") return `F.idiv(${dimTs(d.a, c)}, ${dimTs(d.b, c)})`;
  if (d.op === "div") return `F.floordiv(${dimTs(d.a, c)}, ${dimTs(d.b, c)})`;
  return `${inner(d.a)} ${d.op} ${inner(d.b)}`;
}

function ctorArgsTs(m: ModuleDecl, c: Ctx): string {
  const call = m.call;
  if (m.block) {
    const fields = call.args.filter((a) => a.name).map((a) => `${propName(a.name!)}: ${ts(a.value, c)}`);
    return `{ ${fields.join(", ")} }`;
  }
  const prim = m.prim!;
  const positional = call.args.filter((a) => !a.name);
  const named = new Map(call.args.filter((a) => a.name).map((a) => [a.name!, a]));
  const arg = (name: string): string | undefined => {
    const i = prim.args.findIndex((s) => s.name === name);
    const given = named.get(name) ?? (i >= 0 && i < positional.length ? positional[i] : undefined);
    return given ? ts(given.value, c) : undefined;
  };
  const tensorShape = (name: string): Dim[] => {
    const v = m.args[name];
    return v?.t === "tensor" ? v.shape : [];
  };
  const lastDim = (name: string) => dimTs(tensorShape(name)[tensorShape(name).length - 1], c);
  // state-dict suffixes (`weight_name: "scale"`), the same for every layer
  const names = Object.fromEntries(SUFFIX_ARGS.map((s) => [s.field, named.has(s.arg) ? ts(named.get(s.arg)!.value, c) : undefined]));
  const obj = (o: Record<string, string | undefined>) =>
    `{ ${Object.entries({ ...o, ...names })
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}: ${v}`)
      .join(", ")} }`;
  // the layer's constructor arguments, as its entry in compiler/primitives/ maps them
  const ctor = Object.entries(prim.layer?.ctor ?? {}).map(([field, from]) => [field, typeof from === "string" ? arg(from) : lastDim(from.lastDim)] as const);
  return obj(Object.fromEntries(ctor));
}

function moduleClass(m: ModuleDecl, n: Names): string {
  return m.block ? n.className(m.block.name) : m.prim!.runtime;
}

function guardTs(m: ModuleDecl, c: Ctx): string {
  return m.guards.map((g) => (g.negate ? `!(${ts(g.cond, c)})` : ts(g.cond, c, 3))).join(" && ");
}

/** Names of dim variables the forward body refers to, in the order first read. */
function usedDimVars(a: BlockAnalysis): string[] {
  const read = new Set<string>();
  A.walkStmts(a.block.forward?.body ?? [], (e) => A.exprNames(e, read));
  return [...read].filter((name) => a.dimVars.has(name));
}

/** Variables of every `for` in a forward body (they name modules, so the constructor binds them). */
function forVariables(stmts: A.Stmt[]): string[] {
  return stmts.flatMap((s) => (s.kind === "for" ? [s.variable.name, ...forVariables(s.body)] : s.kind === "if" ? [...forVariables(s.then), ...forVariables(s.else ?? [])] : []));
}

export interface BlockStructures {
  args: InterfaceDeclarationStructure;
  cls: ClassDeclarationStructure;
}

/** What the phases of one block's generation share: the block, its names, its fields and the two contexts of its expressions. */
interface BlockGen {
  a: BlockAnalysis;
  b: A.BlockDecl;
  fwd: NonNullable<A.BlockDecl["forward"]>;
  n: Names;
  /** the class and its args interface */
  name: string;
  argsName: string;
  /** each module's field in the class */
  fields: Map<ModuleDecl, string>;
  /** a spec name as a TypeScript local of this block */
  tsName: (s: string) => string;
  ctorCtx: Ctx;
  fwdCtx: Ctx;
  /** the block's file, for doc comments */
  file: string;
}

/** The names and contexts of a block: its class, its fields, its locals (the constructor's also avoid its own bindings). */
function blockGen(a: BlockAnalysis, n: Names): BlockGen {
  const b = a.block;
  const fwd = b.forward!;
  const locals = new Set([...b.params.map((p) => p.name), ...b.lets.map((l) => l.name)]);
  const fieldList = moduleFields(a.modules.map((m) => (m.shared ? `${m.path}_shared` : m.path)));
  const fields = new Map(a.modules.map((m, i) => [m, fieldList[i]]));
  // names the constructor binds (parameters, lets, loop variables) must also avoid its own bindings
  const ctorNames = new Set([...locals, ...forVariables(fwd.body)]);
  const tsName = (s: string) => n.local(s, ctorNames.has(s));
  const ctorCtx: Ctx = { a, locals, ctor: true, n, fields, local: tsName };
  const fwdCtx: Ctx = { a, locals: new Set([...locals, ...a.dimVars.keys()]), ctor: false, n, fields, local: tsName };
  return { a, b, fwd, n, name: n.className(b.name), argsName: n.argsName(b.name), fields, tsName, ctorCtx, fwdCtx, file: commentText(b.file) };
}

/** The constructor arguments' interface: one readonly property per block parameter (optional with a default). */
function argsInterface({ b, name, argsName, file }: BlockGen): InterfaceDeclarationStructure {
  return {
    kind: tsMorph().StructureKind.Interface,
    name: argsName,
    isExported: true,
    docs: [`Constructor arguments of {@link ${name}} (block \`${b.name}\`, ${file}:${b.span.start.line}).`],
    properties: b.params.map((p) => ({
      name: propName(p.name),
      type: paramTsType(p),
      hasQuestionToken: !!p.default,
      isReadonly: true,
      docs: [commentText(`${p.type ?? "int"}${p.default ? `; default ${exprText(p.default)}` : ""}`)],
    })),
  };
}

/** The class's properties: `p` (parameters with defaults applied, and lets), then one field per module (an array for a loop, null where guarded off). */
function classProperties({ a, b, n, fields, tsName }: BlockGen): OptionalKind<PropertyDeclarationStructure>[] {
  const resolvedType = `{ ${[...b.params.map((p) => `${tsName(p.name)}: ${paramTsType(p)}`), ...b.lets.map((l) => `${tsName(l.name)}: number`)].join("; ")} }`;
  const properties: OptionalKind<PropertyDeclarationStructure>[] = [
    { name: "p", type: `Readonly<${resolvedType}>`, isReadonly: true, docs: ["Parameters with defaults applied, and derived values."] },
  ];
  for (const m of a.modules) {
    const cls = moduleClass(m, n);
    const nullable = m.guards.length > 0;
    const elem = nullable ? `${cls} | null` : cls;
    properties.push({
      name: fields.get(m)!,
      type: m.loops.reduce((t) => `ReadonlyArray<${t}>`, elem),
      isReadonly: true,
      docs: [`${m.anonymous ? "(no parameters, unnamed)" : m.shared ? `shares the parameters of \`${m.path}\`` : `\`${m.path}${m.loops.map((l) => `.{${l.variable.name}}`).join("")}\``}: ${m.block ? `block ${m.block.name}` : m.prim!.name}${m.guards.length ? ` (only when ${commentText(m.guards.map((g) => (g.negate ? `!(${exprText(g.cond)})` : exprText(g.cond))).join(" && "))})` : ""}`],
    });
  }
  return properties;
}

/** The constructor's statement creating one module's field: one module, or an array over its loop's range (nested, one per loop); null where its guards are false. */
function writeModule(w: CodeBlockWriter, m: ModuleDecl, k: BlockGen): void {
  const { n, fields, tsName, ctorCtx } = k;
  const cls = moduleClass(m, n);
  const field = fields.get(m)!;
  if (!m.loops.length) {
    const make = `new ${cls}(${m.shared ? "store.shared()" : "store"}, ${m.anonymous ? "path" : `joinName(path, ${JSON.stringify(m.path)})`}, ${ctorArgsTs(m, ctorCtx)})`;
    w.writeLine(`this.${field} = ${m.guards.length ? `${guardTs(m, ctorCtx)} ? ${make} : null` : make};`);
    return;
  }
  const ivs = m.loops.map((l) => tsName(l.variable.name));
  const pathExpr = m.anonymous ? "path" : m.shared ? `joinName(path, ${JSON.stringify(m.path)})` : `joinName(path, \`${m.path}${ivs.map((iv) => `.\${${iv}}`).join("")}\`)`;
  const make = `new ${cls}(${m.shared ? "store.shared()" : "store"}, ${pathExpr}, ${ctorArgsTs(m, ctorCtx)})`;
  w.write(`this.${field} = `);
  writeModuleArray(w, m.loops, ivs, m.guards.length ? `${guardTs(m, ctorCtx)} ? ${make} : null` : make, ctorCtx);
  w.write(";").newLine();
}

/** `Array.from` over the first loop's range, binding its variable, around the next loop's array or (innermost) `body`. */
function writeModuleArray(w: CodeBlockWriter, loops: A.ForStmt[], ivs: string[], body: string, c: Ctx): void {
  const from = ts(loops[0].from, c);
  const to = ts(loops[0].to, c, 5);
  w.write(`Array.from({ length: ${from === "0" ? to : `${to} - (${from})`} }, (_, k) => {`).newLine();
  w.indent(() => {
    w.writeLine(`const ${ivs[0]} = ${from === "0" ? "k" : `${from} + k`};`);
    if (loops.length === 1) {
      w.writeLine(`return ${body};`);
      return;
    }
    w.write("return ");
    writeModuleArray(w, loops.slice(1), ivs.slice(1), body, c);
    w.write(";").newLine();
  });
  w.write("})");
}

/** The constructor: parameters (defaults applied), lets, `requires` checks, `this.p`, then every module. */
function writeConstructor(w: CodeBlockWriter, k: BlockGen): void {
  const { a, b, tsName, ctorCtx } = k;
  for (const p of b.params) {
    const def = p.default ? ` ?? ${ts(p.default, ctorCtx)}` : "";
    w.writeLine(`const ${tsName(p.name)} = args.${propName(p.name)}${def};`);
  }
  for (const l of b.lets) w.writeLine(`const ${tsName(l.name)} = ${ts(l.value, ctorCtx)};`);
  for (const r of b.requires) w.writeLine(`check(${ts(r.cond, ctorCtx)}, ${JSON.stringify(b.name)}, ${JSON.stringify(r.message ?? exprText(r.cond))});`);
  w.writeLine(`this.p = { ${[...b.params.map((p) => tsName(p.name)), ...b.lets.map((l) => tsName(l.name))].join(", ")} };`);
  for (const m of a.modules) writeModule(w, m, k);
}

/** The forward pass's hoisted locals, by name with their TS type: every assigned name that is not an input (tf.Tensor where assignments disagree). */
function hoistedLocals(a: BlockAnalysis, inputs: Set<string>): Map<string, string> {
  const hoisted = new Map<string, string>();
  for (const [stmt, vals] of a.assigns) {
    stmt.targets.forEach((t, i) => {
      if (inputs.has(t.name)) return;
      const ty = tensorType(vals[i]);
      const prev = hoisted.get(t.name);
      hoisted.set(t.name, prev && prev !== ty ? "tf.Tensor" : ty);
    });
  }
  return hoisted;
}

/** What writing the forward body needs: the block, its input names and the hoisted locals' types. */
interface FwdGen {
  k: BlockGen;
  inputs: Set<string>;
  hoisted: Map<string, string>;
}

/** An assignment, cast to its target's type (an input's, or the hoisted local's), with its shapes as a comment. */
function writeAssign(w: CodeBlockWriter, s: A.Assign, { k, inputs, hoisted }: FwdGen): void {
  const { a, fwd, tsName, fwdCtx } = k;
  const vals = a.assigns.get(s) ?? [];
  const comment = vals.map(shapeComment).join(", ");
  const inputType = (t: string) => tensorType(a.inputs[fwd.inputs.findIndex((x) => x.name === t)]);
  if (s.targets.length === 1) {
    const t = s.targets[0].name;
    const ty = inputs.has(t) ? inputType(t) : hoisted.get(t)!;
    w.writeLine(`${tsName(t)} = ${ts(s.value, fwdCtx)} as ${ty}; // ${comment}`);
  } else {
    const types = s.targets.map((t, i) => (inputs.has(t.name) ? inputType(t.name) : tensorType(vals[i])));
    w.writeLine(`[${s.targets.map((t) => tsName(t.name)).join(", ")}] = ${ts(s.value, fwdCtx)} as [${types.join(", ")}]; // ${comment}`);
  }
}

/** Forward statements: assignments, `if`, `for` and `return` (cast to the outputs' types). */
function writeStmts(w: CodeBlockWriter, stmts: A.Stmt[], f: FwdGen): void {
  const { a, tsName, fwdCtx } = f.k;
  for (const s of stmts) {
    switch (s.kind) {
      case "assign":
        writeAssign(w, s, f);
        break;
      case "method":
        w.writeLine(`${ts(s.call, fwdCtx)};`);
        break;
      case "if":
        w.write(`if (${ts(s.cond, fwdCtx)}) `).inlineBlock(() => writeStmts(w, s.then, f));
        if (s.else) w.write(" else ").inlineBlock(() => writeStmts(w, s.else!, f));
        w.newLine();
        break;
      case "for": {
        const iv = tsName(s.variable.name);
        w.write(`for (let ${iv} = ${ts(s.from, fwdCtx)}; ${iv} < ${ts(s.to, fwdCtx, 5)}; ${iv}++) `).inlineBlock(() => writeStmts(w, s.body, f));
        w.newLine();
        break;
      }
      case "return": {
        const outs = a.outputs;
        if (s.values.length === 1) w.writeLine(`return ${ts(s.values[0], fwdCtx)} as ${tensorType(outs[0])}; // ${shapeComment(outs[0])}`);
        else w.writeLine(`return [${s.values.map((v, i) => `${ts(v, fwdCtx)} as ${tensorType(outs[i])}`).join(", ")}]; // ${outs.map(shapeComment).join(", ")}`);
        break;
      }
    }
  }
}

/** `forward`'s body: the parameters from `this.p`, the dim variables from the inputs' shapes, the hoisted locals, then the statements. */
function writeForward(w: CodeBlockWriter, k: BlockGen): void {
  const { a, b, fwd, tsName } = k;
  const names = [...b.params.map((p) => p.name), ...b.lets.map((l) => l.name)].map(tsName);
  if (names.length) w.writeLine(`const { ${names.join(", ")} } = this.p;`);
  for (const d of usedDimVars(a)) {
    const at = a.dimVars.get(d)!;
    w.writeLine(`const ${tsName(d)} = ${tsName(fwd.inputs[at.input].name)}.shape[${at.axis}];`);
  }
  const inputs = new Set(fwd.inputs.map((i) => i.name));
  const hoisted = hoistedLocals(a, inputs);
  for (const [h, ty] of hoisted) w.writeLine(`let ${tsName(h)}!: ${ty};`);
  writeStmts(w, fwd.body, { k, inputs, hoisted });
}

/** The transform: block analysis -> interface + class structures. `n` names the package's classes (default: this block alone). */
export function generateBlock(a: BlockAnalysis, n: Names = new Names([a.block.name, ...a.modules.flatMap((m) => (m.block ? [m.block.name] : []))])): BlockStructures {
  const k = blockGen(a, n);
  const { b, fwd, tsName } = k;
  const outType = a.outputs.length === 1 ? tensorType(a.outputs[0]) : `[${a.outputs.map(tensorType).join(", ")}]`;
  const cls: ClassDeclarationStructure = {
    kind: tsMorph().StructureKind.Class,
    name: k.name,
    isExported: true,
    docs: [`Block \`${b.name}\` (${k.file}:${b.span.start.line}).`],
    properties: classProperties(k),
    ctors: [
      {
        parameters: [
          { name: "store", type: "ParamStore" },
          { name: "path", type: "string" },
          { name: "args", type: k.argsName },
        ],
        docs: ["@param store where parameters are created, by state-dict name\n@param path this module's state-dict prefix (\"\" at the root)"],
        statements: (w) => writeConstructor(w, k),
      },
    ],
    methods: [
      {
        name: "forward",
        parameters: fwd.inputs.map((inp, i) => ({ name: tsName(inp.name), type: `${tensorType(a.inputs[i])} /* ${shapeComment(a.inputs[i])} */` })),
        returnType: `${outType} /* ${a.outputs.map(shapeComment).join(", ")} */`,
        statements: (w) => writeForward(w, k),
      },
    ],
  };
  return { args: argsInterface(k), cls };
}
