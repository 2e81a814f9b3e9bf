/**
 * `sdc lsp` driven through the protocol as an editor drives it (spawned, JSON-RPC over stdio):
 * initialize, didOpen, didChange, hover, definition, completion, on specs/sd3.mdl, its library
 * and broken specs; its diagnostics are compared with those of `sdc compile` (the CLI's JSON
 * output, and the compiler's own compile() over the same text).
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compile, type Diagnostic, summarizeDiagnostics } from "../../compiler/index.ts";
import { fsHost } from "../../cli/host.ts";
import type { SourceHost } from "../../compiler/program.ts";
import { LspClient, positionOf, uriOf } from "./lsp-client.ts";

const SD3 = "specs/sd3.mdl";
const LIB = "specs/lib/mmdit.mdl";
const sd3 = readFileSync(SD3, "utf8");
const lib = readFileSync(LIB, "utf8");

/** What an editor should show for a compiler diagnostic: code, range (0-based) and message. */
const expected = (d: Diagnostic) => ({
  code: d.code,
  message: d.hint ? `${d.message}\n= help: ${d.hint}` : d.message,
  range: { start: { line: d.span.start.line - 1, character: d.span.start.column - 1 }, end: { line: d.span.end.line - 1, character: d.span.end.column - 1 } },
});
const shown = (ds: { code: string; message: string; range: unknown }[]) => ds.map((d) => ({ code: d.code, message: d.message, range: d.range }));
/** The disk, with some files replaced (what the editor has open). */
const overlay = (files: Record<string, string>): SourceHost => ({ read: (p) => (files[p] !== undefined ? new TextEncoder().encode(files[p]) : fsHost.read(p)), resolve: fsHost.resolve });

let lsp: LspClient;
let version = 1;
beforeAll(async () => {
  lsp = new LspClient();
  const init = await lsp.initialize();
  expect(init.capabilities).toMatchObject({ hoverProvider: true, definitionProvider: true, completionProvider: expect.anything() });
  lsp.open(uriOf(SD3), sd3, version);
  lsp.open(uriOf(LIB), lib, 1);
});
afterAll(async () => {
  expect(await lsp.close()).toBe(0);
});

