/**
 * Writes specs/data/mnist-latents.safetensors: a small committed latent dataset for the
 * latent-space spec (specs/sd3-latent.mdl). No VAE can be had here, so the "autoencoder" is an
 * exact linear one: each 4x4 patch of a 32x32 MNIST digit (16 pixels) is mixed by a fixed random
 * orthogonal 16x16 matrix Q into 16 latent channels, z = Q^T p, giving [8, 8, 16] latents; the
 * file carries the decoder p = Q z (decoder.weight = Q, factor 4, 1 channel), so grids and
 * `sdc eval` see digits again. Deterministic: the first N training digits, Q from a fixed seed.
 *
 *   npx tsx scripts/make-latents.ts [N]
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { loadMnist } from "../runtime/data/mnist.ts";
import { writeSafetensors } from "../runtime/io/safetensors.ts";
import { Rng } from "../runtime/util/rng.ts";

const N = Number(process.argv[2] ?? 512);
const F = 4;
const C = F * F;
const ds = loadMnist({ split: "train", size: 32 });

// a random orthogonal Q [16, 16] (Gram-Schmidt on normals), columns q_k
const rng = new Rng(16);
const g = rng.normals(C * C);
const Q = new Float64Array(C * C); // row-major [r, k]
for (let k = 0; k < C; k++) {
  const v = Array.from({ length: C }, (_, r) => g[r * C + k]);
  for (let j = 0; j < k; j++) {
    let d = 0;
    for (let r = 0; r < C; r++) d += v[r] * Q[r * C + j];
    for (let r = 0; r < C; r++) v[r] -= d * Q[r * C + j];
  }
  const n = Math.hypot(...v);
  for (let r = 0; r < C; r++) Q[r * C + k] = v[r] / n;
}

const h = 32 / F;
const latents = new Float32Array(N * h * h * C);
const labels = new Int32Array(N);
const img = new Float32Array(32 * 32);
for (let i = 0; i < N; i++) {
  ds.image(i, img, 0);
  labels[i] = ds.label(i);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < h; x++) {
      const p = new Float64Array(C);
      for (let py = 0; py < F; py++) for (let px = 0; px < F; px++) p[py * F + px] = img[(y * F + py) * 32 + x * F + px];
      const at = ((i * h + y) * h + x) * C;
      for (let k = 0; k < C; k++) {
        let s = 0;
        for (let r = 0; r < C; r++) s += Q[r * C + k] * p[r];
        latents[at + k] = s;
      }
    }
  }
}
mkdirSync("specs/data", { recursive: true });
const out = "specs/data/mnist-latents.safetensors";
writeFileSync(
  out,
  writeSafetensors(
    { latents: { shape: [N, h, h, C], data: latents }, labels: { shape: [N], data: labels }, "decoder.weight": { shape: [C, C], data: Float32Array.from(Q) } },
    { decoder_factor: String(F), decoder_channels: "1", about: "MNIST train digits 0..N-1 at 32x32, 4x4 patches mixed by a fixed orthogonal 16x16 matrix (scripts/make-latents.ts); decoder.weight inverts it exactly" },
  ),
);
console.log(`wrote ${out}: ${N} latents [${h}, ${h}, ${C}]`);
