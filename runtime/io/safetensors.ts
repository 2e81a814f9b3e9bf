/**
 * A small, dependency-free reader/writer for the safetensors format
 * (https://huggingface.co/docs/safetensors): an 8-byte little-endian header
 * length, a JSON header `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {..}}`,
 * then the raw little-endian tensor bytes. Pure: bytes in, tensors out; no I/O.
 */

export type SafeDtype = "F32" | "F64" | "F16" | "BF16" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";

export interface SafeTensor {
  dtype: SafeDtype;
  shape: number[];
  /** F32/F16/BF16 are returned as Float32Array; I64 as Int32Array when it fits, I32 as Int32Array, U8/BOOL as Uint8Array. */
  data: Float32Array | Int32Array | Uint8Array | Float64Array;
}

export interface SafeFile {
  tensors: Map<string, SafeTensor>;
  metadata: Record<string, string>;
}

export class SafetensorsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SafetensorsError";
  }
}

const BYTES: Record<SafeDtype, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };
/** Largest header we accept (the format's own limit is 100 MB). */
const MAX_HEADER = 100_000_000;

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

/** A tensor's [begin, end] byte offsets: safe integers, begin <= end. */
function tensorOffsets(info: { data_offsets?: unknown } | null, name: string, what: string): [number, number] {
  const offs = info?.data_offsets;
  if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((v) => Number.isSafeInteger(v) && v >= 0) || offs[0] > offs[1]) throw new SafetensorsError(`${what}: tensor '${name}' has bad data_offsets`);
  return [offs[0], offs[1]];
}

/**
 * Check a safetensors file's size against its header before it is read whole: `read(offset,
 * length)` gives byte ranges of the file, `size` is its size. The header's length must fit, and
 * the tensors it lists must end exactly at the end of the file (the format has no trailing bytes),
 * so a file padded, truncated or with a header that promises more than is there is refused before
 * any allocation of its size.
 */
export function checkSafetensorsSize(read: (offset: number, length: number) => Uint8Array, size: number, what = "safetensors file"): void {
  if (size < 8) throw new SafetensorsError(`${what}: truncated (${size} bytes, need at least 8)`);
  const len = read(0, 8);
  const headerLen = Number(new DataView(len.buffer, len.byteOffset, 8).getBigUint64(0, true));
  if (headerLen > MAX_HEADER || 8 + headerLen > size) throw new SafetensorsError(`${what}: header length ${headerLen} exceeds the file size ${size} (truncated or not a safetensors file)`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(read(8, headerLen)));
  } catch {
    throw new SafetensorsError(`${what}: header is not valid UTF-8 JSON`);
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) throw new SafetensorsError(`${what}: header is not a JSON object`);
  let end = 0;
  for (const [name, raw] of Object.entries(header)) if (name !== "__metadata__") end = Math.max(end, tensorOffsets(raw as { data_offsets?: unknown }, name, what)[1]);
  if (8 + headerLen + end !== size) throw new SafetensorsError(`${what}: the header describes ${(8 + headerLen + end).toLocaleString("en-US")} bytes but the file has ${size.toLocaleString("en-US")} (${8 + headerLen + end > size ? "truncated" : "trailing bytes"})`);
}

