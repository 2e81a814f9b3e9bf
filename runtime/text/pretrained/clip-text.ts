/**
 * CLIP's text transformer (Hugging Face `CLIPTextModel` / `CLIPTextModelWithProjection`) in tfjs,
 * inference only, from a config.json object and a state dict with HF tensor names:
 *
 *   token + position embeddings -> N pre-LN layers
 *     (layer_norm1, self-attention q/k/v/out with bias and a causal mask, residual,
 *      layer_norm2, mlp fc1 -> act -> fc2, residual)
 *   -> final_layer_norm -> state at the EOS position -> text_projection (no bias).
 *
 * Weights are frozen plain tensors (not variables). Call `dispose()` when done.
 */
import * as tf from "@tensorflow/tfjs";
import type { SafeTensor } from "../../io/safetensors.ts";
import { ACTIVATIONS, type Activation, TextEncoderError, WeightReader, activation, cfgInt, cfgNum, cfgStr, checkIds, dense, isObj, type Json } from "./common.ts";
import * as F from "../../nn/functional.ts";

export interface ClipTextConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  maxPositions: number;
  hiddenAct: Activation;
  layerNormEps: number;
  bosTokenId: number;
  eosTokenId: number;
  padTokenId: number;
  /** Width of `text_projection`; null when the weights have no projection (plain CLIPTextModel). */
  projectionDim: number | null;
}

/** Read a CLIP text config: `model_type` "clip_text_model", or a full "clip" config (its `text_config`). */
export function parseClipTextConfig(json: unknown, what: string): ClipTextConfig {
  if (!isObj(json)) throw new TextEncoderError(`${what}: config must be a JSON object`);
  let cfg: Json = json;
  let projection = json.projection_dim;
  if (json.model_type === "clip") {
    if (!isObj(json.text_config)) throw new TextEncoderError(`${what}: a 'clip' config must have a 'text_config' object`);
    cfg = json.text_config;
    projection = cfg.projection_dim ?? json.projection_dim;
  }
  const hiddenAct = cfgStr(cfg, "hidden_act", what, "quick_gelu") as Activation;
  if (!ACTIVATIONS.includes(hiddenAct)) throw new TextEncoderError(`${what}: hidden_act '${hiddenAct}' is not supported (one of ${ACTIVATIONS.join(", ")})`);
  const c: ClipTextConfig = {
    vocabSize: cfgInt(cfg, "vocab_size", what),
    hiddenSize: cfgInt(cfg, "hidden_size", what),
    intermediateSize: cfgInt(cfg, "intermediate_size", what),
    numLayers: cfgInt(cfg, "num_hidden_layers", what),
    numHeads: cfgInt(cfg, "num_attention_heads", what),
    maxPositions: cfgInt(cfg, "max_position_embeddings", what, 77),
    hiddenAct,
    layerNormEps: cfgNum(cfg, "layer_norm_eps", what, 1e-5),
    bosTokenId: cfgInt(cfg, "bos_token_id", what, 49406),
    eosTokenId: cfgInt(cfg, "eos_token_id", what, 49407),
    padTokenId: cfgInt(cfg, "pad_token_id", what, 1),
    projectionDim: typeof projection === "number" ? projection : null,
  };
  if (c.numLayers < 1) throw new TextEncoderError(`${what}: num_hidden_layers must be at least 1`);
  if (c.numHeads < 1 || c.hiddenSize % c.numHeads !== 0) throw new TextEncoderError(`${what}: hidden_size ${c.hiddenSize} is not divisible by num_attention_heads ${c.numHeads}`);
  return c;
}

export interface ClipTextOutput {
  /** Final-layer-normed states [batch, tokens, width]. */
  lastHiddenState: tf.Tensor3D;
  /** hidden_states[-2]: output of the second-to-last layer, before the final layer norm [batch, tokens, width]. */
  penultimateHiddenState: tf.Tensor3D;
  /** Final-normed state at the EOS position [batch, width] (HF `pooler_output`). */
  pooled: tf.Tensor2D;
  /** `pooled @ text_projection` [batch, projectionDim]; null without a projection. */
  textEmbeds: tf.Tensor2D | null;
}

interface Layer {
  ln1w: tf.Tensor1D;
  ln1b: tf.Tensor1D;
  qw: tf.Tensor2D;
  qb: tf.Tensor1D;
  kw: tf.Tensor2D;
  kb: tf.Tensor1D;
  vw: tf.Tensor2D;
  vb: tf.Tensor1D;
  ow: tf.Tensor2D;
  ob: tf.Tensor1D;
  ln2w: tf.Tensor1D;
  ln2b: tf.Tensor1D;
  fc1w: tf.Tensor2D;
  fc1b: tf.Tensor1D;
  fc2w: tf.Tensor2D;
  fc2b: tf.Tensor1D;
}

