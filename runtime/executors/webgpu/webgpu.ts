/**
 * The WebGPU executor of a static step graph. Everything is decided once: one buffer per node
 * (views share their source's), parameters and their gradients as aligned slices of flat
 * buffers, one pipeline per distinct shader, one bind group per kernel. A training step is then
 * a few writeBuffer calls for the inputs, one compute pass replaying the recorded dispatches
 * (forward, backward, gradient norm, clipped Adam and EMA over the flat buffers) and one read of
 * the loss and the gradient norm: no per-op host work, no allocation.
 */
/* eslint-disable @typescript-eslint/no-explicit-any */
import { GpuMemoryError, GraphError, liveNodes, rootOf, sizeOf } from "../../graph/graph.ts";
import { planBuffers } from "../../graph/memory.ts";
import { type Kernel, type KernelOptions, SCRATCH, grid, kernelsFor } from "./kernels.ts";
import { type StepGraph, gradientRoots, stepOutputs } from "../../graph/step-graph.ts";

type GPUDevice = any;
type GPUBuffer = any;

const STORAGE = 0x80;
const COPY_SRC = 0x04;
const COPY_DST = 0x08;
const MAP_READ = 0x01;
const UNIFORM = 0x40;
const MAP_MODE_READ = 0x01;

/** Parameters are placed at multiples of 64 floats: binding offsets must be 256-byte aligned. */
const ALIGN = 64;
const alignUp = (n: number, a = ALIGN) => Math.ceil(n / a) * a;

export interface AdamConfig {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  decoupled: boolean;
  clip: number;
  /** EMA decay; 0 = off */
  ema: number;
  emaWarmup: boolean;
}

export interface Binding {
  buffer: GPUBuffer;
  offset: number; // bytes
  size: number; // bytes
}

interface Recorded {
  pipeline: any;
  bindGroup: any;
  groups: [number, number, number];
  label: string;
  node: number;
}

/** Record dispatches into a compute pass (setPipeline only when it changes). */
export function encodeDispatches(pass: any, recs: readonly { pipeline: any; bindGroup: any; groups: [number, number, number] }[]): void {
  let last: unknown = null;
  for (const k of recs) {
    if (k.pipeline !== last) pass.setPipeline(k.pipeline); // consecutive kernels often share one
    last = k.pipeline;
    pass.setBindGroup(0, k.bindGroup);
    pass.dispatchWorkgroups(k.groups[0], k.groups[1], k.groups[2]);
  }
}

export interface StepTiming {
  loss: number;
  gradNorm: number;
  /** host time to write the inputs and encode + submit the step */
  encodeMs: number;
}

export class WebGpuStep {
  readonly kernels: Recorded[] = [];
  /** parameter name -> offset (floats) in the flat buffers */
  readonly offsets = new Map<string, number>();
  readonly flatSize: number;
  stepCount = 0;
  emaUpdates = 0;
  lr: number;
  readonly bytes: { activations: number; flat: number };
  private readonly bind = new Map<number, Binding>();
  private readonly inputs = new Map<string, GPUBuffer>();
  private readonly owned: GPUBuffer[] = [];
  private readonly flat: { p: GPUBuffer; g: GPUBuffer; m: GPUBuffer; v: GPUBuffer; ema: GPUBuffer | null };
  private readonly stats: GPUBuffer;
  private readonly hyper: GPUBuffer;
  /** readback buffers not in use (a step in flight holds one) */
  private readonly readbacks: GPUBuffer[] = [];
  private optimizer: Recorded[] = [];

