/**
 * SD3's text conditioning (as diffusers' StableDiffusion3Pipeline.encode_prompt builds it):
 *
 *   CLIP-L, CLIP-G: prompts padded/truncated to 77 tokens, no attention mask;
 *     penultimate hidden states (hidden_states[-2]) concatenated channel-wise
 *     -> [B, 77, 768 + 1280 = 2048];
 *     pooled = the two projected EOS outputs (text_embeds) concatenated -> [B, 768 + 1280 = 2048].
 *   T5: prompts padded/truncated to `t5Length` tokens (with </s>), no attention mask by default
 *     (diffusers passes none) -> [B, t5Length, 4096].
 *   context = concat along the sequence of the CLIP block and the T5 block, the narrower of the
 *     two zero-padded in width to the wider: [B, 77 + t5Length, max(2048, 4096)].
 *     (Real SD3: CLIP padded 2048 -> 4096. Tiny stand-ins where T5 is narrower: T5 padded.)
 *   Without a T5 encoder the T5 block is zeros [B, t5Length, t5Width] (diffusers: joint_attention_dim).
 *
 * Generic in widths and lengths, so tiny encoders stand in for the real ones.
 */
import * as tf from "@tensorflow/tfjs";
import type { ClipTextEncoder } from "./clip-text.ts";
import { TextEncoderError } from "./common.ts";
import type { T5Encoder } from "./t5-encoder.ts";
import type { Tokenizer } from "./tokenizer.ts";

export interface ClipWithTokenizer {
  model: ClipTextEncoder;
  tokenizer: Tokenizer;
  /** Sequence length cap (e.g. from tokenizer_config model_max_length). */
  maxLength?: number;
  /** Pad id (default: the tokenizer's). */
  padId?: number;
}

export interface T5WithTokenizer {
  model: T5Encoder;
  tokenizer: Tokenizer;
  padId?: number;
}

export interface Sd3Encoders {
  clipL: ClipWithTokenizer;
  clipG: ClipWithTokenizer;
  /** Null/absent: the T5 block is zeros, as diffusers does without text_encoder_3. */
  t5?: T5WithTokenizer | null;
}

export interface Sd3ConditionerOptions {
  /** CLIP tokens (default 77, capped by both encoders' position tables). */
  clipLength?: number;
  /** T5 tokens (default 256, diffusers' max_sequence_length). */
  t5Length?: number;
  /** Pass the T5 padding mask to the encoder (default false: diffusers passes none). */
  t5AttentionMask?: boolean;
  /** Width of the zero T5 block when there is no T5 encoder (default: the CLIP width). */
  t5Width?: number;
}

export interface Sd3Conditioning {
  /** [batch, clipLength + t5Length, contextWidth] */
  context: tf.Tensor3D;
  /** [batch, clipL.projection + clipG.projection] */
  pooled: tf.Tensor2D;
}

export interface Sd3TokenIds {
  clipL: number[][];
  clipG: number[][];
  t5: number[][] | null;
  t5Mask: number[][] | null;
}

export class Sd3TextConditioner {
  readonly clipLength: number;
  readonly t5Length: number;
  readonly clipWidth: number;
  readonly t5Width: number;
  readonly contextWidth: number;
  readonly pooledWidth: number;
  /** Whether the T5 padding mask is passed to the T5 encoder. */
  readonly t5AttentionMask: boolean;
  private readonly enc: Sd3Encoders;

