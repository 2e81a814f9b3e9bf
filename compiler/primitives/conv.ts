/** Convolutions, pooling and upsampling on channels-last images [B, H, W, C]. */
import { type Dim, dimOp, dimToString, shapeToString } from "../values.ts";
import { int, tensor, num, rank, floatTensor, positive, X } from "./rules.ts";
import { type Primitive } from "./types.ts";

/** Pooling on [B, H, W, C] with window = stride = size. */
function pool(name: string, what: string, runtime: string): Primitive {
  return {
    name,
    doc: `${what} pooling on [B, H, W, C] with window = stride = size`,
    args: [X, { name: "size", type: "int", doc: "window and stride" }],
    runtime,
    example: { x: "[B, H, W, C]", size: "2" },
    infer(a, c) {
      const x = tensor(a, "x");
      rank(c, "x", x.shape, 4, name);
      const sz = num(a, "size");
      return floatTensor([x.shape[0], c.div("size", x.shape[1], sz, `${name}: size must divide the height`), c.div("size", x.shape[2], sz, `${name}: size must divide the width`), x.shape[3]]);
    },
  };
}


export const CONV: Record<string, Primitive> = {
  patch_conv: {
    name: "patch_conv",
    doc: "patch embedding: a conv with kernel = stride = patch on [B, H, W, C], flattened to [B, (H/p)*(W/p), out]; weight [out, C, p, p] as PyTorch",
    args: [X, { name: "out", type: "int", doc: "output width" }, { name: "patch", type: "int", doc: "patch size" }],
    runtime: "PatchConv",
    layer: { ctor: { channels: { lastDim: "x" }, outFeatures: "out", patch: "patch" }, apply: ["x"] },
    example: { x: "[B, H, W, C]", out: "out", patch: "p" },
    infer(a, c) {
      const x = tensor(a, "x");
      rank(c, "x", x.shape, 4, "patch_conv");
      const p = num(a, "patch");
      positive(c, "patch", p, "patch");
      const gh = c.div("patch", x.shape[1], p, "patch_conv: the patch must divide the image height");
      const gw = c.div("patch", x.shape[2], p, "patch_conv: the patch must divide the image width");
      return floatTensor([x.shape[0], dimOp("*", gh, gw), num(a, "out")]);
    },
    weights(a) {
      const x = tensor(a, "x");
      const p = num(a, "patch");
      return [
        { suffix: "weight", shape: [num(a, "out"), x.shape[3], p, p], init: "torch_linear", buffer: false },
        { suffix: "bias", shape: [num(a, "out")], init: "torch_linear", buffer: false },
      ];
    },
  },
  conv2d: {
    name: "conv2d",
    doc: "2-D convolution on [B, H, W, C] with a square kernel, symmetric zero padding and a stride (out side floor((H + 2 * padding - kernel) / stride) + 1); weight [out, C, k, k] as PyTorch",
    args: [X, { name: "out", type: "int", doc: "output channels" }, { name: "kernel", type: "int", doc: "kernel size" }, { name: "stride", type: "int", default: int(1), doc: "stride" }, { name: "padding", type: "int", default: int(0), doc: "zero padding on each side" }],
    runtime: "Conv2d",
    layer: { ctor: { channels: { lastDim: "x" }, outFeatures: "out", kernel: "kernel", stride: "stride", padding: "padding" }, apply: ["x"] },
    example: { x: "[B, 32, 32, C]", out: "out", kernel: "3", padding: "1" },
    infer(a, c) {
      const x = tensor(a, "x");
      rank(c, "x", x.shape, 4, "conv2d");
      const [k, s, p] = [num(a, "kernel"), num(a, "stride"), num(a, "padding")];
      positive(c, "kernel", k, "kernel");
      positive(c, "stride", s, "stride");
      positive(c, "out", num(a, "out"), "out");
      // floor((side + 2 * padding - kernel) / stride) + 1, as PyTorch (a stride-2 3x3 conv halves an even side)
      const side = (d: Dim) => {
        const span = dimOp("-", dimOp("+", d, dimOp("*", 2, p)), k);
        return dimOp("+", typeof span === "number" && typeof s === "number" ? Math.floor(span / s) : dimOp("/", dimOp("-", span, dimOp("%", span, s)), s), 1);
      };
      const h = side(x.shape[1]);
      const w = side(x.shape[2]);
      if ((typeof h === "number" && h <= 0) || (typeof w === "number" && w <= 0)) c.fail("kernel", "SDC407", `conv2d: the kernel ${dimToString(k)} is larger than the padded input ${shapeToString(x.shape)}`);
      return floatTensor([x.shape[0], h, w, num(a, "out")]);
    },
    weights(a) {
      const x = tensor(a, "x");
      const k = num(a, "kernel");
      return [
        { suffix: "weight", shape: [num(a, "out"), x.shape[3], k, k], init: "torch_linear", buffer: false },
        { suffix: "bias", shape: [num(a, "out")], init: "torch_linear", buffer: false },
      ];
    },
  },
  conv_transpose2d: {
    name: "conv_transpose2d",
    doc: "transposed 2-D convolution on [B, H, W, C] (PyTorch ConvTranspose2d, no output padding): out side (H - 1) * stride - 2 * padding + kernel; weight [C, out, k, k] as PyTorch",
    args: [X, { name: "out", type: "int", doc: "output channels" }, { name: "kernel", type: "int", doc: "kernel size" }, { name: "stride", type: "int", default: int(1), doc: "stride" }, { name: "padding", type: "int", default: int(0), doc: "implicit zero padding removed from each side of the output" }],
    runtime: "ConvTranspose2d",
    layer: { ctor: { channels: { lastDim: "x" }, outFeatures: "out", kernel: "kernel", stride: "stride", padding: "padding" }, apply: ["x"] },
    example: { x: "[B, 16, 16, C]", out: "out", kernel: "4", stride: "2", padding: "1" },
    infer(a, c) {
      const x = tensor(a, "x");
      rank(c, "x", x.shape, 4, "conv_transpose2d");
      const [k, s, p] = [num(a, "kernel"), num(a, "stride"), num(a, "padding")];
      positive(c, "kernel", k, "kernel");
      positive(c, "stride", s, "stride");
      positive(c, "out", num(a, "out"), "out");
      if (typeof p === "number" && p < 0) c.fail("padding", "SDC407", `padding must not be negative, got ${p}`);
      const side = (d: Dim) => dimOp("+", dimOp("-", dimOp("*", dimOp("-", d, 1), s), dimOp("*", 2, p)), k);
      const h = side(x.shape[1]);
      const w = side(x.shape[2]);
      if ((typeof h === "number" && h <= 0) || (typeof w === "number" && w <= 0)) c.fail("padding", "SDC407", `conv_transpose2d: padding ${dimToString(p)} leaves no output of ${shapeToString(x.shape)} (side (H - 1) * stride - 2 * padding + kernel)`);
      return floatTensor([x.shape[0], h, w, num(a, "out")]);
    },
    weights(a) {
      const x = tensor(a, "x");
      const k = num(a, "kernel");
      // PyTorch's fan-in of a transposed conv weight [C, out, k, k] is out * k * k
      return [
        { suffix: "weight", shape: [x.shape[3], num(a, "out"), k, k], init: "torch_linear", buffer: false },
        { suffix: "bias", shape: [num(a, "out")], init: "torch_linear", buffer: false },
      ];
    },
  },
  upsample_nearest: {
    name: "upsample_nearest",
    doc: "nearest-neighbour upsampling of [B, H, W, C] by an integer factor: [B, H * factor, W * factor, C] (PyTorch interpolate mode nearest)",
    args: [X, { name: "factor", type: "int", doc: "scale factor" }],
    runtime: "upsampleNearest",
    example: { x: "[B, H, W, C]", factor: "2" },
    infer(a, c) {
      const x = tensor(a, "x");
      rank(c, "x", x.shape, 4, "upsample_nearest");
      const f = num(a, "factor");
      positive(c, "factor", f, "factor");
      return floatTensor([x.shape[0], dimOp("*", x.shape[1], f), dimOp("*", x.shape[2], f), x.shape[3]]);
    },
  },
  avg_pool: pool("avg_pool", "average", "avgPool"),
  max_pool: pool("max_pool", "max", "maxPool"),
};
