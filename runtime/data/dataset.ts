/**
 * Image-text datasets for training: the `ImageTextDataset` interface every source implements
 * (MNIST, a folder of PNGs), the shared bilinear resize, and `BatchSampler`, which walks
 * seeded shuffled epochs and can be saved and restored so a resumed run continues exactly.
 * Pure: no file-system access here.
 */
import { Rng } from "../util/rng.ts";

/** A user-facing data problem (missing file, malformed input, bad argument). The message is plain and printable. */
export class DataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DataError";
  }
}

export interface ImageTextDataset {
  readonly name: string;
  readonly size: number;
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  /** copy image i ([H, W, C], values in [-1, 1]) into out at offset */
  image(i: number, out: Float32Array, offset: number): void;
  /** the caption/prompt for item i; may use rng (MNIST: numeral or word) */
  caption(i: number, rng: Rng): string;
  /** label for item i if the dataset has one (MNIST digit), else undefined */
  label?(i: number): number;
}

/** Check an item index; throws DataError naming the dataset. */
export function checkIndex(ds: { name: string; size: number }, i: number): void {
  if (!Number.isInteger(i) || i < 0 || i >= ds.size) {
    throw new DataError(`dataset '${ds.name}': index ${i} is out of range [0, ${ds.size})`);
  }
}

// ---------------------------------------------------------------------------------------------
// Bilinear resize with PyTorch `F.interpolate(mode="bilinear", align_corners=False)` semantics
// (half-pixel centres, no antialiasing, source coordinate clamped at 0 and at the last pixel).
// ---------------------------------------------------------------------------------------------

/** Per-output-index source taps along one axis: out[j] = (1 - w[j]) * in[i0[j]] + w[j] * in[i1[j]]. */
export interface BilinearAxis {
  readonly i0: Int32Array;
  readonly i1: Int32Array;
  readonly w: Float64Array;
}

/** The taps for resizing one axis from `inSize` to `outSize` samples. */
export function bilinearAxis(inSize: number, outSize: number): BilinearAxis {
  if (!Number.isInteger(inSize) || inSize < 1) throw new DataError(`bilinear resize: input size must be a positive integer, got ${inSize}`);
  if (!Number.isInteger(outSize) || outSize < 1) throw new DataError(`bilinear resize: output size must be a positive integer, got ${outSize}`);
  const i0 = new Int32Array(outSize);
  const i1 = new Int32Array(outSize);
  const w = new Float64Array(outSize);
  const scale = inSize / outSize;
  for (let j = 0; j < outSize; j++) {
    let src = (j + 0.5) * scale - 0.5;
    if (src < 0) src = 0;
    let a = Math.floor(src);
    if (a > inSize - 1) a = inSize - 1;
    const b = a < inSize - 1 ? a + 1 : a;
    i0[j] = a;
    i1[j] = b;
    w[j] = b === a ? 0 : src - a;
  }
  return { i0, i1, w };
}

/**
 * Resize one channels-last image [h, w, c] (read from `src` at `srcOffset`) to [outH, outW, c],
 * written into `out` at `outOffset`. Pass precomputed axes to resize many images of one size fast.
 */
export function resizeBilinearInto(
  src: ArrayLike<number>,
  srcOffset: number,
  h: number,
  w: number,
  c: number,
  out: Float32Array,
  outOffset: number,
  outH: number,
  outW: number,
  ys: BilinearAxis = bilinearAxis(h, outH),
  xs: BilinearAxis = bilinearAxis(w, outW),
): void {
  const rowStride = w * c;
  for (let oy = 0; oy < outH; oy++) {
    const r0 = srcOffset + ys.i0[oy] * rowStride;
    const r1 = srcOffset + ys.i1[oy] * rowStride;
    const wy = ys.w[oy];
    for (let ox = 0; ox < outW; ox++) {
      const c0 = xs.i0[ox] * c;
      const c1 = xs.i1[ox] * c;
      const wx = xs.w[ox];
      const o = outOffset + (oy * outW + ox) * c;
      for (let k = 0; k < c; k++) {
        const top = src[r0 + c0 + k] * (1 - wx) + src[r0 + c1 + k] * wx;
        const bot = src[r1 + c0 + k] * (1 - wx) + src[r1 + c1 + k] * wx;
        out[o + k] = top * (1 - wy) + bot * wy;
      }
    }
  }
}

