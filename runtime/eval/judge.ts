/**
 * The judge: a compiled classifier spec (specs/judge.mdl) that scores generated digits.
 *
 * Contract with the spec: the network maps x [B, H, W, C] in [-1, 1] to logits [B, classes] and
 * has a sub-block labelled `features` (`... as features` in the spec) whose forward maps x to the
 * penultimate features [B, F]; the head is applied to those. `sdc eval` reads the features for
 * its Fréchet distance and the logits' argmax for prompt accuracy.
 *
 * Pure runtime: no file access here; reads from the device are asynchronous (WebGPU has no sync read) (loading lives in cli/commands/judge.ts).
 */
import * as tf from "@tensorflow/tfjs";
import type { IR } from "../../ir/ir.ts";
import type { ClassifierModule, ClassifierSpec, CompiledSpec } from "../model.ts";
import { ParamStore } from "../nn/params.ts";
import { Adam } from "../train/optim.ts";
import { Rng } from "../util/rng.ts";

export class JudgeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InputError";
  }
}

export interface FeatureModule {
  forward(x: tf.Tensor4D): tf.Tensor2D;
}

export interface Judge {
  store: ParamStore;
  net: ClassifierModule & { features: FeatureModule };
  ir: IR;
  classes: number;
  /** image dims the judge takes: [H, W, C] */
  dims: [number, number, number];
}

/** Build the judge network of a compiled classifier spec, parameters seeded (then trained or loaded). */
export function buildJudge(spec: CompiledSpec, ir: IR, seed = 0): Judge {
  if (spec.task !== "classifier") throw new JudgeError(`${ir.spec.name} is not a classifier spec (task.kind is ${spec.task}); the judge must be one, e.g. specs/judge.mdl`);
  const store = new ParamStore(seed);
  const net = (spec as ClassifierSpec).createNetwork(store) as ClassifierModule & { features?: FeatureModule };
  if (!net.features || typeof net.features.forward !== "function") {
    store.dispose();
    throw new JudgeError(`${ir.spec.name}: the judge network needs a sub-block labelled \`features\` (x -> [B, F] penultimate features), as in specs/judge.mdl`);
  }
  return { store, net: net as Judge["net"], ir, classes: spec.classes, dims: [ir.data.height, ir.data.width, ir.data.channels] };
}

export interface JudgeOutputs {
  /** argmax class per image */
  predicted: Int32Array;
  /** penultimate features, row-major [n, F] */
  features: Float32Array;
  featureDim: number;
}

/** Classify n images (row-major [n, H, W, C] in [-1, 1]) in batches; returns classes and features. */
export async function judgeImages(j: Judge, images: Float32Array, n: number, batch = 256): Promise<JudgeOutputs> {
  const [h, w, c] = j.dims;
  const per = h * w * c;
  if (images.length !== n * per) throw new JudgeError(`judgeImages: ${images.length} values is not ${n} images of ${h}x${w}x${c}`);
  const predicted = new Int32Array(n);
  let features = new Float32Array(0);
  let fd = 0;
  for (let s = 0; s < n; s += batch) {
    const e = Math.min(n, s + batch);
    const [f, p] = tf.tidy(() => {
      const x = tf.tensor4d(images.subarray(s * per, e * per), [e - s, h, w, c]);
      const feats = j.net.features.forward(x);
      // the head on the same features (the network's forward recomputes them; same result)
      const logits = j.net.forward(x);
      return [feats, tf.argMax(logits, 1)] as const;
    });
    const fv = (await f.data()) as Float32Array;
    if (s === 0) {
      fd = f.shape[1];
      features = new Float32Array(n * fd);
    }
    features.set(fv, s * fd);
    predicted.set((await p.data()) as Int32Array, s);
    tf.dispose([f, p]);
  }
  return { predicted, features, featureDim: fd };
}

/** Accuracy of the judge on labelled images. */
export async function judgeAccuracy(j: Judge, images: Float32Array, labels: ArrayLike<number>, batch = 256): Promise<number> {
  const { predicted } = await judgeImages(j, images, labels.length, batch);
  let ok = 0;
  for (let i = 0; i < labels.length; i++) if (predicted[i] === labels[i]) ok++;
  return ok / labels.length;
}

