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
import { BatchSampler, type ImageTextDataset } from "../../runtime/data/dataset.ts";
import type { IR } from "../../ir/ir.ts";
import { loadDataset, sampleViewer } from "../../runtime/data/load.ts";
import { digitPrompt } from "../../runtime/data/mnist.ts";
import { encodeGridPng, promptsGridText } from "../../runtime/image/png.ts";
import { checkOutputDir, writeFileAtomic } from "../../runtime/io/atomic.ts";
import { CheckpointError, type HostTensors, pruneCheckpoints, readCheckpoint, resolveCheckpoint, saveCheckpoint, writeLatest } from "../../runtime/train/checkpoint.ts";
import type { LrScheduleName } from "../../runtime/train/lr-schedule.ts";
import { TRAIN_OPTIONAL_DEFAULTS } from "../../compiler/spec.ts";
import type { EngineName, EngineOptions, TrainEngine } from "../../runtime/engines/engine.ts";
import { createEngine } from "../../runtime/engines/select.ts";
import { buildModel, drawBatch, makeValidationSet, TrainingStopped } from "../../runtime/train/trainer.ts";
import type { ModelBundle, StepResult, ValidationSet } from "../../runtime/bundle.ts";
import { Rng } from "../../runtime/util/rng.ts";
import { WordTokenizer } from "../../runtime/text/words.ts";
import { type PretrainedTextOptions, PretrainedPromptEncoder, textEncoderOverrides } from "../../runtime/text/pretrained/prompt-encoder.ts";
import { EXIT, InputError, UsageError } from "../errors.ts";
import { loadCompiled } from "../generated.ts";
import { Progress } from "../progress.ts";
import { cleanRunFolder, readValLosses, type ResolvedRun, type ResumePoint, resolveRun, type RunRequest, type RunSettings, truncateMetrics, writeRunConfig } from "../run-config.ts";
import { SDC_VERSION } from "../version.ts";
import { watchInterrupts, yieldToEventLoop } from "../signals.ts";

