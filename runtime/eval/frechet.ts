/**
 * The Fréchet distance between two Gaussians fitted to feature sets (the FID formula,
 * Heusel et al. 2017), in Float64 on the CPU with no dependencies:
 *   d^2 = |mu1 - mu2|^2 + tr(C1) + tr(C2) - 2 tr(sqrt(C1 C2)).
 * tr(sqrt(C1 C2)) is computed stably as the sum of the square roots of the (clamped >= 0)
 * eigenvalues of the symmetric PSD matrix sqrt(C1) C2 sqrt(C1), which is similar to C1 C2.
 * bootstrapFrechet: the FD's standard error over resamples of the generated set (the reference fixed).
 */
import { Rng } from "../util/rng.ts";

export interface FeatureStats {
  /** Feature means, length d. */
  mu: Float64Array;
  /** Row-major d x d covariance, unbiased (divides by n - 1) as numpy.cov. */
  cov: Float64Array;
}

/** Mean and unbiased covariance of n row-major feature vectors of dimension d. */
export function featureStats(features: Float64Array | Float32Array, n: number, d: number): FeatureStats {
  if (!Number.isInteger(n) || n < 2) throw new RangeError(`featureStats: n must be an integer >= 2, got ${n}`);
  if (!Number.isInteger(d) || d < 1) throw new RangeError(`featureStats: d must be a positive integer, got ${d}`);
  if (features.length !== n * d) throw new RangeError(`featureStats: features has length ${features.length}, expected n*d = ${n * d}`);
  const mu = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mu[j] += features[i * d + j];
  for (let j = 0; j < d; j++) mu[j] /= n;
  const cov = new Float64Array(d * d);
  const row = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) row[j] = features[i * d + j] - mu[j];
    for (let a = 0; a < d; a++) {
      const ra = row[a];
      if (ra === 0) continue;
      const off = a * d;
      for (let b = a; b < d; b++) cov[off + b] += ra * row[b];
    }
  }
  for (let a = 0; a < d; a++) {
    for (let b = a; b < d; b++) {
      const v = cov[a * d + b] / (n - 1);
      cov[a * d + b] = v;
      cov[b * d + a] = v;
    }
  }
  if (!mu.every(Number.isFinite)) throw new RangeError("featureStats: features contain non-finite values");
  return { mu, cov };
}

/**
 * Eigen-decomposition of a symmetric n x n matrix (row-major) by the cyclic Jacobi method in
 * Float64. Returns the eigenvalues and, when `vectors` is true, the eigenvectors as the COLUMNS
 * of a row-major n x n matrix (A = V diag(values) V^T). The input is not modified.
 */
