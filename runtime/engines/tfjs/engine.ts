/** The tfjs engine: eager tfjs ops with autodiff (FlowTrainer), on every backend, for every spec. */
import * as tf from "@tensorflow/tfjs";
import type { HostTensors } from "../../train/checkpoint.ts";
import { FlowTrainer, sampleImages, validationLoss } from "../../train/trainer.ts";
import { type FlowBatch, type ModelBundle, type SampleOpts, type ValidationSet } from "../../bundle.ts";
import type { EngineOptions, TrainEngine } from "../engine.ts";

async function toHost(ts: Map<string, tf.Tensor>): Promise<HostTensors> {
  const out: HostTensors = new Map();
  for (const [n, t] of ts) out.set(n, { shape: [...t.shape], data: (await t.data()) as Float32Array });
  tf.dispose([...ts.values()]);
  return out;
}
const toTensors = (h: HostTensors) => new Map([...h].map(([k, v]) => [k, tf.tensor(v.data, v.shape)]));

export class TfjsEngine implements TrainEngine {
  readonly name = "tfjs";
  readonly detail = "tfjs (eager ops + autodiff), precision fp32";
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
