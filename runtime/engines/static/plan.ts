/**
 * What a training step will cost, before anything runs: kernels, GEMM work, GPU memory and the
 * largest tensor, from the traced, differentiated and fused step graph (pure; no device).
 */
import { fuse } from "../../graph/fuse.ts";
import { type GemmLayout, liveNodes, sizeOf } from "../../graph/graph.ts";
import { type KernelOptions, kernelsFor } from "../../executors/webgpu/kernels.ts";
import { planBuffers } from "../../graph/memory.ts";
import { liveKernelCount, type StepGraph, stepOutputs } from "../../graph/step-graph.ts";

export interface StepPlan {
  batch: number;
  params: number;
  kernelsBeforeFusion: number;
  /** dispatches per step (fused; split-K reduces and the optimizer's 3 included) */
  dispatches: number;
  gemms: number;
  /** GEMM work per step (forward and backward), GFLOP */
  gemmGflop: number;
  /** parameters, gradients, Adam moments (and EMA), MiB */
  optimizerMiB: number;
  /** activations and temporaries with buffer reuse (and with one buffer per node), MiB */
  activationMiB: number;
  activationMiBNoReuse: number;
  /** the largest single tensor, MiB: it must fit one storage binding (128 MiB by WebGPU's default limit) */
  largestTensorMiB: number;
  largestTensor: string;
}

const MiB = (floats: number) => Number(((floats * 4) / 2 ** 20).toFixed(1));
const flops = (L: GemmLayout) => 2 * L.batch[0] * L.batch[1] * L.m * L.n * L.k;

/** Fuses `sg` (as the engine does) and measures it. */
export function planStep(sg: StepGraph, opts: { ema: boolean; kernels?: KernelOptions }): StepPlan {
  const before = liveKernelCount(sg);
  fuse(sg);
  const g = sg.graph;
  const live = liveNodes(g, stepOutputs(sg));
  const gradRoots = new Set([...sg.grads.values()].map((s) => s.id));
  let dispatches = 3;
  let gemms = 0;
  let gflop = 0;
  let largest = 0;
  let largestTensor = "";
  let fixed = 0;
  for (const id of live) {
    const node = g.node(id);
    const k = node.op.kind;
    if (k === "gemm") {
      gemms++;
      gflop += flops(node.op.layout) / 1e9;
    }
    dispatches += kernelsFor(g, node, opts.kernels).length;
    if (k !== "view" && k !== "param" && sizeOf(node.shape) > largest) {
      largest = sizeOf(node.shape);
      largestTensor = `${k} [${node.shape.join(", ")}] (${node.tag})`;
    }
    if (k === "input" || k === "const" || id === sg.loss.id) fixed += sizeOf(node.shape);
  }
  const pooled = (id: number) => {
    const k = g.node(id).op.kind;
    return k !== "input" && k !== "const" && k !== "param" && id !== sg.loss.id && !gradRoots.has(id);
  };
  const plan = planBuffers(g, live, pooled);
  const params = sg.params.reduce((a, p) => a + sizeOf(p.shape), 0);
  return {
    batch: sg.batch,
    params,
    kernelsBeforeFusion: before,
    dispatches,
    gemms,
    gemmGflop: Number(gflop.toFixed(1)),
    optimizerMiB: MiB(params * (opts.ema ? 5 : 4)),
    activationMiB: MiB(plan.slotFloats.reduce((a, b) => a + b, 0) + fixed),
    activationMiBNoReuse: MiB(plan.unpooledFloats + fixed),
    largestTensorMiB: MiB(largest),
    largestTensor,
  };
}
