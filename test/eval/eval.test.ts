import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { evaluateCheckpoints, evaluateRun, readEvalLines, runEval } from "../../cli/commands/eval.ts";
import { planRun } from "../../cli/commands/plan.ts";
import { writeReport } from "../../cli/commands/report.ts";
import { runTrain } from "../../cli/commands/train.ts";
import { shutdownBackend } from "../../runtime/backend.ts";

const dir = mkdtempSync(join(tmpdir(), "sdc-eval-"));
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await shutdownBackend();
});

const strip = (r: Awaited<ReturnType<typeof evaluateRun>>) => ({ ...r, cfg: r.cfg.map(({ sampleSeconds: _s, ...c }) => c) });

describe("sdc eval", () => {
  it("is seeded and repeatable on a tiny checkpoint", async () => {
    const run = join(dir, "run");
    const code = await runTrain("generated/sd3-tiny", { steps: 3, batch: 8, seed: 0, backend: "wasm", out: run, sampleEvery: 0, checkpointEvery: 0, samples: 4, sampleSteps: 2, progress: false, log: () => {} });
    expect(code).toBe(0);
    const o = { perDigit: 2, cfg: [1, 3], steps: 3, seed: 5, referenceCount: 400, backend: "wasm" as const, log: () => {} };
    const a = await evaluateRun(run, o);
    const b = await evaluateRun(run, o);
    expect(strip(b)).toEqual(strip(a));
    expect(a.spec).toBe("sd3-tiny");
    expect(a.step).toBe(3);
    expect(a.cfg.map((c) => c.cfg)).toEqual([1, 3]);
    expect(a.cfg[0].images).toBe(20);
    expect(a.cfg[0].perDigit).toHaveLength(10);
    expect(a.sampler).toEqual({ name: "euler", steps: 3, guidanceInterval: null });
    expect(Number.isFinite(a.valLoss) && a.valLoss > 0).toBe(true);
    for (const c of a.cfg) {
      expect(c.accuracy).toBeGreaterThanOrEqual(0);
      expect(c.accuracy).toBeLessThanOrEqual(1);
      expect(c.frechet).toBeGreaterThan(0);
      // intervals: Wilson on the counts, the FD's bootstrap around its estimate
      expect(c.correct).toBe(c.perDigitCounts.correct.reduce((x, y) => x + y, 0));
      expect(c.perDigitCounts.requested).toEqual(new Array(10).fill(2));
      expect(c.accuracy).toBe(c.correct / 20);
      expect(c.accuracyInterval.lo).toBeLessThanOrEqual(c.accuracy);
      expect(c.accuracyInterval.hi).toBeGreaterThanOrEqual(c.accuracy);
      expect(c.accuracyInterval.hi - c.accuracyInterval.lo).toBeGreaterThan(0.1); // 20 images: wide
      expect(c.frechetInterval!.lo).toBeLessThan(c.frechet);
      expect(c.frechetInterval!.hi).toBeGreaterThan(c.frechet);
      expect(c.frechetInterval!.se).toBeGreaterThan(0);
    }
    expect(a.intervals).toEqual({ confidence: 0.95, accuracy: "wilson", frechet: { method: "bootstrap-normal", resamples: 100 } });
    expect(a.reference).toEqual({ images: 400, featureDim: 128, frechetKind: "judge-feature" });
    // another noise seed gives other images; the validation loss does not depend on it
    const c = await evaluateRun(run, { ...o, seed: 6 });
    expect(c.cfg[0].frechet).not.toBe(a.cfg[0].frechet);
    expect(c.valLoss).toBe(a.valLoss);

    let text = "";
    expect(await runEval(run, { ...o, stdout: (s) => (text += s) })).toBe(0);
    expect(text).toContain("NOT Inception FID");
    expect(text).toMatch(/acc %/);
    expect(text).toMatch(/acc 95% CI/);
    expect(text).toContain("Wilson score");
    // --cfg-interval: guidance only for some noise levels; recorded with the sampler
    const iv = await evaluateRun(run, { ...o, cfg: [3], cfgInterval: [0.5, 1] });
    expect(iv.sampler.guidanceInterval).toEqual([0.5, 1]);
    // --bootstrap 0: no FD interval
    const none = await evaluateRun(run, { ...o, cfg: [1], bootstrap: 0 });
    expect(none.cfg[0].frechetInterval).toBeNull();
    expect(none.cfg[0].frechet).toBe(a.cfg[0].frechet);
  });

  it("--checkpoints all: every checkpoint into the run's metrics.jsonl, with training time and FLOPs; a rerun skips them; sdc report plots them", async () => {
    const run = join(dir, "ck-run");
    expect(await runTrain("generated/sd3-tiny", { steps: 4, batch: 8, seed: 0, backend: "wasm", out: run, sampleEvery: 0, checkpointEvery: 2, samples: 4, sampleSteps: 2, progress: false, log: () => {} })).toBe(0);
    const metrics = join(run, "metrics.jsonl");
    const before = readFileSync(metrics, "utf8");
    const o = { perDigit: 1, cfg: [1, 3], steps: 2, seed: 1, referenceCount: 200, bootstrap: 10, backend: "wasm" as const, log: () => {} };
    const lines = await evaluateCheckpoints(run, o);
    expect(lines.map((l) => l.step)).toEqual([2, 4]);
    // appended: the training lines stay as they were
    expect(readFileSync(metrics, "utf8").startsWith(before)).toBe(true);
    expect(readEvalLines(metrics)).toEqual(lines);
    const [a, b] = lines.map((l) => l.eval);
    // FLOPs: steps x the planned GEMM work of one step at the run's batch
    const plan = await planRun("generated/sd3-tiny", { batch: 8 });
    expect(a.trainFlops).toBeCloseTo(2 * plan.gemmGflop * 1e9, -3);
    expect(b.trainFlops).toBeCloseTo(4 * plan.gemmGflop * 1e9, -3);
    expect(b.trainSeconds).toBeGreaterThan(a.trainSeconds);
    expect(b.cfg.map((c) => c.cfg)).toEqual([1, 3]);
    // the last checkpoint's line is what sdc eval says of it
    const latest = await evaluateRun(run, o);
    expect(b.cfg.map((c) => [c.accuracy, c.frechet, c.frechetLo])).toEqual(latest.cfg.map((c) => [c.accuracy, c.frechet, c.frechetInterval!.lo]));
    for (const c of b.cfg) expect(c.accuracyLo).toBeLessThanOrEqual(c.accuracy);
    // a rerun with the same settings evaluates nothing; other settings are new lines
    const logs: string[] = [];
    expect(await evaluateCheckpoints(run, { ...o, log: (s) => logs.push(s) })).toEqual(lines);
    expect(logs.filter((l) => /skipped/.test(l))).toHaveLength(2);
    expect((await evaluateCheckpoints(run, { ...o, cfg: [2] })).map((l) => l.eval.cfg[0].cfg)).toEqual([2, 2]);
    expect(readEvalLines(metrics)).toHaveLength(4);
    const html = readFileSync(writeReport(run), "utf8");
    expect(html).toContain("Quality against compute");
    for (const t of ["judge-feature FD against step", "prompt accuracy against training minutes", "judge-feature FD against training TFLOPs"]) expect(html).toContain(t);
    await expect(evaluateCheckpoints(join(dir, "nope"), o)).rejects.toThrow(/needs a run folder/);
  });
});
