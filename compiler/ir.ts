/**
 * The IR: everything the runtime needs to rebuild and train a compiled spec, as plain JSON.
 * It is written to generated/<name>/ir.json, validated against compiler/ir.schema.json (ajv),
 * and stored beside every checkpoint.
 */
import type { ModuleNode, ParamRecord } from "./check.ts";

export const IR_VERSION = 1;

export type Density = { kind: "uniform" } | { kind: "uniform_clipped"; eps: number } | { kind: "logit_normal"; m: number; s: number } | { kind: "mode"; s: number } | { kind: "cosmap" };

export interface FlowIR {
  /** which end of the network's time t is pure noise (reference lesson: 0) */
  noiseAt: 0 | 1;
  path: "linear";
  predict: "velocity";
  density: Density;
  loss: "mse";
  weighting: "none" | "x0" | "eps" | "snr_clip";
  cfgDrop: number;
  sampler: "euler" | "heun";
  steps: number;
  shift: number;
  guidance: number;
}

export interface OptimizerIR {
  kind: "adam" | "adamw";
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export interface TrainIR {
  optimizer: OptimizerIR;
  /** global-norm gradient clipping; 0 = off */
  clip: number;
  batch: number;
  steps: number;
  /** EMA decay; 0 = off */
  ema: number;
  sampleEvery: number;
  checkpointEvery: number;
  logEvery: number;
  /** images in each sample grid */
  samples: number;
  seed: number;
  /** learning-rate warmup steps */
  warmup: number;
  /** the learning rate after the warmup (absent: constant) */
  lrSchedule?: "constant" | "linear" | "cosine";
  /** micro-batches per step, gradients summed (absent: 1) */
  accumulate?: number;
  /** keep the last N checkpoints (absent or 0: all) */
  keepCheckpoints?: number;
  /** also keep the checkpoint with the lowest validation loss */
  keepBest?: boolean;
  /** training precision: only fp32 is supported */
  precision?: "fp32";
}

export interface DataIR {
  source: "mnist" | "folder";
  /** folder source: the directory of PNGs with captions.jsonl */
  path: string | null;
  height: number;
  width: number;
  channels: number;
  prompts: "digits" | "captions";
}

export type TextIR =
  | { kind: "none" }
  | {
      kind: "learned";
      block: string;
      args: Record<string, number | boolean>;
      tokens: number;
      vocab: number;
      /** token sequence width and pooled width the encoder produces */
      width: number;
      pooled: number;
      /** known prompt words (MNIST: numerals and number words) */
      words: string[];
    }
  | {
      /** embeddings supplied by the caller (sdc forward's inputs file); not trainable from prompts */
      kind: "external";
      tokens: number;
      width: number;
      pooled: number;
    }
  | {
      kind: "sd3_pretrained";
      clipL: string | null;
      clipG: string | null;
      t5: string | null;
      t5Tokens: number;
      tokens: number;
      width: number;
      pooled: number;
    };

export interface TensorSig {
  name: string;
  dtype: "float32" | "int32";
  shape: (number | string)[];
}

export interface IR {
  sdc: typeof IR_VERSION;
  spec: {
    name: string;
    title: string;
    file: string;
    variant: string | null;
    /** final values of the spec's parameters and lets */
    params: Record<string, number | boolean | string>;
    /** what the variant and --set changed */
    overrides: Record<string, number | boolean | string>;
  };
  /** diffusion (velocity network + text) or classifier (images -> class logits, e.g. the eval judge) */
  task: { kind: "diffusion" | "classifier"; classes: number };
  data: DataIR;
  text: TextIR;
  network: { block: string; args: Record<string, number | boolean>; inputs: TensorSig[]; output: TensorSig };
  flow: FlowIR;
  train: TrainIR;
  /** state-dict entries: the network's first (reference names), then text_encoder.* */
  parameters: ParamRecord[];
  modules: ModuleNode[];
  stats: { params: number; networkParams: number; textParams: number; buffers: number; maxActivation: number };
}
