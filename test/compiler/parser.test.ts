/**
 * The parser on small in-memory sources: comments, imports, variants, labels, arguments,
 * tensor types, ternaries and precedence, spans, and printing an expression back.
 */
import { describe, expect, it } from "vitest";
import type * as A from "../../compiler/ast.ts";
import { exprLabel, exprText } from "../../compiler/check/index.ts";
import { parseExpression } from "../../compiler/parser.ts";
import { parseSource } from "../../compiler/program.ts";

function parse(src: string): A.SourceFile {
  const r = parseSource("t.mdl", src);
  expect(r.diagnostics, JSON.stringify(r.diagnostics)).toEqual([]);
  return r.ast!;
}

function expr(src: string): A.Expr {
  const r = parseExpression("e", src);
  expect(r.diagnostics, JSON.stringify(r.diagnostics)).toEqual([]);
  return r.expr!;
}

/** The forward statements of the first block. */
const body = (f: A.SourceFile) => f.blocks[0].forward!.body;

describe("declarations", () => {
  it("comments anywhere are skipped and do not shift positions", () => {
    const f = parse(
      [
        "// a line comment",
        "/* a block",
        "   comment */ block b(width: int /* inline */, depth: int = 2) { // trailing",
        "  forward(x: [B, N, width]) -> [B, N, width] {",
        "    return x // done",
        "  }",
        "}",
      ].join("\n"),
    );
    const b = f.blocks[0];
    expect(b.name).toBe("b");
    expect(b.params.map((p) => [p.name, p.type, p.default && exprText(p.default)])).toEqual([
      ["width", "int", undefined],
      ["depth", "int", "2"],
    ]);
    // offset 18 + 11 for the two lines above, then "   comment */ block " (20 characters)
    expect(b.nameSpan.start).toEqual({ offset: 49, line: 3, column: 21 });
    const ret = body(f)[0] as A.ReturnStmt;
    expect(ret.kind).toBe("return");
    expect(ret.values[0].span.start).toMatchObject({ line: 5, column: 12 });
  });

  it("imports, in order, with their spans", () => {
    const f = parse('import "lib/mmdit.mdl"\nimport "../x/text.mdl"\nspec s { }\n');
    expect(f.imports.map((i) => i.path)).toEqual(["lib/mmdit.mdl", "../x/text.mdl"]);
    expect(f.imports[1].span.start).toMatchObject({ line: 2, column: 1 });
    expect(f.imports[1].span.end).toMatchObject({ line: 2, column: 23 }); // exclusive end
    expect(f.specs.map((s) => s.name)).toEqual(["s"]);
  });

  it("a spec: title, params, lets, requires, network, sections and variants", () => {
    const f = parse(
      [
        'spec sd3 "the title" {',
        "  param heads = 6",
        "  param scale: float = 1",
        "  let width = heads * 64",
        '  require width % heads == 0, "heads must divide the width"',
        "  network: mmdit(heads: heads, depth: 2)",
        "  flow { steps: 50, sampler: euler; guidance: 4.0 }",
        '  variant small "fewer" { heads = 4, depth = 6 }',
        "  variant tiny { heads = 2; train.lr_schedule = cosine }",
        "}",
      ].join("\n"),
    );
    const s = f.specs[0];
    expect(s.title).toBe("the title");
    expect(s.params.map((p) => [p.name, p.type ?? null])).toEqual([
      ["heads", null],
      ["scale", "float"],
    ]);
    expect(s.lets.map((l) => `${l.name} = ${exprText(l.value)}`)).toEqual(["width = heads * 64"]);
    expect(s.requires[0].message).toBe("heads must divide the width");
    expect(exprText(s.requires[0].cond)).toBe("(width % heads) == 0");
    expect(exprText(s.network!)).toBe("mmdit(heads: heads, depth: 2)");
    expect(s.sections[0].name).toBe("flow");
    expect(s.sections[0].settings.map((x) => `${x.key}=${exprText(x.value)}`)).toEqual(["steps=50", "sampler=euler", "guidance=4.0"]);
    expect(s.variants.map((v) => [v.name, v.doc ?? null, v.overrides.map((o) => `${o.name}=${exprText(o.value)}`)])).toEqual([
      ["small", "fewer", ["heads=4", "depth=6"]],
      ["tiny", null, ["heads=2", "train.lr_schedule=cosine"]],
    ]);
    expect(s.variants[0].overrides[1].nameSpan.start).toMatchObject({ line: 8, column: 38 });
    // a setting's name spans section, dot and key
    expect(s.variants[1].overrides[1].nameSpan.start).toMatchObject({ line: 9, column: 29 });
    expect(s.variants[1].overrides[1].nameSpan.end).toMatchObject({ line: 9, column: 46 });
  });
});

