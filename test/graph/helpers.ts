/**
 * Shared checks of the graph tests: the worst relative error of two arrays, a traced graph's
 * gradients against central differences of its own loss, two training runs (tfjs and the static engine) agreeing line by line, tests run at each
 * ISA level of the native addon, a batch for the tiny spec's step tests, and two native steps of it.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect } from "vitest";
import { evaluate } from "../../runtime/executors/interp/interp.ts";
import type { FlowBatch } from "../../runtime/bundle.ts";
import type { Graph, Sym } from "../../runtime/graph/graph.ts";
import { Rng } from "../../runtime/util/rng.ts";
import { type LowerOptions, type NativeAddon, nativeAddon, NativeStep } from "../../runtime/executors/native/native.ts";
import type { LoadedSpec } from "../../cli/generated.ts";
import { buildStepGraph, stepFeeds } from "../../runtime/engines/static/step.ts";
import { fuse } from "../../runtime/graph/fuse.ts";
import type { LearnedPromptEncoder } from "../../runtime/text/learned.ts";
import { buildModel } from "../../runtime/train/trainer.ts";

/** The worst |a - b| relative to the largest |b| (at least 1e-6); the lengths must agree. */
export function worstRel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let scale = 1e-6;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  let w = 0;
  for (let i = 0; i < b.length; i++) w = Math.max(w, Math.abs(a[i] - b[i]) / scale);
  return w;
}

/**
 * The worst error of the graph's gradient of `loss` against central differences (step 1e-2),
 * relative to max(1, |gradient|), over `coords(n)` of each parameter's n entries (default: all).
 * The parameter arrays are perturbed in place and restored.
 */
export function finiteDifferenceError(g: Graph, loss: Sym, grads: Map<string, Sym>, params: Map<string, Float32Array>, feeds = new Map<string, Float32Array>(), coords?: (n: number) => number[]): number {
  const vals = evaluate(g, feeds, params);
  let worst = 0;
  for (const [name, x] of params) {
    const an = vals[grads.get(name)!.id];
    for (const i of coords ? coords(x.length) : x.keys()) {
      const keep = x[i];
      const h = 1e-2;
      x[i] = keep + h;
      const up = evaluate(g, feeds, params, loss.id + 1)[loss.id][0];
      x[i] = keep - h;
      const dn = evaluate(g, feeds, params, loss.id + 1)[loss.id][0];
      x[i] = keep;
      worst = Math.max(worst, Math.abs((up - dn) / (2 * h) - an[i]) / Math.max(1, Math.abs(an[i])));
    }
  }
  return worst;
}

export type MetricLine = { loss?: number; grad_norm?: number; val_loss?: number };

/** The lines of a run's metrics.jsonl. */
export function readMetrics(run: string): MetricLine[] {
  return readFileSync(join(run, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
}

/** The static engine's metrics equal the tfjs engine's, line by line, within 1e-4 (relative above 1); at least 3 values compared. */
export function expectSameMetrics(metrics: { tfjs: MetricLine[]; static: MetricLine[] }): void {
  expect(metrics.static.length).toBe(metrics.tfjs.length);
  let compared = 0;
  metrics.tfjs.forEach((m, i) => {
    for (const k of ["loss", "grad_norm", "val_loss"] as const) {
      if (m[k] === undefined) continue;
      compared++;
      expect(Math.abs(metrics.static[i][k]! - m[k]!), `${k} at line ${i}`).toBeLessThan(1e-4 * Math.max(1, Math.abs(m[k]!)));
    }
  });
  expect(compared).toBeGreaterThanOrEqual(3);
}

/** Run `body`'s tests at each ISA level this CPU has (and restore the default after). */
export function atEachIsa(body: (level: string) => void): void {
  const levels = nativeAddon().addon?.isas() ?? [];
  describe.each(levels)("at ISA level %s", (level) => {
    let before = "";
    beforeAll(() => {
      const addon = nativeAddon().addon!;
      before = addon.isa();
      addon.isa(level);
    });
    afterAll(() => {
      nativeAddon().addon!.isa(before);
    });
    body(level);
  });
}

const PROMPTS = ["7", "seven", "", "3", "1", "one", "9", ""];

/** A flow-matching batch of `n` 32x32x1 images for the tiny spec's step tests: uniform images, normal noise, sigma in [0.05, 0.95], prompts in turn. */
export function batchOf(n: number, seed: number): FlowBatch {
  const rng = new Rng(seed);
  const per = 32 * 32;
  const x0 = new Float32Array(n * per).map(() => rng.uniform() * 2 - 1);
  return { x0, eps: rng.normals(n * per), sigma: Float32Array.from({ length: n }, () => 0.05 + 0.9 * rng.uniform()), prompts: Array.from({ length: n }, (_, i) => PROMPTS[i % PROMPTS.length]) };
}

/**
 * Two native training steps of the tiny spec (batch 8, on the threads and ISA level set now): the
 * losses, every float of the state after (parameters, Adam moments, EMA, gradients) and the kernels a step.
 */
export async function tinyTwoSteps(tiny: LoadedSpec, precision: "fp32" | "bf16" = "fp32", lowering?: LowerOptions, addon?: NativeAddon): Promise<{ losses: number[]; state: Uint8Array[]; kernels: number }> {
  const m = buildModel(tiny.spec, tiny.ir, 3);
  const B = 8;
  const sg = buildStepGraph(m, B, [32, 32, 1], undefined, precision);
  const enc = m.text as LearnedPromptEncoder;
  const params = new Map<string, Float32Array>();
  for (const [name, v] of m.store.vars) params.set(name, Float32Array.from(v.dataSync() as Float32Array));
  fuse(sg);
  const ns = new NativeStep(sg, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, decoupled: true, clip: 1, ema: 0.9, emaWarmup: false }, lowering, addon);
  ns.setParams(params);
  const losses: number[] = [];
  for (const seed of [5, 6]) {
    const b = batchOf(B, seed);
    const feeds = stepFeeds(sg, m.flow, b, { ids: enc.tokenizer.encodeBatch(b.prompts) });
    losses.push((await ns.step(feeds)).loss);
  }
  const state: Uint8Array[] = [];
  for (const which of ["params", "m", "v", "ema", "g"] as const) for (const x of (await ns.readFlat(which))!.values()) state.push(new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
  m.store.dispose();
  return { losses, state, kernels: ns.kernels };
}

/** How many of two lists of buffers differ, byte for byte (the lists as long as each other). */
export function differingBuffers(a: readonly Uint8Array[], b: readonly Uint8Array[]): number {
  expect(b.length).toBe(a.length);
  let differ = 0;
  for (let i = 0; i < a.length; i++) if (Buffer.compare(Buffer.from(a[i]), Buffer.from(b[i])) !== 0) differ++;
  return differ;
}
