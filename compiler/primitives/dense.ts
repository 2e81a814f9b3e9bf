/** Dense layers and learned tensors: linear, embedding, parameter. */
import { type Dim, shapeToString, type Value } from "../values.ts";
import { bool, str, tensor, num, flag, last, minRank, floatTensor, positive, X } from "./rules.ts";
import { parameterInit } from "../../ir/ir.ts";
import { type Primitive, type WeightSpec, linearInit } from "./types.ts";

export const DENSE: Record<string, Primitive> = {
  linear: {
    name: "linear",
    doc: "y = x W^T + b over the last axis; W is [out, in] as in PyTorch",
    args: [X, { name: "out", type: "int", doc: "output features" }, { name: "bias", type: "bool", default: bool(true), doc: "add a bias" }, { name: "init", type: "string", default: str("torch"), doc: 'weight init: "torch" (PyTorch default), "zeros", "xavier_uniform", "normal(STD)" or "trunc_normal(STD)" (the last three with zero bias)' }],
    runtime: "Linear",
    layer: { ctor: { inFeatures: { lastDim: "x" }, outFeatures: "out", bias: "bias", init: "init" }, apply: ["x"] },
    example: { x: "[B, N, D]", out: "out" },
    infer(a, c) {
      const x = tensor(a, "x");
      minRank(c, "x", x.shape, 1, "linear");
      positive(c, "out", num(a, "out"), "out");
      return floatTensor([...x.shape.slice(0, -1), num(a, "out")]);
    },
    weights(a, c) {
      const name = a.init?.t === "string" ? a.init.v : "torch";
      const init = linearInit(name);
      if (!init) return c.fail("init", "SDC407", `init must be "torch", "zeros", "xavier_uniform", "normal(STD)" or "trunc_normal(STD)" with STD > 0, got ${JSON.stringify(name)}`);
      const inF = last(tensor(a, "x").shape);
      const w: WeightSpec[] = [{ suffix: "weight", shape: [num(a, "out"), inF], init: init.weight, buffer: false }];
      if (flag(a, "bias") !== false) w.push({ suffix: "bias", shape: [num(a, "out")], init: init.bias, buffer: false });
      return w;
    },
  },
  embedding: {
    name: "embedding",
    doc: "token embedding: int32 ids -> [..., width]",
    args: [{ name: "ids", type: "tensor", doc: "token ids (int32)" }, { name: "vocab", type: "int", doc: "vocabulary size" }, { name: "width", type: "int", doc: "embedding width" }],
    runtime: "Embedding",
    layer: { ctor: { vocab: "vocab", width: "width" }, apply: ["ids"] },
    example: { ids: "int32[B, T]", vocab: "V", width: "D" },
    infer(a, c) {
      const ids = tensor(a, "ids");
      if (ids.dtype !== "int32") c.fail("ids", "SDC401", `embedding: ids must be int32, got float32 ${shapeToString(ids.shape)}`);
      positive(c, "vocab", num(a, "vocab"), "vocab");
      return floatTensor([...ids.shape, num(a, "width")]);
    },
    weights: (a) => [{ suffix: "weight", shape: [num(a, "vocab"), num(a, "width")], init: "normal_0.02", buffer: false }],
  },
  parameter: {
    name: "parameter",
    doc: "a learned tensor of the given shape (e.g. learned positions, a learned scale), initialized by `init`",
    args: [
      { name: "shape", type: "ints", doc: "shape" },
      { name: "init", type: "string", optional: true, doc: 'initial values: N(0, 0.02) when left out, or "zeros", "ones", "constant(V)", "normal(STD)", "trunc_normal(STD)" (redrawn outside +-2 STD), "xavier_uniform" (fans from the first two axes, as torch.nn.init)' },
    ],
    runtime: "Parameter",
    layer: { ctor: { shape: "shape", init: "init" }, apply: [] },
    example: { shape: "[N, D]" },
    infer: (a) => floatTensor((a.shape as { items: Value[] }).items.map((v) => (v as { v: Dim }).v)),
    weights(a, c) {
      const init = a.init?.t === "string" ? parameterInit(a.init.v) : "normal_0.02";
      if (!init) return c.fail("init", "SDC407", `parameter: init must be "zeros", "ones", "constant(V)", "normal(STD)", "trunc_normal(STD)" or "xavier_uniform" with STD > 0 and V finite, got ${JSON.stringify((a.init as { v: string }).v)}`);
      return [{ suffix: null, shape: (a.shape as { items: Value[] }).items.map((v) => (v as { v: Dim }).v), init, buffer: false }];
    },
  },
};

