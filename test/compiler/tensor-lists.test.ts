/**
 * Tensor lists in a forward (`skips = []`, `skips.append(x)`, `skips.pop()`, `skips[i]`,
 * `len(skips)`): a compile-time construct, each element's shape checked where it is used, the
 * generated forward a plain array (the IR and both engines see ordinary tensors). U-ViT's long
 * skips built with it give the parameters the checker counted; misuse is a positioned error.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { runCompile } from "../../cli/commands/compile.ts";
import { loadCompiled } from "../../cli/generated.ts";
import { ParamStore } from "../../runtime/nn/params.ts";
import { pop } from "../../runtime/nn/functional.ts";
import { compileSource, type Expected, expectError, lines, net, spec } from "./helpers.ts";

/** block `b` (its body from line 3) used by the network on c [B, 5, 24] (width 24) */
const withBody = (...body: string[]) =>
  lines("block b(width: int) {", "  forward(x: [B, N, width]) -> [B, N, width] {", ...body, "  }", "}", net("    c = b(c, width: 24) as blk"), spec());

const ok: [string, string[]][] = [
  ["append then pop (last in, first out)", ["    s = []", "    s.append(x)", "    s.append(x * 2)", "    y = s.pop()", "    return y + s.pop()"]],
  ["index from the front and the end, len", ["    s = [x, x * 2]", "    s.append(x * 3)", "    return s[0] + s[-1] * len(s)"]],
  ["elements of different shapes, each checked", ["    s = [x, mean(x, axis: 2)]", "    return s[0] + unsqueeze(s[1], 2)"]],
  ["appended in a loop, read in a loop", ["    s = []", "    for i in 0 .. 3 {", "      s.append(x * i)", "    }", "    for i in 0 .. len(s) {", "      x = x + s[i]", "    }", "    return x"]],
  ["pop as a statement drops the element", ["    s = [x, x * 0]", "    s.pop()", "    return s.pop()"]],
];

describe("tensor lists compile", () => {
  it.each(ok)("%s", (_, body) => {
    const r = compileSource(withBody(...body));
    expect(r.diagnostics.filter((d) => d.severity === "error"), JSON.stringify(r.diagnostics)).toEqual([]);
  });
});

const bad: (Expected & { name: string; body: string[] })[] = [
  { name: "pop of an empty list", body: ["    s = []", "    s.append(x)", "    y = s.pop()", "    return y + s.pop()"], code: "SDC407", line: 6, col: 16, msg: "s.pop(): 's' is empty here" },
  { name: "index past the end", body: ["    s = [x]", "    return s[1]"], code: "SDC407", line: 4, col: 14, msg: "index 1 is out of range for 's' of length 1" },
  { name: "an element of the wrong shape", body: ["    s = [mean(x, axis: 2)]", "    return x + s[0]"], code: "SDC500", line: 4, col: 12, msg: "cannot broadcast [B, 5, 24] with [B, 5]" },
  { name: "a list used as a tensor", body: ["    s = [x]", "    return x + s"], code: "SDC401", line: 4, col: 16, msg: "'+' needs a number or tensor, got list of tensors" },
  { name: "a list escaping the block", body: ["    s = [x]", "    return s"], code: "SDC503", line: 4, col: 12, msg: "output 1 of b must be a tensor, got list of tensors" },
  { name: "a list passed to a primitive", body: ["    s = [x]", "    return layer_norm(s)"], code: "SDC401", line: 4, col: 23, msg: "got list of tensors" },
  { name: "a second name for a list", body: ["    s = [x]", "    t = s", "    return x"], code: "SDC401", line: 4, col: 9, msg: "a list is only made by a list literal" },
  { name: "a list of numbers in a forward", body: ["    s = [x, 1]", "    return x"], code: "SDC401", line: 3, col: 9, msg: "a list in a forward holds tensors, got [[B, 5, 24], 1]" },
  { name: "append of a number", body: ["    s = []", "    s.append(2)", "    return x"], code: "SDC401", line: 4, col: 14, msg: "append takes a tensor, got int 2" },
  { name: "append in an expression", body: ["    s = []", "    y = s.append(x)", "    return x"], code: "SDC401", line: 4, col: 9, msg: "s.append(...) gives nothing: write it as a statement of its own" },
  { name: "an unknown method", body: ["    s = [x]", "    s.push(x)", "    return x"], code: "SDC304", line: 4, col: 7, msg: "lists have no method 'push': use append(x) or pop()" },
  { name: "a method of a tensor", body: ["    x.append(x)", "    return x"], code: "SDC401", line: 3, col: 5, msg: "'x' is tensor [B, 5, 24], not a list" },
  { name: "pop with an argument", body: ["    s = [x]", "    return s.pop(0)"], code: "SDC400", line: 4, col: 12, msg: "pop takes no arguments" },
];

