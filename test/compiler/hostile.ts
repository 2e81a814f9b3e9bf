/**
 * Hostile inputs for the code generator: identifiers the lexer accepts that name things in
 * TypeScript (keywords, globals, imports, helpers, Object.prototype), and a spec template with a
 * slot for every kind of name the spec puts into generated code. Shared by the name-mangling
 * property test and the fuzzers.
 */
import * as ts from "typescript";
import { join } from "node:path";
import { compile, memoryHost } from "../../compiler/index.ts";
import { dirname, normalizePath } from "../../compiler/program.ts";
import type { GeneratedFile } from "../../compiler/codegen/files.ts";

/** Words of the .mdl language: never identifiers. */
export const MDL_KEYWORDS = new Set("import spec block param let require forward return for in if else as true false variant network".split(" "));

/** The names of issue 12 and their relatives: each one broke the generated code before the mangling. */
export const HOSTILE_NAMES = [
  "F", "f", "tf", "Linear", "Array", "ReadonlyArray", "Object", "p", "constructor", "store", "path", "args", "__proto__", "k", "_", "__",
  "eval", "arguments", "delete", "delete_", "delete__", "a_b", "aB", "A_b", "a__b", "_a", "_1", "this", "new", "class", "super", "yield", "await",
  "static", "implements", "interface", "package", "private", "protected", "public", "enum", "undefined", "NaN", "Infinity", "toString",
  "hasOwnProperty", "valueOf", "isPrototypeOf", "prototype", "apply", "need", "check", "joinName", "ParamStore", "LayerNorm",
  "createNetwork", "DiffusionSpec", "Args", "NetArgs", "net_args", "Net", "x", "typeof", "void", "null", "with", "switch", "var",
  "const", "function", "globalThis", "Math", "any", "number", "string", "symbol", "of", "type", "m", "Block", "B", "N", "Spec", "Forward",
];

/** Names that may not name a block: primitives, and the callees the spec treats specially. */
export const NOT_BLOCK_NAMES = new Set(["linear", "layer_norm", "rms_norm", "silu", "relu", "sigmoid", "tanh", "gelu", "chunk", "split", "concat", "unsqueeze", "mean", "attention", "patch_conv", "conv2d", "flatten", "unpatchify", "sincos_2d", "timestep_embedding", "embedding", "parameter", "max_pool", "avg_pool", "external", "sd3_pretrained"]);

/** The slots of the template, each filled by a distinct identifier. */
export const SLOTS = [
  "SUB", "NET", "ENC", // blocks
  "W", "Q", "L", // SUB: a parameter, a parameter with a default, a let
  "X1", "Y1", "Y2", "NN", // SUB: input, locals, a dim variable
  "LB1", "LB2", "LB3", // SUB: labels (LB2.LB3 is a dotted path)
  "CH", "CX", "D", "FL", // NET parameters (FL a bool with a default)
  "X", "T", "C", "P", "Z", "V", "BB", "HH", "WW", "TT", "PP", // NET: inputs, a local, a loop variable, dim variables
  "LA", "LREP", "LC", "LS", // NET labels (LREP indexed, LC in both branches of an if, LS a block call)
  "VOC", "TOK", "WID", "IDS", "E", "PO", "EMB", // ENC
] as const;
export type Slot = (typeof SLOTS)[number];
export type Names = Record<Slot, string>;

/** A string literal of the .mdl language holding exactly `s`. */
export function mdlString(s: string): string {
  return `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`;
}

/** Where the template's library lives, imported from the spec as `import "<libDir>/sub.mdl"`. */
export interface HostileWhere {
  specPath?: string;
  libDir?: string;
  title?: string;
}

/**
 * A spec that uses every slot; it compiles (and its network runs) whatever distinct names fill
 * them. The block SUB lives in a library imported from `libDir` (any text: a folder name).
 */
export function hostileSources(n: Names, where: HostileWhere = {}): Record<string, string> {
  const specPath = where.specPath ?? "main.mdl";
  const libImport = `${where.libDir ?? "lib"}/sub.mdl`;
  return { [specPath]: `import ${mdlString(libImport)}\n${hostileSpec(n, where.title)}`, [normalizePath(dirname(specPath) + "/" + libImport)]: hostileLib(n) };
}

