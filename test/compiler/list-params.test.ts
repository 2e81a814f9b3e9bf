/**
 * List-typed block parameters (`widths: int[]`, `float[]`): list literals as arguments and spec
 * params (`param widths = [64, 128]`, `--set widths=64,128`), indexing `widths[i]` (negative from
 * the end) and `len(widths)`, positioned errors for a bad index or type, and the generated package
 * building what the checker counted.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runCompile } from "../../cli/commands/compile.ts";
import { loadCompiled } from "../../cli/generated.ts";
import { ParamStore } from "../../runtime/nn/params.ts";
import { at } from "../../runtime/nn/functional.ts";
import { compileSource, type Expected, expectError, lines, net, spec } from "./helpers.ts";

/** net() (lines 1-6), then a spec (7-10) with `param widths = [24, 32, 16]` (11) and `let v = <expr>` (12, at column 11). */
const letSpec = (expr: string, widths = "[24, 32, 16]") => lines(net(), spec("net(ch: 1, ctx: 24)", [`  param widths = ${widths}`, `  let v = ${expr}`]));

describe("values: indexing and len on a spec's list parameter", () => {
  it.each<[string, number]>([
    ["widths[0]", 24],
    ["widths[2]", 16],
    ["widths[-1]", 16],
    ["widths[-3]", 24],
    ["widths[len(widths) - 2]", 32],
    ["len(widths)", 3],
    ["len([])", 0],
    ["widths[1] div widths[2]", 2],
  ])("%s = %d", (expr, want) => {
    const r = compileSource(letSpec(expr));
    expect(r.diagnostics.filter((d) => d.severity === "error"), JSON.stringify(r.diagnostics)).toEqual([]);
    expect(r.ir!.spec.params.v).toBe(want);
    expect(r.ir!.spec.params.widths).toEqual([24, 32, 16]);
  });

  it("--set widths=64,128 (and =[64,128]) overrides the list", () => {
    for (const set of ["widths=64,128", "widths=[64, 128]"]) {
      const r = compileSource(letSpec("widths[-1]"), { sets: [set] });
      expect(r.diagnostics.filter((d) => d.severity === "error"), JSON.stringify(r.diagnostics)).toEqual([]);
      expect(r.ir!.spec.params.widths).toEqual([64, 128]);
      expect(r.ir!.spec.overrides.widths).toEqual([64, 128]);
      expect(r.ir!.spec.params.v).toBe(128);
    }
  });
});

const bad: (Expected & { name: string; expr: string; widths?: string })[] = [
  { name: "index past the end", expr: "widths[3]", code: "SDC407", line: 12, col: 18, msg: "index 3 is out of range for 'widths' of length 3 (indices 0 .. 2, or -3 .. -1 from the end)" },
  { name: "negative index past the front", expr: "widths[-4]", code: "SDC407", line: 12, col: 18, msg: "index -4 is out of range for 'widths' of length 3" },
  { name: "a float index", expr: "widths[1.0]", code: "SDC401", line: 12, col: 18, msg: "a list index must be an integer, got float 1" },
  { name: "indexing a number", expr: "v2[0]", code: "SDC300", line: 12, col: 11, msg: "unknown identifier 'v2'" },
  { name: "len of a number", expr: "len(widths[0])", code: "SDC401", line: 12, col: 15, msg: "len needs a list, got int" },
  { name: "len of two lists", expr: "len(widths, widths)", code: "SDC400", line: 12, col: 11, msg: "len takes one list" },
];

