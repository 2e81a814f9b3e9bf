/**
 * The IR: everything the runtime needs to rebuild and train a compiled spec, as plain JSON.
 * It is written to generated/<name>/ir.json, validated against ir/ir.schema.json (ajv),
 * and stored beside every checkpoint.
 */

export const IR_VERSION = 1;

/** A parameter's initializer (the compiler's primitives name it, the runtime's ParamStore draws it). */
export type Init = "torch_linear" | "zeros" | "ones" | "normal_0.02" | "fixed" | "xavier_uniform" | `normal:${number}` | `trunc_normal:${number}` | `constant:${number}`;

/**
 * A spec's `parameter(..., init: "...")` as its initializer: "zeros", "ones", "xavier_uniform",
 * "constant(V)" (V finite), "normal(STD)", "trunc_normal(STD)" (STD > 0, finite). Null when the
 * string is none of these (the compiler reports it; the runtime refuses it).
 */
export function parameterInit(s: string): Init | null {
  if (s === "zeros" || s === "ones" || s === "xavier_uniform") return s;
  const m = /^(constant|normal|trunc_normal)\(\s*([-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)\s*\)$/.exec(s);
  const v = m ? Number(m[2]) : NaN;
  if (!m || !Number.isFinite(v) || (m[1] !== "constant" && !(v > 0))) return null;
  return `${m[1] as "constant" | "normal" | "trunc_normal"}:${v}`;
}

/** A block argument in the IR: a number, a bool or a list of numbers (`widths: int[]`). */
export type ArgValue = number | boolean | number[];
/** A spec parameter's value in the IR (strings: a symbolic value or a name). */
export type ParamValue = number | boolean | string | number[];

export interface ParamRecord {
  name: string;
  shape: number[];
  count: number;
  init: Init;
  buffer: boolean;
  /** the primitive that owns it */
  op: string;
}

export interface ModuleNode {
  path: string;
  kind: string;
  /** trainable parameters in this module and below */
  params: number;
  children: ModuleNode[];
}

export type Density = { kind: "uniform" } | { kind: "uniform_clipped"; eps: number } | { kind: "logit_normal"; m: number; s: number } | { kind: "mode"; s: number } | { kind: "cosmap" };

export interface FlowIR {
  /** which end of the network's time t is pure noise (reference lesson: 0) */
  noiseAt: 0 | 1;
  path: "linear";
  /**
   * what the network's output stands for: the velocity itself, or the clean image x0 ("data",
   * JiT's x-prediction), turned into the velocity (x0_hat - x_t) / sigma (signed for the network's
   * time) with sigma floored at `sigmaFloor`, so the loss and the samplers still see a velocity
   */
  predict: "velocity" | "data";
  /** predict "data": the least noise level the velocity divides by (absent: 0.05) */
  sigmaFloor?: number;
  density: Density;
  loss: "mse";
  weighting: "none" | "x0" | "eps" | "snr_clip";
  cfgDrop: number;
  sampler: "euler" | "heun";
  steps: number;
  shift: number;
  guidance: number;
  /**
   * the noise levels sigma (1 = noise, 0 = data) where guidance applies, [lo, hi] (absent: every
   * step); outside it the sampler takes the conditional velocity alone (scale 1)
   */
  guidanceInterval?: [number, number];
  /**
   * what the network returns (absent: "velocity"): with "velocity_variance" it returns twice the
   * image channels (DiT's learn_sigma), the first half the velocity; the flow loss and the
   * samplers use that half only
   */
  output?: "velocity" | "velocity_variance";
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
  /** training precision: fp32, or bf16 mixed precision (GEMM operands rounded to bf16, fp32 accumulation) */
  precision?: "fp32" | "bf16";
}

export interface DataIR {
  source: "mnist" | "folder" | "latents";
  /** folder source: the directory of PNGs with captions.jsonl; latents: the .safetensors file */
  path: string | null;
  height: number;
  width: number;
  channels: number;
  prompts: "digits" | "captions";
  /** classes of the data's labels (MNIST digits: 10; absent: no labels); the null class is `classes` */
  classes?: number;
}

export type TextIR =
  | { kind: "none" }
  | {
      kind: "learned";
      block: string;
      args: Record<string, ArgValue>;
      tokens: number;
      vocab: number;
      /** token sequence width and pooled width the encoder produces */
      width: number;
      pooled: number;
      /** known prompt words (MNIST: numerals and number words) */
      words: string[];
      /** the encoder's forward takes the tokens' padding mask [B, T] after the ids (absent: ids only) */
      mask?: boolean;
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

/**
 * What feeds a network input (the spec's `inputs { NAME: SOURCE }`): the noisy image x_t, the
 * network time, the text encoder's tokens, their padding mask (1 = token, 0 = padding) and pooled
 * vector, or the class label (int32; the null class when dropped for CFG).
 */
export type InputSource = "image" | "timestep" | "context" | "context_mask" | "pooled" | "label";
export const INPUT_SOURCES: readonly InputSource[] = ["image", "timestep", "context", "context_mask", "pooled", "label"];
/** The inputs of a network without an `inputs` section, in order. */
export const DEFAULT_INPUT_SOURCES: readonly InputSource[] = ["image", "timestep", "context", "pooled"];

export interface InputSig extends TensorSig {
  /** absent in IRs written before `inputs` existed: the DEFAULT_INPUT_SOURCES by position */
  source?: InputSource;
}

/** The sources of a network's inputs, in the forward's order. */
export function inputSources(ir: Pick<IR, "network" | "task">): InputSource[] {
  if (ir.task.kind === "classifier") return ["image"];
  return ir.network.inputs.map((s, i) => s.source ?? DEFAULT_INPUT_SOURCES[i]);
}

export interface IR {
  sdc: typeof IR_VERSION;
  spec: {
    name: string;
    title: string;
    file: string;
    variant: string | null;
    /** final values of the spec's parameters and lets */
    params: Record<string, ParamValue>;
    /** what the variant and --set changed */
    overrides: Record<string, ParamValue>;
  };
  /** diffusion (velocity network + text) or classifier (images -> class logits, e.g. the eval judge) */
  task: { kind: "diffusion" | "classifier"; classes: number };
  data: DataIR;
  text: TextIR;
  network: { block: string; args: Record<string, ArgValue>; inputs: InputSig[]; output: TensorSig };
  flow: FlowIR;
  train: TrainIR;
  /** state-dict entries: the network's first (reference names), then text_encoder.* */
  parameters: ParamRecord[];
  modules: ModuleNode[];
  stats: { params: number; networkParams: number; textParams: number; buffers: number; maxActivation: number };
}
