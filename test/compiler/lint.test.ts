/**
 * Diagnostics for mistakes that used to compile silently or be reported far from the cause, one
 * bad input per row (as diagnostics.test.ts): a missing `)` or `]` pointed at where it is missing
 * (SDC203), unused parameters and inputs (warning SDC310), weights that never reach the output
 * (SDC311), a network that ignores one of its inputs (SDC704). Positions were counted by hand.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { runCompile } from "../../cli/commands/compile.ts";
import { loadCompiled } from "../../cli/generated.ts";
import { ParamStore } from "../../runtime/nn/params.ts";
import type { CompileOptions, CompileResult } from "../../compiler/index.ts";
import type { Diagnostic } from "../../compiler/diagnostics.ts";
import { blockB, compileSource, type Expected, expectError, lines, net, spec } from "./helpers.ts";

interface Case extends Expected {
  name: string;
  src: string;
  files?: Record<string, string>;
  opts?: CompileOptions;
}

/** Assert `result` compiled (IR and files) and carries a warning of `code` at exactly line:col. */
function expectWarning(result: CompileResult, e: Expected): Diagnostic {
  const show = result.diagnostics.map((d) => `  ${d.severity} ${d.code} ${d.span.file}:${d.span.start.line}:${d.span.start.column} ${d.message}`).join("\n") || "  (none)";
  const d = result.diagnostics.find((x) => x.code === e.code && x.span.start.line === e.line && x.span.start.column === e.col && (typeof e.msg === "string" ? x.message.includes(e.msg) : e.msg.test(x.message)));
  if (!d) throw new Error(`expected ${e.code} at ${e.line}:${e.col} (${String(e.msg)}), got:\n${show}`);
  expect(d.severity).toBe("warning");
  expect(result.diagnostics.filter((x) => x.severity === "error"), show).toEqual([]);
  expect(result.ir).toBeDefined();
  expect(result.files).toBeDefined();
  return d;
}

// ---------------------------------------------------------------- brackets

const brackets: Case[] = [
  {
    name: "missing `)` in a forward statement: pointed at the end of that line, not at the block",
    src: lines(blockB("    h = linear(x, width as l\n    return h"), net(), spec()),
    code: "SDC203", line: 3, col: 29, msg: "missing `)`: the `(` at 3:15 is not closed before the next statement on line 4",
  },
  {
    name: "missing `)` before the `}` that closes a section on the same line",
    src: lines(net(), spec(undefined, ["  train { optimizer: adam(lr: 1e-3  batch: 8 }"])),
    code: "SDC203", line: 11, col: 45, msg: "missing `)`: the `(` at 11:26 is not closed before `}`",
  },
  {
    name: "missing `]` in a shape",
    src: lines(blockB("    return x", "x: [B, N, width"), net(), spec()),
    code: "SDC203", line: 2, col: 26, msg: "missing `]`: the `[` at 2:14 is not closed before `)`",
  },
  {
    name: "missing `)` of a multi-line network call: pointed at its last line",
    src: lines(net(), "spec s {", "  text { encoder: external(tokens: 5, width: 24, pooled: 20) }", "  network: net(ch: 1,", "               ctx: 24", "  train { steps: 2 }", "}"),
    code: "SDC203", line: 10, col: 23, msg: "not closed before the next statement on line 11",
  },
  {
    name: "an extra `)`",
    src: lines(blockB("    h = silu(x))\n    return h"), net(), spec()),
    code: "SDC200", line: 3, col: 16, msg: "unmatched `)`: no `(` is open here",
  },
];

// ---------------------------------------------------------------- unused parameters and inputs (warnings)

const unused: Case[] = [
  {
    name: "unused block parameter",
    src: lines(blockB("    return x", undefined, "width: int, depth: int = 2"), net("    y = b(c, width: 24)"), spec()),
    code: "SDC310", line: 1, col: 21, msg: "parameter 'depth' of block b is never used",
  },
  {
    name: "unused spec parameter (a variant setting it is no use)",
    src: lines(net(), spec(undefined, ["  param depth = 2", "  variant small { depth = 1 }"])),
    code: "SDC310", line: 11, col: 9, msg: "parameter 'depth' of spec s is never used",
  },
  {
    name: "unused forward input of a block",
    src: lines(blockB("    return x", "x: [B, N, width], g: [B, width]"), net("    y = b(c, p, width: 24)"), spec(undefined, [], { text: "external(tokens: 5, width: 24, pooled: 24)" })),
    code: "SDC310", line: 2, col: 29, msg: "input 'g' of block b is never used",
  },
];

