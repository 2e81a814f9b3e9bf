/**
 * Integer floor division `a div b` and the remainder `a % b` (`//` is a comment in .mdl): their
 * values (constant folding in spec lets, symbolic in blocks), their precedence, `div` still a
 * name where no expression continues, positioned errors (division by zero, float operands, a
 * tensor), and the generated constructor computing what the checker computed.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runCompile } from "../../cli/commands/compile.ts";
import { loadCompiled } from "../../cli/generated.ts";
import { ParamStore } from "../../runtime/nn/params.ts";
import { floordiv } from "../../runtime/nn/functional.ts";
import { blockB, compileSource, type Expected, expectError, lines, net, spec } from "./helpers.ts";

/** A spec whose `let v = <expr>` is evaluated with `param n = 7` and `param m = -7`. */
const letSpec = (expr: string) => spec("net(ch: 1, ctx: 24)", ["  param n = 7", "  param m = -7", `  let v = ${expr}`, "  require v == v"]);

describe("values: floor division and remainder on integers, folded at compile time", () => {
  it.each<[string, number]>([
    ["7 div 2", 3],
    ["n div 2", 3],
    ["m div 2", -4], // floors, as Python's //
    ["7 div -2", -4],
    ["n div n", 1],
    ["6 div 3", 2],
    ["n % 4", 3],
    ["(n - n % 2) div 2", 3],
    ["1 + 7 div 2 * 2", 7], // div binds as * and /, left to right
    ["20 div 2 div 3", 3],
    ["2 * n div 2", 7],
    ["n div 2 == 3 ? 1 : 0", 1],
  ])("%s = %d", (expr, want) => {
    const r = compileSource(lines(net(), letSpec(expr)));
    expect(r.diagnostics.filter((d) => d.severity === "error"), JSON.stringify(r.diagnostics)).toEqual([]);
    expect(r.ir!.spec.params.v).toBe(want);
  });

  it("`div` stays a name where no expression continues: a statement, a setting, an argument", () => {
    const src = lines(
      "block b(width: int, div: int = 2) {",
      "  forward(x: [B, N, width]) -> [B, N, width] {",
      "    y = x * div",
      "    div2 = y",
      "    return div2 + x * (width div div)",
      "  }",
      "}",
      net("    y = b(c, width: 24, div: 3) as blk"),
      spec(),
    );
    const r = compileSource(src);
    expect(r.diagnostics.filter((d) => d.severity === "error"), JSON.stringify(r.diagnostics)).toEqual([]);
  });
});

const bad: (Expected & { name: string; expr: string })[] = [
  { name: "division by zero", expr: "n div 0", code: "SDC603", line: 12, col: 17, msg: "division by zero" },
  { name: "division by a zero difference", expr: "n div (n - 7)", code: "SDC603", line: 12, col: 18, msg: "division by zero" },
  { name: "remainder by zero", expr: "n % 0", code: "SDC603", line: 12, col: 15, msg: "division by zero" },
  { name: "a float dividend", expr: "7.0 div 2", code: "SDC401", line: 12, col: 11, msg: "'div' needs integers, got float 7; for a float quotient use '/'" },
  { name: "a float divisor", expr: "n div 0.5", code: "SDC401", line: 12, col: 17, msg: "'div' needs integers, got float 0.5" },
  { name: "a float remainder", expr: "2.5 % 2", code: "SDC401", line: 12, col: 11, msg: "'%' needs integers, got float 2.5" },
  { name: "a bool", expr: "true div 2", code: "SDC401", line: 12, col: 11, msg: "'div' needs numbers, got bool" },
];

describe("errors: code, position, message", () => {
  it.each(bad)("$name", (c) => {
    // net() is lines 1-6, the spec 7-10, then `param n = 7` and `let v = ...` (its expression at column 11)
    expectError(compileSource(lines(net(), spec("net(ch: 1, ctx: 24)", ["  param n = 7", `  let v = ${c.expr}`]))), { ...c, line: 12 });
  });

  it("a tensor operand is refused where the operator is", () => {
    const r = compileSource(lines(blockB("    return x div 2"), net("    y = b(c, width: 24) as blk"), spec()));
    expectError(r, { code: "SDC401", line: 3, col: 12, msg: "'div' is integer arithmetic, not defined on tensors" });
  });
});

describe("blocks: symbolic floor division reaches the generated constructor", () => {
  const tmp = mkdtempSync(join(tmpdir(), "sdc-int-arith-"));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const sink = { write: () => true, isTTY: false } as unknown as NodeJS.WriteStream;

  it("`for i in 0 .. depth div 2` builds as many layers in the package as the checker counted", async () => {
    const src = lines(
      "block stack(width: int, depth: int) {",
      "  let half = depth div 2",
      "  forward(x: [B, N, width]) -> [B, N, width] {",
      "    for i in 0 .. half {",
      "      x = linear(x, width) as blocks[i]",
      "    }",
      "    return x + linear(x, width div 3 * 3) as out",
      "  }",
      "}",
      net("    c = stack(c, width: 24, depth: 5) as s"),
      spec(),
    );
    const file = join(tmp, "fd.mdl");
    writeFileSync(file, src);
    let err = "";
    const capture = { write: (x: string) => ((err += x), true), isTTY: false } as unknown as NodeJS.WriteStream;
    expect(runCompile(file, { outDir: tmp, quiet: true }, sink, capture), err).toBe(0);
    const model = readFileSync(join(tmp, "fd", "model.ts"), "utf8");
    expect(model).toContain("F.floordiv(depth, 2)");
    const loaded = await loadCompiled(join(tmp, "fd"));
    const store = new ParamStore(0);
    loaded.spec.createNetwork(store);
    // 2 blocks of 24x24 + 24 and the output layer: what the IR counted
    expect(store.numParams).toBe(3 * (24 * 24 + 24));
    expect(store.numParams).toBe(loaded.ir.stats.networkParams);
    store.dispose();
  });

  it("the runtime's floordiv floors and refuses zero", () => {
    expect([floordiv(7, 2), floordiv(-7, 2), floordiv(7, -2), floordiv(6, 3)]).toEqual([3, -4, -4, 2]);
    expect(() => floordiv(1, 0)).toThrow(/division by zero/);
  });
});
