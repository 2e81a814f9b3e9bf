/**
 * A multi-tensor optimizer: global-norm clipping, Adam/AdamW and the EMA over ONE flat buffer
 * instead of a dozen small ops per parameter tensor. A training step of the 64M-parameter MMDiT
 * has ~350 parameter tensors; per-tensor Adam + EMA + clipping costs ~7,000 kernel launches per
 * step, this costs ~20 plus one split and one assign per tensor. Same arithmetic as torch.optim.Adam
 * and clip_grad_norm_ (see optim.ts, which this is tested against).
 * Checkpoint state uses the per-tensor names (exp_avg.<name>, exp_avg_sq.<name>).
 */
import * as tf from "@tensorflow/tfjs";

export interface FlatAdamOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** AdamW (decoupled weight decay) */
  decoupled?: boolean;
  /** global gradient-norm clip; 0 = off */
  clip?: number;
  /** EMA decay; 0 = off */
  ema?: number;
  /**
   * EMA warmup (default true): the decay used at update n is min(ema, (1 + n) / (10 + n)), so the
   * average follows the weights early in training instead of staying near the initialisation.
   */
  emaWarmup?: boolean;
}

function flatten(ts: tf.Tensor[]): tf.Tensor1D {
  return tf.concat(ts.map((t) => tf.reshape(t, [-1])), 0) as tf.Tensor1D;
}

export class FlatAdam {
  lr: number;
  stepCount = 0;
  readonly names: string[];
  private readonly vars: tf.Variable[];
  private readonly sizes: number[];
  private readonly m: tf.Variable;
  private readonly v: tf.Variable;
  readonly ema: FlatEma | null;

  constructor(
    vars: [string, tf.Variable][],
    readonly opts: FlatAdamOptions,
  ) {
    if (!(opts.lr > 0)) throw new RangeError(`FlatAdam: lr must be > 0, got ${opts.lr}`);
    this.lr = opts.lr;
    this.names = vars.map(([n]) => n);
    this.vars = vars.map(([, v]) => v);
    this.sizes = this.vars.map((v) => v.size);
    const total = this.sizes.reduce((a, b) => a + b, 0);
    this.m = tf.variable(tf.zeros([total]), false);
    this.v = tf.variable(tf.zeros([total]), false);
    this.ema = opts.ema && opts.ema > 0 ? new FlatEma(this, opts.ema, opts.emaWarmup !== false) : null;
  }

  /** The parameters as one flat vector (a new tensor). */
  flatParams(): tf.Tensor1D {
    return tf.tidy(() => flatten(this.vars));
  }

  /** Write a flat vector back into the parameter tensors. */
  assignParams(flat: tf.Tensor): void {
    tf.tidy(() => {
      const pieces = tf.split(flat, this.sizes, 0);
      this.vars.forEach((v, i) => v.assign(tf.reshape(pieces[i], v.shape)));
    });
  }

  /**
   * Clip, update and EMA in one go. Returns the gradient norm (before clipping) as a scalar
   * tensor that the caller reads when convenient and disposes.
   */
  step(grads: Map<string, tf.Tensor>): tf.Scalar {
    const b1 = this.opts.beta1 ?? 0.9;
    const b2 = this.opts.beta2 ?? 0.999;
    const eps = this.opts.eps ?? 1e-8;
    const wd = this.opts.weightDecay ?? 0;
    const clip = this.opts.clip ?? 0;
    const t = this.stepCount + 1;
    const lr = this.lr;
    const bc1 = 1 - b1 ** t;
    const bc2Sqrt = Math.sqrt(1 - b2 ** t);
    const norm = tf.tidy(() => {
      let g = flatten(this.names.map((n) => {
        const x = grads.get(n);
        if (!x) throw new RangeError(`FlatAdam.step: missing gradient for "${n}"`);
        return x;
      }));
      const norm = tf.sqrt(tf.sum(tf.square(g))) as tf.Scalar;
      if (clip > 0) g = tf.mul(g, tf.minimum(1, tf.div(clip, tf.add(norm, 1e-6))));
      let p: tf.Tensor = flatten(this.vars);
      if (wd !== 0) {
        if (this.opts.decoupled) p = tf.mul(p, 1 - lr * wd);
        else g = tf.add(g, tf.mul(p, wd));
      }
      const m = tf.add(tf.mul(this.m, b1), tf.mul(g, 1 - b1));
      const v = tf.add(tf.mul(this.v, b2), tf.mul(tf.square(g), 1 - b2));
      const pNew = tf.sub(p, tf.mul(tf.div(m, tf.add(tf.div(tf.sqrt(v), bc2Sqrt), eps)), lr / bc1));
      this.m.assign(m);
      this.v.assign(v);
      this.assignParams(pNew);
      this.ema?.update(pNew);
      return norm;
    });
    this.stepCount = t;
    return norm;
  }