/** `sdc train`'s options: the run's request (its settings' flags, --out, --resume; cli/run-config.ts) and how it runs. */
export interface TrainCliOptions extends RunRequest {
  backend: "auto" | "tensorflow" | "webgpu" | "wasm" | "cpu";
  /** training engine: auto (static on webgpu and on the CPU with the native executor, else tfjs), tfjs, static (runtime/engines/) */
  engine?: EngineName;
  progress?: boolean;
  /** sd3_pretrained specs: `clip_l=DIR,clip_g=DIR,t5=DIR[,cache=DIR|off]` (overrides the spec's folders and SDC_CLIP_L/SDC_CLIP_G/SDC_T5) */
  textEncoders?: string;
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

type Loaded = Awaited<ReturnType<typeof loadCompiled>>;

/** What training runs on: the backend, the datasets, the model and its engine. */
interface Setup {
  backend: Awaited<ReturnType<typeof initBackend>>;
  train: ImageTextDataset;
  test: ImageTextDataset;
  m: ModelBundle;
  trainer: TrainEngine;
  dims: [number, number, number];
  nParams: number;
}

/** Everything a run's phases share; `st` changes as it trains. */
interface Run {
  dir: string;
  o: TrainCliOptions;
  log: (s: string) => void;
  loaded: Loaded;
  hash: string;
  r: ResumePoint;
  s: ResolvedRun;
  su: Setup;
  metrics: string;
  valLosses: Map<number, number>;
  val: ValidationSet;
  grid: { prompts: string[]; noise: Float32Array; viewer: ReturnType<typeof sampleViewer> };
  progress: Progress;
  interrupt: ReturnType<typeof watchInterrupts>;
  st: { step: number; rng: Rng; sampler: BatchSampler; elapsedBefore: number; lastLoss: number; lastGood: string | null; valLoss: number | null; tensorsAtFirstStep: number; t0: number };
}

/** What the engine trains by: the run's recipe (its optimizer's lr is the run's) and settings. */
function engineOptions({ recipe, settings }: ResolvedRun["config"]): EngineOptions {
  const opt = recipe.optimizer;
  return { lr: opt.lr, clip: recipe.clip, ema: recipe.ema, kind: opt.kind, beta1: opt.beta1, beta2: opt.beta2, eps: opt.eps, weightDecay: opt.weightDecay, warmup: settings.warmup as number, schedule: settings.lrSchedule as LrScheduleName, steps: settings.steps, accumulate: settings.accumulate as number, precision: settings.precision as "fp32" | "bf16" };
}

/** The backend, the datasets, the model (its parameter count checked against the compiler's) and the engine. */
async function setUp(dir: string, o: TrainCliOptions, loaded: Loaded, r: ResumePoint, config: ResolvedRun["config"], log: (s: string) => void): Promise<Setup> {
  const { ir, spec } = loaded;
  const { settings } = config;
  // bf16 mixed precision runs on the native CPU kernels only: `auto` then picks among the CPU backends
  const cpuOnly = settings.precision === "bf16" && o.backend === "auto";
  if (cpuOnly) log("backend: auto picks a CPU backend (wasm, cpu) for bf16 mixed precision, which runs on the native CPU kernels only");
  const backend = await initBackend(o.backend, { log, candidates: cpuOnly ? ["wasm", "cpu"] : undefined });
  // tfjs-backend-wasm has no conv2d filter gradient: the tfjs engine needs one for conv specs (the UNet)
  if (backend.name === "wasm") registerWasmConvFilterGrad();
  log(`backend: ${backend.detail}`);
  const train = loadDataset(ir, "train");
  const test = ir.data.source === "mnist" ? loadDataset(ir, "test") : train;
  const words = r.resumed?.state.words ?? (ir.data.prompts === "digits" ? undefined : WordTokenizer.fromCaptions(Array.from({ length: train.size }, (_, i) => train.caption(i, new Rng(i))), ir.text.kind === "learned" ? ir.text.vocab : 32, ir.text.kind === "learned" ? ir.text.tokens : 8).words.slice());
  const m = buildModel(spec, ir, settings.seed, words, pretrainedTextOptions(ir, o.textEncoders, log));
  if (m.text instanceof PretrainedPromptEncoder) log(m.text.describe());
  const nParams = m.store.numParams;
  if (nParams !== ir.stats.params) throw new InputError(`built ${nParams} parameters but the compiler proved ${ir.stats.params}; recompile ${dir}`);
  log(`${ir.spec.name}: ${nParams.toLocaleString("en-US")} parameters (network ${ir.stats.networkParams.toLocaleString("en-US")}, text encoder ${ir.stats.textParams.toLocaleString("en-US")}); ${train.name}: ${train.size} images ${ir.data.height}x${ir.data.width}x${ir.data.channels}`);
  const dims: [number, number, number] = [ir.data.height, ir.data.width, ir.data.channels];
  const trainer = await createEngine(o.engine ?? "auto", m, engineOptions(config), settings.batch, dims, log);
  log(`engine: ${trainer.detail}`);
  return { backend, train, test, m, trainer, dims, nParams };
}

/** Where training starts: step 0 with fresh generators, or a resumed checkpoint's parameters, optimizer, generators and batch order. */
async function startState(r: ResumePoint, su: Setup, settings: RunSettings, log: (s: string) => void): Promise<Pick<Run["st"], "step" | "rng" | "sampler" | "elapsedBefore">> {
  const { batch, seed } = settings;
  const { resumed, resumeDir } = r;
  const { m, trainer, train } = su;
  if (!resumed) return { step: 0, rng: new Rng(seed), sampler: new BatchSampler(train, batch, new Rng(seed + 1)), elapsedBefore: 0 };
  m.store.load(new Map([...resumed.network, ...resumed.text]), { strict: false, what: `checkpoint ${resumeDir}` });
  const missing = [...m.store.vars.keys()].filter((k) => !resumed.network.has(k) && !resumed.text.has(k));
  if (missing.length) throw new CheckpointError(`checkpoint ${resumeDir} lacks ${missing.length} parameters (${missing.slice(0, 3).join(", ")})`);
  await trainer.loadState(resumed.optimizer, resumed.state.optimizerSteps, resumed.ema, resumed.state.emaUpdates);
  const step = resumed.state.step;
  const rng = Rng.fromState(resumed.state.rng);
  let sampler = new BatchSampler(train, batch, new Rng(seed + 1));
  if (resumed.state.sampler) {
    if (resumed.state.sampler.batchSize !== batch) throw new UsageError(`checkpoint ${resumeDir} was trained at batch ${resumed.state.sampler.batchSize}, this run asks for ${batch}; resume with --batch-size ${resumed.state.sampler.batchSize}`);
    sampler = BatchSampler.restore(train, resumed.state.sampler);
  }
  log(`resumed from ${resumeDir} at step ${step}`);
  return { step, rng, sampler, elapsedBefore: resumed.state.elapsedSeconds };
}

/** The run folder: samples/, checkpoints/, metrics.jsonl (cut back to the checkpoint on resume), ir.json and config.json (the resolved run's, with its backend and engine). */
function prepareRunFolder(loaded: Loaded, s: ResolvedRun, su: Setup, step: number, resumed: boolean): { metrics: string; valLosses: Map<number, number> } {
  const { out } = s;
  mkdirSync(join(out, "samples"), { recursive: true });
  mkdirSync(join(out, "checkpoints"), { recursive: true });
  cleanRunFolder(out);
  const metrics = join(out, "metrics.jsonl");
  if (!resumed) writeFileAtomic(metrics, "");
  else truncateMetrics(metrics, step); // the steps after the checkpoint are redone: their lines go
  const valLosses = readValLosses(metrics); // for keep_best
  writeFileAtomic(join(out, "ir.json"), loaded.irText);
  writeRunConfig(out, { ...s.config, backend: su.backend.name, engine: su.trainer.name });
  return { metrics, valLosses };
}

/** The fixed prompts and noise of every sample grid (grids are comparable across steps), and how samples become pictures. */
function sampleGrid(ir: IR, su: Setup, nSamples: number, seed: number): Run["grid"] {
  const { train, dims } = su;
  const gridRng = new Rng(seed + 7);
  const prompts = Array.from({ length: nSamples }, () => (ir.data.prompts === "digits" ? digitPrompt(gridRng.int(10), gridRng) : train.caption(gridRng.int(train.size), gridRng)));
  const noise = gridRng.normals(nSamples * dims[0] * dims[1] * dims[2]);
  return { prompts, noise, viewer: sampleViewer(ir, train) };
}

/** checkpoints/step-N (parameters, EMA, optimizer, generators), `latest`, and pruning per keep_checkpoints / keep_best. */
async function writeCheckpoint(run: Run): Promise<void> {
  const { su, st, s, loaded } = run;
  const { m, trainer } = su;
  const name = `step-${pad(st.step)}`;
  await trainer.syncParams();
  const vars = [...m.store.vars.entries(), ...m.store.buffers.entries()];
  const ema = await trainer.emaState();
  const optimizer = await trainer.optimizerState();
  saveCheckpoint(join(s.out, "checkpoints", name), {
    network: await hostMap(vars, (n) => !n.startsWith("text_encoder.")),
    text: await hostMap(vars, (n) => n.startsWith("text_encoder.")),
    ema,
    optimizer,
    state: { format: "sdc-checkpoint", version: 1, spec: loaded.ir.spec.name, irHash: run.hash, step: st.step, seed: s.config.settings.seed, rng: st.rng.state(), sampler: st.sampler.state(), words: [...m.text.words], optimizerSteps: trainer.stepCount, emaUpdates: trainer.emaUpdates, lastLoss: Number.isFinite(st.lastLoss) ? st.lastLoss : null, elapsedSeconds: st.elapsedBefore + (performance.now() - st.t0) / 1000 },
    irText: loaded.irText,
  });
  writeLatest(join(s.out, "checkpoints"), name);
  st.lastGood = join(s.out, "checkpoints", name);
  pruneCheckpoints(join(s.out, "checkpoints"), { keep: s.config.settings.keepCheckpoints as number, keepBest: s.config.settings.keepBest === true, valLoss: run.valLosses });
}

/** The validation loss and samples/step-N.{png,txt}; returns the validation loss. */
async function writeSamples(run: Run): Promise<number> {
  const { su, st, s, grid } = run;
  const { trainer, dims } = su;
  const nSamples = s.config.settings.samples;
  const vl = await trainer.validationLoss(run.val, dims, s.config.settings.batch);
  const data = await trainer.sample(grid.noise, grid.prompts, dims, { steps: s.config.settings.sampleSteps });
  const nrow = Math.ceil(Math.sqrt(nSamples));
  // latent samples are drawn through the dataset's decoder, when it has one
  const png = grid.viewer ? encodeGridPng(grid.viewer.decode(data, nSamples), nSamples, ...grid.viewer.dims, { nrow }) : dims[2] === 1 || dims[2] === 3 ? encodeGridPng(data, nSamples, ...dims, { nrow }) : null;
  if (png) writeFileAtomic(join(s.out, "samples", `step-${pad(st.step)}.png`), png);
  writeFileAtomic(join(s.out, "samples", `step-${pad(st.step)}.txt`), promptsGridText(grid.prompts, nrow));
  appendFileSync(run.metrics, JSON.stringify({ step: st.step, val_loss: vl }) + "\n");
  run.valLosses.set(st.step, vl);
  return vl;
}

/**
 * The steps, with samples and checkpoints at their intervals, until the last step or an interrupt.
 * Steps that end with samples, a checkpoint or a planned stop are waited for; between them the
 * static engine keeps one step in flight (the host prepares and encodes step n + 1 while the
 * GPU runs step n). Numerics and the batch order are the same either way.
 */
async function trainLoop(run: Run): Promise<void> {
  const { o, su, st, s, progress, interrupt } = run;
  const { m, trainer, dims } = su;
  const { steps, sampleEvery, checkpointEvery } = s.config.settings;
  const stopped = () => interrupt.requested;
  const boundary = (n: number) => n >= steps || (sampleEvery > 0 && n % sampleEvery === 0) || (checkpointEvery > 0 && n % checkpointEvery === 0) || (o.interruptAfter !== undefined && n >= o.interruptAfter);
  const pipelined = trainer.name === "static";
  const submit = () => {
    const b = drawBatch(st.sampler, st.rng, m.flow);
    return trainer.step(b, [b.prompts.length, ...dims]);
  };
  let pending: Promise<StepResult> | null = st.step < steps ? submit() : null;
  while (pending) {
    const current: Promise<StepResult> = pending;
    pending = pipelined && !boundary(st.step + 1) && !stopped() ? submit() : null;
    const r = await current;
    await yieldToEventLoop(); // lets a Ctrl-C / SIGTERM handler run (the CPU backends never wait on I/O)
    if (!Number.isFinite(r.loss)) {
      await pending?.catch(() => undefined);
      throw new TrainingStopped(`the loss became ${r.loss} at step ${st.step + 1}; stopping. The last good checkpoint is ${st.lastGood ?? "(none yet)"}; try a lower --lr or check the data`);
    }
    st.step++;
    st.lastLoss = r.loss;
    if (st.tensorsAtFirstStep < 0) st.tensorsAtFirstStep = tf.memory().numTensors;
    const sps = progress.update(st.step, r.loss);
    if (st.step % run.loaded.ir.train.logEvery === 0 || st.step === steps) {
      appendFileSync(run.metrics, JSON.stringify({ step: st.step, loss: r.loss, grad_norm: r.gradNorm, lr: trainer.lr, steps_per_s: sps, tensors: tf.memory().numTensors }) + "\n");
    }
    if (o.interruptAfter !== undefined && st.step >= o.interruptAfter) interrupt.request("SIGINT");
    if (pending) continue; // not a boundary: the next step is already running
    const stop = stopped();
    const last = st.step === steps || stop;
    if ((sampleEvery > 0 && st.step % sampleEvery === 0 && !stop) || (last && !stop)) {
      st.valLoss = await writeSamples(run);
      progress.note(`step ${st.step}: val_loss ${st.valLoss.toFixed(4)}, samples/step-${pad(st.step)}.png`);
    }
    if ((checkpointEvery > 0 && st.step % checkpointEvery === 0) || last) await writeCheckpoint(run);
    if (stop || st.step >= steps) break;
    pending = submit();
  }
}

/** summary.json, the last log lines, and the model and engine disposed; returns the exit code. */
function finishRun(run: Run): number {
  const { su, st, s, progress, interrupt, log, r } = run;
  const { m, trainer } = su;
  const seconds = (performance.now() - st.t0) / 1000;
  const summary: TrainSummary = { engine: trainer.name, steps: st.step, lastLoss: st.lastLoss, valLoss: st.valLoss, seconds, stepsPerSecond: (st.step - (r.resumed?.state.step ?? 0)) / seconds, out: s.out };
  writeFileSync(join(s.out, "summary.json"), JSON.stringify({ ...summary, trainStepsPerSecond: progress.rate, backend: su.backend.name, params: su.nParams, batch: s.config.settings.batch, tensors: tf.memory().numTensors, tensorsAtFirstStep: st.tensorsAtFirstStep, ...(m.text instanceof PretrainedPromptEncoder ? { textEmbeddings: m.text.stats } : {}) }, null, 2) + "\n");
  const stop = interrupt.requested;
  if (stop) log(`interrupted at step ${st.step}; checkpoint ${st.lastGood} (resume with --resume ${s.out})`);
  // the figures of the progress bar's last line: the last step's loss and the training rate
  log(`${stop ? "stopped" : "done"} at step ${st.step}: loss ${st.lastLoss.toFixed(4)}${st.valLoss !== null ? `, val_loss ${st.valLoss.toFixed(4)}` : ""}, ${progress.rate.toFixed(2)} steps/s (${seconds.toFixed(1)} s in all); checkpoint ${st.lastGood}`);
  if (m.text instanceof PretrainedPromptEncoder) {
    log(m.text.summary());
    m.text.dispose();
  }
  trainer.dispose();
  m.store.dispose();
  return stop ? interrupt.exitCode : EXIT.ok;
}

/** `sdc train DIR`: resume point, settings, set-up, start state, run folder, then the steps, each a phase above. */
export async function runTrain(dir: string, o: TrainCliOptions): Promise<number> {
  const log = o.log ?? ((s: string) => process.stderr.write(s + "\n"));
  const loaded = await loadCompiled(dir);
  const hash = irHash(loaded.irText);
  // resume point, settings and output folder, resolved and checked before any work (run-config.ts)
  const s = resolveRun({ dir, ir: loaded.ir, hash }, o);
  const r = s.resume;
  for (const note of s.notes) log(note);
  const su = await setUp(dir, o, loaded, r, s.config, log);
  const start = await startState(r, su, s.config.settings, log);
  const { metrics, valLosses } = prepareRunFolder(loaded, s, su, start.step, r.resumed !== undefined);
  const progress = new Progress(s.config.settings.steps, start.step, o.progress !== false && process.stderr.isTTY === true, log);
  const val = makeValidationSet(su.test, Math.min(32, su.test.size), 8);
  const grid = sampleGrid(loaded.ir, su, s.config.settings.samples, s.config.settings.seed);
  // Ctrl-C / SIGTERM: finish this step, write a checkpoint, exit 130 / 143 (cli/signals.ts)
  const interrupt = watchInterrupts({ log: (m) => progress.note(m.replace(/^\n/, "")), then: "finishing this step and writing a checkpoint" });
  const st = { ...start, lastLoss: NaN, lastGood: r.resumeDir ?? null, valLoss: null, tensorsAtFirstStep: -1, t0: performance.now() };
  const run: Run = { dir, o, log, loaded, hash, r, s, su, metrics, valLosses, val, grid, progress, interrupt, st };
  progress.restart();
  try {
    await trainLoop(run);
  } finally {
    interrupt.dispose();
    progress.done();
  }
  return finishRun(run);
}

export { existsSync };
