/**
 * Sampling a rectified flow: integrate the probability-flow ODE from pure noise (sigma = 1)
 * to data (sigma = 0) over the schedule of `samplingSigmas`, with Euler or Heun steps.
 *
 * The network is called with its own time t (`networkTime`) and returns a velocity d x / d t in
 * that time; the integrator works in sigma, using d x / d sigma = velocitySign(cfg) * velocity.
 *
 * One integrator (`integrateFlow`) and one classifier-free-guidance layout (`guidanceRows`,
 * `guidedVelocity`) serve both engines: the tfjs engine drives it synchronously on tensors
 * (`sampleFlow`), the static engine asynchronously on host arrays with its compiled forward pass
 * (runtime/engines/static/sampler.ts).
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

/** How the integrator computes with its states: tfjs tensors (sampleFlow) or host arrays (the static engine). */
export interface FlowArith<X> {
  /** x + d * h */
  euler(x: X, d: X, h: number): X;
  /** x + (d1 + d2) * (h / 2): Heun's trapezoidal corrector */
  trapezoid(x: X, d1: X, d2: X, h: number): X;
  /** drop an intermediate state or slope (tensors are disposed); absent: nothing to free */
  release?(x: X): void;
}

/** What the integrator asks of its driver: the slope d x / d sigma at state x and noise level sigma. */
export interface SlopeRequest<X> {
  x: X;
  sigma: number;
}

/** The integration a config and its overrides ask for: the sigmas from 1 down to 0 and the method. */
export interface FlowIntegration {
  steps: number;
  sampler: "euler" | "heun";
  sigmas: ArrayLike<number>;
}

/** The integration of `cfg` with `opts`' overrides of steps, sampler and shift, checked. */
export function flowIntegration(cfg: FlowConfig, opts: Pick<SampleOptions, "steps" | "sampler" | "shift"> = {}): FlowIntegration {
  const steps = opts.steps ?? cfg.steps;
  const shift = opts.shift ?? cfg.shift;
  const sampler = opts.sampler ?? cfg.sampler;
  if (sampler !== "euler" && sampler !== "heun") throw new RangeError(`sampleFlow: sampler must be "euler" or "heun", got ${String(sampler)}`);
  return { steps, sampler, sigmas: samplingSigmas({ steps, shift }) };
}

/**
 * Integrate from z (sigma = 1) to a sample (sigma = 0) with Euler or Heun steps, as a generator:
 * it yields each slope it needs and is resumed with that slope, so the same steps serve a
 * synchronous driver (`driveSync`, tfjs tensors) and an asynchronous one (`driveAsync`, the static
 * engine's compiled forward pass). Heun is the 2nd-order trapezoidal corrector; its last step,
 * which lands on sigma = 0, is a plain Euler step (as in Karras et al. 2022), so a Heun run with
 * N steps asks for 2N - 1 slopes. Intermediates go to `arith.release`; z is not released.
 * `onStep(i, sigma, sigmaNext, x)` runs after step i with the new state.
 */
export function* integrateFlow<X>(arith: FlowArith<X>, z: X, plan: FlowIntegration, onStep?: (step: number, sigma: number, sigmaNext: number, x: X) => void): Generator<SlopeRequest<X>, X, X> {
  let x = z;
  for (let i = 0; i < plan.steps; i++) {
    const s = plan.sigmas[i];
    const sNext = plan.sigmas[i + 1];
    const h = sNext - s;
    const prev = x;
    const d = yield { x: prev, sigma: s };
    const euler = arith.euler(prev, d, h);
    if (plan.sampler === "euler" || sNext === 0) x = euler;
    else {
      const d2 = yield { x: euler, sigma: sNext };
      x = arith.trapezoid(prev, d, d2, h);
      arith.release?.(euler);
      arith.release?.(d2);
    }
    arith.release?.(d);
    if (prev !== z) arith.release?.(prev);
    onStep?.(i, s, sNext, x);
  }
  return x;
}