describe("diagnostics", () => {
  it("specs/sd3.mdl and its library: none, as sdc compile", async () => {
    expect(await lsp.diagnostics(uriOf(SD3), 1)).toEqual([]);
    expect(await lsp.diagnostics(uriOf(LIB), 1)).toEqual([]);
  });

  it("docs/examples/broken.mdl: exactly sdc compile's (codes, ranges, messages)", async () => {
    const file = "docs/examples/broken.mdl";
    const cli = spawnSync(process.execPath, ["bin/sdc.mjs", "compile", file, "--no-write", "--json"], { encoding: "utf8" });
    expect(cli.status).toBe(1);
    const want = (JSON.parse(cli.stdout).diagnostics as Diagnostic[]).map(expected);
    expect(want.length).toBe(3);
    lsp.open(uriOf(file), readFileSync(file, "utf8"));
    expect(shown(await lsp.diagnostics(uriOf(file)))).toEqual(want);
  });

  /** The diagnostics the server shows for SD3 with `text`: its own as compile() reports them, an imported file's on the import. */
  const wantFor = (files: Record<string, string>, path: string, text: string) => {
    const ds = compile(path, overlay(files), { generate: false }).diagnostics;
    const imp = { start: positionOf(text, "import "), end: positionOf(text, 'import "lib/mmdit.mdl"', 'import "lib/mmdit.mdl"'.length) };
    return [
      ...ds.filter((d) => d.span.file === path).map(expected),
      ...ds.filter((d) => d.span.file !== path).map((d) => ({ ...expected(d), range: imp, message: `${d.span.file}:${d.span.start.line}:${d.span.start.column}: ${expected(d).message}` })),
    ];
  };

  // edits of specs/sd3.mdl as typed (didChange), each compared with compile() of the same text
  const edits: [string, string, string, RegExp][] = [
    ["a misspelt setting", "batch: 64", "bacth: 64", /^SDC700$/],
    ["a syntax error", "param depth = 12", "param depth = ", /^SDC200$/],
    ["a setting out of range", "cfg_drop: 0.2", "cfg_drop: 1.5", /^SDC702$/],
    ["an interface mismatch (with a hint)", "channels: 1", "channels: 3", /^SDC703$/],
    ["a shape error inside the library, from the spec's values", "param patch = 8", "param patch = 5", /^SDC502$/],
    ["an unknown block", "network: mmdit(", "network: mmdti(", /^SDC304$/],
  ];
  it.each(edits)("%s (didChange) matches compile()", async (_, from, to, code) => {
    const text = sd3.replace(from, to);
    expect(text).not.toBe(sd3);
    const want = wantFor({ [SD3]: text }, SD3, text);
    expect(want.map((d) => d.code).join(" ")).toMatch(code);
    const start = positionOf(sd3, from);
    const end = positionOf(sd3, from, from.length);
    lsp.change(uriOf(SD3), ++version, [{ range: { start, end }, text: to }]);
    expect(shown(await lsp.diagnostics(uriOf(SD3), version))).toEqual(want);
    // and back: clean again
    lsp.change(uriOf(SD3), ++version, [{ text: sd3 }]);
    expect(await lsp.diagnostics(uriOf(SD3), version)).toEqual([]);
  });

  it("warnings of one kind after the first 20 are one line, as sdc compile prints them", async () => {
    // 30 unused spec parameters: 30 SDC310 warnings
    const path = "specs/lsp-unused.mdl";
    const text = sd3.replace("param depth = 12", `param depth = 12\n${Array.from({ length: 30 }, (_, k) => `  param unused_${k} = ${k}\n`).join("")}`);
    const all = compile(path, overlay({ [path]: text }), { generate: false }).diagnostics;
    expect(all.filter((d) => d.code === "SDC310").length).toBe(30);
    lsp.open(uriOf(path), text);
    const got = shown(await lsp.diagnostics(uriOf(path)));
    expect(got).toEqual(summarizeDiagnostics(all).map(expected));
    expect(got.filter((d) => d.code === "SDC310").length).toBe(21);
    expect(got.at(-1)).toMatchObject({ code: "SDC310", message: "... and 10 more SDC310 warnings (the first of them here)" });
    expect(got.at(-1)!.range).toEqual({ start: positionOf(text, "param unused_20", 6), end: positionOf(text, "param unused_20", 15) });
  });

  it("a mistake in the open library: on the library's line, and on the spec's import", async () => {
    const broken = lib.replace("c = linear(context, width) as context_embedder", "c = linaer(context, width) as context_embedder");
    expect(broken).not.toBe(lib);
    const want = compile(SD3, overlay({ [LIB]: broken }), { generate: false }).diagnostics;
    expect(want.map((d) => d.code)).toContain("SDC304");
    lsp.drop((m) => m.method === "textDocument/publishDiagnostics");
    lsp.change(uriOf(LIB), 2, [{ text: broken }]);
    expect(shown(await lsp.diagnostics(uriOf(LIB), 2))).toEqual(want.filter((d) => d.span.file === LIB).map(expected));
    const onSpec = await lsp.diagnostics(uriOf(SD3));
    expect(shown(onSpec)).toEqual(wantFor({ [LIB]: broken }, SD3, sd3));
    expect(onSpec[0].message).toMatch(/^specs\/lib\/mmdit\.mdl:\d+:\d+: unknown block or primitive 'linaer'/);
    lsp.drop((m) => m.method === "textDocument/publishDiagnostics");
    lsp.change(uriOf(LIB), 3, [{ text: lib }]);
    expect(await lsp.diagnostics(uriOf(LIB), 3)).toEqual([]);
    expect(await lsp.diagnostics(uriOf(SD3))).toEqual([]);
  });
});

