/**
 * The WGSL forms of the layout and elementwise primitives (min, max, ge, keep, drop, pow; pad with
 * a value, repeat, where, clamp) on a WebGPU adapter: a small graph of them, differentiated and
 * fused, run as one training step, every node against the CPU interpreter. Prints one JSON line.
 * Used by test/graph/webgpu.test.ts under lavapipe.
 */
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../../../runtime/backend.ts";
import { differentiate } from "../../../runtime/graph/autodiff.ts";
import { evaluate } from "../../../runtime/executors/interp/interp.ts";
import { fuse } from "../../../runtime/graph/fuse.ts";
import { Graph, type Sym } from "../../../runtime/graph/graph.ts";
import type { StepGraph } from "../../../runtime/graph/step-graph.ts";
import { TraceContext, withTrace } from "../../../runtime/graph/trace.ts";
import { WebGpuStep } from "../../../runtime/executors/webgpu/webgpu.ts";
import * as F from "../../../runtime/nn/functional.ts";
import { Rng } from "../../../runtime/util/rng.ts";

await initBackend("webgpu", { log: (m) => console.error(m) });
const device = (tf.backend() as unknown as { device: GPUDevice }).device;
const rng = new Rng(5);
const g = new Graph();
const shapes: Record<string, number[]> = { a: [2, 3, 8], b: [2, 1, 8], c: [3, 8] };
const p = Object.fromEntries(Object.entries(shapes).map(([n, s]) => [n, g.param(n, s)])) as Record<string, Sym>;
/* eslint-disable @typescript-eslint/no-explicit-any */
const outs = withTrace(new TraceContext(g, new Map()), () => {
  const [a, b, c]: any[] = [p.a, p.b, p.c];
  const m = F.where(F.relu(b), F.maximum(a, c), F.minimum(a, -0.25)); // keep, drop, max, min (ge in the backward)
  const e = F.add(F.pow(F.add(F.square(F.clamp(a, -1, 1)), 0.5), 1.5), F.mul(F.pow(a, 3), 0.1)); // pow: fractional, integer on negatives
  const s = F.reshape(F.transpose(F.reshape(F.add(m, e), [2, 3, 2, 4]), 1, 2), [2, 2, 12]);
  const l = F.pad(F.repeat(F.slice(c, 0, 2, 0), 2, 0), 1, 0, 0, 0.75); // [5, 8]: slice, repeat (a broadcast copy), pad with a value
  return [s, l] as unknown as Sym[];
});
const term = (x: Sym) => g.sumTo(g.ew("mul", [x, g.constant(rng.normals(x.size), x.shape)]), [1]);
const loss = g.ew("add", [term(outs[0]), term(outs[1])]);
const { grads } = differentiate(g, loss);
const sg: StepGraph = { graph: g, loss, grads, params: Object.entries(shapes).map(([name, shape]) => ({ name, shape })), oneHots: [], batch: 1, dims: [1, 1, 1], text: "learned" };
fuse(sg);
const params = new Map(Object.entries(shapes).map(([n, s]) => [n, rng.normals(s.reduce((x, y) => x * y, 1))] as const));
const gpu = await WebGpuStep.create(device, sg, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, decoupled: false, clip: 1, ema: 0.99, emaWarmup: true }, {}, "keep");
gpu.setParams(params);
await gpu.step(new Map());
const ref = evaluate(g, new Map(), params);
let worst = 0;
let worstAt = "";
let nodes = 0;
for (const id of gpu.live) {
  const node = g.node(id);
  if (["input", "param", "const", "view"].includes(node.op.kind)) continue;
  nodes++;
  const got = await gpu.readNode(id);
  const want = ref[id];
  let scale = 1e-6;
  for (const x of want) scale = Math.max(scale, Math.abs(x));
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i] - want[i]) / scale;
    if (!(err <= worst)) {
      worst = Number.isNaN(err) ? Infinity : err;
      worstAt = `node ${id} ${node.op.kind} [${node.shape}] (${node.tag}) at ${i}: ${got[i]} vs ${want[i]}`;
    }
  }
}
const gradNodes = [...grads.values()].filter((x) => g.node(x.id).op.kind !== "const").length;
console.log(JSON.stringify({ kernels: gpu.kernels.length, nodes, gradNodes, worst, worstAt }));
process.exit(0);
