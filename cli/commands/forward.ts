/**
 * `sdc forward DIR --weights W --inputs I --out O`: run the network once on given weights and
 * inputs (channels first, named as the reference fixtures: x, timestep, text_embeddings,
 * text_mask, pooled_text_embeddings, labels; the ones its `inputs` take) and write `output`. When the inputs file also holds `output`, report
 * the max abs difference.
 */
import { readFileSync, existsSync, statSync } from "node:fs";
import * as tf from "@tensorflow/tfjs";
import { readSafetensors, type SafeTensor } from "../../runtime/io/safetensors.ts";
import { type InputSource, inputSources, type IR } from "../../ir/ir.ts";
import { checkOutputFile, writeFileAtomic } from "../../runtime/io/atomic.ts";
import { writeSafetensors } from "../../runtime/io/safetensors.ts";
import { ParamStore } from "../../runtime/nn/params.ts";
import { InputError, UsageError } from "../errors.ts";
import { loadCompiled } from "../generated.ts";

export interface ForwardOptions {
  weights: string;
  /** starts the tensor backend (called once the inputs are read and checked; tests start theirs first) */
  startBackend?: () => Promise<void>;
  inputs: string;
  out?: string;
}

export interface ForwardReport {
  maxAbsError?: number;
  bufferMaxAbsError?: number;
  shape: number[];
}

/** Largest weights or inputs file read (a safetensors file is read whole). */
const MAX_TENSOR_FILE = 16 * 2 ** 30;

function readFile(path: string, what: string) {
  if (!existsSync(path)) throw new InputError(`${what} not found: ${path}`);
  const st = statSync(path);
  if (!st.isFile()) throw new UsageError(`${what} ${path} is ${st.isDirectory() ? "a folder" : "not a regular file"}; give a .safetensors file`);
  if (st.size > MAX_TENSOR_FILE) throw new InputError(`${what} ${path} is ${(st.size / 2 ** 30).toFixed(1)} GiB; at most ${MAX_TENSOR_FILE / 2 ** 30} GiB is read`);
  return readSafetensors(readFileSync(path), path);
}

/** The inputs file's tensor name for each network input source (the reference fixtures' names). */
export const INPUT_TENSOR: Record<InputSource, string> = {
  image: "x",
  timestep: "timestep",
  context: "text_embeddings",
  context_mask: "text_mask",
  pooled: "pooled_text_embeddings",
  label: "labels",
};

/**
 * The inputs against the compiled network's declared shapes and dtypes (the IR's, channels moved
 * first for x): every axis but the batch must be the declared size, one batch size of at least 1
 * throughout, and float32 data (F16/BF16 would be converted silently); labels are integers (I32 or
 * I64) within the embedding's classes. Throws InputError.
 */
export function checkInputs(file: string, ir: IR, t: Partial<Record<InputSource, SafeTensor>>): void {
  const sources = inputSources(ir);
  const chw = (s: (number | string)[]) => [s[0], s[3], s[1], s[2]];
  const batch = t.image?.shape[0] ?? 0;
  if (!(batch >= 1)) throw new InputError(`${file}: 'x' has batch size ${batch}; give at least one image`);
  sources.forEach((src, i) => {
    const name = INPUT_TENSOR[src];
    const got = t[src]!;
    const shape = src === "image" ? chw(ir.network.inputs[i].shape) : ir.network.inputs[i].shape;
    if (src === "label") {
      if (got.dtype !== "I32" && got.dtype !== "I64") throw new InputError(`${file}: '${name}' is ${got.dtype}; class labels are integers (I32 or I64)`);
      const classes = ir.data.classes ?? 0;
      const bad = Array.from(got.data).find((v) => !(Number.isInteger(v) && v >= 0 && v <= classes));
      if (bad !== undefined) throw new InputError(`${file}: '${name}' holds ${bad}; labels are 0..${classes - 1}, or ${classes} for the null class`);
    } else if (got.dtype !== "F32") throw new InputError(`${file}: '${name}' is ${got.dtype}; ${ir.spec.name} takes float32 (F32) inputs`);
    const expected = shape.map((d, j) => (j === 0 ? batch : d));
    if (got.shape.length !== expected.length || got.shape.some((d, j) => d !== expected[j])) {
      throw new InputError(`${file}: '${name}' must be [${shape.map((d, j) => (j === 0 ? `B=${batch}` : d)).join(", ")}] for ${ir.spec.name}, got [${got.shape.join(", ")}]`);
    }
  });
}

