/**
 * The network's velocity as recorded WebGPU dispatches (sampling and validation of a run on the
 * static engine): traced at a fixed batch, fused, its parameters read in place from the training
 * step's flat buffers (the parameters or their EMA), buffers recycled after their last reader.
 * One call = input writes, one compute pass, one read of v.
 */
/* eslint-disable @typescript-eslint/no-explicit-any */
import { fuseGraph } from "../../graph/fuse.ts";
import { GraphError, liveNodes, rootOf, sizeOf } from "../../graph/graph.ts";
import { planBuffers } from "../../graph/memory.ts";
import { type KernelOptions, SCRATCH, kernelsFor } from "./kernels.ts";
import type { VelocityGraph } from "../../graph/step-graph.ts";
import { type Binding, encodeDispatches } from "./webgpu.ts";

const STORAGE = 0x80;
const COPY_SRC = 0x04;
const COPY_DST = 0x08;
const MAP_READ = 0x01;

export class WebGpuForward {
  private readonly bind = new Map<number, Binding>();
  private readonly inputs = new Map<string, any>();
  private readonly owned: any[] = [];
  private recs: { pipeline: any; bindGroup: any; groups: [number, number, number] }[] = [];
  private readback: any;
  kernels = 0;

  private constructor(
    readonly device: any,
    readonly vg: VelocityGraph,
  ) {}

  /** `param(name)` gives each parameter's binding (e.g. WebGpuStep.paramBinding). */
  static async create(device: any, vg: VelocityGraph, param: (name: string) => Binding, kernelOptions: KernelOptions = {}): Promise<WebGpuForward> {
    fuseGraph(vg.graph, [vg.v.id]);
    const f = new WebGpuForward(device, vg);
    await f.build(param, kernelOptions);
    return f;
  }

  private mk(floats: number): any {
    const b = this.device.createBuffer({ size: Math.max(16, floats * 4), usage: STORAGE | COPY_SRC | COPY_DST });
    this.owned.push(b);
    return b;
  }

  private async build(param: (name: string) => Binding, opts: KernelOptions): Promise<void> {
    const g = this.vg.graph;
    const live = liveNodes(g, [this.vg.v.id]);
    // intermediates share buffers once their last reader has run (memory.ts); the output is kept
    const plan = planBuffers(g, live, (id) => {
      const k = g.node(id).op.kind;
      return k !== "input" && k !== "const" && k !== "param" && id !== this.vg.v.id;
    });
    const slots = plan.slotFloats.map((floats) => this.mk(floats));
    for (const node of g.nodes) {
      if (!live.has(node.id)) continue;
      const op = node.op;
      const n = sizeOf(node.shape);
      const s = plan.slot.get(node.id);
      if (op.kind === "view") this.bind.set(node.id, this.bind.get(rootOf(g, op.src))!);
      else if (op.kind === "param") this.bind.set(node.id, param(op.name));
      else if (s !== undefined) this.bind.set(node.id, { buffer: slots[s], offset: 0, size: n * 4 });
      else {
        const b = this.mk(n);
        this.bind.set(node.id, { buffer: b, offset: 0, size: n * 4 });
        if (op.kind === "input") this.inputs.set(op.name, b);
        if (op.kind === "const") this.device.queue.writeBuffer(b, 0, op.data);
      }
    }
    const kernels = g.nodes.filter((n) => live.has(n.id)).flatMap((n) => kernelsFor(g, n, opts));
    const scratch = Math.max(0, ...kernels.map((k) => k.scratchFloats ?? 0));
    const scratchBinding = scratch > 0 ? { buffer: this.mk(scratch), offset: 0, size: scratch * 4 } : null;
    this.device.pushErrorScope("validation");
    const pipelines = new Map<string, Promise<any>>();
    for (const k of kernels) {
      if (!pipelines.has(k.code)) pipelines.set(k.code, this.device.createComputePipelineAsync({ layout: "auto", compute: { module: this.device.createShaderModule({ code: k.code }), entryPoint: "main" } }));
    }
    for (const k of kernels) {
      const pipeline = await pipelines.get(k.code)!;
      const entries = [...k.inputs, k.output].map((id, i) => {
        const b = id === SCRATCH ? scratchBinding : this.bind.get(id);
        if (!b) throw new GraphError(`node ${id} has no buffer`);
        return { binding: i, resource: { buffer: b.buffer, offset: b.offset, size: Math.max(4, b.size) } };
      });
      this.recs.push({ pipeline, bindGroup: this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries }), groups: k.groups });
    }
    const err = await this.device.popErrorScope();
    if (err) throw new GraphError(`WebGPU rejected the forward pass: ${err.message}`);
    this.kernels = kernels.length;
    this.readback = this.device.createBuffer({ size: this.vg.v.size * 4, usage: MAP_READ | COPY_DST });
    this.owned.push(this.readback);
  }

  /** v for the inputs (xt, t, and ids.onehot or context + pooled). */
  async run(feeds: Map<string, Float32Array>): Promise<Float32Array> {
    for (const [name, buf] of this.inputs) {
      const x = feeds.get(name);
      if (!x) throw new GraphError(`missing input "${name}"`);
      this.device.queue.writeBuffer(buf, 0, x);
    }
    const enc = this.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    encodeDispatches(pass, this.recs);
    pass.end();
    const v = this.bind.get(this.vg.v.id)!;
    enc.copyBufferToBuffer(v.buffer, v.offset, this.readback, 0, v.size);
    this.device.queue.submit([enc.finish()]);
    await this.readback.mapAsync(0x01);
    const out = new Float32Array(this.readback.getMappedRange().slice(0));
    this.readback.unmap();
    return out;
  }

  dispose(): void {
    for (const b of this.owned) b.destroy();
  }
}
