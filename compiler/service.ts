/**
 * The compiler as a language service (what `sdc lsp` serves): for one file, the diagnostics of
 * the very `compile()` run that `sdc compile` makes, every value the checker computed (symbolic
 * per block, concrete from the spec), and from those hover text, definitions and completions.
 * Pure: files come through a SourceHost (the server's open documents over the disk).
 */
import * as A from "./ast.ts";
import { exprLabel, exprText, type ValueObserver } from "./check/index.ts";
import type { Diagnostic, Span } from "./diagnostics.ts";
import { checkBlocks, compile } from "./index.ts";
import type { IR, ModuleNode } from "../ir/ir.ts";
import { type PrimArg, PRIMITIVES, type Primitive, SHARE_ARG, SUFFIX_ARGS } from "./primitives.ts";
import type { Program, SourceHost } from "./program.ts";
import { SECTIONS } from "./spec.ts";
import { shapeToString, typeName, type Value, valueToString } from "./values.ts";

/** What the checker computed for one expression (by source range), over all its evaluations. */
export interface ValueRecord {
  symbolic?: Value;
  /** distinct concrete values, in the order first seen (one per distinct block instance) */
  concrete: Value[];
  /** for a named call: the modules it built (state-dict path, parameters), one per instance */
  modules: ModuleNode[];
}

export interface Analysis {
  file: string;
  /** the spec compiled for this file: the file itself, or a spec that imports it (a library) */
  via?: string;
  program: Program;
  /** every diagnostic of the compile, in any file of the program */
  diagnostics: Diagnostic[];
  ir?: IR;
  values: Map<string, ValueRecord>;
}

const key = (s: Span) => `${s.file}\u0000${s.start.offset}\u0000${s.end.offset}`;

export function valueText(v: Value): string {
  switch (v.t) {
    case "tensor":
      return `${v.dtype === "int32" ? "int32" : ""}${shapeToString(v.shape)}`;
    case "tuple":
      return `(${v.items.map(valueText).join(", ")})`;
    case "list":
      return `[${v.items.map(valueText).join(", ")}]`;
    default:
      return valueToString(v);
  }
}

function recorder(values: Map<string, ValueRecord>): ValueObserver {
  return (e, v, at) => {
    const k = key(e.span);
    let r = values.get(k);
    if (!r) values.set(k, (r = { concrete: [], modules: [] }));
    if (at.symbolic) r.symbolic ??= v;
    else {
      const t = valueText(v);
      if (!r.concrete.some((c) => valueText(c) === t)) r.concrete.push(v);
      if (at.module && !r.modules.includes(at.module)) r.modules.push(at.module);
    }
  };
}

/**
 * Check `file` as `sdc compile FILE` does (no code generated). A file without a spec (a block
 * library) is checked through the first of `context` (spec files) whose program includes it, so
 * its values are concrete too; without one, its blocks are checked on their own.
 */
export function analyze(file: string, host: SourceHost, opts: { variant?: string; context?: string[] | (() => string[]) } = {}): Analysis {
  const values = new Map<string, ValueRecord>();
  const r = compile(file, host, { variant: opts.variant, generate: false, observe: recorder(values) });
  const ast = r.program.files.get(file);
  if (!ast || ast.specs.length) return { file, program: r.program, diagnostics: r.diagnostics, ir: r.ir, values };
  const context = typeof opts.context === "function" ? opts.context() : (opts.context ?? []);
  for (const c of context) {
    if (c === file) continue;
    const vs = new Map<string, ValueRecord>();
    const cr = compile(c, host, { generate: false, observe: recorder(vs) });
    if (!cr.program.files.has(file)) continue;
    // the library's own program (its imports) is what definitions and completions walk
    const own = checkBlocks(file, host);
    return { file, via: c, program: own.program, diagnostics: dedupe([...own.diagnostics, ...cr.diagnostics.filter((d) => d.span.file === file)]), ir: cr.ir, values: vs };
  }
  const own = checkBlocks(file, host, { observe: recorder(values) });
  return { file, program: own.program, diagnostics: own.diagnostics, values };
}

