/**
 * The static graph's passes on the CPU: op-level gradients against finite differences, fusion
 * and the chunk-gradient merge leave every value unchanged, GEMM configuration choice, clear
 * errors (shapes, unsupported ops, the engine on a CPU backend).
 */
import { spawnSync } from "node:child_process";
import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { loadCompiled, type LoadedSpec } from "../../cli/generated.ts";
import { initBackend } from "../../runtime/backend.ts";
import { differentiate } from "../../runtime/graph/autodiff.ts";
import { evaluate } from "../../runtime/executors/interp/interp.ts";
import { fuse } from "../../runtime/graph/fuse.ts";
import { Graph, GraphError, liveNodes, rootOf, type Sym, UnsupportedOpError } from "../../runtime/graph/graph.ts";
import { chooseTile, gemmConfig, gemmKey, heuristicConfig } from "../../runtime/executors/webgpu/kernels.ts";
import { TUNED_GEMMS } from "../../runtime/executors/webgpu/gemm-table.ts";
import { buildStepGraph, stepFeeds } from "../../runtime/engines/static/step.ts";
import { liveKernelCount, type StepGraph, stepOutputs } from "../../runtime/graph/step-graph.ts";
import { T, TraceContext, withTrace } from "../../runtime/graph/trace.ts";
import * as F from "../../runtime/nn/functional.ts";
import { RmsNorm } from "../../runtime/nn/layers.ts";
import { ParamStore } from "../../runtime/nn/params.ts";
import { createEngine } from "../../runtime/engines/select.ts";
import { buildModel } from "../../runtime/train/trainer.ts";
import { LearnedPromptEncoder } from "../../runtime/text/learned.ts";
import { type FlowBatch } from "../../runtime/bundle.ts";
import { Rng } from "../../runtime/util/rng.ts";
import { finiteDifferenceError } from "./helpers.ts";

let tiny: LoadedSpec;
beforeAll(async () => {
  await initBackend("cpu", { log: () => {} });
  tiny = await loadCompiled("generated/sd3-tiny");
});

/** d(sum(w * f(params)))/d params by central differences vs the graph's gradient. */
function checkGrad(build: (g: Graph, p: Sym[]) => Sym, shapes: number[][], seed = 1): number {
  const rng = new Rng(seed);
  const g = new Graph();
  const ps = shapes.map((s, i) => g.param(`p${i}`, s));
  const y = build(g, ps);
  const w = g.constant(rng.normals(y.size), y.shape);
  const loss = g.sumTo(g.ew("mul", [y, w]), [1]);
  const { grads } = differentiate(g, loss);
  const params = new Map(ps.map((p, i) => [`p${i}`, rng.normals(p.size)]));
  return finiteDifferenceError(g, loss, grads, params);
}

describe("causal attention", () => {
  it("hides later keys: the traced graph equals tfjs, and changing keys a query must not see changes nothing", () => {
    const rng = new Rng(3);
    const [q, k, v] = [[2, 3, 8], [2, 5, 8], [2, 5, 8]].map((s) => rng.normals(s[0] * s[1] * s[2]));
    const run = (kk: Float32Array, vv: Float32Array) => F.attention(tf.tensor3d(q, [2, 3, 8]), tf.tensor3d(kk, [2, 5, 8]), tf.tensor3d(vv, [2, 5, 8]), 2, true).dataSync() as Float32Array;
    const y = run(k, v);
    // query 0 sees keys 0..2 (5 - 3 = 2 extra), query 2 sees all five: perturb keys/values 3 and 4 of batch 0
    const [k2, v2] = [Float32Array.from(k), Float32Array.from(v)];
    for (let j = 3 * 8; j < 5 * 8; j++) [k2[j], v2[j]] = [k2[j] + 5, v2[j] - 5];
    const y2 = run(k2, v2);
    for (let i = 0; i < 8; i++) expect(y2[i]).toBeCloseTo(y[i], 6); // batch 0, query 0: unchanged
    expect(Math.abs(y2[2 * 8] - y[2 * 8])).toBeGreaterThan(1e-3); // batch 0, query 2 sees them
    const g = new Graph();
    const [sq, sk, sv] = [g.input("q", [2, 3, 8]), g.input("k", [2, 5, 8]), g.input("v", [2, 5, 8])];
    const out = T.attention(sq, sk, sv, 2, true);
    const vals = evaluate(g, new Map([["q", q], ["k", k], ["v", v]]), new Map());
    for (let i = 0; i < y.length; i++) expect(vals[out.id][i]).toBeCloseTo(y[i], 5);
  });
});

