/**
 * `sdc eval RUN`: measured quality of a trained flow model (see runtime/eval/evaluate.ts): prompt
 * accuracy per digit and overall, judge-feature Fréchet distance (not Inception FID), validation
 * loss at fixed timesteps and noise, sampler steps and wall time, per CFG scale.
 * RUN is a run folder (its checkpoints/latest) or a checkpoint folder; the generated folder is
 * generated/<ir.spec.name> from the checkpoint's ir.json unless --generated is given.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { irHash } from "../../compiler/codegen/files.ts";
import { initBackend, type BackendName } from "../../runtime/backend.ts";
import { type EvalResult, evaluateModel, formatEval } from "../../runtime/eval/evaluate.ts";
import { checkOutputFile, writeFileAtomic } from "../../runtime/io/atomic.ts";
import { CheckpointError, readCheckpoint, resolveCheckpoint } from "../../runtime/train/checkpoint.ts";
import { buildModel } from "../../runtime/train/trainer.ts";
import { staticFlowNetworkFor } from "../../runtime/engines/static/sampler.ts";
import { EXIT, InputError, UsageError } from "../errors.ts";
import { loadCompiled } from "../generated.ts";
import { Progress } from "../progress.ts";
import { DEFAULT_JUDGE_DIR, DEFAULT_JUDGE_WEIGHTS, loadJudge } from "./judge.ts";
import { loadDataset, sampleViewer } from "./train.ts";

export interface EvalCliOptions {
  generated?: string;
  judge?: string;
  judgeWeights?: string;
  perDigit?: number;
  cfg?: number[];
  steps?: number;
  sampler?: "euler" | "heun";
  seed?: number;
  referenceCount?: number;
  backend?: BackendName;
  /** which weights: EMA, raw, or auto (default): EMA once the initial weights weigh < 5% in it (see emaInitialShare) */
  weights?: "auto" | "ema" | "raw";
  json?: boolean;
  out?: string;
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
  let genDir = o.generated;
  if (!genDir) {
    let name: string;
    try {
      name = JSON.parse(ck.irText).spec.name;
    } catch {
      throw new CheckpointError(`${ckDir}/ir.json is not valid JSON`);
    }
    genDir = join("generated", name);
    if (!existsSync(genDir)) throw new InputError(`the checkpoint is from spec ${name} but ${genDir} does not exist; compile it or pass --generated DIR`);
  }
  const loaded = await loadCompiled(genDir);
  if (ck.state.irHash !== irHash(loaded.irText)) throw new CheckpointError(`checkpoint ${ckDir} is from another spec (${ck.state.spec}, IR ${ck.state.irHash.slice(0, 12)}) than ${genDir} (${loaded.ir.spec.name}); pass the matching --generated DIR`);
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
    const r = await evaluateModel(m, judge, test, { decode: sampleViewer(loaded.ir, test), perDigit: o.perDigit, cfg: o.cfg, steps: o.steps, sampler: o.sampler, seed: o.seed, referenceCount: o.referenceCount, log, network: net ?? undefined, onProgress });
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

export async function runEval(run: string, o: EvalCliOptions): Promise<number> {
  const out = o.stdout ?? ((s: string) => process.stdout.write(s));
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