/** Resize a channels-last image [h, w, c] to [outH, outW, c] (PyTorch bilinear, align_corners=False). */
export function resizeBilinear(src: ArrayLike<number>, h: number, w: number, c: number, outH: number, outW: number): Float32Array {
  if (src.length !== h * w * c) throw new DataError(`bilinear resize: image has ${src.length} values, expected ${h}x${w}x${c} = ${h * w * c}`);
  const out = new Float32Array(outH * outW * c);
  resizeBilinearInto(src, 0, h, w, c, out, 0, outH, outW);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Batch sampler
// ---------------------------------------------------------------------------------------------

export interface Batch {
  /** [B, H, W, C] channels-last, values in [-1, 1] */
  images: Float32Array;
  prompts: string[];
  /** present when the dataset has labels */
  labels?: Int32Array;
  /** the dataset indices of the batch items */
  indices: Int32Array;
}

/**
 * Everything needed to continue a sampler exactly (JSON-serialisable, small: the permutation is
 * not stored, it is regenerated from the shuffle generator's state at the start of the epoch).
 */
export interface BatchSamplerState {
  version: 1;
  dataset: string;
  datasetSize: number;
  batchSize: number;
  /** epochs started so far minus one: the epoch the cursor is in (0-based) */
  epoch: number;
  /** position in the current epoch's permutation of the next item */
  cursor: number;
  /** shuffle-generator state just before the current epoch's permutation was drawn */
  epochRng: number[];
  /** generator for captions (and anything else per item) */
  itemRng: number[];
}

/**
 * Epochs of a seeded shuffled permutation, reshuffled each epoch. Nothing is dropped: a batch that
 * crosses the end of an epoch takes the rest of it and continues with the start of the next one.
 * Two generators are derived from the one given: one draws the permutations, one the captions.
 */
export class BatchSampler {
  readonly batchSize: number;
  private epochNo = 0;
  private cursor = 0;
  private order: Int32Array;
  private epochStart: number[];
  private shuffleRng: Rng;
  private itemRng: Rng;

  constructor(
    readonly ds: ImageTextDataset,
    batchSize: number,
    rng: Rng,
  ) {
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new DataError(`BatchSampler: batchSize must be a positive integer, got ${batchSize}`);
    if (ds.size < 1) throw new DataError(`BatchSampler: dataset '${ds.name}' is empty`);
    this.batchSize = batchSize;
    this.shuffleRng = new Rng(rng.nextU32());
    this.itemRng = new Rng(rng.nextU32());
    this.epochStart = this.shuffleRng.state();
    this.order = this.drawOrder();
  }

  private drawOrder(): Int32Array {
    const order = new Int32Array(this.ds.size);
    for (let i = 0; i < order.length; i++) order[i] = i;
    this.shuffleRng.shuffle(order);
    return order;
  }

  /** The epoch the next item comes from (0-based). */
  get epoch(): number {
    return this.epochNo;
  }

  /** Number of batches per epoch, rounding up (the last one wraps into the next epoch). */
  get batchesPerEpoch(): number {
    return Math.ceil(this.ds.size / this.batchSize);
  }

  next(): Batch {
    const { ds, batchSize } = this;
    const per = ds.height * ds.width * ds.channels;
    const images = new Float32Array(batchSize * per);
    const indices = new Int32Array(batchSize);
    const prompts: string[] = new Array(batchSize);
    const labels = ds.label ? new Int32Array(batchSize) : undefined;
    for (let b = 0; b < batchSize; b++) {
      if (this.cursor >= this.order.length) {
        this.epochNo++;
        this.cursor = 0;
        this.epochStart = this.shuffleRng.state();
        this.order = this.drawOrder();
      }
      const i = this.order[this.cursor++];
      indices[b] = i;
      ds.image(i, images, b * per);
      prompts[b] = ds.caption(i, this.itemRng);
      if (labels) labels[b] = ds.label!(i);
    }
    return labels ? { images, prompts, labels, indices } : { images, prompts, indices };
  }

  state(): BatchSamplerState {
    return {
      version: 1,
      dataset: this.ds.name,
      datasetSize: this.ds.size,
      batchSize: this.batchSize,
      epoch: this.epochNo,
      cursor: this.cursor,
      epochRng: [...this.epochStart],
      itemRng: this.itemRng.state(),
    };
  }

  /** Continue from a saved state. The dataset must be the same (name and size are checked). */
  static restore(ds: ImageTextDataset, state: BatchSamplerState): BatchSampler {
    const where = "BatchSampler.restore";
    if (state === null || typeof state !== "object") throw new DataError(`${where}: state is not an object`);
    if (state.version !== 1) throw new DataError(`${where}: unsupported state version ${String(state.version)}`);
    if (state.dataset !== ds.name || state.datasetSize !== ds.size) {
      throw new DataError(`${where}: state is for dataset '${state.dataset}' (${state.datasetSize} items), not '${ds.name}' (${ds.size} items)`);
    }
    if (!Number.isInteger(state.cursor) || state.cursor < 0 || state.cursor > ds.size) throw new DataError(`${where}: cursor ${state.cursor} is out of range [0, ${ds.size}]`);
    if (!Number.isInteger(state.epoch) || state.epoch < 0) throw new DataError(`${where}: epoch ${state.epoch} is not a non-negative integer`);
    if (!Array.isArray(state.epochRng) || !Array.isArray(state.itemRng)) throw new DataError(`${where}: generator states are missing`);
    const s = new BatchSampler(ds, state.batchSize, new Rng(0));
    try {
      s.shuffleRng = Rng.fromState(state.epochRng);
      s.itemRng = Rng.fromState(state.itemRng);
    } catch (e) {
      throw new DataError(`${where}: bad generator state (${(e as Error).message})`);
    }
    s.epochStart = s.shuffleRng.state();
    s.order = s.drawOrder();
    s.epochNo = state.epoch;
    s.cursor = state.cursor;
    return s;
  }
}
