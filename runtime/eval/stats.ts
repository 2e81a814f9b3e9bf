/**
 * Intervals and tests for eval numbers, pure and dependency-free (Float64):
 *   - wilsonInterval: a binomial proportion's score interval (Wilson 1927), for prompt accuracy;
 *   - meanInterval: the Student-t interval of a mean, for a metric over seeds;
 *   - welchTest: Welch's unequal-variance t-test of two means (two-sided);
 *   - holm: Holm's step-down adjustment of p-values for several comparisons;
 * and the distributions under them: the standard normal (cdf, quantile) and Student's t (cdf,
 * quantile, through the regularized incomplete beta function).
 */

export interface Interval {
  lo: number;
  hi: number;
}

// ---------------------------------------------------------------- distributions

/** ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms; ~1e-15 relative). */
export function logGamma(x: number): number {
  if (!(x > 0)) throw new RangeError(`logGamma: x must be > 0, got ${x}`);
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const c = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
  const z = x - 1;
  let a = c[0];
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += c[i] / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Continued fraction of the incomplete beta function (modified Lentz). */
function betaFraction(a: number, b: number, x: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 500; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-15) break;
  }
  return h;
}

/** The regularized incomplete beta function I_x(a, b), a, b > 0, x in [0, 1]. */
export function betaIncReg(a: number, b: number, x: number): number {
  if (!(a > 0) || !(b > 0)) throw new RangeError(`betaIncReg: a and b must be > 0, got ${a}, ${b}`);
  if (!(x >= 0 && x <= 1)) throw new RangeError(`betaIncReg: x must be in [0, 1], got ${x}`);
  if (x === 0 || x === 1) return x;
  const front = Math.exp(logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log(1 - x));
  return x < (a + 1) / (a + b + 2) ? (front * betaFraction(a, b, x)) / a : 1 - (front * betaFraction(b, a, 1 - x)) / b;
}

/** P(T <= t) for Student's t with df > 0 degrees of freedom (df may be fractional, as Welch's). */
export function studentTCdf(t: number, df: number): number {
  if (!(df > 0)) throw new RangeError(`studentTCdf: df must be > 0, got ${df}`);
  if (Number.isNaN(t)) return NaN;
  if (!Number.isFinite(t)) return t > 0 ? 1 : 0;
  const tail = 0.5 * betaIncReg(df / 2, 0.5, df / (df + t * t)); // P(T > |t|)
  return t >= 0 ? 1 - tail : tail;
}

/** The p-quantile of Student's t with df degrees of freedom (bisection on the cdf, to ~1e-12). */
export function studentTQuantile(p: number, df: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`studentTQuantile: p must be in (0, 1), got ${p}`);
  if (!(df > 0)) throw new RangeError(`studentTQuantile: df must be > 0, got ${df}`);
  if (p === 0.5) return 0;
  if (p < 0.5) return -studentTQuantile(1 - p, df);
  let lo = 0;
  let hi = 1;
  while (studentTCdf(hi, df) < p) hi *= 2;
  for (let i = 0; i < 200 && hi - lo > 1e-12 * Math.max(1, hi); i++) {
    const mid = 0.5 * (lo + hi);
    if (studentTCdf(mid, df) < p) lo = mid;
    else hi = mid;
  }
  return 0.5 * (lo + hi);
}

/** P(Z <= z) for the standard normal: erfc through the regularized incomplete gamma function Q(1/2, z²/2). */
export function normalCdf(z: number): number {
  if (Number.isNaN(z)) return NaN;
  // Φ(z) = 0.5 erfc(-z / √2); erfc via the regularized incomplete gamma Q(1/2, x²) (series / continued fraction)
  const x = Math.abs(z) / Math.SQRT2;
  const q = gammaQHalf(x * x);
  return z >= 0 ? 1 - 0.5 * q : 0.5 * q;
}

/** Q(1/2, y) = erfc(√y), the upper regularized incomplete gamma function at a = 1/2. */
function gammaQHalf(y: number): number {
  if (y === 0) return 1;
  const a = 0.5;
  const lg = logGamma(a);
  if (y < a + 1) {
    // series for P(a, y)
    let sum = 1 / a;
    let del = sum;
    for (let n = 1; n < 500; n++) {
      del *= y / (a + n);
      sum += del;
      if (Math.abs(del) < Math.abs(sum) * 1e-16) break;
    }
    return 1 - sum * Math.exp(-y + a * Math.log(y) - lg);
  }
  // continued fraction for Q(a, y) (modified Lentz)
  const tiny = 1e-300;
  let b = y + 1 - a;
  let c = 1 / tiny;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 500; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-16) break;
  }
  return Math.exp(-y + a * Math.log(y) - lg) * h;
}

