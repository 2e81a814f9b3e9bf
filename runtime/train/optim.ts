/**
 * Optimizers over named tf.Variables with PyTorch semantics: Adam / AdamW exactly as
 * torch.optim.Adam / torch.optim.AdamW (non-amsgrad, non-maximize), gradient clipping as
 * torch.nn.utils.clip_grad_norm_, and an exponential moving average of the weights.
 */
import * as tf from "@tensorflow/tfjs";

export type NamedVars = Map<string, tf.Variable> | [string, tf.Variable][];

export interface AdamOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** true: AdamW (decoupled decay p *= 1 - lr*wd); false: L2 decay added to the gradient (torch Adam). */
  decoupled?: boolean;
}

/** Most tensors summed by one tf.addN (a large addN made an invalid WebGPU pipeline). */
const ADDN_CHUNK = 4; // WebGPU AddN binds inputs + output as storage buffers: 8 per stage by default

function toMap(vars: NamedVars, who: string): Map<string, tf.Variable> {
  const m = new Map<string, tf.Variable>();
  const entries = vars instanceof Map ? [...vars.entries()] : vars;
  if (!Array.isArray(entries)) throw new TypeError(`${who}: vars must be a Map or an array of [name, variable] pairs`);
  for (const [name, v] of entries) {
    if (typeof name !== "string" || name.length === 0) throw new RangeError(`${who}: variable names must be non-empty strings, got ${String(name)}`);
    if (!(v instanceof tf.Variable)) throw new TypeError(`${who}: "${name}" is not a tf.Variable`);
    if (m.has(name)) throw new RangeError(`${who}: duplicate variable name "${name}"`);
    m.set(name, v);
  }
  return m;
}

function checkNumber(who: string, name: string, v: number, lo: number, hi: number, loOpen = false, hiOpen = false): void {
  const ok = Number.isFinite(v) && (loOpen ? v > lo : v >= lo) && (hiOpen ? v < hi : v <= hi);
  if (!ok) throw new RangeError(`${who}: ${name} must be in ${loOpen ? "(" : "["}${lo}, ${hi}${hiOpen ? ")" : "]"}, got ${v}`);
}

/** A non-trainable variable holding a copy of `init` (the temporary is freed, so nothing leaks). */
function stateVariable(init: () => tf.Tensor): tf.Variable {
  const t = init();
  const v = tf.variable(t, false);
  t.dispose();
  return v;
}

/** Sum a list of scalar tensors with tf.addN over chunks of at most 16 (a tree of sums). */
export function chunkedSum(xs: tf.Tensor[]): tf.Scalar {
  return tf.tidy(() => {
    if (xs.length === 0) return tf.scalar(0);
    let level: tf.Tensor[] = xs;
    while (level.length > 1) {
      const next: tf.Tensor[] = [];
      for (let i = 0; i < level.length; i += ADDN_CHUNK) {
        const chunk = level.slice(i, i + ADDN_CHUNK);
        next.push(chunk.length === 1 ? chunk[0] : tf.addN(chunk));
      }
      level = next;
    }
    return tf.reshape(level[0], []) as tf.Scalar;
  });
}

/**
 * Adam (Kingma & Ba) with torch.optim.Adam's bias correction:
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
 *   p -= lr * m_hat / (sqrt(v_hat) + eps),  m_hat = m / (1 - b1^t),  v_hat = v / (1 - b2^t).
 * weightDecay with decoupled = false adds wd * p to the gradient first (torch Adam); with
 * decoupled = true (AdamW) it multiplies p by 1 - lr * wd before the Adam update.
 * Every step must supply a gradient for every variable (the step count is shared).
 */
export class Adam {
  /** Learning rate; may be changed between steps (schedules). */
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  readonly decoupled: boolean;
  /** Number of steps taken (torch's per-parameter `step`, shared by all parameters here). */
  stepCount = 0;
  private readonly vars: Map<string, tf.Variable>;
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();
  private disposed = false;

