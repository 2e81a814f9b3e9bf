/**
 * `flow.predict: data` (x-prediction, JiT): the network's output is read as the clean image and
 * turned into the velocity -velocitySign * (x0_hat - x_t) / max(sigma, sigma_floor), the same rule
 * on tfjs (`outputVelocity`), the graph interpreter and the native executor (the traced
 * `buildVelocityGraph`), for both time conventions and with the floor reached; the settings'
 * positioned errors.
 */
import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { initBackend } from "../../runtime/backend.ts";
import { dataVelocity, DEFAULT_SIGMA_FLOOR } from "../../runtime/flow/schedule.ts";
import { outputVelocity } from "../../runtime/train/conditioning.ts";
import type { FlowIR } from "../../ir/ir.ts";
import { compileSource, expectError, lines, net, spec } from "../compiler/helpers.ts";
import { maxAbs, specForward } from "./spec-forward.ts";

beforeAll(async () => {
  await initBackend("cpu", { log: () => {} });
});

const flowSource = (flow: string) => lines(net(), spec("net(ch: 1, ctx: 24)", [`  flow { ${flow} }`]));

describe("flow.predict: data", () => {
  it.each([
    ["noise_at: 0 (t = 1 is data), the default floor", "predict: data  noise_at: 0", 0, DEFAULT_SIGMA_FLOOR, false],
    ["noise_at: 1 (t = 1 is noise), a floor of 0.3 that the smallest sigma reaches", "predict: data  noise_at: 1  sigma_floor: 0.3", 1, 0.3, true],
  ] as const)("%s: tfjs, the interpreter and the native executor give the rule's velocity", async (_, flow, noiseAt, floor, floored) => {
    const r = await specForward(flowSource(flow), { tokens: 5, width: 24, pooled: 20 }, 4);
    const ir = compileSource(flowSource(flow)).ir!;
    expect(ir.flow).toMatchObject({ predict: "data", noiseAt });
    const [b, h, w, c] = r.shape;
    const per = h * w * c;
    // r.tfjs is the raw network output (the data prediction); the rule, element by element
    const want = new Float32Array(b * per);
    const sigmas = Array.from(r.inputs.t, (t) => (noiseAt === 1 ? t : 1 - t));
    expect(Math.min(...sigmas) < floor).toBe(floored); // whether the floor is exercised
    for (let i = 0; i < b; i++) for (let j = i * per; j < (i + 1) * per; j++) want[j] = dataVelocity({ noiseAt, sigmaFloor: floor }, r.tfjs[j], r.inputs.x[j], sigmas[i]);
    const tfjs = tf.tidy(() => outputVelocity(ir, tf.tensor4d(r.tfjs, [b, h, w, c]), tf.tensor4d(r.inputs.x, [b, h, w, c]), tf.tensor1d(r.inputs.t)).dataSync() as Float32Array);
    const scale = Math.max(...Array.from(want, Math.abs));
    for (const [engine, got] of Object.entries({ tfjs, graph: r.graph, native: r.native })) expect(maxAbs(got, want) / scale, engine).toBeLessThan(1e-5);
    r.store.dispose();
  });

  it("the rule: the velocity that carries x_t to x0_hat, signed for the network's time", () => {
    // noise_at 0: v = d x / d t with t = 1 - sigma; x_t at sigma = 0.5 between x0 = 1 and eps = -1 is 0
    expect(dataVelocity({ noiseAt: 0 }, 1, 0, 0.5)).toBeCloseTo(2); // x0 - eps
    expect(dataVelocity({ noiseAt: 1 }, 1, 0, 0.5)).toBeCloseTo(-2); // eps - x0
    expect(dataVelocity({ noiseAt: 0, sigmaFloor: 0.1 }, 1, 0.99, 0.01)).toBeCloseTo(0.1); // floored
  });

  it("predict: velocity leaves the output as it is", () => {
    const flow = { predict: "velocity", noiseAt: 0 } as FlowIR;
    const out = tf.tensor4d([1, 2, 3, 4], [1, 2, 2, 1]);
    expect(Array.from(outputVelocity({ flow }, out, tf.zeros([1, 2, 2, 1]), tf.tensor1d([0.5])).dataSync())).toEqual([1, 2, 3, 4]);
    out.dispose();
  });

  it.each([
    ["sigma_floor without predict: data", "noise_at: 0  sigma_floor: 0.1", "0.1", /applies only with predict: data/],
    ["sigma_floor out of range", "predict: data  sigma_floor: 0", "0", /sigma_floor/],
    ["an unknown prediction", "predict: noise", "noise", /velocity, data/],
  ])("%s is a positioned error", (_, flow, at, msg) => {
    const src = flowSource(flow);
    const line = src.split("\n").findIndex((l) => l.includes("flow {")) + 1;
    const col = src.split("\n")[line - 1].indexOf(at, src.split("\n")[line - 1].indexOf(flow.split(" ")[0])) + 1;
    expectError(compileSource(src), { code: "SDC702", line, col, msg });
  });
});
