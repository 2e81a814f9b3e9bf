/**
 * The checker's rules for attention's mask, kv_heads and scale, rope and positions_2d: one bad call per
 * row, with its stable code, the exact line:column of the argument it blames and its message;
 * then good calls compile and the generated code passes the optional arguments in place.
 */
import { describe, expect, it } from "vitest";
import { compileSource, expectError, lines, net, spec } from "./helpers.ts";

/** A network (context c: [B, 5, 24], pooled p: [B, 20]) whose body is `line` (line 3). */
const src = (line: string) => lines(net(`    ${line}`), spec());

interface Row {
  name: string;
  line: string;
  /** the text the error points at (its first occurrence after `after`, if given) */
  at: string;
  after?: string;
  code: string;
  msg: string;
}

const rows: Row[] = [
  // attention(mask:)
  { name: "mask of rank 4", line: "a = attention(c, c, c, heads: 2, mask: unsqueeze(c, 1))", at: "unsqueeze", code: "SDC501", msg: "attention's mask needs [B, S'] (key padding) or [B, S, S'] (per query), got rank 4 [B, 1, 5, 24]" },
  { name: "per-query mask with more keys than k", line: "a = attention(c, c, c, heads: 2, mask: c)", at: "c)", after: "mask: ", code: "SDC500", msg: "attention: length of the mask must match the key length: 24 vs 5" },
  { name: "per-query mask with more rows than queries", line: "a = attention(c, c, c, heads: 2, mask: neighbourhood_mask(2, 3, 1))", at: "neighbourhood_mask", code: "SDC500", msg: "attention: the mask's rows must match the query length: 6 vs 5" },
  // neighbourhood_mask
  { name: "neighbourhood_mask: an even kernel", line: "m = neighbourhood_mask(4, 4, 2)", at: "2)", code: "SDC407", msg: "neighbourhood_mask: kernel must be odd (a window centred on its query), got 2" },
  { name: "neighbourhood_mask: a kernel wider than the grid", line: "m = neighbourhood_mask(4, 2, 3)", at: "3)", code: "SDC407", msg: "neighbourhood_mask: kernel 3 is larger than the grid's w = 2" },
  { name: "neighbourhood_mask: a zero side", line: "m = neighbourhood_mask(0, 4, 1)", at: "0,", code: "SDC407", msg: "neighbourhood_mask: h must be a positive integer, got 0" },
  { name: "mask longer than the keys", line: "a = attention(c, c, c, heads: 2, mask: p)", at: "p)", code: "SDC500", msg: "attention: length of the mask must match the key length: 20 vs 5" },
  { name: "mask not a tensor", line: "a = attention(c, c, c, heads: 2, mask: 1.0)", at: "1.0", code: "SDC401", msg: "attention: argument 'mask' must be tensor, got float 1" },
  // attention(scale:)
  { name: "scale zero", line: "a = attention(c, c, c, heads: 2, scale: 0.0)", at: "0.0", code: "SDC407", msg: "attention: scale must be a positive number, got 0" },
  { name: "scale negative", line: "a = attention(c, c, c, heads: 2, scale: -2.0)", at: "-2.0", code: "SDC407", msg: "attention: scale must be a positive number, got -2" },
  { name: "mask of another batch", line: "a = attention(c, c, c, heads: 2, mask: mean(mean(c, axis: 0), axis: 1))", at: "mean(mean", code: "SDC501", msg: "attention's mask needs [B, S'] (key padding) or [B, S, S'] (per query), got rank 1 [5]" },
  // attention(kv_heads:)
  { name: "kv_heads not dividing heads", line: "a = attention(c, linear(c, 12) as k, linear(c, 12) as v, heads: 4, kv_heads: 3)", at: "3)", code: "SDC502", msg: "attention: kv_heads must divide heads: 4 is not divisible by 3" },
  { name: "kv_heads zero", line: "a = attention(c, c, c, heads: 4, kv_heads: 0)", at: "0)", code: "SDC407", msg: "kv_heads must be a positive integer, got 0" },
  { name: "k as wide as q with fewer kv heads", line: "a = attention(c, c, c, heads: 4, kv_heads: 2)", at: "c, c, heads", code: "SDC500", msg: "attention: width of k must be kv_heads * the head width (q's width / heads): 24 vs 12" },
  { name: "v narrower than k", line: "a = attention(c, c, linear(c, 12) as v, heads: 2)", at: "linear", code: "SDC500", msg: "attention: width of v must match k: 12 vs 24" },
  // rope
  { name: "rope: axes adding up to more than the head width", line: "r = rope(c, positions_2d(1, 5), heads: 2, axes_dim: [8, 8])", at: "[8, 8]", code: "SDC500", msg: "rope: axes_dim must add up to the head width (width / heads): 16 vs 12" },
  { name: "rope: an odd axis", line: "r = rope(c, positions_2d(1, 5), heads: 2, axes_dim: [5, 7])", at: "[5, 7]", code: "SDC407", msg: "rope: each axis needs a positive even number of channels, got 5" },
  { name: "rope: no axes", line: "r = rope(c, positions_2d(1, 5), heads: 2, axes_dim: [])", at: "[]", code: "SDC407", msg: "rope: axes_dim needs at least one axis" },
  { name: "rope: one column too few", line: "r = rope(c, positions_2d(1, 5), heads: 2, axes_dim: [4, 4, 4])", at: "positions_2d", code: "SDC500", msg: "rope: positions need one column per entry of axes_dim: 2 vs 3" },
  { name: "rope: positions for other tokens", line: "r = rope(c, positions_2d(2, 3), heads: 2, axes_dim: [6, 6])", at: "positions_2d", code: "SDC500", msg: "rope: positions must have one row per token of x: 6 vs 5" },
  { name: "rope: positions of rank 1", line: "r = rope(c, mean(p, axis: 0), heads: 2, axes_dim: [6, 6])", at: "mean", code: "SDC501", msg: "rope needs positions [N, A] or [B, N, A], got rank 1 [20]" },
  { name: "rope: per-sample positions of another token count", line: "r = rope(c, unsqueeze(p, 2), heads: 2, axes_dim: [12])", at: "unsqueeze", code: "SDC500", msg: "rope: positions must have one row per token of x: 20 vs 5" },
  { name: "rope: heads not dividing the width", line: "r = rope(c, positions_2d(1, 5), heads: 5, axes_dim: [6, 6])", at: "5, axes", code: "SDC502", msg: "rope: heads must divide the width: 24 is not divisible by 5" },
  { name: "rope: x of rank 2", line: "r = rope(p, positions_2d(1, 5), heads: 2, axes_dim: [6, 6])", at: "p, positions", code: "SDC501", msg: "rope needs a rank-3 tensor, got rank 2 [B, 20]" },
  { name: "rope: theta zero", line: "r = rope(c, positions_2d(1, 5), heads: 2, axes_dim: [6, 6], theta: 0)", at: "0)", code: "SDC407", msg: "rope: theta must be positive, got 0" },
  // positions_2d
  { name: "positions_2d: zero rows", line: "r = positions_2d(0, 5)", at: "0, 5", code: "SDC407", msg: "gh must be a positive integer, got 0" },
];

