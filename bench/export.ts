/**
 * bench/export: the exported ONNX model in onnxruntime (CPU) against sdc's own forward on the
 * CPU (the native executor of the same graph, fused), side by side in one run: one velocity
 * evaluation at --batch, for a compiled package (its initial weights; the time does not depend
 * on their values). Prints ms per call (median of --runs after a warm-up) and the ratio, and the
 * largest difference of the outputs.
 *   npx tsx bench/export.ts [--generated generated/sd3-cpu] [--batch 32] [--runs 10]
 */
import { benchArgs } from "./args.ts";
import * as ort from "onnxruntime-node";
import { loadCompiled } from "../cli/generated.ts";
import { initBackend } from "../runtime/backend.ts";
import { buildVelocityGraph, frozenContext, stepFeeds, textInputs } from "../runtime/engines/static/step.ts";
import { compileGraph, paramArena } from "../runtime/executors/native/native.ts";
import { exportOnnx } from "../runtime/export/model.ts";
import { fuseGraph } from "../runtime/graph/fuse.ts";
import { buildModel } from "../runtime/train/trainer.ts";
import { Rng } from "../runtime/util/rng.ts";

const { values } = benchArgs(import.meta.url, { options: { generated: { type: "string", default: "generated/sd3-cpu" }, batch: { type: "string", default: "32" }, runs: { type: "string", default: "10" } } });
const batch = Number(values.batch);
const runs = Number(values.runs);
await initBackend("cpu", { log: () => {} });
const loaded = await loadCompiled(values.generated!);
if (loaded.spec.task !== "diffusion") throw new Error("a diffusion spec");
const m = buildModel(loaded.spec, loaded.ir, 0);
const dims: [number, number, number] = [loaded.ir.data.height, loaded.ir.data.width, loaded.ir.data.channels];
const per = dims[0] * dims[1] * dims[2];
const rng = new Rng(1);
const prompts = Array.from({ length: batch }, (_, i) => (i % 2 ? "seven" : String(i % 10)));
const text = await textInputs(m, prompts);
const vg = buildVelocityGraph(m, batch, dims, frozenContext(m));
const feeds = stepFeeds(vg, m.flow, { x0: rng.normals(batch * per), eps: rng.normals(batch * per), sigma: new Float32Array(batch).fill(0.5), prompts }, text);
const values_ = new Map<string, Float32Array>();
for (const [name, v] of m.store.vars) values_.set(name, (await v.data()) as Float32Array);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
async function time(f: () => Promise<unknown> | unknown): Promise<number> {
  await f();
  const ts: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await f();
    ts.push(performance.now() - t0);
  }
  return median(ts);
}

fuseGraph(vg.graph, [vg.v.id]);
const native = compileGraph(vg, paramArena(values_));
const session = await ort.InferenceSession.create(await exportOnnx(m, { step: 0, weights: "raw", producerVersion: "bench" }));
const byName = new Map(loaded.ir.network.inputs.map((i) => [i.source, i.name]));
const ortFeeds: Record<string, ort.Tensor> = { [byName.get("image")!]: new ort.Tensor("float32", feeds.get("xt")!, [batch, ...dims]), [byName.get("timestep")!]: new ort.Tensor("float32", feeds.get("t")!, [batch]) };
if (session.inputNames.includes("ids")) ortFeeds.ids = new ort.Tensor("int32", text.ids!, [batch, text.ids!.length / batch]);
if (text.labels) ortFeeds[byName.get("label")!] = new ort.Tensor("int32", text.labels, [batch]);
const out = loaded.ir.network.output.name;

let worst = 0;
const a = native.run(feeds);
const b = (await session.run(ortFeeds))[out].data as Float32Array;
for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
const tNative = await time(() => native.run(feeds));
const tOrt = await time(() => session.run(ortFeeds));
console.log(`${loaded.ir.spec.name}, ${m.store.numParams.toLocaleString("en-US")} parameters, batch ${batch}, median of ${runs}: sdc native ${tNative.toFixed(1)} ms, onnxruntime ${tOrt.toFixed(1)} ms (onnxruntime / sdc ${(tOrt / tNative).toFixed(2)}); max |difference| ${worst.toExponential(2)}`);
await session.release();
m.store.dispose();
