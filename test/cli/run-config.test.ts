/**
 * Run records: RUN/config.json holds the effective settings, the command line, versions, seed,
 * backend and engine; --resume reuses them (a differing flag is refused, by name); --resume
 * latest (or alone) picks the newest run of the package; metrics.jsonl keeps each step once.
 */
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, utimesSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runTrain } from "../../cli/commands/train.ts";
import { DEFAULT_TRAIN as TRAIN } from "../../compiler/spec.ts";
import { parseSettingFlags, type RunConfig, resolveSettings, runConfigProblems, type RunSettings, SETTINGS, truncateMetrics } from "../../cli/run-config.ts";
import { SDC_VERSION } from "../../cli/version.ts";
import { initBackend } from "../../runtime/backend.ts";
import { readCheckpoint } from "../../runtime/train/checkpoint.ts";

const GEN = "generated/sd3-tiny";
const tmp = mkdtempSync(join(tmpdir(), "sdc-runcfg-"));
const runs = join(tmp, "output");
beforeAll(async () => {
  await initBackend("wasm", { log: () => {} });
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const spec: RunSettings = { steps: 100, batch: 64, lr: 1e-3, seed: 0, sampleEvery: 10, checkpointEvery: 10, samples: 16, sampleSteps: 50 };
const prior = (settings: Partial<RunSettings>): RunConfig => ({
  format: "sdc-run-config", version: 1, package: GEN, spec: "sd3-tiny", irHash: "x", settings: { ...spec, ...settings } as RunConfig["settings"], recipe: {}, command: [],
  versions: { sdc: "", node: "", tfjs: "" }, seed: 0, backend: "wasm", engine: "tfjs", created: "", history: [],
});

describe("resolveSettings", () => {
  it.each([
    ["no run: flags over the spec", {}, null, { batch: 32 }, { batch: 32, steps: 100 }],
    ["resume: the run's settings", { batch: 32, steps: 300 }, {}, {}, { batch: 32, steps: 300 }],
    ["resume: --steps may grow", { batch: 32, steps: 300 }, {}, { steps: 600 }, { batch: 32, steps: 600 }],
    ["resume: the same value again is fine", { batch: 32 }, {}, { batch: 32 }, { batch: 32 }],
  ] as const)("%s", (_what, run, _unused, flags, want) => {
    const r = resolveSettings(spec, flags, _unused === null ? null : prior(run));
    expect(r).toMatchObject(want);
  });

  it.each([
    [{ batch: 32 }, { batch: 16 }, /--batch-size 16 \(the run has 32\)/],
    [{ lr: 1e-3 }, { lr: 2e-3, seed: 4 }, /--lr 0.002 \(the run has 0.001\), --seed 4 \(the run has 0\); .*drop the flags/],
    [{ sampleSteps: 2 }, { sampleSteps: 3 }, /--sample-steps 3 \(the run has 2\)/],
  ] as const)("resume of %j with %j is refused", (run, flags, msg) => {
    expect(() => resolveSettings(spec, flags, prior(run), "RUN/config.json")).toThrow(msg);
  });
});

describe("parseSettingFlags", () => {
  it("reads each setting's flag by the range config.json allows, naming the flag", () => {
    expect(parseSettingFlags({ steps: "300", batchSize: "32", lr: "5e-4", gradAccum: "2", lrSchedule: "cosine", keepBest: true, precision: "fp32" })).toEqual({ steps: 300, batch: 32, lr: 5e-4, accumulate: 2, lrSchedule: "cosine", keepBest: true, precision: "fp32" });
    expect(parseSettingFlags({})).toEqual({});
    expect(() => parseSettingFlags({ samples: "1025" })).toThrow("--samples must be at most 1,024, got 1,025");
    expect(() => parseSettingFlags({ batchSize: "0" })).toThrow("--batch-size must be at least 1, got 0");
    expect(() => parseSettingFlags({ lr: "-1" })).toThrow("--lr must be positive, got -1");
    expect(() => parseSettingFlags({ warmup: "x" })).toThrow("--warmup must be an integer, got 'x'");
  });

  it("accepts on the command line exactly what config.json accepts", () => {
    const config = (settings: RunSettings) => ({ ...prior({}), irHash: "0".repeat(64), seed: settings.seed, recipe: { ...TRAIN, optimizer: { ...TRAIN.optimizer, lr: settings.lr } }, command: ["sdc"], history: [{ command: ["sdc"], fromStep: 0, at: "" }], settings });
    // a batch the accumulation divides, so that only the range is judged
    const inRange = (k: string, v: number) => runConfigProblems(config({ ...spec, [k]: v, ...(k === "accumulate" ? { batch: Math.min(Math.max(v, 1), 1 << 16) } : {}) })).length === 0;
    expect(inRange("steps", 100)).toBe(true);
    for (const [k, s] of Object.entries(SETTINGS)) {
      if (!("int" in s)) continue;
      const attr = s.flag.slice(2).replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
      const [min, max = Number.MAX_SAFE_INTEGER] = s.int;
      for (const v of [min - 1, min, max, max + 1]) {
        const flagOk = (() => { try { parseSettingFlags({ [attr]: String(v) }); return true; } catch { return false; } })();
        expect([k, v, flagOk]).toEqual([k, v, inRange(k, v)]);
      }
    }
  });
});

describe("truncateMetrics", () => {
  it("drops the lines of the steps a resume redoes (and a torn last line)", () => {
    const p = join(tmp, "m.jsonl");
    writeFileSync(p, ['{"step":10,"loss":1}', '{"step":20,"loss":0.9}', '{"step":20,"val_loss":1}', '{"step":30,"loss":0.8}', '{"step":4'].join("\n"));
    expect(truncateMetrics(p, 20)).toBe(2);
    expect(readFileSync(p, "utf8")).toBe('{"step":10,"loss":1}\n{"step":20,"loss":0.9}\n{"step":20,"val_loss":1}\n');
    expect(truncateMetrics(p, 20)).toBe(0);
  });
});

describe("sdc train records and reuses its settings", () => {
  const base = { backend: "wasm" as const, sampleEvery: 0, samples: 4, sampleSteps: 2, progress: false, log: () => {}, runsDir: runs };
  const a = join(runs, "a");
  const config = (dir: string) => JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as RunConfig;

  it("writes config.json with the effective settings, command line, versions, seed, backend and engine", async () => {
    const argv = ["sdc", "train", GEN, "--steps", "3", "--batch-size", "4", "--lr", "5e-4"];
    expect(await runTrain(GEN, { ...base, steps: 3, batch: 4, lr: 5e-4, checkpointEvery: 1, out: a, argv })).toBe(0);
    const c = config(a);
    expect(c.settings).toMatchObject({ steps: 3, batch: 4, lr: 5e-4, seed: 0, sampleEvery: 0, checkpointEvery: 1, samples: 4, sampleSteps: 2 });
    expect(c.command).toEqual(argv);
    expect(c.versions).toEqual({ sdc: SDC_VERSION, node: process.version, tfjs: tf.version_core });
    expect([c.seed, c.backend, c.engine, c.spec]).toEqual([0, "wasm", "static", "sd3-tiny"]);
    expect((c.recipe as { optimizer: { lr: number } }).optimizer.lr).toBe(5e-4);
  });

  it("--resume DIR reuses them (no --batch-size needed), truncates metrics.jsonl, records the resume", async () => {
    // resume from step 1: the metric lines of steps 2-3 go
    expect(await runTrain(GEN, { ...base, steps: 5, resume: join(a, "checkpoints", "step-000001") })).toBe(0);
    expect(readCheckpoint(join(a, "checkpoints", "step-000005")).state.step).toBe(5);
    const c = config(a);
    expect(c.settings).toMatchObject({ steps: 5, batch: 4, lr: 5e-4 });
    expect(c.history.map((h) => h.fromStep)).toEqual([0, 1]);
    const steps = readFileSync(join(a, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l).step as number);
    expect(steps).not.toContain(3); // the first run's step-3 lines were redone
    expect(steps).toContain(5);
  });

  it("a flag that differs from the run's is an error that names it", async () => {
    await expect(runTrain(GEN, { ...base, steps: 6, batch: 8, resume: a })).rejects.toThrow(/--batch-size 8 \(the run has 4\)/);
  });

  it("--resume latest with no run of the package is a clear error", async () => {
    await expect(runTrain(GEN, { ...base, steps: 3, resume: "latest", runsDir: join(tmp, "empty") })).rejects.toThrow(/no run of sd3-tiny to resume/);
  });

  it("`sdc train DIR --resume` alone (or --resume latest) picks the newest run of the package under output/", () => {
    const cwd = join(tmp, "cwd");
    mkdirSync(join(cwd, "output"), { recursive: true });
    // an older run of the same package beside the new one
    cpSync(a, join(cwd, "output", "older"), { recursive: true });
    const old = new Date(Date.now() - 3600_000);
    utimesSync(join(cwd, "output", "older", "checkpoints", "latest"), old, old);
    const bin = resolve("bin/sdc.mjs");
    const args = (extra: string[]) => [bin, "train", resolve(GEN), "--backend", "wasm", "--sample-every", "0", "--samples", "4", "--sample-steps", "2", "--no-progress", ...extra];
    const first = spawnSync(process.execPath, args(["--steps", "2", "--batch-size", "4"]), { cwd, encoding: "utf8" });
    expect(first.status, first.stderr).toBe(0);
    const again = spawnSync(process.execPath, args(["--resume", "--steps", "3"]), { cwd, encoding: "utf8" });
    expect(again.status, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/resumed from output\/sd3-tiny\/checkpoints\/step-000002 at step 2/);
    expect(config(join(cwd, "output", "sd3-tiny")).command).toEqual(["sdc", "train", resolve(GEN), "--backend", "wasm", "--sample-every", "0", "--samples", "4", "--sample-steps", "2", "--no-progress", "--resume", "--steps", "3"]);
  });
});
