/**
 * PNG encoding/decoding of channels-last float images in [-1, 1], and image grids laid out as
 * torchvision's `make_grid` does. Pure: bytes in, bytes out (pngjs does the PNG work).
 */
import { PNG } from "pngjs";

/** A PNG that cannot be decoded, or arguments that do not describe an image. */
export class ImageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ImageError";
  }
}

/** [-1, 1] -> 0..255 as torchvision's save_image does: round((x + 1) / 2 * 255), clamped. */
export function toByte(x: number): number {
  const v = Math.floor(((x + 1) / 2) * 255 + 0.5);
  return v < 0 ? 0 : v > 255 ? 255 : Number.isNaN(v) ? 0 : v;
}

function checkDims(where: string, length: number, n: number, h: number, w: number, c: number): void {
  for (const [name, v] of [["n", n], ["h", h], ["w", w]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new ImageError(`${where}: ${name} must be a positive integer, got ${v}`);
  }
  if (c !== 1 && c !== 3) throw new ImageError(`${where}: channels must be 1 or 3, got ${c}`);
  if (length !== n * h * w * c) throw new ImageError(`${where}: data has ${length} values, expected ${n}x${h}x${w}x${c} = ${n * h * w * c}`);
}

function pack(bytes: Uint8Array, h: number, w: number, c: 1 | 3): Uint8Array {
  const colorType = c === 1 ? 0 : 2;
  const png = { width: w, height: h, data: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) } as unknown as PNG;
  return new Uint8Array(PNG.sync.write(png, { colorType, inputColorType: colorType, inputHasAlpha: false, bitDepth: 8 }));
}

/** Encode one image [h, w, c] (c = 1 -> grayscale PNG, c = 3 -> RGB), values in [-1, 1] (clamped). */
export function encodeImagePng(data: Float32Array, h: number, w: number, c: number): Uint8Array {
  checkDims("encodeImagePng", data.length, 1, h, w, c);
  const bytes = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) bytes[i] = toByte(data[i]);
  return pack(bytes, h, w, c as 1 | 3);
}

export interface GridOptions {
  /** images per row (default ceil(sqrt(n))) */
  nrow?: number;
  /** pixels between and around images (default 2) */
  padding?: number;
  /** padding colour in image space [-1, 1] (default -1: black, as make_grid's pad_value 0 on [0, 1] images) */
  padValue?: number;
}

/** The grid's layout for n images: columns, rows and pixel size (torchvision make_grid). */
export function gridLayout(n: number, h: number, w: number, opts: GridOptions = {}): { cols: number; rows: number; height: number; width: number; padding: number } {
  const nrow = opts.nrow ?? Math.ceil(Math.sqrt(n));
  const padding = opts.padding ?? 2;
  if (!Number.isInteger(nrow) || nrow < 1) throw new ImageError(`image grid: nrow must be a positive integer, got ${nrow}`);
  if (!Number.isInteger(padding) || padding < 0) throw new ImageError(`image grid: padding must be a non-negative integer, got ${padding}`);
  const cols = Math.min(nrow, n);
  const rows = Math.ceil(n / cols);
  return { cols, rows, height: rows * (h + padding) + padding, width: cols * (w + padding) + padding, padding };
}

/** Lay out n images [n, h, w, c] in a grid (row-major, as torchvision make_grid) and encode it as PNG. */
export function encodeGridPng(images: Float32Array, n: number, h: number, w: number, c: number, opts: GridOptions = {}): Uint8Array {
  checkDims("encodeGridPng", images.length, n, h, w, c);
  const { cols, height, width, padding } = gridLayout(n, h, w, opts);
  const pad = toByte(opts.padValue ?? -1);
  const out = new Uint8Array(height * width * c).fill(pad);
  const per = h * w * c;
  for (let k = 0; k < n; k++) {
    const y0 = Math.floor(k / cols) * (h + padding) + padding;
    const x0 = (k % cols) * (w + padding) + padding;
    for (let y = 0; y < h; y++) {
      const src = k * per + y * w * c;
      const dst = ((y0 + y) * width + x0) * c;
      for (let i = 0; i < w * c; i++) out[dst + i] = toByte(images[src + i]);
    }
  }
  return pack(out, height, width, c as 1 | 3);
}

export interface DecodedImage {
  /** [h, w, c] channels-last, values in [-1, 1] */
  data: Float32Array;
  h: number;
  w: number;
  /** 1 for grayscale PNGs (with or without alpha), 3 for colour and palette PNGs; alpha is dropped */
  c: 1 | 3;
}

/** Decode a PNG (any bit depth / colour type; 16-bit is scaled to 8) to floats in [-1, 1]. */
export function decodePng(bytes: Uint8Array, what = "PNG image"): DecodedImage {
  let png: ReturnType<typeof PNG.sync.read>;
  try {
    png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (e) {
    throw new ImageError(`${what}: not a readable PNG (${(e as Error).message})`);
  }
  const h = png.height;
  const w = png.width;
  const c: 1 | 3 = png.color || png.palette ? 3 : 1;
  const rgba = png.data; // pngjs always hands back 8-bit RGBA
  const data = new Float32Array(h * w * c);
  for (let p = 0; p < h * w; p++) {
    for (let k = 0; k < c; k++) data[p * c + k] = (rgba[p * 4 + k] / 255) * 2 - 1;
  }
  return { data, h, w, c };
}

/** The prompts of a grid, one line per grid row, space-separated (as the reference prints them). */
export function promptsGridText(prompts: string[], nrow: number): string {
  if (!Number.isInteger(nrow) || nrow < 1) throw new ImageError(`promptsGridText: nrow must be a positive integer, got ${nrow}`);
  const lines: string[] = [];
  for (let i = 0; i < prompts.length; i += nrow) lines.push(prompts.slice(i, i + nrow).join(" "));
  return lines.join("\n");
}
