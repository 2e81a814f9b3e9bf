/**
 * The native CPU executor of static graphs: the same fused step graph as the WebGPU engine,
 * lowered to a program of C++ kernels (runtime/executors/native/src, built by node-gyp at install
 * with kernels for each x86-64 ISA level, the CPU's best chosen at load (isa.h), run by a
 * persistent thread team (threads.h)). Buffers are JS-owned ArrayBuffers
 * (arenas) laid out once by the memory plan (memory.ts): the parameters, gradients, Adam moments
 * and EMA as one flat arena, activations in recycled slots of another. A training step is: write
 * the inputs into their arena views, one native call that runs every kernel (forward, backward,
 * gradient norm, clipped Adam, EMA), read the loss and the gradient norm. No per-op host work.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { GraphError, liveNodes, rootOf, sizeOf } from "../../graph/graph.ts";
import { planBuffers } from "../../graph/memory.ts";
import { type Place, ProgramWriter } from "./lower.ts";
import { type Chain, chainHolds, findChains } from "./chains.ts";
import { type StepGraph, type VelocityGraph, gradientRoots, stepOutputs } from "../../graph/step-graph.ts";
import type { AdamConfig } from "../webgpu/webgpu.ts";
import { gib, memoryBudget } from "../../util/memory-limit.ts";

/** What the addon exports (runtime/executors/native/src/addon.cc). */
export interface NativeAddon {
  /**
   * Decode a program against its arenas (fixed-length ArrayBuffers: a resizable one is refused).
   * The addon keeps them referenced and checks before every run that none was detached or
   * changed; a malformed program throws (code SDC_NATIVE_PROGRAM) naming the kernel and field.
   */
  build(program: Float64Array, arenas: ArrayBuffer[]): object;
  run(program: object, profile?: Float64Array): void;
  /**
   * the same on a worker thread; the arenas must not be touched until it settles. Throws at once
   * (no promise) when the program is already running or an arena was detached or changed.
   */
  runAsync(program: object): Promise<void>;
  /** bytes of GEMM packing scratch the program allocates at its first run (freed with it) */
  scratchBytes(program: object): number;
  /** the thread count; with n, set it (n <= 0: the default, from the CPUs this process may use) */
  threads(n?: number): number;
  /** the CPUs this process may use (affinity mask, cgroup CPU quota): the default thread count */
  defaultThreads(): number;
  /** the ISA level the kernels use ("x86-64", "avx2", "avx512", "avx512bf16"); with a level, use it (throws when this CPU lacks it) */
  isa(level?: string): string;
  /** the levels this CPU supports, lowest first */
  isas(): string[];
  /**
   * where the team's workers run: "apart" (the default: a worker that finds itself on the caller's
   * CPU moves to another of the process's CPUs) or "anywhere" (the OS places them); with a
   * placement, use it from the next parallel region on
   */
  workers(placement?: WorkerPlacement): WorkerPlacement;
  /** how many times a worker has moved off the caller's CPU */
  workerMoves(): number;
}

export type WorkerPlacement = "apart" | "anywhere";

/** SDC_ISA, SDC_THREADS or SDC_WORKERS asks for what cannot be: a usage error (exit 2), not a fallback. */
export class NativeSetupError extends GraphError {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = "NativeSetupError";
  }
}

/** The step or forward pass does not fit in this machine's memory (a user-facing error). */
export class CpuMemoryError extends GraphError {
  constructor(message: string) {
    super(message);
    this.name = "CpuMemoryError";
  }
}

/** The package root: the nearest folder above this module with binding.gyp (sources or a bundle in dist/). */
function packageRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(d, "binding.gyp"))) return d;
    d = dirname(d);
  }
  return join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
}
let loaded: { addon: NativeAddon | null; why: string } | null = null;

/** Where the addon is loaded from: SDC_NATIVE_ADDON, else the build's. */
export function nativeAddonPath(): string {
  return process.env.SDC_NATIVE_ADDON ?? join(packageRoot(), "build", "Release", "sdc_cpu.node");
}

/**
 * The addon, or null with the reason (not built: no C++ compiler at install, or SDC_NATIVE=0).
 * SDC_NATIVE_ADDON overrides its path; SDC_THREADS sets the thread count (default: the CPUs this
 * process may use: its affinity mask and cgroup quota); SDC_ISA=x86-64|avx2|avx512|avx512bf16 forces a lower
 * ISA level than the CPU's best (a NativeSetupError when the CPU lacks it); SDC_WORKERS=anywhere
 * lets the OS place the kernels' worker threads (the default, apart, keeps them off the caller's CPU: threads.h).
 */
