/**
 * The layout, constant and elementwise primitives in the checker: the shapes they give (a block
 * returning a declared shape compiles only when the rule computes it), and one bad call per row
 * with its stable code, the exact 1-based line:column it points at and a fragment of the message.
 * Block `b` is called on the context [B, 5, 24] (width 24); its body is line 3, `return` at col 5.
 */
import { describe, expect, it } from "vitest";
import { blockB, compileSource, type Expected, expectError, lines, net, spec } from "./helpers.ts";

const useB = (call: string) => net(`    y = ${call}`);
/** block b's body `return <expr>` (the expression starts at column 12), called on c [B, 5, 24] */
const ret = (expr: string, sig?: string) => lines(blockB(`    return ${expr}`, sig), useB("b(c, width: 24) as blk"), spec());

describe("shape rules: a block returning the declared shape compiles", () => {
  it.each<[string, string, string?]>([
    ["reshape with -1 and symbolic sizes", "reshape(reshape(x, [B, N, 4, -1]), [B, N, width])"],
    ["reshape merging the batch (B * N rows)", "reshape(reshape(x, [B * N, width]), [B, -1, width])"],
    ["reshape whose -1 is the batch ([120, B]), and back", "reshape(reshape(x, [120, -1]), [B, N, width])"],
    ["permute there and back", "permute(permute(x, [2, 0, 1]), [1, 2, 0])"],
    ["transpose twice", "transpose(transpose(x, 1, 2), -1, -2)"],
    ["slice then pad back to the length", "pad(slice(x, 1, -1, axis: 1), 1, 1, axis: 1, value: -1.0)"],
    ["slice of the width, repeated", "repeat(slice(x, 0, 12), 2)"],
    ["broadcast_to of a mean", "broadcast_to(unsqueeze(mean(x, 1), 1), [B, N, width])"],
    ["squeeze after unsqueeze", "squeeze(unsqueeze(x, 0), 0)"],
    ["constants broadcast with x", "x + zeros([B, 1, width]) + ones([width]) * full([1, 1, 1], 2) + unsqueeze(arange(N), 1)"],
    ["minimum and maximum: broadcasting, a number", "maximum(minimum(x, unsqueeze(mean(x, 1), 1)), 0.5)"],
    ["clamp, pow, square", "clamp(pow(square(x), 1.5), -1, 1)"],
    ["sin and cos", "sin(x) * sin(x) + cos(x * 2)"],
    ["where: a broadcast mask, a number for b", "where(unsqueeze(mean(x, 2), 2), x, -1e9)"],
    ["where: numbers for both sides", "x * where(x, 1, 0)"],
  ])("%s", (_, expr) => {
    const r = compileSource(ret(expr));
    expect(r.diagnostics.filter((d) => d.severity === "error"), JSON.stringify(r.diagnostics)).toEqual([]);
  });
});

