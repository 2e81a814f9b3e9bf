/**
 * Rectified-flow training of a compiled spec. The surface is small, as in minRF:
 *   loss(x, prompts)                   one training loss on a batch
 *   sample(z, prompts, {steps, cfg})   images from noise
 * plus the loop (`train`) with gradient clipping, EMA, validation loss at fixed timesteps and
 * noise, sample grids, atomic checkpoints and exact resume.
 */
import * as tf from "@tensorflow/tfjs";
import type { IR } from "../../ir/ir.ts";
import type { BatchSampler, ImageTextDataset } from "../data/dataset.ts";
import { guidanceAt, guidanceRows, guidedVelocity, sampleFlow } from "../flow/sampler.ts";
import { checkGuidanceInterval, type FlowConfig, lossWeight, sampleSigmas, trainingPair } from "../flow/schedule.ts";
import type { CompiledSpec, DiffusionSpec } from "../model.ts";
import * as F from "../nn/functional.ts";
import { ParamStore } from "../nn/params.ts";
import { type PretrainedTextOptions, PretrainedPromptEncoder } from "../text/pretrained/prompt-encoder.ts";
import { WordTokenizer } from "../text/words.ts";
import type { FlowBatch, ModelBundle, PromptEncoder, SampleOpts, StepResult, ValidationSet } from "../bundle.ts";
import { LearnedPromptEncoder } from "../text/learned.ts";
import { Rng } from "../util/rng.ts";
import { type CondTensors, networkArgs, networkSources, nullClass, outputVelocity, promptLabels, tokenMask } from "./conditioning.ts";
import { FlatAdam, type FlatEma } from "./flat-optim.ts";
import { type LrScheduleName, lrAt } from "./lr-schedule.ts";

export class TrainingStopped extends Error {
  readonly exitCode = 3;
  constructor(message: string) {
    super(message);
    this.name = "TrainingStopped";
  }
}

/**
 * Build the network and the text encoder of a compiled spec, parameters seeded: the learned
 * encoder (trained jointly), or for `sd3_pretrained` the frozen CLIP-L + CLIP-G + T5 from local
 * folders (`textEncoders` overrides the spec's folders and the embedding cache; the store then
 * holds only the network's parameters).
 */
/** The text of a network without text inputs (a class-conditional DiT): nothing to encode. */
export const NO_TEXT: PromptEncoder = {
  words: [],
  encode: () => {
    throw new TrainingStopped("internal: this network takes no text features");
  },
};

export function buildModel(spec: CompiledSpec, ir: IR, seed: number, words?: string[], textEncoders?: PretrainedTextOptions): ModelBundle {
  if (spec.task !== "diffusion") throw new TrainingStopped(`${ir.spec.name} is a classifier spec; train it with \`sdc train-judge\``);
  if (ir.text.kind === "none") {
    const store = new ParamStore(seed);
    return { store, network: spec.createNetwork(store), text: NO_TEXT, flow: { ...ir.flow }, ir };
  }
  if (ir.text.kind === "sd3_pretrained") {
    const text = new PretrainedPromptEncoder(ir.spec.name, ir.text, textEncoders);
    const store = new ParamStore(seed);
    return { store, network: spec.createNetwork(store), text, flow: { ...ir.flow }, ir };
  }
  if (ir.text.kind !== "learned" || !spec.createTextEncoder) {
    throw new TrainingStopped(`${ir.spec.name} takes external text embeddings (text.encoder: external(...)); it can run \`sdc forward\` but cannot be trained from prompts`);
  }
  const store = new ParamStore(seed);
  const network = spec.createNetwork(store);
  const text = new LearnedPromptEncoder(spec.createTextEncoder(store), new WordTokenizer(words ?? ir.text.words, ir.text.vocab, ir.text.tokens), ir.text.mask === true);
  return { store, network, text, flow: { ...ir.flow }, ir };
}

/**
 * The model a static step graph is traced from, without loading frozen text encoders: with a
 * learned encoder, buildModel's (the encoder is traced with the network); otherwise the network
 * alone, and the step takes the encoders' features as inputs (its `text` must not be called).
 */
export function buildTraceModel(spec: DiffusionSpec, ir: IR, seed: number): ModelBundle {
  if (ir.text.kind === "learned" || ir.text.kind === "none") return buildModel(spec, ir, seed);
  const store = new ParamStore(seed);
  const text: PromptEncoder = {
    words: [],
    encode: () => {
      throw new TrainingStopped("buildTraceModel: a frozen text encoder's features are inputs of the step, not computed here");
    },
  };
  return { store, network: spec.createNetwork(store), text, flow: { ...ir.flow }, ir };
}

/** Context and pooled text for prompts: [B, T, D], [B, P]. */
export function encodePrompts(m: ModelBundle, prompts: readonly string[]): [tf.Tensor3D, tf.Tensor2D] {
  return m.text.encode(prompts);
}

