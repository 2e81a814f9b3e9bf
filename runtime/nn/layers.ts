/**
 * Primitive layers with parameters. Weights use PyTorch layouts (Linear [out, in], patch conv
 * [out, C, p, p]) and state-dict names, so they load from and save to the reference's format.
 * Arguments are validated with messages that name the argument and its value.
 */
import * as tf from "@tensorflow/tfjs";
import * as F from "./functional.ts";
import { joinName, linearInits, type ParamStore } from "./params.ts";
import { UnsupportedOpError } from "../graph/graph.ts";
import { parameterInit } from "../../ir/ir.ts";
import { activeTrace, isSym, T as G } from "../graph/trace.ts";

/* eslint-disable @typescript-eslint/no-explicit-any */
type Any = any;

export class ArgumentError extends Error {
  constructor(layer: string, arg: string, value: unknown, want: string) {
    super(`${layer}: argument '${arg}' must be ${want}, got ${JSON.stringify(value)}`);
    this.name = "ArgumentError";
  }
}

function positiveInt(layer: string, arg: string, v: number) {
  if (!Number.isInteger(v) || v <= 0) throw new ArgumentError(layer, arg, v, "a positive integer");
}

/**
 * A layer's state-dict names under its path: `weight_name`/`bias_name` in a spec (BFL's Flux
 * names an RMSNorm weight "scale"); default "weight" and "bias".
 */
export interface StateNames {
  weightName?: string;
  biasName?: string;
}

const STATE_NAME = /^(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+)(?:\.(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+))*$/;

/** The full name of a layer's weight ("weight") or bias ("bias"), renamed by its args. */
function stateName(layer: string, path: string, args: StateNames, which: "weight" | "bias"): string {
  const field = which === "weight" ? "weightName" : "biasName";
  const name = args[field] ?? which;
  if (typeof name !== "string" || !STATE_NAME.test(name)) throw new ArgumentError(layer, field, name, "a state-dict name (identifiers or integers joined by dots)");
  return joinName(path, name);
}

export interface LinearArgs extends StateNames {
  inFeatures: number;
  outFeatures: number;
  /** default true */
  bias?: boolean;
  /** "torch" (default: U(-1/sqrt(in), 1/sqrt(in))), "zeros", "xavier_uniform", "normal(STD)", "trunc_normal(STD)" (zero bias for the last three) */
  init?: string;
}

export class Linear {
  readonly weight: tf.Variable; // [out, in]
  readonly bias: tf.Variable | null; // [out]
  constructor(store: ParamStore, path: string, readonly args: LinearArgs) {
    positiveInt("Linear", "inFeatures", args.inFeatures);
    positiveInt("Linear", "outFeatures", args.outFeatures);
    const init = linearInits(args.init);
    this.weight = store.param(stateName("Linear", path, args, "weight"), [args.outFeatures, args.inFeatures], init.weight, args.inFeatures);
    this.bias = args.bias === false ? null : store.param(stateName("Linear", path, args, "bias"), [args.outFeatures], init.bias, args.inFeatures);
  }
  apply(x: tf.Tensor): tf.Tensor {
    if (isSym(x)) return G.linear(x, this.weight, this.bias) as Any;
    return tf.tidy(() => {
      const shape = x.shape;
      const x2 = tf.reshape(x, [-1, shape[shape.length - 1]]);
      let y = tf.matMul(x2, this.weight, false, true);
      if (this.bias) y = tf.add(y, this.bias);
      return tf.reshape(y, [...shape.slice(0, -1), this.args.outFeatures]);
    });
  }
}

export interface LayerNormArgs extends StateNames {
  dim: number;
  /** default 1e-5 */
  eps?: number;
  /** default true */
  affine?: boolean;
}

