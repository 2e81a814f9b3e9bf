/**
 * `sdc forward DIR --weights W --inputs I --out O`: run the network once on given weights and
 * inputs (channels first, named as the reference fixtures: x, timestep, text_embeddings,
 * pooled_text_embeddings) and write `output`. When the inputs file also holds `output`, report
 * the max abs difference.
 */
import { readFileSync, existsSync, statSync } from "node:fs";
import * as tf from "@tensorflow/tfjs";
import { readSafetensors, type SafeTensor } from "../../runtime/io/safetensors.ts";
import type { IR } from "../../compiler/ir.ts";
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

/**
 * The inputs against the compiled network's declared shapes and dtypes (the IR's, channels moved
 * first for x): every axis but the batch must be the declared size, one batch size of at least 1
 * throughout, and float32 data (F16/BF16/I64 would be converted silently). Throws InputError.
 */
export function checkInputs(file: string, ir: IR, t: Record<"x" | "timestep" | "text_embeddings" | "pooled_text_embeddings", SafeTensor>): void {
  const [xi, ti, ci, pi] = ir.network.inputs;
  const chw = (s: (number | string)[]) => [s[0], s[3], s[1], s[2]];
  const want: [keyof typeof t, (number | string)[]][] = [["x", chw(xi.shape)], ["timestep", ti.shape], ["text_embeddings", ci?.shape ?? []], ["pooled_text_embeddings", pi?.shape ?? []]];
  const batch = t.x.shape[0];
  if (!(batch >= 1)) throw new InputError(`${file}: 'x' has batch size ${batch}; give at least one image`);
  for (const [name, shape] of want) {
    const got = t[name];
    if (got.dtype !== "F32") throw new InputError(`${file}: '${name}' is ${got.dtype}; ${ir.spec.name} takes float32 (F32) inputs`);
    const expected = shape.map((d, i) => (i === 0 ? batch : d));
    if (got.shape.length !== expected.length || got.shape.some((d, i) => d !== expected[i])) {
      throw new InputError(`${file}: '${name}' must be [${shape.map((d, i) => (i === 0 ? `B=${batch}` : d)).join(", ")}] for ${ir.spec.name}, got [${got.shape.join(", ")}]`);
    }
  }
}

export async function runForward(dir: string, opts: ForwardOptions, log: (s: string) => void = (s) => process.stdout.write(s + "\n")): Promise<ForwardReport> {
  if (opts.out) checkOutputFile(opts.out);
  const loaded = await loadCompiled(dir);
  const weights = readFile(opts.weights, "weights file");
  const inputs = readFile(opts.inputs, "inputs file");
  const need = (name: string, rank: number) => {
    const t = inputs.tensors.get(name);
    if (!t) throw new InputError(`${opts.inputs}: missing tensor '${name}' (expected x [B, C, H, W], timestep [B], text_embeddings [B, T, D], pooled_text_embeddings [B, P])`);
    if (t.shape.length !== rank) throw new InputError(`${opts.inputs}: '${name}' must have rank ${rank}, got [${t.shape}]`);
    return t;
  };
  const x = need("x", 4);
  const ts = need("timestep", 1);
  const ctx = need("text_embeddings", 3);
  const pooled = need("pooled_text_embeddings", 2);
  checkInputs(opts.inputs, loaded.ir, { x, timestep: ts, text_embeddings: ctx, pooled_text_embeddings: pooled });
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
  const [b, c, h, w] = x.shape;
  const out = tf.tidy(() => {
    const xs = tf.transpose(tf.tensor4d(x.data as Float32Array, [b, c, h, w]), [0, 2, 3, 1]) as tf.Tensor4D; // [B, H, W, C]
    const y = net.forward(xs, tf.tensor1d(ts.data as Float32Array), tf.tensor3d(ctx.data as Float32Array, ctx.shape as [number, number, number]), tf.tensor2d(pooled.data as Float32Array, pooled.shape as [number, number]));
    return tf.transpose(y, [0, 3, 1, 2]); // [B, C, H, W]
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
