/**
 * A folder of PNG images with captions: `captions.jsonl` holds one JSON object per line,
 * `{"file": "a.png", "caption": "a red circle"}`. Images are converted to the spec's channel count
 * (gray -> RGB replicates; RGB -> gray uses luma 0.299 R + 0.587 G + 0.114 B; alpha is dropped)
 * and resized bilinearly (PyTorch align_corners=False semantics) to size x size when they differ.
 *
 * Pure parts: `parseCaptions`, `imageFolderFromBytes`. File access: `loadImageFolder`.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { isAbsolute, join, normalize, sep } from "node:path";
import { decodePng, ImageError } from "../image/png.ts";
import { checkIndex, DataError, resizeBilinearInto, type ImageTextDataset } from "./dataset.ts";

export interface CaptionEntry {
  file: string;
  caption: string;
  /** 1-based line number in captions.jsonl */
  line: number;
}

/** Parse captions.jsonl text. Blank lines are skipped; `what` names the file in errors ("<what>:<line>: ..."). */
export function parseCaptions(text: string, what: string): CaptionEntry[] {
  const out: CaptionEntry[] = [];
  const lines = text.split(/\r?\n/);
  for (let k = 0; k < lines.length; k++) {
    const line = k + 1;
    const src = lines[k].trim();
    if (src === "") continue;
    let obj: unknown;
    try {
      obj = JSON.parse(src);
    } catch (e) {
      throw new DataError(`${what}:${line}: not valid JSON (${(e as Error).message}); expected {"file": "name.png", "caption": "..."}`);
    }
    if (obj === null || typeof obj !== "object" || Array.isArray(obj)) throw new DataError(`${what}:${line}: expected a JSON object {"file": ..., "caption": ...}`);
    const { file, caption } = obj as { file?: unknown; caption?: unknown };
    if (typeof file !== "string" || file === "") throw new DataError(`${what}:${line}: "file" must be a non-empty string, got ${JSON.stringify(file)}`);
    if (typeof caption !== "string") throw new DataError(`${what}:${line}: "caption" must be a string, got ${JSON.stringify(caption)}`);
    const norm = normalize(file);
    if (isAbsolute(file) || norm === ".." || norm.startsWith(".." + sep) || norm.startsWith("../")) {
      throw new DataError(`${what}:${line}: "file" must be a path inside the folder, got ${JSON.stringify(file)}`);
    }
    out.push({ file, caption, line });
  }
  return out;
}

export interface ImageFolderOptions {
  /** output height and width */
  size: number;
  /** 1 (grayscale) or 3 (RGB) */
  channels: 1 | 3;
  /** dataset name (default "folder") */
  name?: string;
}

export interface ImageFolderDataset extends ImageTextDataset {
  readonly files: readonly string[];
  readonly captions: readonly string[];
  /** all images, [size, H, W, C], values in [-1, 1] */
  readonly pixels: Float32Array;
}

function checkOptions(opts: ImageFolderOptions, where: string): void {
  if (!Number.isInteger(opts.size) || opts.size < 1 || opts.size > 4096) throw new DataError(`${where}: size must be an integer in 1..4096, got ${String(opts.size)}`);
  if (opts.channels !== 1 && opts.channels !== 3) throw new DataError(`${where}: channels must be 1 or 3, got ${String(opts.channels)}`);
}

/** Convert a decoded [h, w, cIn] image to cOut channels. */
function convertChannels(data: Float32Array, pixels: number, cIn: number, cOut: number): Float32Array {
  if (cIn === cOut) return data;
  const out = new Float32Array(pixels * cOut);
  if (cIn === 1) {
    for (let p = 0; p < pixels; p++) out[3 * p] = out[3 * p + 1] = out[3 * p + 2] = data[p];
  } else {
    for (let p = 0; p < pixels; p++) out[p] = 0.299 * data[3 * p] + 0.587 * data[3 * p + 1] + 0.114 * data[3 * p + 2];
  }
  return out;
}

/** Build the dataset from the caption entries and each entry's PNG bytes (pure). `what(entry)` names an entry in errors. */
export function imageFolderFromBytes(
  entries: readonly (CaptionEntry & { bytes: Uint8Array })[],
  opts: ImageFolderOptions,
  what: (e: CaptionEntry) => string = (e) => `${e.file} (captions.jsonl line ${e.line})`,
): ImageFolderDataset {
  checkOptions(opts, "image folder");
  const name = opts.name ?? "folder";
  if (entries.length === 0) throw new DataError(`image folder '${name}': no images`);
  const { size, channels } = opts;
  const per = size * size * channels;
  const pixels = new Float32Array(entries.length * per);
  entries.forEach((e, i) => {
    let img;
    try {
      img = decodePng(e.bytes, what(e));
    } catch (err) {
      if (err instanceof ImageError) throw new DataError(err.message);
      throw err;
    }
    const conv = convertChannels(img.data, img.h * img.w, img.c, channels);
    if (img.h === size && img.w === size) pixels.set(conv, i * per);
    else resizeBilinearInto(conv, 0, img.h, img.w, channels, pixels, i * per, size, size);
  });
  const files = entries.map((e) => e.file);
  const captions = entries.map((e) => e.caption);
  const ds: ImageFolderDataset = {
    name,
    size: entries.length,
    height: size,
    width: size,
    channels,
    files,
    captions,
    pixels,
    image(i: number, out: Float32Array, offset: number): void {
      checkIndex(ds, i);
      out.set(pixels.subarray(i * per, (i + 1) * per), offset);
    },
    caption(i: number): string {
      checkIndex(ds, i);
      return captions[i];
    },
  };
  return ds;
}

/** Load `dir/captions.jsonl` and the PNGs it names. Throws DataError naming the file and line of any problem. */
export function loadImageFolder(dir: string, opts: ImageFolderOptions): ImageFolderDataset {
  checkOptions(opts, `image folder ${dir}`);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new DataError(`image folder ${dir}: no such directory`);
  const capPath = join(dir, "captions.jsonl");
  if (!existsSync(capPath)) {
    const pngs = readdirSync(dir).filter((f) => f.toLowerCase().endsWith(".png"));
    if (pngs.length === 0) throw new DataError(`image folder ${dir} is empty: it needs PNG images and a captions.jsonl naming them`);
    throw new DataError(`image folder ${dir}: missing ${capPath} (one line per image: {"file": "${pngs[0]}", "caption": "..."})`);
  }
  const entries = parseCaptions(readFileSync(capPath, "utf8"), capPath);
  if (entries.length === 0) throw new DataError(`${capPath}: no entries; the image folder ${dir} is empty`);
  const withBytes = entries.map((e) => {
    const p = join(dir, e.file);
    if (!existsSync(p)) throw new DataError(`${capPath}:${e.line}: file ${JSON.stringify(e.file)} does not exist (looked at ${p})`);
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(p);
    } catch (err) {
      throw new DataError(`${capPath}:${e.line}: cannot read ${p}: ${(err as Error).message}`);
    }
    return { ...e, bytes };
  });
  return imageFolderFromBytes(withBytes, { ...opts, name: opts.name ?? `folder:${dir}` }, (e) => `${join(dir, e.file)} (${capPath}:${e.line})`);
}
