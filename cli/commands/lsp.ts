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
import { type Diagnostic, type Span, summarizeDiagnostics } from "../../compiler/diagnostics.ts";
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

const newConnection = () => createConnection(ProposedFeatures.all, process.stdin, process.stdout);

/** What the server holds: the connection, the open documents (by URI and by resolved path), each one's last analysis and the last whose file parsed, and the checks waiting. */
interface Server {
  connection: ReturnType<typeof newConnection>;
  documents: TextDocuments<TextDocument>;
  analyses: Map<string, Analysis>;
  /** the last analysis of each document whose file parsed (completion while the text is broken) */
  lastGood: Map<string, Analysis>;
  open: Map<string, TextDocument>;
  /** the open documents' text first, then the disk */
  host: SourceHost;
  /** documents changed and not checked yet */
  pending: Set<string>;
}

function createServer(): Server {
  const open = new Map<string, TextDocument>();
  const host: SourceHost = {
    read(path) {
      const doc = open.get(resolve(path));
      return doc ? new TextEncoder().encode(doc.getText()) : fsHost.read(path);
    },
    resolve: fsHost.resolve,
  };
  return { connection: newConnection(), documents: new TextDocuments(TextDocument), analyses: new Map(), lastGood: new Map(), open, host, pending: new Set() };
}

/** Specs that may import a library file: open documents, and .mdl files beside it and one folder up. */
function contextSpecs(srv: Server, path: string): string[] {
  const out = new Set<string>();
  for (const d of srv.documents.all()) out.add(uriToPath(d.uri));
  for (const dir of [dirname(path), dirname(dirname(path))]) {
    try {
      for (const f of readdirSync(dir).sort()) if (f.endsWith(".mdl")) out.add(join(dir, f));
    } catch {
      /* unreadable folder: no context from it */
    }
  }
  out.delete(path);
  return [...out].filter((p) => {
    const bytes = srv.host.read(p);
    return bytes !== undefined && /\bspec\s+[A-Za-z_]/.test(new TextDecoder().decode(bytes)) && /\bimport\b/.test(new TextDecoder().decode(bytes));
  });
}

/**
 * The diagnostics shown on the document at `path`: the analysis's, each kind after its first
 * SHOWN_PER_CODE summarized in one line as `sdc compile` prints them (one shared
 * summarizeDiagnostics); a mistake in an imported file is shown on the import that brings it in,
 * with where it is. `resolveImport` maps an import's text to the file it names.
 */
export function documentDiagnostics(a: Analysis, path: string, resolveImport: (from: string, imported: string) => string): LspDiagnostic[] {
  const all = summarizeDiagnostics(a.diagnostics);
  const own = all.filter((d) => d.span.file === path).map(toLspDiagnostic);
  const imports = a.program.files.get(path)?.imports ?? [];
  for (const d of all.filter((d) => d.span.file !== path)) {
    const imp = imports.find((i) => resolveImport(path, i.path) === d.span.file) ?? imports[0];
    if (!imp) continue;
    const l = toLspDiagnostic(d);
    own.push({ ...l, range: spanToRange(imp.span), message: `${d.span.file}:${d.span.start.line}:${d.span.start.column}: ${l.message}` });
  }
  return own;
}

/** Check a document and publish its diagnostics; a bug in the compiler is said where the user looks, and the server keeps serving. */
function check(srv: Server, doc: TextDocument): void {
  const { connection } = srv;
  const path = uriToPath(doc.uri);
  let a: Analysis;
  try {
    a = analyze(path, srv.host, { context: () => contextSpecs(srv, path) });
  } catch (e) {
    connection.console.error(`sdc lsp: internal error checking ${path}: ${(e as Error)?.stack ?? String(e)}`);
    const at = { line: 0, character: 0 };
    void connection.sendDiagnostics({ uri: doc.uri, version: doc.version, diagnostics: [{ range: { start: at, end: at }, severity: DiagnosticSeverity.Error, code: "SDC900", source: "sdc", message: `internal error (a bug in sdc; please report it): ${(e as Error)?.message ?? String(e)}` }] });
    return;
  }
  srv.analyses.set(doc.uri, a);
  if (a.program.files.has(path)) srv.lastGood.set(doc.uri, a);
  void connection.sendDiagnostics({ uri: doc.uri, version: doc.version, diagnostics: documentDiagnostics(a, path, srv.host.resolve) });
}