function dedupe(ds: Diagnostic[]): Diagnostic[] {
  const seen = new Set<string>();
  return ds.filter((d) => {
    const k = `${d.code}|${key(d.span)}|${d.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

// ------------------------------------------------------------------ what is under the cursor

export type Hit =
  | { kind: "expr"; span: Span; e: A.Expr }
  | { kind: "callee"; span: Span; call: A.Call }
  | { kind: "label"; span: Span; call: A.Call }
  | { kind: "target"; span: Span; assign: A.Assign; index: number }
  | { kind: "loopvar"; span: Span; stmt: A.ForStmt }
  | { kind: "param"; span: Span; param: A.ParamDecl; owner: A.BlockDecl | A.SpecDecl }
  | { kind: "let"; span: Span; decl: A.LetDecl }
  | { kind: "input"; span: Span; input: A.TensorParam }
  | { kind: "setting"; span: Span; section: A.Section; setting: A.Setting }
  | { kind: "section"; span: Span; section: A.Section }
  | { kind: "block"; span: Span; block: A.BlockDecl }
  | { kind: "override"; span: Span; override: A.Override }
  | { kind: "import"; span: Span; decl: A.ImportDecl };

/** Every hover target of a file, in source order (outer before inner; a call's callee and label before its arguments). */
export function hits(f: A.SourceFile): Hit[] {
  const out: Hit[] = [];
  const expr = (root: A.Expr | undefined): void => {
    if (!root) return;
    A.walkExpr(root, (e) => {
      out.push({ kind: "expr", span: e.span, e });
      if (e.kind !== "call") return;
      out.push({ kind: "callee", span: e.calleeSpan, call: e });
      if (e.label) out.push({ kind: "label", span: e.label.span, call: e });
    });
  };
  const stmts = (ss: A.Stmt[]): void =>
    A.walkStmts(ss, expr, (s) => {
      if (s.kind === "assign") s.targets.forEach((t, index) => out.push({ kind: "target", span: t.span, assign: s, index }));
      else if (s.kind === "for") out.push({ kind: "loopvar", span: s.variable.span, stmt: s });
    });
  const params = (ps: A.ParamDecl[], owner: A.BlockDecl | A.SpecDecl) =>
    ps.forEach((p) => {
      out.push({ kind: "param", span: p.nameSpan, param: p, owner });
      expr(p.default);
    });
  const lets = (ls: A.LetDecl[]) =>
    ls.forEach((l) => {
      out.push({ kind: "let", span: l.nameSpan, decl: l });
      expr(l.value);
    });
  for (const i of f.imports) out.push({ kind: "import", span: i.span, decl: i });
  for (const b of f.blocks) {
    out.push({ kind: "block", span: b.nameSpan, block: b });
    params(b.params, b);
    lets(b.lets);
    b.requires.forEach((r) => expr(r.cond));
    if (b.forward) {
      for (const i of b.forward.inputs) {
        out.push({ kind: "input", span: i.nameSpan, input: i });
        expr(i.shape);
      }
      b.forward.outputs.forEach(expr);
      stmts(b.forward.body);
    }
  }
  for (const s of f.specs) {
    params(s.params, s);
    lets(s.lets);
    s.requires.forEach((r) => expr(r.cond));
    expr(s.network);
    for (const sec of s.sections) {
      out.push({ kind: "section", span: sec.nameSpan, section: sec });
      for (const st of sec.settings) {
        out.push({ kind: "setting", span: st.keySpan, section: sec, setting: st });
        expr(st.value);
      }
    }
    for (const v of s.variants) for (const o of v.overrides) {
      out.push({ kind: "override", span: o.nameSpan, override: o });
      expr(o.value);
    }
  }
  return out;
}

/** The innermost hover target at `offset` (a cursor at a word's end still counts). */
export function hitAt(f: A.SourceFile, offset: number): Hit | undefined {
  let best: Hit | undefined;
  for (const h of hits(f)) {
    if (h.span.start.offset > offset || h.span.end.offset < offset) continue;
    if (!best || h.span.end.offset - h.span.start.offset <= best.span.end.offset - best.span.start.offset) best = h;
  }
  return best;
}

// ------------------------------------------------------------------ hover

export function primitiveSignature(p: Primitive): string {
  if (p.variadic) return `${p.name}(x1, x2, ...${p.args.length ? ", " + p.args.map(argSig).join(", ") : ""})`;
  return `${p.name}(${p.args.map(argSig).join(", ")})`;
}

function argSig(a: PrimArg): string {
  return `${a.name}${a.optional ? "?" : ""}: ${a.type}${a.default ? ` = ${valueText(a.default)}` : ""}`;
}

export function blockSignature(b: A.BlockDecl): string {
  const params = b.params.map((p) => `${p.name}: ${p.type ?? "int"}${p.default ? ` = ${exprText(p.default)}` : ""}`).join(", ");
  const fwd = b.forward;
  const sig = fwd ? `\n  forward(${fwd.inputs.map((i) => `${i.name}: ${exprText(i.shape)}`).join(", ")}) -> ${fwd.outputs.length === 1 ? exprText(fwd.outputs[0]) : `(${fwd.outputs.map(exprText).join(", ")})`}` : "";
  return `block ${b.name}(${params})${sig}`;
}

const fmt = (n: number) => n.toLocaleString("en-US");
const code = (s: string) => "```mdl\n" + s + "\n```";

/** "[B, N, width] = [B, 16, 384]": the symbolic value, then the distinct concrete ones. */
function typeLine(name: string, r: ValueRecord | undefined): string | undefined {
  if (!r || (!r.symbolic && !r.concrete.length)) return undefined;
  const base = r.symbolic ?? r.concrete[0];
  const left = base.t === "tensor" || base.t === "tuple" || base.t === "list" ? valueText(base) : typeName(base);
  const rights = r.concrete.map(valueText).filter((t) => t !== left);
  if (r.symbolic && r.symbolic.t !== "tensor" && r.symbolic.t !== "tuple" && r.symbolic.t !== "list" && !r.concrete.length) {
    const sv = valueText(r.symbolic);
    if (sv !== name) rights.push(sv);
  }
  const shown = rights.slice(0, 4).join(" | ") + (rights.length > 4 ? ` | ... (${rights.length} values)` : "");
  return `${name}: ${left}${rights.length ? ` = ${shown}` : ""}`;
}

function item(v: Value, i: number): Value {
  return v.t === "tuple" ? (v.items[i] ?? v) : v;
}

function paramsUnder(ir: IR | undefined, path: string): IR["parameters"] {
  if (!ir) return [];
  return ir.parameters.filter((p) => p.name === path || p.name.startsWith(path + "."));
}

function callHover(a: Analysis, call: A.Call): string {
  const prim = PRIMITIVES[call.callee];
  const block = a.program.blocks.get(call.callee);
  const parts: string[] = [];
  if (prim) parts.push(code(primitiveSignature(prim)), prim.doc);
  else if (block) parts.push(code(blockSignature(block)));
  else parts.push(`unknown block or primitive \`${call.callee}\``);
  const r = a.values.get(key(call.span));
  const t = typeLine(call.label ? exprLabel(call.label) : call.callee, r && { ...r, modules: [] });
  if (t) parts.push(code(t));
  const mods = r?.modules ?? [];
  if (mods.length) {
    const sizes = [...new Set(mods.map((m) => m.params))];
    const paths = mods.length === 1 ? `\`${mods[0].path}\`` : `\`${mods[0].path}\` ... \`${mods[mods.length - 1].path}\` (${mods.length} instances)`;
    parts.push(`state dict: ${paths}; parameters: ${sizes.map(fmt).join(" / ")}${mods.length > 1 ? (sizes.length === 1 ? " each" : " (instances differ)") : ""}`);
    const ws = paramsUnder(a.ir, mods[0].path);
    if (prim && ws.length) parts.push(ws.map((w) => `- \`${w.name}\` [${w.shape.join(", ")}]${w.buffer ? " (fixed buffer)" : ""}`).join("\n"));
  } else if (call.label && !a.ir) parts.push(`state-dict name: \`${exprLabel(call.label)}\` (parameter counts are known once a spec that uses this block compiles)`);
  return parts.join("\n\n");
}

/** Markdown for the hover at `offset` in `a.file`, with the range it applies to. */
export function hoverAt(a: Analysis, offset: number): { markdown: string; span: Span } | undefined {
  const f = a.program.files.get(a.file);
  if (!f) return undefined;
  const h = hitAt(f, offset);
  if (!h) return undefined;
  const via = a.via ? `\n\n(values from ${a.via})` : "";
  const wrap = (s: string | undefined) => (s ? { markdown: s + via, span: h.span } : undefined);
  switch (h.kind) {
    case "expr": {
      if (h.e.kind === "call") return wrap(callHover(a, h.e));
      const t = typeLine(h.e.kind === "ident" ? h.e.name : clip(exprText(h.e)), a.values.get(key(h.e.span)));
      return wrap(t && code(t));
    }
    case "callee":
    case "label":
      return wrap(callHover(a, h.call));
    case "target": {
      const r = a.values.get(key(h.assign.value.span));
      const rec = r && { symbolic: r.symbolic && item(r.symbolic, h.index), concrete: r.concrete.map((v) => item(v, h.index)), modules: [] };
      const dedup = rec && { ...rec, concrete: rec.concrete.filter((v, i) => rec.concrete.findIndex((w) => valueText(w) === valueText(v)) === i) };
      const t = typeLine(h.assign.targets[h.index].name, dedup);
      return wrap(t && code(t));
    }
    case "loopvar":
      return wrap(code(`${h.stmt.variable.name}: int in ${exprText(h.stmt.from)} .. ${exprText(h.stmt.to)}`));
    case "param": {
      const p = h.param;
      const isSpec = !("forward" in h.owner) && "sections" in h.owner;
      const final = isSpec && a.ir ? a.ir.spec.params[p.name] : undefined;
      const decl = `${isSpec ? "param " : ""}${p.name}: ${p.type ?? "int"}${p.default ? ` = ${exprText(p.default)}` : ""}`;
      return wrap(code(decl) + (final !== undefined && a.ir ? `\n\nin ${a.ir.spec.name}: \`${p.name} = ${final}\`` : "") + (isSpec ? "" : `\n\nparameter of block \`${h.owner.name}\``));
    }
    case "let": {
      const t = typeLine(h.decl.name, a.values.get(key(h.decl.value.span)));
      return wrap(code(`let ${h.decl.name} = ${clip(exprText(h.decl.value))}`) + (t ? "\n\n" + code(t) : ""));
    }
    case "input":
      return wrap(code(`${h.input.name}: ${exprText(h.input.shape)}`) + "\n\nforward input");
    case "setting": {
      const spec = SECTIONS[h.section.name]?.[h.setting.key];
      if (!spec) return wrap(`unknown setting \`${h.setting.key}\` in \`${h.section.name}\``);
      const range = spec.min !== undefined || spec.max !== undefined ? ` in [${spec.min ?? "-inf"}, ${spec.max ?? "inf"}]` : "";
      return wrap(code(`${h.section.name}.${h.setting.key}: ${spec.kind === "enum" ? spec.values!.join(" | ") : spec.kind}${range}`) + `\n\n${spec.doc}`);
    }
    case "section": {
      const sec = SECTIONS[h.section.name];
      return wrap(sec ? `section \`${h.section.name}\`: ${Object.keys(sec).join(", ")}` : `unknown section \`${h.section.name}\``);
    }
    case "block": {
      const inst = a.ir ? instances(a.ir.modules, h.block.name) : [];
      const sizes = [...new Set(inst.map((m) => m.params))];
      return wrap(code(blockSignature(h.block)) + (inst.length ? `\n\nin ${a.ir!.spec.name}: ${inst.length} instance${inst.length === 1 ? "" : "s"} (${inst.slice(0, 3).map((m) => `\`${m.path || "(network)"}\``).join(", ")}${inst.length > 3 ? ", ..." : ""}), ${sizes.map(fmt).join(" / ")} parameters${inst.length > 1 ? " each" : ""}` : ""));
    }
    case "override": {
      const final = a.ir?.spec.params[h.override.name];
      return wrap(code(`${h.override.name} = ${clip(exprText(h.override.value))}`) + (final !== undefined && a.ir?.spec.variant ? `\n\nin ${a.ir.spec.name}: \`${final}\`` : ""));
    }
    case "import":
      return wrap(`import of \`${h.decl.path}\``);
  }
}

