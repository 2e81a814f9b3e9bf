/**
 * The types the trainer, the engines and the text encoders share: a model ready to train
 * (ModelBundle: parameters, network, prompt encoder, flow), its prompt encoder's interface, and
 * the batches that go through a training step, validation and sampling. Types only: nothing here
 * imports the trainer, so the text encoders and the engines depend on this and not on each other.
 */
import type * as tf from "@tensorflow/tfjs";
import type { IR } from "../ir/ir.ts";
import type { FlowConfig } from "./flow/schedule.ts";
import type { NetworkModule } from "./model.ts";
import type { ParamStore } from "./nn/params.ts";

/** Prompts -> (context [B, T, D], pooled [B, P]): the learned encoder, or frozen pretrained ones. */
export interface PromptEncoder {
  encode(prompts: readonly string[]): [tf.Tensor3D, tf.Tensor2D];
  /** Do any asynchronous work `encode(prompts)` needs first (frozen encoders: compute and cache the embeddings without synchronous reads, which WebGPU lacks). */
  prepare?(prompts: readonly string[]): Promise<void>;
  /** the tokenizer vocabulary to store in checkpoints (learned encoder), else [] */
  readonly words: readonly string[];
}

export interface ModelBundle {
  /** trainable parameters (network + learned text encoder), by state-dict name */
  store: ParamStore;
  network: NetworkModule;
  text: PromptEncoder;
  flow: FlowConfig;
  ir: IR;
}

/** One training batch: clean images, their noise and noise levels, and prompts. */
export interface FlowBatch {
  x0: Float32Array; // [B, H, W, C]
  eps: Float32Array; // [B, H, W, C]
  sigma: Float32Array; // [B]
  prompts: string[];
}

/** A fixed validation set: test images at K equidistant noise levels with fixed noise. */
export interface ValidationSet {
  x0: Float32Array;
  eps: Float32Array;
  sigma: Float32Array;
  prompts: string[];
  n: number;
}

export interface SampleOpts {
  steps?: number;
  cfg?: number;
  /** the noise levels [lo, hi] where guidance applies (default: the spec's flow.guidance_interval, else every step) */
  cfgInterval?: [number, number];
  sampler?: "euler" | "heun";
  /** after each sampler step: (steps done, steps in all), for progress */
  onStep?: (done: number, steps: number) => void;
}

export interface StepResult {
  loss: number;
  gradNorm: number;
}