  /** Per-tensor state for checkpoints (new tensors: the caller disposes them). */
  stateTensors(): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    tf.tidy(() => {
      const ms = tf.split(this.m, this.sizes, 0);
      const vs = tf.split(this.v, this.sizes, 0);
      this.names.forEach((n, i) => {
        out.set(`exp_avg.${n}`, tf.keep(tf.reshape(ms[i], this.vars[i].shape)));
        out.set(`exp_avg_sq.${n}`, tf.keep(tf.reshape(vs[i], this.vars[i].shape)));
      });
    });
    return out;
  }

  loadState(tensors: Map<string, tf.Tensor>, stepCount: number): void {
    const get = (k: string, i: number) => {
      const t = tensors.get(k);
      if (!t) throw new RangeError(`optimizer state: missing "${k}"`);
      if (t.size !== this.sizes[i]) throw new RangeError(`optimizer state: "${k}" has ${t.size} values, expected ${this.sizes[i]}`);
      return t;
    };
    tf.tidy(() => {
      this.m.assign(flatten(this.names.map((n, i) => get(`exp_avg.${n}`, i))));
      this.v.assign(flatten(this.names.map((n, i) => get(`exp_avg_sq.${n}`, i))));
    });
    this.stepCount = stepCount;
  }

  dispose(): void {
    this.m.dispose();
    this.v.dispose();
    this.ema?.dispose();
  }

  /** @internal */
  splitLike(flat: tf.Tensor): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    tf.tidy(() => {
      const pieces = tf.split(flat, this.sizes, 0);
      this.names.forEach((n, i) => out.set(n, tf.keep(tf.reshape(pieces[i], this.vars[i].shape))));
    });
    return out;
  }
}

/** EMA of the parameters as one flat buffer, updated inside FlatAdam.step. */
export class FlatEma {
  updates = 0;
  private readonly shadow: tf.Variable;

  constructor(
    private readonly opt: FlatAdam,
    readonly decay: number,
    readonly warmup = true,
  ) {
    this.shadow = tf.variable(opt.flatParams(), false);
  }

  /** The decay applied at the next update. */
  currentDecay(): number {
    return this.warmup ? Math.min(this.decay, (1 + this.updates) / (10 + this.updates)) : this.decay;
  }

  /** @internal called by FlatAdam.step with the new flat parameters */
  update(p: tf.Tensor): void {
    const d = this.currentDecay();
    this.shadow.assign(tf.tidy(() => tf.add(tf.mul(this.shadow, d), tf.mul(p, 1 - d))));
    this.updates++;
  }

  /** Exchange the parameters and the EMA weights (call twice to restore). */
  swap(): void {
    const p = this.opt.flatParams();
    this.opt.assignParams(this.shadow);
    this.shadow.assign(p);
    p.dispose();
  }

  /** Per-tensor EMA weights by parameter name (new tensors: the caller disposes them). */
  tensors(): Map<string, tf.Tensor> {
    return this.opt.splitLike(this.shadow);
  }

  load(tensors: Map<string, tf.Tensor>, updates: number): void {
    tf.tidy(() => {
      const parts = this.opt.names.map((n) => {
        const t = tensors.get(n);
        if (!t) throw new RangeError(`EMA state: missing "${n}"`);
        return t;
      });
      this.shadow.assign(flatten(parts));
    });
    this.updates = updates;
  }

  dispose(): void {
    this.shadow.dispose();
  }
}