/** The conditioning tensors the network takes, for prompts (text features, padding mask, labels). */
export function conditionOn(m: ModelBundle, prompts: readonly string[]): CondTensors {
  const sources = networkSources(m.ir);
  const cond: CondTensors = {};
  if (sources.includes("context") || sources.includes("pooled")) [cond.context, cond.pooled] = encodePrompts(m, prompts);
  if (sources.includes("context_mask")) {
    if (!(m.text instanceof LearnedPromptEncoder)) throw new TrainingStopped("context_mask needs the learned text encoder");
    cond.context_mask = tf.tensor2d(tokenMask(m.text.tokenizer.encodeBatch(prompts)), [prompts.length, m.text.tokenizer.length]);
  }
  if (sources.includes("label")) cond.label = tf.tensor1d(promptLabels(prompts, nullClass(m.ir)), "int32");
  return cond;
}

/** The network's velocity for x_t [B, H, W, C] at network times t [B] under `cond`. */
export function velocity(m: ModelBundle, x: tf.Tensor, t: tf.Tensor, cond: CondTensors): tf.Tensor4D {
  return outputVelocity(m.ir, m.network.forward(...networkArgs(networkSources(m.ir), x, t, cond)), x, t);
}

/** The training loss on one batch: weighted MSE between predicted and target velocity. */
export function flowLoss(m: ModelBundle, b: FlowBatch, shape: [number, number, number, number]): tf.Scalar {
  return tf.tidy(() => {
    const x0 = tf.tensor4d(b.x0, shape);
    const eps = tf.tensor4d(b.eps, shape);
    const { xt, t, target } = trainingPair(m.flow, x0, eps, b.sigma);
    const v = velocity(m, xt, t, conditionOn(m, b.prompts)); // [B, H, W, C]
    const perSample = tf.mean(tf.square(tf.sub(v, target)), [1, 2, 3]); // [B]
    const w = lossWeight(m.flow, b.sigma);
    return tf.mean(tf.mul(perSample, tf.tensor1d(w))) as tf.Scalar;
  });
}

/** Images from noise z [B, H, W, C] for prompts, with classifier-free guidance. */
export function sampleImages(m: ModelBundle, z: tf.Tensor4D, prompts: readonly string[], opts: SampleOpts = {}): tf.Tensor4D {
  const scale = opts.cfg ?? m.flow.guidance;
  // conditional rows first, then the unconditional ones (the empty prompt: the null class)
  const { rows, both } = guidanceRows(prompts, scale);
  const cond = conditionOn(m, rows);
  const interval = opts.cfgInterval ?? m.flow.guidanceInterval ?? null;
  if (interval) checkGuidanceInterval(interval);
  const vel = (x: tf.Tensor, t: tf.Tensor1D, sigma: number): tf.Tensor => {
    if (!both) return velocity(m, x, t, cond);
    const v = velocity(m, tf.concat([x, x], 0), tf.concat([t, t], 0), cond);
    const [vc, vu] = tf.split(v, 2, 0);
    return guidedVelocity(vc, vu, guidanceAt(scale, sigma, interval));
  };
  const onStep = opts.onStep;
  const out = sampleFlow(vel, z, m.flow, { steps: opts.steps, sampler: opts.sampler, onStep: onStep ? (i) => onStep(i.step + 1, i.steps) : undefined }) as tf.Tensor4D;
  tf.dispose(Object.values(cond));
  return out;
}

export function makeValidationSet(ds: ImageTextDataset, count: number, levels = 8, seed = 1234): ValidationSet {
  const rng = new Rng(seed);
  const per = ds.height * ds.width * ds.channels;
  const n = count * levels;
  const x0 = new Float32Array(n * per);
  const img = new Float32Array(per);
  const prompts: string[] = [];
  const sigma = new Float32Array(n);
  const idx = Array.from({ length: count }, (_, i) => Math.floor((i * ds.size) / count));
  for (let k = 0; k < levels; k++) {
    for (let i = 0; i < count; i++) {
      ds.image(idx[i], img, 0);
      x0.set(img, (k * count + i) * per);
      prompts.push(ds.caption(idx[i], rng));
      sigma[k * count + i] = (k + 0.5) / levels;
    }
  }
  return { x0, eps: rng.normals(n * per), sigma, prompts, n };
}

/** Mean flow loss over the validation set (no dropout, batches of `batch`). */
export async function validationLoss(m: ModelBundle, v: ValidationSet, dims: [number, number, number], batch = 64): Promise<number> {
  const per = dims[0] * dims[1] * dims[2];
  let total = 0;
  for (let s = 0; s < v.n; s += batch) {
    const e = Math.min(v.n, s + batch);
    const b: FlowBatch = { x0: v.x0.subarray(s * per, e * per), eps: v.eps.subarray(s * per, e * per), sigma: v.sigma.subarray(s, e), prompts: v.prompts.slice(s, e) };
    await m.text.prepare?.(b.prompts);
    const l = flowLoss(m, b, [e - s, ...dims]);
    total += (await l.data())[0] * (e - s);
    l.dispose();
  }
  return total / v.n;
}

