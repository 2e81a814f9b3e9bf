/**
 * bench/step: milliseconds per training step of a compiled network (forward, backward, clipping,
 * Adam, EMA) at a batch size, on a backend. The text side is a fixed random context of the
 * network's input width (as frozen CLIP/T5 features are), so the figure compares with the
 * reference's step time for the same network, batch and context length.
 *
 *   npx tsx bench/step.ts --generated generated/sd3-seed --batch 64 --context-tokens 8 --backend wasm
 *
 * Prints ms/step (median over --steps after --warmup), the number of kernels per step and, where
 * the backend reports kernel times, the fraction spent in matmuls.
 */
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import * as tf from "@tensorflow/tfjs";
import { loadCompiled } from "../cli/generated.ts";
import { initBackend, shutdownBackend } from "../runtime/backend.ts";
import { ParamStore } from "../runtime/nn/params.ts";
import { FlowTrainer, type ModelBundle, type PromptEncoder } from "../runtime/train/trainer.ts";
import { Rng } from "../runtime/util/rng.ts";
import { sampleSigmas } from "../runtime/flow/schedule.ts";

const { values } = parseArgs({
  options: {
    generated: { type: "string", default: "generated/sd3-seed" },
    batch: { type: "string", default: "64" },
    "context-tokens": { type: "string" },
    steps: { type: "string", default: "10" },
    warmup: { type: "string", default: "3" },
    backend: { type: "string", default: "wasm" },
    profile: { type: "boolean", default: false },
    json: { type: "boolean", default: false },
    /** tfjs environment flags, e.g. --tf-flag WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE=128 (repeatable) */
    "tf-flag": { type: "string", multiple: true, default: [] },
  },
});

const init = await initBackend(values.backend as "wasm", { log: (m) => console.error(m) });
for (const f of values["tf-flag"] ?? []) {
  const [k, v] = f.split("=");
  tf.env().set(k, v === "true" ? true : v === "false" ? false : Number(v));
}
const loaded = await loadCompiled(values.generated!);
if (loaded.spec.task !== "diffusion") throw new Error("bench/step needs a diffusion spec");
const ir = loaded.ir;
const batch = Number(values.batch);
const ctxIn = ir.network.inputs[2];
const poolIn = ir.network.inputs[3];
const tokens = values["context-tokens"] ? Number(values["context-tokens"]) : Number(ctxIn.shape[1]);
const ctxWidth = Number(ctxIn.shape[2]);
const pooledWidth = Number(poolIn.shape[1]);
const [h, w, c] = [ir.data.height, ir.data.width, ir.data.channels];

const store = new ParamStore(0);
const network = loaded.spec.createNetwork(store);
const rng = new Rng(0);
const context = tf.keep(tf.tensor3d(rng.normals(batch * tokens * ctxWidth), [batch, tokens, ctxWidth]));
const pooled = tf.keep(tf.tensor2d(rng.normals(batch * pooledWidth), [batch, pooledWidth]));
const text: PromptEncoder = { words: [], encode: () => [tf.clone(context), tf.clone(pooled)] as [tf.Tensor3D, tf.Tensor2D] };
const m: ModelBundle = { store, network, text, flow: { ...ir.flow }, ir };
const opt = ir.train.optimizer;
const trainer = new FlowTrainer(m, { lr: opt.lr, clip: ir.train.clip || 1, ema: ir.train.ema, kind: opt.kind, beta1: opt.beta1, beta2: opt.beta2, eps: opt.eps, weightDecay: opt.weightDecay, warmup: 0 });
const per = h * w * c;
const batchData = () => {
  const x0 = new Float32Array(batch * per);
  for (let i = 0; i < x0.length; i++) x0[i] = rng.uniform() * 2 - 1;
  return { x0, eps: rng.normals(batch * per), sigma: sampleSigmas(m.flow.density, batch, rng), prompts: new Array(batch).fill("7") };
};

const nSteps = Number(values.steps);
const nWarm = Number(values.warmup);
const times: number[] = [];
let lastLoss = NaN;
for (let i = 0; i < nWarm + nSteps; i++) {
  const b = batchData();
  const t0 = performance.now();
  lastLoss = (await trainer.step(b, [batch, h, w, c])).loss; // step() reads the loss back: the GPU has finished
  const dt = performance.now() - t0;
  if (i >= nWarm) times.push(dt);
  console.error(`step ${i + 1}/${nWarm + nSteps}${i < nWarm ? " (warmup)" : ""}: ${dt.toFixed(1)} ms, loss ${lastLoss.toFixed(4)}`);
}
times.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)];

let kernels = 0;
let matmulShare: number | null = null;
const byKernel: Record<string, number> = {};
if (values.profile) {
  const b = batchData();
  const info = await tf.profile(async () => {
    await trainer.step(b, [batch, h, w, c]);
  });
  kernels = info.kernels.length;
  let total = 0;
  let mm = 0;
  for (const k of info.kernels) {
    byKernel[k.name] = (byKernel[k.name] ?? 0) + 1;
    const ms = typeof k.kernelTimeMs === "number" ? k.kernelTimeMs : 0;
    total += ms;
    if (/MatMul|Conv2D/i.test(k.name)) mm += ms;
  }
  if (total > 0) matmulShare = mm / total;
}
const top = Object.entries(byKernel).sort((a, b) => b[1] - a[1]).slice(0, 12);
const result = {
  bench: "step",
  generated: values.generated,
  params: store.numParams,
  backend: `${init.name} (${init.detail})`,
  flags: values["tf-flag"],
  dawnToggles: process.env.SDC_DAWN_TOGGLES ?? null,
  host: `${cpus().length} x ${cpus()[0]?.model ?? "?"}`,
  batch,
  contextTokens: tokens,
  msPerStep: Number(median.toFixed(1)),
  minMs: Number(times[0].toFixed(1)),
  steps: nSteps,
  kernelsPerStep: kernels,
  matmulShareOfKernelTime: matmulShare === null ? "not reported by this backend" : Number(matmulShare.toFixed(3)),
  topKernels: Object.fromEntries(top),
  loss: Number(lastLoss.toFixed(4)),
};
console.log(values.json ? JSON.stringify(result) : JSON.stringify(result, null, 2));
trainer.dispose();
store.dispose();
await shutdownBackend();
