/**
 * Diagnostics for mistakes that used to compile silently or be reported far from the cause, one
 * bad input per row (as diagnostics.test.ts): a missing `)` or `]` pointed at where it is missing
 * (SDC203), unused parameters and inputs (warning SDC310), weights that never reach the output
 * (SDC311), a network that ignores one of its inputs (SDC704). Positions were counted by hand.
 */
import { mkdtempSync, rmSync } from "node:fs";
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
];

// ---------------------------------------------------------------- unused parameters and inputs (warnings)

const unused: Case[] = [
  {
    name: "unused block parameter",
    src: lines(blockB("    return x", undefined, "width: int, depth: int = 2"), net("    y = b(c, width: 24)"), spec()),
    code: "SDC310", line: 1, col: 21, msg: "parameter 'depth' of block b is never used",
  },
  {
    name: "unused forward input of a block",
    src: lines(blockB("    return x", "x: [B, N, width], g: [B, width]"), net("    y = b(c, p, width: 24)"), spec(undefined, [], { text: "external(tokens: 5, width: 24, pooled: 24)" })),
    code: "SDC310", line: 2, col: 29, msg: "input 'g' of block b is never used",
  },
];

describe.each([
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
