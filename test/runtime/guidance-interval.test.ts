/**
 * flow.guidance_interval / --cfg-interval: classifier-free guidance only at noise levels in
 * [lo, hi], the conditional velocity elsewhere; the spec setting, the tfjs sampler and the static
 * engine's sampler.
 */
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseCfgInterval } from "../../cli/commands/eval.ts";
import { loadCompiled } from "../../cli/generated.ts";
import { initBackend } from "../../runtime/backend.ts";
import { staticFlowNetworkFor } from "../../runtime/engines/static/sampler.ts";
import { guidanceAt } from "../../runtime/flow/sampler.ts";
import type { ModelBundle } from "../../runtime/bundle.ts";
import { buildModel, sampleImages } from "../../runtime/train/trainer.ts";
import { Rng } from "../../runtime/util/rng.ts";
import { compileSource, expectError, lines, net, spec } from "../compiler/helpers.ts";

describe("the guidance interval setting", () => {
  it("compiles into the IR only when set, and refuses a bad interval where it is written", () => {
    const src = (v?: string) => lines(net(), spec("net(ch: 1, ctx: 24)", v ? [`  flow { guidance: 3  guidance_interval: ${v} }`] : []));
    expect(compileSource(src()).ir!.flow.guidanceInterval).toBeUndefined();
    const r = compileSource(src("[0.2, 0.7]"));
    expect(r.diagnostics.map((d) => d.message)).toEqual([]);
    expect(r.ir!.flow.guidanceInterval).toEqual([0.2, 0.7]);
    const text = src("[0.8, 0.2]");
    const row = text.split("\n").findIndex((l) => l.includes("guidance_interval"));
    expectError(compileSource(text), { code: "SDC702", line: row + 1, col: text.split("\n")[row].indexOf("[0.8") + 1, msg: "0 <= lo <= hi <= 1" });
    for (const bad of ["[0, 2]", "[0.5]", "0.5"]) expect(compileSource(src(bad)).diagnostics.map((d) => d.code)).toContain("SDC702");
  });

  it("guidanceAt and --cfg-interval", () => {
    expect(guidanceAt(4, 0.5)).toBe(4);
    expect(guidanceAt(4, 0.5, [0.2, 0.7])).toBe(4);
    expect(guidanceAt(4, 0.9, [0.2, 0.7])).toBe(1);
    expect(guidanceAt(4, 0.2, [0.2, 0.7])).toBe(4);
    expect(parseCfgInterval("0.2, 0.7")).toEqual([0.2, 0.7]);
    for (const bad of ["0.7,0.2", "0.2", "a,b", "0,1.5", ","]) expect(() => parseCfgInterval(bad)).toThrow(/--cfg-interval must be lo,hi/);
  });
});

describe("sampling with a guidance interval (the tiny spec, untrained)", () => {
  let m: ModelBundle;
  const prompts = ["3", "seven"];
  const dims: [number, number, number] = [32, 32, 1];
  const z = new Rng(3).normals(2 * 32 * 32);
  beforeAll(async () => {
    await initBackend("wasm", { log: () => {} });
    const tiny = await loadCompiled("generated/sd3-tiny");
    m = buildModel(tiny.spec, tiny.ir, 1);
    // a random output projection, so the prompt moves the velocity (the zero-initialised one would not)
    for (const [name, v] of m.store.vars) if (name.startsWith("proj_out") || name.includes("adaLN") || name.includes("norm_out")) v.assign(tf.randomNormal(v.shape, 0, 0.2, "float32", 7));
  });
  afterAll(() => m.store.dispose());

  const tfjs = async (cfg: number, cfgInterval?: [number, number]) => {
    const x = sampleImages(m, tf.tensor4d(z, [2, ...dims]), prompts, { cfg, steps: 4, ...(cfgInterval ? { cfgInterval } : {}) });
    const out = (await x.data()) as Float32Array;
    x.dispose();
    return out;
  };
  const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((mx, v, i) => Math.max(mx, Math.abs(v - b[i])), 0);

  it("[0, 1] is plain CFG, an interval no step's noise level is in is the conditional velocity, one in between is neither", async () => {
    const plain = await tfjs(4);
    const cond = await tfjs(1);
    expect(maxDiff(plain, cond)).toBeGreaterThan(1e-3); // guidance changes the samples at all
    expect(maxDiff(await tfjs(4, [0, 1]), plain)).toBe(0);
    // 4 Euler steps evaluate at sigma 1, 0.75, 0.5, 0.25: none is in [0.05, 0.1]
    expect(maxDiff(await tfjs(4, [0.05, 0.1]), cond)).toBeLessThan(1e-6);
    const half = await tfjs(4, [0.6, 1]);
    expect(maxDiff(half, plain)).toBeGreaterThan(1e-4);
    expect(maxDiff(half, cond)).toBeGreaterThan(1e-4);
    // the spec's setting is the default
    m.flow.guidanceInterval = [0.6, 1];
    try {
      expect(maxDiff(await tfjs(4), half)).toBe(0);
    } finally {
      delete m.flow.guidanceInterval;
    }
  });

  it("the static engine's sampler applies the same interval", async () => {
    const net = await staticFlowNetworkFor(m, dims, () => {});
    expect(net, "the static forward is available on the CPU").not.toBeNull();
    try {
      const half = await net!.sample(z, prompts, dims, { cfg: 4, steps: 4, cfgInterval: [0.6, 1] });
      expect(maxDiff(half, await tfjs(4, [0.6, 1]))).toBeLessThan(2e-3);
      const none = await net!.sample(z, prompts, dims, { cfg: 4, steps: 4, cfgInterval: [0.05, 0.1] });
      expect(maxDiff(none, await net!.sample(z, prompts, dims, { cfg: 1, steps: 4 }))).toBeLessThan(1e-5);
    } finally {
      net?.dispose();
    }
  });
});
