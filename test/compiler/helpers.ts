/**
 * Shared helpers for the compiler tests: in-memory compiles of small sources, and
 * `expectError`, which finds a diagnostic by code and 1-based position and checks its message.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";
import { compile, type CompileOptions, type CompileResult, memoryHost } from "../../compiler/index.ts";
import type { Diagnostic } from "../../compiler/diagnostics.ts";

/** The repository root (tests never read outside it). */
export const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** specs/lib/mmdit.mdl, for the few cases that use the real library blocks (by import "lib/mmdit.mdl"). */
export const MMDIT_LIB = readFileSync(new URL("../../specs/lib/mmdit.mdl", import.meta.url), "utf8");

/** Compile `main.mdl` with the given text (or bytes), plus other in-memory files. */
export function compileSource(main: string | Uint8Array, opts: CompileOptions & { files?: Record<string, string | Uint8Array> } = {}): CompileResult {
  const { files, ...copts } = opts;
  return compile("main.mdl", memoryHost({ "main.mdl": main, "lib/mmdit.mdl": MMDIT_LIB, ...files }), copts);
}

/** Lines joined with "\n", so each part's line numbers are easy to count. */
export const lines = (...parts: string[]) => parts.join("\n");

/**
 * A minimal diffusion network that passes the image through, calling whatever `body` says first
 * (one or more lines, already indented). Its context input is [B, T, ctx]. It reads every input
 * (a network ignoring one is an error, SDC704), adding a [B, 1, 1, 1] mix of t, c and p to x.
 *   line +1  block net(ch: int, ctx: int) {
 *   line +2    forward(...) -> [B, H, W, ch] {
 *   line +3    <body>
 */
export function net(body = "    y = x"): string {
  return lines(
    "block net(ch: int, ctx: int) {",
    "  forward(x: [B, H, W, ch], t: [B], c: [B, T, ctx], p: [B, P]) -> [B, H, W, ch] {",
    body,
    "    return x + unsqueeze(unsqueeze(unsqueeze(t + mean(mean(c, axis: 2), axis: 1) + mean(p, axis: 1), 1), 2), 3)",
    "  }",
    "}",
  );
}

/**
 * A spec around a network call (5 lines plus `extra` lines before the closing brace):
 *   line +1  spec s {
 *   line +2    data { ... }
 *   line +3    text { encoder: external(tokens: 5, width: 24, pooled: 20) }
 *   line +4    network: <call>          (the call starts at column 12)
 */
export function spec(call = "net(ch: 1, ctx: 24)", extra: string[] = [], opts: { image?: string; text?: string } = {}): string {
  return lines(
    "spec s {",
    `  data { source: mnist  image: ${opts.image ?? "[32, 32, 1]"} }`,
    `  text { encoder: ${opts.text ?? "external(tokens: 5, width: 24, pooled: 20)"} }`,
    `  network: ${call}`,
    ...extra,
    "}",
  );
}

/** A block `b(width)` of 5 lines whose forward body is the single line `body`. */
export function blockB(body: string, sig = "x: [B, N, width]", params = "width: int"): string {
  return lines(`block b(${params}) {`, `  forward(${sig}) -> [B, N, width] {`, body, "  }", "}");
}

export interface Expected {
  code: string;
  line: number;
  col: number;
  /** a fragment of the message (or a pattern) */
  msg: string | RegExp;
  /** the file of the span (default: any) */
  file?: string;
}

function show(ds: readonly Diagnostic[]): string {
  return ds.length ? ds.map((d) => `  ${d.code} ${d.span.file}:${d.span.start.line}:${d.span.start.column} ${d.message}`).join("\n") : "  (no diagnostics)";
}

/** Assert `result` failed with a diagnostic of `code` at exactly line:col whose message contains `msg`. */
export function expectError(result: CompileResult, e: Expected): Diagnostic {
  const at = result.diagnostics.filter((d) => d.code === e.code && d.span.start.line === e.line && d.span.start.column === e.col && (e.file === undefined || d.span.file === e.file));
  if (!at.length) throw new Error(`expected ${e.code} at ${e.file ?? ""}:${e.line}:${e.col} (${String(e.msg)}), got:\n${show(result.diagnostics)}`);
  const d = at.find((x) => (typeof e.msg === "string" ? x.message.includes(e.msg) : e.msg.test(x.message)));
  if (!d) throw new Error(`${e.code} at ${e.line}:${e.col} has the wrong message: expected it to contain ${String(e.msg)}, got:\n${show(at)}`);
  expect(d.severity).toBe("error");
  // spans are well formed: 1-based, end not before start
  expect(d.span.start.line).toBeGreaterThanOrEqual(1);
  expect(d.span.start.column).toBeGreaterThanOrEqual(1);
  expect(d.span.end.offset).toBeGreaterThanOrEqual(d.span.start.offset);
  // a failed compile produces no IR and writes nothing
  expect(result.ir).toBeUndefined();
  expect(result.files).toBeUndefined();
  return d;
}
