/**
 * bench/graph-check: the WebGPU executor of the static training step against the CPU reference
 * interpreter, kernel by kernel, on a small spec: every node's value after one step, the loss,
 * the gradients and the parameters after the clipped Adam update. Prints one JSON line; exit 1
 * when a tolerance is exceeded. Runs wherever a WebGPU adapter exists (a GPU, or Mesa's
 * lavapipe on a CPU: scripts/lavapipe.sh).
 *
 *   SDC_WEBGPU_ALLOW_SOFTWARE=1 npx tsx bench/graph-check.ts --generated generated/sd3-tiny --batch 2
 */
import { benchArgs } from "./args.ts";
import * as tf from "@tensorflow/tfjs";
import { loadCompiled } from "../cli/generated.ts";
import { initBackend, shutdownBackend } from "../runtime/backend.ts";
import { evaluate } from "../runtime/executors/interp/interp.ts";
import { sizeOf } from "../runtime/graph/graph.ts";
import { buildStepGraph, stepFeeds, textInputs } from "../runtime/engines/static/step.ts";
import { liveKernelCount } from "../runtime/graph/step-graph.ts";
import { inputSources } from "../ir/ir.ts";
import { fuse } from "../runtime/graph/fuse.ts";
import { WebGpuStep } from "../runtime/executors/webgpu/webgpu.ts";
import { kernelOptionsFromEnv } from "../runtime/executors/webgpu/gemm-table.ts";
import { buildTraceModel } from "../runtime/train/trainer.ts";
import { type FlowBatch } from "../runtime/bundle.ts";
import { Rng } from "../runtime/util/rng.ts";

const { values } = benchArgs(import.meta.url, {
  options: {
    generated: { type: "string", default: "generated/sd3-tiny" },
    batch: { type: "string", default: "2" },
    "context-tokens": { type: "string", default: "8" },
    "no-fuse": { type: "boolean", default: false },
    /** "keep" (default) checks every node; "reuse" (the training default) checks the loss, gradients and parameters */
    memory: { type: "string", default: "keep" },
    /** weight decay of the checked Adam step (L2 in the gradient; with --decoupled, AdamW) */
    "weight-decay": { type: "string", default: "0" },
    decoupled: { type: "boolean", default: false },
  },
});
const init = await initBackend("webgpu", { log: (m) => console.error(m) });
const device = (tf.backend() as unknown as { device: unknown }).device;
const loaded = await loadCompiled(values.generated!);
if (loaded.spec.task !== "diffusion") throw new Error("graph-check needs a diffusion spec");
const spec = loaded.spec;
const ir = loaded.ir;
const B = Number(values.batch);
const dims: [number, number, number] = [ir.data.height, ir.data.width, ir.data.channels];
const per = sizeOf(dims);
// learned text: the spec's encoder is traced too (no text: labels etc. from the prompts); frozen encoders: random features as input
const frozen = ir.text.kind === "sd3_pretrained" || ir.text.kind === "external";
const m = buildTraceModel(spec, ir, 7);
const sources = inputSources(ir);
const ctxIn = ir.network.inputs[sources.indexOf("context")];
const poolIn = ir.network.inputs[sources.indexOf("pooled")];
const ctx = frozen ? { tokens: Number(values["context-tokens"]), width: Number(ctxIn.shape[2]), pooled: Number(poolIn.shape[1]) } : undefined;
const sg = buildStepGraph(m, B, dims, ctx);
const unfused = liveKernelCount(sg);
if (!values["no-fuse"]) fuse(sg);
const rng = new Rng(11);
const b: FlowBatch = {
  x0: new Float32Array(B * per).map(() => rng.uniform() * 2 - 1),
  eps: rng.normals(B * per),
  sigma: Float32Array.from({ length: B }, () => 0.05 + 0.9 * rng.uniform()),
  prompts: Array.from({ length: B }, (_, i) => ["7", "seven", "", "3"][i % 4]),
};
const text = frozen ? { context: rng.normals(B * ctx!.tokens * ctx!.width), pooled: rng.normals(B * ctx!.pooled) } : await textInputs(m, b.prompts);
const feeds = stepFeeds(sg, m.flow, b, text);
const params = new Map<string, Float32Array>();
for (const [name, v] of m.store.vars) params.set(name, (await v.data()) as Float32Array);