/** Coalesce bursts of keystrokes: one check per document per turn of the event loop; documents that import this one see its new text too. */
function schedule(srv: Server, doc: TextDocument): void {
  const { pending, documents, analyses } = srv;
  if (pending.has(doc.uri)) return;
  pending.add(doc.uri);
  setImmediate(() => {
    pending.delete(doc.uri);
    const cur = documents.get(doc.uri);
    if (cur) check(srv, cur);
    for (const other of documents.all()) if (other.uri !== doc.uri && analyses.get(other.uri)?.program.files.has(uriToPath(doc.uri))) check(srv, other);
  });
}

/** The analysis for a request: pending edits are checked first, so answers match the text. */
function current(srv: Server, uri: string): Analysis | undefined {
  const doc = srv.documents.get(uri);
  if (doc && (srv.pending.has(uri) || !srv.analyses.has(uri))) {
    srv.pending.delete(uri);
    check(srv, doc);
  }
  return srv.analyses.get(uri);
}

/** Opened and changed documents are checked (their text replaces the disk's); a closed one's diagnostics are cleared. */
function watchDocuments(srv: Server): void {
  const { documents, open, connection } = srv;
  documents.onDidOpen((e) => {
    open.set(resolve(uriToPath(e.document.uri)), e.document);
    schedule(srv, e.document);
  });
  documents.onDidChangeContent((e) => {
    open.set(resolve(uriToPath(e.document.uri)), e.document);
    schedule(srv, e.document);
  });
  documents.onDidClose((e) => {
    open.delete(resolve(uriToPath(e.document.uri)));
    srv.analyses.delete(e.document.uri);
    srv.lastGood.delete(e.document.uri);
    void connection.sendDiagnostics({ uri: e.document.uri, diagnostics: [] });
  });
}

/** Hover, go to definition and completion, each from the compiler service over the document's current analysis. */
function answerRequests(srv: Server): void {
  const { connection, documents, open, host } = srv;
  connection.onHover((p) => {
    const doc = documents.get(p.textDocument.uri);
    const a = current(srv, p.textDocument.uri);
    if (!doc || !a) return null;
    const h = hoverAt(a, doc.offsetAt(p.position));
    return h ? { contents: { kind: MarkupKind.Markdown, value: h.markdown }, range: spanToRange(h.span) } : null;
  });
  connection.onDefinition((p) => {
    const doc = documents.get(p.textDocument.uri);
    const a = current(srv, p.textDocument.uri);
    if (!doc || !a) return null;
    const s = definitionAt(a, doc.offsetAt(p.position), host);
    if (!s || (!open.has(resolve(s.file)) && !existsSync(s.file))) return null;
    return { uri: pathToUri(s.file), range: spanToRange(s) };
  });
  connection.onCompletion((p) => {
    const doc = documents.get(p.textDocument.uri);
    if (!doc) return [];
    current(srv, p.textDocument.uri);
    const a = srv.lastGood.get(p.textDocument.uri) ?? srv.analyses.get(p.textDocument.uri);
    return completionsAt(a, doc.getText(), doc.offsetAt(p.position)).map((c) => ({
      label: c.label,
      kind: KINDS[c.kind],
      detail: c.detail,
      documentation: c.doc ? { kind: MarkupKind.Markdown, value: c.doc } : undefined,
      insertText: c.insert,
    }));
  });
}

/** `sdc lsp`: serve until the editor says exit; returns the exit code. */
export function runLsp(): Promise<number> {
  const srv = createServer();
  const { connection } = srv;
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
  watchDocuments(srv);
  answerRequests(srv);
  srv.documents.listen(connection);
  connection.listen();
  return new Promise((done) => connection.onExit(() => done(0)));
}
