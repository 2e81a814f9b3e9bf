/**
 * The rectified-flow schedule (Liu et al. 2022; Esser et al. 2024, "Scaling Rectified Flow
 * Transformers", the SD3 paper), driven by a config object from the model spec.
 *
 * Internally everything is expressed in the NOISE LEVEL sigma in [0, 1]:
 *   sigma = 0 is data, sigma = 1 is pure noise, and
 *   x_sigma = (1 - sigma) * x0 + sigma * eps,   eps ~ N(0, I).
 * The SD3 paper defines its timestep densities in this variable, and so do we.
 *
 * The NETWORK's time t follows the declared convention `noiseAt`:
 *   noiseAt = 1 (SD3 paper):        t = sigma,      x_t = (1 - t) x0 + t eps,  velocity = dx_t/dt = eps - x0
 *   noiseAt = 0 (reference lesson): t = 1 - sigma,  x_t = t x0 + (1 - t) eps,  velocity = dx_t/dt = x0 - eps
 * "velocity" always means d x_t / d t in the network's own time, so the sign of the target
 * flips with the convention. The densities below are SAMPLING densities for sigma during
 * training (how often each noise level is visited), not loss weights; loss weights are
 * `lossWeight`.
 */
import * as tf from "@tensorflow/tfjs";
import type { Rng } from "../util/rng.ts";

/** Training-time density of the noise level sigma (see `sampleSigmas` for the exact formulas). */
export type Density =
  | { kind: "uniform" }
  | { kind: "uniform_clipped"; eps: number }
  | { kind: "logit_normal"; m: number; s: number }
  | { kind: "mode"; s: number }
  | { kind: "cosmap" };

/**
 * Per-sample weights of the velocity MSE (see `lossWeight`):
 * - "none": 1 (plain rectified-flow velocity loss, SD3's choice).
 * - "x0": sigma^2, which makes the velocity MSE equal to the MSE of the implied data prediction
 *   x0_hat = x_sigma - sigma * v_hat (in SD3's sign convention).
 * - "eps": (1 - sigma)^2, which makes it equal to the MSE of the implied noise prediction
 *   eps_hat = x_sigma + (1 - sigma) * v_hat.
 * - "snr_clip": min(1, snrGamma / snr) with snr = ((1 - sigma) / sigma)^2: a Min-SNR-style clip
 *   (Hang et al. 2023) that down-weights the low-noise samples whose signal-to-noise ratio
 *   exceeds `snrGamma` (default 5); samples with snr <= gamma keep weight 1.
 */
export type Weighting = "none" | "x0" | "eps" | "snr_clip";

export interface FlowConfig {
  /**
   * Which end of the network's time t is pure noise: 0 (reference lesson: t = 1 is data,
   * x_t = t*x0 + (1-t)*eps) or 1 (SD3 paper: x_t = (1-t)*x0 + t*eps).
   */
  noiseAt: 0 | 1;
  path: "linear";
  /** what the network returns: the velocity, or the clean image x0 ("data"; see `dataVelocity`) */
  predict: "velocity" | "data";
  /** predict "data": the least noise level the velocity divides by (absent: 0.05) */
  sigmaFloor?: number;
  density: Density;
  loss: "mse";
  /** Loss weighting; "none" by default. */
  weighting: Weighting;
  /** gamma for weighting "snr_clip" (default 5). */
  snrGamma?: number;
  /** Probability of dropping the condition during training (classifier-free guidance). */
  cfgDrop: number;
  sampler: "euler" | "heun";
  /** Number of integration steps at sampling time. */
  steps: number;
  /** Timestep shift at sampling time (SD3 eq. 23); 1 = no shift. */
  shift: number;
  /** Classifier-free guidance scale at sampling time (1 = conditional only, 0 = unconditional only). */
  guidance: number;
  /** the noise levels sigma [lo, hi] where guidance applies (absent: every step); outside, scale 1 */
  guidanceInterval?: [number, number];
}

/** A FlowConfig with the defaults filled in; handy for tests and specs that omit fields. */
export function flowConfig(partial: Partial<FlowConfig> = {}): FlowConfig {
  const cfg: FlowConfig = {
    noiseAt: 1,
    path: "linear",
    predict: "velocity",
    density: { kind: "logit_normal", m: 0, s: 1 },
    loss: "mse",
    weighting: "none",
    cfgDrop: 0.1,
    sampler: "euler",
    steps: 28,
    shift: 1,
    guidance: 1,
    ...partial,
  };
  validateFlowConfig(cfg);
  return cfg;
}