  private constructor(
    readonly device: GPUDevice,
    readonly sg: StepGraph,
    readonly adam: AdamConfig,
    readonly kernelOptions: KernelOptions,
    /** "reuse": buffers of dead intermediates are recycled (default); "keep": every node keeps its own (for inspecting every value) */
    readonly memory: "reuse" | "keep" = "reuse",
  ) {
    this.lr = adam.lr;
    let at = 0;
    for (const p of sg.params) {
      this.offsets.set(p.name, at);
      at += alignUp(sizeOf(p.shape));
    }
    this.flatSize = Math.max(at, ALIGN);
    const maxBuffer = Number(device.limits?.maxBufferSize ?? Infinity);
    const maxBinding = Number(device.limits?.maxStorageBufferBindingSize ?? Infinity);
    const mk = (floats: number, usage = STORAGE | COPY_DST | COPY_SRC, bound = true) => {
      const limit = bound ? Math.min(maxBuffer, maxBinding) : maxBuffer;
      if (floats * 4 > limit) throw new GpuMemoryError(`a tensor of the step at batch ${sg.batch} needs ${Math.round((floats * 4) / 2 ** 20)} MiB, more than this device lets one kernel address (${Math.round(limit / 2 ** 20)} MiB): try a smaller --batch-size`);
      const b = device.createBuffer({ size: Math.max(16, floats * 4), usage });
      this.owned.push(b);
      return b;
    };
    // the flat buffers are bound in slices (parameters) and segments (optimizer), never whole
    const flat = () => mk(this.flatSize, STORAGE | COPY_DST | COPY_SRC, false);
    this.flat = { p: flat(), g: flat(), m: flat(), v: flat(), ema: adam.ema > 0 ? flat() : null };
    this.stats = mk(4);
    this.hyper = device.createBuffer({ size: 32, usage: UNIFORM | COPY_DST });
    this.owned.push(this.hyper);
    this.bytes = { activations: 0, flat: this.flatSize * 4 * (adam.ema > 0 ? 5 : 4) };
    this.live = liveNodes(sg.graph, stepOutputs(sg));
    this.placeNodes(mk);
  }

  /** the nodes the loss and the gradients depend on (the others get no buffer and no kernel) */
  readonly live: Set<number>;

  /** Compile every kernel (pipelines in parallel) and record the step. */
  static async create(device: GPUDevice, sg: StepGraph, adam: AdamConfig, kernelOptions: KernelOptions = {}, memory: "reuse" | "keep" = "reuse"): Promise<WebGpuStep> {
    // buffer creation reports running out of GPU memory asynchronously: catch it here, by name
    device.pushErrorScope("out-of-memory");
    let s: WebGpuStep | null = null;
    try {
      s = new WebGpuStep(device, sg, adam, kernelOptions, memory);
      await s.record();
    } finally {
      const oom = await device.popErrorScope();
      if (oom) {
        const need = s ? ` (${Math.round((s.bytes.activations + s.bytes.flat) / 2 ** 20)} MiB of buffers)` : "";
        s?.dispose();
        throw new GpuMemoryError(`the GPU ran out of memory for the training step at batch ${sg.batch}${need}: try a smaller --batch-size. ${oom.message}`);
      }
    }
    return s;
  }

  private root(id: number): number {
    return rootOf(this.sg.graph, id);
  }

  private placeNodes(mk: (floats: number, usage?: number, bound?: boolean) => GPUBuffer): void {
    const g = this.sg.graph;
    // gradients of parameters live in the flat gradient buffer
    const gradAt = gradientRoots(this.sg, this.offsets);
    // Memory planning (memory.ts): intermediates share buffers once their last reader has run;
    // kernels run in node order inside one pass, and WebGPU orders the reuse like any hazard
    const reuse = this.memory === "reuse";
    const plan = planBuffers(g, this.live, (id) => {
      const k = g.node(id).op.kind;
      return reuse && k !== "input" && k !== "const" && k !== "param" && id !== this.sg.loss.id && !gradAt.has(id);
    });
    const slots = plan.slotFloats.map((floats) => {
      this.bytes.activations += floats * 4;
      return mk(floats);
    });
    for (const node of g.nodes) {
      const op = node.op;
      const n = sizeOf(node.shape);
      if (!this.live.has(node.id)) continue;
      if (op.kind === "view") {
        this.bind.set(node.id, this.bind.get(this.root(op.src))!);
        continue;
      }
      if (op.kind === "param") {
        const off = this.offsets.get(op.name);
        if (off === undefined) throw new GraphError(`parameter ${op.name} is not in the store`);
        this.bind.set(node.id, { buffer: this.flat.p, offset: off * 4, size: n * 4 });
        continue;
      }
      const ga = gradAt.get(node.id);
      const s = plan.slot.get(node.id);
      if (ga !== undefined) this.bind.set(node.id, { buffer: this.flat.g, offset: ga * 4, size: n * 4 });
      else if (s !== undefined) this.bind.set(node.id, { buffer: slots[s], offset: 0, size: n * 4 });
      else {
        const b = mk(n);
        this.bytes.activations += n * 4;
        this.bind.set(node.id, { buffer: b, offset: 0, size: n * 4 });
        if (op.kind === "input") this.inputs.set(op.name, b);
        if (op.kind === "const") this.device.queue.writeBuffer(b, 0, op.data);
      }
    }
  }

