/**
 * Training runtime on the tiny variant of specs/sd3.mdl (generated/sd3-tiny, committed):
 * loss falls, no tensor leak, exact resume, checkpoint format, and clear errors for bad input.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadCompiled, type LoadedSpec } from "../../cli/generated.ts";
import { runTrain } from "../../cli/commands/train.ts";
import { initBackend } from "../../runtime/backend.ts";
import { BatchSampler } from "../../runtime/data/dataset.ts";
import { loadMnist, type MnistDataset } from "../../runtime/data/mnist.ts";
import { readSafetensors } from "../../runtime/io/safetensors.ts";
import { readCheckpoint } from "../../runtime/train/checkpoint.ts";
import { buildModel, drawBatch, FlowTrainer, sampleImages } from "../../runtime/train/trainer.ts";
import { Rng } from "../../runtime/util/rng.ts";

const GEN = "generated/sd3-tiny";
let tiny: LoadedSpec;
let mnist: MnistDataset;
const tmp = mkdtempSync(join(tmpdir(), "sdc-train-"));

beforeAll(async () => {
  await initBackend("wasm", { log: () => {} });
  tiny = await loadCompiled(GEN);
  mnist = loadMnist({ split: "train" });
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function trainer(seed: number, lr: number) {
  const m = buildModel(tiny.spec, tiny.ir, seed);
  const opt = tiny.ir.train.optimizer;
  const t = new FlowTrainer(m, { lr, clip: 1, ema: 0.99, kind: opt.kind, beta1: opt.beta1, beta2: opt.beta2, eps: opt.eps, weightDecay: 0, warmup: 0 });
  return { m, t };
}

describe("training the tiny spec", () => {
  it("builds exactly the parameters the compiler proved", () => {
    const { m, t } = trainer(0, 1e-3);
    expect(m.store.numParams).toBe(tiny.ir.stats.params);
    expect([...m.store.vars.keys()].slice(0, 3)).toEqual(["pos_embed.proj.weight", "pos_embed.proj.bias", "time_text_embed.timestep_embedder.linear_1.weight"]);
    t.dispose();
    m.store.dispose();
  });

  it("lowers the loss within a few dozen steps (fixed seed) without leaking tensors", async () => {
    const { m, t } = trainer(0, 2e-3);
    const rng = new Rng(0);
    const sampler = new BatchSampler(mnist, 16, new Rng(1));
    const losses: number[] = [];
    let tensorsAfterFirst = 0;
    for (let i = 0; i < 40; i++) {
      const b = drawBatch(sampler, rng, m.flow);
      losses.push((await t.step(b, [16, 32, 32, 1])).loss);
      if (i === 1) tensorsAfterFirst = tf.memory().numTensors;
    }
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const first = mean(losses.slice(0, 8));
    const last = mean(losses.slice(-8));
    expect(last).toBeLessThan(first * 0.8);
    expect(tf.memory().numTensors).toBe(tensorsAfterFirst);
    // sampling leaks nothing either
    const before = tf.memory().numTensors;
    const z = tf.randomNormal([2, 32, 32, 1]) as tf.Tensor4D;
    const x = sampleImages(m, z, ["7", "seven"], { steps: 2, cfg: 3 });
    expect(x.shape).toEqual([2, 32, 32, 1]);
    tf.dispose([x, z]);
    expect(tf.memory().numTensors).toBe(before);
    t.dispose();
    m.store.dispose();
  });
});

describe("text conditioning", () => {
  it("gives different contexts for different prompts on the default CPU backend (wasm)", () => {
    const { m, t } = trainer(0, 1e-3);
    const [ctx, pooled] = m.text.encode(["7", "seven", "", "xylophone"]);
    const rows = (x: tf.Tensor) => tf.unstack(x).map((r) => Array.from(r.dataSync()));
    const c = rows(ctx);
    const p = rows(pooled);
    const dist = (a: number[], b: number[]) => Math.sqrt(a.reduce((s, x, i) => s + (x - b[i]) ** 2, 0));
    expect(dist(c[0], c[2])).toBeGreaterThan(1e-2); // "7" vs the empty (unconditional) prompt
    expect(dist(p[0], p[1])).toBeGreaterThan(1e-3); // numeral vs word
    expect(dist(c[3], c[2])).toBeGreaterThan(1e-2); // an unknown word is not the empty prompt
    tf.dispose([ctx, pooled]);
    t.dispose();
    m.store.dispose();
  });
});

describe("checkpoints", () => {
  const common = { batch: 4, backend: "wasm" as const, samples: 4, sampleSteps: 2, sampleEvery: 0, progress: false, log: () => {} };

  it("resumes bit-identically: 6 steps straight equals 3 + resume + 3", async () => {
    const a = join(tmp, "straight");
    const b = join(tmp, "split");
    expect(await runTrain(GEN, { ...common, steps: 6, out: a, checkpointEvery: 0 })).toBe(0);
    expect(await runTrain(GEN, { ...common, steps: 3, out: b, checkpointEvery: 0 })).toBe(0);
    expect(await runTrain(GEN, { ...common, steps: 6, out: b, resume: join(b, "checkpoints", "step-000003") })).toBe(0);
    for (const f of ["model.safetensors", "text_encoder.safetensors", "optimizer.safetensors", "ema.safetensors"]) {
      const x = readFileSync(join(a, "checkpoints", "step-000006", f));
      const y = readFileSync(join(b, "checkpoints", "step-000006", f));
      expect(Buffer.compare(x, y), f).toBe(0);
    }
  });

  it("writes the network under the reference's state-dict names with the IR beside it", () => {
    const dir = join(tmp, "straight", "checkpoints", "step-000006");
    const model = readSafetensors(readFileSync(join(dir, "model.safetensors")));
    const netNames = tiny.ir.parameters.filter((p) => !p.name.startsWith("text_encoder.")).map((p) => p.name).sort();
    expect([...model.tensors.keys()].sort()).toEqual(netNames);
    expect(model.tensors.get("transformer_blocks.0.attn.to_q.weight")!.shape).toEqual([64, 64]);
    expect(model.metadata.irHash).toMatch(/^[0-9a-f]{64}$/);
    expect(readFileSync(join(dir, "ir.json"), "utf8")).toBe(tiny.irText);
    expect(readFileSync(join(tmp, "straight", "checkpoints", "latest"), "utf8").trim()).toBe("step-000006");
    const c = readCheckpoint(dir);
    expect(c.state.step).toBe(6);
    expect(c.optimizer.size).toBe(2 * tiny.ir.parameters.filter((p) => !p.buffer).length);
  });

  it("refuses a truncated or modified checkpoint", () => {
    const src = join(tmp, "straight", "checkpoints", "step-000006");
    const bad = join(tmp, "corrupt");
    spawnSync("cp", ["-r", src, bad]);
    const f = join(bad, "model.safetensors");
    const bytes = readFileSync(f);
    writeFileSync(f, bytes.subarray(0, bytes.length - 100));
    expect(() => readCheckpoint(bad)).toThrow(/model.safetensors: the header describes .* \(truncated\)/);
    const flipped = Buffer.from(bytes);
    flipped[flipped.length - 1] ^= 0xff; // same length, one weight byte changed
    writeFileSync(f, flipped);
    expect(() => readCheckpoint(bad)).toThrow(/corrupt: model.safetensors does not match its checksum/);
    rmSync(join(bad, "state.json"));
    expect(() => readCheckpoint(bad)).toThrow(/state.json is missing/);
  });
});

describe("the CLI on bad input", () => {
  const sdc = (args: string[], env: Record<string, string> = {}) => spawnSync(process.execPath, ["bin/sdc.mjs", ...args], { encoding: "utf8", env: { ...process.env, ...env } });
  it.each([
    [["train", GEN, "--steps", "-1"], 2, /--steps must be at least 1/],
    [["train", GEN, "--backend", "tpu"], 2, /Allowed choices are auto, tensorflow, webgpu, wasm, cpu/],
    [["train", "specs/sd3.mdl"], 1, /not a generated folder: specs\/sd3.mdl \(that is a spec; compile it first/],
    [["train", GEN, "--steps", "2", "--backend", "cpu", "--resume", "test/fixtures"], 1, /is not a checkpoint/],
    [["train", "generated/sd3", "--backend", "cpu", "--resume", join(tmp, "straight", "checkpoints", "step-000006")], 1, /is from another spec \(sd3-tiny/],
  ])("sdc %j exits %i with a clear message", (args, code, msg) => {
    const r = sdc(args as string[]);
    expect(r.status).toBe(code);
    expect(r.stderr).toMatch(msg as RegExp);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it("stops on a non-finite loss with exit 3 and keeps the last good checkpoint", () => {
    const out = join(tmp, "nan");
    const r = sdc(["train", GEN, "--lr", "10", "--steps", "40", "--batch-size", "4", "--checkpoint-every", "1", "--sample-every", "0", "--samples", "4", "--sample-steps", "2", "--backend", "wasm", "--out", out, "--no-progress"]);
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/the loss became (NaN|Infinity|-Infinity) at step (\d+); stopping\. The last good checkpoint is .*step-0+\d+/);
    const latest = readFileSync(join(out, "checkpoints", "latest"), "utf8").trim();
    expect(readCheckpoint(join(out, "checkpoints", latest)).state.step).toBeGreaterThan(0);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it("says where the MNIST files were looked for when they are missing", () => {
    const r = sdc(["train", GEN, "--steps", "1", "--backend", "cpu", "--out", join(tmp, "nodata")], { SDC_MNIST_DIR: join(tmp, "no-such-dir") });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/no-such-dir/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(existsSync(join(tmp, "nodata", "checkpoints"))).toBe(false);
  });
});
