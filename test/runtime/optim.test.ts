import { beforeAll, describe, expect, it } from "vitest";
import * as tf from "@tensorflow/tfjs";
import { Adam, Ema, chunkedSum, clipByGlobalNorm } from "../../runtime/train/optim.ts";

beforeAll(async () => {
  await tf.setBackend("cpu");
});

/** Reference torch.optim.Adam / AdamW on a scalar, in float64 plain JS. */
function adamReference(
  p0: number,
  grad: (p: number) => number,
  lrs: number[],
  { b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0, decoupled = false } = {},
): number[] {
  let p = p0;
  let m = 0;
  let v = 0;
  const traj: number[] = [];
  lrs.forEach((lr, i) => {
    const t = i + 1;
    let g = grad(p);
    if (wd !== 0) {
      if (decoupled) p *= 1 - lr * wd;
      else g += wd * p;
    }
    m = b1 * m + (1 - b1) * g;
    v = b2 * v + (1 - b2) * g * g;
    const mHat = m / (1 - b1 ** t);
    const vHat = v / (1 - b2 ** t);
    p -= (lr * mHat) / (Math.sqrt(vHat) + eps);
    traj.push(p);
  });
  return traj;
}

/** Gradient of f(p) = 0.5 * a * (p - c)^2. */
const A = 3;
const C = 0.5;
const quadGrad = (p: number) => A * (p - C);

function runAdam(p0: number, lrs: number[], opts: { weightDecay?: number; decoupled?: boolean; beta1?: number; beta2?: number; eps?: number }): number[] {
  const p = tf.tidy(() => tf.variable(tf.scalar(p0)));
  const opt = new Adam([["p", p]], { lr: lrs[0], ...opts });
  const traj: number[] = [];
  for (const lr of lrs) {
    opt.lr = lr;
    const g = tf.scalar(quadGrad(p.dataSync()[0]));
    opt.step(new Map([["p", g]]));
    g.dispose();
    traj.push(p.dataSync()[0]);
  }
  expect(opt.stepCount).toBe(lrs.length);
  opt.dispose();
  p.dispose();
  return traj;
}