export function symmetricEigen(a: Float64Array, n: number, vectors = true): { values: Float64Array; vectors: Float64Array | null } {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`symmetricEigen: n must be a positive integer, got ${n}`);
  if (a.length !== n * n) throw new RangeError(`symmetricEigen: matrix has length ${a.length}, expected n*n = ${n * n}`);
  const m = Float64Array.from(a);
  // Symmetrize to wash out round-off asymmetry of the input.
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) m[i * n + j] = m[j * n + i] = 0.5 * (m[i * n + j] + m[j * n + i]);
  const v = vectors ? new Float64Array(n * n) : null;
  if (v) for (let i = 0; i < n; i++) v[i * n + i] = 1;
  let scale = 0;
  for (let i = 0; i < n * n; i++) scale += m[i] * m[i];
  if (!Number.isFinite(scale)) throw new RangeError("symmetricEigen: matrix contains non-finite values");
  // Stop when the off-diagonal norm is below ~1e-13 of the matrix norm (eigenvalue error ~ off^2).
  const tol = 1e-26 * scale;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += m[p * n + q] * m[p * n + q];
    if (off <= tol || off === 0) break;
    for (let p = 0; p < n - 1; p++) {
      const rp = p * n;
      for (let q = p + 1; q < n; q++) {
        const rq = q * n;
        const apq = m[rp + q];
        if (apq === 0) continue;
        const app = m[rp + p];
        const aqq = m[rq + q];
        // After a few sweeps, zero entries negligible next to both diagonal entries (as Numerical Recipes).
        const g = 100 * Math.abs(apq);
        if (sweep > 3 && Math.abs(app) + g === Math.abs(app) && Math.abs(aqq) + g === Math.abs(aqq)) {
          m[rp + q] = m[rq + p] = 0;
          continue;
        }
        const theta = (aqq - app) / (2 * apq);
        const t = (theta >= 0 ? 1 : -1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        // A <- J^T A J with J = rotation in the (p, q) plane: J_pp = J_qq = c, J_pq = s, J_qp = -s.
        // A stays symmetric: rows p and q are read contiguously and mirrored into columns p and q.
        for (let k = 0; k < n; k++) {
          if (k === p || k === q) continue;
          const akp = m[rp + k];
          const akq = m[rq + k];
          const np = c * akp - s * akq;
          const nq = s * akp + c * akq;
          m[rp + k] = np;
          m[k * n + p] = np;
          m[rq + k] = nq;
          m[k * n + q] = nq;
        }
        m[rp + p] = app - t * apq;
        m[rq + q] = aqq + t * apq;
        m[rp + q] = m[rq + p] = 0;
        if (v) {
          // v holds V^T (eigenvectors as rows) while iterating, so this update is contiguous.
          for (let k = 0; k < n; k++) {
            const vkp = v[rp + k];
            const vkq = v[rq + k];
            v[rp + k] = c * vkp - s * vkq;
            v[rq + k] = s * vkp + c * vkq;
          }
        }
      }
    }
  }
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = m[i * n + i];
  let vecs: Float64Array | null = null;
  if (v) {
    vecs = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) vecs[i * n + k] = v[k * n + i];
  }
  return { values, vectors: vecs };
}

/**
 * Eigenvalues (unordered) of a symmetric n x n matrix (row-major): Householder reduction to
 * tridiagonal form, then the implicit QL iteration (tred2 and tqli of Numerical Recipes, without
 * eigenvectors). About (4/3) n^3 operations: far cheaper than Jacobi's sweeps, for the bootstrap.
 */
export function symmetricEigenvalues(a: Float64Array, n: number): Float64Array {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`symmetricEigenvalues: n must be a positive integer, got ${n}`);
  if (a.length !== n * n) throw new RangeError(`symmetricEigenvalues: matrix has length ${a.length}, expected n*n = ${n * n}`);
  const z = Float64Array.from(a);
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) z[i * n + j] = z[j * n + i] = 0.5 * (z[i * n + j] + z[j * n + i]);
  if (!z.every(Number.isFinite)) throw new RangeError("symmetricEigenvalues: matrix contains non-finite values");
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  // Householder: the lower triangle of z becomes tridiagonal (diagonal d, sub-diagonal e[1..])
  for (let i = n - 1; i > 0; i--) {
    const l = i - 1;
    const ri = i * n;
    let h = 0;
    if (l > 0) {
      let scale = 0;
      for (let k = 0; k < i; k++) scale += Math.abs(z[ri + k]);
      if (scale === 0) e[i] = z[ri + l];
      else {
        for (let k = 0; k < i; k++) {
          z[ri + k] /= scale;
          h += z[ri + k] * z[ri + k];
        }
        let f = z[ri + l];
        let g = f >= 0 ? -Math.sqrt(h) : Math.sqrt(h);
        e[i] = scale * g;
        h -= f * g;
        z[ri + l] = f - g;
        f = 0;
        for (let j = 0; j < i; j++) {
          g = 0;
          for (let k = 0; k <= j; k++) g += z[j * n + k] * z[ri + k];
          for (let k = j + 1; k < i; k++) g += z[k * n + j] * z[ri + k];
          e[j] = g / h;
          f += e[j] * z[ri + j];
        }
        const hh = f / (h + h);
        for (let j = 0; j < i; j++) {
          f = z[ri + j];
          g = e[j] - hh * f;
          e[j] = g;
          for (let k = 0; k <= j; k++) z[j * n + k] -= f * e[k] + g * z[ri + k];
        }
      }
    } else e[i] = z[ri + l];
  }
  for (let i = 0; i < n; i++) d[i] = z[i * n + i];
  // implicit QL with Wilkinson shifts on the tridiagonal matrix
  for (let i = 1; i < n; i++) e[i - 1] = e[i];
  e[n - 1] = 0;
  for (let l = 0; l < n; l++) {
    let iter = 0;
    let m: number;
    do {
      for (m = l; m < n - 1; m++) {
        const dd = Math.abs(d[m]) + Math.abs(d[m + 1]);
        if (Math.abs(e[m]) <= Number.EPSILON * dd) break;
      }
      if (m !== l) {
        if (iter++ === 60) throw new RangeError("symmetricEigenvalues: the QL iteration did not converge");
        let g = (d[l + 1] - d[l]) / (2 * e[l]);
        let r = Math.hypot(g, 1);
        g = d[m] - d[l] + e[l] / (g + (g >= 0 ? Math.abs(r) : -Math.abs(r)));
        let s = 1;
        let c = 1;
        let p = 0;
        let i: number;
        for (i = m - 1; i >= l; i--) {
          const f = s * e[i];
          const b = c * e[i];
          r = Math.hypot(f, g);
          e[i + 1] = r;
          if (r === 0) {
            d[i + 1] -= p;
            e[m] = 0;
            break;
          }
          s = f / r;
          c = g / r;
          g = d[i + 1] - p;
          r = (d[i] - g) * s + 2 * c * b;
          p = s * r;
          d[i + 1] = g + p;
          g = c * r - b;
        }
        if (r === 0 && i >= l) continue;
        d[l] -= p;
        e[l] = g;
        e[m] = 0;
      }
    } while (m !== l);
  }
  return d;
}