export interface JudgeTrainOptions {
  epochs: number;
  batch: number;
  lr: number;
  seed: number;
  /** cosine decay of the learning rate to lr * minLrFraction over all steps (default 0.05) */
  minLrFraction?: number;
  /** random shifts of up to this many pixels (default 2; 0 = none) */
  shift?: number;
  log?: (s: string) => void;
  /** called after every epoch with its index (0-based) and mean loss */
  onEpoch?: (epoch: number, loss: number) => void;
  /** for tests: stop after this many steps */
  maxSteps?: number;
}

/** Shift an image [H, W, C] by (dy, dx) pixels, filling with the background (-1). */
function shiftInto(src: Float32Array, so: number, dst: Float32Array, d0: number, h: number, w: number, c: number, dy: number, dx: number): void {
  for (let y = 0; y < h; y++) {
    const sy = y - dy;
    for (let x = 0; x < w; x++) {
      const sx = x - dx;
      const o = d0 + (y * w + x) * c;
      if (sy < 0 || sy >= h || sx < 0 || sx >= w) for (let k = 0; k < c; k++) dst[o + k] = -1;
      else for (let k = 0; k < c; k++) dst[o + k] = src[so + (sy * w + sx) * c + k];
    }
  }
}

/**
 * Train the judge with Adam and softmax cross-entropy on labelled images (row-major [n, H, W, C]),
 * seeded: the data order and shifts come from `seed`. Returns the mean loss of the last epoch.
 */
export async function trainJudge(j: Judge, images: Float32Array, labels: ArrayLike<number>, o: JudgeTrainOptions): Promise<{ steps: number; lastEpochLoss: number }> {
  const log = o.log ?? (() => {});
  const [h, w, c] = j.dims;
  const per = h * w * c;
  const n = labels.length;
  const vars = [...j.store.vars.entries()];
  const adam = new Adam(vars, { lr: o.lr });
  const rng = new Rng(o.seed);
  const stepsPerEpoch = Math.floor(n / o.batch);
  const total = o.maxSteps ?? stepsPerEpoch * o.epochs;
  const minFrac = o.minLrFraction ?? 0.05;
  const shift = o.shift ?? 2;
  const xb = new Float32Array(o.batch * per);
  const yb = new Int32Array(o.batch);
  let step = 0;
  let lastEpochLoss = NaN;
  for (let epoch = 0; epoch < o.epochs && step < total; epoch++) {
    const order = Int32Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const k = rng.int(i + 1);
      [order[i], order[k]] = [order[k], order[i]];
    }
    let sum = 0;
    let count = 0;
    const t0 = performance.now();
    for (let s = 0; s < stepsPerEpoch && step < total; s++) {
      for (let b = 0; b < o.batch; b++) {
        const idx = order[s * o.batch + b];
        yb[b] = labels[idx];
        const dy = shift ? rng.int(2 * shift + 1) - shift : 0;
        const dx = shift ? rng.int(2 * shift + 1) - shift : 0;
        shiftInto(images, idx * per, xb, b * per, h, w, c, dy, dx);
      }
      adam.lr = o.lr * (minFrac + (1 - minFrac) * 0.5 * (1 + Math.cos((Math.PI * step) / total)));
      const { value, grads } = tf.variableGrads(() =>
        tf.tidy(() => {
          const logits = j.net.forward(tf.tensor4d(xb, [o.batch, h, w, c]));
          return tf.losses.softmaxCrossEntropy(tf.oneHot(tf.tensor1d(yb, "int32"), j.classes), logits) as tf.Scalar;
        }),
      );
      const named = new Map<string, tf.Tensor>(vars.map(([name, v]) => [name, grads[v.name]]));
      adam.step(named);
      tf.dispose(Object.values(grads));
      sum += (await value.data())[0];
      value.dispose();
      count++;
      step++;
      if (step % 50 === 0) log(`  epoch ${epoch + 1} step ${step}/${total}: loss ${(sum / count).toFixed(4)}, ${((performance.now() - t0) / 1000 / count).toFixed(3)} s/step`);
    }
    lastEpochLoss = sum / Math.max(1, count);
    o.onEpoch?.(epoch, lastEpochLoss);
  }
  adam.dispose();
  return { steps: step, lastEpochLoss };
}
