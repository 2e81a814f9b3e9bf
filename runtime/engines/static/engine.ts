/**
 * The static engine: the whole training step as one static graph (runtime/graph), replayed as
 * recorded WGSL dispatches on the WebGPU device, or as one program of native C++ kernels on the
 * CPU (wasm / cpu backends); parameters live in the executor's flat buffers and are copied into
 * the ParamStore only for samples, validation and checkpoints.
 */
import * as tf from "@tensorflow/tfjs";
import { fuse } from "../../graph/fuse.ts";
import { GraphError } from "../../graph/graph.ts";
import { liveKernelCount, type StepGraph } from "../../graph/step-graph.ts";
import { buildStepGraph, frozenContext, stepFeeds, textInputs } from "./step.ts";
import { WebGpuStep } from "../../executors/webgpu/webgpu.ts";
import { kernelOptionsFromEnv } from "../../executors/webgpu/gemm-table.ts";
import { NativeStep, nativeAddon, nativeDetail } from "../../executors/native/native.ts";
import type { HostTensors } from "../../train/checkpoint.ts";
import { lrAt } from "../../train/lr-schedule.ts";
import type { FlowBatch, ModelBundle, SampleOpts, StepResult, ValidationSet } from "../../bundle.ts";
import { EngineError, type EngineOptions, type TrainEngine } from "../engine.ts";
import { StaticFlowNetwork } from "./sampler.ts";

/** The engine line's words for a precision. */
function precisionDetail(p: "fp32" | "bf16"): string {
  return p === "bf16" ? "precision bf16 (mixed: GEMM operands rounded to bf16, fp32 accumulation, weights and optimizer fp32; samples and validation in fp32)" : "precision fp32";
}

/** The engine line's warning where the kernels' ISA level has no bf16 instructions (the portable path rounds in software: slower than fp32). */
export function emulatedBf16Note(isa: string): string {
  return isa === "avx512bf16" || isa === "amx" ? "" : ` [this CPU's kernels (${isa}) have no bf16 instructions: bf16 is emulated, slower than fp32 here]`;
}

/** What StaticEngine needs of an executor of the step graph (WebGpuStep, NativeStep). */
export interface StepExecutor {
  lr: number;
  readonly stepCount: number;
  readonly emaUpdates: number;
  setParams(values: Map<string, Float32Array>, resetEma?: boolean): void;
  readFlat(which: "params" | "m" | "v" | "ema"): Promise<Map<string, Float32Array> | null>;
  setState(m: Map<string, Float32Array>, v: Map<string, Float32Array>, ema: Map<string, Float32Array> | null, stepCount: number, emaUpdates: number): void;
  step(feeds: Map<string, Float32Array>): Promise<{ loss: number; gradNorm: number }>;
  dispose(): void;
}

export class StaticEngine implements TrainEngine {
  readonly name = "static";
  detail = "";
  private constructor(
    private readonly m: ModelBundle,
    private readonly opts: EngineOptions,
    readonly sg: StepGraph,
    readonly gpu: StepExecutor,
    /** the forward pass for samples and validation, reading the EMA weights (or the parameters) in place */
    private readonly makeNet: (which: "ema" | "params") => StaticFlowNetwork,
  ) {}

  /**
   * Trace, differentiate and fuse the step at `batch`, compile its kernels (WGSL on the webgpu
   * backend, the native CPU executor on wasm / cpu), upload the parameters.
   */
  static async create(m: ModelBundle, opts: EngineOptions, batch: number, dims: [number, number, number]): Promise<StaticEngine> {
    const backend = tf.getBackend();
    const onGpu = backend === "webgpu";
    if (!onGpu && !nativeAddon().addon) throw new EngineError(`the static engine on the ${backend} backend needs the native CPU executor: ${nativeAddon().why}`);
    const t0 = performance.now();
    const precision = opts.precision ?? "fp32";
    if (onGpu && precision !== "fp32") throw new EngineError(`precision ${precision} runs on the native CPU kernels only (the WGSL kernels are fp32); use the wasm or cpu backend, or fp32`);
    const sg = buildStepGraph(m, batch, dims, frozenContext(m), precision);
    const before = liveKernelCount(sg);
    fuse(sg);
    const adam = {
      lr: opts.lr,
      beta1: opts.beta1,
      beta2: opts.beta2,
      eps: opts.eps,
      weightDecay: opts.weightDecay,
      decoupled: opts.kind === "adamw",
      clip: opts.clip,
      ema: opts.ema,
      emaWarmup: true,
    };
    let e: StaticEngine;
    if (onGpu) {
      const device = (tf.backend() as unknown as { device: unknown }).device;
      const gpu = await WebGpuStep.create(device, sg, adam, kernelOptionsFromEnv());
      e = new StaticEngine(m, opts, sg, gpu, (which) => StaticFlowNetwork.webgpu(m, gpu.device, (name) => gpu.paramBinding(name, which)));
      e.detail = `static graph: ${gpu.kernels.length + 3} kernels per step (${before} before fusion), ${Math.round(gpu.bytes.activations / 2 ** 20)} MiB of activations, ${precisionDetail(precision)}`;
    } else {
      const cpu = new NativeStep(sg, adam);
      e = new StaticEngine(m, opts, sg, cpu, (which) => StaticFlowNetwork.native(m, (name) => cpu.paramPlace(name, which)));
      e.detail = `static graph on the CPU, ${nativeDetail()}: ${cpu.kernels} kernels per step (${before} before fusion), ${Math.round(cpu.bytes.activations / 2 ** 20)} MiB of activations, ${precisionDetail(precision)}${precision === "bf16" ? emulatedBf16Note(nativeAddon().addon!.isa()) : ""}`;
    }
    await e.upload();
    e.detail += `, built in ${((performance.now() - t0) / 1000).toFixed(1)} s`;
    return e;
  }

