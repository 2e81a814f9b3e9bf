/**
 * `sdc export --onnx`: every shipped architecture's tiny variant (its initial weights plus noise:
 * the adaLN-zero projections start at zero, which alone would make every output 0), lowered from the static forward
 * graph and run by onnxruntime, matches sdc's own forward (the graph's reference interpreter)
 * within 1e-4, at batch sizes neither trace used (4 and 1: the batch axis is dynamic), with the learned
 * text encoder inside the model (token ids in).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCompile } from "../../cli/commands/compile.ts";
import { loadCompiled } from "../../cli/generated.ts";
import { initBackend } from "../../runtime/backend.ts";
import { exportOnnx } from "../../runtime/export/model.ts";
import { LOCKSTEP_BATCHES } from "../../runtime/export/onnx.ts";
import { evaluate } from "../../runtime/executors/interp/interp.ts";
import { buildVelocityGraph, frozenContext, stepFeeds, textInputs } from "../../runtime/engines/static/step.ts";
import { buildModel } from "../../runtime/train/trainer.ts";
import { Rng } from "../../runtime/util/rng.ts";

const tmp = mkdtempSync(join(tmpdir(), "sdc-onnx-"));
const sink = { write: () => true, isTTY: false } as unknown as NodeJS.WriteStream;
beforeAll(async () => {
  await initBackend("cpu", { log: () => {} });
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const ARCHS = ["sd3", "dit", "mmditx", "flux", "unet", "sd3-latent", "hdit"];
const BATCH = 4;

describe.each(ARCHS)("%s tiny as ONNX", (spec) => {
  it("runs in onnxruntime with the same velocity as sdc's forward within 1e-4, at a batch size it was not traced at", async () => {
    expect(runCompile(`specs/${spec}.mdl`, { outDir: tmp, quiet: true, variant: "tiny" }, sink, sink)).toBe(0);
    const loaded = await loadCompiled(join(tmp, `${spec}-tiny`));
    if (loaded.spec.task !== "diffusion") throw new Error("a diffusion spec");
    const m = buildModel(loaded.spec, loaded.ir, 0);
    try {
      const rng = new Rng(7);
      const values = new Map<string, Float32Array>();
      for (const [name, v] of m.store.vars) {
        const init = (await v.data()) as Float32Array;
        values.set(name, rng.normals(v.size).map((x, i) => init[i] + 0.05 * x));
      }
      m.store.load(new Map([...values].map(([name, data]) => [name, { shape: [...m.store.vars.get(name)!.shape], data }])));
      const bytes = await exportOnnx(m, { step: 0, weights: "raw", producerVersion: "test" });
      expect(LOCKSTEP_BATCHES).not.toContain(BATCH);

      const dims: [number, number, number] = [loaded.ir.data.height, loaded.ir.data.width, loaded.ir.data.channels];
      const per = dims[0] * dims[1] * dims[2];
      const prompts = loaded.ir.data.classes ? ["7", "seven", "", "3"] : ["7", "seven", "", "a three"];
      const batch = { x0: rng.normals(BATCH * per), eps: rng.normals(BATCH * per), sigma: Float32Array.from([0.1, 0.5, 0.8, 0.95]), prompts };
      const text = await textInputs(m, prompts);
      const vg = buildVelocityGraph(m, BATCH, dims, frozenContext(m));
      const feeds = stepFeeds(vg, m.flow, batch, text);
      const want = evaluate(vg.graph, feeds, values, vg.v.id + 1)[vg.v.id];

      const session = await ort.InferenceSession.create(bytes);
      const byName = new Map(loaded.ir.network.inputs.map((i) => [i.source, i.name]));
      const ortFeeds: Record<string, ort.Tensor> = {
        [byName.get("image")!]: new ort.Tensor("float32", feeds.get("xt")!, [BATCH, ...dims]),
        [byName.get("timestep")!]: new ort.Tensor("float32", feeds.get("t")!, [BATCH]),
      };
      if (text.ids && session.inputNames.includes("ids")) ortFeeds.ids = new ort.Tensor("int32", text.ids, [BATCH, text.ids.length / BATCH]);
      if (text.labels) ortFeeds[byName.get("label")!] = new ort.Tensor("int32", text.labels, [BATCH]);
      expect([...session.inputNames].sort()).toEqual(Object.keys(ortFeeds).sort());
      expect(session.outputNames).toEqual([loaded.ir.network.output.name]);
      const out = (await session.run(ortFeeds))[loaded.ir.network.output.name];
      expect(out.dims).toEqual([BATCH, ...dims]);
      const got = out.data as Float32Array;
      let worst = 0;
      let scale = 0;
      for (let i = 0; i < want.length; i++) {
        worst = Math.max(worst, Math.abs(got[i] - want[i]));
        scale = Math.max(scale, Math.abs(want[i]));
      }
      console.log(`${spec}-tiny: ${bytes.length} bytes of ONNX, inputs ${session.inputNames.join(", ")}; max |onnxruntime - sdc| ${worst.toExponential(2)} (max |v| ${scale.toFixed(3)})`);
      expect(scale, "the velocity is not trivially zero").toBeGreaterThan(0.1);
      expect(worst).toBeLessThan(1e-4);
      // batch 1: the first sample alone gives the first row
      const one: Record<string, ort.Tensor> = {};
      for (const [name, t] of Object.entries(ortFeeds)) {
        const rest = t.dims.slice(1).reduce((a, b) => a * b, 1);
        one[name] = new ort.Tensor(t.type as "float32" | "int32", (t.data as Float32Array | Int32Array).slice(0, rest), [1, ...t.dims.slice(1)]);
      }
      const first = (await session.run(one))[loaded.ir.network.output.name].data as Float32Array;
      let worst1 = 0;
      for (let i = 0; i < per; i++) worst1 = Math.max(worst1, Math.abs(first[i] - want[i]));
      expect(worst1).toBeLessThan(1e-4);
      await session.release();
    } finally {
      m.store.dispose();
    }
  });
});