  constructor(vars: NamedVars, opts: AdamOptions) {
    this.vars = toMap(vars, "Adam");
    const { lr, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0, decoupled = false } = opts ?? ({} as AdamOptions);
    checkNumber("Adam", "lr", lr, 0, Infinity, false, true);
    checkNumber("Adam", "beta1", beta1, 0, 1, false, true);
    checkNumber("Adam", "beta2", beta2, 0, 1, false, true);
    checkNumber("Adam", "eps", eps, 0, Infinity, false, true);
    checkNumber("Adam", "weightDecay", weightDecay, 0, Infinity, false, true);
    this.lr = lr;
    this.beta1 = beta1;
    this.beta2 = beta2;
    this.eps = eps;
    this.weightDecay = weightDecay;
    this.decoupled = decoupled;
    for (const [name, p] of this.vars) {
      this.m.set(name, stateVariable(() => tf.zerosLike(p)));
      this.v.set(name, stateVariable(() => tf.zerosLike(p)));
    }
  }

  /** Names of the optimized variables, in order. */
  names(): string[] {
    return [...this.vars.keys()];
  }

  /** One update. `grads` must hold exactly one tensor per variable, of its shape; they are not disposed. */
  step(grads: Map<string, tf.Tensor>): void {
    if (this.disposed) throw new Error("Adam.step: the optimizer has been disposed");
    checkNumber("Adam.step", "lr", this.lr, 0, Infinity, false, true);
    for (const name of grads.keys()) {
      if (!this.vars.has(name)) throw new RangeError(`Adam.step: gradient for unknown variable "${name}"`);
    }
    for (const [name, p] of this.vars) {
      const g = grads.get(name);
      if (!g) throw new RangeError(`Adam.step: missing gradient for variable "${name}"`);
      if (!tf.util.arraysEqual(g.shape, p.shape)) throw new RangeError(`Adam.step: gradient for "${name}" has shape [${g.shape}], expected [${p.shape}]`);
    }
    const t = this.stepCount + 1;
    const { beta1: b1, beta2: b2, eps, weightDecay: wd, lr } = this;
    const bc1 = 1 - b1 ** t;
    const bc2Sqrt = Math.sqrt(1 - b2 ** t);
    const stepSize = lr / bc1;
    tf.tidy(() => {
      for (const [name, p] of this.vars) {
        let g = grads.get(name)!;
        if (g.dtype !== "float32") g = tf.cast(g, "float32");
        const m = this.m.get(name)!;
        const v = this.v.get(name)!;
        let param: tf.Tensor = p;
        if (wd !== 0) {
          if (this.decoupled) param = tf.mul(p, 1 - lr * wd);
          else g = tf.add(g, tf.mul(p, wd));
        }
        const mNew = tf.add(tf.mul(m, b1), tf.mul(g, 1 - b1));
        const vNew = tf.add(tf.mul(v, b2), tf.mul(tf.square(g), 1 - b2));
        // torch: denom = sqrt(v) / sqrt(bc2) + eps;  p -= (lr / bc1) * m / denom
        const denom = tf.add(tf.div(tf.sqrt(vNew), bc2Sqrt), eps);
        const pNew = tf.sub(param, tf.mul(tf.div(mNew, denom), stepSize));
        m.assign(mNew);
        v.assign(vNew);
        p.assign(pNew);
      }
    });
    this.stepCount = t;
  }