  private async record(): Promise<void> {
    const g = this.sg.graph;
    const kernels: Kernel[] = [];
    for (const node of g.nodes) {
      if (!this.live.has(node.id)) continue;
      kernels.push(...kernelsFor(g, node, this.kernelOptions));
    }
    const optimizerKernels = new Set(this.optimizerKernels());
    kernels.push(...optimizerKernels);
    const scratch = Math.max(0, ...kernels.map((k) => k.scratchFloats ?? 0));
    if (scratch > 0) {
      const limit = Number(this.device.limits?.maxStorageBufferBindingSize ?? Infinity);
      if (scratch * 4 > limit) throw new GpuMemoryError(`split-K partial sums of the step at batch ${this.sg.batch} need ${Math.round((scratch * 4) / 2 ** 20)} MiB, more than this device lets one kernel address (${Math.round(limit / 2 ** 20)} MiB): try a smaller --batch-size, or SDC_GEMM_SPLIT=1`);
      const b = this.device.createBuffer({ size: scratch * 4, usage: STORAGE });
      this.owned.push(b);
      this.scratch = { buffer: b, offset: 0, size: scratch * 4 };
      this.bytes.activations += scratch * 4;
    }
    const pipelines = new Map<string, Promise<any>>();
    this.device.pushErrorScope("validation");
    for (const k of kernels) {
      if (!pipelines.has(k.code)) {
        const module = this.device.createShaderModule({ code: k.code });
        pipelines.set(k.code, this.device.createComputePipelineAsync({ layout: "auto", compute: { module, entryPoint: "main" } }));
      }
    }
    const resolved = new Map<string, any>();
    for (const [code, p] of pipelines) {
      try {
        resolved.set(code, await p);
      } catch (e) {
        throw new GraphError(`a kernel failed to compile: ${e instanceof Error ? e.message : String(e)}\n${code}`);
      }
    }
    for (const k of kernels) {
      const pipeline = resolved.get(k.code);
      const ids = [...k.inputs, k.output];
      const entries = ids.map((id, i) => {
        const b = id < 0 ? this.special(id) : this.bind.get(id);
        if (!b) throw new GraphError(`node ${id} has no buffer`);
        return { binding: i, resource: { buffer: b.buffer, offset: b.offset, size: Math.max(4, b.size) } };
      });
      if (k.label === "adam") entries.push({ binding: ids.length, resource: { buffer: this.hyper, offset: 0, size: 32 } });
      const bindGroup = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
      const rec = { pipeline, bindGroup, groups: k.groups, label: k.label, node: k.output };
      if (optimizerKernels.has(k)) this.optimizer.push(rec);
      else this.kernels.push(rec);
    }
    const err = await this.device.popErrorScope();
    if (err) throw new GraphError(`WebGPU rejected the step: ${err.message}`);
  }

  // Special buffers of the optimizer kernels, by negative id.
  private specials: Binding[] = [];
  private scratch: Binding | null = null;
  private special(id: number): Binding {
    if (id === SCRATCH) {
      if (!this.scratch) throw new GraphError("a kernel uses the split-K scratch buffer but none was sized");
      return this.scratch;
    }
    return this.specials[-id - 1];
  }
  private specialId(b: Binding): number {
    this.specials.push(b);
    return -this.specials.length;
  }

