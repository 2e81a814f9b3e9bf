/**
 * Linear initializers beyond PyTorch's default (the ones DiT-style models use): the compiler
 * accepts "xavier_uniform", "normal(STD)", "trunc_normal(STD)" (zero biases) and refuses anything
 * else with a positioned SDC407; the runtime draws from the distributions they name.
 */
import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { initBackend } from "../../runtime/backend.ts";
import { Linear } from "../../runtime/nn/layers.ts";
import { ParamStore } from "../../runtime/nn/params.ts";
import { compileSource, expectError, lines, net, spec } from "../compiler/helpers.ts";

beforeAll(async () => {
  await initBackend("cpu", { log: () => {} });
});

const withInit = (init: string) => compileSource(lines(net(`    x = x + linear(x, 1, init: ${JSON.stringify(init)}) as proj`), spec()));

describe("linear init in a spec", () => {
  it.each([
    ["torch", "torch_linear", "torch_linear"],
    ["zeros", "zeros", "zeros"],
    ["xavier_uniform", "xavier_uniform", "zeros"],
    ["normal(0.02)", "normal:0.02", "zeros"],
    ["trunc_normal(2e-2)", "trunc_normal:0.02", "zeros"],
  ])("%s: weight %s, bias %s in the IR", (init, w, b) => {
    const r = withInit(init);
    expect(r.diagnostics.filter((d) => d.severity !== "warning")).toEqual([]);
    const p = new Map(r.ir!.parameters.map((x) => [x.name, x.init]));
    expect([p.get("proj.weight"), p.get("proj.bias")]).toEqual([w, b]);
  });
  it.each(["kaiming", "normal(-1)", "normal(0)", "normal()", "trunc_normal(x)"])("refuses %s with a positioned SDC407", (init) => {
    expectError(withInit(init), { code: "SDC407", line: 3, col: 32, msg: /init must be "torch", "zeros", "xavier_uniform", "normal\(STD\)" or "trunc_normal\(STD\)"/ });
  });
});

describe("linear init at run time", () => {
  const layer = (init: string, inF = 256, outF = 384) => {
    const store = new ParamStore(7);
    const l = new Linear(store, "l", { inFeatures: inF, outFeatures: outF, init });
    const w = l.weight.dataSync() as Float32Array;
    const b = l.bias!.dataSync() as Float32Array;
    store.dispose();
    return { w, b };
  };
  const std = (x: Float32Array) => Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length);
  it("xavier_uniform: U(-a, a) with a = sqrt(6 / (in + out)), zero bias", () => {
    const { w, b } = layer("xavier_uniform");
    const a = Math.sqrt(6 / (256 + 384));
    const max = w.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    expect(max).toBeLessThanOrEqual(a);
    expect(max).toBeGreaterThan(0.99 * a);
    expect(std(w)).toBeCloseTo(a / Math.sqrt(3), 3);
    expect(b.every((v) => v === 0)).toBe(true);
  });
  it("normal(0.02): standard deviation 0.02, zero bias", () => {
    const { w, b } = layer("normal(0.02)");
    expect(Math.abs(std(w) - 0.02) / 0.02).toBeLessThan(0.02);
    expect(b.every((v) => v === 0)).toBe(true);
  });
  it("trunc_normal(0.02): nothing beyond 2 standard deviations, the truncated normal's spread", () => {
    const { w } = layer("trunc_normal(0.02)");
    expect(w.every((v) => Math.abs(v) <= 0.04 + 1e-9)).toBe(true);
    // the standard deviation of N(0, 1) truncated to [-2, 2] is 0.8796
    expect(Math.abs(std(w) - 0.02 * 0.8796) / (0.02 * 0.8796)).toBeLessThan(0.02);
  });
  it("torch default: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias", () => {
    const { w, b } = layer("torch");
    const a = 1 / Math.sqrt(256);
    expect(w.every((v) => Math.abs(v) <= a)).toBe(true);
    expect(b.some((v) => v !== 0)).toBe(true);
    expect(tf.memory().numTensors).toBeGreaterThanOrEqual(0);
  });
});