describe("Adam", () => {
  it("matches torch.optim.Adam on a scalar quadratic (3 steps, lr changed between steps)", () => {
    const before = tf.memory().numTensors;
    const lrs = [0.1, 0.1, 0.05];
    const got = runAdam(2, lrs, {});
    const want = adamReference(2, quadGrad, lrs);
    // First Adam step moves by ~lr regardless of the gradient's size.
    expect(want[0]).toBeCloseTo(1.9, 6);
    for (let i = 0; i < 3; i++) expect(got[i]).toBeCloseTo(want[i], 6);
    expect(tf.memory().numTensors).toBe(before);
  });

  it("matches with non-default betas and eps where eps matters", () => {
    const opts = { beta1: 0.5, beta2: 0.9, eps: 0.1 };
    const got = runAdam(-1, [0.2, 0.2, 0.2], opts);
    const want = adamReference(-1, quadGrad, [0.2, 0.2, 0.2], { b1: 0.5, b2: 0.9, eps: 0.1 });
    for (let i = 0; i < 3; i++) expect(got[i]).toBeCloseTo(want[i], 6);
    // Without bias correction the first step would be far smaller; make sure the test distinguishes.
    const noCorrection = -1 - (0.2 * (0.5 * quadGrad(-1))) / (Math.sqrt(0.1 * quadGrad(-1) ** 2) + 0.1);
    expect(Math.abs(got[0] - noCorrection)).toBeGreaterThan(1e-2);
  });

  it("L2 weight decay (torch Adam) and decoupled decay (AdamW) follow their formulas and differ", () => {
    const lrs = [0.1, 0.1, 0.1];
    const l2 = runAdam(2, lrs, { weightDecay: 0.5 });
    const adamw = runAdam(2, lrs, { weightDecay: 0.5, decoupled: true });
    const wantL2 = adamReference(2, quadGrad, lrs, { wd: 0.5 });
    const wantW = adamReference(2, quadGrad, lrs, { wd: 0.5, decoupled: true });
    for (let i = 0; i < 3; i++) {
      expect(l2[i]).toBeCloseTo(wantL2[i], 6);
      expect(adamw[i]).toBeCloseTo(wantW[i], 6);
    }
    expect(Math.abs(l2[2] - adamw[2])).toBeGreaterThan(1e-3);
    // AdamW's first step: p*(1 - lr*wd) - lr * sign(g).
    expect(adamw[0]).toBeCloseTo(2 * (1 - 0.05) - 0.1, 5);
  });

  it("updates tensors of any shape elementwise", () => {
    const w = tf.variable(tf.tensor([[1, -2], [3, 0.5]]));
    const opt = new Adam(new Map([["w", w]]), { lr: 0.01 });
    const g = tf.tensor([[1, -1], [0, 2]]);
    opt.step(new Map([["w", g]]));
    const got = w.arraySync() as number[][];
    // First step: -lr * g / (|g| + eps') elementwise; a zero gradient leaves the entry alone.
    expect(got[0][0]).toBeCloseTo(0.99, 6);
    expect(got[0][1]).toBeCloseTo(-1.99, 6);
    expect(got[1][0]).toBeCloseTo(3, 6);
    expect(got[1][1]).toBeCloseTo(0.49, 6);
    tf.dispose([w, g]);
    opt.dispose();
  });

  it("state round trip: a restored optimizer continues identically", () => {
    const before = tf.memory().numTensors;
    const mk = () => tf.tidy(() => tf.variable(tf.tensor([0.3, -0.7, 1.1])));
    const pa = mk();
    const a = new Adam([["p", pa]], { lr: 0.05, weightDecay: 0.01, decoupled: true });
    const grads = [[1, 2, -1], [0.5, -0.25, 2], [3, 1, 1]].map((g) => new Map([["p", tf.tensor(g)]]));
    a.step(grads[0]);
    a.step(grads[1]);
    const state = a.stateTensors();
    expect([...state.keys()].sort()).toEqual(["exp_avg.p", "exp_avg_sq.p"]);
    const pb = tf.tidy(() => tf.variable(pa.clone()));
    const b = new Adam([["p", pb]], { lr: 0.05, weightDecay: 0.01, decoupled: true });
    b.loadState(state, a.stepCount);
    tf.dispose([...state.values()]);
    a.step(grads[2]);
    b.step(grads[2]);
    expect(Array.from(pb.dataSync())).toEqual(Array.from(pa.dataSync()));
    // A fresh optimizer (no state) would not.
    const pc = mk();
    const c = new Adam([["p", pc]], { lr: 0.05 });
    c.step(grads[2]);
    expect(Array.from(pc.dataSync())).not.toEqual(Array.from(pa.dataSync()));
    for (const g of grads) tf.dispose([...g.values()]);
    a.dispose();
    b.dispose();
    c.dispose();
    tf.dispose([pa, pb, pc]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it("validates its arguments", () => {
    const p = tf.variable(tf.zeros([2]));
    expect(() => new Adam([["p", p]], { lr: -1 })).toThrow(/lr/);
    expect(() => new Adam([["p", p]], { lr: 0.1, beta2: 1 })).toThrow(/beta2/);
    expect(() => new Adam([["p", p], ["p", p]], { lr: 0.1 })).toThrow(/duplicate/);
    const opt = new Adam([["p", p]], { lr: 0.1 });
    const g = tf.zeros([3]);
    expect(() => opt.step(new Map([["p", g]]))).toThrow(/shape/);
    expect(() => opt.step(new Map())).toThrow(/missing gradient for variable "p"/);
    expect(() => opt.step(new Map([["p", g], ["q", g]]))).toThrow(/unknown variable "q"/);
    expect(() => opt.loadState(new Map(), 1)).toThrow(/exp_avg.p/);
    opt.dispose();
    tf.dispose([p, g]);
  });
});

describe("clipByGlobalNorm", () => {
  it("matches clip_grad_norm_ when clipping", () => {
    const before = tf.memory().numTensors;
    const grads = new Map<string, tf.Tensor>([
      ["a", tf.tensor([3, 4])],
      ["b", tf.tensor([[12]])],
    ]);
    // norm = sqrt(9 + 16 + 144) = 13
    const { grads: out, norm } = clipByGlobalNorm(grads, 6.5);
    expect(norm).toBeCloseTo(13, 5);
    const coef = 6.5 / (13 + 1e-6);
    expect(Array.from(out.get("a")!.dataSync())).toEqual([3, 4].map((x) => Math.fround(x * coef)).map((x) => expect.closeTo(x, 6)));
    expect(out.get("b")!.dataSync()[0]).toBeCloseTo(12 * coef, 5);
    tf.dispose([...out.values(), ...grads.values()]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it("leaves gradients unchanged when the norm is below the limit", () => {
    const grads = new Map<string, tf.Tensor>([["a", tf.tensor([3, 4])]]);
    const { grads: out, norm } = clipByGlobalNorm(grads, 10);
    expect(norm).toBeCloseTo(5, 6);
    expect(Array.from(out.get("a")!.dataSync())).toEqual([3, 4]);
    tf.dispose([...out.values(), ...grads.values()]);
    expect(() => clipByGlobalNorm(new Map(), 0)).toThrow(/maxNorm/);
  });

  it("sums hundreds of tensors in chunks and gets the exact norm", async () => {
    const grads = new Map<string, tf.Tensor>();
    let sq = 0;
    for (let i = 0; i < 300; i++) {
      const vals = [i * 0.01, -0.5, (i % 7) * 0.1];
      for (const v of vals) sq += v * v;
      grads.set(`g${i}`, tf.tensor(vals));
    }
    const parts = [...grads.values()].map((g) => tf.sum(tf.square(g)));
    let s: tf.Scalar | undefined;
    const prof = await tf.profile(() => {
      s = chunkedSum(parts);
      return s;
    });
    const addNs = prof.kernels.filter((k) => k.name === "AddN");
    expect(addNs.length).toBeGreaterThan(1);
    for (const k of addNs) expect(k.inputShapes.length).toBeLessThanOrEqual(4);
    expect(s!.dataSync()[0]).toBeCloseTo(sq, 2);
    tf.dispose([s!, ...parts]);
    const { grads: out, norm } = clipByGlobalNorm(grads, 1);
    expect(norm).toBeCloseTo(Math.sqrt(sq), 3);
    tf.dispose([...out.values(), ...grads.values()]);
  });
});

describe("Ema", () => {
  it("tracks shadow = d*shadow + (1-d)*param, swaps and copies", () => {
    const before = tf.memory().numTensors;
    const p = tf.tidy(() => tf.variable(tf.tensor([1, 2])));
    const set = (xs: number[]) => tf.tidy(() => p.assign(tf.tensor(xs)));
    const ema = new Ema([["p", p]], 0.9);
    set([3, 6]);
    ema.update(); // 0.9*[1,2] + 0.1*[3,6] = [1.2, 2.4]
    set([0, 0]);
    ema.update(); // [1.08, 2.16]
    expect(ema.updates).toBe(2);
    const t = ema.tensors();
    const got = Array.from(t.get("p")!.dataSync());
    expect(got[0]).toBeCloseTo(1.08, 6);
    expect(got[1]).toBeCloseTo(2.16, 6);
    tf.dispose([...t.values()]);

    ema.swap();
    expect(Array.from(p.dataSync()).map((x) => +x.toFixed(5))).toEqual([1.08, 2.16]);
    ema.swap();
    expect(Array.from(p.dataSync())).toEqual([0, 0]);

    const q = tf.tidy(() => tf.variable(tf.zeros([2])));
    ema.copyTo([["p", q]]);
    expect(Array.from(q.dataSync()).map((x) => +x.toFixed(5))).toEqual([1.08, 2.16]);
    // copyTo copies: a later update does not move q.
    ema.update();
    expect(Array.from(q.dataSync()).map((x) => +x.toFixed(5))).toEqual([1.08, 2.16]);

    const saved = ema.tensors();
    const ema2 = new Ema([["p", p]], 0.9);
    ema2.load(saved, ema.updates);
    const a = ema.tensors();
    const b = ema2.tensors();
    expect(Array.from(b.get("p")!.dataSync())).toEqual(Array.from(a.get("p")!.dataSync()));
    expect(ema2.updates).toBe(3);
    tf.dispose([...saved.values(), ...a.values(), ...b.values()]);
    expect(() => ema2.load(new Map(), 0)).toThrow(/missing tensor "p"/);
    expect(() => new Ema([["p", p]], 1.5)).toThrow(/decay/);
    ema.dispose();
    ema2.dispose();
    tf.dispose([p, q]);
    expect(tf.memory().numTensors).toBe(before);
  });
});
