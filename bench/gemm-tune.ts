/**
 * bench/gemm-tune: time every GEMM shape of a training step under each tiling and split-K
 * factor on this GPU (timestamp queries), and print the fastest configuration per shape as a
 * table for runtime/executors/webgpu/gemm-table.ts (or SDC_GEMM_TABLE=file.json). Also prints the step's
 * total GEMM time under the heuristic choice and under the tuned table.
 *
 *   npx tsx bench/gemm-tune.ts --generated generated/sd3-seed --batch 64 --context-tokens 8,205 --out table.json
 */
import { writeFileSync } from "node:fs";
import { benchArgs } from "./args.ts";
import * as tf from "@tensorflow/tfjs";
import { loadCompiled } from "../cli/generated.ts";
import { initBackend, shutdownBackend } from "../runtime/backend.ts";
import { fuse } from "../runtime/graph/fuse.ts";
import { type GemmLayout, Graph, liveNodes } from "../runtime/graph/graph.ts";
import { type GemmConfig, GEMM_TILES, type Kernel, SCRATCH, gemmConfig, gemmKey, kernelsFor } from "../runtime/executors/webgpu/kernels.ts";
import { buildStepGraph } from "../runtime/engines/static/step.ts";
import { stepOutputs } from "../runtime/graph/step-graph.ts";
import { buildTraceModel } from "../runtime/train/trainer.ts";

/* eslint-disable @typescript-eslint/no-explicit-any */
const { values } = benchArgs(import.meta.url, {
  options: {
    generated: { type: "string", multiple: true, default: ["generated/sd3-seed"] },
    batch: { type: "string", default: "64" },
    "context-tokens": { type: "string", default: "8" },
    /** timed passes per configuration (the median is kept) */
    reps: { type: "string", default: "3" },
    /** calls of the product inside each timed pass */
    inner: { type: "string", default: "10" },
    out: { type: "string" },
  },
});
// Dawn quantizes timestamps (to 65.536 us on an H200) unless told not to
process.env.SDC_DAWN_TOGGLES ??= "disable-dawn-features=timestamp_quantization";
await initBackend("webgpu", { log: (m) => console.error(m) });
const device: any = (tf.backend() as any).device;
if (!device.features.has("timestamp-query")) throw new Error("gemm-tune needs the timestamp-query feature");
const batch = Number(values.batch);

// every GEMM of the steps asked for, with how often it occurs per step
const shapes = new Map<string, { L: GemmLayout; count: number }>();
for (const gen of values.generated!) {
  const loaded = await loadCompiled(gen);
  if (loaded.spec.task !== "diffusion") continue;
  const ir = loaded.ir;
  const dims: [number, number, number] = [ir.data.height, ir.data.width, ir.data.channels];
  const contexts = ir.text.kind === "learned" ? [undefined] : values["context-tokens"]!.split(",").map((t) => ({ tokens: Number(t), width: Number(ir.network.inputs[2].shape[2]), pooled: Number(ir.network.inputs[3].shape[1]) }));
  for (const ctx of contexts) {
    const m = buildTraceModel(loaded.spec, ir, 0);
    const sg = buildStepGraph(m, batch, dims, ctx);
    fuse(sg);
    const live = liveNodes(sg.graph, stepOutputs(sg));
    for (const n of sg.graph.nodes) {
      if (!live.has(n.id) || n.op.kind !== "gemm") continue;
      const key = gemmKey(n.op.layout);
      const e = shapes.get(key) ?? { L: n.op.layout, count: 0 };
      e.count++;
      shapes.set(key, e);
    }
    m.store.dispose();
  }
}
console.error(`${shapes.size} distinct GEMM shapes`);

const extent = (st: readonly number[], dims: number[]) => dims.reduce((s, d, i) => s + (d - 1) * st[i], 0) + 1;
const reps = Number(values.reps);
const inner = Number(values.inner);

