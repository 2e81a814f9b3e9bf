import { describe, expect, it } from "vitest";
import { bootstrapFrechet, featureStats, frechetDistance, frechetTo, symmetricEigen, symmetricEigenvalues } from "../../runtime/eval/frechet.ts";
import { holm, meanInterval, normalCdf, normalQuantile, studentTQuantile, welchTest, wilsonInterval } from "../../runtime/eval/stats.ts";
import { DEFAULT_PER_DIGIT } from "../../runtime/eval/evaluate.ts";
import { Rng } from "../../runtime/util/rng.ts";

describe("distributions", () => {
  it("normal and Student-t quantiles match the tables", () => {
    expect(normalQuantile(0.975)).toBeCloseTo(1.959964, 6);
    expect(normalQuantile(0.995)).toBeCloseTo(2.575829, 6);
    expect(normalCdf(-3)).toBeCloseTo(0.0013499, 7);
    expect(normalCdf(0)).toBe(0.5);
    // two-sided 95% critical values of t
    const table: [number, number][] = [[1, 12.706], [2, 4.303], [4, 2.776], [10, 2.228], [30, 2.042]];
    for (const [df, t] of table) expect(studentTQuantile(0.975, df)).toBeCloseTo(t, 3);
    expect(studentTQuantile(0.975, 1e6)).toBeCloseTo(1.96, 3);
    expect(studentTQuantile(0.025, 10)).toBeCloseTo(-2.228, 3);
  });
});

describe("wilsonInterval", () => {
  it("matches Newcombe (1998)'s worked examples", () => {
    // Newcombe, Statistics in Medicine 17:857-872, Table I, method 3 (score interval)
    const cases: [number, number, number, number][] = [[81, 263, 0.2553, 0.3662], [15, 148, 0.0624, 0.1605], [0, 20, 0, 0.1611], [1, 29, 0.0061, 0.1718]];
    for (const [k, n, lo, hi] of cases) {
      const w = wilsonInterval(k, n);
      expect(w.lo).toBeCloseTo(lo, 4);
      expect(w.hi).toBeCloseTo(hi, 4);
    }
  });

  it("is exact at the ends, contains the estimate, narrows with n", () => {
    expect(wilsonInterval(20, 20).hi).toBe(1);
    expect(wilsonInterval(0, 20).lo).toBe(0);
    for (const [k, n] of [[3, 10], [97, 100], [990, 1000]]) {
      const w = wilsonInterval(k, n);
      expect(w.lo).toBeLessThan(k / n);
      expect(w.hi).toBeGreaterThan(k / n);
    }
    expect(wilsonInterval(99, 100).hi - wilsonInterval(99, 100).lo).toBeGreaterThan(wilsonInterval(990, 1000).hi - wilsonInterval(990, 1000).lo);
    expect(Number.isNaN(wilsonInterval(0, 0).lo)).toBe(true);
    expect(() => wilsonInterval(5, 4)).toThrow(/0 <= k <= n/);
  });

  it("the default eval size puts a 99% accuracy within about one point", () => {
    const n = 10 * DEFAULT_PER_DIGIT;
    const w = wilsonInterval(Math.round(0.99 * n), n);
    expect(0.99 - w.lo).toBeLessThan(0.01);
    expect(w.hi - 0.99).toBeLessThan(0.01);
    // and half of it would not
    const h = wilsonInterval(Math.round(0.99 * (n / 2)), n / 2);
    expect(0.99 - h.lo).toBeGreaterThan(0.01);
  });
});