const adam = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: Number(values["weight-decay"]), decoupled: values.decoupled!, clip: 1, ema: 0.99, emaWarmup: true };
const t0 = performance.now();
const memory = values.memory === "reuse" ? "reuse" : "keep";
const gpu = await WebGpuStep.create(device, sg, adam, kernelOptionsFromEnv(), memory);
const compileMs = performance.now() - t0;
gpu.setParams(params);
const r = await gpu.step(feeds);
const ref = evaluate(sg.graph, feeds, params);

// every live node, relative to its own scale
let worst = 0;
let worstAt = "";
const gradIds = new Set([...sg.grads.values()].map((x) => x.id));
for (const id of gpu.live) {
  const node = sg.graph.node(id);
  if (["input", "param", "const", "view"].includes(node.op.kind)) continue;
  if (memory === "reuse" && id !== sg.loss.id && !gradIds.has(id)) continue; // recycled buffers
  const got = await gpu.readNode(id);
  const want = ref[id];
  // relative to the node's own scale, with a floor of 1e-5: a value that is 0 in exact arithmetic
  // (a bias gradient after a normalization: a sum of O(1) terms that cancel) comes out as float32
  // noise of ~1e-9 on both executors, in different orders
  let scale = 1e-5;
  for (const x of want) scale = Math.max(scale, Math.abs(x));
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]) / scale;
    if (!(e <= worst)) {
      worst = Number.isNaN(e) ? Infinity : e;
      worstAt = `node ${id} ${node.op.kind} [${node.shape}] (${node.tag}) at ${i}: ${got[i]} vs ${want[i]}`;
    }
  }
}
// Adam after clipping, from the GPU's own gradients (their error is in the node check above;
// Adam's first step is lr * g / (|g| + eps), which amplifies any difference in tiny gradients)
const gpuGrads = new Map<string, Float32Array>();
let sq = 0;
for (const p of sg.params) {
  const gs = sg.grads.get(p.name)!;
  const g = gpu.live.has(gs.id) && sg.graph.node(gs.id).op.kind !== "const" ? await gpu.readNode(gs.id) : new Float32Array(sizeOf(p.shape));
  gpuGrads.set(p.name, g);
  for (const x of g) sq += x * x;
}
const norm = Math.sqrt(sq);
const scale = Math.min(1, adam.clip / (norm + 1e-6));
const gpuParams = (await gpu.readFlat("params"))!;
let worstParam = 0;
for (const p of sg.params) {
  const g = gpuGrads.get(p.name)!;
  const p0 = params.get(p.name)!;
  const got = gpuParams.get(p.name)!;
  for (let i = 0; i < g.length; i++) {
    // first Adam step: m / bc1 = g and sqrt(v) / sqrt(bc2) = |g|, so the update is lr * g / (|g| + eps)
    let gi = Math.fround(g[i] * Math.fround(scale));
    let pi = p0[i];
    if (adam.weightDecay && adam.decoupled) pi = pi * (1 - adam.lr * adam.weightDecay);
    else if (adam.weightDecay) gi = gi + p0[i] * adam.weightDecay;
    const want = pi - (gi / (Math.abs(gi) + adam.eps)) * adam.lr;
    worstParam = Math.max(worstParam, Math.abs(got[i] - want));
  }
}
const result = {
  bench: "graph-check",
  backend: init.detail,
  generated: values.generated,
  batch: B,
  kernelsUnfused: unfused,
  kernels: gpu.kernels.length,
  memory,
  activationMiB: Number((gpu.bytes.activations / 2 ** 20).toFixed(1)),
  compileMs: Math.round(compileMs),
  loss: r.loss,
  lossCpu: ref[sg.loss.id][0],
  gradNorm: r.gradNorm,
  gradNormCpu: Math.sqrt(sg.params.reduce((a, p) => a + ref[sg.grads.get(p.name)!.id].reduce((b, x) => b + x * x, 0), 0)),
  worstNodeRelError: worst,
  worstNode: worstAt,
  worstParamAbsError: worstParam,
};
console.log(JSON.stringify(result));
gpu.dispose();
await shutdownBackend();
const ok = worst < 1e-3 && worstParam < 1e-5 && Math.abs(r.loss - ref[sg.loss.id][0]) < 1e-5 * Math.max(1, Math.abs(r.loss));
process.exit(ok ? 0 : 1);
