/**
 * `sdc eval RUN`: measured quality of a trained flow model (see runtime/eval/evaluate.ts): prompt
 * accuracy per digit and overall, judge-feature Fréchet distance (not Inception FID), validation
 * loss at fixed timesteps and noise, sampler steps and wall time, per CFG scale.
 * RUN is a run folder (its checkpoints/latest) or a checkpoint folder; the generated folder is
 * generated/<ir.spec.name> from the checkpoint's ir.json unless --generated is given.
 */
import { appendFileSync, existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { initBackend, type BackendName } from "../../runtime/backend.ts";
import { type EvalResult, evaluateModel, formatEval, type ReferenceFeatures } from "../../runtime/eval/evaluate.ts";
import { checkOutputFile, writeFileAtomic } from "../../runtime/io/atomic.ts";
import { readCheckpoint, resolveCheckpoint } from "../../runtime/train/checkpoint.ts";
import { buildModel } from "../../runtime/train/trainer.ts";
import { staticFlowNetworkFor } from "../../runtime/engines/static/sampler.ts";
import { EXIT, InputError, UsageError } from "../errors.ts";
import { checkpointSpec } from "../generated.ts";
import { Progress } from "../progress.ts";
import { DEFAULT_JUDGE_DIR, DEFAULT_JUDGE_WEIGHTS, loadJudge } from "./judge.ts";
import { loadDataset, sampleViewer } from "../../runtime/data/load.ts";
import { stepPlanOf } from "./plan.ts";

export interface EvalCliOptions {
  generated?: string;
  judge?: string;
  judgeWeights?: string;
  perDigit?: number;
  cfg?: number[];
  steps?: number;
  sampler?: "euler" | "heun";
  /** --cfg-interval lo,hi: the noise levels where guidance applies */
  cfgInterval?: [number, number];
  seed?: number;
  referenceCount?: number;
  /** bootstrap resamples of the FD interval (default 100; 0: none) */
  bootstrap?: number;
  backend?: BackendName;
  /** which weights: EMA, raw, or auto (default): EMA once the initial weights weigh < 5% in it (see emaInitialShare) */
  weights?: "auto" | "ema" | "raw";
  json?: boolean;
  out?: string;
  /** evaluate every checkpoint of the run (RUN/checkpoints/step-N) into RUN/metrics.jsonl, not only the latest */
  checkpoints?: "latest" | "all";
  /** the reference features of an earlier eval with the same judge (evaluateCheckpoints shares them) */
  referenceCache?: { value?: ReferenceFeatures };
  /** false: no progress bar (a log line every 10 s when stderr is not a terminal either way) */
  progress?: boolean;
  log?: (s: string) => void;
  stdout?: (s: string) => void;
}

export interface EvalReport extends EvalResult {
  spec: string;
  checkpoint: string;
  step: number;
  params: number;
  weights: "ema" | "raw";
  judge: { generated: string; weights: string; testAccuracy: number | null };
  backend: string;
  frechetNote: string;
}

/** Parse --cfg-interval "lo,hi" (noise levels, 0 <= lo <= hi <= 1). */
export function parseCfgInterval(s: string): [number, number] {
  const parts = s.split(",").map((x) => Number(x.trim()));
  if (parts.length !== 2 || s.split(",").some((x) => x.trim() === "") || !parts.every((x) => Number.isFinite(x) && x >= 0 && x <= 1) || parts[0] > parts[1]) {
    throw new UsageError(`--cfg-interval must be lo,hi with 0 <= lo <= hi <= 1 (noise levels: 1 = noise, 0 = data), e.g. 0.2,0.8; got '${s}'`);
  }
  return [parts[0], parts[1]];
}

/** Parse "1,2,4" into CFG scales. */
export function parseCfgList(s: string): number[] {
  const parts = s.split(",").map((x) => x.trim());
  if (!parts.length || parts.some((p) => p === "")) throw new UsageError(`--cfg must be a comma-separated list of numbers, e.g. 1,2,4; got '${s}'`);
  return parts.map((p) => {
    const n = Number(p);
    if (!Number.isFinite(n) || n < 0) throw new UsageError(`--cfg: '${p}' is not a number >= 0 (in '${s}')`);
    return n;
  });
}

/** Evaluate a run or checkpoint; returns the report (also written to --out when given). */
export async function evaluateRun(run: string, o: EvalCliOptions = {}): Promise<EvalReport> {
  const log = o.log ?? ((s: string) => process.stderr.write(s + "\n"));
  if (o.out) checkOutputFile(o.out);
  const ckDir = resolveCheckpoint(run);
  const ck = readCheckpoint(ckDir);
  const { loaded } = await checkpointSpec(ckDir, ck, o.generated);
  const b = await initBackend(o.backend ?? "auto", { log });
  log(`backend: ${b.detail}`);
  const judgeDir = o.judge ?? DEFAULT_JUDGE_DIR;
  const judgeWeights = o.judgeWeights ?? DEFAULT_JUDGE_WEIGHTS;
  const judge = await loadJudge(judgeDir, judgeWeights);
  const m = buildModel(loaded.spec, loaded.ir, 0, ck.state.words);
  const which = o.weights ?? "auto";
  if (which === "ema" && !ck.ema) throw new InputError(`checkpoint ${ckDir} has no EMA weights (train.ema is 0); use --weights raw`);
  const decay = loaded.ir.train.ema;
  const initShare = emaInitialShare(decay, ck.state.emaUpdates);
  const useEma = ck.ema !== null && (which === "ema" || (which === "auto" && decay > 0 && initShare < 0.05));
  if (which === "auto" && ck.ema && !useEma) log(`using the raw weights: after ${ck.state.emaUpdates} updates the EMA (decay ${decay}) still holds ${(initShare * 100).toFixed(0)}% of the initial weights`);
  m.store.load(useEma ? ck.ema! : new Map([...ck.network, ...ck.text]), { what: `checkpoint ${ckDir}` });
  const test = loadDataset(loaded.ir, "test");
  try {
    const net = await staticFlowNetworkFor(m, [loaded.ir.data.height, loaded.ir.data.width, loaded.ir.data.channels], log);
    // a progress bar with ETA over the generated images (all CFG scales)
    let progress: Progress | null = null;
    const onProgress = (done: number, total: number) => {
      progress ??= new Progress(total, 0, o.progress !== false && process.stderr.isTTY === true, log, "image"); // the clock starts with the sampling
      if (done > 0) progress.update(done);
    };
    const r = await evaluateModel(m, judge, test, { decode: sampleViewer(loaded.ir, test), perDigit: o.perDigit, cfg: o.cfg, steps: o.steps, sampler: o.sampler, cfgInterval: o.cfgInterval, seed: o.seed, referenceCount: o.referenceCount, referenceCache: o.referenceCache, bootstrap: o.bootstrap, log, network: net ?? undefined, onProgress });
    (progress as Progress | null)?.done();
    net?.dispose();
    const report: EvalReport = {
      spec: loaded.ir.spec.name, checkpoint: ckDir, step: ck.state.step, params: m.store.numParams, weights: useEma ? "ema" : "raw",
      judge: { generated: judgeDir, weights: judgeWeights, testAccuracy: judge.testAccuracy }, backend: b.name,
      frechetNote: "judge-feature Fréchet distance (FID formula on the judge's penultimate features vs MNIST test), not Inception FID; compare only at equal image counts and judge weights",
      ...r,
    };
    if (o.out) writeFileAtomic(o.out, JSON.stringify(report, null, 2) + "\n");
    return report;
  } finally {
    m.store.dispose();
    judge.store.dispose();
  }
}


/** One checkpoint's eval, as a line of the run's metrics.jsonl: {"step": N, "eval": CheckpointEval}. */
export interface CheckpointEval {
  /** what was asked (a checkpoint evaluated with the same settings is not evaluated again) */
  settings: { perDigit: number | null; cfg: number[] | null; sampler: string | null; steps: number | null; cfgInterval?: [number, number]; seed: number | null; weights: string; judgeWeights: string | null; reference: number | null; bootstrap: number | null };
  /** the weights used (auto resolves per checkpoint) */
  weights: "ema" | "raw";
  /** training wall-clock seconds up to this checkpoint (the checkpoint's elapsedSeconds) */
  trainSeconds: number;
  /** training FLOPs up to this checkpoint: step x the GEMM FLOPs of one training step (sdc plan) at the run's batch */
  trainFlops: number;
  images: number;
  sampler: { name: string; steps: number; guidanceInterval: [number, number] | null };
  cfg: { cfg: number; accuracy: number; accuracyLo: number; accuracyHi: number; correct: number; frechet: number; frechetLo: number | null; frechetHi: number | null }[];
}

/** The eval lines of a metrics.jsonl, by step (torn or other lines skipped). */
export function readEvalLines(metrics: string): { step: number; eval: CheckpointEval }[] {
  if (!existsSync(metrics)) return [];
  const out: { step: number; eval: CheckpointEval }[] = [];
  for (const l of readFileSync(metrics, "utf8").split("\n")) {
    if (!l.includes('"eval"')) continue;
    try {
      const r = JSON.parse(l) as { step?: unknown; eval?: CheckpointEval };
      if (typeof r.step === "number" && r.eval && Array.isArray(r.eval.cfg)) out.push({ step: r.step, eval: r.eval });
    } catch {
      // a torn line
    }
  }
  return out;
}

/**
 * `sdc eval RUN --checkpoints all`: every checkpoint of a run (RUN/checkpoints/step-N, oldest
 * first), each appended to RUN/metrics.jsonl as {"step", "eval"} as soon as it is done, with the
 * training time and FLOPs up to it; one evaluated before with the same settings is skipped.
 * Returns the lines of these settings, by step. Run it when training has stopped (the trainer
 * appends to the same file).
 */
export async function evaluateCheckpoints(run: string, o: EvalCliOptions = {}): Promise<{ step: number; eval: CheckpointEval }[]> {
  const log = o.log ?? ((s: string) => process.stderr.write(s + "\n"));
  const dir = join(run, "checkpoints");
  const metrics = join(run, "metrics.jsonl");
  if (!existsSync(dir) || !existsSync(metrics)) throw new InputError(`--checkpoints all needs a run folder (with checkpoints/ and metrics.jsonl); ${run} has no ${existsSync(dir) ? "metrics.jsonl" : "checkpoints/"}`);
  if (o.out) checkOutputFile(o.out);
  const cks = readdirSync(dir).filter((n) => /^step-\d+$/.test(n) && existsSync(join(dir, n, "state.json"))).sort((a, b) => Number(a.slice(5)) - Number(b.slice(5)));
  if (!cks.length) throw new InputError(`${dir} holds no checkpoints (step-N folders with state.json)`);
  const settings: CheckpointEval["settings"] = { perDigit: o.perDigit ?? null, cfg: o.cfg ?? null, sampler: o.sampler ?? null, steps: o.steps ?? null, ...(o.cfgInterval ? { cfgInterval: o.cfgInterval } : {}), seed: o.seed ?? null, weights: o.weights ?? "auto", judgeWeights: o.judgeWeights ?? null, reference: o.referenceCount ?? null, bootstrap: o.bootstrap ?? null };
  const key = JSON.stringify(settings);
  const mine = () => readEvalLines(metrics).filter((l) => JSON.stringify(l.eval.settings) === key);
  const done = new Set(mine().map((l) => l.step));
  const cache: { value?: ReferenceFeatures } = o.referenceCache ?? {};
  let flopsPerStep: number | null = null;
  for (const [i, name] of cks.entries()) {
    const ckDir = join(dir, name);
    const ck = readCheckpoint(ckDir);
    if (done.has(ck.state.step)) {
      log(`[${i + 1}/${cks.length}] ${name}: evaluated before with these settings, skipped`);
      continue;
    }
    if (flopsPerStep === null) {
      const { loaded } = await checkpointSpec(ckDir, ck, o.generated);
      const plan = stepPlanOf(loaded, { batch: ck.state.sampler?.batchSize ?? loaded.ir.train.batch });
      flopsPerStep = plan.gemmGflop * 1e9;
    }
    log(`[${i + 1}/${cks.length}] ${name}: evaluating`);
    const r = await evaluateRun(ckDir, { ...o, out: undefined, referenceCache: cache });
    const line: CheckpointEval = {
      settings, weights: r.weights, trainSeconds: ck.state.elapsedSeconds, trainFlops: ck.state.step * flopsPerStep, images: r.cfg[0]?.images ?? 0, sampler: r.sampler,
      cfg: r.cfg.map((c) => ({ cfg: c.cfg, accuracy: c.accuracy, accuracyLo: c.accuracyInterval.lo, accuracyHi: c.accuracyInterval.hi, correct: c.correct, frechet: c.frechet, frechetLo: c.frechetInterval?.lo ?? null, frechetHi: c.frechetInterval?.hi ?? null })),
    };
    appendFileSync(metrics, JSON.stringify({ step: ck.state.step, eval: line }) + "\n");
  }
  const lines = mine().sort((a, b) => a.step - b.step);
  if (o.out) writeFileAtomic(o.out, JSON.stringify(lines, null, 2) + "\n");
  return lines;
}

/** The per-checkpoint evals as a table: step, training minutes and TFLOPs, then accuracy and FD with their intervals per scale. */
export function formatCheckpointEvals(lines: { step: number; eval: CheckpointEval }[], title: string): string {
  const scales = [...new Set(lines.flatMap((l) => l.eval.cfg.map((c) => c.cfg)))].sort((a, b) => a - b);
  const head = ["step", "train min", "train TFLOP", "weights", ...scales.flatMap((s) => [`acc % cfg ${s} [95% CI]`, `FD cfg ${s} [95% CI]`])];
  const pct = (x: number) => (x * 100).toFixed(1);
  const rows = lines.map((l) => [String(l.step), (l.eval.trainSeconds / 60).toFixed(1), (l.eval.trainFlops / 1e12).toFixed(2), l.eval.weights, ...scales.flatMap((s) => {
    const c = l.eval.cfg.find((x) => x.cfg === s);
    if (!c) return ["", ""];
    return [`${pct(c.accuracy)} [${pct(c.accuracyLo)}, ${pct(c.accuracyHi)}]`, `${c.frechet.toFixed(2)}${c.frechetLo !== null && c.frechetHi !== null ? ` [${c.frechetLo.toFixed(2)}, ${c.frechetHi.toFixed(2)}]` : ""}`];
  })]);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmt = (r: string[]) => r.map((x, i) => x.padStart(w[i])).join("  ");
  const first = lines[0]?.eval;
  return [title, first ? `${first.images} images per scale, sampler ${first.sampler.name} ${first.sampler.steps} steps; FD: judge-feature Fréchet distance (not Inception FID); training FLOPs: GEMM work of a step (sdc plan) x steps` : "", "", fmt(head), w.map((n) => "-".repeat(n)).join("  "), ...rows.map(fmt)].join("\n");
}

export async function runEval(run: string, o: EvalCliOptions): Promise<number> {
  const out = o.stdout ?? ((s: string) => process.stdout.write(s));
  if (o.checkpoints === "all") {
    const lines = await evaluateCheckpoints(run, o);
    out(o.json ? JSON.stringify(lines, null, 2) + "\n" : formatCheckpointEvals(lines, `${run}: every checkpoint (appended to ${join(run, "metrics.jsonl")})`) + "\n");
    return EXIT.ok;
  }
  const r = await evaluateRun(run, o);
  if (o.json) out(JSON.stringify(r, null, 2) + "\n");
  else {
    const j = r.judge.testAccuracy !== null ? `judge ${r.judge.weights} (${(r.judge.testAccuracy * 100).toFixed(2)}% on MNIST test)` : `judge ${r.judge.weights}`;
    out(formatEval(r, `${r.spec} at step ${r.step} (${r.params.toLocaleString("en-US")} parameters, ${r.weights} weights) from ${r.checkpoint}; ${j}; backend ${r.backend}`) + "\n");
  }
  return EXIT.ok;
}

/** How much of the initial weights an EMA still holds after n updates (with the trainer's warmup: decay_k = min(decay, (1 + k) / (10 + k))). */
export function emaInitialShare(decay: number, updates: number): number {
  let w = 1;
  for (let k = 0; k < updates && w > 1e-12; k++) w *= Math.min(decay, (1 + k) / (10 + k));
  return w;
}
