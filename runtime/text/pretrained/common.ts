/**
 * Shared pieces of the pretrained text encoders: the error class, config field readers and
 * conversion of safetensors tensors (Hugging Face names) into frozen tfjs tensors.
 */
import * as tf from "@tensorflow/tfjs";
import type { SafeTensor } from "../../io/safetensors.ts";
import * as F from "../../nn/functional.ts";

export class TextEncoderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TextEncoderError";
  }
}

export type Json = Record<string, unknown>;

export function isObj(v: unknown): v is Json {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** A positive integer config field; `dflt` used when absent. */
export function cfgInt(cfg: Json, key: string, what: string, dflt?: number): number {
  const v = cfg[key] ?? dflt;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) throw new TextEncoderError(`${what}: config '${key}' must be a non-negative integer, got ${JSON.stringify(cfg[key])}`);
  return v;
}

export function cfgNum(cfg: Json, key: string, what: string, dflt?: number): number {
  const v = cfg[key] ?? dflt;
  if (typeof v !== "number" || !Number.isFinite(v)) throw new TextEncoderError(`${what}: config '${key}' must be a number, got ${JSON.stringify(cfg[key])}`);
  return v;
}

export function cfgStr(cfg: Json, key: string, what: string, dflt?: string): string {
  const v = cfg[key] ?? dflt;
  if (typeof v !== "string") throw new TextEncoderError(`${what}: config '${key}' must be a string, got ${JSON.stringify(cfg[key])}`);
  return v;
}

/** Reads named tensors out of a state dict, checking shapes, and records which names were used. */
export class WeightReader {
  readonly used = new Set<string>();
  constructor(
    private readonly tensors: Map<string, SafeTensor>,
    private readonly what: string,
  ) {}

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  raw(name: string, shape: number[]): Float32Array {
    const t = this.tensors.get(name);
    if (!t) throw new TextEncoderError(`${this.what}: weights lack tensor '${name}' (expected shape [${shape}])`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new TextEncoderError(`${this.what}: tensor '${name}' has shape [${t.shape}], expected [${shape}] from the config`);
    }
    this.used.add(name);
    if (t.data instanceof Float32Array) return t.data;
    return Float32Array.from(t.data as ArrayLike<number>);
  }

  /** A tensor as stored. */
  get(name: string, shape: number[]): tf.Tensor {
    return tf.tensor(this.raw(name, shape), shape, "float32");
  }

  /** A `torch.nn.Linear` weight [out, in] returned transposed to [in, out] for `x @ W`. */
  linear(name: string, outDim: number, inDim: number): tf.Tensor2D {
    const w = this.raw(name, [outDim, inDim]);
    const t = new Float32Array(outDim * inDim);
    for (let o = 0; o < outDim; o++) for (let i = 0; i < inDim; i++) t[i * outDim + o] = w[o * inDim + i];
    return tf.tensor2d(t, [inDim, outDim]);
  }
}

/** Validate token ids: a non-empty rectangular batch of integers in [0, vocab). */
export function checkIds(ids: readonly (readonly number[])[], vocab: number, what: string): { batch: number; length: number } {
  if (!Array.isArray(ids) || ids.length === 0) throw new TextEncoderError(`${what}: input ids must be a non-empty batch (list of lists)`);
  const length = ids[0].length;
  if (length === 0) throw new TextEncoderError(`${what}: input id sequences must not be empty`);
  ids.forEach((row, b) => {
    if (row.length !== length) throw new TextEncoderError(`${what}: input id row ${b} has length ${row.length}, row 0 has ${length}`);
    row.forEach((id: number, t: number) => {
      if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new TextEncoderError(`${what}: input id ${id} at [${b}, ${t}] is outside the vocabulary [0, ${vocab})`);
    });
  });
  return { batch: ids.length, length };
}

export type Activation = "quick_gelu" | "gelu" | "gelu_new" | "gelu_pytorch_tanh" | "relu" | "silu";
export const ACTIVATIONS: readonly Activation[] = ["quick_gelu", "gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu"];

/** The Hugging Face activation `name`, on the runtime's own primitives (runtime/nn/functional.ts). */
export function activation(name: Activation, x: tf.Tensor): tf.Tensor {
  switch (name) {
    case "quick_gelu":
      return F.mul(x, F.sigmoid(F.mul(x, 1.702)));
    case "gelu": // exact, erf based
      return F.gelu(x);
    case "gelu_new":
    case "gelu_pytorch_tanh":
      return F.gelu(x, true);
    case "relu":
      return F.relu(x);
    case "silu":
      return F.silu(x);
  }
}

/** x [N, in] @ w [in, out] (+ b), for any leading shape of x (the runtime's Linear owns its parameters; these are a checkpoint's). */
export function dense(x: tf.Tensor, w: tf.Tensor2D, b?: tf.Tensor1D): tf.Tensor {
  const inDim = w.shape[0];
  const lead = x.shape.slice(0, -1);
  let y: tf.Tensor = tf.matMul(tf.reshape(x, [-1, inDim]) as tf.Tensor2D, w);
  if (b) y = tf.add(y, b);
  return tf.reshape(y, [...lead, w.shape[1]]);
}
