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
 *
 * --engine static (webgpu backend): the same step as one static graph (runtime/graph): traced,
 * differentiated and fused at start-up, then replayed as recorded WGSL dispatches.
 *
 * --profile (--engine static on the wasm / cpu backend: the native CPU executor): --steps more steps
 * with every kernel timed; prints to stderr the milliseconds per step by kernel kind (GEMMs against
 * everything else, wall and the calling thread's CPU time) and the GEMMs by shape with their
 * GFLOP/s (bench/step-profile.ts), and adds them to the JSON.
 *
 * --precision bf16 (--engine static on the wasm / cpu backend): the bf16 mixed-precision step
 * (GEMM operands rounded to bf16, fp32 accumulation; everything else fp32), as `sdc train
 * --precision bf16` runs it.
 *
 * --text spec (--engine static on the wasm / cpu backend): the spec's own learned text encoder
 * traced into the step and fed token ids, as `sdc train` runs a spec with a learned encoder (the
 * README job's), instead of the fixed random context; the figure is then `sdc train`'s step, not
 * one to set beside PyTorch's (whose twin takes a frozen context).
 *
 * --against ADDON (--engine static on the wasm / cpu backend): a change to the native kernels
 * measured on a shared machine. ADDON is another build of the addon (a copy of
 * build/Release/sdc_cpu.node made before the change); both builds run the same step over the same
 * parameters in this process, --steps pairs in alternating order (AB, BA, ...), and the bench
 * prints each pair's ratio (this build's native ms over the other's) and their median and
 * quartiles. Separate processes in turn left 2-3% differences inside the host's drift (the 64M
 * step's medians ranged 1,150-1,340 ms for one build within minutes); pairs of steps a second
 * apart cancel most of it. A build against a copy of itself gives 0.99-1.00.
 *
 *   cp build/Release/sdc_cpu.node /tmp/before.node   # then change, npm run build:native
 *   npx tsx bench/step.ts --generated generated/sd3-seed --batch 64 --context-tokens 8 --backend cpu --engine static --steps 16 --warmup 2 --against /tmp/before.node
 */
import { existsSync } from "node:fs";
import { cpus } from "node:os";
import { benchArgs } from "./args.ts";
import * as tf from "@tensorflow/tfjs";
import { loadCompiled } from "../cli/generated.ts";
import { initBackend, shutdownBackend } from "../runtime/backend.ts";
import { ParamStore } from "../runtime/nn/params.ts";
import { buildModel, FlowTrainer } from "../runtime/train/trainer.ts";
import { type ModelBundle, type PromptEncoder } from "../runtime/bundle.ts";
import { Rng } from "../runtime/util/rng.ts";
import { sampleSigmas } from "../runtime/flow/schedule.ts";
import { fuse } from "../runtime/graph/fuse.ts";
import { buildStepGraph, frozenContext, stepFeeds, textInputs } from "../runtime/engines/static/step.ts";
import { liveKernelCount } from "../runtime/graph/step-graph.ts";
import { WebGpuStep } from "../runtime/executors/webgpu/webgpu.ts";
import { NativeStep, addonAt, nativeDetail, requireNative } from "../runtime/executors/native/native.ts";
import { kernelOptionsFromEnv } from "../runtime/executors/webgpu/gemm-table.ts";
import { type StepProfile, profileTables, stepProfile } from "./step-profile.ts";

const { values } = benchArgs(import.meta.url, {
  options: {
    generated: { type: "string", default: "generated/sd3-seed" },
    batch: { type: "string", default: "64" },
    "context-tokens": { type: "string" },
    steps: { type: "string", default: "10" },
    warmup: { type: "string", default: "3" },
    backend: { type: "string", default: "wasm" },
    engine: { type: "string", default: "tfjs" },
    precision: { type: "string", default: "fp32" },
    text: { type: "string", default: "context" },
    profile: { type: "boolean", default: false },
    /** with --profile: how many rows each table lists */
    top: { type: "string", default: "12" },
    json: { type: "boolean", default: false },
    /** --engine static on the native CPU kernels: another build of the addon, its steps alternated with this build's in this process */
    against: { type: "string" },
    /** tfjs environment flags, e.g. --tf-flag WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE=128 (repeatable) */
    "tf-flag": { type: "string", multiple: true, default: [] },
  },
});

// per-kernel profiles need unquantized timestamps (Dawn rounds them to 65.536 us otherwise)
if (values.profile) process.env.SDC_DAWN_TOGGLES ??= "disable-dawn-features=timestamp_quantization";
const precision = values.precision as "fp32" | "bf16";
if (precision !== "fp32" && precision !== "bf16") {
  console.error(`--precision must be fp32 or bf16, got ${values.precision}`);
  process.exit(2);
}
if (values.text !== "context" && (values.text !== "spec" || values.engine !== "static" || values.backend === "webgpu")) {
  console.error(`--text must be context (a fixed random context, the default) or spec (the spec's learned text encoder, --engine static on the wasm or cpu backend), got ${values.text}`);
  process.exit(2);
}
if (values.against !== undefined && (values.engine !== "static" || values.backend === "webgpu")) {
  console.error("--against ADDON runs on --engine static with the wasm or cpu backend (the native CPU kernels)");
  process.exit(2);
}
if (values.against !== undefined && !existsSync(values.against)) {
  console.error(`--against: no addon at ${values.against} (a copy of build/Release/sdc_cpu.node)`);
  process.exit(2);
}
if (precision === "bf16" && (values.engine !== "static" || values.backend === "webgpu")) {
  console.error("--precision bf16 runs on --engine static with the wasm or cpu backend (the native CPU kernels)");
  process.exit(2);
}
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
/**
 * Uniform images in [-1, 1). Its own function, its loop last: inside batchData the loop's
 * on-stack-replaced code bailed out after the loop every step (V8: insufficient type feedback),
 * so the loop ran in the interpreter, boxing ~3 MB of numbers a step (young-generation GCs during
 * the timed native steps), until batchData was recompiled around step 28.
 */
function uniformImages(x0: Float32Array, r: Rng): Float32Array {
  for (let i = 0; i < x0.length; i++) x0[i] = r.uniform() * 2 - 1;
  return x0;
}
const batchData = () => {
  const x0 = uniformImages(new Float32Array(batch * per), rng);
  return { x0, eps: rng.normals(batch * per), sigma: sampleSigmas(m.flow.density, batch, rng), prompts: new Array(batch).fill("7") };
};

if (values.engine === "static" && init.name !== "webgpu") {
  // the native CPU executor of the same static step (runtime/executors/native/native.ts)
  const t0 = performance.now();
  // --text spec: the spec's model with its learned encoder, whose parameters are the step's (the
  // network of the context-fed model above is disposed first: its variables have the same names)
  if (values.text === "spec") store.dispose();
  const sm = values.text === "spec" ? buildModel(loaded.spec, ir, 0) : m;
  if (values.text === "spec" && frozenContext(sm)) throw new Error(`--text spec: ${values.generated} has a frozen text encoder, not a learned one; its step already takes a context`);
  const sg = buildStepGraph(sm, batch, [h, w, c], values.text === "spec" ? undefined : { tokens, width: ctxWidth, pooled: pooledWidth }, precision);
  const unfused = liveKernelCount(sg);
  fuse(sg);
  const buildMs = performance.now() - t0;
  const cpu = new NativeStep(sg, { lr: opt.lr, beta1: opt.beta1, beta2: opt.beta2, eps: opt.eps, weightDecay: opt.weightDecay, decoupled: opt.kind === "adamw", clip: ir.train.clip || 1, ema: ir.train.ema, emaWarmup: true });
  const compileMs = performance.now() - t0 - buildMs;
  const params = new Map<string, Float32Array>();
  for (const [name, v] of sm.store.vars) params.set(name, (await v.data()) as Float32Array);
  cpu.setParams(params);
  const ctxData = (await context.data()) as Float32Array;
  const pooledData = (await pooled.data()) as Float32Array;
  const prompts = Array.from({ length: batch }, (_, i) => ["7", "seven", ""][i % 3]);
  const textIn = values.text === "spec" ? await textInputs(sm, prompts) : { context: ctxData, pooled: pooledData };
  const stepBatch = () => ({ ...batchData(), prompts });
  const times: number[] = [];
  const run: number[] = [];
  let last = NaN;
  const total = Number(values.warmup) + Number(values.steps);
  // --against: the other build's step beside this one, over the same graph and parameters; both
  // warm up, then --steps pairs run in alternating order (AB, BA, ...), so a shared machine's
  // drift falls on both sides alike; the ratio is this build's native time over the other's, per pair
  const other = values.against ? new NativeStep(sg, cpu.adam, undefined, addonAt(values.against)) : null;
  const againstRun: number[] = [];
  const ratios: number[] = [];
  if (other) {
    other.setParams(params);
    for (let i = 0; i < Number(values.warmup); i++) for (const x of [cpu, other]) await x.step(stepFeeds(sg, sm.flow, stepBatch(), textIn));
  }
  let cpu0 = process.cpuUsage();
  for (let i = 0; other && i < Number(values.steps); i++) {
    const pair: number[] = [];
    for (const x of i % 2 === 0 ? [cpu, other] : [other, cpu]) {
      const r = await x.step(stepFeeds(sg, sm.flow, stepBatch(), textIn));
      (x === cpu ? run : againstRun).push(r.runMs);
      if (x === cpu) last = r.loss;
      pair[x === cpu ? 0 : 1] = r.runMs;
    }
    ratios.push(pair[0] / pair[1]);
    console.error(`pair ${i + 1}/${values.steps}: this ${pair[0].toFixed(1)} ms, against ${pair[1].toFixed(1)} ms, ratio ${(pair[0] / pair[1]).toFixed(3)}, this build's loss ${last.toFixed(4)}`);
  }
  if (other) times.push(...run);
  for (let i = 0; !other && i < total; i++) {
    if (i === Number(values.warmup)) cpu0 = process.cpuUsage();
    const feeds = stepFeeds(sg, sm.flow, stepBatch(), textIn);
    const s0 = performance.now();
    const r = await cpu.step(feeds);
    const dt = performance.now() - s0;
    last = r.loss;
    if (i >= Number(values.warmup)) {
      times.push(dt);
      run.push(r.runMs);
    }
    console.error(`step ${i + 1}/${total}${i < Number(values.warmup) ? " (warmup)" : ""}: ${dt.toFixed(1)} ms (native ${r.runMs.toFixed(1)} ms), loss ${r.loss.toFixed(4)}`);
  }
  // CPU time of the whole process per step (host work included): with SDC_THREADS=1 the figure
  // that a loaded machine does not inflate
  const used = process.cpuUsage(cpu0);
  // (with --against the process ran both builds' steps: its CPU time is not this build's, so none)
  const cpuMsPerStep = other ? null : (used.user + used.system) / 1000 / Number(values.steps);
  // per-kernel profile over --steps more steps: milliseconds by kernel kind and by GEMM shape
  // (printed as tables on stderr), and the GEMM rate
  let profile: StepProfile | null = null;
  if (values.profile) {
    // wall time per kernel, and the main thread's CPU time (the figure to read on a loaded machine
    // with SDC_THREADS=1: it does not count time the thread waited for a core)
    const prof = new Float64Array(2 * cpu.kernels);
    const n = Number(values.steps);
    for (let i = 0; i < n; i++) await cpu.step(stepFeeds(sg, sm.flow, stepBatch(), textIn), prof);
    profile = stepProfile(sg.graph, cpu.labels, cpu.kernelNodes, prof, n);
    console.error(["", `profile of ${n} steps (${nativeDetail()}, ${precision}):`, ...profileTables(profile, Number(values.top))].join("\n"));
  }
  const round2 = (x: number) => Number(x.toFixed(2));
  times.sort((a, b) => a - b);
  run.sort((a, b) => a - b);
  const q = (xs: number[], f: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(f * xs.length))];
  const against = other
    ? {
        addon: values.against,
        executor: `native CPU kernels (${other.addonDetail()})`,
        nativeMs: Number(q(againstRun, 0.5).toFixed(1)),
        minMs: Number(q(againstRun, 0).toFixed(1)),
        /** this build's native ms over the other's, per pair: median and quartiles */
        ratio: { median: Number(q(ratios, 0.5).toFixed(4)), q1: Number(q(ratios, 0.25).toFixed(4)), q3: Number(q(ratios, 0.75).toFixed(4)), pairs: ratios.length },
      }
    : null;
  if (against) console.error(`this / against (native ms, ${against.ratio.pairs} pairs): median ${against.ratio.median}, quartiles ${against.ratio.q1} - ${against.ratio.q3}; this ${q(run, 0.5).toFixed(1)} ms, against ${against.nativeMs} ms`);
  const result = {
    bench: "step",
    engine: "static",
    executor: nativeDetail(),
    precision,
    generated: values.generated,
    params: sm.store.numParams,
    text: values.text === "spec" ? "the spec's learned encoder" : "a fixed random context",
    backend: `${init.name} (${init.detail})`,
    host: `${cpus().length} x ${cpus()[0]?.model ?? "?"}`,
    batch,
    contextTokens: tokens,
    msPerStep: Number(times[Math.floor(times.length / 2)].toFixed(1)),
    minMs: Number(times[0].toFixed(1)),
    nativeMs: Number(run[Math.floor(run.length / 2)].toFixed(1)),
    cpuMsPerStep: cpuMsPerStep === null ? null : Number(cpuMsPerStep.toFixed(1)),
    /** times a kernel worker moved off the caller's CPU in the whole run (SDC_WORKERS=apart) */
    workerMoves: requireNative().workerMoves(),
    steps: Number(values.steps),
    kernelsPerStep: cpu.kernels,
    kernelsBeforeFusion: unfused,
    buildMs: Math.round(buildMs),
    compileMs: Math.round(compileMs),
    activationMiB: Math.round(cpu.bytes.activations / 2 ** 20),
    kernelMsByKind: profile ? Object.fromEntries(profile.kinds.map((k) => [k.kind, { ms: round2(k.ms), cpuMs: round2(k.cpuMs), count: k.count }])) : null,
    gemmMsByShape: profile ? Object.fromEntries(profile.gemms.map((r) => [r.shape, { ms: round2(r.ms), cpuMs: round2(r.cpuMs), count: r.count, gflop: Number(r.gflop.toFixed(3)) }])) : null,
    gemmGflops: profile ? Number((profile.gemmGflop / (profile.gemmMs / 1000)).toFixed(1)) : null,
    gemmGflopPerStep: profile ? Number(profile.gemmGflop.toFixed(3)) : null,
    loss: Number(last.toFixed(4)),
    against,
  };
  console.log(values.json ? JSON.stringify(result) : JSON.stringify(result, null, 2));
  sm.store.dispose();
  await shutdownBackend();
  process.exit(0);
}

if (values.engine === "static") {
  const device = (tf.backend() as unknown as { device: unknown }).device;
  const t0 = performance.now();
  const sg = buildStepGraph(m, batch, [h, w, c], { tokens, width: ctxWidth, pooled: pooledWidth });
  const unfused = liveKernelCount(sg);
  fuse(sg);
  const buildMs = performance.now() - t0;
  const gpu = await WebGpuStep.create(device, sg, { lr: opt.lr, beta1: opt.beta1, beta2: opt.beta2, eps: opt.eps, weightDecay: opt.weightDecay, decoupled: opt.kind === "adamw", clip: ir.train.clip || 1, ema: ir.train.ema, emaWarmup: true }, kernelOptionsFromEnv());
  const compileMs = performance.now() - t0 - buildMs;
  const params = new Map<string, Float32Array>();
  for (const [name, v] of store.vars) params.set(name, (await v.data()) as Float32Array);
  gpu.setParams(params);
  const ctxData = (await context.data()) as Float32Array;
  const pooledData = (await pooled.data()) as Float32Array;
  const times: number[] = [];
  const enc: number[] = [];
  let last = NaN;
  const total = Number(values.warmup) + Number(values.steps);
  for (let i = 0; i < total; i++) {
    const feeds = stepFeeds(sg, m.flow, batchData(), { context: ctxData, pooled: pooledData });
    const s0 = performance.now();
    const r = await gpu.step(feeds);
    const dt = performance.now() - s0;
    last = r.loss;
    if (i >= Number(values.warmup)) {
      times.push(dt);
      enc.push(r.encodeMs);
    }
    console.error(`step ${i + 1}/${total}${i < Number(values.warmup) ? " (warmup)" : ""}: ${dt.toFixed(1)} ms (encode ${r.encodeMs.toFixed(1)} ms), loss ${r.loss.toFixed(4)}`);
  }
  // back to back without reading the loss in between: the GPU never waits for the host
  const n = Number(values.steps);
  const pipelined = performance.now();
  for (let i = 0; i < n; i++) await gpu.step(stepFeeds(sg, m.flow, batchData(), { context: ctxData, pooled: pooledData }), { read: i === n - 1 });
  const pipelinedMs = (performance.now() - pipelined) / n;
  const prof = values.profile ? await gpu.profile() : null;
  times.sort((a, b) => a - b);
  enc.sort((a, b) => a - b);
  const mm = prof ? (prof.byLabel.gemm?.ms ?? 0) / prof.totalMs : null;
  const result = {
    bench: "step",
    engine: "static",
    generated: values.generated,
    params: store.numParams,
    backend: `${init.name} (${init.detail})`,
    host: `${cpus().length} x ${cpus()[0]?.model ?? "?"}`,
    batch,
    contextTokens: tokens,
    msPerStep: Number(times[Math.floor(times.length / 2)].toFixed(1)),
    minMs: Number(times[0].toFixed(1)),
    encodeMs: Number(enc[Math.floor(enc.length / 2)].toFixed(1)),
    msPerStepPipelined: Number(pipelinedMs.toFixed(1)),
    steps: n,
    kernelsPerStep: gpu.kernels.length + 3,
    kernelsBeforeFusion: unfused,
    buildMs: Math.round(buildMs),
    compileMs: Math.round(compileMs),
    activationMiB: Math.round(gpu.bytes.activations / 2 ** 20),
    gpuKernelMs: prof ? Number(prof.totalMs.toFixed(2)) : "no timestamp-query",
    matmulShareOfKernelTime: mm === null ? "no timestamp-query" : Number(mm.toFixed(3)),
    kernelMsByLabel: prof ? Object.fromEntries(Object.entries(prof.byLabel).map(([k, v]) => [k, { ms: Number(v.ms.toFixed(2)), count: v.count }])) : null,
    loss: Number(last.toFixed(4)),
  };
  console.log(values.json ? JSON.stringify(result) : JSON.stringify(result, null, 2));
  gpu.dispose();
  store.dispose();
  await shutdownBackend();
  process.exit(0);
}

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
