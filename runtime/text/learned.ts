/** The learned prompt encoder: the word tokenizer and the spec's text encoder block, trained jointly with the network. */
import * as tf from "@tensorflow/tfjs";
import type { PromptEncoder } from "../bundle.ts";
import type { TextEncoderModule } from "../model.ts";
import { tokenMask } from "../train/conditioning.ts";
import type { WordTokenizer } from "./words.ts";

export class LearnedPromptEncoder implements PromptEncoder {
  constructor(
    readonly module: TextEncoderModule,
    readonly tokenizer: WordTokenizer,
    /** the module's forward takes the padding mask after the ids */
    readonly masked = false,
  ) {}
  get words(): readonly string[] {
    return this.tokenizer.words;
  }
  encode(prompts: readonly string[]): [tf.Tensor3D, tf.Tensor2D] {
    return tf.tidy(() => {
      const ids = this.tokenizer.encodeBatch(prompts);
      const shape: [number, number] = [prompts.length, this.tokenizer.length];
      return this.masked ? this.module.forward(tf.tensor2d(ids, shape, "int32"), tf.tensor2d(tokenMask(ids), shape)) : this.module.forward(tf.tensor2d(ids, shape, "int32"));
    });
  }
}
