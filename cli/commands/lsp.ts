/**
 * `sdc lsp`: a language server over stdio (vscode-languageserver). Every change of an open .mdl
 * document runs the compiler's own phases on it (compiler/service.ts: `compile()` without code
 * generation) and publishes the same diagnostics `sdc compile` prints; hover shows the checker's
 * shapes and values, go to definition finds blocks, imports and names, completion offers
 * primitives, blocks, parameters, settings and arguments with their signatures.
 * Files come from the open documents first, then the disk (paths relative to the working
 * directory, as `sdc compile specs/sd3.mdl` names them from the repository root).
 */
import { existsSync, readdirSync } from "node:fs";
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import {
  CompletionItemKind,
  createConnection,
  type Diagnostic as LspDiagnostic,
  DiagnosticSeverity,
  type InitializeResult,
  MarkupKind,
  ProposedFeatures,
  type Range,
  TextDocuments,
  TextDocumentSyncKind,
} from "vscode-languageserver/node.js";
import { TextDocument } from "vscode-languageserver-textdocument";
import type { Diagnostic, Span } from "../../compiler/diagnostics.ts";
import type { SourceHost } from "../../compiler/program.ts";
import { type Analysis, analyze, type CompletionEntry, completionsAt, definitionAt, hoverAt } from "../../compiler/service.ts";
import { fsHost } from "../host.ts";

/** A compiler path (relative to the working directory when inside it) for a document URI. */
export function uriToPath(uri: string): string {
  const abs = uri.startsWith("file:") ? fileURLToPath(uri) : uri;
  const rel = relative(process.cwd(), abs);
  return rel && !rel.startsWith("..") && !isAbsolute(rel) ? rel : abs;
}

export function pathToUri(path: string): string {
  return pathToFileURL(resolve(path)).href;
}

export function spanToRange(s: Span): Range {
  return { start: { line: s.start.line - 1, character: s.start.column - 1 }, end: { line: s.end.line - 1, character: s.end.column - 1 } };
}

/** The LSP form of a compiler diagnostic: same code, range and message (the hint appended). */
export function toLspDiagnostic(d: Diagnostic): LspDiagnostic {
  return { range: spanToRange(d.span), severity: d.severity === "error" ? DiagnosticSeverity.Error : DiagnosticSeverity.Warning, code: d.code, source: "sdc", message: d.hint ? `${d.message}\n= help: ${d.hint}` : d.message };
}

const KINDS: Record<CompletionEntry["kind"], CompletionItemKind> = {
  primitive: CompletionItemKind.Function,
  block: CompletionItemKind.Class,
  parameter: CompletionItemKind.Variable,
  setting: CompletionItemKind.Property,
  section: CompletionItemKind.Module,
  keyword: CompletionItemKind.Keyword,
  argument: CompletionItemKind.Field,
  value: CompletionItemKind.EnumMember,
};

