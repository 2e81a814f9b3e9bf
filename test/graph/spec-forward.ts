/**
 * A small spec's network run three ways on the same weights and inputs: compiled into a temp
 * dir, built on a seeded ParamStore, its forward on tfjs, and its traced velocity graph on the
 * CPU interpreter and the native CPU executor. For specs with an external text encoder (the
 * network's inputs: image, timestep, context, pooled).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { expect } from "vitest";
import { runCompile } from "../../cli/commands/compile.ts";
import { loadCompiled } from "../../cli/generated.ts";
import { buildVelocityGraph } from "../../runtime/engines/static/step.ts";
import { evaluate } from "../../runtime/executors/interp/interp.ts";
import { compileGraph, paramArena } from "../../runtime/executors/native/native.ts";
import { ParamStore } from "../../runtime/nn/params.ts";
import { Rng } from "../../runtime/util/rng.ts";

const sink = { write: () => true, isTTY: false } as unknown as NodeJS.WriteStream;

export interface SpecForward {
  store: ParamStore;
  inputs: { x: Float32Array; t: Float32Array; context: Float32Array; pooled: Float32Array };
  shape: number[];
  tfjs: Float32Array;
  graph: Float32Array;
  native: Float32Array;
}

/**
 * Compile `source` (one spec whose text encoder is `external(tokens: T, width: W, pooled: P)`),
 * then run its network at batch `batch` on random inputs (seeded) on the three engines.
 * `setup` may change the parameters before the run.
 */
export async function specForward(source: string, text: { tokens: number; width: number; pooled: number }, batch = 2, setup?: (store: ParamStore) => void): Promise<SpecForward> {
  const dir = mkdtempSync(join(tmpdir(), "sdc-spec-forward-"));
  try {
    writeFileSync(join(dir, "main.mdl"), source);
    expect(runCompile(join(dir, "main.mdl"), { outDir: dir, quiet: true }, sink, sink)).toBe(0);
    const loaded = await loadCompiled(join(dir, "main"));
    if (loaded.spec.task !== "diffusion") throw new Error("a diffusion spec");
    const store = new ParamStore(3);
    const network = loaded.spec.createNetwork(store);
    setup?.(store);
    const { height: h, width: w, channels: c } = loaded.ir.data;
    const rng = new Rng(5);
    const inputs = {
      x: rng.normals(batch * h * w * c),
      t: Float32Array.from({ length: batch }, (_, i) => (i + 0.5) / batch),
      context: rng.normals(batch * text.tokens * text.width),
      pooled: rng.normals(batch * text.pooled),
    };
    const y = tf.tidy(() => network.forward(tf.tensor4d(inputs.x, [batch, h, w, c]), tf.tensor1d(inputs.t), tf.tensor3d(inputs.context, [batch, text.tokens, text.width]), tf.tensor2d(inputs.pooled, [batch, text.pooled])));
    const tfjs = y.dataSync() as Float32Array;
    const shape = [...y.shape];
    y.dispose();
    const frozen = { words: [], encode: () => { throw new Error("unused"); } };
    const vg = buildVelocityGraph({ store, network, text: frozen, ir: loaded.ir }, batch, [h, w, c], text);
    const params = new Map([...store.vars].map(([name, v]) => [name, v.dataSync() as Float32Array]));
    const feeds = new Map([["xt", inputs.x], ["t", inputs.t], ["context", inputs.context], ["pooled", inputs.pooled]]);
    const graph = evaluate(vg.graph, feeds, params, vg.v.id + 1)[vg.v.id];
    const native = compileGraph({ graph: vg.graph, v: vg.v, batch }, paramArena(params)).run(feeds);
    return { store, inputs, shape, tfjs, graph, native };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}