/** The p-quantile of the standard normal (bisection on normalCdf, to ~1e-13). */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`normalQuantile: p must be in (0, 1), got ${p}`);
  if (p === 0.5) return 0;
  if (p < 0.5) return -normalQuantile(1 - p);
  let lo = 0;
  let hi = 1;
  while (normalCdf(hi) < p) hi *= 2;
  for (let i = 0; i < 200 && hi - lo > 1e-13; i++) {
    const mid = 0.5 * (lo + hi);
    if (normalCdf(mid) < p) lo = mid;
    else hi = mid;
  }
  return 0.5 * (lo + hi);
}

function checkConfidence(conf: number, what: string): void {
  if (!(conf > 0 && conf < 1)) throw new RangeError(`${what}: confidence must be in (0, 1), got ${conf}`);
}

// ---------------------------------------------------------------- intervals

/** The Wilson score interval of a proportion k / n at `conf` (default 95%); [NaN, NaN] when n = 0. */
export function wilsonInterval(k: number, n: number, conf = 0.95): Interval {
  checkConfidence(conf, "wilsonInterval");
  if (!Number.isInteger(n) || n < 0 || !Number.isInteger(k) || k < 0 || k > n) throw new RangeError(`wilsonInterval: need integers 0 <= k <= n, got k = ${k}, n = ${n}`);
  if (n === 0) return { lo: NaN, hi: NaN };
  const z = normalQuantile(1 - (1 - conf) / 2);
  const p = k / n;
  const z2 = z * z;
  const centre = (p + z2 / (2 * n)) / (1 + z2 / n);
  const half = (z / (1 + z2 / n)) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  // exact at the ends (k = 0: lo = 0; k = n: hi = 1), without round-off
  return { lo: k === 0 ? 0 : Math.max(0, centre - half), hi: k === n ? 1 : Math.min(1, centre + half) };
}

export interface MeanInterval extends Interval {
  mean: number;
  /** sample standard deviation (n - 1); NaN for n < 2 */
  sd: number;
  n: number;
}

/** Mean and its Student-t interval at `conf` (default 95%); lo = hi = NaN with fewer than 2 values. Non-finite values are refused. */
export function meanInterval(xs: readonly number[], conf = 0.95): MeanInterval {
  checkConfidence(conf, "meanInterval");
  const n = xs.length;
  if (!xs.every(Number.isFinite)) throw new RangeError(`meanInterval: values must be finite, got ${xs.join(", ")}`);
  if (n === 0) return { mean: NaN, sd: NaN, n, lo: NaN, hi: NaN };
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  if (n < 2) return { mean, sd: NaN, n, lo: NaN, hi: NaN };
  const sd = Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1));
  const half = studentTQuantile(1 - (1 - conf) / 2, n - 1) * (sd / Math.sqrt(n));
  return { mean, sd, n, lo: mean - half, hi: mean + half };
}

// ---------------------------------------------------------------- tests

export interface TestResult {
  /** the t statistic */
  stat: number;
  /** degrees of freedom (Welch-Satterthwaite) */
  df: number;
  /** two-sided p-value */
  p: number;
}

/**
 * Welch's t-test of mean(a) = mean(b), two-sided, with the Welch-Satterthwaite degrees of
 * freedom. Needs 2+ values per group; two groups without spread give p = 0 (different means) or 1.
 */
export function welchTest(a: readonly number[], b: readonly number[]): TestResult {
  if (a.length < 2 || b.length < 2) throw new RangeError(`welchTest: each group needs 2 or more values, got ${a.length} and ${b.length}`);
  const A = meanInterval(a);
  const B = meanInterval(b);
  const va = (A.sd * A.sd) / a.length;
  const vb = (B.sd * B.sd) / b.length;
  const diff = A.mean - B.mean;
  if (va + vb === 0) return { stat: diff === 0 ? 0 : Math.sign(diff) * Infinity, df: a.length + b.length - 2, p: diff === 0 ? 1 : 0 };
  const t = diff / Math.sqrt(va + vb);
  const df = (va + vb) ** 2 / ((va * va) / (a.length - 1) + (vb * vb) / (b.length - 1));
  return { stat: t, df, p: Math.min(1, 2 * studentTCdf(-Math.abs(t), df)) };
}

/**
 * Holm's step-down adjustment: adjusted p-values (same order as given), monotone, <= 1. A
 * hypothesis is rejected at family-wise level alpha when its adjusted p is <= alpha.
 */
export function holm(ps: readonly number[]): number[] {
  const m = ps.length;
  const order = ps.map((p, i) => [p, i] as const).sort((x, y) => x[0] - y[0]);
  const out = new Array<number>(m);
  let running = 0;
  order.forEach(([p, i], rank) => {
    running = Math.max(running, Math.min(1, (m - rank) * p));
    out[i] = running;
  });
  return out;
}