/** LayerNorm with a checkpoint's weight and bias: the runtime's layer_norm (runtime/nn/functional.ts), then the affine. */
export function layerNorm(x: tf.Tensor, w: tf.Tensor1D, b: tf.Tensor1D, eps: number): tf.Tensor {
  return tf.add(tf.mul(F.layerNorm(x, eps), w), b);
}

export class ClipTextEncoder {
  readonly kind = "clip" as const;
  private disposed = false;

  private constructor(
    readonly config: ClipTextConfig,
    private readonly what: string,
    private readonly tokenEmbedding: tf.Tensor2D,
    private readonly positionEmbedding: tf.Tensor2D,
    private readonly layers: Layer[],
    private readonly finalLnW: tf.Tensor1D,
    private readonly finalLnB: tf.Tensor1D,
    private readonly projection: tf.Tensor2D | null,
  ) {}

  /** Width of the hidden states. */
  get width(): number {
    return this.config.hiddenSize;
  }

  /** Whether the weights include `text_projection` (CLIPTextModelWithProjection). */
  get hasProjection(): boolean {
    return this.projection !== null;
  }

  /** Width of `textEmbeds` (the hidden width when there is no projection). */
  get pooledWidth(): number {
    return this.projection ? this.projection.shape[1] : this.config.hiddenSize;
  }

  /**
   * Build from a config.json object and a state dict (HF names; a `text_model.` prefix is optional).
   * Throws TextEncoderError naming the missing or mis-shaped tensor.
   */
  static fromTensors(configJson: unknown, tensors: Map<string, SafeTensor>, what = "CLIP text encoder"): ClipTextEncoder {
    const c = parseClipTextConfig(configJson, what);
    const r = new WeightReader(tensors, what);
    const p = r.has("text_model.embeddings.token_embedding.weight") ? "text_model." : "";
    const W = c.hiddenSize;
    const F = c.intermediateSize;
    const made: tf.Tensor[] = [];
    const keep = <T extends tf.Tensor>(t: T): T => {
      made.push(t);
      return t;
    };
    try {
      const tokenEmbedding = keep(r.get(`${p}embeddings.token_embedding.weight`, [c.vocabSize, W]) as tf.Tensor2D);
      const positionEmbedding = keep(r.get(`${p}embeddings.position_embedding.weight`, [c.maxPositions, W]) as tf.Tensor2D);
      const layers: Layer[] = [];
      for (let i = 0; i < c.numLayers; i++) {
        const l = `${p}encoder.layers.${i}.`;
        const vec = (n: string, d: number) => keep(r.get(l + n, [d]) as tf.Tensor1D);
        const lin = (n: string, o: number, inp: number) => keep(r.linear(l + n, o, inp));
        layers.push({
          ln1w: vec("layer_norm1.weight", W),
          ln1b: vec("layer_norm1.bias", W),
          qw: lin("self_attn.q_proj.weight", W, W),
          qb: vec("self_attn.q_proj.bias", W),
          kw: lin("self_attn.k_proj.weight", W, W),
          kb: vec("self_attn.k_proj.bias", W),
          vw: lin("self_attn.v_proj.weight", W, W),
          vb: vec("self_attn.v_proj.bias", W),
          ow: lin("self_attn.out_proj.weight", W, W),
          ob: vec("self_attn.out_proj.bias", W),
          ln2w: vec("layer_norm2.weight", W),
          ln2b: vec("layer_norm2.bias", W),
          fc1w: lin("mlp.fc1.weight", F, W),
          fc1b: vec("mlp.fc1.bias", F),
          fc2w: lin("mlp.fc2.weight", W, F),
          fc2b: vec("mlp.fc2.bias", W),
        });
      }
      const finalLnW = keep(r.get(`${p}final_layer_norm.weight`, [W]) as tf.Tensor1D);
      const finalLnB = keep(r.get(`${p}final_layer_norm.bias`, [W]) as tf.Tensor1D);
      let projection: tf.Tensor2D | null = null;
      if (r.has("text_projection.weight")) {
        const pd = c.projectionDim ?? tensors.get("text_projection.weight")!.shape[0];
        projection = keep(r.linear("text_projection.weight", pd, W));
      }
      return new ClipTextEncoder(c, what, tokenEmbedding, positionEmbedding, layers, finalLnW, finalLnB, projection);
    } catch (e) {
      for (const t of made) t.dispose();
      throw e;
    }
  }

