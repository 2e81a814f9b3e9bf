/**
 * The static training step (runtime/graph) against tfjs autodiff, on the tiny variant of
 * specs/sd3.mdl: the CPU interpreter's loss and every parameter gradient match tf.variableGrads
 * of flowLoss for the same batch.
 */
import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { loadCompiled, type LoadedSpec } from "../../cli/generated.ts";
import { initBackend } from "../../runtime/backend.ts";
import { evaluate } from "../../runtime/executors/interp/interp.ts";
import { kernelCount } from "../../runtime/graph/graph.ts";
import { buildStepGraph, stepFeeds } from "../../runtime/engines/static/step.ts";
import { buildModel, flowLoss } from "../../runtime/train/trainer.ts";
import { LearnedPromptEncoder } from "../../runtime/text/learned.ts";
import { batchOf } from "./helpers.ts";

let tiny: LoadedSpec;
beforeAll(async () => {
  await initBackend("cpu", { log: () => {} });
  tiny = await loadCompiled("generated/sd3-tiny");
});

describe("static step graph (CPU interpreter) vs tfjs autodiff", () => {
  it("gives the same loss and gradients on the tiny spec", async () => {
    const m = buildModel(tiny.spec, tiny.ir, 3);
    const B = 3;
    const b = batchOf(B, 5);
    const sg = buildStepGraph(m, B, [32, 32, 1]);
    expect(sg.text).toBe("learned");
    expect(kernelCount(sg.graph)).toBeGreaterThan(100);
    const enc = m.text as LearnedPromptEncoder;
    const params = new Map<string, Float32Array>();
    for (const [name, v] of m.store.vars) params.set(name, v.dataSync() as Float32Array);
    const feeds = stepFeeds(sg, m.flow, b, { ids: enc.tokenizer.encodeBatch(b.prompts) });
    const vals = evaluate(sg.graph, feeds, params);

    const vars = [...m.store.vars.values()];
    const { value, grads } = tf.variableGrads(() => flowLoss(m, b, [B, 32, 32, 1]), vars);
    const want = value.dataSync()[0];
    expect(vals[sg.loss.id][0]).toBeCloseTo(want, 5);
    let worst = 0;
    let worstName = "";
    for (const [name, v] of m.store.vars) {
      const g = grads[v.name].dataSync();
      const mine = vals[sg.grads.get(name)!.id];
      let scale = 1e-6;
      for (const x of g) scale = Math.max(scale, Math.abs(x));
      for (let i = 0; i < g.length; i++) {
        const e = Math.abs(mine[i] - g[i]) / scale;
        if (e > worst) [worst, worstName] = [e, name];
      }
    }
    expect(worst, `worst relative gradient error in ${worstName}`).toBeLessThan(1e-4);
    tf.dispose([value, ...Object.values(grads)]);
    m.store.dispose();
  });
});