  /**
   * Gradient norm (two-stage reduction) and the clipped Adam + EMA update over the flat buffers,
   * in segments no larger than the device's storage binding limit.
   */
  private optimizerKernels(): Kernel[] {
    const chunk = 256 * 16;
    const limit = Number(this.device.limits?.maxStorageBufferBindingSize ?? 134217728);
    const segFloats = Math.max(chunk, Math.floor(limit / 4 / chunk) * chunk);
    const segments: { start: number; n: number; partAt: number; parts: number }[] = [];
    let partTotal = 0;
    for (let start = 0; start < this.flatSize; start += segFloats) {
      const n = Math.min(segFloats, this.flatSize - start);
      const parts = Math.ceil(n / chunk);
      segments.push({ start, n, partAt: partTotal, parts });
      partTotal += alignUp(parts);
    }
    const partial = this.device.createBuffer({ size: Math.max(16, partTotal * 4), usage: STORAGE });
    this.owned.push(partial);
    const range = (buffer: GPUBuffer, start: number, floats: number) => this.specialId({ buffer, offset: start * 4, size: floats * 4 });
    const STATS = range(this.stats, 0, 4);
    const a = this.adam;
    const ema = this.flat.ema !== null;
    const sumsq = (n: number, parts: number) => `@group(0) @binding(0) var<storage, read_write> g: array<f32>;
@group(0) @binding(1) var<storage, read_write> part: array<f32>;
var<workgroup> red: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
  let w = wid.y * nwg.x + wid.x;
  var s = 0.0;
  if (w < ${parts}u) {
    for (var j = 0u; j < 16u; j = j + 1u) {
      let i = w * ${chunk}u + j * 256u + lid;
      if (i < ${n}u) { let x = g[i]; s = s + x * x; }
    }
  }
  red[lid] = s;
  workgroupBarrier();
  for (var k = 128u; k > 0u; k = k >> 1u) {
    if (lid < k) { red[lid] = red[lid] + red[lid + k]; }
    workgroupBarrier();
  }
  if (lid == 0u && w < ${parts}u) { part[w] = red[0]; }
}
`;
    const finish = `@group(0) @binding(0) var<storage, read_write> part: array<f32>;
@group(0) @binding(1) var<storage, read_write> stats: array<f32>;
var<workgroup> red: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  for (var i = lid; i < ${partTotal}u; i = i + 256u) { s = s + part[i]; }
  red[lid] = s;
  workgroupBarrier();
  for (var k = 128u; k > 0u; k = k >> 1u) {
    if (lid < k) { red[lid] = red[lid] + red[lid + k]; }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let norm = sqrt(red[0]);
    stats[0] = norm;
    stats[1] = ${a.clip > 0 ? `min(1.0, f32(${a.clip}) / (norm + 1e-6))` : "1.0"};
  }
}
`;
    const adamCode = (n: number) => `@group(0) @binding(0) var<storage, read_write> g: array<f32>;
@group(0) @binding(1) var<storage, read_write> stats: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
${ema ? "@group(0) @binding(4) var<storage, read_write> e: array<f32>;\n" : ""}@group(0) @binding(${ema ? 5 : 4}) var<storage, read_write> p: array<f32>;
struct Hyper { lr: f32, bc1: f32, bc2sqrt: f32, emaDecay: f32 };
@group(0) @binding(${ema ? 6 : 5}) var<uniform> h: Hyper;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = (wid.y * nwg.x + wid.x) * 256u + lid;
  if (i >= ${n}u) { return; }
  var gi = g[i] * stats[1];
  var pi = p[i];
  ${a.weightDecay !== 0 ? (a.decoupled ? `pi = pi * (1.0 - h.lr * f32(${a.weightDecay}));` : `gi = gi + pi * f32(${a.weightDecay});`) : ""}
  let mi = m[i] * f32(${a.beta1}) + gi * f32(${1 - a.beta1});
  let vi = v[i] * f32(${a.beta2}) + gi * gi * f32(${1 - a.beta2});
  m[i] = mi;
  v[i] = vi;
  pi = pi - mi / (sqrt(vi) / h.bc2sqrt + f32(${a.eps})) * (h.lr / h.bc1);
  p[i] = pi;
  ${ema ? "e[i] = e[i] * h.emaDecay + pi * (1.0 - h.emaDecay);" : ""}
}
`;
    const out: Kernel[] = [];
    for (const sgm of segments) {
      out.push({ code: sumsq(sgm.n, sgm.parts), inputs: [range(this.flat.g, sgm.start, sgm.n)], output: range(partial, sgm.partAt, alignUp(sgm.parts)), groups: grid(sgm.parts), label: "grad_norm" });
    }
    out.push({ code: finish, inputs: [range(partial, 0, partTotal)], output: STATS, groups: [1, 1, 1], label: "grad_norm" });
    for (const sgm of segments) {
      const seg = (b: GPUBuffer) => range(b, sgm.start, sgm.n);
      const inputs = [seg(this.flat.g), STATS, seg(this.flat.m), seg(this.flat.v)];
      if (ema) inputs.push(seg(this.flat.ema));
      out.push({ code: adamCode(sgm.n), inputs, output: seg(this.flat.p), groups: grid(Math.ceil(sgm.n / 256)), label: "adam" });
    }
    return out;
  }