// ---------------------------------------------------------------- weights that never reach the output

/** specs/lib/text.mdl, for the learned text encoder */
const TEXT_LIB = readFileSync(new URL("../../specs/lib/text.mdl", import.meta.url), "utf8");
const learned = { text: "text_encoder(vocab: 32, tokens: 5, width: 24, depth: 1, heads: 2)  tokens: 5" };

/** block `two` (6 lines): a new image stream from h, and a context stream through its own linear */
const two = lines(
  "block two(width: int) {",
  "  forward(h: [B, N, width], c: [B, T, width]) -> ([B, N, width], [B, T, width]) {",
  "    c = linear(c, width) as ctx_out",
  "    return h + linear(h, width) as img_out, c",
  "  }",
  "}",
);

/** a network whose forward (line 2) leaves out `c` and `p` from what it returns */
const deaf = lines(
  "block net(ch: int, ctx: int) {",
  "  forward(x: [B, H, W, ch], t: [B], c: [B, T, ctx], p: [B, P]) -> [B, H, W, ch] {",
  "    return x + unsqueeze(unsqueeze(unsqueeze(t, 1), 2), 3)",
  "  }",
  "}",
);

const weights: Case[] = [
  {
    name: "a named call whose value is never used",
    src: lines(net("    y = linear(c, 3) as l"), spec()),
    code: "SDC311", line: 3, col: 9, msg: "the weights of 'l' (linear, 75 parameters) never reach the network's output",
  },
  {
    name: "a value overwritten before it is read",
    src: lines(net("    h = linear(c, 4) as first\n    h = linear(c, 4) as second\n    t = t + mean(mean(h, axis: 2), axis: 1)"), spec()),
    code: "SDC311", line: 3, col: 9, msg: "the weights of 'first' (linear, 100 parameters)",
  },
  {
    name: "a block output the caller drops, in a loop: one error for the call, naming each instance",
    src: lines(two, net("    for i in 0 .. 3 {\n      c2, d = two(c, c, width: 24) as blk[i]\n      t = t + mean(mean(c2, axis: 2), axis: 1)\n    }"), spec()),
    code: "SDC311", line: 3, col: 9, msg: "the weights of 'blk.0.ctx_out' and 2 more (blk.1.ctx_out, blk.2.ctx_out) (linear, 1,800 parameters)",
  },
  {
    name: "a branch not taken with this spec's parameters leaves a call's result unused",
    src: lines("block b(width: int, use_it: bool) {", "  forward(x: [B, N, width]) -> [B, N, width] {", "    y = linear(x, width) as proj", "    if use_it {", "      x = x + y", "    }", "    return x", "  }", "}", net("    c = b(c, width: 24, use_it: false) as blk"), spec()),
    code: "SDC311", line: 3, col: 9, msg: "the weights of 'blk.proj' (linear, 600 parameters)",
  },
  {
    name: "unused weights of the learned text encoder itself",
    src: lines('import "lib/text.mdl"', "block enc(vocab: int, tokens: int, width: int) {", "  forward(ids: int32[B, tokens]) -> ([B, tokens, width], [B, width]) {", "    h = embedding(ids, vocab, width) as tok", "    extra = linear(h, width) as unused_proj", "    return h, mean(h, axis: 1)", "  }", "}", net(), spec(undefined, [], { text: "enc(vocab: 32, tokens: 5, width: 24)  tokens: 5" })),
    files: { "lib/text.mdl": TEXT_LIB },
    code: "SDC311", line: 5, col: 13, msg: "the weights of 'text_encoder.unused_proj' (linear, 600 parameters)",
  },
];

// ---------------------------------------------------------------- a network ignoring an input

