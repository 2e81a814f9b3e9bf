/**
 * Declared network inputs at run time: a class-conditional network (test/specs/labels.mdl: label
 * with its null class, velocity + variance channels) and one reading the text tokens with their
 * padding mask (test/specs/masked.mdl) train to the same losses on the tfjs engine and the static
 * (native) engine; prompts become labels ("7", "seven" -> 7; "" -> the null class) and masks
 * (1 per prompt token); sampling such a network with a prompt that is no class is refused.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { loadCompiled } from "../../cli/generated.ts";
import { DataError } from "../../runtime/data/dataset.ts";
import { textInputs } from "../../runtime/engines/static/step.ts";
import { promptLabel, tokenMask } from "../../runtime/train/conditioning.ts";
import { buildModel, conditionOn, velocity } from "../../runtime/train/trainer.ts";
import { expectSameMetrics, type MetricLine, readMetrics } from "../graph/helpers.ts";

vi.setConfig({ testTimeout: 180_000 });
const tmp = mkdtempSync(join(tmpdir(), "sdc-cond-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const sdc = (args: string[]) => spawnSync(process.execPath, ["bin/sdc.mjs", ...args], { encoding: "utf8", timeout: 150_000 });

beforeAll(async () => {
  await tf.setBackend("cpu");
  for (const s of ["labels", "masked"]) {
    const c = sdc(["compile", `test/specs/${s}.mdl`, "--out-dir", join(tmp, "gen")]);
    expect(c.status, c.stderr).toBe(0);
  }
});

describe("prompts as conditioning", () => {
  it.each([
    ["7", 7],
    ["seven", 7],
    [" Zero ", 0],
    ["", 10],
  ])("label of %j is %d", (p, want) => expect(promptLabel(p, 10)).toBe(want));

  it("a prompt that is no class is a DataError naming it", () => {
    expect(() => promptLabel("a cat", 10)).toThrow(DataError);
    expect(() => promptLabel("a cat", 10)).toThrow(/"a cat" is not a class of this spec/);
  });

  it("the padding mask is 1 for each prompt token", () => {
    expect([...tokenMask([5, 3, 0, 0])]).toEqual([1, 1, 0, 0]);
  });

  it("labels.mdl: the label reaches the velocity, and the static feeds carry labels, the null class for the empty prompt", async () => {
    const loaded = await loadCompiled(join(tmp, "gen", "labels"));
    if (loaded.spec.task !== "diffusion") throw new Error("diffusion spec");
    const m = buildModel(loaded.spec, loaded.ir, 3);
    const x = tf.tile(tf.randomNormal([1, 32, 32, 1], 0, 1, "float32", 1), [2, 1, 1, 1]); // the same image twice
    const t = tf.tensor1d([0.3, 0.3]);
    const a = velocity(m, x, t, conditionOn(m, ["3", "3"]));
    const b = velocity(m, x, t, conditionOn(m, ["5", "five"]));
    expect(a.shape).toEqual([2, 32, 32, 1]); // the variance half split off
    expect(tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]).toBeGreaterThan(1e-4);
    // "5" and "five" are one class
    expect(tf.max(tf.abs(tf.sub(b.slice(0, 1), b.slice(1, 1)))).dataSync()[0]).toBe(0);
    expect([...(await textInputs(m, ["7", "seven", ""])).labels!]).toEqual([7, 7, 10]);
    m.store.dispose();
  });

  it("masked.mdl: the static feeds carry the mask of the tokenized prompts", async () => {
    const loaded = await loadCompiled(join(tmp, "gen", "masked"));
    if (loaded.spec.task !== "diffusion") throw new Error("diffusion spec");
    const m = buildModel(loaded.spec, loaded.ir, 3);
    expect(loaded.ir.text).toMatchObject({ kind: "learned", mask: true }); // the encoder reads the mask too
    const f = await textInputs(m, ["7", ""]);
    expect([...f.mask!]).toEqual([1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(f.ids!.length).toBe(16);
    m.store.dispose();
  });
});

describe("declared inputs train identically on both engines", () => {
  it.each(["labels", "masked"])("%s: tfjs and static (native) losses agree", (name) => {
    const metrics: Record<string, MetricLine[]> = {};
    for (const engine of ["tfjs", "static"]) {
      const out = join(tmp, `${name}-${engine}`);
      const r = sdc(["train", join(tmp, "gen", name), "--steps", "4", "--batch-size", "8", "--seed", "2", "--engine", engine, "--backend", "wasm", "--sample-every", "0", "--samples", "4", "--sample-steps", "2", "--no-progress", "--out", out]);
      expect(r.status, r.stderr.slice(-2000)).toBe(0);
      metrics[engine] = readMetrics(out);
    }
    expectSameMetrics(metrics as { tfjs: MetricLine[]; static: MetricLine[] });
  });

  it("sampling a class-conditional network: digits work, another prompt is refused (exit 1, one line)", () => {
    const run = join(tmp, "labels-static");
    const ok = sdc(["sample", join(tmp, "gen", "labels"), "--checkpoint", run, "--prompt", "seven", "--prompt", "3", "--steps", "2", "--backend", "wasm", "--out", join(tmp, "s.png")]);
    expect(ok.status, ok.stderr).toBe(0);
    const bad = sdc(["sample", join(tmp, "gen", "labels"), "--checkpoint", run, "--prompt", "a cat", "--steps", "2", "--backend", "wasm", "--out", join(tmp, "s2.png")]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/^error: the prompt "a cat" is not a class of this spec/m);
    expect(bad.stderr).not.toMatch(/\n\s+at /);
  });
});