function clip(s: string): string {
  return s.length > 60 ? s.slice(0, 57) + "..." : s;
}

function instances(ms: ModuleNode[], kind: string): ModuleNode[] {
  const out: ModuleNode[] = [];
  const walk = (m: ModuleNode) => {
    if (m.kind === kind) out.push(m);
    m.children.forEach(walk);
  };
  ms.forEach(walk);
  return out;
}

// ------------------------------------------------------------------ definition

/** Where the name at `offset` is declared: a block (in any file), an import's file, a parameter, a let, an input or the first assignment. */
export function definitionAt(a: Analysis, offset: number, host: SourceHost): Span | undefined {
  const f = a.program.files.get(a.file);
  if (!f) return undefined;
  const h = hitAt(f, offset);
  if (!h) return undefined;
  const top = (file: string): Span => ({ file, start: { offset: 0, line: 1, column: 1 }, end: { offset: 0, line: 1, column: 1 } });
  if (h.kind === "import") return top(host.resolve(a.file, h.decl.path));
  if (h.kind === "callee" || (h.kind === "expr" && h.e.kind === "call")) {
    const call = h.kind === "callee" ? h.call : (h.e as A.Call);
    return a.program.blocks.get(call.callee)?.nameSpan;
  }
  if (h.kind === "expr" && h.e.kind === "ident") return nameDefinition(f, h.e.name, offset);
  if (h.kind === "override") return nameDefinition(f, h.override.name, offset);
  return undefined;
}