/** GPU microseconds per call of one configuration of a product. */
async function timeConfig(L: GemmLayout, cfg: GemmConfig): Promise<number> {
  const g = new Graph();
  const [b1, b2] = L.batch;
  const a = g.input("a", [extent(L.a, [b1, b2, L.m, L.k])]);
  const b = g.input("b", [extent(L.b, [b1, b2, L.k, L.n])]);
  const c = g.gemm(a, b, [extent(L.c, [b1, b2, L.m, L.n])], L);
  const ks: Kernel[] = kernelsFor(g, g.node(c.id), { gemmTable: { [gemmKey(L)]: cfg } });
  const bufs = new Map<number, any>();
  const mk = (floats: number) => device.createBuffer({ size: Math.max(16, floats * 4), usage: 0x80 | 0x08 });
  for (const n of [a, b, c]) bufs.set(n.id, mk(n.size));
  const scratch = Math.max(0, ...ks.map((k) => k.scratchFloats ?? 0));
  if (scratch) bufs.set(SCRATCH, mk(scratch));
  const recs = [];
  for (const k of ks) {
    const module = device.createShaderModule({ code: k.code });
    const pipeline = await device.createComputePipelineAsync({ layout: "auto", compute: { module, entryPoint: "main" } });
    const entries = [...k.inputs, k.output].map((id, i) => ({ binding: i, resource: { buffer: bufs.get(id) } }));
    recs.push({ pipeline, bindGroup: device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries }), groups: k.groups });
  }
  const qs = device.createQuerySet({ type: "timestamp", count: 2 * (reps + 1) });
  const res = device.createBuffer({ size: 16 * (reps + 1), usage: 0x200 | 0x04 });
  const out = device.createBuffer({ size: 16 * (reps + 1), usage: 0x01 | 0x08 });
  const enc = device.createCommandEncoder();
  for (let r = 0; r <= reps; r++) {
    const pass = enc.beginComputePass({ timestampWrites: { querySet: qs, beginningOfPassWriteIndex: 2 * r, endOfPassWriteIndex: 2 * r + 1 } });
    for (let i = 0; i < inner; i++) {
      for (const k of recs) {
        pass.setPipeline(k.pipeline);
        pass.setBindGroup(0, k.bindGroup);
        pass.dispatchWorkgroups(...k.groups);
      }
    }
    pass.end();
  }
  enc.resolveQuerySet(qs, 0, 2 * (reps + 1), res, 0);
  enc.copyBufferToBuffer(res, 0, out, 0, 16 * (reps + 1));
  device.queue.submit([enc.finish()]);
  await out.mapAsync(1);
  const ts = new BigInt64Array(out.getMappedRange().slice(0));
  out.unmap();
  const us: number[] = [];
  for (let r = 1; r <= reps; r++) us.push(Number(ts[2 * r + 1] - ts[2 * r]) / 1e3 / inner); // the first pass warms up
  us.sort((x, y) => x - y);
  for (const x of [...bufs.values(), qs, res, out]) x.destroy();
  return us[Math.floor(us.length / 2)];
}

const table: Record<string, GemmConfig> = {};
let heuristicUs = 0;
let tunedUs = 0;
const rows: string[] = [];
for (const [key, { L, count }] of [...shapes].sort((x, y) => y[1].count * y[1].L.m * y[1].L.n * y[1].L.k - x[1].count * x[1].L.m * x[1].L.n * x[1].L.k)) {
  const base = gemmConfig(L);
  const baseUs = await timeConfig(L, base);
  let best = { cfg: base, us: baseUs };
  for (const t of GEMM_TILES) {
    for (const split of [1, 2, 4, 8]) {
      if (split > 1 && Math.ceil(L.k / t.bk) < 2 * split) continue;
      if (t.name === base.tile && split === base.split) continue;
      const us = await timeConfig(L, { tile: t.name, split });
      if (us < best.us * 0.98) best = { cfg: { tile: t.name, split }, us }; // 2%: not for noise
    }
  }
  table[key] = best.cfg;
  heuristicUs += count * baseUs;
  tunedUs += count * best.us;
  const tflops = (2 * L.batch[0] * L.batch[1] * L.m * L.n * L.k) / (best.us * 1e-6) / 1e12;
  rows.push(`${key} x${count}: heuristic ${base.tile}/${base.split} ${baseUs.toFixed(1)} us -> ${best.cfg.tile}/${best.cfg.split} ${best.us.toFixed(1)} us (${tflops.toFixed(1)} TFLOP/s)`);
  console.error(rows[rows.length - 1]);
}
const summary = { bench: "gemm-tune", device: (tf.backend() as any).adapterInfo?.description ?? "", shapes: shapes.size, gemmMsHeuristic: Number((heuristicUs / 1e3).toFixed(2)), gemmMsTuned: Number((tunedUs / 1e3).toFixed(2)), note: "GEMM milliseconds summed over one step of each spec and context length asked for", table };
if (values.out) writeFileSync(values.out, JSON.stringify(table, null, 1) + "\n");
console.log(JSON.stringify(summary));
await shutdownBackend();
