/**
 * The compiler, one step per phase:
 *   bytes --decodeSource/lex--> tokens --parse--> AST --loadProgram--> program (imports)
 *   --evaluateSpec--> IR (concrete shapes, exact parameters) --analyzeBlock--> typed blocks
 *   --validateIr (ajv)--> --generateFiles--> [path, contents][]
 * Every phase is pure; the host (file reads) is passed in and the CLI writes the files.
 */
import type * as A from "./ast.ts";
import { Checker, fmtCount, type ValueObserver } from "./check/index.ts";
import { generateFiles, type GeneratedFile, reachableBlocks } from "./codegen/files.ts";
import { type Diagnostic, diag, formatDiagnostic, hasErrors, summarizeDiagnostics } from "./diagnostics.ts";
import type { IR } from "../ir/ir.ts";
import { parseExpression } from "./parser.ts";
import { loadProgram, type Program, type SourceHost } from "./program.ts";
import { evaluateSpec, findSpec } from "./spec.ts";
import { validateIr } from "../ir/validate.ts";
import { unusedInBlock, unusedInSpec } from "./lint.ts";

export { formatDiagnostic, summarizeDiagnostics, type Diagnostic } from "./diagnostics.ts";
export type { ValueObserver } from "./check/index.ts";

/**
 * The diagnostics of a file of blocks only (a library such as specs/lib/mmdit.mdl): loading and
 * the symbolic check of every block, as `compile` runs them before it elaborates a spec.
 */
export function checkBlocks(entry: string, host: SourceHost, opts: { observe?: ValueObserver } = {}): { program: Program; diagnostics: Diagnostic[] } {
  const program = loadProgram(entry, host);
  if (hasErrors(program.diagnostics)) return { program, diagnostics: [...program.diagnostics] };
  const checker = new Checker(program.blocks);
  checker.observe = opts.observe;
  for (const b of program.blocks.values()) checker.analyzeBlock(b);
  return { program, diagnostics: [...program.diagnostics, ...checker.diagnostics] };
}
export type { IR } from "../ir/ir.ts";
export { loadProgram, memoryHost, type SourceHost } from "./program.ts";

export interface CompileOptions {
  /** spec name inside the file (default: the first) */
  spec?: string;
  variant?: string;
  /** `name=value` overrides from the command line */
  sets?: string[];
  /** how the spec is named in generated headers (default: the entry path) */
  specPath?: string;
  /** the compiled package's name, used for its folder (default: spec name, plus -variant) */
  name?: string;
  /** false: check only, no code generation (`files` stays undefined; ts-morph is never loaded) */
  generate?: boolean;
  /** sees every expression the checker evaluates, symbolic and concrete (the language server) */
  observe?: ValueObserver;
}

export interface CompileResult {
  program: Program;
  ir?: IR;
  files?: GeneratedFile[];
  /** output folder name: spec name plus variant (sd3, sd3-small) */
  name?: string;
  diagnostics: Diagnostic[];
}

export { irHash, validateIr } from "../ir/validate.ts";

/** `64,128` (a comma outside any bracket) is the list `[64,128]`: `--set widths=64,128`. */
function bareList(text: string): string {
  let depth = 0;
  for (const ch of text) {
    if (ch === "(" || ch === "[") depth++;
    else if (ch === ")" || ch === "]") depth--;
    else if (ch === "," && depth === 0) return `[${text}]`;
  }
  return text;
}

export function parseSets(sets: string[]): { sets: { name: string; value: A.Expr }[]; diagnostics: Diagnostic[] } {
  const out: { name: string; value: A.Expr }[] = [];
  const diagnostics: Diagnostic[] = [];
  for (const s of sets) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)\s*=(.*)$/.exec(s);
    const file = `--set ${s}`;
    if (!m) {
      diagnostics.push(diag("SDC200", { file, start: { offset: 0, line: 1, column: 1 }, end: { offset: s.length, line: 1, column: s.length + 1 } }, `--set expects name=value, got '${s}'`));
      continue;
    }
    const at1: Diagnostic["span"] = { file, start: { offset: 0, line: 1, column: 1 }, end: { offset: 1, line: 1, column: 2 } };
    if (m[2].trim() === "") {
      diagnostics.push(diag("SDC200", at1, `--set ${m[1]}= needs a value after '=', e.g. --set ${m[1]}=4`));
      continue;
    }
    const r = parseExpression(file, bareList(m[2]));
    if (r.expr) out.push({ name: m[1], value: r.expr });
    // a position the parser could not place (end of input) points at the value's start
    diagnostics.push(...r.diagnostics.map((d) => (Number.isFinite(d.span.start.line) && Number.isFinite(d.span.start.column) && Number.isFinite(d.span.end.column) ? d : { ...d, span: at1 })));
  }
  return { sets: out, diagnostics };
}