describe("op gradients against finite differences", () => {
  it.each<[string, (g: Graph, p: Sym[]) => Sym, number[][]]>([
    ["linear (gemm + bias)", (g, [x, w, b]) => g.linear(x, w, b), [[3, 4], [5, 4], [5]]],
    ["strided batched gemm (attention layout)", (g, [q, k]) => g.gemm(q, k, [2, 2, 3, 3], { batch: [2, 2], m: 3, n: 3, k: 2, alpha: 0.7, a: [12, 2, 4, 1], b: [12, 2, 1, 4], c: [18, 9, 3, 1] }), [[2, 3, 4], [2, 3, 4]]],
    ["layer_norm", (g, [x]) => g.layerNorm(x, 1e-5), [[3, 6]]],
    ["softmax", (g, [x]) => g.softmax(x), [[2, 5]]],
    ["broadcast mul + add (adaLN modulate)", (g, [x, s, b]) => g.ew("add", [g.ew("mul", [x, g.ew("add", [s, 1])]), b]), [[2, 3, 4], [2, 1, 4], [2, 1, 4]]],
    ["silu, gelu (tanh), sigmoid, tanh, square", (g, [x]) => g.ew("square", [g.ew("tanh", [g.ew("sigmoid", [g.ew("gelu_tanh", [g.ew("silu", [x])])])])]), [[7]]],
    ["gelu (erf), div, sub, neg", (g, [x, y]) => g.ew("neg", [g.ew("sub", [g.ew("div", [g.ew("gelu_erf", [x]), g.ew("add", [g.ew("square", [y]), 1])]), y])]), [[6], [6]]],
    ["exp, log, sqrt, rsqrt, abs (the elementwise primitives)", (g, [x]) => g.ew("abs", [g.ew("mul", [g.ew("log", [g.ew("add", [g.ew("square", [x]), 0.5])]), g.ew("add", [g.ew("exp", [g.ew("mul", [x, 0.3])]), g.ew("mul", [g.ew("sqrt", [g.ew("add", [g.ew("square", [x]), 1])]), g.ew("rsqrt", [g.ew("add", [g.ew("square", [x]), 2])])])])])]), [[9]]],
    ["softmax over the last axis (the primitive)", (g, [x]) => T.softmax(x), [[3, 7]]],
    ["causal attention (queries see keys j <= i + S' - S)", (g, [q, k, v]) => T.attention(q, k, v, 2, true), [[2, 3, 4], [2, 5, 4], [2, 5, 4]]],
    ["chunk + concat + permute", (g, [x]) => g.permute(g.concat([g.slice(x, 1, 3, 3), g.slice(x, 1, 0, 2)], 1), [1, 0]), [[2, 6]]],
    ["sum_to (mean over an axis)", (g, [x]) => g.sumTo(x, [1, 4], 1 / 3), [[3, 4]]],
    ["rms_norm per head (composed), head weights", (g, [x]) => withTrace(new TraceContext(g, new Map()), () => T.rmsNorm(x, 1e-6, 2)), [[3, 8]]],
  ])("%s", (_, build, shapes) => {
    expect(checkGrad(build, shapes)).toBeLessThan(2e-3);
  });
});

function tinyStep(B = 2): { sg: StepGraph; feeds: Map<string, Float32Array>; params: Map<string, Float32Array> } {
  const m = buildModel(tiny.spec as never, tiny.ir, 3);
  const sg = buildStepGraph(m, B, [32, 32, 1]);
  const rng = new Rng(9);
  const b: FlowBatch = { x0: rng.normals(B * 1024), eps: rng.normals(B * 1024), sigma: Float32Array.from({ length: B }, (_, i) => 0.2 + 0.5 * i / B), prompts: ["7", "three"].slice(0, B) };
  const feeds = stepFeeds(sg, m.flow, b, { ids: (m.text as LearnedPromptEncoder).tokenizer.encodeBatch(b.prompts) });
  const params = new Map([...m.store.vars].map(([n, v]) => [n, v.dataSync() as Float32Array]));
  m.store.dispose();
  return { sg, feeds, params };
}