export function hostileLib(n: Names): string {
  return `
block ${n.SUB}(${n.W}: int, ${n.Q}: int = 2) {
  let ${n.L} = ${n.W} * ${n.Q}
  require ${n.L} > 0, "width must be positive"
  forward(${n.X1}: [${n.BB}, ${n.NN}, ${n.W}]) -> [${n.BB}, ${n.NN}, ${n.W}] {
    ${n.Y1} = linear(${n.X1}, ${n.L}) as ${n.LB1}
    ${n.Y2} = linear(silu(${n.Y1}), ${n.W}) as ${n.LB2}.${n.LB3}
    return ${n.Y2} * 0.5 + ${n.X1}
  }
}
`;
}

export function hostileSpec(n: Names, title = "hostile"): string {
  return `
block ${n.NET}(${n.CH}: int, ${n.CX}: int, ${n.D}: int, ${n.FL}: bool = true) {
  forward(${n.X}: [${n.BB}, ${n.HH}, ${n.WW}, ${n.CH}], ${n.T}: [${n.BB}], ${n.C}: [${n.BB}, ${n.TT}, ${n.CX}], ${n.P}: [${n.BB}, ${n.PP}]) -> [${n.BB}, ${n.HH}, ${n.WW}, ${n.CH}] {
    ${n.Z} = linear(${n.X}, ${n.CH}) as ${n.LA}
    for ${n.V} in 0 .. ${n.D} {
      ${n.Z} = linear(${n.Z}, ${n.CH}) as ${n.LREP}[${n.V}]
    }
    if ${n.FL} {
      ${n.Z} = linear(${n.Z}, ${n.CH}) as ${n.LC}
    } else {
      ${n.Z} = linear(${n.Z}, ${n.CH}, bias: false) as ${n.LC}
    }
    ${n.Z} = ${n.Z} + unsqueeze(unsqueeze(unsqueeze(mean(mean(${n.SUB}(${n.C}, ${n.W}: ${n.CX}) as ${n.LS}, 1), 1), 1), 1), 1) * 0.0
    ${n.Z} = ${n.Z} + unsqueeze(unsqueeze(unsqueeze(${n.T}, 1), 1), 1) * 0.0 + unsqueeze(unsqueeze(unsqueeze(mean(${n.P}, 1), 1), 1), 1) * 0.0
    return ${n.Z}
  }
}

block ${n.ENC}(${n.VOC}: int, ${n.TOK}: int, ${n.WID}: int) {
  forward(${n.IDS}: int32[${n.BB}, ${n.TOK}]) -> ([${n.BB}, ${n.TOK}, ${n.WID}], [${n.BB}, ${n.WID}]) {
    ${n.E} = embedding(${n.IDS}, ${n.VOC}, ${n.WID}) as ${n.EMB}
    ${n.PO} = mean(${n.E}, 1)
    return ${n.E}, ${n.PO}
  }
}

spec hostile ${mdlString(title)} {
  data { image: [4, 4, 1] }
  text { encoder: ${n.ENC}(${n.VOC}: 32, ${n.TOK}: 3, ${n.WID}: 8)  tokens: 3  vocab: 32 }
  network: ${n.NET}(${n.CH}: 1, ${n.CX}: 8, ${n.D}: 2)
  train { batch: 2  steps: 1 }
}
`;
}

/** Fill the slots with `names` first (in order), then with plain distinct names. */
export function fillSlots(names: readonly string[], slotOrder: readonly Slot[] = SLOTS): Names {
  const used = new Set<string>();
  const out = {} as Names;
  let i = 0;
  for (const slot of slotOrder) {
    let name = names[i++];
    const isBlock = slot === "SUB" || slot === "NET" || slot === "ENC";
    while (name === undefined || used.has(name) || (isBlock && NOT_BLOCK_NAMES.has(name))) name = `${slot.toLowerCase()}_${used.size}`;
    used.add(name);
    out[slot] = name;
  }
  return out;
}

/** One name in one slot; every other slot gets a plain name. */
export function oneName(slot: Slot, name: string): Names {
  return fillSlots([name], [slot, ...SLOTS.filter((s) => s !== slot)]);
}

/** Compile the hostile spec; the files, or the diagnostics' text. */
export function compileHostile(n: Names, where: HostileWhere = {}): { files?: GeneratedFile[]; errors: string[] } {
  const specPath = where.specPath ?? "main.mdl";
  const r = compile(specPath, memoryHost(hostileSources(n, where)), { specPath });
  return { files: r.files, errors: r.diagnostics.map((d) => `${d.code} ${d.message}`) };
}

