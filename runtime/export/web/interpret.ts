/**
 * The exported ONNX graph (the node list onnx.ts lowers the forward graph to) run with
 * TensorFlow.js in the browser: each ONNX operator the lowering emits as a tfjs op. int64 values
 * (shapes, slice bounds, pads) stay on the host as numbers, so the batch axis is as dynamic here
 * as in onnxruntime.
 */
import type * as TF from "@tensorflow/tfjs";
import type { OnnxNode } from "../onnx-proto.ts";

/** A tensor of the web model file: raw little-endian bytes, base64. */
export interface WebTensor {
  name: string;
  dtype: "float" | "int32" | "int64";
  dims: number[];
  base64: string;
}

export interface WebGraph {
  nodes: OnnxNode[];
  initializers: WebTensor[];
  inputs: { name: string; dtype: string; dims: (number | string)[] }[];
  outputs: { name: string; dims: (number | string)[] }[];
}

/** host integers (int64 in ONNX) */
interface Ints {
  ints: number[];
}
type Value = TF.Tensor | Ints;
const isInts = (v: Value): v is Ints => (v as Ints).ints !== undefined;

function bytesOf(b64: string): Uint8Array {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

const intAttr = (n: OnnxNode, k: string, d: number): number => {
  const a = n.attrs?.[k];
  return typeof a === "number" ? a : d;
};

export class WebNetwork {
  private readonly consts = new Map<string, Value>();

  constructor(
    private readonly tf: typeof TF,
    readonly model: WebGraph,
  ) {
    for (const t of model.initializers) {
      const b = bytesOf(t.base64);
      if (t.dtype === "int64") {
        const v = new BigInt64Array(b.buffer, 0, b.length / 8);
        this.consts.set(t.name, { ints: Array.from(v, Number) });
      } else {
        const data = t.dtype === "float" ? new Float32Array(b.buffer, 0, b.length / 4) : new Int32Array(b.buffer, 0, b.length / 4);
        this.consts.set(t.name, tf.keep(tf.tensor(data, t.dims, t.dtype === "float" ? "float32" : "int32")));
      }
    }
  }

  /** The outputs for the inputs (by name); float inputs as Float32Array, int32 as Int32Array. */
  run(feeds: Record<string, { data: Float32Array | Int32Array; dims: number[] }>): Float32Array {
    const tf = this.tf;
    return tf.tidy(() => {
      const env = new Map<string, Value>(this.consts);
      for (const i of this.model.inputs) {
        const f = feeds[i.name];
        if (!f) throw new Error(`missing input ${i.name}`);
        env.set(i.name, tf.tensor(f.data, f.dims, i.dtype === "float" ? "float32" : "int32"));
      }
      const get = (name: string): Value => {
        const v = env.get(name);
        if (!v) throw new Error(`no value ${name}`);
        return v;
      };
      const T = (name: string): TF.Tensor => {
        const v = get(name);
        if (isInts(v)) return tf.tensor(v.ints, [v.ints.length], "int32");
        return v;
      };
      const I = (name: string): number[] => {
        const v = get(name);
        if (!isInts(v)) throw new Error(`${name} is not a host integer tensor`);
        return v.ints;
      };
      const host = (name: string) => isInts(get(name));
      for (const n of this.model.nodes) env.set(n.outputs[0], this.node(n, T, I, host));
      return T(this.model.outputs[0].name).dataSync() as Float32Array;
    });
  }

  private node(n: OnnxNode, T: (s: string) => TF.Tensor, I: (s: string) => number[], host: (s: string) => boolean): Value {
    const tf = this.tf;
    const [a, b, c] = n.inputs;
    switch (n.op) {
      case "Identity": return T(a);
      case "Shape": return { ints: T(a).shape };
      case "Slice": {
        const starts = I(b);
        const ends = I(c);
        const axes = n.inputs[3] ? I(n.inputs[3]) : starts.map((_, i) => i);
        if (host(a)) {
          // host integers: a slice of a shape
          const v = I(a);
          return { ints: v.slice(starts[0], Math.min(ends[0], v.length)) };
        }
        const src = T(a);
        const begin = src.shape.map(() => 0);
        const size = [...src.shape];
        axes.forEach((ax, i) => {
          const d = src.shape[ax];
          const s = Math.min(Math.max(starts[i] < 0 ? starts[i] + d : starts[i], 0), d);
          const e = Math.min(Math.max(ends[i] < 0 ? ends[i] + d : ends[i], 0), d);
          begin[ax] = s;
          size[ax] = Math.max(0, e - s);
        });
        return tf.slice(src, begin, size);
      }
      case "Concat": {
        if (n.inputs.every((x) => host(x))) return { ints: n.inputs.flatMap(I) };
        return tf.concat(n.inputs.map(T), intAttr(n, "axis", 0));
      }
      case "Mul":
        if (host(a) && host(b)) {
          const [x, y] = [I(a), I(b)];
          return { ints: x.map((v, i) => v * y[y.length === 1 ? 0 : i]) };
        }
        return tf.mul(T(a), T(b));
      case "Reshape": return tf.reshape(T(a), I(b));
      case "Transpose": return tf.transpose(T(a), n.attrs?.perm as number[]);
      case "MatMul": return tf.matMul(T(a), T(b));
      case "Add": return tf.add(T(a), T(b));
      case "Sub": return tf.sub(T(a), T(b));
      case "Div": return tf.div(T(a), T(b));
      case "Neg": return tf.neg(T(a));
      case "Sqrt": return tf.sqrt(T(a));
      case "Reciprocal": return tf.reciprocal(T(a));
      case "Exp": return tf.exp(T(a));
      case "Log": return tf.log(T(a));
      case "Abs": return tf.abs(T(a));
      case "Sin": return tf.sin(T(a));
      case "Cos": return tf.cos(T(a));
      case "Sigmoid": return tf.sigmoid(T(a));
      case "Tanh": return tf.tanh(T(a));
      case "Relu": return tf.relu(T(a));
      case "Erf": return tf.erf(T(a));
      case "Min": return tf.minimum(T(a), T(b));
      case "Max": return tf.maximum(T(a), T(b));
      case "Pow": return tf.pow(T(a), T(b));
      case "GreaterOrEqual": return tf.greaterEqual(T(a), T(b));
      case "Equal": return tf.equal(T(a), T(b));
      case "Not": return tf.logicalNot(T(a));
      case "Where": {
        const shape = this.bshape(T(a), T(b), T(c));
        return tf.where(tf.broadcastTo(T(a), shape), tf.broadcastTo(T(b), shape), tf.broadcastTo(T(c), shape));
      }
      case "Cast": return tf.cast(T(a), intAttr(n, "to", 1) === 1 ? "float32" : "int32");
      case "Expand": return tf.broadcastTo(T(a), I(b));
      case "ReduceSum": return tf.sum(T(a), I(b), intAttr(n, "keepdims", 1) === 1);
      case "Softmax": return tf.softmax(T(a), -1);
      case "Gather": return tf.gather(T(a), T(b), intAttr(n, "axis", 0));
      case "Pad": {
        const x = T(a);
        const p = I(b);
        const r = x.rank;
        return tf.pad(x, x.shape.map((_, i) => [p[i], p[i + r]] as [number, number]), 0);
      }
      case "LayerNormalization": {
        const x = T(a);
        const eps = (n.attrs?.epsilon as { float: number }).float;
        const { mean, variance } = tf.moments(x, -1, true);
        return tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps))), T(b));
      }
      default:
        throw new Error(`the page has no kernel for the ONNX operator ${n.op}`);
    }
  }

  private bshape(...ts: TF.Tensor[]): number[] {
    const r = Math.max(...ts.map((t) => t.rank));
    return Array.from({ length: r }, (_, i) => Math.max(...ts.map((t) => t.shape[t.rank - r + i] ?? 1)));
  }
}