describe("traced layers against eager tfjs", () => {
  it("RmsNorm with heads and weights (qk_norm): values and gradients", () => {
    const store = new ParamStore(4);
    const layer = new RmsNorm(store, "n", { dim: 8, heads: 2, eps: 1e-6 });
    const wv = store.vars.get("n.weight")!;
    wv.assign(tf.tensor1d([0.5, 1, 1.5, 2]));
    const rng = new Rng(2);
    const xd = rng.normals(24);
    const cd = rng.normals(24);
    // eager
    const x = tf.tensor2d(xd, [3, 8]);
    const f = (xx: tf.Tensor, ww: tf.Tensor) => {
      const ys = tf.reshape(F.rmsNorm(xx, 1e-6, 2), [3, 2, 4]);
      return tf.sum(tf.mul(tf.reshape(tf.mul(ys, ww), [3, 8]), tf.tensor2d(cd, [3, 8])));
    };
    const [gx, gw] = tf.grads(f)([x, wv]);
    // traced
    const g = new Graph();
    const xs = g.input("x", [3, 8]);
    const { y, ctxp } = withTrace(new TraceContext(g, new Map([[wv, { name: "n.weight", shape: [4] }]])), () => {
      const xp = g.param("x", [3, 8]);
      return { y: layer.apply(xp as never) as unknown as Sym, ctxp: xp };
    });
    const loss = g.sumTo(g.ew("mul", [y, g.constant(cd, [3, 8])]), [1]);
    const { grads } = differentiate(g, loss);
    const vals = evaluate(g, new Map([["x", xd]]), new Map([["x", xd], ["n.weight", wv.dataSync() as Float32Array]]));
    expect(vals[loss.id][0]).toBeCloseTo(f(x, wv).dataSync()[0], 4);
    const close = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).forEach((v, i) => expect(Math.abs(v - b[i])).toBeLessThan(1e-4));
    close(vals[grads.get("x")!.id], gx.dataSync());
    close(vals[grads.get("n.weight")!.id], gw.dataSync());
    expect(xs.shape).toEqual([3, 8]);
    expect(ctxp.shape).toEqual([3, 8]);
    tf.dispose([x, gx, gw]);
    store.dispose();
  });
});

describe("graph passes keep every value", () => {
  it("fusion: loss and gradients unchanged, fewer kernels", () => {
    const { sg, feeds, params } = tinyStep();
    const before = evaluate(sg.graph, feeds, params);
    const n0 = liveKernelCount(sg);
    const { fused, slices } = fuse(sg);
    const after = evaluate(sg.graph, feeds, params);
    expect(fused).toBeGreaterThan(10);
    expect(slices).toBeGreaterThan(10); // chunked adaLN vectors read in place
    expect(liveKernelCount(sg)).toBeLessThan(n0 - fused);
    expect(after[sg.loss.id][0]).toBeCloseTo(before[sg.loss.id][0], 6);
    for (const s of sg.grads.values()) {
      const a = after[s.id];
      const b = before[s.id];
      for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThan(1e-6 + 1e-5 * Math.abs(b[i]));
    }
  });

  it("gives every parameter a gradient node of its own, even at batch 1", () => {
    const { sg } = tinyStep(1);
    const roots = [...sg.grads.values()].map((s) => rootOf(sg.graph, s.id)).filter((r) => sg.graph.node(r).op.kind !== "const");
    expect(new Set(roots).size).toBe(roots.length);
    expect(roots.every((r) => !["input", "param"].includes(sg.graph.node(r).op.kind))).toBe(true);
  });

  it("chunk gradients become one concat (a lone piece stays a pad)", () => {
    const { sg } = tinyStep();
    const live = liveNodes(sg.graph, stepOutputs(sg));
    const kinds = [...live].map((id) => sg.graph.node(id).op.kind);
    // the last (pre-only) block reads one side of split(o, [N, T]): its gradient is one padded piece
    expect(kinds.filter((k) => k === "pad").length).toBe(1);
    expect(kinds.filter((k) => k === "concat").length).toBeGreaterThan(3);
  });
});

