/**
 * The T5 encoder (Hugging Face `T5EncoderModel`, v1.0 and v1.1) in tfjs, inference only,
 * from a config.json object and a state dict with HF tensor names:
 *
 *   shared / encoder.embed_tokens -> N blocks
 *     (RMSNorm -> self-attention q/k/v/o without bias and without 1/sqrt(d) scaling,
 *      plus a relative position bias computed by the first block and shared, residual;
 *      RMSNorm -> feed-forward (gated-gelu for v1.1: act(wi_0 x) * wi_1 x -> wo; relu for v1.0), residual)
 *   -> encoder.final_layer_norm (RMSNorm).
 *
 * RMSNorm: x / sqrt(mean(x^2) + eps) * w, no mean subtraction, no bias.
 * Weights are frozen plain tensors (not variables). Call `dispose()` when done.
 */
import * as tf from "@tensorflow/tfjs";
import type { SafeTensor } from "../../io/safetensors.ts";
import { ACTIVATIONS, type Activation, TextEncoderError, WeightReader, activation, cfgInt, cfgNum, cfgStr, checkIds, dense, isObj } from "./common.ts";
import * as F from "../../nn/functional.ts";

export interface T5EncoderConfig {
  vocabSize: number;
  dModel: number;
  dKv: number;
  dFf: number;
  numLayers: number;
  numHeads: number;
  numBuckets: number;
  maxDistance: number;
  eps: number;
  gated: boolean;
  act: Activation;
  padTokenId: number;
  eosTokenId: number;
}

export function parseT5Config(json: unknown, what: string): T5EncoderConfig {
  if (!isObj(json)) throw new TextEncoderError(`${what}: config must be a JSON object`);
  const ffProj = cfgStr(json, "feed_forward_proj", what, "relu");
  const parts = ffProj.split("-");
  const gated = parts[0] === "gated";
  if ((gated && parts.length !== 2) || (!gated && parts.length !== 1)) {
    throw new TextEncoderError(`${what}: feed_forward_proj '${ffProj}' is not of the form '{ACT}' or 'gated-{ACT}'`);
  }
  // HF: "gated-gelu" means gelu_new
  let act = (typeof json.dense_act_fn === "string" ? json.dense_act_fn : parts[parts.length - 1]) as string;
  if (ffProj === "gated-gelu") act = "gelu_new";
  if (!ACTIVATIONS.includes(act as Activation)) throw new TextEncoderError(`${what}: activation '${act}' is not supported (one of ${ACTIVATIONS.join(", ")})`);
  const c: T5EncoderConfig = {
    vocabSize: cfgInt(json, "vocab_size", what),
    dModel: cfgInt(json, "d_model", what),
    dKv: cfgInt(json, "d_kv", what),
    dFf: cfgInt(json, "d_ff", what),
    numLayers: cfgInt(json, "num_layers", what),
    numHeads: cfgInt(json, "num_heads", what),
    numBuckets: cfgInt(json, "relative_attention_num_buckets", what, 32),
    maxDistance: cfgInt(json, "relative_attention_max_distance", what, 128),
    eps: cfgNum(json, "layer_norm_epsilon", what, 1e-6),
    gated,
    act: act as Activation,
    padTokenId: cfgInt(json, "pad_token_id", what, 0),
    eosTokenId: cfgInt(json, "eos_token_id", what, 1),
  };
  if (c.numLayers < 1) throw new TextEncoderError(`${what}: num_layers must be at least 1`);
  return c;
}

/**
 * T5's bidirectional relative position bucket for `relative = key - query`, computed as HF does
 * in float32 (`Math.fround` at each step so edge cases truncate the same way).
 */
export function relativePositionBucket(relative: number, numBuckets: number, maxDistance: number): number {
  const nb = Math.floor(numBuckets / 2);
  let bucket = relative > 0 ? nb : 0;
  const rel = Math.abs(relative);
  const maxExact = Math.floor(nb / 2);
  if (rel < maxExact) return bucket + rel;
  const f = Math.fround;
  const logRatio = f(Math.log(f(rel / maxExact)));
  const large = maxExact + Math.trunc(f(f(logRatio / f(Math.log(maxDistance / maxExact))) * (nb - maxExact)));
  bucket += Math.min(large, nb - 1);
  return bucket;
}

interface Block {
  ln0: tf.Tensor1D;
  q: tf.Tensor2D;
  k: tf.Tensor2D;
  v: tf.Tensor2D;
  o: tf.Tensor2D;
  ln1: tf.Tensor1D;
  wi0: tf.Tensor2D;
  wi1: tf.Tensor2D | null;
  wo: tf.Tensor2D;
}

/** T5's RMSNorm with a checkpoint's weight: the runtime's rms_norm (runtime/nn/functional.ts), then the scale. */
export function rmsNorm(x: tf.Tensor, w: tf.Tensor1D, eps: number): tf.Tensor {
  return tf.mul(F.rmsNorm(x, eps), w);
}

export class T5Encoder {
  readonly kind = "t5" as const;
  private disposed = false;

  private constructor(
    readonly config: T5EncoderConfig,
    private readonly what: string,
    private readonly embedding: tf.Tensor2D,
    private readonly relBias: Float32Array,
    private readonly blocks: Block[],
    private readonly finalLn: tf.Tensor1D,
  ) {}

  get width(): number {
    return this.config.dModel;
  }

