/**
 * Training engines behind `sdc train`: the same step (flow loss, clipping, Adam/AdamW, EMA) two
 * ways.
 *   tfjs    eager tfjs ops with autodiff (FlowTrainer): every backend, every spec
 *   static  the whole step as one static graph (runtime/graph), replayed as recorded WGSL
 *           dispatches on the WebGPU device, or as one program of native C++ kernels on the CPU
 *           (wasm / cpu backends); parameters live in the executor's flat buffers and are copied
 *           into the ParamStore only for samples, validation and checkpoints
 * Checkpoints are the same either way (per-tensor exp_avg./exp_avg_sq. names), so a run can
 * resume on the other engine.
 */
import type { HostTensors } from "../train/checkpoint.ts";
import type { LrScheduleName } from "../train/lr-schedule.ts";
import type { FlowBatch, SampleOpts, StepResult, ValidationSet } from "../bundle.ts";

export type EngineName = "auto" | "tfjs" | "static";

/** The engine asked for cannot train this spec here (a user-facing error, exit 1). */
export class EngineError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "EngineError";
  }
}

export interface EngineOptions {
  lr: number;
  clip: number;
  ema: number;
  kind: "adam" | "adamw";
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  warmup: number;
  /** the learning rate after the warmup (lr-schedule.ts; absent: constant) and the run's total steps it spans */
  schedule?: LrScheduleName;
  steps?: number;
  /** micro-batches per step, gradients summed (absent: 1); the tfjs engine only */
  accumulate?: number;
  /** "bf16": mixed precision (GEMM operands rounded to bf16, fp32 accumulation; absent: fp32); the static engine on native CPU kernels only */
  precision?: "fp32" | "bf16";
}

export interface TrainEngine {
  readonly name: "tfjs" | "static";
  /** one line for the log */
  readonly detail: string;
  /** learning rate of the last step (after warmup) */
  readonly lr: number;
  readonly stepCount: number;
  readonly emaUpdates: number;
  readonly hasEma: boolean;
  step(b: FlowBatch, shape: [number, number, number, number]): Promise<StepResult>;
  /** make the ParamStore's variables hold the current parameters */
  syncParams(): Promise<void>;
  /** validation loss with the EMA weights (the parameters when there is no EMA) */
  validationLoss(v: ValidationSet, dims: [number, number, number], batch: number): Promise<number>;
  /** images [B, H, W, C] from noise z for prompts, with the EMA weights and classifier-free guidance */
  sample(z: Float32Array, prompts: readonly string[], dims: [number, number, number], opts: SampleOpts): Promise<Float32Array>;
  optimizerState(): Promise<HostTensors>;
  emaState(): Promise<HostTensors | null>;
  loadState(optimizer: HostTensors, steps: number, ema: HostTensors | null, emaUpdates: number): Promise<void>;
  dispose(): void;
}
