/**
 * A latent tensor dataset (`data { source: latents  path: "x.safetensors" }`): the training
 * examples are latents, not pixels, as a latent-space SD3 (16 channels) trains on its VAE's
 * encodings. The file holds
 *   latents  F32 (or F16/BF16) [N, H, W, C], channels last
 *   labels   I32 or I64 [N], digit classes 0..9 (the prompts: "7" or "seven", as MNIST's)
 * and optionally a decoder for viewing samples (grids, `sdc sample`) and judging them (`sdc eval`):
 *   decoder.weight  F32 [f * f * c, C], decoder.bias F32 [f * f * c] (optional), metadata
 *   `decoder_factor` f and `decoder_channels` c: each latent position maps linearly to an f x f
 *   patch of c pixel channels (patch rows, then columns, then channels), as a linear latent
 *   preview (SD's "latent RGB factors": f = 1, c = 3) or an exact linear autoencoder.
 *
 * Pure parts: `latentDatasetFromFile`, `LatentDecoder`. File access: `loadLatents`.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { readSafetensors, type SafeFile, SafetensorsError } from "../io/safetensors.ts";
import { checkIndex, DataError, type ImageTextDataset } from "./dataset.ts";
import { digitPrompt } from "./mnist.ts";

/** A per-position linear map from latents [n, h, w, C] to pixels [n, h*f, w*f, c]. */
export class LatentDecoder {
  constructor(
    /** [f * f * c, C] */
    readonly weight: Float32Array,
    readonly bias: Float32Array | null,
    readonly inChannels: number,
    readonly factor: number,
    readonly channels: number,
  ) {
    if (weight.length !== factor * factor * channels * inChannels) throw new DataError(`latent decoder: weight has ${weight.length} values, expected [${factor * factor * channels}, ${inChannels}]`);
    if (bias && bias.length !== factor * factor * channels) throw new DataError(`latent decoder: bias has ${bias.length} values, expected ${factor * factor * channels}`);
  }

  /** The pixel dims of a latent [h, w, C]. */
  dims(h: number, w: number): [number, number, number] {
    return [h * this.factor, w * this.factor, this.channels];
  }

  /** Decode n latents [n, h, w, C] to pixels [n, h*f, w*f, c] (not clipped). */
  decode(z: Float32Array, n: number, h: number, w: number): Float32Array {
    const { factor: f, channels: c, inChannels: cin } = this;
    if (z.length !== n * h * w * cin) throw new DataError(`latent decoder: ${z.length} values are not ${n} latents of [${h}, ${w}, ${cin}]`);
    const outW = w * f;
    const out = new Float32Array(n * h * f * outW * c);
    const rows = f * f * c;
    const v = new Float32Array(rows);
    for (let b = 0; b < n; b++) {
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const src = ((b * h + y) * w + x) * cin;
          for (let r = 0; r < rows; r++) {
            let s = this.bias ? this.bias[r] : 0;
            for (let k = 0; k < cin; k++) s += this.weight[r * cin + k] * z[src + k];
            v[r] = s;
          }
          for (let py = 0; py < f; py++) {
            for (let px = 0; px < f; px++) {
              const dst = ((b * h * f + y * f + py) * outW + x * f + px) * c;
              for (let ch = 0; ch < c; ch++) out[dst + ch] = v[(py * f + px) * c + ch];
            }
          }
        }
      }
    }
    return out;
  }
}

export interface LatentDataset extends ImageTextDataset {
  /** how to view the latents as images, if the file says */
  readonly decoder: LatentDecoder | null;
  label(i: number): number;
}

