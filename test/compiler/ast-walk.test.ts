/**
 * The walkers beside the AST (compiler/ast.ts): every expression kind's children are visited, in
 * source order; walkExpr goes parents first and can skip a subtree; walkStmts reaches every
 * statement kind's expressions and nested bodies; a kind with no case does not compile (and,
 * forced past the compiler, throws an internal error).
 */
import { describe, expect, it } from "vitest";
import * as A from "../../compiler/ast.ts";
import { exprText } from "../../compiler/check/index.ts";
import { parseExpression } from "../../compiler/parser.ts";
import { parseSource } from "../../compiler/program.ts";

function expr(src: string): A.Expr {
  const r = parseExpression("e", src);
  expect(r.diagnostics, JSON.stringify(r.diagnostics)).toEqual([]);
  return r.expr!;
}

const children = (e: A.Expr): string[] => {
  const out: string[] = [];
  A.forEachChildExpr(e, (c) => out.push(exprText(c)));
  return out;
};

/** One source per expression kind and the texts of its direct children, in order (a Record: a new kind must be added here). */
const CASES: Record<A.Expr["kind"], [src: string, children: string[]]> = {
  number: ["42", []],
  string: ['"gelu"', []],
  bool: ["true", []],
  ident: ["width", []],
  binary: ["a * (b + 1)", ["a", "b + 1"]],
  unary: ["-depth", ["depth"]],
  ternary: ["c ? t + 1 : e", ["c", "t + 1", "e"]],
  call: ["linear(x, w * 2, bias: b) as blocks[i].to_q[j + 1]", ["x", "w * 2", "b", "i", "j + 1"]],
  list: ["[a, b + 1, 3]", ["a", "b + 1", "3"]],
  index: ["ws[i - 1]", ["ws", "i - 1"]],
  method: ["xs.append(y + 1)", ["xs", "y + 1"]],
  shape: ["int32[B, n + 1]", ["B", "n + 1"]],
};

describe("forEachChildExpr", () => {
  for (const [kind, [src, want]] of Object.entries(CASES)) {
    it(`visits the children of a ${kind} expression in source order`, () => {
      const e = expr(src);
      expect(e.kind).toBe(kind);
      expect(children(e)).toEqual(want);
    });
  }

  it("visits the very child nodes (not copies), once each", () => {
    const e = expr("f(a, b) as m[i]") as A.Call;
    const seen: A.Expr[] = [];
    A.forEachChildExpr(e, (c) => seen.push(c));
    expect(seen).toHaveLength(3);
    expect(seen[0]).toBe(e.args[0].value);
    expect(seen[1]).toBe(e.args[1].value);
    expect(seen[2]).toBe(e.label!.segments[1].index);
  });

  it("has a case for every kind: a kind left over does not compile, and throws if forced", () => {
    const leftOver = expr("int32[B, n]") as A.ShapeExpr;
    // forEachChildExpr's default case passes `e` to unhandledKind, which takes only `never`:
    // the type left once every kind has had its case. A kind without a case is not `never`:
    // @ts-expect-error: a ShapeExpr reaching the default case (its case missing) is a compile error
    expect(() => A.unhandledKind(leftOver)).toThrow("internal error: node kind 'shape' has no case");
    const alien = { kind: "lambda", span: leftOver.span } as unknown as A.Expr;
    expect(() => A.forEachChildExpr(alien, () => {})).toThrow("internal error: node kind 'lambda' has no case");
  });
});

describe("walkExpr", () => {
  it("visits every node, parents before children, in source order", () => {
    const seen: string[] = [];
    A.walkExpr(expr("f(a + b, [c, -d]) as m[i ? 1 : 2]"), (x) => void seen.push(exprText(x)));
    expect(seen).toEqual(["f(a + b, [c, -d]) as m[i ? 1 : 2]", "a + b", "a", "b", "[c, -d]", "c", "-d", "d", "i ? 1 : 2", "i", "1", "2"]);
  });

  it("skips the children of a node where the visitor returns false", () => {
    const seen: string[] = [];
    A.walkExpr(expr("g(a + b, c) * h(d)"), (x) => {
      seen.push(exprText(x));
      return x.kind !== "call" || x.callee !== "g";
    });
    expect(seen).toEqual(["g(a + b, c) * h(d)", "g(a + b, c)", "h(d)", "d"]);
  });
});

describe("exprNames", () => {
  it("collects every identifier read, first-seen order, into the set given", () => {
    const out = new Set(["z"]);
    expect([...A.exprNames(expr("f(a, b * a, k: c) as m[i]"), out)]).toEqual(["z", "a", "b", "c", "i"]);
    expect([...A.exprNames(expr("xs.pop()"))]).toEqual(["xs"]);
    expect([...A.exprNames(expr("int32[B, ws[n - 1]]"))]).toEqual(["B", "ws", "n"]);
  });
});

describe("walkStmts", () => {
  it("visits each statement, then its own expressions with their owner, bodies in source order", () => {
    const src = [
      "block b(width: int, depth: int) {",
      "  forward(x: [B, N, width]) -> [B, N, width] {",
      "    skips = []",
      "    for i in 0..depth {",
      "      skips.append(x)",
      "      if i > 1 {",
      "        x = x + skips.pop()",
      "      } else {",
      "        x = -x",
      "      }",
      "    }",
      "    return x, x * 2",
      "  }",
      "}",
    ].join("\n");
    const r = parseSource("t.mdl", src);
    expect(r.diagnostics).toEqual([]);
    const seen: string[] = [];
    A.walkStmts(r.ast!.blocks[0].forward!.body, (e, owner) => void seen.push(`${owner.kind}: ${exprText(e)}`), (s) => void seen.push(s.kind));
    expect(seen).toEqual([
      "assign", "assign: []",
      "for", "for: 0", "for: depth",
      "method", "method: skips.append(x)",
      "if", "if: i > 1",
      "assign", "assign: x + skips.pop()",
      "assign", "assign: -x",
      "return", "return: x", "return: x * 2",
    ]);
  });

  it("has a case for every statement kind: one forced past the compiler throws", () => {
    const alien = { kind: "while", span: expr("1").span } as unknown as A.Stmt;
    expect(() => A.walkStmts([alien], () => {})).toThrow("internal error: node kind 'while' has no case");
  });
});
