/**
 * The IDX format of the MNIST files (http://yann.lecun.com/exdb/mnist/): a big-endian 32-bit magic
 * number `0x0000 08 nd` (0x08 = unsigned byte data, nd = number of dimensions), nd big-endian 32-bit
 * dimension sizes, then the data. Pure: bytes in, data out.
 */
import { DataError } from "./dataset.ts";

export interface IdxData {
  dims: number[];
  /** a view into the input bytes (row-major, uint8) */
  data: Uint8Array;
}

/** Accepted magic numbers and their dimension counts. */
const MAGICS: ReadonlyMap<number, { ndims: number; kind: string }> = new Map([
  [0x00000801, { ndims: 1, kind: "uint8 labels [n]" }],
  [0x00000803, { ndims: 3, kind: "uint8 images [n, rows, cols]" }],
]);

const hex = (v: number) => "0x" + (v >>> 0).toString(16).padStart(8, "0");

/**
 * Parse an IDX file of uint8 labels (magic 0x00000801) or images (0x00000803). `what` names the
 * file in error messages. The byte size must match the dimensions exactly.
 */
export function parseIdx(bytes: Uint8Array, what: string): IdxData {
  if (bytes.byteLength < 4) throw new DataError(`${what}: not an IDX file (only ${bytes.byteLength} bytes, need a 4-byte magic number)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, false);
  const fmt = MAGICS.get(magic);
  if (!fmt) {
    throw new DataError(
      `${what}: bad IDX magic number ${hex(magic)} (expected ${hex(0x801)} for labels or ${hex(0x803)} for images; is the file gzipped or not an MNIST file?)`,
    );
  }
  if ((magic & 0xff) !== fmt.ndims) throw new DataError(`${what}: IDX dimension count ${magic & 0xff} does not match ${fmt.kind}`);
  const headerLen = 4 + 4 * fmt.ndims;
  if (bytes.byteLength < headerLen) throw new DataError(`${what}: truncated IDX header (${bytes.byteLength} bytes, need ${headerLen} for ${fmt.kind})`);
  const dims: number[] = [];
  for (let k = 0; k < fmt.ndims; k++) dims.push(view.getUint32(4 + 4 * k, false));
  const count = dims.reduce((a, b) => a * b, 1);
  const expected = headerLen + count;
  if (bytes.byteLength !== expected) {
    const how = bytes.byteLength < expected ? "truncated" : "has trailing bytes";
    throw new DataError(`${what}: IDX file ${how}: ${bytes.byteLength} bytes, but dims [${dims.join(", ")}] need exactly ${expected}`);
  }
  return { dims, data: bytes.subarray(headerLen) };
}