function finite(name: string, v: unknown): asserts v is number {
  if (typeof v !== "number" || !Number.isFinite(v)) throw new RangeError(`${name} must be a finite number, got ${String(v)}`);
}

/** Throws a RangeError naming the field and value of the first invalid setting. */
export function validateDensity(d: Density): void {
  if (d === null || typeof d !== "object") throw new RangeError(`density must be an object, got ${String(d)}`);
  switch (d.kind) {
    case "uniform":
    case "cosmap":
      return;
    case "uniform_clipped":
      finite("density.eps", d.eps);
      if (d.eps < 0 || d.eps >= 1) throw new RangeError(`density.eps must be in [0, 1), got ${d.eps}`);
      return;
    case "logit_normal":
      finite("density.m", d.m);
      finite("density.s", d.s);
      if (d.s <= 0) throw new RangeError(`density.s must be > 0 for logit_normal, got ${d.s}`);
      return;
    case "mode": {
      finite("density.s", d.s);
      // The map u -> sigma is monotone (a valid inverse CDF) only for -1 <= s <= 2/(pi-2).
      const hi = 2 / (Math.PI - 2);
      if (d.s < -1 || d.s > hi) throw new RangeError(`density.s must be in [-1, ${hi.toFixed(4)}] for mode, got ${d.s}`);
      return;
    }
    default:
      throw new RangeError(`density.kind must be one of uniform, uniform_clipped, logit_normal, mode, cosmap, got ${String((d as { kind: unknown }).kind)}`);
  }
}

export function validateFlowConfig(cfg: FlowConfig): void {
  if (cfg.noiseAt !== 0 && cfg.noiseAt !== 1) throw new RangeError(`noiseAt must be 0 or 1, got ${String(cfg.noiseAt)}`);
  if (cfg.path !== "linear") throw new RangeError(`path must be "linear", got ${String(cfg.path)}`);
  if (cfg.predict !== "velocity" && cfg.predict !== "data") throw new RangeError(`predict must be "velocity" or "data", got ${String(cfg.predict)}`);
  if (cfg.sigmaFloor !== undefined) {
    finite("sigmaFloor", cfg.sigmaFloor);
    if (!(cfg.sigmaFloor > 0 && cfg.sigmaFloor <= 1)) throw new RangeError(`sigmaFloor must be in (0, 1], got ${cfg.sigmaFloor}`);
  }
  if (cfg.loss !== "mse") throw new RangeError(`loss must be "mse", got ${String(cfg.loss)}`);
  if (!["none", "x0", "eps", "snr_clip"].includes(cfg.weighting)) throw new RangeError(`weighting must be one of none, x0, eps, snr_clip, got ${String(cfg.weighting)}`);
  if (cfg.snrGamma !== undefined) {
    finite("snrGamma", cfg.snrGamma);
    if (cfg.snrGamma <= 0) throw new RangeError(`snrGamma must be > 0, got ${cfg.snrGamma}`);
  }
  validateDensity(cfg.density);
  finite("cfgDrop", cfg.cfgDrop);
  if (cfg.cfgDrop < 0 || cfg.cfgDrop > 1) throw new RangeError(`cfgDrop must be in [0, 1], got ${cfg.cfgDrop}`);
  if (cfg.sampler !== "euler" && cfg.sampler !== "heun") throw new RangeError(`sampler must be "euler" or "heun", got ${String(cfg.sampler)}`);
  if (!Number.isInteger(cfg.steps) || cfg.steps < 1) throw new RangeError(`steps must be a positive integer, got ${cfg.steps}`);
  finite("shift", cfg.shift);
  if (cfg.shift <= 0) throw new RangeError(`shift must be > 0, got ${cfg.shift}`);
  finite("guidance", cfg.guidance);
  if (cfg.guidanceInterval !== undefined) checkGuidanceInterval(cfg.guidanceInterval);
}

/** [lo, hi] with 0 <= lo <= hi <= 1, else a RangeError. */
export function checkGuidanceInterval(iv: readonly number[]): void {
  if (!Array.isArray(iv) || iv.length !== 2 || !iv.every((x) => typeof x === "number" && x >= 0 && x <= 1) || iv[0] > iv[1]) throw new RangeError(`the guidance interval must be [lo, hi] with 0 <= lo <= hi <= 1 (noise levels), got ${JSON.stringify(iv)}`);
}

