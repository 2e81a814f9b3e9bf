/** Fixed position and timestep tables. */
import { dimOp } from "../values.ts";
import { int, flt, bool, tensor, num, rank, floatTensor, positive } from "./rules.ts";
import { type Primitive } from "./types.ts";

export const POSITION: Record<string, Primitive> = {
  positions_2d: {
    name: "positions_2d",
    doc: "position ids of a gh x gw grid: float32 [gh*gw, 2], (row, column) per token in row-major order (Flux's image ids, without the leading zero axis)",
    args: [{ name: "gh", type: "int", doc: "rows" }, { name: "gw", type: "int", doc: "columns" }],
    runtime: "positions2d",
    example: { gh: "gh", gw: "gw" },
    infer(a, c) {
      const [gh, gw] = [num(a, "gh"), num(a, "gw")];
      positive(c, "gh", gh, "gh");
      positive(c, "gw", gw, "gw");
      return floatTensor([dimOp("*", gh, gw), 2]);
    },
  },
  sincos_2d: {
    name: "sincos_2d",
    doc: "fixed 2-D sin-cos position embedding computed on a max_grid x max_grid grid and centre-cropped to gh x gw: [1, gh*gw, width]",
    args: [{ name: "gh", type: "int", doc: "rows" }, { name: "gw", type: "int", doc: "columns" }, { name: "width", type: "int", doc: "embedding width (multiple of 4)" }, { name: "max_grid", type: "int", doc: "grid the table is computed on" }, { name: "base", type: "int", default: int(0), doc: "base grid size for scaling (0 = gh)" }],
    runtime: "SinCos2d",
    layer: { ctor: { width: "width", maxGrid: "max_grid", base: "base" }, apply: ["gh", "gw"] },
    example: { gh: "gh", gw: "gw", width: "D", max_grid: "M" },
    infer(a, c) {
      const [gh, gw, w, m] = [num(a, "gh"), num(a, "gw"), num(a, "width"), num(a, "max_grid")];
      c.div("width", w, 4, "sincos_2d: width must be a multiple of 4");
      if (typeof gh === "number" && typeof m === "number" && gh > m) c.fail("max_grid", "SDC407", `sincos_2d: the patch grid (${gh} rows) is larger than max_grid ${m}`);
      if (typeof gw === "number" && typeof m === "number" && gw > m) c.fail("max_grid", "SDC407", `sincos_2d: the patch grid (${gw} columns) is larger than max_grid ${m}`);
      return floatTensor([1, dimOp("*", gh, gw), w]);
    },
    weights(a) {
      const m = num(a, "max_grid");
      return [{ suffix: null, shape: [1, dimOp("*", m, m), num(a, "width")], init: "fixed", buffer: true }];
    },
  },
  timestep_embedding: {
    name: "timestep_embedding",
    doc: "sinusoidal embedding of t [B] -> [B, dim]; flip: cos half first (as the reference)",
    args: [{ name: "t", type: "tensor", doc: "timesteps [B]" }, { name: "dim", type: "int", doc: "channels (even)" }, { name: "flip", type: "bool", default: bool(true), doc: "cos first" }, { name: "max_period", type: "float", default: flt(10000), doc: "longest period" }, { name: "scale", type: "float", default: flt(1), doc: "multiply t first" }],
    runtime: "timestepEmbedding",
    example: { t: "[B]", dim: "D" },
    infer(a, c) {
      const t = tensor(a, "t");
      rank(c, "t", t.shape, 1, "timestep_embedding");
      c.div("dim", num(a, "dim"), 2, "timestep_embedding: dim must be even");
      return floatTensor([t.shape[0], num(a, "dim")]);
    },
  },
};