const inputs: Case[] = [
  {
    name: "context ignored, with a learned text encoder (it used to fail in training with exit 70)",
    src: lines('import "lib/text.mdl"', deaf, spec(undefined, [], learned)),
    files: { "lib/text.mdl": TEXT_LIB },
    code: "SDC704", line: 3, col: 37, msg: "network net never uses its input 'c' [B, 5, 24], fed by the text encoder (text_encoder, trained with the network: context tokens): its output does not depend on it; the text encoder's weights would get no gradient",
  },
  {
    name: "pooled ignored, external text features",
    src: lines(deaf, spec()),
    code: "SDC704", line: 2, col: 53, msg: "network net never uses its input 'p' [B, 20], fed by the text encoder (pooled text)",
  },
  {
    name: "the timestep read only in a branch this spec does not take",
    src: lines("block net(ch: int, ctx: int, timed: bool = false) {", "  forward(x: [B, H, W, ch], t: [B], c: [B, T, ctx], p: [B, P]) -> [B, H, W, ch] {", "    m = mean(mean(c, axis: 2), axis: 1) + mean(p, axis: 1)", "    if timed {", "      m = m + t", "    }", "    return x + unsqueeze(unsqueeze(unsqueeze(m, 1), 2), 3)", "  }", "}", spec()),
    code: "SDC704", line: 2, col: 29, msg: "never uses its input 't' [B], fed by the flow (the timestep)",
  },
];

describe.each([
  ["weights that never reach the output", weights, "error"],
  ["a network ignoring an input", inputs, "error"],
  ["brackets", brackets, "error"],
  ["unused parameters and inputs", unused, "warning"],
] as const)("%s", (_, cases, severity) => {
  it.each(cases.map((c) => [c.name, c] as const))("%s", (_, c) => {
    const r = compileSource(c.src, { ...c.opts, files: c.files });
    if (severity === "error") expectError(r, c);
    else expectWarning(r, c);
  });
});

describe("what is not reported", () => {
  it("the text encoder's weights are not reported again when the network ignores both text inputs", () => {
    const r = compileSource(lines('import "lib/text.mdl"', deaf, spec(undefined, [], learned)), { files: { "lib/text.mdl": TEXT_LIB } });
    expect(r.diagnostics.map((d) => `${d.severity} ${d.code} ${d.span.start.line}:${d.span.start.column}`)).toEqual(["error SDC704 3:37", "error SDC704 3:53"]);
  });

  it("the same spec with the branch taken compiles cleanly", () => {
    const src = lines("block b(width: int, use_it: bool) {", "  forward(x: [B, N, width]) -> [B, N, width] {", "    y = linear(x, width) as proj", "    if use_it {", "      x = x + y", "    }", "    return x", "  }", "}", net("    c = b(c, width: 24, use_it: true) as blk"), spec());
    const r = compileSource(src);
    expect(r.diagnostics).toEqual([]);
    expect(r.ir!.stats.networkParams).toBe(600);
  });

  it("a multi-line call and a parameter default on its own line are no missing `)`", () => {
    const r = compileSource(lines("block b(width: int,", "        depth = 2) {", "  forward(x: [B, N, width]) -> [B, N, width] {", "    return linear(x,", "                  width) as l", "  }", "}", net("    y = b(c, width: 24, depth: 3) as blk"), spec()));
    expect(r.diagnostics.filter((d) => d.code === "SDC203" || d.code === "SDC202")).toEqual([]);
  });

  it("a name starting with `_` is unused on purpose", () => {
    const r = compileSource(lines(blockB("    return x", "x: [B, N, width], _g: [B, width]", "width: int, _depth: int = 2"), net("    y = b(c, p, width: 24)"), spec(undefined, [], { text: "external(tokens: 5, width: 24, pooled: 24)" })));
    expect(r.diagnostics).toEqual([]);
    expect(r.ir).toBeDefined();
  });
});