  /** Where parameter `name` lives: in the parameters or in their EMA (sampling reads either in place). */
  paramBinding(name: string, which: "params" | "ema"): Binding {
    const off = this.offsets.get(name);
    const p = this.sg.params.find((x) => x.name === name);
    if (off === undefined || !p) throw new GraphError(`no parameter ${name}`);
    const buffer = which === "ema" && this.flat.ema ? this.flat.ema : this.flat.p;
    return { buffer, offset: off * 4, size: sizeOf(p.shape) * 4 };
  }

  /** Upload parameters (and reset the EMA to them when `resetEma`). */
  setParams(values: Map<string, Float32Array>, resetEma = true): void {
    for (const p of this.sg.params) {
      const x = values.get(p.name);
      if (!x || x.length !== sizeOf(p.shape)) throw new GraphError(`setParams: missing or misshapen ${p.name}`);
      const off = this.offsets.get(p.name)! * 4;
      this.device.queue.writeBuffer(this.flat.p, off, x);
      if (resetEma && this.flat.ema) this.device.queue.writeBuffer(this.flat.ema, off, x);
    }
  }

  /** One flat buffer (parameters, Adam moments m / v, or the EMA; null without EMA) by parameter name. */
  async readFlat(which: "params" | "m" | "v" | "ema"): Promise<Map<string, Float32Array> | null> {
    const buffer = which === "params" ? this.flat.p : this.flat[which];
    if (!buffer) return null;
    const flat = await this.read(buffer, this.flatSize);
    const out = new Map<string, Float32Array>();
    for (const p of this.sg.params) {
      const off = this.offsets.get(p.name)!;
      out.set(p.name, flat.slice(off, off + sizeOf(p.shape)));
    }
    return out;
  }

  /** Load optimizer moments (and EMA) by parameter name. */
  setState(m: Map<string, Float32Array>, v: Map<string, Float32Array>, ema: Map<string, Float32Array> | null, stepCount: number, emaUpdates: number): void {
    for (const p of this.sg.params) {
      const off = this.offsets.get(p.name)! * 4;
      const need = (x: Map<string, Float32Array>, what: string) => {
        const t = x.get(p.name);
        if (!t || t.length !== sizeOf(p.shape)) throw new GraphError(`optimizer state: missing or misshapen ${what} of ${p.name}`);
        return t;
      };
      this.device.queue.writeBuffer(this.flat.m, off, need(m, "exp_avg"));
      this.device.queue.writeBuffer(this.flat.v, off, need(v, "exp_avg_sq"));
      if (ema && this.flat.ema) this.device.queue.writeBuffer(this.flat.ema, off, need(ema, "ema"));
    }
    this.stepCount = stepCount;
    this.emaUpdates = emaUpdates;
  }

  /** Read `floats` values of a buffer (for state and tests). */
  async read(buffer: GPUBuffer, floats: number, offsetFloats = 0): Promise<Float32Array> {
    const tmp = this.device.createBuffer({ size: floats * 4, usage: MAP_READ | COPY_DST });
    const enc = this.device.createCommandEncoder();
    enc.copyBufferToBuffer(buffer, offsetFloats * 4, tmp, 0, floats * 4);
    this.device.queue.submit([enc.finish()]);
    await tmp.mapAsync(MAP_MODE_READ);
    const out = new Float32Array(tmp.getMappedRange().slice(0));
    tmp.unmap();
    tmp.destroy();
    return out;
  }

  /** The current value of a node (tests; the buffers hold the last step's values; with memory "reuse" only the loss and gradients survive the step). */
  async readNode(id: number): Promise<Float32Array> {
    const b = this.bind.get(id);
    if (!b) throw new GraphError(`node ${id} has no buffer`);
    return this.read(b.buffer, b.size / 4, b.offset / 4);
  }

