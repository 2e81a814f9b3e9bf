/**
 * The primitive reference is generated from the compiler's table: docs/primitives.md is what
 * `sdc primitives --markdown` prints today (regenerate it when this fails), every primitive and
 * argument is in it, and what it says of an example call is what the checker does with it.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runPrimitives } from "../../cli/commands/primitives.ts";
import { describePrimitive, describePrimitives, primitivesMarkdown } from "../../compiler/primdoc.ts";
import type * as A from "../../compiler/ast.ts";
import { parseExpression } from "../../compiler/parser.ts";
import { PRIMITIVES } from "../../compiler/primitives.ts";
import { compileSource, lines, net, ROOT, spec } from "./helpers.ts";

describe("docs/primitives.md", () => {
  it("is up to date with compiler/primitives.ts (regenerate: npx sdc primitives --markdown > docs/primitives.md)", () => {
    const committed = readFileSync(join(ROOT, "docs/primitives.md"), "utf8");
    expect(committed).toBe(primitivesMarkdown());
  });

  it("has every primitive with every argument", () => {
    const md = primitivesMarkdown();
    for (const p of Object.values(PRIMITIVES)) {
      expect(md).toContain(`## ${p.name}\n`);
      for (const a of p.args) expect(md).toContain(`| \`${a.name}\` |`);
    }
    expect(describePrimitives().map((d) => d.name)).toEqual(Object.keys(PRIMITIVES));
  });
});

/** A documented shape with the example's sizes put in, its arithmetic done: "[B, N, D / 3]" -> "[B, 5, 8]". */
function concrete(shape: string, sizes: Record<string, number>): string {
  const r = parseExpression("doc", shape);
  if (r.expr?.kind !== "list") throw new Error(`not a shape: ${shape}`);
  const ev = (e: A.Expr): number | string => {
    if (e.kind === "number") return e.value;
    if (e.kind === "ident") return sizes[e.name] ?? e.name;
    if (e.kind === "binary") {
      const [a, b] = [ev(e.left), ev(e.right)];
      if (typeof a !== "number" || typeof b !== "number") throw new Error(`unknown size in ${shape}`);
      return e.op === "+" ? a + b : e.op === "-" ? a - b : e.op === "*" ? a * b : a / b;
    }
    throw new Error(`bad size in ${shape}`);
  };
  return `[${r.expr.items.map(ev).join(", ")}]`;
}

describe("what the reference says is what the checker does", () => {
  // each row: the documented example with its sizes made concrete, called on the context c
  // [B, 5, 24] in a weight-free block `probe` that declares the documented output shape (the
  // checker refuses a wrong one with SDC503); the state-dict entries must be the documented ones
  const rows: [string, Record<string, number>, string][] = [
    ["linear", { N: 5, D: 24, out: 7 }, "linear(c, 7) as NAME"],
    ["layer_norm", { N: 5, D: 24 }, "layer_norm(c) as NAME"],
    ["rms_norm", { N: 5, D: 24 }, "rms_norm(c) as NAME"],
    ["mean", { N: 5, D: 24 }, "unsqueeze(mean(c, axis: 1), 1)"],
    ["attention", { N: 5, M: 5, D: 24, heads: 4 }, "attention(c, c, c, heads: 4)"],
    ["parameter", { N: 5, D: 24 }, "c + parameter(shape: [5, 24]) as NAME"],
  ];
  it.each(rows)("%s", (name, sizes, call) => {
    const d = describePrimitive(PRIMITIVES[name]);
    const out = name === "mean" ? concrete(d.output, sizes).replace("[B, ", "[B, 1, ") : name === "parameter" ? `[B, ${concrete(d.output, sizes).slice(1)}` : concrete(d.output, sizes);
    const probe = lines("block probe(w: int) {", `  forward(c: [B, T, w]) -> ${out} {`, `    return ${call.replace("NAME", "probe")}`, "  }", "}");
    const r = compileSource(lines(probe, net("    y = probe(c, w: 24) as p\n    t = t + mean(mean(y, axis: 2), axis: 1)"), spec()));
    const errors = r.diagnostics.filter((x) => x.severity === "error");
    expect(errors, JSON.stringify(errors)).toEqual([]);
    const params = r.ir!.parameters.map((p) => [p.name.replace("p.probe", "NAME"), `[${p.shape.join(", ")}]`]);
    expect(params).toEqual(d.params.map((p) => [p.name, concrete(p.shape, sizes)]));
  });

  it("a wrong documented shape would be caught: the probe refuses [B, 5, 8] for linear(c, 7)", () => {
    const probe = lines("block probe(w: int) {", "  forward(c: [B, T, w]) -> [B, 5, 8] {", "    return linear(c, 7) as probe", "  }", "}");
    const r = compileSource(lines(probe, net("    y = probe(c, w: 24) as p\n    t = t + mean(mean(y, axis: 2), axis: 1)"), spec()));
    expect(r.diagnostics.map((x) => x.code)).toContain("SDC503");
  });
});

describe("sdc primitives", () => {
  const capture = () => {
    const s = { text: "", write: (x: string) => ((s.text += x), true) };
    return s;
  };

  it("prints each primitive's signature, example shapes and parameters", () => {
    const out = capture();
    expect(runPrimitives(["linear", "attention"], {}, out)).toBe(0);
    expect(out.text).toContain('linear(x: tensor, out: int, bias: bool = true, init: string = "torch")');
    expect(out.text).toContain("e.g. linear(x, out: out) as NAME with x [B, N, D] -> [B, N, out]");
    expect(out.text).toContain("parameters: `NAME.weight` [out, D] (init torch_linear), `NAME.bias` [out] (init torch_linear)");
    expect(out.text).toContain("with bias: false: `NAME.weight` [out, D] (init torch_linear)");
    expect(out.text).toContain("e.g. attention(q, k, v, heads: heads) with q [B, N, D], k [B, M, D], v [B, M, D] -> [B, N, D]");
    expect(out.text).not.toContain("layer_norm(");
  });

  it("--json gives the same entries as data; an unknown name is a usage error with a suggestion", () => {
    const out = capture();
    runPrimitives([], { json: true }, out);
    const docs = JSON.parse(out.text);
    expect(docs.map((d: { name: string }) => d.name)).toEqual(Object.keys(PRIMITIVES));
    expect(docs.find((d: { name: string }) => d.name === "sincos_2d").params).toEqual([{ name: "NAME", shape: "[1, M * M, D]", init: "fixed", buffer: true }]);
    expect(() => runPrimitives(["lineer"], {}, capture())).toThrow(/no primitive 'lineer' \(did you mean 'linear'\?\)/);
  });
});