export function runLsp(): Promise<number> {
  const connection = createConnection(ProposedFeatures.all, process.stdin, process.stdout);
  const documents = new TextDocuments(TextDocument);
  const analyses = new Map<string, Analysis>();
  /** the last analysis of each document whose file parsed (completion while the text is broken) */
  const lastGood = new Map<string, Analysis>();
  const open = new Map<string, TextDocument>();
  const host: SourceHost = {
    read(path) {
      const doc = open.get(resolve(path));
      return doc ? new TextEncoder().encode(doc.getText()) : fsHost.read(path);
    },
    resolve: fsHost.resolve,
  };

  /** Specs that may import a library file: open documents, and .mdl files beside it and one folder up. */
  const contextSpecs = (path: string): string[] => {
    const out = new Set<string>();
    for (const d of documents.all()) out.add(uriToPath(d.uri));
    for (const dir of [dirname(path), dirname(dirname(path))]) {
      try {
        for (const f of readdirSync(dir).sort()) if (f.endsWith(".mdl")) out.add(join(dir, f));
      } catch {
        /* unreadable folder: no context from it */
      }
    }
    out.delete(path);
    return [...out].filter((p) => {
      const bytes = host.read(p);
      return bytes !== undefined && /\bspec\s+[A-Za-z_]/.test(new TextDecoder().decode(bytes)) && /\bimport\b/.test(new TextDecoder().decode(bytes));
    });
  };

  const check = (doc: TextDocument) => {
    const path = uriToPath(doc.uri);
    let a: Analysis;
    try {
      a = analyze(path, host, { context: () => contextSpecs(path) });
    } catch (e) {
      // a bug in the compiler: say so where the user looks, keep serving
      connection.console.error(`sdc lsp: internal error checking ${path}: ${(e as Error)?.stack ?? String(e)}`);
      const at = { line: 0, character: 0 };
      void connection.sendDiagnostics({ uri: doc.uri, version: doc.version, diagnostics: [{ range: { start: at, end: at }, severity: DiagnosticSeverity.Error, code: "SDC900", source: "sdc", message: `internal error (a bug in sdc; please report it): ${(e as Error)?.message ?? String(e)}` }] });
      return;
    }
    analyses.set(doc.uri, a);
    if (a.program.files.has(path)) lastGood.set(doc.uri, a);
    const own = a.diagnostics.filter((d) => d.span.file === path).map(toLspDiagnostic);
    // a mistake in an imported file: shown on the import that brings it in, with where it is
    const ast = a.program.files.get(path);
    const imports = ast?.imports ?? [];
    const foreign = a.diagnostics.filter((d) => d.span.file !== path);
    for (const d of foreign) {
      const imp = imports.find((i) => host.resolve(path, i.path) === d.span.file) ?? imports[0];
      if (!imp) continue;
      const l = toLspDiagnostic(d);
      own.push({ ...l, range: spanToRange(imp.span), message: `${d.span.file}:${d.span.start.line}:${d.span.start.column}: ${l.message}` });
    }
    void connection.sendDiagnostics({ uri: doc.uri, version: doc.version, diagnostics: own });
  };

  // coalesce bursts of keystrokes: one check per document per turn of the event loop
  const pending = new Set<string>();
  const schedule = (doc: TextDocument) => {
    if (pending.has(doc.uri)) return;
    pending.add(doc.uri);
    setImmediate(() => {
      pending.delete(doc.uri);
      const cur = documents.get(doc.uri);
      if (cur) check(cur);
      // documents that import this one see its new text too
      for (const other of documents.all()) if (other.uri !== doc.uri && analyses.get(other.uri)?.program.files.has(uriToPath(doc.uri))) check(other);
    });
  };

  connection.onInitialize(
    (): InitializeResult => ({
      capabilities: {
        textDocumentSync: TextDocumentSyncKind.Incremental,
        hoverProvider: true,
        definitionProvider: true,
        completionProvider: { triggerCharacters: [".", "(", ",", " ", "{"] },
      },
      serverInfo: { name: "sdc", version: "0.1.0" },
    }),
  );

  documents.onDidOpen((e) => {
    open.set(resolve(uriToPath(e.document.uri)), e.document);
    schedule(e.document);
  });
  documents.onDidChangeContent((e) => {
    open.set(resolve(uriToPath(e.document.uri)), e.document);
    schedule(e.document);
  });
  documents.onDidClose((e) => {
    open.delete(resolve(uriToPath(e.document.uri)));
    analyses.delete(e.document.uri);
    lastGood.delete(e.document.uri);
    void connection.sendDiagnostics({ uri: e.document.uri, diagnostics: [] });
  });

  /** The analysis for a request: pending edits are checked first, so answers match the text. */
  const current = (uri: string): Analysis | undefined => {
    const doc = documents.get(uri);
    if (doc && (pending.has(uri) || !analyses.has(uri))) {
      pending.delete(uri);
      check(doc);
    }
    return analyses.get(uri);
  };

  connection.onHover((p) => {
    const doc = documents.get(p.textDocument.uri);
    const a = current(p.textDocument.uri);
    if (!doc || !a) return null;
    const h = hoverAt(a, doc.offsetAt(p.position));
    return h ? { contents: { kind: MarkupKind.Markdown, value: h.markdown }, range: spanToRange(h.span) } : null;
  });

  connection.onDefinition((p) => {
    const doc = documents.get(p.textDocument.uri);
    const a = current(p.textDocument.uri);
    if (!doc || !a) return null;
    const s = definitionAt(a, doc.offsetAt(p.position), host);
    if (!s || (!open.has(resolve(s.file)) && !existsSync(s.file))) return null;
    return { uri: pathToUri(s.file), range: spanToRange(s) };
  });

  connection.onCompletion((p) => {
    const doc = documents.get(p.textDocument.uri);
    if (!doc) return [];
    current(p.textDocument.uri);
    const a = lastGood.get(p.textDocument.uri) ?? analyses.get(p.textDocument.uri);
    return completionsAt(a, doc.getText(), doc.offsetAt(p.position)).map((c) => ({
      label: c.label,
      kind: KINDS[c.kind],
      detail: c.detail,
      documentation: c.doc ? { kind: MarkupKind.Markdown, value: c.doc } : undefined,
      insertText: c.insert,
    }));
  });

  documents.listen(connection);
  connection.listen();
  return new Promise((done) => connection.onExit(() => done(0)));
}