  /** Build from a config.json object and a state dict (HF names). Throws TextEncoderError naming a missing or mis-shaped tensor. */
  static fromTensors(configJson: unknown, tensors: Map<string, SafeTensor>, what = "T5 encoder"): T5Encoder {
    const c = parseT5Config(configJson, what);
    const r = new WeightReader(tensors, what);
    const M = c.dModel;
    const I = c.numHeads * c.dKv;
    const made: tf.Tensor[] = [];
    const keep = <T extends tf.Tensor>(t: T): T => {
      made.push(t);
      return t;
    };
    try {
      const embName = r.has("encoder.embed_tokens.weight") ? "encoder.embed_tokens.weight" : "shared.weight";
      const embedding = keep(r.get(embName, [c.vocabSize, M]) as tf.Tensor2D);
      const relBias = r.raw("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", [c.numBuckets, c.numHeads]);
      const blocks: Block[] = [];
      for (let i = 0; i < c.numLayers; i++) {
        const a = `encoder.block.${i}.layer.0.`;
        const f = `encoder.block.${i}.layer.1.`;
        blocks.push({
          ln0: keep(r.get(a + "layer_norm.weight", [M]) as tf.Tensor1D),
          q: keep(r.linear(a + "SelfAttention.q.weight", I, M)),
          k: keep(r.linear(a + "SelfAttention.k.weight", I, M)),
          v: keep(r.linear(a + "SelfAttention.v.weight", I, M)),
          o: keep(r.linear(a + "SelfAttention.o.weight", M, I)),
          ln1: keep(r.get(f + "layer_norm.weight", [M]) as tf.Tensor1D),
          wi0: keep(r.linear(f + (c.gated ? "DenseReluDense.wi_0.weight" : "DenseReluDense.wi.weight"), c.dFf, M)),
          wi1: c.gated ? keep(r.linear(f + "DenseReluDense.wi_1.weight", c.dFf, M)) : null,
          wo: keep(r.linear(f + "DenseReluDense.wo.weight", M, c.dFf)),
        });
      }
      const finalLn = keep(r.get("encoder.final_layer_norm.weight", [M]) as tf.Tensor1D);
      return new T5Encoder(c, what, embedding, relBias, blocks, finalLn);
    } catch (e) {
      for (const t of made) t.dispose();
      throw e;
    }
  }

  /** Position bias [1, heads, T, T] for T tokens (computed on the CPU; caller's tidy owns it). */
  private positionBias(T: number): tf.Tensor4D {
    const H = this.config.numHeads;
    const out = new Float32Array(H * T * T);
    for (let i = 0; i < T; i++) {
      for (let j = 0; j < T; j++) {
        const b = relativePositionBucket(j - i, this.config.numBuckets, this.config.maxDistance);
        for (let h = 0; h < H; h++) out[(h * T + i) * T + j] = this.relBias[b * H + h];
      }
    }
    return tf.tensor4d(out, [1, H, T, T]);
  }

  /**
   * Encode token ids [batch][tokens]; `attentionMask` (1 = keep, 0 = padding) masks keys.
   * Returns last_hidden_state [batch, tokens, d_model], owned by the caller.
   */
  forward(ids: readonly (readonly number[])[], attentionMask?: readonly (readonly number[])[]): { lastHiddenState: tf.Tensor3D } {
    if (this.disposed) throw new TextEncoderError(`${this.what}: used after dispose()`);
    const c = this.config;
    const { batch: B, length: T } = checkIds(ids, c.vocabSize, this.what);
    if (attentionMask && (attentionMask.length !== B || attentionMask.some((r) => r.length !== T))) {
      throw new TextEncoderError(`${this.what}: attention mask shape does not match the ids [${B}, ${T}]`);
    }
    const H = c.numHeads;
    const D = c.dKv;
    const lastHiddenState = tf.tidy(() => {
      let x: tf.Tensor = tf.gather(this.embedding, tf.tensor2d(ids.map((r) => Array.from(r)), [B, T], "int32"));
      let bias: tf.Tensor = this.positionBias(T);
      if (attentionMask) {
        bias = tf.add(bias, tf.tensor4d(attentionMask.flatMap((r) => r.map((m) => (m ? 0 : -1e9))), [B, 1, 1, T]));
      }
      const heads = (t: tf.Tensor) => tf.transpose(tf.reshape(t, [B, T, H, D]), [0, 2, 1, 3]);
      for (const b of this.blocks) {
        const h = rmsNorm(x, b.ln0, c.eps);
        const q = heads(dense(h, b.q));
        const k = heads(dense(h, b.k));
        const v = heads(dense(h, b.v));
        const att = tf.softmax(tf.add(tf.matMul(q, k, false, true), bias));
        const o = tf.reshape(tf.transpose(tf.matMul(att, v), [0, 2, 1, 3]), [B, T, H * D]);
        x = tf.add(x, dense(o, b.o));
        const h2 = rmsNorm(x, b.ln1, c.eps);
        let ff = activation(c.act, dense(h2, b.wi0));
        if (b.wi1) ff = tf.mul(ff, dense(h2, b.wi1));
        x = tf.add(x, dense(ff, b.wo));
      }
      return rmsNorm(x, this.finalLn, c.eps) as tf.Tensor3D;
    });
    return { lastHiddenState };
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const all: tf.Tensor[] = [this.embedding, this.finalLn];
    for (const b of this.blocks) for (const t of Object.values(b)) if (t) all.push(t);
    for (const t of all) t.dispose();
  }
}
