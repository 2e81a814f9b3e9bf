import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { loadJudge } from "../../cli/commands/judge.ts";
import { loadCompiled } from "../../cli/generated.ts";
import { initBackend, shutdownBackend } from "../../runtime/backend.ts";
import { loadMnist } from "../../runtime/data/mnist.ts";
import { buildJudge, judgeImages, trainJudge } from "../../runtime/eval/judge.ts";
import { registerWasmTrainingKernels } from "../../runtime/eval/wasm-kernels.ts";

afterAll(() => shutdownBackend());

describe("the judge", () => {
  it("loads generated/judge + weights/judge.safetensors and classifies MNIST test images", async () => {
    await initBackend("cpu", { log: () => {} });
    const j = await loadJudge();
    expect(j.testAccuracy).toBeGreaterThanOrEqual(0.99);
    const test = loadMnist({ split: "test", size: 32 });
    const n = 10;
    const out = await judgeImages(j, test.pixels.subarray(0, n * 32 * 32), n);
    let ok = 0;
    for (let i = 0; i < n; i++) if (out.predicted[i] === test.labels[i]) ok++;
    expect(ok).toBeGreaterThanOrEqual(9);
    expect(out.featureDim).toBe(128);
    expect(out.features.length).toBe(n * 128);
    expect(out.features.every((v) => v >= 0 && Number.isFinite(v))).toBe(true); // post-ReLU features
    j.store.dispose();
  });

  it("refuses a diffusion spec as the judge", async () => {
    const tiny = await loadCompiled("generated/sd3-tiny");
    expect(() => buildJudge(tiny.spec, tiny.ir)).toThrow(/not a classifier spec/);
  });

  it("wasm: the conv and max-pool gradient kernels sdc registers match the cpu backend", async () => {
    const cases: [[number, number, number, number], [number, number, number, number], number, "valid" | "same" | [[number, number], [number, number], [number, number], [number, number]]][] = [
      [[2, 8, 8, 3], [3, 3, 3, 4], 1, [[0, 0], [1, 1], [1, 1], [0, 0]]],
      [[2, 9, 9, 2], [3, 3, 2, 3], 2, "valid"],
      [[2, 8, 8, 2], [5, 5, 2, 3], 1, "same"],
    ];
    const run = () =>
      cases.flatMap(([xs, ws, s, pad]) => {
        const x = tf.tensor(Array.from({ length: xs.reduce((a, b) => a * b) }, (_, i) => Math.sin(i * 0.7)), xs) as tf.Tensor4D;
        const w = tf.tensor(Array.from({ length: ws.reduce((a, b) => a * b) }, (_, i) => Math.cos(i * 0.3)), ws) as tf.Tensor4D;
        const before = tf.memory().numTensors;
        const [gx, gw] = tf.grads((a: tf.Tensor, f: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(tf.relu(tf.conv2d(a as tf.Tensor4D, f as tf.Tensor4D, s, pad)) as tf.Tensor4D, 2, 2, "valid"), 1.5)))([x, w]);
        const v = [...gx.dataSync(), ...gw.dataSync()];
        tf.dispose([gx, gw, x, w]);
        expect(tf.memory().numTensors).toBe(before - 2);
        return v;
      });
    await initBackend("cpu", { log: () => {} });
    const ref = run();
    await initBackend("wasm", { log: () => {} });
    registerWasmTrainingKernels();
    const got = run();
    expect(got.length).toBe(ref.length);
    let max = 0;
    for (let i = 0; i < ref.length; i++) max = Math.max(max, Math.abs(got[i] - ref[i]));
    expect(max).toBeLessThan(1e-4);
  });

  it("trains: a few wasm steps lower the loss", async () => {
    await initBackend("wasm", { log: () => {} });
    registerWasmTrainingKernels();
    const L = await loadCompiled("generated/judge");
    const j = buildJudge(L.spec, L.ir, 0);
    const train = loadMnist({ split: "train", size: 32 });
    const n = 512;
    const losses: number[] = [];
    await trainJudge(j, train.pixels.subarray(0, n * 1024), train.labels.subarray(0, n), { epochs: 3, batch: 64, lr: 2e-3, seed: 0, onEpoch: (_, l) => losses.push(l) });
    expect(losses[2]).toBeLessThan(losses[0]);
    j.store.dispose();
  });
});