  /** Copies of the state ("exp_avg.<name>", "exp_avg_sq.<name>"), owned by the caller. */
  stateTensors(): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    for (const name of this.vars.keys()) {
      out.set(`exp_avg.${name}`, this.m.get(name)!.clone());
      out.set(`exp_avg_sq.${name}`, this.v.get(name)!.clone());
    }
    return out;
  }

  /** Restore state written by `stateTensors` (values are copied; the inputs are not disposed). */
  loadState(tensors: Map<string, tf.Tensor>, stepCount: number): void {
    if (!Number.isInteger(stepCount) || stepCount < 0) throw new RangeError(`Adam.loadState: stepCount must be a non-negative integer, got ${stepCount}`);
    const expected = new Set<string>();
    for (const [name, p] of this.vars) {
      for (const key of [`exp_avg.${name}`, `exp_avg_sq.${name}`]) {
        expected.add(key);
        const t = tensors.get(key);
        if (!t) throw new RangeError(`Adam.loadState: missing state tensor "${key}"`);
        if (!tf.util.arraysEqual(t.shape, p.shape)) throw new RangeError(`Adam.loadState: "${key}" has shape [${t.shape}], expected [${p.shape}]`);
      }
    }
    for (const key of tensors.keys()) {
      if (!expected.has(key)) throw new RangeError(`Adam.loadState: unexpected state tensor "${key}"`);
    }
    tf.tidy(() => {
      for (const name of this.vars.keys()) {
        this.m.get(name)!.assign(tf.cast(tensors.get(`exp_avg.${name}`)!, "float32"));
        this.v.get(name)!.assign(tf.cast(tensors.get(`exp_avg_sq.${name}`)!, "float32"));
      }
    });
    this.stepCount = stepCount;
  }

  /** Free the state tensors (not the optimized variables). */
  dispose(): void {
    if (this.disposed) return;
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
    this.disposed = true;
  }
}

/**
 * torch.nn.utils.clip_grad_norm_: total = sqrt(sum of all squared entries);
 * coef = maxNorm / (total + 1e-6); the gradients are scaled by coef only when coef < 1.
 * Returns NEW tensors (clones when not scaled; the caller owns them and the inputs) and the
 * pre-clip norm. A non-finite norm leaves the gradients unscaled: check `norm` and skip the step.
 * Partial sums of squares are added with tf.addN in chunks of at most 16.
 */
export function clipByGlobalNorm(grads: Map<string, tf.Tensor>, maxNorm: number): { grads: Map<string, tf.Tensor>; norm: number } {
  if (!Number.isFinite(maxNorm) || maxNorm <= 0) throw new RangeError(`clipByGlobalNorm: maxNorm must be a finite number > 0, got ${maxNorm}`);
  const norm = tf.tidy(() => {
    const parts = [...grads.values()].map((g) => tf.sum(tf.square(tf.cast(g, "float32"))));
    return chunkedSum(parts).sqrt();
  });
  const total = norm.dataSync()[0];
  norm.dispose();
  const coef = maxNorm / (total + 1e-6);
  const out = new Map<string, tf.Tensor>();
  for (const [name, g] of grads) out.set(name, coef < 1 ? tf.tidy(() => tf.mul(g, coef)) : g.clone());
  return { grads: out, norm: total };
}

/**
 * Exponential moving average of the weights: shadow = decay * shadow + (1 - decay) * param,
 * starting from a copy of the params. Use `swap` (twice) or `copyTo` to sample with the averages.
 */
/**
 * clip_grad_norm_ without reading the norm back: the scale min(1, maxNorm / (norm + 1e-6)) is
 * applied on the device, so a GPU step never waits for the host. Returns new gradient tensors
 * (the caller disposes inputs and outputs) and the norm as a scalar tensor (read it later).
 */
export function clipByGlobalNormOnDevice(grads: Map<string, tf.Tensor>, maxNorm: number): { grads: Map<string, tf.Tensor>; norm: tf.Scalar } {
  if (!Number.isFinite(maxNorm) || maxNorm <= 0) throw new RangeError(`clipByGlobalNormOnDevice: maxNorm must be a finite number > 0, got ${maxNorm}`);
  const norm = tf.tidy(() => chunkedSum([...grads.values()].map((g) => tf.sum(tf.square(tf.cast(g, "float32"))))).sqrt()) as tf.Scalar;
  const coef = tf.tidy(() => tf.minimum(1, tf.div(maxNorm, tf.add(norm, 1e-6))));
  const out = new Map<string, tf.Tensor>();
  for (const [name, g] of grads) out.set(name, tf.mul(g, coef));
  coef.dispose();
  return { grads: out, norm };
}