describe("GEMM configuration", () => {
  const L = (m: number, n: number, k: number, batch: [number, number] = [1, 1]) => ({ batch, m, n, k, alpha: 1, a: [m * k, 0, k, 1] as [number, number, number, number], b: [0, 0, 1, k] as [number, number, number, number], c: [m * n, 0, n, 1] as [number, number, number, number] });
  it("fills the GPU without padding waste", () => {
    expect(chooseTile(L(1024, 1536, 384)).name).toBe("64"); // 384 workgroups
    expect(chooseTile(L(1024, 384, 384)).name).toBe("32"); // 64 would launch 96
    expect(chooseTile(L(24, 24, 64, [64, 6])).name).toBe("32"); // attention: small tiles
    expect(chooseTile(L(13120, 1536, 384)).name).toBe("64"); // the 128 tile only when pinned
    expect(chooseTile(L(512, 512, 64), "128").name).toBe("128");
  });
  it("the untuned fallback agrees with the H200 tuning on most of its shapes", () => {
    let same = 0;
    const keys = Object.keys(TUNED_GEMMS);
    for (const key of keys) {
      const [b, mnk, lay] = key.split(":");
      const [m, n, k] = mnk.split("x").map(Number);
      const layout = { batch: [Number(b), 1] as [number, number], m, n, k, alpha: 1, a: [m * k, 0, lay[0] === "k" ? k : 1, lay[0] === "k" ? 1 : m] as [number, number, number, number], b: [0, 0, lay[1] === "n" ? n : 1, lay[1] === "n" ? 1 : k] as [number, number, number, number], c: [m * n, 0, n, 1] as [number, number, number, number] };
      expect(gemmKey(layout)).toBe(key);
      const h = heuristicConfig(layout);
      if (h.split === TUNED_GEMMS[key].split) same++;
    }
    expect(same / keys.length).toBeGreaterThan(0.8);
    expect(heuristicConfig(L(1024, 384, 1536))).toEqual({ tile: "64", split: 8 }); // deep K, few workgroups
    expect(heuristicConfig(L(64, 2304, 384))).toEqual({ tile: "32", split: 8 });
    expect(heuristicConfig(L(24, 24, 64, [64, 6])).split).toBe(1);
  });

  it("keys shapes by batch, sizes and operand layout, and reads the tuned table", () => {
    expect(gemmKey(L(1024, 384, 384))).toBe("1:1024x384x384:kk");
    expect(gemmConfig(L(1024, 384, 384), { gemmTable: { "1:1024x384x384:kk": { tile: "64", split: 4 } } })).toEqual({ tile: "64", split: 4 });
    expect(gemmConfig(L(1024, 384, 384), { gemmTile: "32x64", gemmSplit: 2 })).toEqual({ tile: "32x64", split: 2 });
    expect(() => chooseTile(L(8, 8, 8), "17")).toThrow(/unknown GEMM tile "17"/);
  });
});

describe("errors", () => {
  it("names both shapes on a broadcast mismatch", () => {
    const g = new Graph();
    expect(() => g.ew("add", [g.input("a", [2, 3]), g.input("b", [4])])).toThrow(/cannot broadcast \[2,3\] with \[4\]/);
  });
  it("names the op and the engine that has it in UnsupportedOpError", () => {
    const e = new UnsupportedOpError("frobnicate");
    expect(e.message).toBe("the static training engine has no frobnicate yet; train this spec with --engine tfjs");
    const g = new Graph();
    const x = g.input("x", [2, 8]);
    withTrace(new TraceContext(g, new Map()), () => expect(T.add(x, 1).shape).toEqual([2, 8]));
  });
  it("refuses a batch of another size", () => {
    const { sg } = tinyStep(2);
    const b: FlowBatch = { x0: new Float32Array(3 * 1024), eps: new Float32Array(3 * 1024), sigma: new Float32Array(3), prompts: ["1", "2", "3"] };
    expect(() => stepFeeds(sg, tiny.ir.flow as never, b, { ids: [] })).toThrow(GraphError);
  });
  it("gives the static engine on a CPU backend, on the native executor (static and auto)", async () => {
    const m = buildModel(tiny.spec as never, tiny.ir, 0);
    const opts = { lr: 1e-3, clip: 1, ema: 0, kind: "adam" as const, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, warmup: 0 };
    for (const which of ["static", "auto"] as const) {
      const e = await createEngine(which, m, opts, 2, [32, 32, 1], () => {});
      expect(e.name).toBe("static");
      expect(e.detail).toMatch(/native CPU kernels/);
      e.dispose();
    }
    m.store.dispose();
    expect(tf.getBackend()).toBe("cpu");
  });
  it("sdc plan measures the static step before anything runs (no GPU)", () => {
    const r = spawnSync(process.execPath, ["bin/sdc.mjs", "plan", "generated/sd3-tiny", "--batch-size", "8", "--json"], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    const p = JSON.parse(r.stdout);
    expect(p).toMatchObject({ spec: "sd3-tiny", batch: 8, params: tiny.ir.stats.params });
    expect(p.dispatches).toBeGreaterThan(100);
    expect(p.dispatches).toBeLessThan(p.kernelsBeforeFusion + 200);
    expect(p.gemmGflop).toBeGreaterThan(0);
    expect(p.activationMiB).toBeLessThan(p.activationMiBNoReuse);
    const bad = spawnSync(process.execPath, ["bin/sdc.mjs", "plan", "generated/judge"], { encoding: "utf8" });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/is a classifier/);
  });
});