describe("attention mask / kv_heads, rope and positions_2d: checker errors at the argument they blame", () => {
  it.each(rows.map((r) => [r.name, r] as const))("%s", (_, r) => {
    const text = `    ${r.line}`;
    const col = text.indexOf(r.at, r.after ? text.indexOf(r.after) : 0) + 1;
    expect(col).toBeGreaterThan(0);
    expectError(compileSource(src(r.line)), { code: r.code, line: 3, col, msg: r.msg });
  });
});

describe("good calls compile, optional arguments passed in place", () => {
  const model = (body: string[]) => {
    const r = compileSource(lines(net(body.map((l) => `    ${l}`).join("\n")), spec()));
    expect(r.diagnostics.filter((d) => d.severity === "error"), JSON.stringify(r.diagnostics)).toEqual([]);
    return r.files!.find(([path]) => path.endsWith("model.ts"))![1];
  };
  it("mask and kv_heads (and a hole for a mask left out)", () => {
    const ts = model(["m = mean(c, axis: 2) * 0 + 1", "k, v = chunk(c, 2)", "a = attention(c, k, v, heads: 4, mask: m, kv_heads: 2)", "b = attention(c, k, v, heads: 4, kv_heads: 2, causal: true)", "y = a + b"]);
    expect(ts).toMatch(/F\.attention\(c, k, v, 4, false, m, 2\)/);
    expect(ts).toMatch(/F\.attention\(c, k, v, 4, true, undefined, 2\)/);
  });
  it("scale (after the optional arguments left out)", () => {
    const ts = model(["a = attention(c, c, c, heads: 4, scale: 10.0)", "b = attention(c, c, c, heads: 4, causal: true, scale: 2)", "y = a + b"]);
    expect(ts).toMatch(/F\.attention\(c, c, c, 4, false, undefined, undefined, 10(\.0)?\)/);
    expect(ts).toMatch(/F\.attention\(c, c, c, 4, true, undefined, undefined, 2\)/);
  });
  it("rope at positions_2d ids, with per-sample ids, rotate-half", () => {
    const ts = model(["r = rope(c, positions_2d(1, 5), heads: 2, axes_dim: [4, 8], theta: 100.0)", "s = rope(c, unsqueeze(mean(c, axis: 2), 2), heads: 2, axes_dim: [12], interleaved: false)", "y = r + s"]);
    expect(ts).toMatch(/F\.rope\(c, F\.positions2d\(1, 5\), 2, \[4, 8\], 100(\.0)?, true\)/);
    expect(ts).toMatch(/F\.rope\(c, F\.unsqueeze\(.*\), 2, \[12\], 10000, false\)/);
  });
});
