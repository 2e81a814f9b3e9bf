/** A spec's dataset, loaded from what its IR names, and how its samples become pictures. */
import type { IR } from "../../ir/ir.ts";
import { DataError, type ImageTextDataset } from "./dataset.ts";
import { loadImageFolder } from "./folder.ts";
import { type LatentDataset, loadLatents } from "./latents.ts";
import { loadMnist } from "./mnist.ts";

/** Samples in a latent space -> images (a LatentDecoder): [n, H, W, C] -> [n, ...dims]. */
export interface ImageDecoder {
  /** the decoded image's [h, w, c] */
  dims: [number, number, number];
  decode(z: Float32Array, n: number): Float32Array;
}

/** The dataset a spec names (data.source mnist, latents or folder), at the spec's image size. */
export function loadDataset(ir: IR, split: "train" | "test"): ImageTextDataset {
  const d = ir.data;
  if (d.source === "mnist") {
    const ds = loadMnist({ split, size: d.height });
    if (d.width !== d.height) throw new DataError(`MNIST images are square; the spec asks for ${d.height}x${d.width}`);
    if (d.channels === 1) return ds;
    // a 3-channel spec on MNIST: replicate the gray channel
    const per = d.height * d.width;
    const tmp = new Float32Array(per);
    return {
      name: `${ds.name} (3 channels)`, size: ds.size, height: ds.height, width: ds.width, channels: 3,
      image(i, out, off) {
        ds.image(i, tmp, 0);
        for (let p = 0; p < per; p++) out[off + 3 * p] = out[off + 3 * p + 1] = out[off + 3 * p + 2] = tmp[p];
      },
      caption: (i, rng) => ds.caption(i, rng),
      label: (i) => ds.label(i),
    };
  }
  if (d.source === "latents") {
    if (!d.path) throw new DataError("data.source latents needs data.path");
    return loadLatents(d.path, [d.height, d.width, d.channels]);
  }
  if (!d.path) throw new DataError("data.source folder needs data.path");
  if (d.height !== d.width) throw new DataError(`the folder source resizes to square images; the spec asks for ${d.height}x${d.width}`);
  return loadImageFolder(d.path, { size: d.height, channels: d.channels as 1 | 3 });
}

/**
 * How a spec's samples become pictures: identity for pixel data; for a latent dataset with a
 * decoder, the decoder (latents [n, H, W, C] -> pixels). `ds` is the loaded dataset, if any.
 */
export function sampleViewer(ir: IR, ds?: ImageTextDataset): ImageDecoder | undefined {
  if (ir.data.source !== "latents") return undefined;
  const lat = (ds as LatentDataset | undefined) ?? (loadDataset(ir, "train") as LatentDataset);
  const dec = lat.decoder;
  if (!dec) return undefined;
  const [h, w] = [ir.data.height, ir.data.width];
  return { dims: dec.dims(h, w), decode: (z, n) => dec.decode(z, n, h, w) };
}
