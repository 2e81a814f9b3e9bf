/**
 * Sampling a rectified flow: integrate the probability-flow ODE from pure noise (sigma = 1)
 * to data (sigma = 0) over the schedule of `samplingSigmas`, with Euler or Heun steps.
 *
 * The network is called with its own time t (`networkTime`) and returns a velocity d x / d t in
 * that time; the integrator works in sigma, using d x / d sigma = velocitySign(cfg) * velocity.
 */
import * as tf from "@tensorflow/tfjs";
import { type FlowConfig, networkTime, samplingSigmas, velocitySign } from "./schedule.ts";

/** A velocity model: x [B, ...] and the network time t [B] in, d x / d t [B, ...] out. */
/** The velocity at x and network time t; sigma is the noise level t stands for (1 = noise, 0 = data). */
export type VelocityFn = (x: tf.Tensor, t: tf.Tensor1D, sigma: number) => tf.Tensor;

/** The guidance scale at noise level sigma: `scale` inside the interval [lo, hi] (or with none), else 1 (the conditional velocity). */
export function guidanceAt(scale: number, sigma: number, interval?: readonly [number, number] | null): number {
  return !interval || (sigma >= interval[0] && sigma <= interval[1]) ? scale : 1;
}

export interface StepInfo {
  /** 0-based index of the step just taken. */
  step: number;
  steps: number;
  sigma: number;
  sigmaNext: number;
  /** The state after the step; owned by the sampler and disposed after the callback returns (clone to keep). */
  x: tf.Tensor;
}

export interface SampleOptions {
  steps?: number;
  sampler?: "euler" | "heun";
  shift?: number;
  onStep?: (info: StepInfo) => void;
}

/**
 * Classifier-free guidance: uncond + scale * (cond - uncond). Scale 1 gives the conditional
 * velocity, 0 the unconditional one. The caller owns the result.
 */
export function guidedVelocity(cond: tf.Tensor, uncond: tf.Tensor, scale: number): tf.Tensor {
  if (!Number.isFinite(scale)) throw new RangeError(`guidedVelocity: scale must be a finite number, got ${scale}`);
  if (!tf.util.arraysEqual(cond.shape, uncond.shape)) {
    throw new RangeError(`guidedVelocity: cond shape [${cond.shape}] must equal uncond shape [${uncond.shape}]`);
  }
  return tf.tidy(() => tf.add(uncond, tf.mul(tf.sub(cond, uncond), scale)));
}

/**
 * Integrate from the noise z (sigma = 1) to a sample (sigma = 0). `opts` overrides the config's
 * steps, sampler and shift. Heun is the 2nd-order trapezoidal corrector; its last step, which
 * lands on sigma = 0, is a plain Euler step (as in Karras et al. 2022), so a Heun run with N
 * steps makes 2N - 1 velocity calls. Every intermediate tensor is disposed (velocity's own
 * intermediates included, as each step runs in a tf.tidy); z is not disposed. The caller owns the result.
 */
export function sampleFlow(velocity: VelocityFn, z: tf.Tensor, cfg: FlowConfig, opts: SampleOptions = {}): tf.Tensor {
  if (typeof velocity !== "function") throw new TypeError(`sampleFlow: velocity must be a function, got ${typeof velocity}`);
  if (z.rank < 1) throw new RangeError(`sampleFlow: z must have a batch axis, got shape [${z.shape}]`);
  const steps = opts.steps ?? cfg.steps;
  const shift = opts.shift ?? cfg.shift;
  const sampler = opts.sampler ?? cfg.sampler;
  if (sampler !== "euler" && sampler !== "heun") throw new RangeError(`sampleFlow: sampler must be "euler" or "heun", got ${String(sampler)}`);
  const sigmas = samplingSigmas({ steps, shift });
  const sign = velocitySign(cfg);
  const b = z.shape[0];

  const dxds = (x: tf.Tensor, sigma: number): tf.Tensor => {
    const t = tf.fill([b], networkTime(cfg, sigma), "float32") as tf.Tensor1D;
    const v = velocity(x, t, sigma);
    if (!tf.util.arraysEqual(v.shape, x.shape)) {
      throw new RangeError(`sampleFlow: velocity returned shape [${v.shape}], expected [${x.shape}]`);
    }
    return sign === 1 ? v : tf.neg(v);
  };

  let x: tf.Tensor = z;
  for (let i = 0; i < steps; i++) {
    const s = sigmas[i];
    const sNext = sigmas[i + 1];
    const h = sNext - s;
    const prev = x;
    x = tf.tidy(() => {
      const d = dxds(prev, s);
      const euler = tf.add(prev, tf.mul(d, h));
      if (sampler === "euler" || sNext === 0) return euler;
      const d2 = dxds(euler, sNext);
      return tf.add(prev, tf.mul(tf.add(d, d2), h / 2));
    });
    if (prev !== z) prev.dispose();
    if (opts.onStep) opts.onStep({ step: i, steps, sigma: s, sigmaNext: sNext, x });
  }
  return x === z ? z.clone() : x;
}
