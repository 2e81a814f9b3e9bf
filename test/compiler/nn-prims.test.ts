/**
 * The checker's rules for the UNet building blocks (conv2d, conv_transpose2d, group_norm,
 * upsample_nearest): the shapes and state-dict parameters they give, and a positioned error for
 * each bad use. Their numerics (tfjs, the static graph, PyTorch) are in test/graph/nn.test.ts.
 */
import { describe, expect, it } from "vitest";
import { compileSource, type Expected, expectError, lines, net, spec } from "./helpers.ts";

/** a block `u` over images [B, S, S, w] (its body is line 3), called by the network on a [B, 8, 8, 3] image */
const img = (body: string, use = "y") =>
  lines(
    "block u(w: int) {",
    "  forward(x: [B, S, S, w]) -> [B, S, S, w] {",
    body,
    "  }",
    "}",
    net(`    ${use} = u(x, w: ch) as blk`),
    spec("net(ch: 3, ctx: 24)", [], { image: "[8, 8, 3]" }),
  );

interface Case extends Expected {
  name: string;
  src: string;
}

// `    return ` is 11 columns: the call starts at column 12
const cases: Case[] = [
  { name: "group_norm: groups must divide the channels", src: img("    return group_norm(x, 2) as n"), code: "SDC502", line: 3, col: 26, msg: "group_norm: groups must divide the channels: 3 is not divisible by 2" },
  { name: "group_norm: groups must be positive", src: img("    return group_norm(x, 0) as n"), code: "SDC407", line: 3, col: 26, msg: "groups must be a positive integer, got 0" },
  { name: "group_norm: a rank-1 input", src: img("    return x + group_norm(mean(mean(mean(x, axis: 1), axis: 1), axis: 1), 1) as n"), code: "SDC501", line: 3, col: 27, msg: "group_norm needs a tensor of rank >= 2, got rank 1" },
  { name: "group_norm without affine takes no name", src: img("    return group_norm(x, 3, affine: false) as n"), code: "SDC406", line: 3, col: 47, msg: "group_norm(...) here has no parameters, so it takes no name" },
  { name: "upsample_nearest: a sequence is not an image", src: img("    return upsample_nearest(mean(x, axis: 1), 2)"), code: "SDC501", line: 3, col: 29, msg: "upsample_nearest needs a rank-4 tensor, got rank 3" },
  { name: "upsample_nearest: factor 0", src: img("    return upsample_nearest(x, 0)"), code: "SDC407", line: 3, col: 32, msg: "factor must be a positive integer, got 0" },
  { name: "upsample_nearest: the shape it gives", src: img("    return upsample_nearest(x, 2)"), code: "SDC503", line: 3, col: 12, msg: "output 1 of u is declared [B, 8, 8, 3] ([B, S, S, w]) but the value returned is [B, 16, 16, 3]" },
  { name: "conv_transpose2d: padding that leaves no output", src: img("    return conv_transpose2d(x, w, 2, stride: 1, padding: 5) as up"), code: "SDC407", line: 3, col: 58, msg: "conv_transpose2d: padding 5 leaves no output of [B, 8, 8, 3]" },
  { name: "conv_transpose2d: the shape it gives ((H - 1) * s - 2p + k)", src: img("    return conv_transpose2d(x, w, 4, stride: 2, padding: 1) as up"), code: "SDC503", line: 3, col: 12, msg: "the value returned is [B, 16, 16, 3]" },
  { name: "conv_transpose2d: a rank-3 input", src: img("    return conv_transpose2d(mean(x, axis: 1), w, 2) as up"), code: "SDC501", line: 3, col: 29, msg: "conv_transpose2d needs a rank-4 tensor, got rank 3" },
  { name: "conv2d: floor division of the side, as PyTorch (3x3, stride 2, padding 1 halves 8)", src: img("    return conv2d(x, w, 3, stride: 2, padding: 1) as down"), code: "SDC503", line: 3, col: 12, msg: "the value returned is [B, 4, 4, 3]" },
];

describe("UNet primitives: positioned errors and shapes", () => {
  it.each(cases.map((c) => [c.name, c] as const))("%s", (_, c) => {
    expectError(compileSource(c.src), c);
  });
});

describe("UNet primitives: parameters as PyTorch names and shapes them", () => {
  it("conv_transpose2d [C, out, k, k], group_norm [C], a down/up round trip", () => {
    const r = compileSource(img("    h = group_norm(conv2d(x, 8, 3, stride: 2, padding: 1) as down, 4) as norm\n    return x + conv_transpose2d(upsample_nearest(h, 1), w, 4, stride: 2, padding: 1) as up", "x"));
    expect(r.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
    const params = r.ir!.parameters.filter((p) => p.name.startsWith("blk.")).map((p) => [p.name, p.shape]);
    expect(params).toEqual([
      ["blk.down.weight", [8, 3, 3, 3]],
      ["blk.down.bias", [8]],
      ["blk.norm.weight", [8]],
      ["blk.norm.bias", [8]],
      ["blk.up.weight", [8, 3, 4, 4]],
      ["blk.up.bias", [3]],
    ]);
  });
});