export class LayerNorm {
  readonly weight: tf.Variable | null = null;
  readonly bias: tf.Variable | null = null;
  constructor(store: ParamStore, path: string, readonly args: LayerNormArgs) {
    positiveInt("LayerNorm", "dim", args.dim);
    if (args.affine !== false) {
      this.weight = store.param(stateName("LayerNorm", path, args, "weight"), [args.dim], "ones");
      this.bias = store.param(stateName("LayerNorm", path, args, "bias"), [args.dim], "zeros");
    }
  }
  apply(x: tf.Tensor): tf.Tensor {
    if (isSym(x)) {
      const y = G.layerNorm(x, this.args.eps ?? 1e-5);
      return (this.weight ? G.add(G.mul(y, G.param(this.weight)), G.param(this.bias!)) : y) as Any;
    }
    return tf.tidy(() => {
      const y = F.layerNorm(x, this.args.eps ?? 1e-5);
      return this.weight ? tf.add(tf.mul(y, this.weight), this.bias!) : y;
    });
  }
}

export interface RmsNormArgs extends StateNames {
  dim: number;
  /** default 1e-6 */
  eps?: number;
  /** default 1: normalise each of `heads` slices of the last axis */
  heads?: number;
  affine?: boolean;
}

export class RmsNorm {
  readonly weight: tf.Variable | null = null; // [dim / heads]
  constructor(store: ParamStore, path: string, readonly args: RmsNormArgs) {
    positiveInt("RmsNorm", "dim", args.dim);
    const heads = args.heads ?? 1;
    if (args.dim % heads) throw new ArgumentError("RmsNorm", "heads", heads, `a divisor of dim ${args.dim}`);
    if (args.affine !== false) this.weight = store.param(stateName("RmsNorm", path, args, "weight"), [args.dim / heads], "ones");
  }
  apply(x: tf.Tensor): tf.Tensor {
    if (isSym(x)) {
      const heads = this.args.heads ?? 1;
      const y = G.rmsNorm(x, this.args.eps ?? 1e-6, heads);
      return (this.weight ? G.scaleHeads(y, this.weight, heads) : y) as Any;
    }
    return tf.tidy(() => {
      const heads = this.args.heads ?? 1;
      const y = F.rmsNorm(x, this.args.eps ?? 1e-6, heads);
      if (!this.weight) return y;
      if (heads === 1) return tf.mul(y, this.weight);
      const shape = y.shape;
      return tf.reshape(tf.mul(tf.reshape(y, [...shape.slice(0, -1), heads, this.args.dim / heads]), this.weight), shape);
    });
  }
}

export interface PatchConvArgs extends StateNames {
  channels: number;
  outFeatures: number;
  patch: number;
}

/** A conv with kernel = stride = patch on [B, H, W, C], flattened to tokens [B, N, out]. */
export class PatchConv {
  readonly weight: tf.Variable; // [out, C, p, p]
  readonly bias: tf.Variable; // [out]
  constructor(store: ParamStore, path: string, readonly args: PatchConvArgs) {
    positiveInt("PatchConv", "channels", args.channels);
    positiveInt("PatchConv", "outFeatures", args.outFeatures);
    positiveInt("PatchConv", "patch", args.patch);
    const fanIn = args.channels * args.patch * args.patch;
    this.weight = store.param(stateName("PatchConv", path, args, "weight"), [args.outFeatures, args.channels, args.patch, args.patch], "torch_linear", fanIn);
    this.bias = store.param(stateName("PatchConv", path, args, "bias"), [args.outFeatures], "torch_linear", fanIn);
  }
  apply(x: tf.Tensor): tf.Tensor {
    if (isSym(x)) {
      const patches = G.patchify(x, this.args.patch); // [B, N, C*p*p]
      const w = x.graph.reshape(G.param(this.weight), [this.args.outFeatures, patches.shape[2]]);
      return x.graph.linear(patches, w, G.param(this.bias)) as Any; // [B, N, out]
    }
    return tf.tidy(() => {
      const p = this.args.patch;
      const patches = F.patchify(x, p); // [B, N, C*p*p]
      const [b, n, k] = patches.shape;
      const w = tf.reshape(this.weight, [this.args.outFeatures, k]);
      const y = tf.add(tf.matMul(tf.reshape(patches, [b * n, k]), w, false, true), this.bias);
      return tf.reshape(y, [b, n, this.args.outFeatures]); // [B, N, out]
    });
  }
}