  /**
   * One training step: upload the inputs, replay the recorded kernels, read back the loss and
   * the gradient norm (before clipping). With `read: false` nothing is read back and the call
   * returns once the step is submitted (the next step queues behind it on the GPU).
   */
  async step(feeds: Map<string, Float32Array>, opts: { read?: boolean } = {}): Promise<StepTiming> {
    const t0 = performance.now();
    for (const [name, buf] of this.inputs) {
      const x = feeds.get(name);
      if (!x) throw new GraphError(`missing input "${name}"`);
      this.device.queue.writeBuffer(buf, 0, x);
    }
    const b1 = this.adam.beta1;
    const b2 = this.adam.beta2;
    const t = this.stepCount + 1;
    const decay = this.adam.ema > 0 ? (this.adam.emaWarmup ? Math.min(this.adam.ema, (1 + this.emaUpdates) / (10 + this.emaUpdates)) : this.adam.ema) : 0;
    this.device.queue.writeBuffer(this.hyper, 0, new Float32Array([this.lr, 1 - b1 ** t, Math.sqrt(1 - b2 ** t), decay, 0, 0, 0, 0]));
    const enc = this.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    encodeDispatches(pass, this.kernels);
    encodeDispatches(pass, this.optimizer);
    pass.end();
    const read = opts.read !== false;
    let rb: GPUBuffer = null;
    if (read) {
      rb = this.readbacks.pop() ?? this.device.createBuffer({ size: 16, usage: MAP_READ | COPY_DST });
      if (!this.owned.includes(rb)) this.owned.push(rb);
      const loss = this.bind.get(this.sg.loss.id)!;
      enc.copyBufferToBuffer(loss.buffer, loss.offset, rb, 0, 4);
      enc.copyBufferToBuffer(this.stats, 0, rb, 4, 4);
    }
    this.device.queue.submit([enc.finish()]);
    const encodeMs = performance.now() - t0;
    if (!read) {
      this.stepCount = t;
      if (this.adam.ema > 0) this.emaUpdates++;
      return { loss: NaN, gradNorm: NaN, encodeMs };
    }
    // the counters move at submission, so a second step can be submitted before this one is read
    this.stepCount = t;
    if (this.adam.ema > 0) this.emaUpdates++;
    await rb.mapAsync(MAP_MODE_READ);
    const r = new Float32Array(rb.getMappedRange().slice(0));
    rb.unmap();
    this.readbacks.push(rb);
    return { loss: r[0], gradNorm: r[1], encodeMs };
  }

  /**
   * GPU time per kernel label over one replay of the recorded kernels (each in its own pass
   * with timestamps; needs the "timestamp-query" feature). Runs the step's kernels once more
   * on the current buffers, so call it between steps, not inside a measurement.
   */
  async profile(): Promise<{ totalMs: number; byLabel: Record<string, { ms: number; count: number }> } | null> {
    if (!this.device.features?.has("timestamp-query")) return null;
    const all = [...this.kernels, ...this.optimizer];
    const per = 2048;
    const byLabel: Record<string, { ms: number; count: number }> = {};
    let totalMs = 0;
    for (let s = 0; s < all.length; s += per) {
      const part = all.slice(s, s + per);
      const qs = this.device.createQuerySet({ type: "timestamp", count: part.length * 2 });
      const res = this.device.createBuffer({ size: part.length * 16, usage: 0x200 | COPY_SRC }); // QUERY_RESOLVE
      const enc = this.device.createCommandEncoder();
      part.forEach((k, i) => {
        const pass = enc.beginComputePass({ timestampWrites: { querySet: qs, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } });
        pass.setPipeline(k.pipeline);
        pass.setBindGroup(0, k.bindGroup);
        pass.dispatchWorkgroups(k.groups[0], k.groups[1], k.groups[2]);
        pass.end();
      });
      enc.resolveQuerySet(qs, 0, part.length * 2, res, 0);
      const out = this.device.createBuffer({ size: part.length * 16, usage: MAP_READ | COPY_DST });
      enc.copyBufferToBuffer(res, 0, out, 0, part.length * 16);
      this.device.queue.submit([enc.finish()]);
      await out.mapAsync(MAP_MODE_READ);
      const ts = new BigInt64Array(out.getMappedRange().slice(0));
      out.unmap();
      part.forEach((k, i) => {
        const ms = Number(ts[2 * i + 1] - ts[2 * i]) / 1e6;
        const e = (byLabel[k.label] ??= { ms: 0, count: 0 });
        e.ms += ms;
        e.count++;
        totalMs += ms;
      });
      qs.destroy();
      res.destroy();
      out.destroy();
    }
    return { totalMs, byLabel };
  }

  dispose(): void {
    for (const b of this.owned) b.destroy();
  }
}

