/** `sdc ablate` units run one after another in this process (the default executor). */
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { BackendName } from "../../runtime/backend.ts";
import type { PlannedUnit, UnitResult } from "../../runtime/eval/sweep.ts";
import { writeFileAtomic } from "../../runtime/io/atomic.ts";
import { readCheckpoint, resolveCheckpoint } from "../../runtime/train/checkpoint.ts";
import { EXIT, InputError } from "../errors.ts";
import { fmtTime } from "../progress.ts";
import { Interrupted } from "../signals.ts";
import { type AblateOptions, type AblationSummary, clearStaleUnit, compileUnit, finishedUnit, planAblation, unitResult, writeResults } from "./plan.ts";

export type UnitRunner = (unit: PlannedUnit, dir: string, ctx: { log: (s: string) => void; checkpointEvery: number; judge?: string; judgeWeights?: string }) => Promise<UnitResult>;

/** One unit, start to finish (or from where it was interrupted): compile, train, evaluate. */
export const runUnit: UnitRunner = async (unit, dir, ctx) => {
  const { runTrain } = await import("../commands/train.ts");
  const { evaluateRun } = await import("../commands/eval.ts");
  const t0 = performance.now();
  const inp = unit.inputs;
  mkdirSync(dir, { recursive: true });
  writeFileAtomic(join(dir, "inputs.json"), JSON.stringify(inp, null, 2) + "\n");

  const { genDir, model } = compileUnit(unit, dir);

  // train (resume when interrupted; skip when the run already reached its steps)
  const run = join(dir, "run");
  let resume: string | undefined;
  let trainedStep = 0;
  if (existsSync(join(run, "checkpoints", "latest"))) {
    try {
      resume = resolveCheckpoint(run);
      trainedStep = readCheckpoint(resume).state.step;
    } catch {
      resume = undefined; // a broken checkpoint: restart the unit's training
    }
  }
  if (trainedStep < inp.steps) {
    if (!resume && existsSync(run)) rmSync(run, { recursive: true, force: true });
    if (resume) ctx.log(`unit ${unit.id}: resuming from ${resume} (step ${trainedStep})`);
    const code = await runTrain(genDir, {
      steps: inp.steps, batch: inp.batch, seed: inp.seed, backend: inp.backend as BackendName, out: run, resume,
      sampleEvery: 0, checkpointEvery: ctx.checkpointEvery, samples: 16, sampleSteps: inp.eval.sampleSteps ?? undefined, progress: false, log: ctx.log,
    });
    if (code === EXIT.interrupted || code === EXIT.terminated) throw new Interrupted(`unit ${unit.id} interrupted; its checkpoint is in ${run}/checkpoints; run the same command again to resume`, code === EXIT.terminated ? "SIGTERM" : "SIGINT");
    if (code !== EXIT.ok) throw new InputError(`unit ${unit.id}: training stopped with exit code ${code}`);
  }
  // evaluate
  const ev = await evaluateRun(run, { generated: genDir, judge: ctx.judge, judgeWeights: ctx.judgeWeights, perDigit: inp.eval.perDigit, cfg: inp.eval.cfg, steps: inp.eval.sampleSteps ?? undefined, seed: inp.eval.seed, referenceCount: inp.eval.reference ?? undefined, backend: inp.backend as BackendName, out: join(dir, "eval.json"), log: ctx.log });
  return unitResult(unit, run, model, ev, (performance.now() - t0) / 1000);
};

/** Plan, run what is not done, and write the results. `runner` is injectable for tests. */
export async function runAblation(specs: string | string[], o: AblateOptions, runner: UnitRunner = runUnit): Promise<AblationSummary> {
  const log = o.log ?? ((s: string) => process.stderr.write(s + "\n"));
  const { units, out } = planAblation(specs, o);
  mkdirSync(out, { recursive: true });
  log(`${units.length} unit${units.length === 1 ? "" : "s"} in ${out}: ${units.map((u) => u.id).join(", ")}`);

  const results: UnitResult[] = [];
  const ran: string[] = [];
  const skipped: string[] = [];
  let ranSeconds = 0;
  for (const [i, unit] of units.entries()) {
    const dir = join(out, unit.id);
    const done = join(dir, "unit.json");
    const prevResult = finishedUnit(unit, dir);
    if (prevResult) {
      log(`[${i + 1}/${units.length}] ${unit.id}: done before, skipped`);
      results.push(prevResult);
      skipped.push(unit.id);
      continue;
    }
    if (clearStaleUnit(unit, dir)) log(`[${i + 1}/${units.length}] ${unit.id}: an unfinished run with other inputs is there; starting it over`);
    // ETA: the mean wall time of the units run so far in this invocation, times those left
    const left = units.length - i;
    const eta = ran.length ? ` (ETA ${fmtTime((ranSeconds / ran.length) * left)} for ${left} unit${left === 1 ? "" : "s"} at ${fmtTime(ranSeconds / ran.length)} each)` : "";
    log(`[${i + 1}/${units.length}] ${unit.id}: running${eta}`);
    const u0 = performance.now();
    const r = { ...(await runner(unit, dir, { log: (s) => log(`  ${s}`), checkpointEvery: o.checkpointEvery ?? 50, judge: o.judge, judgeWeights: o.judgeWeights })), group: unit.group };
    writeFileAtomic(done, JSON.stringify(r, null, 2) + "\n");
    results.push(r);
    ran.push(unit.id);
    ranSeconds += (performance.now() - u0) / 1000;
  }
  const plot = await writeResults(out, specs, o, results, log);
  return { out, ran, skipped, results, plot };
}
