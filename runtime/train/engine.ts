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
import * as tf from "@tensorflow/tfjs";
import { fuse } from "../graph/fuse.ts";
import { GraphError, UnsupportedOpError } from "../graph/graph.ts";
import { buildStepGraph, frozenContext, liveKernelCount, stepFeeds, type StepGraph, textInputs } from "../graph/step.ts";
import { WebGpuStep } from "../graph/webgpu.ts";
import { kernelOptionsFromEnv } from "../graph/gemm-table.ts";
import type { HostTensors } from "./checkpoint.ts";
import { type LrScheduleName, lrAt } from "./lr-schedule.ts";
import { StaticFlowNetwork } from "../graph/sampler.ts";
import { NativeStep, nativeAddon, nativeDetail } from "../graph/native.ts";
import { type FlowBatch, FlowTrainer, type ModelBundle, type SampleOpts, sampleImages, type StepResult, type ValidationSet, validationLoss } from "./trainer.ts";

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

async function toHost(ts: Map<string, tf.Tensor>): Promise<HostTensors> {
  const out: HostTensors = new Map();
  for (const [n, t] of ts) out.set(n, { shape: [...t.shape], data: (await t.data()) as Float32Array });
  tf.dispose([...ts.values()]);
  return out;
}
const toTensors = (h: HostTensors) => new Map([...h].map(([k, v]) => [k, tf.tensor(v.data, v.shape)]));

export class TfjsEngine implements TrainEngine {
  readonly name = "tfjs";
  readonly detail = "tfjs (eager ops + autodiff)";
  readonly t: FlowTrainer;
  constructor(m: ModelBundle, opts: EngineOptions) {
    this.t = new FlowTrainer(m, opts);
  }
  get lr() {
    return this.t.optim.lr;
  }
  get stepCount() {
    return this.t.optim.stepCount;
  }
  get emaUpdates() {
    return this.t.ema?.updates ?? 0;
  }
  get hasEma() {
    return this.t.ema !== null;
  }
  step(b: FlowBatch, shape: [number, number, number, number]) {
    return this.t.step(b, shape);
  }
  async syncParams() {}
  /** run `fn` with the EMA weights in the ParamStore (the parameters when there is no EMA) */
  private async withEma<R>(fn: () => Promise<R>): Promise<R> {
    const ema = this.t.ema;
    if (ema) ema.swap();
    try {
      return await fn();
    } finally {
      if (ema) ema.swap();
    }
  }
  validationLoss(v: ValidationSet, dims: [number, number, number], batch: number) {
    return this.withEma(() => validationLoss(this.t.m, v, dims, batch));
  }
  sample(z: Float32Array, prompts: readonly string[], dims: [number, number, number], opts: SampleOpts) {
    return this.withEma(async () => {
      await this.t.m.text.prepare?.([...prompts, ""]);
      const zt = tf.tensor4d(z, [prompts.length, ...dims]);
      const imgs = sampleImages(this.t.m, zt, prompts, opts);
      const data = (await imgs.data()) as Float32Array;
      tf.dispose([zt, imgs]);
      return data;
    });
  }
  optimizerState() {
    return toHost(this.t.optim.stateTensors());
  }
  async emaState() {
    return this.t.ema ? toHost(this.t.ema.tensors()) : null;
  }
  async loadState(optimizer: HostTensors, steps: number, ema: HostTensors | null, emaUpdates: number) {
    const os = toTensors(optimizer);
    this.t.optim.loadState(os, steps);
    tf.dispose([...os.values()]);
    if (this.t.ema && ema) {
      const es = toTensors(ema);
      this.t.ema.load(es, emaUpdates);
      tf.dispose([...es.values()]);
    }
  }
  dispose() {
    this.t.dispose();
  }
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
    const sg = buildStepGraph(m, batch, dims, frozenContext(m));
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
      e.detail = `static graph: ${gpu.kernels.length + 3} kernels per step (${before} before fusion), ${Math.round(gpu.bytes.activations / 2 ** 20)} MiB of activations`;
    } else {
      const cpu = new NativeStep(sg, adam);
      e = new StaticEngine(m, opts, sg, cpu, (which) => StaticFlowNetwork.native(m, (name) => cpu.paramPlace(name, which)));
      e.detail = `static graph on the CPU, ${nativeDetail()}: ${cpu.kernels} kernels per step (${before} before fusion), ${Math.round(cpu.bytes.activations / 2 ** 20)} MiB of activations`;
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

/**
 * The engine for a run: `auto` is static on the webgpu backend and on the CPU backends when the
 * native executor is built (falling back to tfjs, with the reason logged, when it is not or the
 * spec uses an op the static engine lacks), else tfjs.
 */
export async function createEngine(which: EngineName, m: ModelBundle, opts: EngineOptions, batch: number, dims: [number, number, number], log: (s: string) => void): Promise<TrainEngine> {
  if (which === "tfjs") return new TfjsEngine(m, opts);
  const backend = tf.getBackend();
  if (backend !== "webgpu" && backend !== "wasm" && backend !== "cpu") {
    if (which === "static") throw new EngineError(`--engine static runs on the webgpu, wasm and cpu backends (this run uses ${backend}); use --engine tfjs`);
    return new TfjsEngine(m, opts);
  }
  // gradient accumulation runs on the tfjs engine only: the static step is one compiled graph per batch
  if ((opts.accumulate ?? 1) > 1) {
    const why = `gradient accumulation (accumulate ${opts.accumulate}) runs on the tfjs engine only: the static engine compiles one step for the whole batch`;
    if (which === "static") throw new EngineError(`${why}; use --engine tfjs, or accumulate 1 (a smaller --batch-size) on the static engine`);
    log(`${why}; training with tfjs`);
    return new TfjsEngine(m, opts);
  }
  if (backend !== "webgpu" && !nativeAddon().addon) {
    if (which === "static") throw new EngineError(`--engine static on the CPU needs the native executor: ${nativeAddon().why}`);
    log(`static engine unavailable (${nativeAddon().why}); training with tfjs`);
    return new TfjsEngine(m, opts);
  }
  try {
    return await StaticEngine.create(m, opts, batch, dims);
  } catch (e) {
    if (!(e instanceof UnsupportedOpError)) throw e;
    if (which === "static") throw new EngineError(e.message);
    log(`static engine unavailable (${e.message}); training with tfjs`);
    return new TfjsEngine(m, opts);
  }
}