  private async upload(): Promise<void> {
    const values = new Map<string, Float32Array>();
    for (const [n, v] of this.m.store.vars) values.set(n, (await v.data()) as Float32Array);
    this.gpu.setParams(values);
  }

  get lr() {
    return this.gpu.lr;
  }
  get stepCount() {
    return this.gpu.stepCount;
  }
  get emaUpdates() {
    return this.gpu.emaUpdates;
  }
  get hasEma() {
    return this.opts.ema > 0;
  }

  /** the step number of the last step() called (undefined: read the executor's count) */
  private lastStep: number | undefined;

  /** resolves when the previous step() has been submitted: steps reach the GPU in call order */
  private turn: Promise<void> = Promise.resolve();

  async step(b: FlowBatch, shape: [number, number, number, number]): Promise<StepResult> {
    if (shape[0] !== this.sg.batch) throw new GraphError(`the static step was built for batch ${this.sg.batch}, got ${shape[0]}`);
    // the optimizer step this batch is for (dropout masks are drawn from it), counted as steps are called
    const step = (this.lastStep ??= this.gpu.stepCount) + 1;
    this.lastStep = step;
    const mine = this.turn;
    let submitted!: () => void;
    this.turn = new Promise((r) => (submitted = r));
    try {
      // frozen encoders: their features are computed (and awaited) before this step's turn
      const feeds = stepFeeds(this.sg, this.m.flow, b, await textInputs(this.m, b.prompts), step);
      await mine;
      this.gpu.lr = lrAt(this.opts, this.gpu.stepCount + 1);
      const pending = this.gpu.step(feeds); // submits synchronously, then waits for the read
      submitted();
      const r = await pending;
      return { loss: r.loss, gradNorm: r.gradNorm };
    } finally {
      submitted();
    }
  }

  private assign(values: Map<string, Float32Array>): void {
    for (const [n, v] of this.m.store.vars) {
      const x = values.get(n);
      if (!x) throw new GraphError(`no value for ${n}`);
      const t = tf.tensor(x, v.shape);
      v.assign(t);
      t.dispose();
    }
  }

  async syncParams(): Promise<void> {
    this.assign((await this.gpu.readFlat("params"))!);
  }

  private flowNet: StaticFlowNetwork | null = null;
  private net(): StaticFlowNetwork {
    return (this.flowNet ??= this.makeNet(this.hasEma ? "ema" : "params"));
  }
  validationLoss(v: ValidationSet, dims: [number, number, number], batch: number): Promise<number> {
    return this.net().validationLoss(v, dims, batch);
  }
  sample(z: Float32Array, prompts: readonly string[], dims: [number, number, number], opts: SampleOpts): Promise<Float32Array> {
    return this.net().sample(z, prompts, dims, opts);
  }

  async optimizerState(): Promise<HostTensors> {
    const [m, v] = [(await this.gpu.readFlat("m"))!, (await this.gpu.readFlat("v"))!];
    const out: HostTensors = new Map();
    for (const p of this.sg.params) out.set(`exp_avg.${p.name}`, { shape: p.shape, data: m.get(p.name)! });
    for (const p of this.sg.params) out.set(`exp_avg_sq.${p.name}`, { shape: p.shape, data: v.get(p.name)! });
    return out;
  }

  async emaState(): Promise<HostTensors | null> {
    const ema = await this.gpu.readFlat("ema");
    if (!ema) return null;
    return new Map(this.sg.params.map((p) => [p.name, { shape: p.shape, data: ema.get(p.name)! }]));
  }

  async loadState(optimizer: HostTensors, steps: number, ema: HostTensors | null, emaUpdates: number): Promise<void> {
    await this.upload();
    const get = (prefix: string) => new Map(this.sg.params.map((p) => [p.name, optimizer.get(`${prefix}${p.name}`)?.data as Float32Array]));
    const e = ema ? new Map(this.sg.params.map((p) => [p.name, ema.get(p.name)?.data as Float32Array])) : null;
    this.gpu.setState(get("exp_avg."), get("exp_avg_sq."), e, steps, emaUpdates);
    this.lastStep = undefined;
  }

  dispose(): void {
    this.flowNet?.dispose();
    this.gpu.dispose();
  }
}
