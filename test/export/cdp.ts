/**
 * A minimal Chrome DevTools Protocol client over headless chromium's --remote-debugging-pipe
 * (file descriptors 3 and 4, NUL-terminated JSON): enough to open a page, type, click and read
 * values back, with no package beyond Node.
 */
/* eslint-disable @typescript-eslint/no-explicit-any */
import { type ChildProcess, spawn } from "node:child_process";
import type { Readable, Writable } from "node:stream";

export const CHROMIUM = process.env.SDC_CHROMIUM ?? "/usr/bin/chromium";

export class Browser {
  private nextId = 1;
  private buf = "";
  private readonly pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();
  private readonly proc: ChildProcess;
  stderr = "";

  constructor(profile: string, extraFlags: string[] = []) {
    this.proc = spawn(CHROMIUM, ["--headless", "--no-sandbox", "--disable-gpu-sandbox", "--remote-debugging-pipe", `--user-data-dir=${profile}`, "--no-first-run", "--allow-file-access-from-files", ...extraFlags, "about:blank"], { stdio: ["ignore", "ignore", "pipe", "pipe", "pipe"] });
    this.proc.stderr!.on("data", (d) => (this.stderr = (this.stderr + d).slice(-4000)));
    (this.proc.stdio[4] as Readable).on("data", (d: Buffer) => {
      this.buf += d.toString("utf8");
      let at: number;
      while ((at = this.buf.indexOf("\0")) >= 0) {
        const msg = JSON.parse(this.buf.slice(0, at));
        this.buf = this.buf.slice(at + 1);
        const p = msg.id !== undefined ? this.pending.get(msg.id) : undefined;
        if (!p) continue;
        this.pending.delete(msg.id);
        if (msg.error) p.reject(new Error(`CDP: ${msg.error.message}`));
        else p.resolve(msg.result);
      }
    });
  }

  send(method: string, params: object = {}, sessionId?: string): Promise<any> {
    const id = this.nextId++;
    (this.proc.stdio[3] as Writable).write(JSON.stringify({ id, method, params, sessionId }) + "\0");
    return new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
  }

  /** Open `url` in a new tab; returns its session id. */
  async open(url: string): Promise<string> {
    const { targetId } = await this.send("Target.createTarget", { url });
    const { sessionId } = await this.send("Target.attachToTarget", { targetId, flatten: true });
    return sessionId;
  }

  /** Evaluate an expression in the page (promises awaited); its value. */
  async eval(session: string, expression: string): Promise<any> {
    const r = await this.send("Runtime.evaluate", { expression, awaitPromise: true, returnByValue: true }, session);
    if (r.exceptionDetails) throw new Error(`in the page: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`);
    return r.result.value;
  }

  /** Poll `expression` until it is truthy. */
  async until(session: string, expression: string, timeoutMs: number): Promise<void> {
    const t0 = Date.now();
    while (!(await this.eval(session, expression))) {
      if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${expression}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** End chromium and wait for it to exit (its profile folder is then free to remove). */
  async close(): Promise<void> {
    if (this.proc.exitCode !== null) return;
    const exited = new Promise((r) => this.proc.once("exit", r));
    this.proc.kill();
    await exited;
  }
}