  /** Position of the pooled (EOS) token per row, as HF computes it. */
  eosPositions(ids: readonly (readonly number[])[]): number[] {
    const eos = this.config.eosTokenId;
    return ids.map((row) => {
      if (eos === 2) {
        // legacy configs: the highest id is taken to be EOS
        let best = 0;
        for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
        return best;
      }
      const i = row.indexOf(eos);
      return i < 0 ? 0 : i;
    });
  }

  /**
   * Run the encoder on token ids [batch][tokens] (tokens <= max_position_embeddings).
   * `attentionMask` (1 = keep, 0 = padding) optionally masks keys in addition to the causal mask;
   * SD3 passes none. Returned tensors are owned by the caller.
   */
  forward(ids: readonly (readonly number[])[], attentionMask?: readonly (readonly number[])[]): ClipTextOutput {
    if (this.disposed) throw new TextEncoderError(`${this.what}: used after dispose()`);
    const c = this.config;
    const { batch: B, length: T } = checkIds(ids, c.vocabSize, this.what);
    if (T > c.maxPositions) throw new TextEncoderError(`${this.what}: ${T} tokens exceed max_position_embeddings ${c.maxPositions}`);
    if (attentionMask && (attentionMask.length !== B || attentionMask.some((r) => r.length !== T))) {
      throw new TextEncoderError(`${this.what}: attention mask shape does not match the ids [${B}, ${T}]`);
    }
    const eosPos = this.eosPositions(ids);
    const H = c.numHeads;
    const W = c.hiddenSize;
    const D = W / H;
    const scale = 1 / Math.sqrt(D);
    return tf.tidy(() => {
      const idT = tf.tensor2d(ids.map((r) => Array.from(r)), [B, T], "int32");
      let x: tf.Tensor = tf.add(tf.gather(this.tokenEmbedding, idT), tf.slice(this.positionEmbedding, [0, 0], [T, W]));
      // additive mask [B or 1, 1, T, T]: causal, plus padded keys
      const causal = new Float32Array(T * T);
      for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) causal[i * T + j] = -1e9;
      let mask: tf.Tensor = tf.tensor4d(causal, [1, 1, T, T]);
      if (attentionMask) {
        const keys = tf.tensor4d(attentionMask.flatMap((r) => r.map((m) => (m ? 0 : -1e9))), [B, 1, 1, T]);
        mask = tf.add(mask, keys);
      }
      const heads = (t: tf.Tensor) => tf.transpose(tf.reshape(t, [B, T, H, D]), [0, 2, 1, 3]);
      const states: tf.Tensor[] = [x];
      for (const l of this.layers) {
        const h = layerNorm(x, l.ln1w, l.ln1b, c.layerNormEps);
        const q = heads(tf.mul(dense(h, l.qw, l.qb), scale));
        const k = heads(dense(h, l.kw, l.kb));
        const v = heads(dense(h, l.vw, l.vb));
        const att = tf.softmax(tf.add(tf.matMul(q, k, false, true), mask));
        const o = tf.reshape(tf.transpose(tf.matMul(att, v), [0, 2, 1, 3]), [B, T, W]);
        x = tf.add(x, dense(o, l.ow, l.ob));
        const h2 = layerNorm(x, l.ln2w, l.ln2b, c.layerNormEps);
        x = tf.add(x, dense(activation(c.hiddenAct, dense(h2, l.fc1w, l.fc1b)), l.fc2w, l.fc2b));
        states.push(x);
      }
      const last = layerNorm(x, this.finalLnW, this.finalLnB, c.layerNormEps) as tf.Tensor3D;
      const flat = tf.reshape(last, [B * T, W]) as tf.Tensor2D;
      const pooled = tf.gather(flat, tf.tensor1d(eosPos.map((p, b) => b * T + p), "int32")) as tf.Tensor2D;
      const textEmbeds = this.projection ? (tf.matMul(pooled, this.projection) as tf.Tensor2D) : null;
      return {
        lastHiddenState: last,
        penultimateHiddenState: states[states.length - 2] as tf.Tensor3D,
        pooled,
        textEmbeds,
      } as unknown as tf.TensorContainerObject;
    }) as unknown as ClipTextOutput;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const all: tf.Tensor[] = [this.tokenEmbedding, this.positionEmbedding, this.finalLnW, this.finalLnB];
    if (this.projection) all.push(this.projection);
    for (const l of this.layers) all.push(...Object.values(l));
    for (const t of all) t.dispose();
  }
}