/**
 * Syntactic checks of one generated TypeScript file: it parses, and its top level is only what the
 * generator writes (imports from sdc/runtime or ./model.ts, interfaces, classes, functions, the
 * `spec` constant, `export *`), so nothing else can run when the package loads. Returns problems.
 */
export function topLevelProblems(name: string, code: string): string[] {
  const sf = ts.createSourceFile(name, code, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const problems: string[] = [];
  const parseDiags = (sf as unknown as { parseDiagnostics: ts.Diagnostic[] }).parseDiagnostics ?? [];
  for (const d of parseDiags) problems.push(`${name}: syntax: ${ts.flattenDiagnosticMessageText(d.messageText, " ")}`);
  for (const st of sf.statements) {
    if (ts.isImportDeclaration(st) && ts.isStringLiteral(st.moduleSpecifier) && ["sdc/runtime", "./model.ts"].includes(st.moduleSpecifier.text)) continue;
    if (ts.isExportDeclaration(st) && st.moduleSpecifier && ts.isStringLiteral(st.moduleSpecifier) && st.moduleSpecifier.text === "./model.ts") continue;
    if (ts.isInterfaceDeclaration(st) || ts.isClassDeclaration(st) || ts.isFunctionDeclaration(st)) continue;
    if (ts.isVariableStatement(st) && st.declarationList.declarations.length === 1 && st.declarationList.declarations[0].name.getText(sf) === "spec") continue;
    problems.push(`${name}: unexpected top-level statement: ${st.getText(sf).slice(0, 80)}`);
  }
  // the header's two comment lines are the only text before the import
  const head = code.split("\n").slice(0, 3);
  if (!head[0].startsWith("// generated by sdc from ") || !head[1].startsWith("// Recompile with: ") || head[2] !== "") problems.push(`${name}: header is not two comment lines: ${JSON.stringify(head)}`);
  return problems;
}

/**
 * Type-check generated packages with the TypeScript compiler API (strict), all in one program so
 * the runtime's types are checked once. `packages`: folder name -> files. Returns error lines.
 */
export function typeCheck(root: string, packages: Map<string, GeneratedFile[]>): string[] {
  const base = join(root, "__hostile__");
  const files = new Map<string, string>();
  for (const [dir, list] of packages) for (const [p, c] of list) if (p.endsWith(".ts")) files.set(join(base, dir, p), c);
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    strict: true,
    noImplicitOverride: true,
    skipLibCheck: true,
    allowImportingTsExtensions: true,
    noEmit: true,
    esModuleInterop: true,
    resolveJsonModule: true,
    types: ["node"],
    typeRoots: [join(root, "node_modules/@types")],
    baseUrl: root,
    paths: { "sdc/runtime": ["./runtime/index.ts"] },
  };
  const host = ts.createCompilerHost(options);
  const readFile = host.readFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  const getSourceFile = host.getSourceFile.bind(host);
  host.readFile = (f) => files.get(f) ?? readFile(f);
  host.fileExists = (f) => files.has(f) || fileExists(f);
  const dirs = new Set([...files.keys()].flatMap((f) => f.split("/").slice(1, -1).map((_, i, parts) => "/" + parts.slice(0, i + 1).join("/"))));
  const directoryExists = host.directoryExists?.bind(host);
  host.directoryExists = (d) => dirs.has(d.replace(/\/$/, "")) || (directoryExists ? directoryExists(d) : false);
  host.getSourceFile = (f, lang, onError, create) => (files.has(f) ? ts.createSourceFile(f, files.get(f)!, lang) : getSourceFile(f, lang, onError, create));
  const program = ts.createProgram([...files.keys()], options, host);
  // only the generated files are checked (the runtime is checked by the project's own tsc run)
  const diags = [...files.keys()].flatMap((f) => {
    const sf = program.getSourceFile(f)!;
    return [...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf)];
  });
  return diags.map((d) => {
    const { line, character } = d.file!.getLineAndCharacterOfPosition(d.start ?? 0);
    return `${d.file!.fileName.slice(base.length + 1)}(${line + 1},${character + 1}): TS${d.code} ${ts.flattenDiagnosticMessageText(d.messageText, " ")}`;
  });
}