function within(s: Span, offset: number): boolean {
  return s.start.offset <= offset && offset <= s.end.offset;
}

function nameDefinition(f: A.SourceFile, name: string, offset: number): Span | undefined {
  for (const b of f.blocks) {
    if (!within(b.span, offset)) continue;
    const p = b.params.find((x) => x.name === name) ?? b.lets.find((x) => x.name === name) ?? b.forward?.inputs.find((x) => x.name === name);
    if (p) return p.nameSpan;
    let first: Span | undefined;
    const walk = (ss: A.Stmt[]) => {
      for (const s of ss) {
        if (first) return;
        if (s.kind === "assign") first = s.targets.find((t) => t.name === name)?.span;
        else if (s.kind === "for") {
          if (s.variable.name === name && within(s.span, offset)) first = s.variable.span;
          else walk(s.body);
        } else if (s.kind === "if") {
          walk(s.then);
          walk(s.else ?? []);
        }
      }
    };
    walk(b.forward?.body ?? []);
    return first;
  }
  for (const s of f.specs) {
    if (!within(s.span, offset)) continue;
    return (s.params.find((x) => x.name === name) ?? s.lets.find((x) => x.name === name))?.nameSpan;
  }
  return undefined;
}

// ------------------------------------------------------------------ completion

export interface CompletionEntry {
  label: string;
  kind: "primitive" | "block" | "parameter" | "setting" | "section" | "keyword" | "argument" | "value";
  /** the signature or type */
  detail: string;
  doc?: string;
  /** text to insert when it differs from the label */
  insert?: string;
}