/**
 * Draw n noise levels sigma from the density, all from `rng` (one uniform or one normal each):
 * - uniform:              sigma = u, u ~ U[0, 1).
 * - uniform_clipped(eps): the reference lesson draws its own time t ~ U[eps, 1) with t = 1 the data
 *                         end, so sigma = 1 - t = (1 - eps) * (1 - u) lies in (0, 1 - eps]: the clip
 *                         keeps sigma away from pure noise (and, by the half-open interval, off 0).
 *                         The clip is defined in sigma, whatever `noiseAt` the network uses.
 * - logit_normal(m, s):   sigma = sigmoid(m + s * n), n ~ N(0, 1)  (SD3 eq. 19).
 * - mode(s):              sigma = 1 - u - s * (cos^2(pi u / 2) - 1 + u)  (SD3 eq. 20).
 * - cosmap:               sigma = 1 - 1 / (tan(pi u / 2) + 1)  (SD3 eq. 21).
 */
export function sampleSigmas(density: Density, n: number, rng: Rng): Float32Array {
  validateDensity(density);
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`sampleSigmas: n must be a non-negative integer, got ${n}`);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = sigmaFromDraw(density, rng);
  return out;
}

function sigmaFromDraw(d: Density, rng: Rng): number {
  switch (d.kind) {
    case "uniform":
      return rng.uniform();
    case "uniform_clipped":
      return (1 - d.eps) * (1 - rng.uniform());
    case "logit_normal":
      return 1 / (1 + Math.exp(-(d.m + d.s * rng.normal())));
    case "mode": {
      const u = rng.uniform();
      const c = Math.cos((Math.PI * u) / 2);
      return Math.min(1, Math.max(0, 1 - u - d.s * (c * c - 1 + u)));
    }
    case "cosmap": {
      const u = rng.uniform();
      return 1 - 1 / (Math.tan((Math.PI * u) / 2) + 1);
    }
  }
}

/** The network's input time for noise level(s) sigma: sigma if noiseAt = 1, 1 - sigma if noiseAt = 0. */
export function networkTime(cfg: Pick<FlowConfig, "noiseAt">, sigma: number): number;
export function networkTime(cfg: Pick<FlowConfig, "noiseAt">, sigma: Float32Array): Float32Array;
export function networkTime(cfg: Pick<FlowConfig, "noiseAt">, sigma: number | Float32Array): number | Float32Array {
  if (cfg.noiseAt !== 0 && cfg.noiseAt !== 1) throw new RangeError(`noiseAt must be 0 or 1, got ${String(cfg.noiseAt)}`);
  if (typeof sigma === "number") return cfg.noiseAt === 1 ? sigma : 1 - sigma;
  return cfg.noiseAt === 1 ? Float32Array.from(sigma) : sigma.map((s) => 1 - s);
}

/** The least noise level a data prediction's velocity divides by (`predict: data`). */
export const DEFAULT_SIGMA_FLOOR = 0.05;

/**
 * The velocity (in the network's time) implied by a data prediction x0_hat at x_t and noise level
 * sigma: x_t = (1 - sigma) x0 + sigma eps gives d x / d sigma = eps - x0 = (x_t - x0) / sigma, so the
 * velocity is -velocitySign(cfg) * (x0_hat - x_t) / max(sigma, floor). The scalar rule both engines
 * trace elementwise (JiT's x-prediction: the network outputs a clean image, the loss stays on v).
 */
export function dataVelocity(cfg: Pick<FlowConfig, "noiseAt" | "sigmaFloor">, x0hat: number, xt: number, sigma: number): number {
  return (-velocitySign(cfg) * (x0hat - xt)) / Math.max(sigma, cfg.sigmaFloor ?? DEFAULT_SIGMA_FLOOR);
}

/**
 * d x / d sigma = `velocitySign(cfg)` * velocity, for a velocity in the network's time
 * (+1 when t = sigma, -1 when t = 1 - sigma).
 */
export function velocitySign(cfg: Pick<FlowConfig, "noiseAt">): 1 | -1 {
  return cfg.noiseAt === 1 ? 1 : -1;
}

/**
 * The training input and target for a batch: x0 and eps of shape [B, ...], sigma of length B.
 * Returns xt = (1 - sigma) x0 + sigma eps (sigma broadcast over the non-batch axes), the
 * network time t [B] and the velocity target (eps - x0 if noiseAt = 1, x0 - eps if noiseAt = 0).
 * The caller owns (and disposes) the three returned tensors.
 */