describe("a weight-free helper block needs no `as name`", () => {
  const tmp = mkdtempSync(join(tmpdir(), "sdc-helper-"));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  // `gate` creates no parameters: called bare, in a loop and in a branch; `mix` has weights and is named
  const src = lines(
    "block gate(k: int) {",
    "  forward(h: [B, N, D]) -> [B, N, D] {",
    "    return h * sigmoid(h) * k",
    "  }",
    "}",
    "block mix(width: int, depth: int, twice: bool = true) {",
    "  forward(h: [B, N, width]) -> [B, N, width] {",
    "    h = gate(h, k: 2)",
    "    for i in 0 .. depth {",
    "      h = linear(gate(h, k: i + 1), width) as layers[i]",
    "    }",
    "    if twice {",
    "      h = gate(h, k: 3)",
    "    }",
    "    return h",
    "  }",
    "}",
    "block net(ch: int, ctx: int) {",
    "  forward(x: [B, H, W, ch], t: [B], c: [B, T, ctx], p: [B, P]) -> [B, H, W, ch] {",
    "    m = mean(mean(mix(c, width: ctx, depth: 2) as mix, axis: 2), axis: 1) + mean(p, axis: 1) + t",
    "    return x + unsqueeze(unsqueeze(unsqueeze(m, 1), 2), 3)",
    "  }",
    "}",
    spec(),
  );

  it("compiles without diagnostics; only the named calls are in the state dict", () => {
    const r = compileSource(src);
    expect(r.diagnostics).toEqual([]);
    expect(r.ir!.parameters.map((p) => p.name)).toEqual(["mix.layers.0.weight", "mix.layers.0.bias", "mix.layers.1.weight", "mix.layers.1.bias"]);
    expect(r.ir!.modules[0].children.map((m) => m.path)).toEqual(["mix"]);
  });

  it("a helper that does own weights still needs a name (SDC405)", () => {
    const r = compileSource(src.replace("as mix,", ","));
    expectError(r, { code: "SDC405", line: 20, col: 19, msg: "'mix' has parameters: name it" });
  });

  it("the generated network runs and computes the helper's function", async () => {
    const { writeFileSync } = await import("node:fs");
    const file = join(tmp, "helper.mdl");
    writeFileSync(file, src);
    let text = "";
    const sink = { write: (s: string) => ((text += s), true), isTTY: false };
    expect(runCompile(file, { outDir: tmp, quiet: true }, sink, sink), text).toBe(0);
    await tf.setBackend("cpu");
    const loaded = await loadCompiled(join(tmp, "helper"));
    if (loaded.spec.task === "classifier") throw new Error("not a diffusion spec");
    const store = new ParamStore(0);
    const netw = loaded.spec.createNetwork(store);
    const x = tf.zeros([1, 32, 32, 1]) as tf.Tensor4D;
    const t = tf.tensor1d([0.5]);
    const c = tf.randomNormal([1, 5, 24], 0, 1, "float32", 1) as tf.Tensor3D;
    const p = tf.randomNormal([1, 20], 0, 1, "float32", 2) as tf.Tensor2D;
    const out = netw.forward(x, t, c, p);
    // the same function by hand
    const gate = (h: tf.Tensor, k: number) => h.mul(tf.sigmoid(h)).mul(k);
    const lin = (h: tf.Tensor, i: number) => tf.matMul(h.reshape([-1, 24]), store.vars.get(`mix.layers.${i}.weight`)!, false, true).add(store.vars.get(`mix.layers.${i}.bias`)!).reshape(h.shape);
    let h: tf.Tensor = gate(c, 2);
    for (let i = 0; i < 2; i++) h = lin(gate(h, i + 1), i);
    h = gate(h, 3);
    const m = h.mean(2).mean(1).add(p.mean(1)).add(t);
    const want = x.add(m.reshape([1, 1, 1, 1]));
    expect(out.shape).toEqual([1, 32, 32, 1]);
    expect(tf.max(tf.abs(out.sub(want))).dataSync()[0]).toBeLessThan(1e-5);
  });
});

describe("sdc compile with warnings", () => {
  const tmp = mkdtempSync(join(tmpdir(), "sdc-warn-"));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it("prints them positioned, says how many, writes the package and exits 0; --quiet leaves them out", async () => {
    const { writeFileSync, existsSync } = await import("node:fs");
    const file = join(tmp, "w.mdl");
    writeFileSync(file, lines(blockB("    return x", undefined, "width: int, depth: int = 2"), net("    y = b(c, width: 24)"), spec()));
    let out = "";
    let err = "";
    const o = { write: (s: string) => ((out += s), true), isTTY: false };
    const e = { write: (s: string) => ((err += s), true), isTTY: false };
    expect(runCompile(file, { outDir: tmp }, o, e)).toBe(0);
    expect(err).toContain(`${file}:1:21: warning SDC310: parameter 'depth' of block b is never used`);
    expect(err).toContain(`1 warning in ${file}`);
    expect(existsSync(join(tmp, "w", "model.ts"))).toBe(true);
    err = "";
    expect(runCompile(file, { outDir: tmp, quiet: true }, o, e)).toBe(0);
    expect(err).toBe("");
  });
});
