/**
 * Nested module arrays: a call inside nested `for` loops named by their variables, outermost
 * first (`as levels[l][i]`, the state-dict names `levels.{l}.{i}`), a module array per loop in
 * the generated constructor; the inner loop's range may depend on the outer variable (an
 * hourglass's `depths[level]`). Names that do not follow the loops are positioned errors.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { runCompile } from "../../cli/commands/compile.ts";
import { loadCompiled } from "../../cli/generated.ts";
import { ParamStore } from "../../runtime/nn/params.ts";
import { compileSource, type Expected, expectError, lines, net, spec } from "./helpers.ts";

/** block `b` (its body from line 3; widths: a list parameter) used by the network on c [B, 5, 24] */
const withBody = (...body: string[]) =>
  lines("block b(width: int, depths: int[]) {", "  forward(x: [B, N, width]) -> [B, N, width] {", ...body, "  }", "}", net("    c = b(c, width: 24, depths: [2, 1, 3]) as blk"), spec());

/** `n` nested loops (variables l0, l1, ...; ranges 0 .. 2 but the innermost 0 .. depths[l0] when nested) around one line */
const nest = (n: number, line: string, bounds: string[] = []): string[] => {
  const open = Array.from({ length: n }, (_, k) => `${"  ".repeat(k + 2)}for l${k} in ${bounds[k] ?? "0 .. 2"} {`);
  const close = Array.from({ length: n }, (_, k) => `${"  ".repeat(n - k + 1)}}`);
  return [...open, `${"  ".repeat(n + 2)}${line}`, ...close, "    return x"];
};

const LIN = 24 * 24 + 24;
const ok: { name: string; body: string[]; names: string[] }[] = [
  { name: "one loop, as before", body: nest(1, "x = linear(x, width) as fc[l0]"), names: ["fc.0", "fc.1"] },
  { name: "two loops, the inner range from the outer variable", body: nest(2, "x = linear(x, width) as levels[l0][l1]", ["0 .. 3", "0 .. depths[l0]"]), names: ["levels.0.0", "levels.0.1", "levels.1.0", "levels.2.0", "levels.2.1", "levels.2.2"] },
  { name: "a dotted prefix, loops not from 0", body: nest(2, "x = linear(x, width) as down.blocks[l0][l1]", ["1 .. 3", "2 .. 3"]), names: ["down.blocks.1.2", "down.blocks.2.2"] },
  { name: "three loops", body: nest(3, "x = linear(x, width) as g[l0][l1][l2]"), names: [0, 1].flatMap((a) => [0, 1].flatMap((b) => [0, 1].map((c) => `g.${a}.${b}.${c}`))) },
  { name: "an outer range of one", body: nest(2, "x = linear(x, width) as g[l0][l1]", ["0 .. 1", "0 .. 2"]), names: ["g.0.0", "g.0.1"] },
];

describe("nested module arrays compile to the reference's names", () => {
  it.each(ok)("$name", (c) => {
    const r = compileSource(withBody(...c.body));
    expect(r.diagnostics.filter((d) => d.severity === "error"), JSON.stringify(r.diagnostics)).toEqual([]);
    const names = r.ir!.parameters.map((p) => p.name).filter((n) => n.startsWith("blk."));
    expect(names).toEqual(c.names.flatMap((n) => [`blk.${n}.weight`, `blk.${n}.bias`]));
    expect(r.ir!.stats.networkParams).toBe(c.names.length * LIN);
  });
});

const bad: (Expected & { name: string; body: string[] })[] = [
  { name: "the outer index not the outer loop's variable", body: nest(2, "x = linear(x, width) as g[l1][l1]"), code: "SDC406", line: 5, col: 34, msg: "a nested module array's indices are the enclosing loops' variables, outermost first: here `[l0][l1]`" },
  { name: "indices in the wrong order", body: nest(2, "x = linear(x, width) as g[l1][l0]"), code: "SDC406", line: 5, col: 38, msg: "an indexed name must end in the innermost loop's variable" },
  { name: "more indices than loops", body: nest(1, "x = linear(x, width) as g[l0][l0]"), code: "SDC406", line: 4, col: 32, msg: "2 indices name 2 nested loops, but this call is inside 1" },
  { name: "a name between the indices", body: nest(2, "x = linear(x, width) as g[l0].blocks[l1]"), code: "SDC406", line: 5, col: 34, msg: "an indexed name must end in the innermost loop's variable" },
  { name: "an expression as the outer index", body: nest(2, "x = linear(x, width) as g[l0 + 1][l1]"), code: "SDC406", line: 5, col: 34, msg: "here `[l0][l1]`" },
  { name: "the outer loop skipped", body: nest(3, "x = linear(x, width) as g[l0][l2]"), code: "SDC406", line: 6, col: 36, msg: "here `[l1][l2]`" },
  { name: "a single index inside two loops: one name per outer iteration twice", body: nest(2, "x = linear(x, width) as g[l1]"), code: "SDC307", line: 5, col: 33, msg: "state-dict name 'blk.g.0.weight' is defined twice" },
];