export class Ema {
  readonly decay: number;
  /** Number of `update` calls. */
  updates = 0;
  private readonly vars: Map<string, tf.Variable>;
  private readonly shadow = new Map<string, tf.Variable>();
  private disposed = false;

  constructor(vars: NamedVars, decay: number) {
    this.vars = toMap(vars, "Ema");
    checkNumber("Ema", "decay", decay, 0, 1);
    this.decay = decay;
    for (const [name, p] of this.vars) this.shadow.set(name, stateVariable(() => p.clone()));
  }

  private live(who: string): void {
    if (this.disposed) throw new Error(`Ema.${who}: the EMA has been disposed`);
  }

  update(): void {
    this.live("update");
    const d = this.decay;
    tf.tidy(() => {
      for (const [name, p] of this.vars) {
        const s = this.shadow.get(name)!;
        s.assign(tf.add(tf.mul(s, d), tf.mul(p, 1 - d)));
      }
    });
    this.updates++;
  }

  private target(vars: NamedVars | undefined, who: string): Map<string, tf.Variable> {
    const m = vars === undefined ? this.vars : toMap(vars, who);
    for (const [name, v] of m) {
      const s = this.shadow.get(name);
      if (!s) throw new RangeError(`${who}: no average for variable "${name}"`);
      if (!tf.util.arraysEqual(s.shape, v.shape)) throw new RangeError(`${who}: "${name}" has shape [${v.shape}], expected [${s.shape}]`);
    }
    return m;
  }

  /** Write the averages into `vars` (default: the tracked variables). */
  copyTo(vars?: NamedVars): void {
    this.live("copyTo");
    const m = this.target(vars, "Ema.copyTo");
    for (const [name, v] of m) v.assign(this.shadow.get(name)!);
  }

  /** Exchange the values of `vars` (default: the tracked variables) and the averages; call again to undo. */
  swap(vars?: NamedVars): void {
    this.live("swap");
    const m = this.target(vars, "Ema.swap");
    tf.tidy(() => {
      for (const [name, v] of m) {
        const s = this.shadow.get(name)!;
        const keep = v.clone();
        v.assign(s);
        s.assign(keep);
      }
    });
  }

  /** Copies of the averages, keyed by variable name; owned by the caller. */
  tensors(): Map<string, tf.Tensor> {
    this.live("tensors");
    const out = new Map<string, tf.Tensor>();
    for (const [name, s] of this.shadow) out.set(name, s.clone());
    return out;
  }

  /** Restore averages written by `tensors` (copied; inputs not disposed). */
  load(tensors: Map<string, tf.Tensor>, updates = this.updates): void {
    this.live("load");
    if (!Number.isInteger(updates) || updates < 0) throw new RangeError(`Ema.load: updates must be a non-negative integer, got ${updates}`);
    for (const [name, s] of this.shadow) {
      const t = tensors.get(name);
      if (!t) throw new RangeError(`Ema.load: missing tensor "${name}"`);
      if (!tf.util.arraysEqual(t.shape, s.shape)) throw new RangeError(`Ema.load: "${name}" has shape [${t.shape}], expected [${s.shape}]`);
    }
    for (const name of tensors.keys()) if (!this.shadow.has(name)) throw new RangeError(`Ema.load: unexpected tensor "${name}"`);
    tf.tidy(() => {
      for (const [name, s] of this.shadow) s.assign(tf.cast(tensors.get(name)!, "float32"));
    });
    this.updates = updates;
  }

  dispose(): void {
    if (this.disposed) return;
    for (const s of this.shadow.values()) s.dispose();
    this.disposed = true;
  }
}
