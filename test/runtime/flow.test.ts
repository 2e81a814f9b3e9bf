import { beforeAll, describe, expect, it } from "vitest";
import * as tf from "@tensorflow/tfjs";
import { Rng } from "../../runtime/util/rng.ts";
import {
  type Density,
  type FlowConfig,
  flowConfig,
  lossWeight,
  networkTime,
  sampleSigmas,
  samplingSigmas,
  shiftSigma,
  trainingPair,
} from "../../runtime/flow/schedule.ts";
import { guidedVelocity, sampleFlow } from "../../runtime/flow/sampler.ts";

beforeAll(async () => {
  await tf.setBackend("cpu");
});

/** Composite Simpson's rule on [a, b] with an even number of intervals. */
function simpson(f: (x: number) => number, a: number, b: number, intervals = 20000): number {
  const h = (b - a) / intervals;
  let s = f(a) + f(b);
  for (let i = 1; i < intervals; i++) s += (i % 2 ? 4 : 2) * f(a + i * h);
  return (s * h) / 3;
}

/** Mean, variance and 4th central moment of sigma = g(x) for x with density w on [a, b]. */
function momentsByQuadrature(g: (x: number) => number, w: (x: number) => number, a: number, b: number) {
  const mean = simpson((x) => g(x) * w(x), a, b);
  const variance = simpson((x) => (g(x) - mean) ** 2 * w(x), a, b);
  const m4 = simpson((x) => (g(x) - mean) ** 4 * w(x), a, b);
  return { mean, variance, m4 };
}

const one = () => 1;
const phi = (x: number) => Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

describe("sampleSigmas: densities match their analytic moments", () => {
  const N = 200_000;
  const cases: { name: string; density: Density; exact: { mean: number; variance: number; m4: number } }[] = [
    { name: "uniform", density: { kind: "uniform" }, exact: { mean: 0.5, variance: 1 / 12, m4: 1 / 80 } },
    {
      name: "uniform_clipped(0.1)",
      density: { kind: "uniform_clipped", eps: 0.1 },
      exact: { mean: 0.45, variance: 0.81 / 12, m4: 0.9 ** 4 / 80 },
    },
    { name: "logit_normal(0,1)", density: { kind: "logit_normal", m: 0, s: 1 }, exact: momentsByQuadrature((x) => sigmoid(x), phi, -12, 12) },
    { name: "logit_normal(0.5,0.7)", density: { kind: "logit_normal", m: 0.5, s: 0.7 }, exact: momentsByQuadrature((x) => sigmoid(0.5 + 0.7 * x), phi, -12, 12) },
    {
      name: "mode(1.29)",
      density: { kind: "mode", s: 1.29 },
      exact: momentsByQuadrature((u) => 1 - u - 1.29 * (Math.cos((Math.PI * u) / 2) ** 2 - 1 + u), one, 0, 1),
    },
    {
      name: "mode(-0.5)",
      density: { kind: "mode", s: -0.5 },
      exact: momentsByQuadrature((u) => 1 - u + 0.5 * (Math.cos((Math.PI * u) / 2) ** 2 - 1 + u), one, 0, 1),
    },
    {
      name: "cosmap",
      density: { kind: "cosmap" },
      exact: momentsByQuadrature((u) => 1 - 1 / (Math.tan((Math.PI * u) / 2) + 1), one, 0, 1 - 1e-12),
    },
  ];

  it("logit_normal(0,1) is symmetric: quadrature mean is 1/2", () => {
    expect(cases[2].exact.mean).toBeCloseTo(0.5, 10);
  });

  for (const c of cases) {
    it(`${c.name}: mean and variance within 5 standard errors`, () => {
      const s = sampleSigmas(c.density, N, new Rng(1234));
      let mean = 0;
      for (const v of s) mean += v;
      mean /= N;
      let variance = 0;
      for (const v of s) variance += (v - mean) ** 2;
      variance /= N - 1;
      const { mean: m, variance: v, m4 } = c.exact;
      expect(Math.abs(mean - m)).toBeLessThan(5 * Math.sqrt(v / N));
      expect(Math.abs(variance - v)).toBeLessThan(5 * Math.sqrt((m4 - v * v) / N) + 1e-6);
      expect(Math.min(...s.subarray(0, 10000))).toBeGreaterThanOrEqual(0);
      expect(Math.max(...s.subarray(0, 10000))).toBeLessThanOrEqual(1);
    });
  }

  it("the test can fail: a wrong density's moments are rejected", () => {
    const s = sampleSigmas({ kind: "logit_normal", m: 0.3, s: 1 }, N, new Rng(5));
    const mean = s.reduce((a, b) => a + b, 0) / N;
    const exact = cases[2].exact;
    expect(Math.abs(mean - exact.mean)).toBeGreaterThan(5 * Math.sqrt(exact.variance / N));
  });

  it("uniform_clipped stays in (0, 1 - eps]", () => {
    const s = sampleSigmas({ kind: "uniform_clipped", eps: 0.25 }, 50_000, new Rng(3));
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of s) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    expect(lo).toBeGreaterThan(0);
    expect(hi).toBeLessThanOrEqual(0.75 + 1e-7);
    expect(hi).toBeGreaterThan(0.74);
  });

  it("is reproducible and resumable from the rng state", () => {
    const a = new Rng(7);
    const first = sampleSigmas({ kind: "logit_normal", m: 0, s: 1 }, 5, a);
    const st = a.state();
    const second = sampleSigmas({ kind: "logit_normal", m: 0, s: 1 }, 5, a);
    const b = new Rng(7);
    expect(sampleSigmas({ kind: "logit_normal", m: 0, s: 1 }, 5, b)).toEqual(first);
    expect(sampleSigmas({ kind: "logit_normal", m: 0, s: 1 }, 5, Rng.fromState(st))).toEqual(second);
  });

  it("validates its arguments", () => {
    expect(() => sampleSigmas({ kind: "mode", s: 2 }, 3, new Rng(0))).toThrow(/density.s/);
    expect(() => sampleSigmas({ kind: "logit_normal", m: 0, s: 0 }, 3, new Rng(0))).toThrow(/density.s/);
    expect(() => sampleSigmas({ kind: "uniform_clipped", eps: 1 }, 3, new Rng(0))).toThrow(/density.eps/);
    expect(() => sampleSigmas({ kind: "uniform" }, -1, new Rng(0))).toThrow(/n must/);
    expect(() => flowConfig({ steps: 0 })).toThrow(/steps/);
    expect(() => flowConfig({ noiseAt: 2 as 0 })).toThrow(/noiseAt/);
  });
});