describe("statements and calls", () => {
  const f = parse(
    [
      "block b(width: int, depth: int, pre_only: bool = false) {",
      "  forward(x: [B, N, width], ids: int32[B, T]) -> ([B, N, width], [B, width]) {",
      "    h = linear(x, width, bias: false) as to_out.0",
      "    for i in 0 .. depth {",
      "      h = blk(h, width: width) as blocks[i]",
      "    }",
      "    if pre_only { h = h } else if depth > 2 { h = h * 2 } else { h = -h }",
      "    a, c = chunk(h, 2, axis: -1)",
      "    return h, mean(h, axis: 1)",
      "  }",
      "}",
    ].join("\n"),
  );
  const fwd = f.blocks[0].forward!;
  const stmts = fwd.body;

  it("tensor types, with int32 and a tuple of outputs", () => {
    expect(fwd.inputs.map((i) => `${i.name}: ${exprText(i.shape)}`)).toEqual(["x: [B, N, width]", "ids: int32[B, T]"]);
    expect(fwd.inputs[1].shape.dtype).toBe("int32");
    expect(fwd.inputs[0].shape.dtype).toBe("float32");
    expect(fwd.outputs.map(exprText)).toEqual(["[B, N, width]", "[B, width]"]);
  });

  it("named and positional arguments, and a dotted label with a number (to_out.0)", () => {
    const s = stmts[0] as A.Assign;
    const call = s.value as A.Call;
    expect(call.callee).toBe("linear");
    expect(call.args.map((a) => [a.name ?? null, exprText(a.value)])).toEqual([
      [null, "x"],
      [null, "width"],
      ["bias", "false"],
    ]);
    expect(call.label!.segments.map((x) => x.name)).toEqual(["to_out", "0"]);
    expect(exprLabel(call.label!)).toBe("to_out.0");
    expect(call.label!.span.start).toMatchObject({ line: 3, column: 42 });
    expect(call.span.end).toMatchObject({ line: 3, column: 50 });
  });

  it("a loop with an indexed label (blocks[i])", () => {
    const loop = stmts[1] as A.ForStmt;
    expect(loop.kind).toBe("for");
    expect([loop.variable.name, exprText(loop.from), exprText(loop.to)]).toEqual(["i", "0", "depth"]);
    const call = (loop.body[0] as A.Assign).value as A.Call;
    const segs = call.label!.segments;
    expect(segs[0].name).toBe("blocks");
    expect(segs[1].index && exprText(segs[1].index)).toBe("i");
    expect(exprLabel(call.label!)).toBe("blocks[i]");
  });

  it("if / else if / else chains", () => {
    const s = stmts[2] as A.IfStmt;
    expect(exprText(s.cond)).toBe("pre_only");
    expect(s.else).toHaveLength(1);
    const inner = s.else![0] as A.IfStmt;
    expect(inner.kind).toBe("if");
    expect(exprText(inner.cond)).toBe("depth > 2");
    expect(exprText((inner.else![0] as A.Assign).value)).toBe("-h");
  });

  it("several targets and several return values", () => {
    const s = stmts[3] as A.Assign;
    expect(s.targets.map((t) => t.name)).toEqual(["a", "c"]);
    expect(exprText(s.value)).toBe("chunk(h, 2, axis: -1)");
    const r = stmts[4] as A.ReturnStmt;
    expect(r.values.map(exprText)).toEqual(["h", "mean(h, axis: 1)"]);
  });
});