/** Compile one spec (and variant) from an entry file. */
export function compile(entry: string, host: SourceHost, opts: CompileOptions = {}): CompileResult {
  const program = loadProgram(entry, host);
  const result: CompileResult = { program, diagnostics: [...program.diagnostics] };
  if (hasErrors(result.diagnostics)) return result;
  const spec = findSpec(program, opts.spec);
  if ("code" in spec) {
    result.diagnostics.push(spec);
    return result;
  }
  const sets = parseSets(opts.sets ?? []);
  if (sets.diagnostics.length) {
    result.diagnostics.push(...sets.diagnostics);
    return result;
  }
  // check every block on its own first (symbolic): errors in unused branches are found too
  const checker = new Checker(program.blocks);
  checker.observe = opts.observe;
  const analyses = new Map([...program.blocks].map(([name, b]) => [name, checker.analyzeBlock(b)]));
  const evaluated = evaluateSpec(program, spec, { variant: opts.variant, sets: sets.sets, observe: opts.observe });
  result.diagnostics.push(...dedupe([...checker.diagnostics, ...evaluated.diagnostics]));
  result.diagnostics.push(...lintWarnings(program, result.diagnostics, spec));
  if (hasErrors(result.diagnostics) || !evaluated.ir) return result;
  const ir = evaluated.ir;
  if (opts.name) ir.spec.name = opts.name;
  const schemaErrors = validateIr(ir);
  if (schemaErrors.length) {
    result.diagnostics.push(diag("SDC900", spec.nameSpan, `internal error: the IR does not match its schema: ${schemaErrors.slice(0, 5).join("; ")}`));
    return result;
  }
  result.ir = ir;
  result.name = ir.spec.name;
  if (opts.generate === false) return result;
  const roots = [ir.network.block, ...(ir.text.kind === "learned" ? [ir.text.block] : [])];
  result.files = generateFiles({ ir, blocks: reachableBlocks(roots, analyses), name: ir.spec.name, specPath: opts.specPath ?? entry });
  return result;
}

/**
 * The lints' warnings for every block of the program (library blocks included), in file order;
 * a warning at a place that already has an error says nothing more and is left out.
 */
function lintWarnings(program: Program, errors: readonly Diagnostic[], spec: A.SpecDecl): Diagnostic[] {
  const taken = new Set(errors.map((d) => `${d.span.file}|${d.span.start.offset}`));
  return [...[...program.blocks.values()].flatMap(unusedInBlock), ...unusedInSpec(spec)].filter((w) => !taken.has(`${w.span.file}|${w.span.start.offset}`));
}

/**
 * One diagnostic per code and source range. The symbolic check and the concrete elaboration often
 * find the same mistake (`[B, P]` vs `[B, 20]`); the later, concrete one says more, so it replaces
 * the earlier in the earlier's place.
 */
function dedupe(ds: Diagnostic[]): Diagnostic[] {
  const byKey = new Map<string, Diagnostic>();
  for (const d of ds) byKey.set(`${d.code}|${d.span.file}|${d.span.start.offset}|${d.span.end.offset}`, d);
  return [...byKey.values()];
}

/** The parameter summary `sdc compile` prints, like a model summary. */
export function summaryTable(ir: IR, opts: { depth?: number } = {}): string {
  const depth = opts.depth ?? 1;
  const rows: [string, string, string, string][] = [];
  const walk = (m: IR["modules"][number], level: number) => {
    const shapes = ir.parameters.filter((p) => p.name.startsWith(m.path + ".") && p.name.split(".").length === m.path.split(".").length + 1 && !p.buffer);
    rows.push([`${"  ".repeat(level)}${m.path || "(network)"}`, m.kind, m.params.toLocaleString("en-US"), shapes.length === 2 ? shapes.map((s) => `[${s.shape.join("x")}]`).join(" ") : ""]);
    if (level < depth) {
      // collapse runs of identical repeated blocks (transformer_blocks.0..10)
      const kids = m.children;
      for (let i = 0; i < kids.length; i++) {
        const k = kids[i];
        const base = k.path.replace(/\.\d+$/, "");
        let j = i;
        while (j + 1 < kids.length && kids[j + 1].path.replace(/\.\d+$/, "") === base && base !== k.path && kids[j + 1].params === k.params && kids[j + 1].kind === k.kind) j++;
        if (j > i) {
          const first = k.path.slice(base.length + 1);
          const last = kids[j].path.slice(base.length + 1);
          rows.push([`${"  ".repeat(level + 1)}${base}.${first}..${last}`, `${k.kind} x${j - i + 1}`, (k.params * (j - i + 1)).toLocaleString("en-US"), `${k.params.toLocaleString("en-US")} each`]);
          i = j;
        } else walk(k, level + 1);
      }
    }
  };
  for (const m of ir.modules) walk(m, 0);
  const head: [string, string, string, string] = ["module", "kind", "params", ""];
  const w = [0, 1, 2, 3].map((c) => Math.max(head[c].length, ...rows.map((r) => r[c].length)));
  const line = (r: string[]) => `${r[0].padEnd(w[0])}  ${r[1].padEnd(w[1])}  ${r[2].padStart(w[2])}  ${r[3]}`.trimEnd();
  const sep = "-".repeat(w[0] + w[1] + w[2] + w[3] + 6);
  const s = ir.stats;
  return [
    line(head),
    sep,
    ...rows.map(line),
    sep,
    `total parameters: ${s.params.toLocaleString("en-US")} (${fmtCount(s.params)}): network ${s.networkParams.toLocaleString("en-US")}, text encoder ${s.textParams.toLocaleString("en-US")}; fixed buffers ${s.buffers.toLocaleString("en-US")}`,
    `largest activation: ${s.maxActivation.toLocaleString("en-US")} values per sample; parameters at fp32: ${(s.params * 4 / 2 ** 20).toFixed(1)} MiB`,
  ].join("\n");
}

/** The diagnostics as text, each kind after its first SHOWN_PER_CODE summarized in one line. */
export function formatAll(ds: Diagnostic[], sources: ReadonlyMap<string, string>, color = false): string {
  return summarizeDiagnostics(ds).map((d) => formatDiagnostic(d, sources, { color })).join("\n\n");
}