export function nativeAddon(): { addon: NativeAddon | null; why: string } {
  if (loaded) return loaded;
  if (process.env.SDC_NATIVE === "0") return (loaded = { addon: null, why: "SDC_NATIVE=0" });
  const path = nativeAddonPath();
  if (!existsSync(path)) return (loaded = { addon: null, why: `the native CPU executor is not built (${path} is missing; run \`npm run build:native\`, which needs a C++ compiler)` });
  let addon: NativeAddon;
  try {
    addon = createRequire(import.meta.url)(path) as NativeAddon;
  } catch (e) {
    return (loaded = { addon: null, why: `the native CPU executor failed to load: ${e instanceof Error ? e.message : String(e)}` });
  }
  configure(addon, process.env);
  return (loaded = { addon, why: "" });
}

/** The CPUs this process may use: its affinity mask and cgroup quota (the addon reads them), else Node's count. */
export function availableCpus(): number {
  const a = process.env.SDC_NATIVE === "0" ? null : nativeAddon().addon;
  return a ? a.defaultThreads() : availableParallelism();
}

/** Apply SDC_THREADS, SDC_ISA and SDC_WORKERS to the addon (exported for tests). */
export function configure(addon: NativeAddon, env: NodeJS.ProcessEnv): void {
  const t = env.SDC_THREADS;
  if (t !== undefined && t !== "") {
    if (!/^\d+$/.test(t.trim()) || Number(t) < 1 || Number(t) > 1024) throw new NativeSetupError(`SDC_THREADS must be a whole number from 1 to 1024, got '${t.slice(0, 40)}'`);
    addon.threads(Number(t));
  }
  const w = env.SDC_WORKERS?.trim();
  if (w) {
    if (w !== "apart" && w !== "anywhere") throw new NativeSetupError(`SDC_WORKERS must be apart (the default: the kernels' worker threads keep off the CPU the caller runs on) or anywhere, got '${w.slice(0, 40)}'`);
    addon.workers(w);
  }
  const isa = env.SDC_ISA;
  if (isa !== undefined && isa !== "") {
    try {
      addon.isa(isa.trim());
    } catch (e) {
      throw new NativeSetupError(`SDC_ISA=${isa.slice(0, 40)}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
}

/**
 * Another build of the addon, loaded beside the default one and configured from the same
 * environment (bench/step.ts --against: two builds' steps alternated in one process). Its own
 * copy of the kernels and thread team: Node loads an addon without RTLD_GLOBAL, so each copy
 * binds its own symbols.
 */
export function addonAt(path: string): NativeAddon {
  if (!existsSync(path)) throw new NativeSetupError(`no addon at ${path}`);
  const addon = createRequire(import.meta.url)(path) as NativeAddon;
  configure(addon, process.env);
  return addon;
}

export function requireNative(): NativeAddon {
  const n = nativeAddon();
  if (!n.addon) throw new GraphError(n.why);
  return n.addon;
}

/** One line for logs: ISA level and threads. */
export function nativeDetail(): string {
  const a = requireNative();
  return `native CPU kernels (${a.isa()}, ${a.threads()} threads)`;
}

const ASYNC = process.env.SDC_NATIVE_ASYNC !== "0";

/** Floats are placed at multiples of 16 (64 bytes: one AVX-512 vector, one cache line). */
const ALIGN = 16;
const alignUp = (n: number) => Math.ceil(n / ALIGN) * ALIGN;

/** Refuse a layout that does not fit in the memory this process may use (machine, cgroup, ulimit -v), before anything is allocated. */
function checkMemory(bytes: number, what: string): void {
  const budget = memoryBudget();
  if (bytes > budget.bytes) throw new CpuMemoryError(`${what} needs ${gib(bytes)} of memory; ${budget.why}: try a smaller --batch-size`);
}

/** A bump allocator of float offsets in one arena. */
class Layout {
  floats = 0;
  take(n: number): number {
    const at = this.floats;
    this.floats += alignUp(Math.max(1, n));
    return at;
  }
}

/** Place the live nodes of `g`: the ones `fixed` places, views with their source, the rest in `arena`. */
function placeGraph(g: StepGraph["graph"], live: Set<number>, arena: number, layout: Layout, fixed: (id: number) => Place | undefined, pooled: (id: number) => boolean, chains: readonly Chain[]): Map<number, Place> {
  const plan = planBuffers(g, live, (id) => fixed(id) === undefined && pooled(id), chainHolds(g, chains));
  const slots = plan.slotFloats.map((f) => layout.take(f));
  const at = new Map<number, Place>();
  for (const node of g.nodes) {
    if (!live.has(node.id) || node.op.kind === "view") continue;
    const f = fixed(node.id);
    const s = plan.slot.get(node.id);
    if (f) at.set(node.id, f);
    else if (s !== undefined) at.set(node.id, { arena, offset: slots[s] });
    else at.set(node.id, { arena, offset: layout.take(sizeOf(node.shape)) });
  }
  for (const node of g.nodes) if (live.has(node.id) && node.op.kind === "view") at.set(node.id, at.get(rootOf(g, node.id))!);
  return at;
}

/**
 * How a graph is lowered: `chains` (default: on unless SDC_CHAINS=0) runs attention's batched
 * kernels batch by batch as one instruction (chains.ts), with the same bits as one by one.
 */
export interface LowerOptions {
  chains?: boolean;
}
function chainsOf(g: StepGraph["graph"], live: Set<number>, outputs: readonly number[], o: LowerOptions | undefined): Chain[] {
  return (o?.chains ?? process.env.SDC_CHAINS !== "0") ? findChains(g, live, outputs) : [];
}

/** The program's instructions: one per node, or one per chain (at its first node). */
function writeProgram(w: ProgramWriter, g: StepGraph["graph"], live: Set<number>, chains: readonly Chain[], at: (id: number) => Place): void {
  const first = new Map(chains.map((c) => [c.nodes[0], c] as const));
  const inChain = new Set(chains.flatMap((c) => c.nodes));
  for (const node of g.nodes) {
    if (!live.has(node.id)) continue;
    const c = first.get(node.id);
    if (c) w.chain(g, c.nodes.map((id) => g.node(id)), c.nbatch, c.locals, at);
    else if (!inChain.has(node.id)) w.node(g, node, at);
  }
}

/** Views of the inputs (by name) and constants written once. */
function bindInputs(g: StepGraph["graph"], live: Set<number>, at: Map<number, Place>, views: (p: Place, n: number) => Float32Array): Map<string, Float32Array> {
  const inputs = new Map<string, Float32Array>();
  for (const node of g.nodes) {
    if (!live.has(node.id)) continue;
    const op = node.op;
    if (op.kind === "input") inputs.set(op.name, views(at.get(node.id)!, sizeOf(node.shape)));
    if (op.kind === "const") views(at.get(node.id)!, op.data.length).set(op.data);
  }
  return inputs;
}

function writeFeeds(inputs: Map<string, Float32Array>, feeds: Map<string, Float32Array>): void {
  for (const [name, view] of inputs) {
    const x = feeds.get(name);
    if (!x) throw new GraphError(`missing input "${name}"`);
    if (x.length !== view.length) throw new GraphError(`input "${name}" has ${x.length} values, expected ${view.length}`);
    view.set(x);
  }
}

export interface NativeStepTiming {
  loss: number;
  gradNorm: number;
  /** milliseconds inside the native call */
  runMs: number;
}

/** The training step of a StepGraph on the CPU (the native counterpart of WebGpuStep). */
export class NativeStep {
  /** parameter name -> offset (floats) in each flat region */
  readonly offsets = new Map<string, number>();
  readonly flatSize: number;
  stepCount = 0;
  emaUpdates = 0;
  lr: number;
  /** the arenas, and the GEMM scratch the program allocates at its first step */
  readonly bytes: { activations: number; flat: number; scratch: number };
  readonly kernels: number;
  readonly labels: string[];
  /** the graph node of each kernel (-1: the optimizer) */
  readonly kernelNodes: number[];
  private readonly flat: ArrayBuffer;
  private readonly act: ArrayBuffer;
  private readonly region: { p: Float32Array; g: Float32Array; m: Float32Array; v: Float32Array; ema: Float32Array | null; hyper: Float32Array; stats: Float32Array };
  private readonly inputs: Map<string, Float32Array>;
  private readonly loss: Float32Array;
  private readonly program: object;
  private readonly addon: NativeAddon;

  constructor(
    readonly sg: StepGraph,
    readonly adam: AdamConfig,
    lowering?: LowerOptions,
    /** the addon to run on (default: requireNative()'s) */
    addon?: NativeAddon,
  ) {
    this.addon = addon ?? requireNative();
    this.lr = adam.lr;
    let at = 0;
    for (const p of sg.params) {
      this.offsets.set(p.name, at);
      at += alignUp(sizeOf(p.shape));
    }
    const P = Math.max(at, ALIGN);
    this.flatSize = P;
    const regions = adam.ema > 0 ? 5 : 4;
    const flatFloats = P * regions + 2 * ALIGN;
    const g = sg.graph;
    const outputs = stepOutputs(sg);
    const live = liveNodes(g, outputs);
    const gradAt = gradientRoots(sg, this.offsets);
    const chains = chainsOf(g, live, outputs, lowering);
    const act = new Layout();
    const place = placeGraph(
      g,
      live,
      1,
      act,
      (id) => {
        const op = g.node(id).op;
        if (op.kind === "param") {
          const off = this.offsets.get(op.name);
          if (off === undefined) throw new GraphError(`parameter ${op.name} is not in the store`);
          return { arena: 0, offset: off };
        }
        const ga = gradAt.get(id);
        return ga === undefined ? undefined : { arena: 0, offset: P + ga };
      },
      (id) => {
        const k = g.node(id).op.kind;
        return k !== "input" && k !== "const" && id !== sg.loss.id;
      },
      chains,
    );
    const what = `the training step at batch ${sg.batch}`;
    checkMemory(act.floats * 4 + flatFloats * 4, what);
    this.flat = new ArrayBuffer(flatFloats * 4);
    this.act = new ArrayBuffer(Math.max(ALIGN, act.floats) * 4);
    const f = (i: number) => new Float32Array(this.flat, i * P * 4, P);
    const extra = regions * P;
    this.region = { p: f(0), g: f(1), m: f(2), v: f(3), ema: adam.ema > 0 ? f(4) : null, hyper: new Float32Array(this.flat, extra * 4, 4), stats: new Float32Array(this.flat, (extra + ALIGN) * 4, 2) };
    const arenas = [this.flat, this.act];
    const view = (p: Place, n: number) => new Float32Array(arenas[p.arena], p.offset * 4, n);
    this.inputs = bindInputs(g, live, place, view);
    this.loss = view(place.get(sg.loss.id)!, 1);
    const w = new ProgramWriter();
    writeProgram(w, g, live, chains, (id) => place.get(id)!);
    w.adam({
      g: { arena: 0, offset: P },
      p: { arena: 0, offset: 0 },
      m: { arena: 0, offset: 2 * P },
      v: { arena: 0, offset: 3 * P },
      ema: adam.ema > 0 ? { arena: 0, offset: 4 * P } : null,
      hyper: { arena: 0, offset: extra },
      stats: { arena: 0, offset: extra + ALIGN },
      n: P,
      beta1: adam.beta1,
      beta2: adam.beta2,
      eps: adam.eps,
      weightDecay: adam.weightDecay,
      clip: adam.clip,
      decoupled: adam.decoupled,
    });
    this.kernels = w.kernels;
    this.labels = w.labels;
    this.kernelNodes = w.nodes;
    this.program = this.addon.build(w.finish(), arenas);
    this.bytes = { activations: act.floats * 4, flat: flatFloats * 4, scratch: this.addon.scratchBytes(this.program) };
    checkMemory(this.bytes.activations + this.bytes.flat + this.bytes.scratch, what);
  }

  /** A parameter's values in place (the parameters or their EMA; sampling reads either). */
  paramView(name: string, which: "params" | "ema"): Float32Array {
    const off = this.offsets.get(name);
    const p = this.sg.params.find((x) => x.name === name);
    if (off === undefined || !p) throw new GraphError(`no parameter ${name}`);
    const r = which === "ema" && this.region.ema ? this.region.ema : this.region.p;
    return r.subarray(off, off + sizeOf(p.shape));
  }

  /** The ISA level and thread count of the addon this step runs on. */
  addonDetail(): string {
    return `${this.addon.isa()}, ${this.addon.threads()} threads`;
  }

  /** The arena and offset of a parameter (a forward pass reads it in place). */
  paramPlace(name: string, which: "params" | "ema"): { buffer: ArrayBuffer; offset: number } {
    const off = this.offsets.get(name);
    if (off === undefined) throw new GraphError(`no parameter ${name}`);
    const base = which === "ema" && this.region.ema ? 4 * this.flatSize : 0;
    return { buffer: this.flat, offset: base + off };
  }

  setParams(values: Map<string, Float32Array>, resetEma = true): void {
    for (const p of this.sg.params) {
      const x = values.get(p.name);
      if (!x || x.length !== sizeOf(p.shape)) throw new GraphError(`setParams: missing or misshapen ${p.name}`);
      const off = this.offsets.get(p.name)!;
      this.region.p.set(x, off);
      if (resetEma && this.region.ema) this.region.ema.set(x, off);
    }
  }

  /** The flat buffers by parameter name ("g": the last step's gradients, before clipping). */
  async readFlat(which: "params" | "g" | "m" | "v" | "ema"): Promise<Map<string, Float32Array> | null> {
    await this.idle();
    const r = which === "params" ? this.region.p : this.region[which];
    if (!r) return null;
    const out = new Map<string, Float32Array>();
    for (const p of this.sg.params) {
      const off = this.offsets.get(p.name)!;
      out.set(p.name, r.slice(off, off + sizeOf(p.shape)));
    }
    return out;
  }

  setState(m: Map<string, Float32Array>, v: Map<string, Float32Array>, ema: Map<string, Float32Array> | null, stepCount: number, emaUpdates: number): void {
    for (const p of this.sg.params) {
      const off = this.offsets.get(p.name)!;
      const need = (x: Map<string, Float32Array>, what: string) => {
        const t = x.get(p.name);
        if (!t || t.length !== sizeOf(p.shape)) throw new GraphError(`optimizer state: missing or misshapen ${what} of ${p.name}`);
        return t;
      };
      this.region.m.set(need(m, "exp_avg"), off);
      this.region.v.set(need(v, "exp_avg_sq"), off);
      if (ema && this.region.ema) this.region.ema.set(need(ema, "ema"), off);
    }
    this.stepCount = stepCount;
    this.emaUpdates = emaUpdates;
  }

  /** the step running on a worker thread, if any: nothing touches the arenas until it is done */
  private running: Promise<unknown> = Promise.resolve();

  /**
   * One training step. The kernels run on a worker thread (SDC_NATIVE_ASYNC=0: on this one), so
   * the caller can prepare the next batch meanwhile; a second call waits for the first before it
   * writes its inputs. With `profile`, runs here and adds each kernel's seconds to it.
   */
  async step(feeds: Map<string, Float32Array>, profile?: Float64Array): Promise<NativeStepTiming> {
    const mine = this.running;
    let done!: () => void;
    this.running = new Promise<void>((r) => (done = r));
    try {
      await mine;
      writeFeeds(this.inputs, feeds);
      const t = this.stepCount + 1;
      const a = this.adam;
      const decay = a.ema > 0 ? (a.emaWarmup ? Math.min(a.ema, (1 + this.emaUpdates) / (10 + this.emaUpdates)) : a.ema) : 0;
      this.region.hyper.set([this.lr, 1 - a.beta1 ** t, Math.sqrt(1 - a.beta2 ** t), decay]);
      // the counters move when the step starts, as on the GPU (the caller may queue the next one)
      this.stepCount = t;
      if (a.ema > 0) this.emaUpdates++;
      const t0 = performance.now();
      if (profile || !ASYNC) this.addon.run(this.program, profile);
      else await this.addon.runAsync(this.program);
      const runMs = performance.now() - t0;
      return { loss: this.loss[0], gradNorm: this.region.stats[0], runMs };
    } finally {
      done();
    }
  }

  /** Resolves when no step is running (before reading or writing the flat buffers). */
  idle(): Promise<void> {
    return this.running.then(() => undefined);
  }

  dispose(): void {}
}

/** A graph with one output compiled for the CPU: inputs by name, one native call per run. */
export interface CompiledGraph {
  kernels: number;
  run(feeds: Map<string, Float32Array>): Float32Array;
}

/** The velocity of a VelocityGraph on the CPU (sampling, validation), parameters read in place. */
export class NativeForward {
  private readonly c: CompiledGraph;
  readonly kernels: number;

  /** `param(name)` says where each parameter lives (NativeStep.paramPlace, or a store copy). */
  constructor(
    readonly vg: VelocityGraph,
    param: (name: string) => { buffer: ArrayBuffer; offset: number },
  ) {
    this.c = compileGraph(vg, param);
    this.kernels = this.c.kernels;
  }

  async run(feeds: Map<string, Float32Array>): Promise<Float32Array> {
    return this.c.run(feeds);
  }

  dispose(): void {}
}

/** A graph lowered for the addon, not yet built: what compileGraph decodes (and the decoder fuzz mutates). */
export interface LoweredGraph {
  program: Float64Array;
  /** arena 0 holds the activations, inputs and constants; the others are the parameters' buffers */
  arenas: ArrayBuffer[];
  kernels: number;
  inputs: Map<string, Float32Array>;
  out: Float32Array;
  /** bytes of the activation arena (the parameters' are the caller's) */
  bytes: number;
}

/** Lower any graph with one output `v`: places, the activation arena (memory-checked), the program. */
export function lowerGraph(vg: Pick<VelocityGraph, "graph" | "v" | "batch">, param: (name: string) => { buffer: ArrayBuffer; offset: number }, lowering?: LowerOptions): LoweredGraph {
  const g = vg.graph;
  const live = liveNodes(g, [vg.v.id]);
  const chains = chainsOf(g, live, [vg.v.id], lowering);
  const arenas: ArrayBuffer[] = [new ArrayBuffer(0)];
  const arenaOf = new Map<ArrayBuffer, number>();
  const layout = new Layout();
  const place = placeGraph(
    g,
    live,
    0,
    layout,
    (id) => {
      const op = g.node(id).op;
      if (op.kind !== "param") return undefined;
      const p = param(op.name);
      let a = arenaOf.get(p.buffer);
      if (a === undefined) {
        a = arenas.push(p.buffer) - 1;
        arenaOf.set(p.buffer, a);
      }
      return { arena: a, offset: p.offset };
    },
    (id) => {
      const k = g.node(id).op.kind;
      return k !== "input" && k !== "const" && id !== vg.v.id;
    },
    chains,
  );
  const bytes = Math.max(ALIGN, layout.floats) * 4;
  checkMemory(bytes, `the forward pass at batch ${vg.batch}`);
  arenas[0] = new ArrayBuffer(bytes);
  const view = (p: Place, n: number) => new Float32Array(arenas[p.arena], p.offset * 4, n);
  const inputs = bindInputs(g, live, place, view);
  const vp = place.get(vg.v.id);
  if (!vp) throw new GraphError("the output of the graph has no place");
  const out = view(vp, vg.v.size);
  const w = new ProgramWriter();
  writeProgram(w, g, live, chains, (id) => place.get(id)!);
  return { program: w.finish(), arenas, kernels: w.kernels, inputs, out, bytes };
}

/** Compile any graph with one output `v` (the velocity, or a test graph). */
export function compileGraph(vg: Pick<VelocityGraph, "graph" | "v" | "batch">, param: (name: string) => { buffer: ArrayBuffer; offset: number }, lowering?: LowerOptions): CompiledGraph {
  const addon = requireNative();
  const l = lowerGraph(vg, param, lowering);
  const program = addon.build(l.program, l.arenas);
  // the parameters' arenas are the caller's, already in memory: the new one and the scratch count
  checkMemory(l.bytes + addon.scratchBytes(program), `the forward pass at batch ${vg.batch}`);
  return {
    kernels: l.kernels,
    run(feeds) {
      writeFeeds(l.inputs, feeds);
      addon.run(program);
      return l.out.slice();
    },
  };
}

/** Parameters copied out of a ParamStore-like map into one arena (sdc sample / eval). */
export function paramArena(values: Map<string, Float32Array>): (name: string) => { buffer: ArrayBuffer; offset: number } {
  let total = 0;
  const offs = new Map<string, number>();
  for (const [n, v] of values) {
    offs.set(n, total);
    total += alignUp(v.length);
  }
  const buffer = new ArrayBuffer(Math.max(ALIGN, total) * 4);
  const f = new Float32Array(buffer);
  for (const [n, v] of values) f.set(v, offs.get(n)!);
  return (name) => {
    const offset = offs.get(name);
    if (offset === undefined) throw new GraphError(`no parameter ${name}`);
    return { buffer, offset };
  };
}