describe("expressions", () => {
  it("precedence: * over +, + over comparisons, comparisons over && over ||", () => {
    const e = expr("1 + 2 * 3 == 7 && !false || x < y - 1");
    expect(exprText(e)).toBe("(((1 + (2 * 3)) == 7) && !false) || (x < (y - 1))");
  });

  it("left associativity of - and /", () => {
    expect(exprText(expr("10 - 3 - 2"))).toBe("(10 - 3) - 2");
    expect(exprText(expr("32 / 4 / 2"))).toBe("(32 / 4) / 2");
  });

  it("ternaries nest to the right and bind loosest", () => {
    const e = expr("a ? 1 : b ? 2 + 1 : 3") as A.Ternary;
    expect(e.kind).toBe("ternary");
    expect(exprText(e.cond)).toBe("a");
    expect(exprText(e.then)).toBe("1");
    expect(e.else.kind).toBe("ternary");
    expect(exprText(e.else)).toBe("b ? 2 + 1 : 3");
    expect(exprText(expr("i == depth - 1 ? 2 : 6"))).toBe("i == (depth - 1) ? 2 : 6");
  });

  it("numbers: ints, floats and exponents keep their text", () => {
    const ns = ["64", "1.0", "1e-6", "2.5E+3"].map((s) => expr(s) as A.NumberLit);
    expect(ns.map((n) => [n.value, n.isInt, n.text])).toEqual([
      [64, true, "64"],
      [1, false, "1.0"],
      [1e-6, false, "1e-6"],
      [2500, false, "2.5E+3"],
    ]);
  });

  it("strings with escapes, lists and parentheses", () => {
    expect((expr('"a\\"b\\n"') as A.StringLit).value).toBe('a"b\n');
    expect(exprText(expr("[1, 2, [3]]"))).toBe("[1, 2, [3]]");
    expect(exprText(expr("((x))"))).toBe("x");
  });

  it.each([
    "mmdit(heads: heads, head_dim: 64, depth: depth - 1)",
    "linear(silu(emb), 6 * width) as linear",
    "(H / patch) * (W / patch)",
    "x * (1 + unsqueeze(scale, 1)) + unsqueeze(shift, 1)",
    "a ? b : c",
    "!pre_only && depth >= 2",
    "feed_forward(h, width: width) as ff.net.0",
    "blk(h) as layers[i]",
  ])("printing and re-parsing is stable: %s", (src) => {
    const once = exprText(expr(src));
    expect(exprText(expr(once))).toBe(once);
  });

  it("spans are 1-based and cover the expression", () => {
    const e = expr("  foo(1, b: 2)") as A.Call;
    expect(e.span.start).toEqual({ offset: 2, line: 1, column: 3 });
    expect(e.span.end).toMatchObject({ offset: 14, column: 15 });
    expect(e.calleeSpan.end).toMatchObject({ column: 6 });
    expect(e.args[1].nameSpan!.start).toMatchObject({ offset: 9, column: 10 });
  });
});

describe("syntax errors", () => {
  it.each([
    ["unknown tensor element type", "block b() {\n  forward(x: float16[B]) -> [B] {\n    return x\n  }\n}", 2, 14, "unknown tensor element type 'float16'"],
    ["network is not a call", "spec s {\n  network: 3\n}", 2, 12, "`network:` must be a call of a block"],
    ["missing `->`", "block b() {\n  forward(x: [B]) [B] {\n    return x\n  }\n}", 2, 19, "expected '->' but found '['"],
    ["junk at the top level", "spec s { }\nfoo", 2, 1, "unexpected 'foo'"],
    ["a statement that is not one", "block b() {\n  forward(x: [B]) -> [B] {\n    3\n  }\n}", 3, 5, "expected '}' but found '3'"],
  ])("%s", (_, src, line, col, msg) => {
    const r = parseSource("t.mdl", src);
    expect(r.ast).toBeUndefined();
    const d = r.diagnostics[0];
    expect(d, JSON.stringify(r.diagnostics)).toBeDefined();
    expect([d.code, d.span.start.line, d.span.start.column]).toEqual(["SDC200", line, col]);
    expect(d.message).toContain(msg);
  });
});