describe("errors: code, position, message", () => {
  it.each(bad)("$name", (c) => {
    expectError(compileSource(letSpec(c.expr, c.widths)), c);
  });

  it("indexing a scalar parameter", () => {
    const r = compileSource(lines(net(), spec("net(ch: 1, ctx: 24)", ["  param depth = 4", "  let v = depth[0]"])));
    expectError(r, { code: "SDC401", line: 12, col: 11, msg: "'depth' is int, not a list: only lists are indexed" });
  });

  it.each<[string, string, string, number, string]>([
    ["a number for int[]", "widths: int[]", "widths: 3", 22, "parameter 'widths' of b is int[], got int 3"],
    ["floats for int[]", "widths: int[]", "widths: [1.5, 2]", 22, "parameter 'widths' of b is int[], got float[] [1.5, 2]"],
    ["a list for an int", "width: int", "width: [1, 2]", 21, "parameter 'width' of b is int, got int[] [1, 2]"],
  ])("block parameter type: %s", (_, param, arg, col, msg) => {
    const block = lines(`block b(${param}) {`, "  forward(x: [B, N, 24]) -> [B, N, 24] {", "    return x", "  }", "}");
    const r = compileSource(lines(block, net(`    y = b(c, ${arg})`), spec()));
    expectError(r, { code: "SDC401", line: 8, col, msg });
  });

  it("--set of a list for an int parameter", () => {
    const r = compileSource(lines(net(), spec("net(ch: 1, ctx: 24)", ["  param depth = 4"])), { sets: ["depth=1,2"] });
    expect(r.diagnostics.map((d) => d.message).join("\n")).toContain("parameter 'depth' is int, got int[] [1, 2]");
  });
});