export interface SinCos2dArgs {
  width: number;
  maxGrid: number;
  /** base grid size for position scaling; 0 = the requested grid */
  base?: number;
}

/**
 * Fixed 2-D sin-cos positions on a maxGrid table (a buffer named by the call's label),
 * centre-cropped on use. With base = 0 the table's scale follows the first grid it is used
 * with (diffusers: base_size = sample_size // patch), so the buffer is built on first use.
 */
export class SinCos2d {
  private cache = new Map<string, tf.Tensor>();
  private built?: tf.Tensor; // [1, maxGrid*maxGrid, width]
  constructor(
    private readonly store: ParamStore,
    private readonly path: string,
    readonly args: SinCos2dArgs,
  ) {
    positiveInt("SinCos2d", "width", args.width);
    positiveInt("SinCos2d", "maxGrid", args.maxGrid);
    if (args.width % 4) throw new ArgumentError("SinCos2d", "width", args.width, "a multiple of 4");
    if (args.base) this.tableFor(args.base);
  }

  private tableFor(gh: number): tf.Tensor {
    if (!this.built) {
      const m = this.args.maxGrid;
      const base = this.args.base || gh;
      this.built = this.store.buffer(this.path, tf.tensor3d(F.sincos2dTable(this.args.width, m, base), [1, m * m, this.args.width]));
    }
    return this.built;
  }

  /** Build the buffer now (so it is saved with the weights) for a grid of gh rows. */
  init(gh: number): void {
    this.tableFor(gh);
  }

  apply(gh: number, gw: number): tf.Tensor {
    if (activeTrace()) {
      // the same centre crop of the table, computed on the host as a constant of the step
      const m = this.args.maxGrid;
      const width = this.args.width;
      if (gh > m || gw > m) throw new ArgumentError("SinCos2d", "grid", `${gh}x${gw}`, `at most maxGrid ${m}`);
      this.tableFor(gh); // the buffer exists (and is checkpointed) as in eager use
      const table = F.sincos2dTable(width, m, this.args.base || gh);
      const top = Math.floor((m - gh) / 2);
      const left = Math.floor((m - gw) / 2);
      const out = new Float32Array(gh * gw * width);
      for (let i = 0; i < gh; i++) out.set(table.subarray(((top + i) * m + left) * width, ((top + i) * m + left + gw) * width), i * gw * width);
      return G.constant(out, [1, gh * gw, width]) as Any;
    }
    const key = `${gh}x${gw}`;
    const hit = this.cache.get(key);
    if (hit) return hit;
    const m = this.args.maxGrid;
    if (gh > m || gw > m) throw new ArgumentError("SinCos2d", "grid", `${gh}x${gw}`, `at most maxGrid ${m}`);
    const table = this.tableFor(gh);
    const out = tf.tidy(() => {
      const top = Math.floor((m - gh) / 2);
      const left = Math.floor((m - gw) / 2);
      const grid = tf.reshape(table, [m, m, this.args.width]);
      return tf.reshape(tf.slice(grid, [top, left, 0], [gh, gw, this.args.width]), [1, gh * gw, this.args.width]);
    });
    this.cache.set(key, tf.keep(out));
    return out;
  }
}

export interface EmbeddingArgs extends StateNames {
  vocab: number;
  width: number;
}

export class Embedding {
  readonly weight: tf.Variable; // [vocab, width]
  constructor(store: ParamStore, path: string, readonly args: EmbeddingArgs) {
    positiveInt("Embedding", "vocab", args.vocab);
    positiveInt("Embedding", "width", args.width);
    this.weight = store.param(stateName("Embedding", path, args, "weight"), [args.vocab, args.width], "normal_0.02");
  }
  /**
   * Small vocabularies use one-hot x weight, whose gradient is a matmul on every backend
   * (gather's gradient needs UnsortedSegmentSum, which the wasm backend lacks). The one-hot is
   * made as int32 and cast: wasm's OneHot ignores a float32 dtype and writes int bit patterns.
   */
  apply(ids: tf.Tensor): tf.Tensor {
    if (isSym(ids)) return G.embedding(ids, this.weight, this.args.vocab, this.args.width) as Any;
    return tf.tidy(() => {
      const flat = tf.reshape(tf.cast(ids, "int32"), [-1]);
      const rows = this.args.vocab <= 4096 ? tf.matMul(tf.cast(tf.oneHot(flat, this.args.vocab), "float32"), this.weight) : tf.gather(this.weight, flat);
      return tf.reshape(rows, [...ids.shape, this.args.width]);
    });
  }
}