describe("trainingPair and networkTime", () => {
  for (const noiseAt of [0, 1] as const) {
    it(`noiseAt=${noiseAt}: x_sigma, t and velocity target follow the convention`, () => {
      const cfg = flowConfig({ noiseAt });
      const before = tf.memory().numTensors;
      const x0 = tf.tensor([[1, 2, 3], [-1, 0, 4]]);
      const eps = tf.tensor([[0.5, -1, 2], [3, 1, -2]]);
      const sigma = Float32Array.from([0.25, 0.8]);
      const { xt, t, target } = trainingPair(cfg, x0, eps, sigma);
      const x0a = x0.arraySync() as number[][];
      const ea = eps.arraySync() as number[][];
      const xta = xt.arraySync() as number[][];
      const ta = t.arraySync();
      const tg = target.arraySync() as number[][];
      for (let b = 0; b < 2; b++) {
        expect(ta[b]).toBeCloseTo(noiseAt === 1 ? sigma[b] : 1 - sigma[b], 6);
        for (let j = 0; j < 3; j++) {
          expect(xta[b][j]).toBeCloseTo((1 - sigma[b]) * x0a[b][j] + sigma[b] * ea[b][j], 5);
          expect(tg[b][j]).toBeCloseTo(noiseAt === 1 ? ea[b][j] - x0a[b][j] : x0a[b][j] - ea[b][j], 6);
        }
      }
      // The target is d x_t / d t in the network's own time (finite difference along the path).
      const h = 1e-2;
      const s2 = Float32Array.from(sigma.map((s) => s + h));
      const p2 = trainingPair(cfg, x0, eps, s2);
      const fdErr = tf.tidy(() => {
        const dxdt = tf.div(tf.sub(p2.xt, xt), tf.sub(p2.t, t).reshape([2, 1]));
        return tf.max(tf.abs(tf.sub(dxdt, target))).arraySync() as number;
      });
      expect(fdErr).toBeLessThan(2e-3);
      tf.dispose([x0, eps, xt, t, target, p2.xt, p2.t, p2.target]);
      expect(tf.memory().numTensors).toBe(before);
    });
  }

  it("broadcasts sigma over image-shaped inputs", () => {
    const x0 = tf.ones([2, 4, 4, 1]);
    const eps = tf.zeros([2, 4, 4, 1]);
    const { xt, t, target } = trainingPair(flowConfig(), x0, eps, Float32Array.from([0, 1]));
    const a = xt.arraySync() as number[][][][];
    expect(a[0][3][2][0]).toBe(1);
    expect(a[1][1][1][0]).toBe(0);
    tf.dispose([x0, eps, xt, t, target]);
  });

  it("validates shapes and sigma", () => {
    const x0 = tf.ones([2, 3]);
    const eps = tf.ones([2, 4]);
    expect(() => trainingPair(flowConfig(), x0, eps, Float32Array.from([0, 1]))).toThrow(/eps shape/);
    expect(() => trainingPair(flowConfig(), x0, x0, Float32Array.from([0]))).toThrow(/batch size 2/);
    expect(() => trainingPair(flowConfig(), x0, x0, Float32Array.from([0, 1.5]))).toThrow(/sigma\[1\]/);
    tf.dispose([x0, eps]);
  });

  it("networkTime maps numbers and arrays", () => {
    expect(networkTime({ noiseAt: 0 }, 0.3)).toBeCloseTo(0.7, 12);
    expect(networkTime({ noiseAt: 1 }, 0.3)).toBe(0.3);
    expect(Array.from(networkTime({ noiseAt: 0 }, Float32Array.from([0, 1])))).toEqual([1, 0]);
  });

  it("lossWeight: none, x0, eps, snr_clip", () => {
    const s = Float32Array.from([0, 0.1, 0.5, 1]);
    expect(Array.from(lossWeight({ weighting: "none" }, s))).toEqual([1, 1, 1, 1]);
    const x0 = lossWeight({ weighting: "x0" }, s);
    const ep = lossWeight({ weighting: "eps" }, s);
    for (let i = 0; i < 4; i++) {
      expect(x0[i]).toBeCloseTo(s[i] * s[i], 6);
      expect(ep[i]).toBeCloseTo((1 - s[i]) ** 2, 6);
    }
    const w = lossWeight({ weighting: "snr_clip", snrGamma: 5 }, s);
    // sigma=0.1: snr = 81 > 5 -> 5/81; sigma=0.5: snr = 1 -> 1; sigma=1: snr=0 -> 1; sigma=0: 0.
    expect(w[0]).toBe(0);
    expect(w[1]).toBeCloseTo(5 / 81, 6);
    expect(w[2]).toBe(1);
    expect(w[3]).toBe(1);
  });
});