/** Run an integration whose slopes are computed synchronously. */
export function driveSync<X>(g: Generator<SlopeRequest<X>, X, X>, slope: (x: X, sigma: number) => X): X {
  let r = g.next();
  while (!r.done) r = g.next(slope(r.value.x, r.value.sigma));
  return r.value;
}

/** Run an integration whose slopes are computed asynchronously (one at a time, in order). */
export async function driveAsync<X>(g: Generator<SlopeRequest<X>, X, X>, slope: (x: X, sigma: number) => Promise<X>): Promise<X> {
  let r = g.next();
  while (!r.done) r = g.next(await slope(r.value.x, r.value.sigma));
  return r.value;
}

/**
 * The prompt rows a guided sampler evaluates at each slope: the prompts, then as many empty
 * prompts (the unconditional velocity, the null class) when the scale is neither 1 (conditional
 * only) nor 0 (only the empty prompts). `both`: the velocity of row i is guided with row B + i.
 */
export function guidanceRows(prompts: readonly string[], scale: number): { rows: string[]; both: boolean } {
  const both = scale !== 1 && scale !== 0;
  const empty = new Array<string>(prompts.length).fill("");
  return { rows: both ? [...prompts, ...empty] : scale === 0 ? empty : [...prompts], both };
}

/** Host arrays: the arithmetic of the static engine's sampler (each value computed in double, stored as float32). */
export const HOST_ARITH: FlowArith<Float32Array> = {
  euler: (x, d, h) => x.map((xv, j) => xv + d[j] * h),
  trapezoid: (x, d1, d2, h) => x.map((xv, j) => xv + (d1[j] + d2[j]) * (h / 2)),
};

/** tfjs tensors: each result made in a tf.tidy, intermediates disposed. */
const TENSOR_ARITH: FlowArith<tf.Tensor> = {
  euler: (x, d, h) => tf.tidy(() => tf.add(x, tf.mul(d, h))),
  trapezoid: (x, d1, d2, h) => tf.tidy(() => tf.add(x, tf.mul(tf.add(d1, d2), h / 2))),
  release: (x) => x.dispose(),
};

/**
 * Integrate from the noise z (sigma = 1) to a sample (sigma = 0) on tfjs tensors (integrateFlow).
 * `opts` overrides the config's steps, sampler and shift. Every intermediate tensor is disposed
 * (velocity's own intermediates included, as each slope runs in a tf.tidy); z is not disposed.
 * The caller owns the result.
 */
export function sampleFlow(velocity: VelocityFn, z: tf.Tensor, cfg: FlowConfig, opts: SampleOptions = {}): tf.Tensor {
  if (typeof velocity !== "function") throw new TypeError(`sampleFlow: velocity must be a function, got ${typeof velocity}`);
  if (z.rank < 1) throw new RangeError(`sampleFlow: z must have a batch axis, got shape [${z.shape}]`);
  const plan = flowIntegration(cfg, opts);
  const sign = velocitySign(cfg);
  const b = z.shape[0];
  const slope = (x: tf.Tensor, sigma: number): tf.Tensor =>
    tf.tidy(() => {
      const t = tf.fill([b], networkTime(cfg, sigma), "float32") as tf.Tensor1D;
      const v = velocity(x, t, sigma);
      if (!tf.util.arraysEqual(v.shape, x.shape)) {
        throw new RangeError(`sampleFlow: velocity returned shape [${v.shape}], expected [${x.shape}]`);
      }
      return sign === 1 ? v : tf.neg(v);
    });
  const onStep = opts.onStep;
  const x = driveSync(integrateFlow(TENSOR_ARITH, z, plan, onStep && ((step, sigma, sigmaNext, x) => onStep({ step, steps: plan.steps, sigma, sigmaNext, x }))), slope);
  return x === z ? z.clone() : x;
}
