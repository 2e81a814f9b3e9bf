/**
 * `sdc train DIR`: the training loop with its files: metrics.jsonl, samples/step-N.png (+ .txt
 * prompts), checkpoints/step-N/ (atomic) and checkpoints/latest. Ctrl-C (SIGINT) or SIGTERM lets
 * the current step finish, writes a checkpoint and exits 130 (SIGINT) or 143 (SIGTERM); a second
 * signal exits at once. A non-finite loss stops with exit 3 and keeps the last good checkpoint.
 */
import { appendFileSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { irHash } from "../../ir/validate.ts";
import { initBackend } from "../../runtime/backend.ts";
import { registerWasmConvFilterGrad } from "../../runtime/eval/wasm-kernels.ts";
import { BatchSampler } from "../../runtime/data/dataset.ts";
import { loadDataset, sampleViewer } from "../../runtime/data/load.ts";
import { digitPrompt } from "../../runtime/data/mnist.ts";
import { encodeGridPng, promptsGridText } from "../../runtime/image/png.ts";
import { checkOutputDir, writeFileAtomic } from "../../runtime/io/atomic.ts";
import { CheckpointError, type HostTensors, pruneCheckpoints, readCheckpoint, resolveCheckpoint, saveCheckpoint, writeLatest } from "../../runtime/train/checkpoint.ts";
import type { LrScheduleName } from "../../runtime/train/lr-schedule.ts";
import { TRAIN_OPTIONAL_DEFAULTS } from "../../compiler/spec.ts";
import type { EngineName } from "../../runtime/engines/engine.ts";
import { createEngine } from "../../runtime/engines/select.ts";
import { buildModel, drawBatch, makeValidationSet, TrainingStopped } from "../../runtime/train/trainer.ts";
import { type ModelBundle, type StepResult } from "../../runtime/bundle.ts";
import { Rng } from "../../runtime/util/rng.ts";
import { WordTokenizer } from "../../runtime/text/words.ts";
import { type PretrainedTextOptions, PretrainedPromptEncoder, textEncoderOverrides } from "../../runtime/text/pretrained/prompt-encoder.ts";
import { EXIT, InputError, UsageError } from "../errors.ts";
import { loadCompiled } from "../generated.ts";
import { Progress } from "../progress.ts";
import { CONFIG_FILE, cleanRunFolder, newestRun, readValLosses, readRunConfig, resolveSettings, type RunSettings, runDirOf, truncateMetrics, writeRunConfig } from "../run-config.ts";
import { SDC_VERSION } from "../version.ts";
import { watchInterrupts, yieldToEventLoop } from "../signals.ts";

export interface TrainCliOptions {
  steps?: number;
  batch?: number;
  lr?: number;
  seed?: number;
  backend: "auto" | "tensorflow" | "webgpu" | "wasm" | "cpu";
  /** training engine: auto (static on webgpu and on the CPU with the native executor, else tfjs), tfjs, static (runtime/engines/) */
  engine?: EngineName;
  out?: string;
  /** a checkpoint or run folder; "latest" or true: the newest run of this package under `runsDir` (and --out) */
  resume?: string | boolean;
  /** where `--resume latest` looks for runs (default: output) */
  runsDir?: string;
  /** the command line, recorded in config.json */
  argv?: string[];
  sampleEvery?: number;
  checkpointEvery?: number;
  samples?: number;
  sampleSteps?: number;
  progress?: boolean;
  /** sd3_pretrained specs: `clip_l=DIR,clip_g=DIR,t5=DIR[,cache=DIR|off]` (overrides the spec's folders and SDC_CLIP_L/SDC_CLIP_G/SDC_T5) */
  textEncoders?: string;
  /** learning-rate warmup steps (default: the spec's) */
  warmup?: number;
  lrSchedule?: LrScheduleName;
  /** gradient accumulation: micro-batches per step (must divide the batch) */
  accumulate?: number;
  /** keep the last N checkpoints (0 = all) */
  keepCheckpoints?: number;
  /** also keep the checkpoint with the lowest validation loss */
  keepBest?: boolean;
  /** only "fp32" is accepted; anything else is refused with what is supported */
  precision?: string;
  /** for tests: stop after this many steps as if interrupted */
  interruptAfter?: number;
  log?: (s: string) => void;
}

export interface TrainSummary {
  engine: "tfjs" | "static";
  steps: number;
  lastLoss: number;
  valLoss: number | null;
  seconds: number;
  stepsPerSecond: number;
  out: string;
}

const pad = (n: number) => String(n).padStart(6, "0");

/** What a request for another precision than fp32 gets. */
export function precisionRefusal(what: string): string {
  return `${what} is not supported: sdc trains in fp32 only (the tfjs ops and the static engine's WGSL kernels are fp32; there is no fp16/bf16 path yet); supported: fp32`;
}

/** Folder overrides for sd3_pretrained specs: SDC_CLIP_L/SDC_CLIP_G/SDC_T5/SDC_CACHE_DIR, then --text-encoders. */
export function pretrainedTextOptions(ir: ModelBundle["ir"], arg: string | undefined, log: (s: string) => void): PretrainedTextOptions | undefined {
  if (ir.text.kind !== "sd3_pretrained") {
    if (arg !== undefined) throw new UsageError(`--text-encoders is for specs with \`encoder: sd3_pretrained(...)\`; ${ir.spec.name}'s text encoder is ${ir.text.kind}`);
    return undefined;
  }
  try {
    return { ...textEncoderOverrides(arg, process.env), log };
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

async function hostMap(vars: Iterable<[string, tf.Tensor]>, filter: (n: string) => boolean): Promise<HostTensors> {
  const out: HostTensors = new Map();
  for (const [n, v] of vars) if (filter(n)) out.set(n, { shape: [...v.shape], data: (await v.data()) as Float32Array });
  return out;
}

export async function runTrain(dir: string, o: TrainCliOptions): Promise<number> {
  const log = o.log ?? ((s: string) => process.stderr.write(s + "\n"));
  const loaded = await loadCompiled(dir);
  const { ir, spec } = loaded;
  const hash = irHash(loaded.irText);
  const tcfg = ir.train;
  const opt = ir.train.optimizer;

  // resume: find and verify the checkpoint first, before any work; its run's config.json gives
  // the settings (a flag that differs is refused, run-config.ts)
  let resumed: ReturnType<typeof readCheckpoint> | undefined;
  let resumeDir: string | undefined;
  let runDir: string | null = null;
  if (o.resume !== undefined && o.resume !== false) {
    if (o.resume === true || o.resume === "latest") {
      const roots = [o.runsDir ?? "output", ...(o.out ? [o.out] : [])];
      runDir = newestRun(roots, ir.spec.name, hash, irHash);
      if (!runDir) throw new CheckpointError(`no run of ${ir.spec.name} to resume: no folder under ${roots.join(", ")} has checkpoints/latest of this spec; give the run folder (--resume DIR) or start a run without --resume`);
      resumeDir = resolveCheckpoint(runDir);
    } else {
      resumeDir = resolveCheckpoint(o.resume);
      runDir = runDirOf(resumeDir);
    }
    resumed = readCheckpoint(resumeDir);
    if (resumed.state.irHash !== hash) {
      throw new CheckpointError(`checkpoint ${resumeDir} is from another spec (${resumed.state.spec}, IR ${resumed.state.irHash.slice(0, 12)}) than ${dir} (${ir.spec.name}, IR ${hash.slice(0, 12)})`);
    }
  }
  const prior = runDir ? readRunConfig(runDir, { spec: ir.spec.name, irHash: hash }) : null;
  if (o.precision !== undefined && o.precision !== "fp32") throw new UsageError(precisionRefusal(`--precision ${o.precision}`));
  const D = TRAIN_OPTIONAL_DEFAULTS;
  const specSettings: RunSettings = {
    steps: tcfg.steps, batch: tcfg.batch, lr: opt.lr, seed: tcfg.seed, sampleEvery: tcfg.sampleEvery, checkpointEvery: tcfg.checkpointEvery, samples: tcfg.samples, sampleSteps: ir.flow.steps,
    warmup: tcfg.warmup, lrSchedule: tcfg.lrSchedule ?? D.lrSchedule, accumulate: tcfg.accumulate ?? D.accumulate, keepCheckpoints: tcfg.keepCheckpoints ?? D.keepCheckpoints, keepBest: tcfg.keepBest ?? D.keepBest, precision: tcfg.precision ?? D.precision,
  };
  const flags = {
    steps: o.steps, batch: o.batch, lr: o.lr, seed: o.seed, sampleEvery: o.sampleEvery, checkpointEvery: o.checkpointEvery, samples: o.samples, sampleSteps: o.sampleSteps,
    warmup: o.warmup, lrSchedule: o.lrSchedule, accumulate: o.accumulate, keepCheckpoints: o.keepCheckpoints, keepBest: o.keepBest, precision: o.precision,
  };
  const settings = resolveSettings(specSettings, flags, prior, runDir ? join(runDir, CONFIG_FILE) : undefined);
  const { steps, batch, seed, sampleEvery, checkpointEvery, sampleSteps } = settings;
  const accumulate = settings.accumulate as number;
  if (batch % accumulate !== 0) throw new UsageError(`--grad-accum ${accumulate} does not divide the batch size ${batch}: each step's batch is split into that many equal micro-batches`);
  const schedule = settings.lrSchedule as LrScheduleName;
  if (prior && schedule !== "constant" && prior.settings.steps !== steps) log(`note: the ${schedule} learning-rate schedule now spans ${steps} steps (the run was started for ${prior.settings.steps}); the rate changes from here`);
  const nSamples = settings.samples;
  const out = o.out ?? runDir ?? join("output", ir.spec.name);
  // an output folder that cannot be one (a file, a device, read-only) is refused before any work
  checkOutputDir(out);
  if (resumed && resumed.state.step >= steps) throw new InputError(`checkpoint ${resumeDir} is already at step ${resumed.state.step}; ask for more --steps (now ${steps})`);

  const backend = await initBackend(o.backend, { log });
  // tfjs-backend-wasm has no conv2d filter gradient: the tfjs engine needs one for conv specs (the UNet)
  if (backend.name === "wasm") registerWasmConvFilterGrad();
  log(`backend: ${backend.detail}`);
  const train = loadDataset(ir, "train");
  const test = ir.data.source === "mnist" ? loadDataset(ir, "test") : train;
  const words = resumed?.state.words ?? (ir.data.prompts === "digits" ? undefined : WordTokenizer.fromCaptions(Array.from({ length: train.size }, (_, i) => train.caption(i, new Rng(i))), ir.text.kind === "learned" ? ir.text.vocab : 32, ir.text.kind === "learned" ? ir.text.tokens : 8).words.slice());
  const m = buildModel(spec, ir, seed, words, pretrainedTextOptions(ir, o.textEncoders, log));
  if (m.text instanceof PretrainedPromptEncoder) log(m.text.describe());
  const nParams = m.store.numParams;
  if (nParams !== ir.stats.params) throw new InputError(`built ${nParams} parameters but the compiler proved ${ir.stats.params}; recompile ${dir}`);
  log(`${ir.spec.name}: ${nParams.toLocaleString("en-US")} parameters (network ${ir.stats.networkParams.toLocaleString("en-US")}, text encoder ${ir.stats.textParams.toLocaleString("en-US")}); ${train.name}: ${train.size} images ${ir.data.height}x${ir.data.width}x${ir.data.channels}`);
  const dims: [number, number, number] = [ir.data.height, ir.data.width, ir.data.channels];
  const trainer = await createEngine(o.engine ?? "auto", m, { lr: settings.lr, clip: tcfg.clip, ema: tcfg.ema, kind: opt.kind, beta1: opt.beta1, beta2: opt.beta2, eps: opt.eps, weightDecay: opt.weightDecay, warmup: settings.warmup as number, schedule, steps, accumulate }, batch, dims, log);
  log(`engine: ${trainer.detail}`);

  let step = 0;
  let rng = new Rng(seed);
  let sampler = new BatchSampler(train, batch, new Rng(seed + 1));
  let elapsedBefore = 0;
  if (resumed) {
    m.store.load(new Map([...resumed.network, ...resumed.text]), { strict: false, what: `checkpoint ${resumeDir}` });
    const missing = [...m.store.vars.keys()].filter((k) => !resumed!.network.has(k) && !resumed!.text.has(k));
    if (missing.length) throw new CheckpointError(`checkpoint ${resumeDir} lacks ${missing.length} parameters (${missing.slice(0, 3).join(", ")})`);
    await trainer.loadState(resumed.optimizer, resumed.state.optimizerSteps, resumed.ema, resumed.state.emaUpdates);
    step = resumed.state.step;
    rng = Rng.fromState(resumed.state.rng);
    if (resumed.state.sampler) {
      if (resumed.state.sampler.batchSize !== batch) throw new UsageError(`checkpoint ${resumeDir} was trained at batch ${resumed.state.sampler.batchSize}, this run asks for ${batch}; resume with --batch-size ${resumed.state.sampler.batchSize}`);
      sampler = BatchSampler.restore(train, resumed.state.sampler);
    }
    elapsedBefore = resumed.state.elapsedSeconds;
    log(`resumed from ${resumeDir} at step ${step}`);
  }

  mkdirSync(join(out, "samples"), { recursive: true });
  mkdirSync(join(out, "checkpoints"), { recursive: true });
  cleanRunFolder(out);
  const metrics = join(out, "metrics.jsonl");
  if (!resumed) writeFileAtomic(metrics, "");
  else truncateMetrics(metrics, step); // the steps after the checkpoint are redone: their lines go
  const valLosses = readValLosses(metrics); // for keep_best
  writeFileAtomic(join(out, "ir.json"), loaded.irText);
  const now = new Date().toISOString();
  const command = o.argv ?? ["sdc", "train", dir];
  writeRunConfig(out, {
    format: "sdc-run-config", version: 1, package: dir, spec: ir.spec.name, irHash: hash, settings, recipe: { ...tcfg, optimizer: { ...opt, lr: settings.lr } }, command,
    versions: { sdc: SDC_VERSION, node: process.version, tfjs: tf.version_core }, seed, backend: backend.name, engine: trainer.name, created: prior?.created ?? now,
    history: [...(prior?.history ?? []), { command, fromStep: step, at: now }],
  });

  const progress = new Progress(steps, step, o.progress !== false && process.stderr.isTTY === true, log);
  const val = makeValidationSet(test, Math.min(32, test.size), 8);
  // fixed prompts and noise for every grid, so grids are comparable across steps
  const gridRng = new Rng(seed + 7);
  const gridPrompts = Array.from({ length: nSamples }, () => (ir.data.prompts === "digits" ? digitPrompt(gridRng.int(10), gridRng) : train.caption(gridRng.int(train.size), gridRng)));
  const gridNoise = gridRng.normals(nSamples * dims[0] * dims[1] * dims[2]);
  const viewer = sampleViewer(ir, train);

  let lastLoss = NaN;
  let lastGood: string | null = resumeDir ?? null;
  // Ctrl-C / SIGTERM: finish this step, write a checkpoint, exit 130 / 143 (cli/signals.ts)
  const interrupt = watchInterrupts({ log: (s) => progress.note(s.replace(/^\n/, "")), then: "finishing this step and writing a checkpoint" });
  const stopped = () => interrupt.requested;

  const checkpoint = async () => {
    const name = `step-${pad(step)}`;
    await trainer.syncParams();
    const vars = [...m.store.vars.entries(), ...m.store.buffers.entries()];
    const ema = await trainer.emaState();
    const optimizer = await trainer.optimizerState();
    saveCheckpoint(join(out, "checkpoints", name), {
      network: await hostMap(vars, (n) => !n.startsWith("text_encoder.")),
      text: await hostMap(vars, (n) => n.startsWith("text_encoder.")),
      ema,
      optimizer,
      state: { format: "sdc-checkpoint", version: 1, spec: ir.spec.name, irHash: hash, step, seed, rng: rng.state(), sampler: sampler.state(), words: [...m.text.words], optimizerSteps: trainer.stepCount, emaUpdates: trainer.emaUpdates, lastLoss: Number.isFinite(lastLoss) ? lastLoss : null, elapsedSeconds: elapsedBefore + (performance.now() - t0) / 1000 },
      irText: loaded.irText,
    });
    writeLatest(join(out, "checkpoints"), name);
    lastGood = join(out, "checkpoints", name);
    pruneCheckpoints(join(out, "checkpoints"), { keep: settings.keepCheckpoints as number, keepBest: settings.keepBest === true, valLoss: valLosses });
  };

  const samples = async () => {
    const vl = await trainer.validationLoss(val, dims, batch);
    const data = await trainer.sample(gridNoise, gridPrompts, dims, { steps: sampleSteps });
    const nrow = Math.ceil(Math.sqrt(nSamples));
    // latent samples are drawn through the dataset's decoder, when it has one
    const png = viewer ? encodeGridPng(viewer.decode(data, nSamples), nSamples, ...viewer.dims, { nrow }) : dims[2] === 1 || dims[2] === 3 ? encodeGridPng(data, nSamples, ...dims, { nrow }) : null;
    if (png) writeFileAtomic(join(out, "samples", `step-${pad(step)}.png`), png);
    writeFileAtomic(join(out, "samples", `step-${pad(step)}.txt`), promptsGridText(gridPrompts, nrow));
    appendFileSync(metrics, JSON.stringify({ step, val_loss: vl }) + "\n");
    valLosses.set(step, vl);
    return vl;
  };

  const t0 = performance.now();
  progress.restart();
  let valLoss: number | null = null;
  let tensorsAtFirstStep = -1;
  // Steps that end with samples, a checkpoint or a planned stop are waited for; between them the
  // static engine keeps one step in flight (the host prepares and encodes step n + 1 while the
  // GPU runs step n). Numerics and the batch order are the same either way.
  const boundary = (s: number) => s >= steps || (sampleEvery > 0 && s % sampleEvery === 0) || (checkpointEvery > 0 && s % checkpointEvery === 0) || (o.interruptAfter !== undefined && s >= o.interruptAfter);
  const pipelined = trainer.name === "static";
  const submit = () => {
    const b = drawBatch(sampler, rng, m.flow);
    return trainer.step(b, [b.prompts.length, ...dims]);
  };
  try {
    let pending: Promise<StepResult> | null = step < steps ? submit() : null;
    while (pending) {
      const current: Promise<StepResult> = pending;
      pending = pipelined && !boundary(step + 1) && !stopped() ? submit() : null;
      const r = await current;
      await yieldToEventLoop(); // lets a Ctrl-C / SIGTERM handler run (the CPU backends never wait on I/O)
      if (!Number.isFinite(r.loss)) {
        await pending?.catch(() => undefined);
        throw new TrainingStopped(`the loss became ${r.loss} at step ${step + 1}; stopping. The last good checkpoint is ${lastGood ?? "(none yet)"}; try a lower --lr or check the data`);
      }
      step++;
      lastLoss = r.loss;
      if (tensorsAtFirstStep < 0) tensorsAtFirstStep = tf.memory().numTensors;
      const sps = progress.update(step, r.loss);
      if (step % tcfg.logEvery === 0 || step === steps) {
        appendFileSync(metrics, JSON.stringify({ step, loss: r.loss, grad_norm: r.gradNorm, lr: trainer.lr, steps_per_s: sps, tensors: tf.memory().numTensors }) + "\n");
      }
      if (o.interruptAfter !== undefined && step >= o.interruptAfter) interrupt.request("SIGINT");
      if (pending) continue; // not a boundary: the next step is already running
      const stop = stopped();
      const last = step === steps || stop;
      if ((sampleEvery > 0 && step % sampleEvery === 0 && !stop) || (last && !stop)) {
        valLoss = await samples();
        progress.note(`step ${step}: val_loss ${valLoss.toFixed(4)}, samples/step-${pad(step)}.png`);
      }
      if ((checkpointEvery > 0 && step % checkpointEvery === 0) || last) await checkpoint();
      if (stop || step >= steps) break;
      pending = submit();
    }
  } finally {
    interrupt.dispose();
    progress.done();
  }
  const seconds = (performance.now() - t0) / 1000;
  const summary: TrainSummary = { engine: trainer.name, steps: step, lastLoss, valLoss, seconds, stepsPerSecond: (step - (resumed?.state.step ?? 0)) / seconds, out };
  writeFileSync(join(out, "summary.json"), JSON.stringify({ ...summary, trainStepsPerSecond: progress.rate, backend: backend.name, params: nParams, batch, tensors: tf.memory().numTensors, tensorsAtFirstStep, ...(m.text instanceof PretrainedPromptEncoder ? { textEmbeddings: m.text.stats } : {}) }, null, 2) + "\n");
  const stop = stopped();
  if (stop) log(`interrupted at step ${step}; checkpoint ${lastGood} (resume with --resume ${out})`);
  // the figures of the progress bar's last line: the last step's loss and the training rate
  log(`${stop ? "stopped" : "done"} at step ${step}: loss ${lastLoss.toFixed(4)}${valLoss !== null ? `, val_loss ${valLoss.toFixed(4)}` : ""}, ${progress.rate.toFixed(2)} steps/s (${seconds.toFixed(1)} s in all); checkpoint ${lastGood}`);
  if (m.text instanceof PretrainedPromptEncoder) {
    log(m.text.summary());
    m.text.dispose();
  }
  trainer.dispose();
  m.store.dispose();
  return stop ? interrupt.exitCode : EXIT.ok;
}

export { existsSync };