describe("hover", () => {
  const hover = async (path: string, text: string, needle: string, k = 0) => (await lsp.request("textDocument/hover", { textDocument: { uri: uriOf(path) }, position: positionOf(text, needle, k) }))?.contents.value as string | undefined;
  const cases: [string, string, string, number, RegExp][] = [
    ["a tensor in the library, with the shapes from sd3", LIB, "ah, ac = joint_attention(nh", 0, /ah: \[B, N, width\] = \[B, 16, 384\]/],
    ["a reassigned value", LIB, "h = h + unsqueeze(gate_msa", 0, /h: \[B, N, width\] = \[B, 16, 384\]/],
    ["a block parameter used in an expression", LIB, "linear(context, width)", 16, /width: int = 384/],
    ["a primitive call: weights and state-dict names", LIB, "linear(context, width)", 1, /state dict: `context_embedder`; parameters: 98,688[\s\S]*`context_embedder\.weight` \[384, 256\]/],
    ["a repeated block call: instances and sizes", LIB, "mmdit_block(h, c, y", 2, /block mmdit_block\(width: int, heads: int[\s\S]*`transformer_blocks\.0` \.\.\. `transformer_blocks\.11` \(12 instances\); parameters: 5,319,936 \/ 3,399,168/],
    ["a spec parameter", SD3, "param depth = 12", 7, /param depth: int = 12[\s\S]*in sd3: `depth = 12`/],
    ["a setting", SD3, "batch: 64", 1, /train\.batch: int in \[1, 65536\][\s\S]*batch size/],
    ["a block name", LIB, "block mmdit_block(", 8, /in sd3: 12 instances .*5,319,936 \/ 3,399,168 parameters each/],
  ];
  it.each(cases)("%s", async (_, path, needle, k, want) => {
    expect(await hover(path, path === SD3 ? sd3 : lib, needle, k)).toMatch(want);
  });
});

describe("definition", () => {
  const def = async (path: string, text: string, needle: string, k = 0) => lsp.request("textDocument/definition", { textDocument: { uri: uriOf(path) }, position: positionOf(text, needle, k) });
  it("a block called in the spec: its declaration in the library", async () => {
    expect(await def(SD3, sd3, "network: mmdit(", 10)).toEqual({ uri: uriOf(LIB), range: { start: positionOf(lib, "block mmdit(", 6), end: positionOf(lib, "block mmdit(", 11) } });
  });
  it("a block called in a block", async () => {
    expect(await def(LIB, lib, "mmdit_block(h, c, y", 3)).toEqual({ uri: uriOf(LIB), range: { start: positionOf(lib, "block mmdit_block(", 6), end: positionOf(lib, "block mmdit_block(", 17) } });
  });
  it("an import: the file", async () => {
    expect(await def(SD3, sd3, 'import "lib/mmdit.mdl"', 3)).toEqual({ uri: uriOf(resolve(LIB)), range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } } });
  });
  it("a name: the block parameter it refers to", async () => {
    const r = await def(LIB, lib, "linear(context, width)", 16);
    expect(r.uri).toBe(uriOf(LIB));
    expect(lib.split("\n")[r.range.start.line].slice(r.range.start.character, r.range.end.character)).toBe("width");
  });
});

describe("completion", () => {
  const complete = async (path: string, text: string, needle: string, k = 0) =>
    (await lsp.request("textDocument/completion", { textDocument: { uri: uriOf(path) }, position: positionOf(text, needle, k) })) as { label: string; detail: string; kind: number }[];
  it("settings inside a section, with their types", async () => {
    const items = await complete(SD3, sd3, "batch: 64");
    expect(items.map((i) => i.label)).toEqual(expect.arrayContaining(["optimizer", "clip", "batch", "steps", "ema", "warmup"]));
    expect(items.find((i) => i.label === "batch")!.detail).toBe("train.batch: int");
    expect(items.map((i) => i.label)).not.toContain("linear");
  });
  it("primitives, blocks and parameters in an expression, with signatures", async () => {
    const items = await complete(LIB, lib, "linear(context, width)", 0);
    const by = (l: string) => items.find((i) => i.label === l);
    expect(by("linear")?.detail).toBe('linear(x: tensor, out: int, bias: bool = true, init: string = "torch")');
    expect(by("mmdit_block")?.detail).toMatch(/^block mmdit_block\(width: int, heads: int, mlp_ratio: int = 4, pre_only: bool = false\)/);
    expect(by("context_dim")?.detail).toBe("context_dim: int");
  });
  it("named arguments inside a call, while the text does not parse", async () => {
    const text = lib.replace("c = linear(context, width) as context_embedder", "c = linear(context, width, ");
    lsp.change(uriOf(LIB), 10, [{ text }]);
    expect((await lsp.diagnostics(uriOf(LIB), 10)).map((d: { code: string }) => d.code).join(" ")).toMatch(/^SDC20\d/);
    const items = await complete(LIB, text, "c = linear(context, width, ", 27);
    expect(items.filter((i) => i.kind === 5 /* Field */).map((i) => i.label)).toEqual(["x", "out", "bias", "init", "weight_name", "bias_name", "share"]) // its own, then every weighted primitive's;
    lsp.change(uriOf(LIB), 11, [{ text: lib }]);
    expect(await lsp.diagnostics(uriOf(LIB), 11)).toEqual([]);
  });
});