describe("meanInterval and tests", () => {
  it("t-interval of a mean", () => {
    const m = meanInterval([1, 2, 3, 4, 5]);
    expect(m.mean).toBe(3);
    expect(m.sd).toBeCloseTo(Math.sqrt(2.5), 12);
    // 3 ± 2.776 * sqrt(2.5/5)
    expect(m.lo).toBeCloseTo(3 - 2.776445 * Math.sqrt(0.5), 5);
    expect(m.hi).toBeCloseTo(3 + 2.776445 * Math.sqrt(0.5), 5);
    expect(Number.isNaN(meanInterval([4]).lo)).toBe(true);
    expect(() => meanInterval([1, NaN])).toThrow(/finite/);
  });

  it("Welch's t-test: statistic, Welch-Satterthwaite df and p", () => {
    // a: mean 3, var 2.5; b: mean 6, var 10 -> t = -3 / sqrt(0.5 + 2) , df = 2.5^2 / (0.5^2/4 + 2^2/4)
    const r = welchTest([1, 2, 3, 4, 5], [2, 4, 6, 8, 10]);
    expect(r.stat).toBeCloseTo(-3 / Math.sqrt(2.5), 12);
    expect(r.df).toBeCloseTo(6.25 / (0.0625 + 1), 12);
    expect(r.p).toBeCloseTo(0.1075, 4); // R: t.test(1:5, seq(2, 10, 2))$p.value = 0.1075
    // at the t table's critical value, p = 0.05 (equal sizes and variances: df = 2n - 2)
    const d = 2.228 * Math.sqrt(2 / 6); // n = 6 each, sd 1, df 10
    const base = [-1.5, -0.5, 0.5, 1.5, -Math.sqrt(0.875), Math.sqrt(0.875)]; // mean 0, sd 1 (sum sq 5)
    const sd = meanInterval(base).sd;
    const w = welchTest(base.map((x) => x / sd), base.map((x) => x / sd + d));
    expect(w.df).toBeCloseTo(10, 10);
    expect(w.p).toBeCloseTo(0.05, 3);
    expect(welchTest([1, 1], [1, 1]).p).toBe(1);
    expect(welchTest([1, 1], [2, 2]).p).toBe(0);
    expect(() => welchTest([1], [1, 2])).toThrow(/2 or more/);
  });

  it("Holm's adjustment", () => {
    // sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> monotone 0.02, 0.03, 0.06, 0.06
    expect(holm([0.01, 0.04, 0.03, 0.005])).toEqual([0.03, 0.06, 0.06, 0.02].map((x) => expect.closeTo(x, 12)));
    expect(holm([0.5, 0.9])).toEqual([1, 1]); // 2 x 0.5 = 1, then monotone
    expect(holm([0.2, 0.01])).toEqual([0.2, 0.02]);
    expect(holm([])).toEqual([]);
  });
});

describe("FD bootstrap", () => {
  const gauss = (n: number, d: number, seed: number, shift = 0) => {
    const x = new Rng(seed).normals(n * d);
    if (shift) for (let i = 0; i < x.length; i += d) x[i] += shift;
    return x;
  };

  it("the tridiagonal QL eigenvalues agree with Jacobi", () => {
    for (const d of [1, 3, 17, 64]) {
      const x = gauss(2 * d + 3, d, d);
      const cov = featureStats(x, 2 * d + 3, d).cov;
      const a = [...symmetricEigen(cov, d, false).values].sort((p, q) => p - q);
      const b = [...symmetricEigenvalues(cov, d)].sort((p, q) => p - q);
      a.forEach((v, i) => expect(Math.abs(v - b[i])).toBeLessThan(1e-10 * Math.max(1, a[d - 1])));
    }
    expect(Array.from(symmetricEigenvalues(new Float64Array(9), 3))).toEqual([0, 0, 0]);
  });

  it("frechetTo equals frechetDistance", () => {
    const d = 6;
    const a = featureStats(gauss(300, d, 1), 300, d);
    const b = featureStats(gauss(300, d, 2, 0.5), 300, d);
    expect(frechetTo(b)(a)).toBeCloseTo(frechetDistance(a, b), 9);
  });

  it("identical sets: FD about 0 with a tight interval", () => {
    const n = 2000;
    const d = 8;
    const x = gauss(n, d, 3);
    const ref = featureStats(x, n, d);
    const fd = frechetDistance(featureStats(x, n, d), ref);
    expect(Math.abs(fd)).toBeLessThan(1e-9);
    const b = bootstrapFrechet(x, n, d, ref, fd, { resamples: 50, seed: 1, z: 1.96, confidence: 0.95 });
    expect(b.lo).toBe(0);
    expect(b.hi).toBeLessThan(0.05); // against an FD of ~0.5 for a mean shift of 0.7 below
    expect(b.se).toBeGreaterThan(0);
  });

  it("contains the estimate, is deterministic for a seed, and its se matches the spread over independent sets", () => {
    const n = 400;
    const d = 4;
    const ref = featureStats(gauss(20000, d, 9), 20000, d);
    const fdOf = (seed: number) => {
      const x = gauss(n, d, seed, 0.7);
      return { x, fd: frechetDistance(featureStats(x, n, d), ref) };
    };
    const { x, fd } = fdOf(100);
    const o = { resamples: 200, seed: 7, z: 1.96, confidence: 0.95 };
    const b = bootstrapFrechet(x, n, d, ref, fd, o);
    expect(b.lo).toBeLessThan(fd);
    expect(b.hi).toBeGreaterThan(fd);
    expect(bootstrapFrechet(x, n, d, ref, fd, o)).toEqual(b);
    expect(bootstrapFrechet(x, n, d, ref, fd, { ...o, seed: 8 }).se).not.toBe(b.se);
    // the FD's actual spread over 40 independent sets of n: the bootstrap se estimates it
    const sd = meanInterval(Array.from({ length: 40 }, (_, i) => fdOf(200 + i).fd)).sd;
    expect(b.se / sd).toBeGreaterThan(0.6);
    expect(b.se / sd).toBeLessThan(1.6);
  });
});