describe("errors: code, position, message", () => {
  it.each(bad)("$name", (c) => {
    expectError(compileSource(withBody(...c.body)), c);
  });

  it("a layer sized by an element whose shape differs between the elements is refused (the constructor cannot know which)", () => {
    const body = ["    s = []", "    for i in 1 .. 3 {", "      s.append(repeat(x, i))", "    }", "    return linear(s[0], width) as out"];
    expectError(compileSource(withBody(...body)), { code: "SDC504", line: 7, col: 12, msg: "linear's parameters would depend on axis 2 of 's'" });
  });
});

describe("U-ViT's long skips with a list: compiled, built and run", () => {
  const tmp = mkdtempSync(join(tmpdir(), "sdc-tensor-lists-"));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const sink = { write: () => true, isTTY: false } as unknown as NodeJS.WriteStream;
  const src = lines(
    "block blk(width: int) {",
    "  forward(x: [B, N, width]) -> [B, N, width] {",
    "    return x + linear(layer_norm(x) as norm, width) as fc",
    "  }",
    "}",
    "block uv(width: int, depth: int) {",
    "  forward(x: [B, N, width]) -> [B, N, width] {",
    "    skips = []",
    "    for i in 0 .. depth div 2 {",
    "      x = blk(x, width: width) as in_blocks[i]",
    "      skips.append(x)",
    "    }",
    "    x = blk(x, width: width) as mid_block",
    "    for i in 0 .. depth div 2 {",
    "      x = linear(concat(x, skips.pop(), axis: -1), width) as skip_linear[i]",
    "      x = blk(x, width: width) as out_blocks[i]",
    "    }",
    "    return x",
    "  }",
    "}",
    net("    c = uv(c, width: 24, depth: 5) as s"),
    spec(),
  );

  it("the package builds the checker's parameters and its forward pops the skips in reverse", async () => {
    const file = join(tmp, "uv.mdl");
    writeFileSync(file, src);
    let err = "";
    const capture = { write: (x: string) => ((err += x), true), isTTY: false } as unknown as NodeJS.WriteStream;
    expect(runCompile(file, { outDir: tmp, quiet: true }, sink, capture), err).toBe(0);
    const loaded = await loadCompiled(join(tmp, "uv"));
    const blk = 2 * 24 + 24 * 24 + 24;
    expect(loaded.ir.stats.networkParams).toBe(5 * blk + 2 * (48 * 24 + 24));
    const store = new ParamStore(0);
    const network = loaded.spec.createNetwork(store) as unknown as { s: { forward(x: tf.Tensor3D): tf.Tensor3D; in_blocks: { forward(x: tf.Tensor3D): tf.Tensor3D }[]; mid_block: { forward(x: tf.Tensor3D): tf.Tensor3D }; skip_linear: { apply(x: tf.Tensor): tf.Tensor }[]; out_blocks: { forward(x: tf.Tensor3D): tf.Tensor3D }[] } };
    for (const p of loaded.ir.parameters) expect([...store.vars.get(p.name)!.shape], p.name).toEqual(p.shape);
    expect(store.numParams).toBe(loaded.ir.stats.networkParams);
    // the forward against the same layers called by hand: skip_linear.0 takes in_blocks.1's output
    const s = network.s;
    const x = tf.randomNormal([2, 5, 24], 0, 1, "float32", 3) as tf.Tensor3D;
    const got = s.forward(x);
    const h0 = s.in_blocks[0].forward(x);
    const h1 = s.in_blocks[1].forward(h0);
    let h = s.mid_block.forward(h1);
    h = s.out_blocks[0].forward(s.skip_linear[0].apply(tf.concat([h, h1], -1)) as tf.Tensor3D);
    h = s.out_blocks[1].forward(s.skip_linear[1].apply(tf.concat([h, h0], -1)) as tf.Tensor3D);
    expect(tf.max(tf.abs(tf.sub(got, h))).dataSync()[0]).toBeLessThan(1e-6);
    store.dispose();
  });

  it("the runtime's pop() takes the last element and refuses an empty list", () => {
    const xs = [1, 2];
    expect([pop(xs), pop(xs)]).toEqual([2, 1]);
    expect(() => pop(xs)).toThrow(/empty/);
  });
});