describe("blocks: a list parameter indexed by the loop variable, compiled and built", () => {
  const tmp = mkdtempSync(join(tmpdir(), "sdc-list-params-"));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const sink = { write: () => true, isTTY: false } as unknown as NodeJS.WriteStream;

  const src = lines(
    "block branches(width: int, widths: int[], gains: float[] = [1.0, 0.5, 2]) {",
    "  require len(widths) == len(gains), \"one gain per branch\"",
    "  forward(x: [B, N, width]) -> [B, N, width] {",
    "    h = x",
    "    for i in 0 .. len(widths) {",
    "      h = h + linear(linear(x, widths[i]) as up[i], width) as down[i] * gains[i]",
    "    }",
    "    return h + unsqueeze(mean(linear(x, widths[-1]) as last, axis: 2), 2)",
    "  }",
    "}",
    "block net(ch: int, ctx: int, widths: int[]) {",
    "  forward(x: [B, H, W, ch], t: [B], c: [B, T, ctx], p: [B, P]) -> [B, H, W, ch] {",
    "    y = branches(c, width: ctx, widths: widths) as s",
    "    return x + unsqueeze(unsqueeze(unsqueeze(t + mean(mean(y, axis: 2), axis: 1) + mean(p, axis: 1), 1), 2), 3)",
    "  }",
    "}",
    "spec lp {",
    "  param widths: int[] = [8, 16, 32]",
    "  data { source: mnist  image: [32, 32, 1] }",
    "  text { encoder: external(tokens: 5, width: 24, pooled: 20) }",
    "  network: net(ch: 1, ctx: 24, widths: widths)",
    "}",
  );

  it("the IR counts each branch at its width; the package's constructor builds exactly those parameters", async () => {
    const file = join(tmp, "lp.mdl");
    writeFileSync(file, src);
    let err = "";
    const capture = { write: (x: string) => ((err += x), true), isTTY: false } as unknown as NodeJS.WriteStream;
    expect(runCompile(file, { outDir: tmp, quiet: true }, sink, capture), err).toBe(0);
    const loaded = await loadCompiled(join(tmp, "lp"));
    const branch = (w: number) => 24 * w + w + w * 24 + 24;
    expect(loaded.ir.stats.networkParams).toBe(branch(8) + branch(16) + branch(32) + 24 * 32 + 32);
    expect(loaded.ir.network.args.widths).toEqual([8, 16, 32]);
    const store = new ParamStore(0);
    loaded.spec.createNetwork(store);
    expect(store.numParams).toBe(loaded.ir.stats.networkParams);
    for (const p of loaded.ir.parameters) expect([...store.vars.get(p.name)!.shape], p.name).toEqual(p.shape);
    store.dispose();
  });

  it("--set widths=4,4,4 compiles another package with that list", () => {
    const file = join(tmp, "lp.mdl");
    writeFileSync(file, src);
    let text = "";
    const capture = { write: (x: string) => ((text += x), true), isTTY: false } as unknown as NodeJS.WriteStream;
    expect(runCompile(file, { outDir: tmp, noWrite: true, json: true, set: ["widths=4,4,4"] }, capture, sink)).toBe(0);
    const got = JSON.parse(text) as { parameters: { name: string; shape: number[] }[] };
    expect(got.parameters.find((p) => p.name === "s.up.2.weight")?.shape).toEqual([4, 24]);
    expect(got.parameters.find((p) => p.name === "s.last.weight")?.shape).toEqual([4, 24]);
  });

  /** a block whose loop changes x's width each pass, in a network that reads its output */
  const chain = (body: string, out = "widths[-1]") =>
    lines(
      `block chain(widths: int[]) {`,
      `  forward(x: [B, N, widths[0]]) -> [B, N, ${out}] {`,
      "    for i in 1 .. len(widths) {",
      body,
      "    }",
      "    return x",
      "  }",
      "}",
      "block net(ch: int, ctx: int, widths: int[]) {",
      "  forward(x: [B, H, W, ch], t: [B], c: [B, T, ctx], p: [B, P]) -> [B, H, W, ch] {",
      "    y = chain(c, widths: widths) as s",
      "    return x + unsqueeze(unsqueeze(unsqueeze(t + mean(mean(y, axis: 2), axis: 1) + mean(p, axis: 1), 1), 2), 3)",
      "  }",
      "}",
      "spec ch {",
      "  data { source: mnist  image: [32, 32, 1] }",
      "  text { encoder: external(tokens: 5, width: 24, pooled: 20) }",
      "  network: net(ch: 1, ctx: 24, widths: [24, 32, 16])",
      "}",
    );

  it("a loop that changes a tensor's width each pass (x = linear(x, widths[i])): each layer built at the width the pass before left", async () => {
    const file = join(tmp, "ch.mdl");
    writeFileSync(file, chain("      x = layer_norm(linear(x, widths[i]) as proj[i]) as norm[i]"));
    let err = "";
    const capture = { write: (x: string) => ((err += x), true), isTTY: false } as unknown as NodeJS.WriteStream;
    expect(runCompile(file, { outDir: tmp, quiet: true }, sink, capture), err).toBe(0);
    const loaded = await loadCompiled(join(tmp, "ch"));
    expect(loaded.ir.stats.networkParams).toBe(24 * 32 + 32 + 2 * 32 + 32 * 16 + 16 + 2 * 16);
    const store = new ParamStore(0);
    loaded.spec.createNetwork(store);
    for (const p of loaded.ir.parameters) expect([...store.vars.get(p.name)!.shape], p.name).toEqual(p.shape);
    expect(store.numParams).toBe(loaded.ir.stats.networkParams);
    store.dispose();
  });

  it("a layer whose input size depends on the pass before (x grows by a concat each pass) is refused where it is", () => {
    const r = compileSource(chain("      x = concat(x, linear(x, widths[0]) as proj[i])", "widths[0] * 2").replace("widths: [24, 32, 16]", "widths: [24, 24]"));
    expectError(r, { code: "SDC504", line: 4, col: 21, msg: "linear's parameters would depend on axis 2 of 'x', which each pass of the loop changes from the size the pass before left" });
  });

  it("the runtime's at() counts from the end and refuses a bad index", () => {
    expect([at([1, 2, 3], 0), at([1, 2, 3], -1), at([1, 2, 3], 2)]).toEqual([1, 3, 3]);
    expect(() => at([1, 2, 3], 3)).toThrow(/out of range/);
    expect(() => at([1, 2, 3], -4)).toThrow(/out of range/);
  });
});