const SPEC_KEYWORDS = ["param", "let", "require", "network", "variant", "import"];
const BLOCK_KEYWORDS = ["let", "require", "forward", "for", "in", "if", "else", "return", "as", "true", "false"];

/** What surrounds `offset` in raw text (which may not parse): the innermost open `{` and `(`. */
export function completionContext(text: string, offset: number): { braceWord?: string; callee?: string; keyPosition: boolean; prefix: string } {
  let depthCurly = 0;
  let depthParen = 0;
  let braceWord: string | undefined;
  let callee: string | undefined;
  const wordBefore = (i: number) => {
    let j = i - 1;
    while (j >= 0 && /\s/.test(text[j])) j--;
    if (text[j] === '"') {
      j--;
      while (j >= 0 && text[j] !== '"') j--;
      j--;
      while (j >= 0 && /\s/.test(text[j])) j--;
      // `variant NAME "doc" {` and `spec NAME "title" {`: the keyword two words back
    }
    let k = j;
    while (k >= 0 && /[A-Za-z0-9_]/.test(text[k])) k--;
    return text.slice(k + 1, j + 1);
  };
  for (let i = offset - 1; i >= 0 && braceWord === undefined; i--) {
    const c = text[i];
    if (c === "}") depthCurly++;
    else if (c === "{") {
      if (depthCurly === 0) braceWord = wordBefore(i);
      else depthCurly--;
    } else if (c === ")") depthParen++;
    else if (c === "(" && callee === undefined) {
      if (depthParen === 0) callee = wordBefore(i) || undefined;
      else depthParen--;
    }
  }
  let p = offset;
  while (p > 0 && /[A-Za-z0-9_]/.test(text[p - 1])) p--;
  const prefix = text.slice(p, offset);
  let q = p - 1;
  while (q >= 0 && (text[q] === " " || text[q] === "\t")) q--;
  const keyPosition = q < 0 || "\n{;,".includes(text[q]);
  return { braceWord, callee, keyPosition, prefix };
}

/**
 * Completions at `offset` of `text` (the document as typed), using the last analysis that parsed
 * (`a`) for blocks and parameters: settings inside a section, named arguments inside a call, and
 * primitives, blocks, parameters and lets in expressions.
 */