describe("samplingSigmas and the shift", () => {
  it("runs from 1 to 0 with steps+1 values", () => {
    const s = samplingSigmas({ steps: 4, shift: 1 });
    expect(Array.from(s)).toEqual([1, 0.75, 0.5, 0.25, 0]);
  });

  it("applies the shift exactly once", () => {
    const plain = samplingSigmas({ steps: 10, shift: 1 });
    const shifted = samplingSigmas({ steps: 10, shift: 3 });
    for (let i = 0; i <= 10; i++) expect(shifted[i]).toBeCloseTo(shiftSigma(plain[i], 3), 6);
    // Applying it twice would differ noticeably.
    expect(Math.abs(shifted[5] - shiftSigma(shiftSigma(plain[5], 3), 3))).toBeGreaterThan(0.05);
    expect(shiftSigma(0.5, 3)).toBeCloseTo(0.75, 12);
  });

  it("the sampler calls velocity with exactly those times (euler and heun, both conventions)", () => {
    for (const noiseAt of [0, 1] as const) {
      for (const sampler of ["euler", "heun"] as const) {
        const cfg = flowConfig({ noiseAt, sampler, steps: 6, shift: 3 });
        const sig = samplingSigmas(cfg);
        const seen: number[][] = [];
        const z = tf.ones([2, 3]);
        const out = sampleFlow((x, t) => {
          seen.push(Array.from(t.dataSync()));
          return tf.zerosLike(x);
        }, z, cfg);
        const expected: number[] = [];
        for (let i = 0; i < 6; i++) {
          expected.push(networkTime(cfg, sig[i]));
          if (sampler === "heun" && sig[i + 1] !== 0) expected.push(networkTime(cfg, sig[i + 1]));
        }
        expect(seen.length).toBe(expected.length);
        seen.forEach((ts, k) => {
          expect(ts.length).toBe(2);
          expect(ts[0]).toBeCloseTo(expected[k], 6);
          expect(ts[1]).toBeCloseTo(expected[k], 6);
        });
        tf.dispose([z, out]);
      }
    }
  });
});