export function trainingPair(
  cfg: Pick<FlowConfig, "noiseAt">,
  x0: tf.Tensor,
  eps: tf.Tensor,
  sigma: Float32Array,
): { xt: tf.Tensor; t: tf.Tensor1D; target: tf.Tensor } {
  if (cfg.noiseAt !== 0 && cfg.noiseAt !== 1) throw new RangeError(`noiseAt must be 0 or 1, got ${String(cfg.noiseAt)}`);
  if (x0.rank < 1) throw new RangeError(`trainingPair: x0 must have a batch axis, got shape [${x0.shape}]`);
  if (!tf.util.arraysEqual(x0.shape, eps.shape)) throw new RangeError(`trainingPair: eps shape [${eps.shape}] must equal x0 shape [${x0.shape}]`);
  const b = x0.shape[0];
  if (sigma.length !== b) throw new RangeError(`trainingPair: sigma has length ${sigma.length}, expected the batch size ${b}`);
  for (let i = 0; i < b; i++) {
    if (!(sigma[i] >= 0 && sigma[i] <= 1)) throw new RangeError(`trainingPair: sigma[${i}] must be in [0, 1], got ${sigma[i]}`);
  }
  return tf.tidy(() => {
    const bshape = [b, ...new Array<number>(x0.rank - 1).fill(1)];
    const s = tf.tensor(sigma, bshape, "float32");
    const xt = tf.add(tf.mul(tf.sub(1, s), x0), tf.mul(s, eps));
    const target = cfg.noiseAt === 1 ? tf.sub(eps, x0) : tf.sub(x0, eps);
    const t = tf.tensor1d(networkTime(cfg, sigma), "float32");
    return { xt, t, target };
  });
}

/** Per-sample weights of the velocity MSE for noise levels sigma (see `Weighting`). */
export function lossWeight(cfg: Pick<FlowConfig, "weighting" | "snrGamma">, sigma: Float32Array): Float32Array {
  const w = new Float32Array(sigma.length);
  const gamma = cfg.snrGamma ?? 5;
  for (let i = 0; i < sigma.length; i++) {
    const s = sigma[i];
    if (!(s >= 0 && s <= 1)) throw new RangeError(`lossWeight: sigma[${i}] must be in [0, 1], got ${s}`);
    switch (cfg.weighting) {
      case "none":
        w[i] = 1;
        break;
      case "x0":
        w[i] = s * s;
        break;
      case "eps":
        w[i] = (1 - s) * (1 - s);
        break;
      case "snr_clip": {
        // min(1, gamma / snr) = min(1, gamma * sigma^2 / (1 - sigma)^2); snr = 0 at sigma = 1.
        const q = 1 - s;
        w[i] = q === 0 ? 1 : Math.min(1, (gamma * s * s) / (q * q));
        break;
      }
      default:
        throw new RangeError(`weighting must be one of none, x0, eps, snr_clip, got ${String(cfg.weighting)}`);
    }
  }
  return w;
}

/** The SD3 timestep shift (eq. 23): shift * sigma / (1 + (shift - 1) * sigma). Fixes 0 and 1. */
export function shiftSigma(sigma: number, shift: number): number {
  if (!Number.isFinite(shift) || shift <= 0) throw new RangeError(`shiftSigma: shift must be a finite number > 0, got ${shift}`);
  return (shift * sigma) / (1 + (shift - 1) * sigma);
}

/**
 * The sampling schedule: steps + 1 noise levels from 1 down to 0, evenly spaced then shifted
 * by `shiftSigma(., cfg.shift)`; the one place the shift is applied.
 */
export function samplingSigmas(cfg: Pick<FlowConfig, "steps" | "shift">): Float32Array {
  if (!Number.isInteger(cfg.steps) || cfg.steps < 1) throw new RangeError(`samplingSigmas: steps must be a positive integer, got ${cfg.steps}`);
  if (!Number.isFinite(cfg.shift) || cfg.shift <= 0) throw new RangeError(`samplingSigmas: shift must be a finite number > 0, got ${cfg.shift}`);
  const out = new Float32Array(cfg.steps + 1);
  for (let i = 0; i <= cfg.steps; i++) out[i] = shiftSigma(1 - i / cfg.steps, cfg.shift);
  out[0] = 1;
  out[cfg.steps] = 0;
  return out;
}