/** Optimizer, clipping and EMA around the model: one `step` per batch. */
export class FlowTrainer {
  /** clipping, Adam and EMA over one flat buffer (runtime/train/flat-optim.ts) */
  readonly optim: FlatAdam;
  readonly ema: FlatEma | null;
  private readonly vars: [string, tf.Variable][];

  constructor(
    readonly m: ModelBundle,
    readonly opts: { lr: number; clip: number; ema: number; kind: "adam" | "adamw"; beta1: number; beta2: number; eps: number; weightDecay: number; warmup: number; schedule?: LrScheduleName; steps?: number; accumulate?: number },
  ) {
    this.vars = [...m.store.vars.entries()];
    this.optim = new FlatAdam(this.vars, { lr: opts.lr, beta1: opts.beta1, beta2: opts.beta2, eps: opts.eps, weightDecay: opts.weightDecay, decoupled: opts.kind === "adamw", clip: opts.clip, ema: opts.ema });
    this.ema = this.optim.ema;
  }

  /**
   * One optimisation step. Everything stays on the device (clipping included); the loss and the
   * gradient norm are read back once, asynchronously, at the end (no sync read: WebGPU has none).
   * A non-finite loss is returned as such: the caller stops the run.
   */
  async step(b: FlowBatch, shape: [number, number, number, number]): Promise<StepResult> {
    await this.m.text.prepare?.(b.prompts);
    const k = this.opts.accumulate ?? 1;
    let value: tf.Scalar;
    let named: Map<string, tf.Tensor>;
    if (k === 1) {
      const step = this.optim.stepCount + 1; // dropout masks follow the step (a resumed run draws the same)
      const r = tf.variableGrads(() => F.training(step, () => flowLoss(this.m, b, shape)), this.vars.map(([, v]) => v));
      value = r.value;
      // variableGrads keys gradients by the variables' tfjs names; map back to state-dict names
      named = new Map<string, tf.Tensor>(this.vars.map(([n, v]) => [n, r.grads[v.name]]));
    } else ({ value, named } = this.accumulated(b, shape, k));
    this.optim.lr = lrAt({ lr: this.opts.lr, warmup: this.opts.warmup, schedule: this.opts.schedule, steps: this.opts.steps }, this.optim.stepCount + 1);
    const norm = this.optim.step(named);
    tf.dispose([...named.values()]);
    const [loss, gradNorm] = await Promise.all([value.data(), norm.data()]);
    tf.dispose([value, norm]);
    return { loss: loss[0], gradNorm: gradNorm[0] };
  }

  /**
   * Gradient accumulation: the batch as k equal micro-batches, each one's gradient of its mean
   * loss weighted by 1/k and summed, which is the gradient of the whole batch's mean loss (the
   * same update as k = 1, to rounding), holding one micro-batch's activations at a time.
   */
  private accumulated(b: FlowBatch, shape: [number, number, number, number], k: number): { value: tf.Scalar; named: Map<string, tf.Tensor> } {
    const n = shape[0];
    if (n % k !== 0) throw new RangeError(`gradient accumulation: ${k} micro-batches do not divide the batch of ${n}`);
    const mb = n / k;
    const per = shape[1] * shape[2] * shape[3];
    let value: tf.Scalar = tf.scalar(0);
    const named = new Map<string, tf.Tensor>();
    for (let i = 0; i < k; i++) {
      const part: FlowBatch = { x0: b.x0.subarray(i * mb * per, (i + 1) * mb * per), eps: b.eps.subarray(i * mb * per, (i + 1) * mb * per), sigma: b.sigma.subarray(i * mb, (i + 1) * mb), prompts: b.prompts.slice(i * mb, (i + 1) * mb) };
      const r = tf.variableGrads(() => F.training((this.optim.stepCount + 1) * k + i, () => tf.div(flowLoss(this.m, part, [mb, shape[1], shape[2], shape[3]]), k) as tf.Scalar), this.vars.map(([, v]) => v));
      const v2 = tf.add(value, r.value) as tf.Scalar;
      tf.dispose([value, r.value]);
      value = v2;
      for (const [name, v] of this.vars) {
        const g = r.grads[v.name];
        const prev = named.get(name);
        if (prev) {
          named.set(name, tf.add(prev, g));
          tf.dispose([prev, g]);
        } else named.set(name, g);
      }
    }
    return { value, named };
  }

  dispose(): void {
    this.optim.dispose();
    this.ema?.dispose();
  }
}

/** Everything random in a training batch, drawn on the CPU from one seeded stream. */
export function drawBatch(sampler: BatchSampler, rng: Rng, flow: FlowConfig): FlowBatch {
  const b = sampler.next();
  const n = b.prompts.length;
  const sigma = sampleSigmas(flow.density, n, rng);
  const eps = rng.normals(b.images.length);
  const prompts = b.prompts.map((p) => (rng.uniform() < flow.cfgDrop ? "" : p));
  return { x0: b.images, eps, sigma, prompts };
}