/** Parse a safetensors file. Throws SafetensorsError with a plain message for truncated or malformed input. */
export function readSafetensors(bytes: Uint8Array, what = "safetensors file"): SafeFile {
  if (bytes.byteLength < 8) throw new SafetensorsError(`${what}: truncated (${bytes.byteLength} bytes, need at least 8)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  if (headerLen > MAX_HEADER || 8 + headerLen > bytes.byteLength) {
    throw new SafetensorsError(`${what}: header length ${headerLen} exceeds the file size ${bytes.byteLength} (truncated or not a safetensors file)`);
  }
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + headerLen)));
  } catch {
    throw new SafetensorsError(`${what}: header is not valid UTF-8 JSON`);
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) throw new SafetensorsError(`${what}: header is not a JSON object`);
  const body = bytes.subarray(8 + headerLen);
  const tensors = new Map<string, SafeTensor>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(header)) {
    if (name === "__metadata__") {
      metadata = (raw ?? {}) as Record<string, string>;
      continue;
    }
    const info = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const dtype = info?.dtype as SafeDtype;
    if (typeof dtype !== "string" || !Object.hasOwn(BYTES, dtype)) throw new SafetensorsError(`${what}: tensor '${name}' has unsupported dtype ${String(info?.dtype)}`);
    const shape = info.shape as number[];
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new SafetensorsError(`${what}: tensor '${name}' has a bad shape`);
    const [begin, end] = tensorOffsets(info, name, what);
    const count = shape.reduce((a, b) => a * b, 1);
    if (!Number.isSafeInteger(count * BYTES[dtype]) || end - begin !== count * BYTES[dtype]) throw new SafetensorsError(`${what}: tensor '${name}' byte size ${end - begin} does not match shape [${shape}] of ${dtype}`);
    if (begin < 0 || end > body.byteLength) throw new SafetensorsError(`${what}: tensor '${name}' lies past the end of the file (truncated)`);
    const slice = new Uint8Array(body.subarray(begin, end)); // copy: aligned, independent of the file buffer (Buffer.slice would be a view)
    const dv = new DataView(slice.buffer);
    let data: SafeTensor["data"];
    switch (dtype) {
      case "F32":
        data = new Float32Array(slice.buffer);
        break;
      case "F64":
        data = new Float64Array(slice.buffer);
        break;
      case "F16":
        data = Float32Array.from({ length: count }, (_, i) => halfToFloat(dv.getUint16(2 * i, true)));
        break;
      case "BF16":
        data = Float32Array.from({ length: count }, (_, i) => {
          const u = new DataView(new ArrayBuffer(4));
          u.setUint32(0, dv.getUint16(2 * i, true) << 16, true);
          return u.getFloat32(0, true);
        });
        break;
      case "I64":
        data = Int32Array.from({ length: count }, (_, i) => Number(dv.getBigInt64(8 * i, true)));
        break;
      case "I32":
        data = new Int32Array(slice.buffer);
        break;
      case "I16":
        data = Int32Array.from({ length: count }, (_, i) => dv.getInt16(2 * i, true));
        break;
      case "I8":
        data = Int32Array.from({ length: count }, (_, i) => dv.getInt8(i));
        break;
      default:
        data = new Uint8Array(slice.buffer);
    }
    tensors.set(name, { dtype, shape, data });
  }
  return { tensors, metadata };
}

export interface TensorToWrite {
  shape: number[];
  data: Float32Array | Int32Array | Uint8Array;
  dtype?: "F32" | "I32" | "U8";
}

/** Serialise tensors (names sorted, so output is deterministic) with optional string metadata. */
export function writeSafetensors(tensors: Map<string, TensorToWrite> | Record<string, TensorToWrite>, metadata?: Record<string, string>): Uint8Array {
  const entries = (tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of entries) {
    const dtype = t.dtype ?? (t.data instanceof Int32Array ? "I32" : t.data instanceof Uint8Array ? "U8" : "F32");
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new SafetensorsError(`tensor '${name}': shape [${t.shape}] has ${count} elements but data has ${t.data.length}`);
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  // Pad the header with spaces so the data starts 8-byte aligned (as the reference writer does).
  const enc = new TextEncoder();
  let hbytes = enc.encode(json);
  const pad = (8 - ((8 + hbytes.byteLength) % 8)) % 8;
  if (pad) {
    json += " ".repeat(pad);
    hbytes = enc.encode(json);
  }
  const out = new Uint8Array(8 + hbytes.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(hbytes.byteLength), true);
  out.set(hbytes, 8);
  let at = 8 + hbytes.byteLength;
  for (const [, t] of entries) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}
