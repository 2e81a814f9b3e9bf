/**
 * The cost of the FD's bootstrap interval (npx tsx bench/frechet.ts): at d = 128 judge features
 * and n = 1,000 generated images, the median over interleaved rounds of
 *   - the FD by frechetDistance (Jacobi for sqrt(C_ref), Householder + QL for the product's eigenvalues)
 *   - the FD with the Jacobi eigenvalues for the product too (the method before the bootstrap)
 *   - one bootstrap resample: featureStats of the resampled set + frechetTo (sqrt(C_ref) computed once)
 * and the ratio. Synthetic Gaussian features (the cost does not depend on the values). --rounds N.
 */
import { featureStats, frechetDistance, frechetTo, sqrtPsd, symmetricEigen } from "../runtime/eval/frechet.ts";
import { Rng } from "../runtime/util/rng.ts";

const rounds = Number(process.argv[process.argv.indexOf("--rounds") + 1]) || 5;
const d = 128;
const n = 1000;
const rng = new Rng(1);
const gen = rng.normals(n * d);
const refStats = featureStats(rng.normals(4 * n * d), 4 * n, d);
const genStats = featureStats(gen, n, d);

function jacobiFd(): number {
  const s1 = sqrtPsd(refStats.cov, d);
  const m = new Float64Array(d * d);
  const t = new Float64Array(d * d);
  for (let i = 0; i < d; i++) for (let k = 0; k < d; k++) for (let j = 0; j < d; j++) t[i * d + j] += s1[i * d + k] * genStats.cov[k * d + j];
  for (let i = 0; i < d; i++) for (let k = 0; k < d; k++) for (let j = 0; j < d; j++) m[i * d + j] += t[i * d + k] * s1[k * d + j];
  const { values } = symmetricEigen(m, d, false);
  let tr = 0;
  let mean = 0;
  let t1 = 0;
  let t2 = 0;
  for (let i = 0; i < d; i++) {
    tr += Math.sqrt(Math.max(0, values[i]));
    mean += (refStats.mu[i] - genStats.mu[i]) ** 2;
    t1 += refStats.cov[i * d + i];
    t2 += genStats.cov[i * d + i];
  }
  return mean + t1 + t2 - 2 * tr;
}

const to = frechetTo(refStats);
const buf = new Float64Array(n * d);
function resample(): number {
  for (let i = 0; i < n; i++) {
    const src = rng.int(n);
    for (let j = 0; j < d; j++) buf[i * d + j] = gen[src * d + j];
  }
  return to(featureStats(buf, n, d));
}

const time = (f: () => number) => {
  const t0 = performance.now();
  f();
  return performance.now() - t0;
};
const runs: Record<string, number[]> = { "fd (QL)": [], "fd (Jacobi)": [], "bootstrap resample": [] };
for (let r = 0; r < rounds; r++) {
  runs["fd (QL)"].push(time(() => frechetDistance(genStats, refStats)));
  runs["fd (Jacobi)"].push(time(jacobiFd));
  runs["bootstrap resample"].push(time(resample));
}
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`d = ${d}, n = ${n}, ${rounds} interleaved rounds, median ms (same FD: ${Math.abs(frechetDistance(genStats, refStats) - jacobiFd()).toExponential(1)} apart)`);
for (const [k, v] of Object.entries(runs)) console.log(`${k.padEnd(20)} ${med(v).toFixed(1)} ms`);
console.log(`Jacobi / QL: ${(med(runs["fd (Jacobi)"]) / med(runs["fd (QL)"])).toFixed(2)}x; 100 resamples: ${((100 * med(runs["bootstrap resample"])) / 1000).toFixed(1)} s per CFG scale`);