describe("errors: code, position, message", () => {
  it.each(bad)("$name", (c) => {
    expectError(compileSource(withBody(...c.body)), c);
  });

  it("a width a loop leaves (`widths[l0]`) does not size a layer after it: SDC504, not a constructor naming the loop's variable", () => {
    const body = ["    for l0 in 0 .. 2 {", "      x = linear(x, depths[l0]) as fc[l0]", "    }", "    return linear(x, width) as out"];
    expectError(compileSource(withBody(...body)), { code: "SDC504", line: 6, col: 12, msg: "linear's parameters would depend on axis 2 of 'x'" });
    const pinned = ["    for l0 in 0 .. 2 {", "      x = linear(x, depths[l0]) as fc[l0]", "    }", "    return linear(reshape(x, [B, N, depths[1]]), width) as out"];
    expect(compileSource(withBody(...pinned)).diagnostics.filter((d) => d.severity === "error")).toEqual([]);
  });
});

describe("an hourglass's levels as a nested module array: compiled, built and run", () => {
  const tmp = mkdtempSync(join(tmpdir(), "sdc-nested-modules-"));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const sink = { write: () => true, isTTY: false } as unknown as NodeJS.WriteStream;
  const src = lines(
    "block hg(width: int, depths: int[]) {",
    "  forward(x: [B, N, width]) -> [B, N, width] {",
    "    for level in 0 .. len(depths) {",
    "      for i in 0 .. depths[level] {",
    "        x = x + linear(x, width) as levels[level][i]",
    "      }",
    "    }",
    "    return x",
    "  }",
    "}",
    net("    c = hg(c, width: 24, depths: [1, 2]) as h"),
    spec(),
  );

  it("the package builds levels.{level}.{i} with the checker's parameters and its forward runs them in order", async () => {
    const file = join(tmp, "hg.mdl");
    writeFileSync(file, src);
    let err = "";
    const capture = { write: (x: string) => ((err += x), true), isTTY: false } as unknown as NodeJS.WriteStream;
    expect(runCompile(file, { outDir: tmp, quiet: true }, sink, capture), err).toBe(0);
    const loaded = await loadCompiled(join(tmp, "hg"));
    expect(loaded.ir.stats.networkParams).toBe(3 * LIN);
    const store = new ParamStore(0);
    type Lin = { apply(x: tf.Tensor): tf.Tensor };
    const network = loaded.spec.createNetwork(store) as unknown as { h: { forward(x: tf.Tensor3D): tf.Tensor3D; levels: Lin[][] } };
    expect([...store.vars.keys()].filter((n) => n.startsWith("h."))).toEqual(["h.levels.0.0.weight", "h.levels.0.0.bias", "h.levels.1.0.weight", "h.levels.1.0.bias", "h.levels.1.1.weight", "h.levels.1.1.bias"]);
    for (const p of loaded.ir.parameters) expect([...store.vars.get(p.name)!.shape], p.name).toEqual(p.shape);
    expect(network.h.levels.map((l) => l.length)).toEqual([1, 2]);
    const x = tf.randomNormal([2, 5, 24], 0, 1, "float32", 3) as tf.Tensor3D;
    let h: tf.Tensor = x;
    for (const lin of [network.h.levels[0][0], network.h.levels[1][0], network.h.levels[1][1]]) h = tf.add(h, lin.apply(h));
    expect(tf.max(tf.abs(tf.sub(network.h.forward(x), h))).dataSync()[0]).toBeLessThan(1e-6);
    store.dispose();
  });
});
