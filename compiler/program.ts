/**
 * Phase 3: a program is the entry file plus everything it imports. The file system is reached
 * only through a `SourceHost` the caller passes in (the CLI reads files; tests pass a map), so
 * this phase stays pure.
 */
import type * as A from "./ast.ts";
import { diag, type Diagnostic } from "./diagnostics.ts";
import { decodeSource, lex, MAX_SOURCE_BYTES, tooLarge } from "./lexer.ts";
import { parseTokens } from "./parser.ts";

export interface SourceHost {
  /** Bytes of a file, or undefined if it does not exist. */
  read(path: string): Uint8Array | undefined;
  /** Size of a file in bytes without reading it (null: no such file); optional. */
  size?(path: string): number | null;
  /** Resolve `spec` imported from the file `from` to a path the host can read. */
  resolve(from: string, spec: string): string;
  /**
   * The library search path: where else to look, in order, for an import that is not found
   * relative to its file (`import "sdc/lib/mmdit.mdl"` from any folder). Never consulted for
   * imports that start with `./`, `../` or `/`.
   */
  searchPath?(spec: string): string[];
}

/** Every path an import may name, in the order they are tried. */
export function importCandidates(host: SourceHost, from: string, spec: string): string[] {
  const first = host.resolve(from, spec);
  if (/^(\.\.?\/|\/)/.test(spec) || !host.searchPath) return [first];
  return [...new Set([first, ...host.searchPath(spec)])];
}

export interface Program {
  entry: string;
  files: Map<string, A.SourceFile>;
  /** decoded text of every file read, for diagnostics */
  sources: Map<string, string>;
  blocks: Map<string, A.BlockDecl>;
  diagnostics: Diagnostic[];
}

/** Parse one file from text. */
export function parseSource(file: string, text: string): { ast?: A.SourceFile; diagnostics: Diagnostic[] } {
  const l = lex(file, text);
  if (l.diagnostics.length) return { diagnostics: l.diagnostics };
  return parseTokens(file, l.tokens);
}

/**
 * Load the entry file and its imports (depth first, imports before importers), detecting missing
 * and cyclic imports. Iterative: an import chain thousands of files deep needs no stack.
 */
export function loadProgram(entry: string, host: SourceHost): Program {
  const prog: Program = { entry, files: new Map(), sources: new Map(), blocks: new Map(), diagnostics: [] };
  /** the files being visited, entry first; each with the next of its imports to visit */
  const stack: { path: string; ast: A.SourceFile; next: number }[] = [];
  const onStack = new Map<string, number>();
  const read = new Map<string, Uint8Array | undefined>();
  const readOnce = (p: string) => {
    if (!read.has(p)) read.set(p, host.read(p));
    return read.get(p);
  };
  // whether a candidate exists, without reading it when the host can tell its size
  const exists = (p: string) => (host.size ? host.size(p) !== null : readOnce(p) !== undefined);
  /** the first candidate that exists (or the first, to report it missing), with all of them */
  const locate = (from: string, spec: string): { path: string; looked: string[] } => {
    const looked = importCandidates(host, from, spec);
    return { path: looked.find(exists) ?? looked[0], looked };
  };
  const enter = (path: string, from?: A.ImportDecl, looked: string[] = [path]): void => {
    if (prog.files.has(path)) return;
    const cycleAt = onStack.get(path);
    if (cycleAt !== undefined) {
      prog.diagnostics.push(diag("SDC303", from!.span, `cyclic import: ${[...stack.slice(cycleAt).map((f) => f.path), path].join(" -> ")}`));
      return;
    }
    const missing = () => {
      const hint = looked.length > 1 ? "imports are found relative to the importing file, then along the library search path; `sdc/...` is the library shipped with sdc" : undefined;
      if (from) prog.diagnostics.push(diag("SDC302", from.span, `import not found: ${JSON.stringify(from.path)} (looked for ${looked.join(", ")})`, hint));
      else prog.diagnostics.push(diag("SDC302", { file: path, start: { offset: 0, line: 1, column: 1 }, end: { offset: 0, line: 1, column: 1 } }, `file not found: ${path}`));
    };
    // the size first: a 1.5 GB file is refused without reading it
    const size = host.size?.(path);
    if (size === null) return missing();
    if (size !== undefined && size > MAX_SOURCE_BYTES) {
      prog.diagnostics.push(tooLarge(path, size));
      return;
    }
    const bytes = readOnce(path);
    if (bytes === undefined) return missing();
    const dec = decodeSource(path, bytes);
    if (!dec.text) {
      prog.diagnostics.push(...dec.diagnostics);
      return;
    }
    prog.sources.set(path, dec.text);
    const r = parseSource(path, dec.text);
    prog.diagnostics.push(...r.diagnostics);
    if (!r.ast) return;
    onStack.set(path, stack.length);
    stack.push({ path, ast: r.ast, next: 0 });
  };
  enter(entry);
  while (stack.length) {
    const top = stack[stack.length - 1];
    if (top.next < top.ast.imports.length) {
      const imp = top.ast.imports[top.next++];
      const at = locate(top.path, imp.path);
      enter(at.path, imp, at.looked);
      continue;
    }
    stack.pop();
    onStack.delete(top.path);
    prog.files.set(top.path, top.ast);
    for (const b of top.ast.blocks) {
      const prev = prog.blocks.get(b.name);
      if (prev) prog.diagnostics.push(diag("SDC301", b.nameSpan, `block '${b.name}' is already defined at ${prev.nameSpan.file}:${prev.nameSpan.start.line}`));
      else prog.blocks.set(b.name, b);
    }
  }
  const main = prog.files.get(entry);
  if (main && !prog.diagnostics.length && main.specs.length === 0 && main.blocks.length === 0) {
    prog.diagnostics.push(diag("SDC305", { file: entry, start: { offset: 0, line: 1, column: 1 }, end: { offset: 1, line: 1, column: 2 } }, "no spec or block in file"));
  }
  return prog;
}

/**
 * An in-memory host for tests and tools: paths are keys; imports resolve relative to the importer,
 * then in each folder of `libPath`.
 */
export function memoryHost(files: Record<string, string | Uint8Array>, opts: { libPath?: string[] } = {}): SourceHost {
  return {
    read: (p) => {
      const f = files[p];
      return f === undefined ? undefined : typeof f === "string" ? new TextEncoder().encode(f) : f;
    },
    resolve: (from, spec) => normalizePath(dirname(from) + "/" + spec),
    searchPath: opts.libPath ? (spec) => opts.libPath!.map((d) => normalizePath(d + "/" + spec)) : undefined,
  };
}

export function dirname(p: string): string {
  const i = p.lastIndexOf("/");
  return i < 0 ? "." : p.slice(0, i) || "/";
}

export function normalizePath(p: string): string {
  const abs = p.startsWith("/");
  const out: string[] = [];
  for (const seg of p.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === ".." && out.length && out[out.length - 1] !== "..") out.pop();
    else out.push(seg);
  }
  return (abs ? "/" : "") + out.join("/");
}