const cases: (Expected & { name: string; expr: string })[] = [
  { name: "reshape: two -1", expr: "reshape(x, [B, -1, -1])", code: "SDC407", line: 3, col: 23, msg: "reshape: at most one size may be -1, got [B, -1, -1]" },
  { name: "reshape: a zero size", expr: "reshape(x, [B, 0, -1])", code: "SDC407", line: 3, col: 23, msg: "sizes must be positive (or one -1)" },
  { name: "reshape: element counts differ", expr: "reshape(x, [B, 5, 25])", code: "SDC500", line: 3, col: 23, msg: "reshape: [B, 5, 24] has B * 5 * 24 elements, [B, 5, 25] has B * 5 * 25" },
  { name: "reshape: -1 does not divide", expr: "reshape(x, [B, 7, -1])", code: "SDC502", line: 3, col: 23, msg: "reshape: [B, 5, 24] (B * 5 * 24 elements) does not split into [B, 7, -1]" },
  { name: "reshape: -1 would be a fraction of the batch", expr: "reshape(x, [7, -1])", code: "SDC502", line: 3, col: 23, msg: "does not split into [7, -1]" },
  { name: "reshape: the shape is not a list", expr: "reshape(x, 3)", code: "SDC401", line: 3, col: 23, msg: "reshape: argument 'shape' must be a list of integers, got int 3" },
  { name: "permute: an axis repeats", expr: "permute(x, [0, 1, 1])", code: "SDC407", line: 3, col: 23, msg: "permute: [0, 1, 1] is not a permutation" },
  { name: "permute: too few axes", expr: "permute(x, [1, 0])", code: "SDC501", line: 3, col: 23, msg: "permute: 2 axes for a rank-3 tensor" },
  { name: "permute: axis out of range", expr: "permute(x, [0, 1, 3])", code: "SDC407", line: 3, col: 23, msg: "axis 3 is out of range for a rank-3 tensor" },
  { name: "transpose: axis out of range", expr: "transpose(x, 1, 3)", code: "SDC407", line: 3, col: 28, msg: "axis 3 is out of range for a rank-3 tensor" },
  { name: "slice: end past the axis", expr: "slice(x, 0, 30)", code: "SDC407", line: 3, col: 24, msg: "slice: end 30 is out of range for axis 2 of size 24" },
  { name: "slice: negative start past the front", expr: "slice(x, -30, -1)", code: "SDC407", line: 3, col: 21, msg: "slice: start -30 is out of range for axis 2 of size 24" },
  { name: "slice: empty", expr: "slice(x, 3, 2, axis: 1)", code: "SDC407", line: 3, col: 24, msg: "slice: end 2 must be after start 3" },
  { name: "slice: axis out of range", expr: "slice(x, 0, 1, axis: 3)", code: "SDC407", line: 3, col: 33, msg: "axis 3 is out of range" },
  { name: "repeat: zero copies", expr: "repeat(x, 0)", code: "SDC407", line: 3, col: 22, msg: "n must be a positive integer, got 0" },
  { name: "broadcast_to: a size that is not 1 differs", expr: "broadcast_to(x, [B, 5, 12])", code: "SDC500", line: 3, col: 28, msg: "broadcast_to: cannot broadcast [B, 5, 24] to [B, 5, 12] (axis 2): 12 vs 24" },
  { name: "broadcast_to: a lower rank", expr: "broadcast_to(x, [5, 24])", code: "SDC501", line: 3, col: 28, msg: "cannot broadcast rank 3 [B, 5, 24] to rank 2 [5, 24]" },
  { name: "pad: negative count", expr: "pad(x, -1, 0)", code: "SDC407", line: 3, col: 19, msg: "pad: before must be a non-negative integer, got -1" },
  { name: "pad: the value is not a number", expr: "pad(x, 1, 0, value: true)", code: "SDC401", line: 3, col: 32, msg: "pad: argument 'value' must be float, got bool true" },
  { name: "squeeze: the axis is not of size 1", expr: "squeeze(x, 1)", code: "SDC500", line: 3, col: 23, msg: "squeeze: axis 1 of [B, 5, 24] must have size 1: 5 vs 1" },
  { name: "zeros: a zero size", expr: "x + zeros([B, 0, 24])", code: "SDC407", line: 3, col: 22, msg: "zeros: a size must be a positive integer, got 0" },
  { name: "full: a missing value", expr: "x + full([1])", code: "SDC402", line: 3, col: 16, msg: "full: missing argument 'value'" },
  { name: "arange: zero length", expr: "x + arange(0)", code: "SDC407", line: 3, col: 23, msg: "n must be a positive integer, got 0" },
  { name: "maximum: the shapes do not broadcast", expr: "maximum(x, slice(x, 0, 5))", code: "SDC500", line: 3, col: 23, msg: "maximum: cannot broadcast [B, 5, 24] with [B, 5, 5]: axis 2 is 24 vs 5" },
  { name: "minimum: two numbers", expr: "x + minimum(1, 2)", code: "SDC401", line: 3, col: 24, msg: "minimum: one of a and b must be a tensor" },
  { name: "clamp: max below min", expr: "clamp(x, 1, -1)", code: "SDC407", line: 3, col: 24, msg: "clamp: max -1 is below min 1" },
  { name: "where: the mask does not broadcast", expr: "where(slice(x, 0, 2, axis: 1), x, 0.0)", code: "SDC500", line: 3, col: 18, msg: "where: the mask cannot broadcast [B, 2, 24] with [B, 5, 24]" },
  { name: "where: a and b do not broadcast", expr: "where(x, x, slice(x, 0, 3))", code: "SDC500", line: 3, col: 24, msg: "where: cannot broadcast [B, 5, 24] with [B, 5, 3]" },
  { name: "where: a bool where a tensor or number goes", expr: "where(x, x, true)", code: "SDC401", line: 3, col: 24, msg: "where: argument 'b' must be a tensor or a number, got bool true" },
  { name: "pow: a tensor exponent", expr: "pow(x, x)", code: "SDC401", line: 3, col: 19, msg: "pow: argument 'p' must be float, got tensor [B, 5, 24]" },
];

describe("bad calls: code, position, message", () => {
  it.each(cases.map((c) => [c.name, c] as const))("%s", (_, c) => {
    expectError(compileSource(ret(c.expr)), c);
  });
});
