/** A minimal LSP client over stdio, as an editor drives `sdc lsp` (tests and bench/lsp.ts). */
import { type ChildProcess, spawn } from "node:child_process";
import { pathToFileURL } from "node:url";
import { resolve } from "node:path";

export interface Message {
  id?: number;
  method?: string;
  params?: any;
  result?: any;
  error?: { code: number; message: string };
}

export class LspClient {
  readonly proc: ChildProcess;
  private buf = Buffer.alloc(0);
  private inbox: Message[] = [];
  private waiters: (() => void)[] = [];
  private nextId = 0;
  stderr = "";

  constructor(cwd = process.cwd(), env: Record<string, string> = {}) {
    this.proc = spawn(process.execPath, ["bin/sdc.mjs", "lsp", "--stdio"], { cwd, stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, ...env } });
    this.proc.stderr!.on("data", (d) => (this.stderr += d));
    this.proc.stdout!.on("data", (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      for (;;) {
        const i = this.buf.indexOf("\r\n\r\n");
        if (i < 0) break;
        const len = Number(/Content-Length: (\d+)/i.exec(this.buf.subarray(0, i).toString())![1]);
        if (this.buf.length < i + 4 + len) break;
        this.inbox.push(JSON.parse(this.buf.subarray(i + 4, i + 4 + len).toString()));
        this.buf = this.buf.subarray(i + 4 + len);
        this.waiters.splice(0).forEach((w) => w());
      }
    });
  }

  send(m: Message): void {
    const s = JSON.stringify({ jsonrpc: "2.0", ...m });
    this.proc.stdin!.write(`Content-Length: ${Buffer.byteLength(s)}\r\n\r\n${s}`);
  }

  /** The first message (already received or still to come) that matches, removed from the inbox. */
  async wait(pred: (m: Message) => boolean, timeoutMs = 60_000): Promise<Message> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.inbox.findIndex(pred);
      if (i >= 0) return this.inbox.splice(i, 1)[0];
      if (Date.now() > deadline) throw new Error(`no matching message in ${timeoutMs} ms; stderr: ${this.stderr}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 200);
      });
    }
  }

  async request(method: string, params: unknown): Promise<any> {
    const id = ++this.nextId;
    this.send({ id, method, params });
    const r = await this.wait((m) => m.id === id && m.method === undefined);
    if (r.error) throw new Error(`${method}: ${r.error.message}`);
    return r.result;
  }

  notify(method: string, params: unknown): void {
    this.send({ method, params });
  }

  async initialize(): Promise<any> {
    const r = await this.request("initialize", { processId: process.pid, rootUri: pathToFileURL(process.cwd()).href, capabilities: {} });
    this.notify("initialized", {});
    return r;
  }

  /** Diagnostics published for `uri` (at `version`, when given). */
  async diagnostics(uri: string, version?: number): Promise<any[]> {
    const m = await this.wait((x) => x.method === "textDocument/publishDiagnostics" && x.params.uri === uri && (version === undefined || x.params.version === version));
    return m.params.diagnostics;
  }

  /** Forget received messages that match (e.g. diagnostics published before an edit). */
  drop(pred: (m: Message) => boolean): void {
    this.inbox = this.inbox.filter((m) => !pred(m));
  }

  open(uri: string, text: string, version = 1): void {
    this.notify("textDocument/didOpen", { textDocument: { uri, languageId: "mdl", version, text } });
  }

  change(uri: string, version: number, changes: unknown[]): void {
    this.notify("textDocument/didChange", { textDocument: { uri, version }, contentChanges: changes });
  }

  async close(): Promise<number | null> {
    await this.request("shutdown", null);
    this.notify("exit", null);
    return new Promise((done) => this.proc.once("exit", (c) => done(c)));
  }
}

export const uriOf = (path: string) => pathToFileURL(resolve(path)).href;

/** The LSP position of the `k`-th character of the first occurrence of `needle` in `text`. */
export function positionOf(text: string, needle: string, k = 0): { line: number; character: number } {
  const at = text.indexOf(needle);
  if (at < 0) throw new Error(`'${needle}' not in the text`);
  const before = text.slice(0, at + k).split("\n");
  return { line: before.length - 1, character: before[before.length - 1].length };
}