export interface ParameterArgs {
  shape: number[];
  /** "zeros", "ones", "constant(V)", "normal(STD)", "trunc_normal(STD)", "xavier_uniform"; default N(0, 0.02) */
  init?: string;
}

export class Parameter {
  readonly value: tf.Variable;
  constructor(store: ParamStore, path: string, readonly args: ParameterArgs) {
    args.shape.forEach((d, i) => positiveInt("Parameter", `shape[${i}]`, d));
    const init = args.init === undefined ? "normal_0.02" : parameterInit(args.init);
    if (!init) throw new ArgumentError("Parameter", "init", args.init, '"zeros", "ones", "constant(V)", "normal(STD)", "trunc_normal(STD)" or "xavier_uniform"');
    this.value = store.param(path, args.shape, init);
  }
  apply(): tf.Tensor {
    if (activeTrace()) return G.param(this.value) as Any;
    return this.value;
  }
}

export interface Conv2dArgs extends StateNames {
  channels: number;
  outFeatures: number;
  kernel: number;
  /** default 1 */
  stride?: number;
  /** zero padding on each side; default 0 */
  padding?: number;
}

/** 2-D convolution on [B, H, W, C]; weight [out, C, k, k] as PyTorch. */
export class Conv2d {
  readonly weight: tf.Variable; // [out, C, k, k]
  readonly bias: tf.Variable; // [out]
  constructor(store: ParamStore, path: string, readonly args: Conv2dArgs) {
    positiveInt("Conv2d", "channels", args.channels);
    positiveInt("Conv2d", "outFeatures", args.outFeatures);
    positiveInt("Conv2d", "kernel", args.kernel);
    const fanIn = args.channels * args.kernel * args.kernel;
    this.weight = store.param(stateName("Conv2d", path, args, "weight"), [args.outFeatures, args.channels, args.kernel, args.kernel], "torch_linear", fanIn);
    this.bias = store.param(stateName("Conv2d", path, args, "bias"), [args.outFeatures], "torch_linear", fanIn);
  }
  apply(x: tf.Tensor): tf.Tensor {
    if (isSym(x)) return G.conv2d(x, this.weight, this.bias, this.args.kernel, this.args.stride ?? 1, this.args.padding ?? 0) as Any;
    return tf.tidy(() => {
      const p = this.args.padding ?? 0;
      const s = this.args.stride ?? 1;
      const filter = tf.transpose(this.weight, [2, 3, 1, 0]) as tf.Tensor4D; // [k, k, C, out]
      const pad: [[number, number], [number, number], [number, number], [number, number]] = [[0, 0], [p, p], [p, p], [0, 0]];
      return tf.add(tf.conv2d(x as tf.Tensor4D, filter, s, p ? pad : "valid"), this.bias);
    });
  }
}

export interface ConvTranspose2dArgs extends StateNames {
  channels: number;
  outFeatures: number;
  kernel: number;
  /** default 1 */
  stride?: number;
  /** zero padding removed from each side of the output; default 0 */
  padding?: number;
}