  constructor(encoders: Sd3Encoders, options: Sd3ConditionerOptions = {}) {
    const { clipL, clipG } = encoders;
    if (!clipL?.model || !clipG?.model) throw new TextEncoderError("Sd3TextConditioner: both clipL and clipG encoders are required");
    for (const [name, c] of [["clipL", clipL], ["clipG", clipG]] as const) {
      if (!c.model.hasProjection) {
        throw new TextEncoderError(`Sd3TextConditioner: ${name} has no text_projection (SD3 needs CLIPTextModelWithProjection weights)`);
      }
    }
    const cap = Math.min(clipL.model.config.maxPositions, clipG.model.config.maxPositions, clipL.maxLength ?? Infinity, clipG.maxLength ?? Infinity);
    this.clipLength = options.clipLength ?? Math.min(77, cap);
    if (!Number.isInteger(this.clipLength) || this.clipLength < 2 || this.clipLength > cap) {
      throw new TextEncoderError(`Sd3TextConditioner: clipLength ${options.clipLength} must be an integer in [2, ${cap}] (the CLIP encoders' position limit)`);
    }
    this.t5Length = options.t5Length ?? 256;
    if (!Number.isInteger(this.t5Length) || this.t5Length < 1) throw new TextEncoderError(`Sd3TextConditioner: t5Length ${options.t5Length} must be a positive integer`);
    this.clipWidth = clipL.model.width + clipG.model.width;
    this.t5Width = encoders.t5 ? encoders.t5.model.width : (options.t5Width ?? this.clipWidth);
    this.contextWidth = Math.max(this.clipWidth, this.t5Width);
    this.pooledWidth = clipL.model.pooledWidth + clipG.model.pooledWidth;
    this.t5AttentionMask = options.t5AttentionMask ?? false;
    this.enc = encoders;
  }

  /** Sequence length of `context`: clipLength + t5Length. */
  get contextLength(): number {
    return this.clipLength + this.t5Length;
  }

  /** The padded token ids each encoder sees (pure; useful for inspection and caching). */
  tokenize(prompts: readonly string[]): Sd3TokenIds {
    const clip = (c: ClipWithTokenizer) => prompts.map((p) => c.tokenizer.encodePadded(p, this.clipLength, { padId: c.padId, truncate: true }).ids);
    const t5 = this.enc.t5;
    const t5enc = t5 ? prompts.map((p) => t5.tokenizer.encodePadded(p, this.t5Length, { padId: t5.padId, truncate: true })) : null;
    return { clipL: clip(this.enc.clipL), clipG: clip(this.enc.clipG), t5: t5enc ? t5enc.map((e) => e.ids) : null, t5Mask: t5enc ? t5enc.map((e) => e.mask) : null };
  }

  /** Encode prompts to SD3 conditioning. The returned tensors are owned by the caller. */
  encode(prompts: readonly string[]): Sd3Conditioning {
    if (!Array.isArray(prompts) || prompts.length === 0) throw new TextEncoderError("Sd3TextConditioner.encode: prompts must be a non-empty list of strings");
    prompts.forEach((p, i) => {
      if (typeof p !== "string") throw new TextEncoderError(`Sd3TextConditioner.encode: prompt ${i} is not a string`);
    });
    const ids = this.tokenize(prompts);
    const B = prompts.length;
    return tf.tidy(() => {
      const l = this.enc.clipL.model.forward(ids.clipL);
      const g = this.enc.clipG.model.forward(ids.clipG);
      const padW = (t: tf.Tensor3D, w: number) => (t.shape[2] === w ? t : tf.pad(t, [[0, 0], [0, 0], [0, w - t.shape[2]]]));
      const clipCtx = tf.concat([l.penultimateHiddenState, g.penultimateHiddenState], 2) as tf.Tensor3D;
      let t5Ctx: tf.Tensor3D;
      if (this.enc.t5 && ids.t5) {
        t5Ctx = this.enc.t5.model.forward(ids.t5, this.t5AttentionMask ? (ids.t5Mask ?? undefined) : undefined).lastHiddenState;
      } else {
        t5Ctx = tf.zeros([B, this.t5Length, this.t5Width]);
      }
      const context = tf.concat([padW(clipCtx, this.contextWidth), padW(t5Ctx, this.contextWidth)], 1) as tf.Tensor3D;
      const pooled = tf.concat([l.textEmbeds as tf.Tensor2D, g.textEmbeds as tf.Tensor2D], 1) as tf.Tensor2D;
      return { context, pooled } as unknown as tf.TensorContainerObject;
    }) as unknown as Sd3Conditioning;
  }
}