/** Row-major product of n x n matrices. */
function matmul(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < n; k++) {
      const aik = a[i * n + k];
      if (aik === 0) continue;
      const bo = k * n;
      const oo = i * n;
      for (let j = 0; j < n; j++) out[oo + j] += aik * b[bo + j];
    }
  }
  return out;
}

/** The PSD square root of a symmetric PSD matrix (negative eigenvalues clamped to 0). */
export function sqrtPsd(a: Float64Array, n: number): Float64Array {
  const { values, vectors } = symmetricEigen(a, n, true);
  const v = vectors!;
  const out = new Float64Array(n * n);
  for (let k = 0; k < n; k++) {
    const r = Math.sqrt(Math.max(0, values[k]));
    if (r === 0) continue;
    for (let i = 0; i < n; i++) {
      const vik = v[i * n + k] * r;
      if (vik === 0) continue;
      for (let j = 0; j < n; j++) out[i * n + j] += vik * v[j * n + k];
    }
  }
  return out;
}

/** tr(sqrt(C1 C2)) for symmetric PSD C1, C2, via the eigenvalues of sqrt(C1) C2 sqrt(C1). */
export function traceSqrtProduct(c1: Float64Array, c2: Float64Array, d: number): number {
  return traceSqrtWith(sqrtPsd(c1, d), c2, d);
}

/** tr(sqrt(C1 C2)) given s1 = sqrt(C1) (the reference's, computed once for many C2). */
function traceSqrtWith(s1: Float64Array, c2: Float64Array, d: number): number {
  const m = matmul(matmul(s1, c2, d), s1, d);
  const values = symmetricEigenvalues(m, d);
  let tr = 0;
  for (let i = 0; i < d; i++) tr += Math.sqrt(Math.max(0, values[i]));
  return tr;
}

function checkStats(s: FeatureStats, name: string): number {
  if (!s || !(s.mu instanceof Float64Array) || !(s.cov instanceof Float64Array)) throw new TypeError(`frechetDistance: ${name} must be { mu: Float64Array, cov: Float64Array }`);
  const d = s.mu.length;
  if (d < 1) throw new RangeError(`frechetDistance: ${name}.mu is empty`);
  if (s.cov.length !== d * d) throw new RangeError(`frechetDistance: ${name}.cov has length ${s.cov.length}, expected ${d}*${d} = ${d * d}`);
  return d;
}