/** Transposed 2-D convolution on [B, H, W, C]; weight [C, out, k, k] as PyTorch's ConvTranspose2d. */
export class ConvTranspose2d {
  readonly weight: tf.Variable; // [C, out, k, k]
  readonly bias: tf.Variable; // [out]
  constructor(store: ParamStore, path: string, readonly args: ConvTranspose2dArgs) {
    positiveInt("ConvTranspose2d", "channels", args.channels);
    positiveInt("ConvTranspose2d", "outFeatures", args.outFeatures);
    positiveInt("ConvTranspose2d", "kernel", args.kernel);
    positiveInt("ConvTranspose2d", "stride", args.stride ?? 1);
    const p = args.padding ?? 0;
    if (!Number.isInteger(p) || p < 0) throw new ArgumentError("ConvTranspose2d", "padding", p, "a non-negative integer");
    // PyTorch: fan-in of the weight [C, out, k, k] is out * k * k (its dimension 1 times the field)
    const fanIn = args.outFeatures * args.kernel * args.kernel;
    this.weight = store.param(stateName("ConvTranspose2d", path, args, "weight"), [args.channels, args.outFeatures, args.kernel, args.kernel], "torch_linear", fanIn);
    this.bias = store.param(stateName("ConvTranspose2d", path, args, "bias"), [args.outFeatures], "torch_linear", fanIn);
  }
  apply(x: tf.Tensor): tf.Tensor {
    const k = this.args.kernel;
    const s = this.args.stride ?? 1;
    const p = this.args.padding ?? 0;
    if (isSym(x)) return G.convTranspose2d(x, this.weight, this.bias, k, s, p) as Any;
    return tf.tidy(() => {
      const [b, h, w] = x.shape;
      const [fh, fw] = [(h - 1) * s + k, (w - 1) * s + k]; // before the padding is cropped
      const filter = tf.transpose(this.weight, [2, 3, 1, 0]) as tf.Tensor4D; // [k, k, out, C]
      const full = tf.conv2dTranspose(x as tf.Tensor4D, filter, [b, fh, fw, this.args.outFeatures], s, "valid");
      const y = p ? tf.slice(full, [0, p, p, 0], [b, fh - 2 * p, fw - 2 * p, this.args.outFeatures]) : full;
      return tf.add(y, this.bias);
    });
  }
}

export interface GroupNormArgs extends StateNames {
  channels: number;
  groups: number;
  /** default 1e-5 */
  eps?: number;
  /** default true */
  affine?: boolean;
}

/** GroupNorm on channels-last [B, ..., C]; weight and bias [C] as PyTorch's GroupNorm. */
export class GroupNorm {
  readonly weight: tf.Variable | null = null;
  readonly bias: tf.Variable | null = null;
  constructor(store: ParamStore, path: string, readonly args: GroupNormArgs) {
    positiveInt("GroupNorm", "channels", args.channels);
    positiveInt("GroupNorm", "groups", args.groups);
    if (args.channels % args.groups) throw new ArgumentError("GroupNorm", "groups", args.groups, `a divisor of channels ${args.channels}`);
    if (args.affine !== false) {
      this.weight = store.param(stateName("GroupNorm", path, args, "weight"), [args.channels], "ones");
      this.bias = store.param(stateName("GroupNorm", path, args, "bias"), [args.channels], "zeros");
    }
  }
  apply(x: tf.Tensor): tf.Tensor {
    const eps = this.args.eps ?? 1e-5;
    if (isSym(x)) {
      const y = G.groupNorm(x, this.args.groups, eps);
      return (this.weight ? G.add(G.mul(y, G.param(this.weight)), G.param(this.bias!)) : y) as Any;
    }
    return tf.tidy(() => {
      const y = F.groupNorm(x, this.args.groups, eps);
      return this.weight ? tf.add(tf.mul(y, this.weight), this.bias!) : y;
    });
  }
}

/**
 * The primitives with parameters, by the compiler's names: the layer class the generated code
 * constructs (the entry's `runtime` in compiler/primitives/). Those that can also be called
 * without parameters (`affine: false`) have a record in functional.ts's FUNCTIONS too.
 */
export const LAYERS = {
  linear: Linear,
  embedding: Embedding,
  parameter: Parameter,
  layer_norm: LayerNorm,
  rms_norm: RmsNorm,
  group_norm: GroupNorm,
  patch_conv: PatchConv,
  conv2d: Conv2d,
  conv_transpose2d: ConvTranspose2d,
  sincos_2d: SinCos2d,
};