describe("sampleFlow", () => {
  const x0Data = [[0.3, -1.2, 2.0, 0.5], [1.5, 0.0, -0.7, -2.2]];

  for (const noiseAt of [0, 1] as const) {
    it(`noiseAt=${noiseAt}: Euler is exact on a straight flow, any step count and shift`, () => {
      for (const steps of [1, 3, 17]) {
        for (const shift of [1, 3]) {
          const cfg = flowConfig({ noiseAt, sampler: "euler", steps, shift });
          const x0 = tf.tensor(x0Data);
          const z = tf.tensor([[1, 2, -1, 0.25], [-0.5, 1, 0.75, 2]]);
          const before = tf.memory().numTensors;
          // The exact velocity of the straight path from z to x0, constant along it: eps - x0 in sigma.
          const v = (x: tf.Tensor) => tf.tidy(() => (noiseAt === 1 ? tf.sub(z, x0) : tf.sub(x0, z)));
          const out = sampleFlow(v, z, cfg);
          expect(tf.memory().numTensors).toBe(before + 1);
          expect(tf.max(tf.abs(tf.sub(out, x0))).arraySync()).toBeLessThan(1e-6);
          // The state-dependent form of the same field, v = (x - x0) / sigma in sigma units.
          const v2 = (x: tf.Tensor, t: tf.Tensor1D) =>
            tf.tidy(() => {
              const sigma = noiseAt === 1 ? t : tf.sub(1, t);
              const d = tf.div(tf.sub(x, x0), sigma.reshape([-1, 1]));
              return noiseAt === 1 ? d : tf.neg(d);
            });
          const out2 = sampleFlow(v2, z, cfg);
          expect(tf.max(tf.abs(tf.sub(out2, x0))).arraySync()).toBeLessThan(1e-5);
          tf.dispose([x0, z, out, out2]);
        }
      }
    });

    it(`noiseAt=${noiseAt}: Heun beats Euler on a curved ODE; both converge to the exact solution`, () => {
      // dx/dsigma = 2 sigma x  =>  x(0) = x(1) * exp(-1). In network time: v = sign * 2 sigma(t) x.
      const v = (x: tf.Tensor, t: tf.Tensor1D) =>
        tf.tidy(() => {
          const sigma = noiseAt === 1 ? t : tf.sub(1, t);
          const d = tf.mul(x, tf.mul(sigma, 2).reshape([-1, 1]));
          return noiseAt === 1 ? d : tf.neg(d);
        });
      const z = tf.tensor([[1, -2, 0.5], [3, 0.1, -1]]);
      const exact = tf.mul(z, Math.exp(-1));
      const err = (sampler: "euler" | "heun", steps: number) =>
        tf.tidy(() => tf.max(tf.abs(tf.sub(sampleFlow(v, z, flowConfig({ noiseAt, sampler, steps })), exact))).arraySync() as number);
      const before = tf.memory().numTensors;
      const e8 = err("euler", 8);
      const h8 = err("heun", 8);
      expect(h8).toBeLessThan(e8 / 3);
      expect(err("euler", 400)).toBeLessThan(0.02);
      expect(err("heun", 100)).toBeLessThan(2e-3);
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([z, exact]);
    });
  }

  it("does not leak across steps, even when velocity allocates", () => {
    const z = tf.ones([1, 8]);
    const counts: number[] = [];
    const out = sampleFlow(
      (x, t) => {
        const junk = tf.ones([100]); // intermediates left behind by a sloppy model
        void junk;
        return tf.mul(x, t.reshape([-1, 1]));
      },
      z,
      flowConfig({ sampler: "heun", steps: 5 }),
      { onStep: () => counts.push(tf.memory().numTensors) },
    );
    expect(new Set(counts).size).toBe(1);
    tf.dispose([z, out]);
  });

  it("opts override steps, sampler and shift", () => {
    const z = tf.ones([1, 2]);
    let calls = 0;
    const out = sampleFlow((x) => (calls++, tf.zerosLike(x)), z, flowConfig({ steps: 20 }), { steps: 4, sampler: "heun" });
    expect(calls).toBe(7);
    tf.dispose([z, out]);
    expect(() => sampleFlow((x) => x, z, flowConfig(), { steps: 0 })).toThrow(/steps/);
  });
});

describe("guidedVelocity", () => {
  it("is uncond + scale * (cond - uncond)", () => {
    const c = tf.tensor([1, 2, 3]);
    const u = tf.tensor([0.5, -1, 3]);
    const before = tf.memory().numTensors;
    const g1 = guidedVelocity(c, u, 1);
    const g0 = guidedVelocity(c, u, 0);
    const g3 = guidedVelocity(c, u, 3);
    expect(Array.from(g1.dataSync())).toEqual([1, 2, 3]);
    expect(Array.from(g0.dataSync())).toEqual([0.5, -1, 3]);
    expect(Array.from(g3.dataSync())).toEqual([2, 8, 3]);
    tf.dispose([g0, g1, g3]);
    expect(tf.memory().numTensors).toBe(before);
    expect(() => guidedVelocity(c, u, NaN)).toThrow(/scale/);
    tf.dispose([c, u]);
  });
});

// Type-level check that a full config literal is accepted.
const _cfg: FlowConfig = {
  noiseAt: 0, path: "linear", predict: "velocity", density: { kind: "cosmap" }, loss: "mse",
  weighting: "none", cfgDrop: 0.1, sampler: "heun", steps: 10, shift: 1, guidance: 2,
};
void _cfg;