/** The dataset in a read safetensors file, checked against the spec's [H, W, C]; `what` names it in errors. */
export function latentDatasetFromFile(file: SafeFile, what: string, dims: [number, number, number], name = "latents"): LatentDataset {
  const lat = file.tensors.get("latents");
  const lab = file.tensors.get("labels");
  if (!lat) throw new DataError(`${what}: no tensor 'latents' (expected latents [N, H, W, C] and labels [N])`);
  if (!lab) throw new DataError(`${what}: no tensor 'labels' (expected labels [N], digits 0..9)`);
  if (!(lat.data instanceof Float32Array)) throw new DataError(`${what}: 'latents' is ${lat.dtype}; give F32, F16 or BF16`);
  const [n, h, w, c] = lat.shape;
  if (lat.shape.length !== 4 || h !== dims[0] || w !== dims[1] || c !== dims[2]) throw new DataError(`${what}: 'latents' is [${lat.shape.join(", ")}], but the spec's data.image is [${dims.join(", ")}]: expected [N, ${dims.join(", ")}]`);
  if (!(n >= 1)) throw new DataError(`${what}: 'latents' holds no examples`);
  if (lab.dtype !== "I32" && lab.dtype !== "I64") throw new DataError(`${what}: 'labels' is ${lab.dtype}; give I32 or I64 digits`);
  if (lab.shape.length !== 1 || lab.shape[0] !== n) throw new DataError(`${what}: 'labels' is [${lab.shape.join(", ")}], expected [${n}] (one per latent)`);
  const labels = lab.data as Int32Array;
  const bad = labels.findIndex((v) => !(v >= 0 && v <= 9));
  if (bad >= 0) throw new DataError(`${what}: labels[${bad}] = ${labels[bad]} is not a digit 0..9`);
  const data = lat.data;
  for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i])) throw new DataError(`${what}: latents hold a non-finite value at element ${i}`);
  const per = h * w * c;
  return {
    name,
    size: n,
    height: h,
    width: w,
    channels: c,
    decoder: decoderFromFile(file, what, c),
    image(i, out, offset) {
      checkIndex(this, i);
      out.set(data.subarray(i * per, (i + 1) * per), offset);
    },
    caption(i, rng) {
      checkIndex(this, i);
      return digitPrompt(labels[i], rng);
    },
    label(i) {
      checkIndex(this, i);
      return labels[i];
    },
  };
}

function decoderFromFile(file: SafeFile, what: string, inChannels: number): LatentDecoder | null {
  const wt = file.tensors.get("decoder.weight");
  if (!wt) return null;
  const f = Number(file.metadata.decoder_factor ?? "1");
  const c = Number(file.metadata.decoder_channels ?? "");
  if (!Number.isInteger(f) || f < 1 || f > 64) throw new DataError(`${what}: metadata decoder_factor must be an integer 1..64, got ${JSON.stringify(file.metadata.decoder_factor)}`);
  if (c !== 1 && c !== 3) throw new DataError(`${what}: metadata decoder_channels must be 1 or 3, got ${JSON.stringify(file.metadata.decoder_channels)}`);
  if (!(wt.data instanceof Float32Array) || wt.shape.length !== 2 || wt.shape[0] !== f * f * c || wt.shape[1] !== inChannels) {
    throw new DataError(`${what}: 'decoder.weight' must be float [${f * f * c}, ${inChannels}] (f * f * channels, latent channels), got ${wt.dtype} [${wt.shape.join(", ")}]`);
  }
  const b = file.tensors.get("decoder.bias");
  if (b && (!(b.data instanceof Float32Array) || b.shape.length !== 1 || b.shape[0] !== f * f * c)) throw new DataError(`${what}: 'decoder.bias' must be float [${f * f * c}], got ${b.dtype} [${b.shape.join(", ")}]`);
  return new LatentDecoder(wt.data, (b?.data as Float32Array | undefined) ?? null, inChannels, f, c);
}

/** Largest latent file read whole. */
const MAX_LATENT_FILE = 4 * 2 ** 30;

/** Read a latent dataset file (a DataError names the file and what is wrong). */
export function loadLatents(path: string, dims: [number, number, number]): LatentDataset {
  if (!existsSync(path)) throw new DataError(`latent dataset not found: ${path} (data.path, relative to the working directory)`);
  const st = statSync(path);
  if (!st.isFile()) throw new DataError(`latent dataset ${path} is not a file; give a .safetensors file`);
  if (st.size > MAX_LATENT_FILE) throw new DataError(`latent dataset ${path} is ${(st.size / 2 ** 30).toFixed(1)} GiB; at most ${MAX_LATENT_FILE / 2 ** 30} GiB is read`);
  let file: SafeFile;
  try {
    file = readSafetensors(readFileSync(path), path);
  } catch (e) {
    if (e instanceof SafetensorsError) throw new DataError(e.message);
    throw e;
  }
  return latentDatasetFromFile(file, path, dims, `latents:${path}`);
}