export function completionsAt(a: Analysis | undefined, text: string, offset: number): CompletionEntry[] {
  const ctx = completionContext(text, offset);
  const out: CompletionEntry[] = [];
  const sec = ctx.braceWord !== undefined ? SECTIONS[ctx.braceWord] : undefined;
  if (sec && ctx.callee === undefined) {
    if (ctx.keyPosition) {
      for (const [k, s] of Object.entries(sec)) out.push({ label: k, kind: "setting", detail: `${ctx.braceWord}.${k}: ${s.kind === "enum" ? s.values!.join(" | ") : s.kind}`, doc: s.doc, insert: `${k}: ` });
      return out;
    }
    // a value: enum values of the setting being written
    const line = text.slice(text.lastIndexOf("\n", offset - 1) + 1, offset);
    const m = /([A-Za-z_][A-Za-z0-9_]*)\s*:\s*[A-Za-z0-9_]*$/.exec(line);
    const s = m ? sec[m[1]] : undefined;
    if (s?.values) for (const v of s.values) out.push({ label: v, kind: "value", detail: `${ctx.braceWord}.${m![1]}`, doc: s.doc });
  }
  const blocks = a ? [...a.program.blocks.values()] : [];
  if (ctx.callee !== undefined) {
    const prim = PRIMITIVES[ctx.callee];
    const block = blocks.find((b) => b.name === ctx.callee);
    if (prim) for (const arg of prim.args) out.push({ label: arg.name, kind: "argument", detail: argSig(arg), doc: arg.doc, insert: `${arg.name}: ` });
    if (prim?.weights) for (const r of SUFFIX_ARGS) out.push({ label: r.arg, kind: "argument", detail: `${r.arg}: string = ${JSON.stringify(r.suffix)}`, doc: r.doc, insert: `${r.arg}: ` });
    if (prim?.weights) out.push({ label: SHARE_ARG.arg, kind: "argument", detail: `${SHARE_ARG.arg}: string`, doc: SHARE_ARG.doc, insert: `${SHARE_ARG.arg}: ` });
    if (block) for (const p of block.params) out.push({ label: p.name, kind: "argument", detail: `${p.name}: ${p.type ?? "int"}${p.default ? ` = ${exprText(p.default)}` : ""}`, doc: `parameter of block ${block.name}`, insert: `${p.name}: ` });
  }
  const inSpec = ctx.braceWord !== undefined && a?.program.files.get(a.file)?.specs.some((s) => s.name === ctx.braceWord);
  if (inSpec && ctx.keyPosition && ctx.callee === undefined) {
    for (const name of Object.keys(SECTIONS)) out.push({ label: name, kind: "section", detail: `section ${name} { ... }`, doc: `settings: ${Object.keys(SECTIONS[name]).join(", ")}`, insert: `${name} { ` });
    for (const k of SPEC_KEYWORDS) out.push({ label: k, kind: "keyword", detail: "keyword" });
  }
  for (const p of Object.values(PRIMITIVES)) out.push({ label: p.name, kind: "primitive", detail: primitiveSignature(p), doc: p.doc });
  for (const b of blocks) out.push({ label: b.name, kind: "block", detail: blockSignature(b), doc: `block in ${b.file}` });
  // names in scope where the cursor is (from the last parse)
  const f = a?.program.files.get(a.file);
  for (const b of f?.blocks ?? []) {
    if (!within(b.span, offset)) continue;
    for (const p of b.params) out.push({ label: p.name, kind: "parameter", detail: `${p.name}: ${p.type ?? "int"}`, doc: `parameter of block ${b.name}` });
    for (const l of b.lets) out.push({ label: l.name, kind: "parameter", detail: `let ${l.name} = ${clip(exprText(l.value))}` });
    for (const i of b.forward?.inputs ?? []) out.push({ label: i.name, kind: "parameter", detail: `${i.name}: ${exprText(i.shape)}`, doc: "forward input" });
    for (const k of BLOCK_KEYWORDS) out.push({ label: k, kind: "keyword", detail: "keyword" });
  }
  for (const s of f?.specs ?? []) {
    if (!within(s.span, offset)) continue;
    for (const p of s.params) out.push({ label: p.name, kind: "parameter", detail: `param ${p.name}${p.default ? ` = ${exprText(p.default)}` : ""}`, doc: a?.ir ? `in ${a.ir.spec.name}: ${a.ir.spec.params[p.name]}` : undefined });
    for (const l of s.lets) out.push({ label: l.name, kind: "parameter", detail: `let ${l.name} = ${clip(exprText(l.value))}` });
  }
  const seen = new Set<string>();
  return out.filter((c) => {
    const k = `${c.kind}:${c.label}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