/** |mu1 - mu2|^2 + tr(C1) + tr(C2) - 2 tr(sqrt(C1 C2)); symmetric in its arguments, >= 0 up to round-off. */
export function frechetDistance(a: FeatureStats, b: FeatureStats): number {
  const d = checkStats(a, "a");
  const db = checkStats(b, "b");
  if (d !== db) throw new RangeError(`frechetDistance: dimensions differ: a has ${d}, b has ${db}`);
  let meanTerm = 0;
  for (let i = 0; i < d; i++) meanTerm += (a.mu[i] - b.mu[i]) ** 2;
  let tr1 = 0;
  let tr2 = 0;
  for (let i = 0; i < d; i++) {
    tr1 += a.cov[i * d + i];
    tr2 += b.cov[i * d + i];
  }
  const cross = traceSqrtProduct(a.cov, b.cov, d);
  return meanTerm + tr1 + tr2 - 2 * cross;
}

/**
 * The Fréchet distance of many feature sets to one reference (sqrt of its covariance computed
 * once): for the bootstrap, where the reference stays and the generated set is resampled.
 */
export function frechetTo(ref: FeatureStats): (s: FeatureStats) => number {
  const d = checkStats(ref, "ref");
  const s1 = sqrtPsd(ref.cov, d);
  let tr1 = 0;
  for (let i = 0; i < d; i++) tr1 += ref.cov[i * d + i];
  return (s) => {
    if (checkStats(s, "s") !== d) throw new RangeError(`frechetTo: dimensions differ: the reference has ${d}, got ${s.mu.length}`);
    let meanTerm = 0;
    let tr2 = 0;
    for (let i = 0; i < d; i++) {
      meanTerm += (s.mu[i] - ref.mu[i]) ** 2;
      tr2 += s.cov[i * d + i];
    }
    return meanTerm + tr1 + tr2 - 2 * traceSqrtWith(s1, s.cov, d);
  };
}

export interface FrechetBootstrap {
  /** resamples drawn */
  resamples: number;
  /** standard deviation of the resampled FDs: the FD's standard error */
  se: number;
  /** FD ± z·se at `confidence`, clipped at 0 (a normal bootstrap interval: it holds the point estimate) */
  lo: number;
  hi: number;
  confidence: number;
}

/**
 * The bootstrap of the FD of n generated feature vectors [n, d] against fixed reference statistics:
 * `resamples` sets of n drawn with replacement (seeded), the FD of each, their standard deviation
 * as the standard error, and the normal interval FD ± z·se around the point estimate `fd`. Only
 * the spread is used: resampled sets repeat images, which biases their FD upwards, so their
 * percentiles would not bracket the estimate. Deterministic for a seed.
 */
export function bootstrapFrechet(features: Float32Array | Float64Array, n: number, d: number, ref: FeatureStats, fd: number, o: { resamples: number; seed: number; z: number; confidence: number; to?: (s: FeatureStats) => number }): FrechetBootstrap {
  if (!Number.isInteger(o.resamples) || o.resamples < 2) throw new RangeError(`bootstrapFrechet: resamples must be an integer >= 2, got ${o.resamples}`);
  if (features.length !== n * d) throw new RangeError(`bootstrapFrechet: features has length ${features.length}, expected n*d = ${n * d}`);
  const to = o.to ?? frechetTo(ref);
  const rng = new Rng(o.seed);
  const buf = new Float64Array(n * d);
  const fds: number[] = [];
  for (let b = 0; b < o.resamples; b++) {
    for (let i = 0; i < n; i++) {
      const src = rng.int(n);
      for (let j = 0; j < d; j++) buf[i * d + j] = features[src * d + j];
    }
    fds.push(to(featureStats(buf, n, d)));
  }
  const mean = fds.reduce((a, x) => a + x, 0) / fds.length;
  const se = Math.sqrt(fds.reduce((a, x) => a + (x - mean) ** 2, 0) / (fds.length - 1));
  return { resamples: o.resamples, se, lo: Math.max(0, fd - o.z * se), hi: fd + o.z * se, confidence: o.confidence };
}
