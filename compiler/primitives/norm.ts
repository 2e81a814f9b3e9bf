/** Normalizations over the last axis (and channel groups). */
import { int, flt, bool, tensor, num, flag, last, minRank, floatTensor, positive, X } from "./rules.ts";
import { type Args, type Primitive, type WeightSpec } from "./types.ts";

/** A normalization's affine parameters over the last axis (weight 1, bias 0), unless affine: false. */
function affineWeights(a: Args): WeightSpec[] {
  if (flag(a, "affine") === false) return [];
  const d = last(tensor(a, "x").shape);
  return [
    { suffix: "weight", shape: [d], init: "ones", buffer: false },
    { suffix: "bias", shape: [d], init: "zeros", buffer: false },
  ];
}

export const NORM: Record<string, Primitive> = {
  layer_norm: {
    name: "layer_norm",
    doc: "LayerNorm over the last axis; affine adds weight and bias",
    args: [X, { name: "eps", type: "float", default: flt(1e-5), doc: "epsilon" }, { name: "affine", type: "bool", default: bool(true), doc: "learn weight and bias" }],
    runtime: "LayerNorm",
    layer: { ctor: { dim: { lastDim: "x" }, eps: "eps", affine: "affine" }, apply: ["x"] },
    fn: { name: "layerNorm", args: ["x", "eps"] },
    example: { x: "[B, N, D]" },
    infer: (a) => floatTensor(tensor(a, "x").shape),
    weights: affineWeights,
  },
  rms_norm: {
    name: "rms_norm",
    doc: "RMSNorm over the last axis, per head when heads > 1 (q/k norm)",
    args: [X, { name: "eps", type: "float", default: flt(1e-6), doc: "epsilon" }, { name: "heads", type: "int", default: int(1), doc: "normalise each of `heads` equal slices" }, { name: "affine", type: "bool", default: bool(true), doc: "learn a weight" }],
    runtime: "RmsNorm",
    layer: { ctor: { dim: { lastDim: "x" }, eps: "eps", heads: "heads", affine: "affine" }, apply: ["x"] },
    fn: { name: "rmsNorm", args: ["x", "eps", "heads"] },
    example: { x: "[B, N, D]" },
    infer(a, c) {
      const x = tensor(a, "x");
      c.div("heads", last(x.shape), num(a, "heads"), "the last dimension must split into heads");
      return floatTensor(x.shape);
    },
    weights(a, c) {
      if (flag(a, "affine") === false) return [];
      return [{ suffix: "weight", shape: [c.div("heads", last(tensor(a, "x").shape), num(a, "heads"), "the last dimension must split into heads")], init: "ones", buffer: false }];
    },
  },
  group_norm: {
    name: "group_norm",
    doc: "GroupNorm on channels-last [B, ..., C]: mean and variance over the spatial axes and each of `groups` channel groups; affine adds weight and bias [C] (PyTorch GroupNorm)",
    args: [X, { name: "groups", type: "int", doc: "channel groups (divides C)" }, { name: "eps", type: "float", default: flt(1e-5), doc: "epsilon" }, { name: "affine", type: "bool", default: bool(true), doc: "learn weight and bias" }],
    runtime: "GroupNorm",
    layer: { ctor: { channels: { lastDim: "x" }, groups: "groups", eps: "eps", affine: "affine" }, apply: ["x"] },
    fn: { name: "groupNorm", args: ["x", "groups", "eps"] },
    example: { x: "[B, H, W, C]", groups: "32" },
    infer(a, c) {
      const x = tensor(a, "x");
      minRank(c, "x", x.shape, 2, "group_norm");
      positive(c, "groups", num(a, "groups"), "groups");
      c.div("groups", last(x.shape), num(a, "groups"), "group_norm: groups must divide the channels");
      return floatTensor(x.shape);
    },
    weights: affineWeights,
  },
};
