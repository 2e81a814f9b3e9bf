/**
 * What a network is conditioned on, from a batch's prompts: the spec's `inputs` section names a
 * source for each forward input (ir.network.inputs[i].source), and this module makes the tensors
 * for the conditioning sources — the text encoder's tokens and pooled vector, the tokens' padding
 * mask, the class label — and puts them with x_t and t in the forward's order. Both engines use
 * it (the tfjs trainer and sampler here; the static step feeds the same arrays), so the one
 * mapping from prompts to inputs is defined once.
 *
 * Labels come from digit prompts ("7" or "seven" -> 7); the empty prompt (dropped for CFG, and
 * the unconditional half of guidance) is the null class `classes`.
 */
import * as tf from "@tensorflow/tfjs";
import { inputSources, type InputSource, type IR } from "../../ir/ir.ts";
import { DataError } from "../data/dataset.ts";
import { DIGIT_WORDS } from "../data/mnist.ts";
import { DEFAULT_SIGMA_FLOOR, velocitySign } from "../flow/schedule.ts";

/** A conditioning source: what the prompts give, besides the image and the timestep. */
export type CondSource = Exclude<InputSource, "image" | "timestep">;

/** The conditioning tensors for a batch, by source (only the ones the network takes). */
export type CondTensors = Partial<Record<CondSource, tf.Tensor>>;

/** The conditioning as host arrays (the static engine's feeds). */
export interface CondArrays {
  /** token ids [B, T] (learned text encoder) */
  ids?: Int32Array | number[];
  /** frozen encoders' features */
  context?: Float32Array;
  pooled?: Float32Array;
  /** [B, T]: 1 for a prompt token, 0 for padding */
  mask?: Float32Array;
  /** [B] class labels, `classes` = the null class */
  labels?: Int32Array;
}

/** The sources of the network's inputs, in the forward's order. */
export function networkSources(ir: Pick<IR, "network" | "task">): InputSource[] {
  return inputSources(ir);
}

/** Whether the network takes the text encoder's output (context or pooled). */
export function usesTextFeatures(ir: Pick<IR, "network" | "task">): boolean {
  return networkSources(ir).some((s) => s === "context" || s === "pooled");
}

/** The class of a digit prompt ("7", "seven" -> 7); "" is the null class `classes`. */
export function promptLabel(prompt: string, classes: number): number {
  const p = prompt.trim().toLowerCase();
  if (p === "") return classes;
  const d = /^[0-9]$/.test(p) ? Number(p) : DIGIT_WORDS.indexOf(p);
  if (d < 0 || d >= classes) throw new DataError(`the prompt ${JSON.stringify(prompt)} is not a class of this spec: its network is conditioned on a label (0..${classes - 1}, as a numeral or an English number word)`);
  return d;
}

/** Labels [B] for prompts. */
export function promptLabels(prompts: readonly string[], classes: number): Int32Array {
  return Int32Array.from(prompts, (p) => promptLabel(p, classes));
}

/** The padding mask [B, T] of token ids (PAD = 0): 1 for a token, 0 for padding. */
export function tokenMask(ids: ArrayLike<number>): Float32Array {
  const m = new Float32Array(ids.length);
  for (let i = 0; i < ids.length; i++) m[i] = ids[i] === 0 ? 0 : 1;
  return m;
}

/** The null class of a labelled spec (its class count), or 0 when the data has no labels. */
export function nullClass(ir: Pick<IR, "data">): number {
  return ir.data.classes ?? 0;
}

/**
 * The network's arguments in its forward's order: x_t [B, H, W, C], t [B], and the conditioning
 * tensors of `cond` for the other sources.
 */
export function networkArgs(sources: readonly InputSource[], x: tf.Tensor, t: tf.Tensor, cond: CondTensors): tf.Tensor[] {
  return sources.map((s) => {
    if (s === "image") return x;
    if (s === "timestep") return t;
    const v = cond[s];
    if (!v) throw new Error(`internal: no ${s} tensor for the network`);
    return v;
  });
}

/**
 * The velocity part of a network's output: all of it, or with `flow.output: velocity_variance`
 * the first half of the channels (the rest are learned-variance channels the flow ignores).
 */
export function velocityPart(ir: Pick<IR, "flow">, out: tf.Tensor4D): tf.Tensor4D {
  if (ir.flow.output !== "velocity_variance") return out;
  const c = out.shape[3] / 2;
  return tf.slice(out, [0, 0, 0, 0], [-1, -1, -1, c]);
}

/**
 * The velocity a network's output stands for at x [B, H, W, C] and network times t [B]: its
 * velocity part, and with `flow.predict: data` that part read as the clean image x0_hat and
 * turned into -velocitySign * (x0_hat - x) / max(sigma, floor) (runtime/flow/schedule.ts
 * `dataVelocity`; the static engine traces the same rule).
 */
export function outputVelocity(ir: Pick<IR, "flow">, out: tf.Tensor4D, x: tf.Tensor, t: tf.Tensor): tf.Tensor4D {
  const v = velocityPart(ir, out);
  if (ir.flow.predict !== "data") return v;
  return tf.tidy(() => {
    const sigma = ir.flow.noiseAt === 1 ? t : tf.sub(1, t); // [B]
    const s = tf.reshape(tf.maximum(sigma, ir.flow.sigmaFloor ?? DEFAULT_SIGMA_FLOOR), [-1, 1, 1, 1]); // [B, 1, 1, 1]
    return tf.div(tf.mul(tf.sub(v, x), -velocitySign(ir.flow)), s) as tf.Tensor4D; // [B, H, W, C]
  });
}