export async function runForward(dir: string, opts: ForwardOptions, log: (s: string) => void = (s) => process.stdout.write(s + "\n")): Promise<ForwardReport> {
  if (opts.out) checkOutputFile(opts.out);
  const loaded = await loadCompiled(dir);
  const weights = readFile(opts.weights, "weights file");
  const inputs = readFile(opts.inputs, "inputs file");
  const sources = inputSources(loaded.ir);
  const expect = sources.map((s, i) => `${INPUT_TENSOR[s]} [${(s === "image" ? ["B", "C", "H", "W"] : loaded.ir.network.inputs[i].shape).join(", ")}]`).join(", ");
  const given: Partial<Record<InputSource, SafeTensor>> = {};
  sources.forEach((src, i) => {
    const name = INPUT_TENSOR[src];
    const t = inputs.tensors.get(name);
    if (!t) throw new InputError(`${opts.inputs}: missing tensor '${name}' (expected ${expect})`);
    const rank = src === "image" ? 4 : loaded.ir.network.inputs[i].shape.length;
    if (t.shape.length !== rank) throw new InputError(`${opts.inputs}: '${name}' must have rank ${rank}, got [${t.shape}]`);
    given[src] = t;
  });
  checkInputs(opts.inputs, loaded.ir, given);
  await opts.startBackend?.();
  const store = new ParamStore(0);
  if (loaded.spec.task !== "diffusion") throw new InputError(`${dir} is a classifier; sdc forward runs diffusion networks`);
  const net = loaded.spec.createNetwork(store);
  const bufferNames = new Set(loaded.ir.parameters.filter((p) => p.buffer).map((p) => p.name));
  const { unknown } = store.load(weights.tensors, { what: opts.weights });
  const reallyUnknown = unknown.filter((n) => !bufferNames.has(n));
  const missing = [...store.vars.keys()].filter((n) => !weights.tensors.has(n));
  if (missing.length || reallyUnknown.length) {
    throw new InputError(`${opts.weights} does not match ${dir}: ${missing.length ? `missing ${missing.slice(0, 3).join(", ")}${missing.length > 3 ? ` and ${missing.length - 3} more` : ""}` : ""}${missing.length && reallyUnknown.length ? "; " : ""}${reallyUnknown.length ? `unexpected ${reallyUnknown.slice(0, 3).join(", ")}` : ""}`);
  }
  const x = given.image!;
  const [b, c, h, w] = x.shape;
  const out = tf.tidy(() => {
    const args = sources.map((src) => {
      const t = given[src]!;
      if (src === "image") return tf.transpose(tf.tensor4d(t.data as Float32Array, [b, c, h, w]), [0, 2, 3, 1]); // [B, H, W, C]
      if (src === "label") return tf.tensor1d(Int32Array.from(t.data), "int32");
      return tf.tensor(t.data as Float32Array, t.shape);
    });
    const y = net.forward(...args); // [B, H, W, C'] (C' = 2C with the variance channels)
    return tf.transpose(y, [0, 3, 1, 2]); // [B, C', H, W]
  });
  const data = (await out.data()) as Float32Array;
  const shape = [...out.shape];
  out.dispose();
  const report: ForwardReport = { shape };
  // the fixed position table must equal the reference's buffer
  for (const name of bufferNames) {
    const mine = store.buffers.get(name);
    const theirs = weights.tensors.get(name);
    if (mine && theirs) {
      const m = (await mine.data()) as Float32Array;
      let e = 0;
      for (let i = 0; i < m.length; i++) e = Math.max(e, Math.abs(m[i] - (theirs.data[i] as number)));
      report.bufferMaxAbsError = Math.max(report.bufferMaxAbsError ?? 0, e);
    }
  }
  const ref = inputs.tensors.get("output");
  if (ref) {
    let e = 0;
    for (let i = 0; i < data.length; i++) e = Math.max(e, Math.abs(data[i] - (ref.data[i] as number)));
    report.maxAbsError = e;
  }
  if (opts.out) writeFileAtomic(opts.out, writeSafetensors({ output: { shape, data } }));
  log(`forward ${dir}: output [${shape.join(", ")}]${opts.out ? ` -> ${opts.out}` : ""}`);
  if (report.maxAbsError !== undefined) log(`max abs error vs. ${opts.inputs}:output = ${report.maxAbsError.toExponential(3)}`);
  if (report.bufferMaxAbsError !== undefined) log(`position table max abs error vs. ${opts.weights} = ${report.bufferMaxAbsError.toExponential(3)}`);
  store.dispose();
  return report;
}
