/**
 * The subset of ONNX's ModelProto that sdc writes (onnx/onnx.proto, IR version 8): a graph of
 * nodes with int, float, ints and tensor attributes, float32 / int64 / int32 initializers as raw
 * little-endian data, typed inputs and outputs whose dimensions are numbers or named (dynamic).
 */
import { ProtoWriter } from "./protobuf.ts";

export const ONNX_IR_VERSION = 8;
/** LayerNormalization is in the default domain from opset 17 */
export const ONNX_OPSET = 17;

/** TensorProto.DataType */
export const DT = { float: 1, int32: 6, int64: 7, bool: 9 } as const;
export type DType = keyof typeof DT;

export interface OnnxTensor {
  name: string;
  dtype: DType;
  dims: number[];
  data: Float32Array | Int32Array | BigInt64Array | Uint8Array;
}

export type OnnxAttr = number | number[] | { int: number } | { ints: number[] } | { float: number } | { tensor: OnnxTensor };

export interface OnnxNode {
  op: string;
  inputs: string[];
  outputs: string[];
  /** plain numbers are ints; floats must be given as { float } */
  attrs?: Record<string, OnnxAttr>;
  name?: string;
}

export interface OnnxValue {
  name: string;
  dtype: DType;
  /** a number, or a name for a dynamic dimension (e.g. "B") */
  dims: (number | string)[];
}

export interface OnnxModel {
  graphName: string;
  nodes: OnnxNode[];
  initializers: OnnxTensor[];
  inputs: OnnxValue[];
  outputs: OnnxValue[];
  producer: { name: string; version: string };
  docString?: string;
  metadata?: Record<string, string>;
}

function tensorProto(t: OnnxTensor): ProtoWriter {
  const w = new ProtoWriter();
  for (const d of t.dims) w.int(1, d);
  w.int(2, DT[t.dtype]);
  w.string(8, t.name);
  w.bytes(9, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  return w;
}

function attrProto(name: string, a: OnnxAttr): ProtoWriter {
  const w = new ProtoWriter().string(1, name);
  if (typeof a === "number" || (typeof a === "object" && "int" in a)) return w.int(3, typeof a === "number" ? a : a.int).int(20, 2);
  if (Array.isArray(a) || "ints" in a) {
    for (const v of Array.isArray(a) ? a : a.ints) w.int(8, v);
    return w.int(20, 7);
  }
  if ("float" in a) return w.float(2, a.float).int(20, 1);
  return w.message(5, tensorProto(a.tensor)).int(20, 4);
}

function valueInfo(v: OnnxValue): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of v.dims) shape.message(1, typeof d === "number" ? new ProtoWriter().int(1, d) : new ProtoWriter().string(2, d));
  const tensorType = new ProtoWriter().int(1, DT[v.dtype]).message(2, shape);
  return new ProtoWriter().string(1, v.name).message(2, new ProtoWriter().message(1, tensorType));
}

/** The serialized ModelProto. */
export function encodeOnnx(m: OnnxModel): Uint8Array {
  const g = new ProtoWriter();
  m.nodes.forEach((n, i) => {
    const w = new ProtoWriter();
    for (const x of n.inputs) w.string(1, x);
    for (const x of n.outputs) w.string(2, x);
    w.string(3, n.name ?? `${n.op}_${i}`);
    w.string(4, n.op);
    for (const [k, a] of Object.entries(n.attrs ?? {})) w.message(5, attrProto(k, a));
    g.message(1, w);
  });
  g.string(2, m.graphName);
  for (const t of m.initializers) g.message(5, tensorProto(t));
  for (const v of m.inputs) g.message(11, valueInfo(v));
  for (const v of m.outputs) g.message(12, valueInfo(v));
  const model = new ProtoWriter().int(1, ONNX_IR_VERSION).string(2, m.producer.name).string(3, m.producer.version);
  if (m.docString) model.string(6, m.docString);
  model.message(7, g);
  model.message(8, new ProtoWriter().string(1, "").int(2, ONNX_OPSET));
  for (const [k, v] of Object.entries(m.metadata ?? {})) model.message(14, new ProtoWriter().string(1, k).string(2, v));
  return model.finish();
}
