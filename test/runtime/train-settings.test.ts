/**
 * Training settings of the spec's `train { }` and the CLI: learning-rate schedules with warmup,
 * gradient accumulation (the same update as one batch), checkpoint retention (the last N and the
 * best by validation loss), and precision requests refused with what is supported.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compileSpecFile } from "../../cli/commands/compile.ts";
import { runTrain } from "../../cli/commands/train.ts";
import { loadCompiled, type LoadedSpec } from "../../cli/generated.ts";
import { readValLosses } from "../../cli/run-config.ts";
import { formatAll } from "../../compiler/index.ts";
import { initBackend } from "../../runtime/backend.ts";
import { BatchSampler } from "../../runtime/data/dataset.ts";
import { loadMnist } from "../../runtime/data/mnist.ts";
import { pruneCheckpoints } from "../../runtime/train/checkpoint.ts";
import { createEngine } from "../../runtime/engines/select.ts";
import { lrAt } from "../../runtime/train/lr-schedule.ts";
import { buildModel, drawBatch, FlowTrainer } from "../../runtime/train/trainer.ts";
import { Rng } from "../../runtime/util/rng.ts";

const GEN = "generated/sd3-tiny";
const tmp = mkdtempSync(join(tmpdir(), "sdc-train-settings-"));
let tiny: LoadedSpec;
beforeAll(async () => {
  await initBackend("wasm", { log: () => {} });
  tiny = await loadCompiled(GEN);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("learning-rate schedules", () => {
  const lr = 1e-3;
  it.each([
    // schedule, warmup, steps, k, expected
    ["constant", 0, 100, 1, lr],
    ["constant", 0, 100, 100, lr],
    ["constant", 4, 100, 1, lr / 4],
    ["constant", 4, 100, 4, lr],
    ["linear", 0, 10, 1, lr],
    ["linear", 0, 10, 6, lr * 0.5],
    ["linear", 0, 10, 10, lr * 0.1],
    ["linear", 2, 12, 1, lr / 2],
    ["linear", 2, 12, 3, lr],
    ["linear", 2, 12, 8, lr * 0.5],
    ["cosine", 0, 10, 1, lr],
    ["cosine", 0, 10, 6, lr * 0.5],
    ["cosine", 0, 10, 10, lr * 0.5 * (1 + Math.cos(Math.PI * 0.9))],
    ["cosine", 5, 15, 3, lr * 0.6],
    ["cosine", 5, 15, 11, lr * 0.5],
  ] as const)("%s, warmup %i of %i steps: step %i has lr %f", (schedule, warmup, steps, k, want) => {
    expect(lrAt({ lr, warmup, schedule, steps }, k)).toBeCloseTo(want, 12);
  });

  it("never rises after the warmup and stays positive to the last step", () => {
    for (const schedule of ["linear", "cosine"] as const) {
      const xs = Array.from({ length: 50 }, (_, i) => lrAt({ lr, warmup: 5, schedule, steps: 50 }, i + 1));
      for (let i = 5; i < 49; i++) expect(xs[i + 1]).toBeLessThanOrEqual(xs[i]);
      expect(xs[49]).toBeGreaterThan(0);
    }
  });
});

describe("train settings in the spec", () => {
  const compileTiny = (set: string[]) => compileSpecFile("specs/sd3.mdl", { variant: "tiny", set, outDir: tmp }).result;
  it("are in the IR only when set (the committed packages do not change)", () => {
    const r = compileTiny(["train.lr_schedule=cosine", "train.accumulate=4", "train.keep_checkpoints=3", "train.keep_best=true", "train.precision=fp32"]);
    expect(r.ir?.train).toMatchObject({ lrSchedule: "cosine", accumulate: 4, keepCheckpoints: 3, keepBest: true, precision: "fp32" });
    expect(Object.keys(tiny.ir.train)).not.toContain("lrSchedule");
    expect(compileTiny(["train.precision=bf16"]).ir?.train.precision).toBe("bf16");
  });

  it.each([
    [["train.precision=fp16"], /train.precision fp16 is not supported: sdc trains in fp32, or in bf16 mixed precision on the static engine's native CPU kernels; use precision: fp32 or bf16/],
    [["train.precision=int8"], /train.precision must be one of fp32, fp16, bf16/],
    [["train.accumulate=3"], /train.accumulate = 3 does not divide train.batch = 64/],
    [["train.lr_schedule=step"], /train.lr_schedule must be one of constant, linear, cosine/],
    [["train.keep_checkpoints=-1"], /train.keep_checkpoints = -1 is out of range \[0, inf\]/],
  ])("%j is refused: %s", (set, msg) => {
    const r = compileTiny(set);
    expect(r.ir).toBeUndefined();
    expect(formatAll(r.diagnostics, r.program.sources, false)).toMatch(msg);
  });
});

describe("gradient accumulation", () => {
  const opts = (accumulate: number) => {
    const o = tiny.ir.train.optimizer;
    return { lr: 1e-3, clip: 1, ema: 0.99, kind: o.kind, beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: 0, warmup: 1, schedule: "linear" as const, steps: 3, accumulate };
  };
  it("4 micro-batches of 4 give the update of one batch of 16 (to rounding), on the schedule's lr", async () => {
    const mnist = loadMnist({ split: "train" });
    // one run after the other (a second model's variables would clash with the first's names)
    const run = async (k: number) => {
      const m = buildModel(tiny.spec, tiny.ir, 0);
      const t = new FlowTrainer(m, opts(k));
      const rng = new Rng(0);
      const sampler = new BatchSampler(mnist, 16, new Rng(1));
      const results: { loss: number; gradNorm: number; lr: number }[] = [];
      for (let step = 1; step <= 3; step++) {
        const r = await t.step(drawBatch(sampler, rng, m.flow), [16, 32, 32, 1]);
        results.push({ ...r, lr: t.optim.lr });
      }
      const params = new Map([...m.store.vars].map(([n, v]) => [n, v.dataSync().slice()]));
      t.dispose();
      m.store.dispose();
      return { results, params };
    };
    const one = await run(1);
    const four = await run(4);
    for (let i = 0; i < 3; i++) {
      expect(four.results[i].loss).toBeCloseTo(one.results[i].loss, 5);
      expect(four.results[i].gradNorm).toBeCloseTo(one.results[i].gradNorm, 4);
      expect(one.results[i].lr).toBeCloseTo(lrAt({ lr: 1e-3, warmup: 1, schedule: "linear", steps: 3 }, i + 1), 12);
      expect(four.results[i].lr).toBe(one.results[i].lr);
    }
    expect(one.results[2].lr).toBeLessThan(one.results[1].lr); // the schedule decays
    let maxDiff = 0;
    for (const [name, a] of one.params) {
      const b = four.params.get(name)!;
      for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
    }
    expect(maxDiff).toBeLessThan(1e-5);
    // and the parameters did move (the comparison is not between two untouched models)
    const init = buildModel(tiny.spec, tiny.ir, 0);
    const w0 = init.store.vars.get("proj_out.weight")!.dataSync();
    const w1 = one.params.get("proj_out.weight")!;
    expect(Math.max(...w1.map((x, i) => Math.abs(x - w0[i])))).toBeGreaterThan(1e-4);
    init.store.dispose();
  });

  it("is refused on the static engine, with the way out", async () => {
    const m = buildModel(tiny.spec, tiny.ir, 0);
    await expect(createEngine("static", m, opts(4), 16, [32, 32, 1], () => {})).rejects.toThrow(/gradient accumulation \(accumulate 4\) runs on the tfjs engine only.*use --engine tfjs/);
    m.store.dispose();
  });
});

describe("checkpoint retention", () => {
  const make = (dir: string, steps: number[]) => {
    for (const s of steps) {
      mkdirSync(join(dir, `step-${String(s).padStart(6, "0")}`), { recursive: true });
      writeFileSync(join(dir, `step-${String(s).padStart(6, "0")}`, "state.json"), "{}");
    }
    writeFileSync(join(dir, "latest"), `step-${String(steps[steps.length - 1]).padStart(6, "0")}\n`);
  };
  const names = (dir: string) => readdirSync(dir).filter((f) => f.startsWith("step-")).map((f) => Number(f.slice(5))).sort((a, b) => a - b);
  it.each([
    // keep, keepBest, val losses by step, kept
    [0, false, {}, [1, 2, 3, 4, 5]],
    [2, false, {}, [4, 5]],
    [1, false, {}, [5]],
    [2, true, { 2: 0.5, 4: 0.7 }, [2, 4, 5]],
    [2, true, { 2: 0.9, 4: 0.7 }, [4, 5]],
    [1, true, { 1: 0.3, 3: 0.2, 5: 0.25 }, [3, 5]],
    [0, true, { 1: 0.3 }, [1, 2, 3, 4, 5]],
  ] as const)("keep %i, best %s, val %j: keeps %j", (keep, keepBest, val, kept) => {
    const dir = mkdtempSync(join(tmp, "ret-"));
    make(dir, [1, 2, 3, 4, 5]);
    pruneCheckpoints(dir, { keep, keepBest, valLoss: new Map(Object.entries(val).map(([k, v]) => [Number(k), v])) });
    expect(names(dir)).toEqual(kept);
    if (keepBest && Object.keys(val).length) {
      const best = Object.entries(val).sort((a, b) => a[1] - b[1])[0][0];
      expect(readFileSync(join(dir, "best"), "utf8").trim()).toBe(`step-${best.padStart(6, "0")}`);
    }
  });

  it("sdc train --keep-checkpoints 1 --keep-best keeps the last and the best by validation loss", async () => {
    const out = join(tmp, "keep");
    const code = await runTrain(GEN, { steps: 4, batch: 8, backend: "wasm", checkpointEvery: 1, sampleEvery: 2, samples: 4, sampleSteps: 1, keepCheckpoints: 1, keepBest: true, progress: false, out, log: () => {} });
    expect(code).toBe(0);
    const val = readValLosses(join(out, "metrics.jsonl"));
    expect([...val.keys()]).toEqual([2, 4]);
    const best = [...val].sort((a, b) => a[1] - b[1])[0][0];
    expect(names(join(out, "checkpoints"))).toEqual([...new Set([best, 4])].sort());
    expect(readFileSync(join(out, "checkpoints", "best"), "utf8").trim()).toBe(`step-${String(best).padStart(6, "0")}`);
    expect(existsSync(join(out, "checkpoints", "step-000001"))).toBe(false);
  });
});

describe("precision", () => {
  it("sdc train --precision fp16 exits 2 and says what is supported", () => {
    const r = spawnSync(process.execPath, ["bin/sdc.mjs", "train", GEN, "--precision", "fp16", "--out", join(tmp, "prec")], { encoding: "utf8" });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--precision fp16 is not supported: sdc trains in fp32, or in bf16 mixed precision.*supported: fp32, bf16/);
    expect(existsSync(join(tmp, "prec"))).toBe(false);
  });

  it("bf16 on the tfjs engine is refused with one line (exit 1), before any run folder", () => {
    const r = spawnSync(process.execPath, ["bin/sdc.mjs", "train", GEN, "--precision", "bf16", "--engine", "tfjs", "--backend", "wasm", "--out", join(tmp, "prec-tfjs")], { encoding: "utf8" });
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split("\n").filter((l) => l.startsWith("error:"))).toEqual([expect.stringMatching(/precision bf16 with --engine tfjs: bf16 mixed precision runs on the static engine's native CPU kernels only/)]);
    expect(r.stderr).not.toMatch(/\bat .*\.ts:\d+/);
    expect(existsSync(join(tmp, "prec-tfjs", "config.json"))).toBe(false);
  });

  it("bf16 with the default backend (auto) trains on a CPU backend and says why", () => {
    const out = join(tmp, "prec-auto");
    const r = spawnSync(process.execPath, ["bin/sdc.mjs", "train", GEN, "--precision", "bf16", "--steps", "2", "--sample-every", "0", "--checkpoint-every", "0", "--samples", "4", "--no-progress", "--out", out], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/backend: auto picks a CPU backend \(wasm, cpu\) for bf16 mixed precision/);
    expect(r.stderr).toMatch(/engine: static graph on the CPU, native CPU kernels .*precision bf16/);
    expect(JSON.parse(readFileSync(join(out, "config.json"), "utf8")).backend).toMatch(/^(wasm|cpu)/);
  });

  it("bf16 with gradient accumulation is refused, never trained in fp32", async () => {
    const m = buildModel(tiny.spec, tiny.ir, 0);
    const o = tiny.ir.train.optimizer;
    const opts = { lr: 1e-3, clip: 1, ema: 0, kind: o.kind, beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: 0, warmup: 0, accumulate: 4, precision: "bf16" as const };
    await expect(createEngine("auto", m, opts, 16, [32, 32, 1], () => {})).rejects.toThrow(/precision bf16 with gradient accumulation \(accumulate 4\)/);
    m.store.dispose();
  });

  it("a bf16 run names its precision on the engine line and in config.json, and a resume keeps it (another precision is refused)", async () => {
    const out = join(tmp, "bf16-run");
    const lines: string[] = [];
    const base = { batch: 8, backend: "wasm", checkpointEvery: 2, sampleEvery: 0, samples: 4, sampleSteps: 1, progress: false, out } as const;
    expect(await runTrain(GEN, { ...base, steps: 2, precision: "bf16", log: (l) => lines.push(l) })).toBe(0);
    expect(lines.join("\n")).toMatch(/engine: static graph on the CPU, native CPU kernels \(.*\): \d+ kernels per step.*, precision bf16 \(mixed: GEMM operands rounded to bf16, fp32 accumulation/);
    const config = () => JSON.parse(readFileSync(join(out, "config.json"), "utf8")) as { settings: { precision: string } };
    expect(config().settings.precision).toBe("bf16");
    await expect(runTrain(GEN, { ...base, steps: 4, precision: "fp32", resume: out, log: () => {} })).rejects.toThrow(/resuming a run with other settings than it was started with: --precision fp32 \(the run has bf16\)/);
    const resumed: string[] = [];
    expect(await runTrain(GEN, { ...base, steps: 4, resume: out, log: (l) => resumed.push(l) })).toBe(0);
    expect(resumed.join("\n")).toMatch(/resumed from .*step-000002/);
    expect(resumed.join("\n")).toMatch(/engine: .*precision bf16 \(mixed/);
    expect(config().settings.precision).toBe("bf16");
  });
});
