/**
 * Flow sampling and validation on the static engine's forward pass: the velocity traced per
 * batch size and compiled for the WebGPU device (forward.ts) or the CPU (native.ts), classifier-free guidance and the Euler/Heun
 * integration on the host by the one integrator of runtime/flow/sampler.ts (host arithmetic). Parameters are
 * read in place (a training step's flat buffers) or uploaded from a ParamStore (sdc sample,
 * sdc eval).
 */
/* eslint-disable @typescript-eslint/no-explicit-any */
import * as tf from "@tensorflow/tfjs";
import { driveAsync, flowIntegration, guidanceAt, guidanceRows, HOST_ARITH, integrateFlow } from "../../flow/sampler.ts";
import { checkGuidanceInterval, networkTime, velocitySign } from "../../flow/schedule.ts";
import { type FlowBatch, type ModelBundle, type SampleOpts, type ValidationSet } from "../../bundle.ts";
import { WebGpuForward } from "../../executors/webgpu/forward.ts";
import { fuseGraph } from "../../graph/fuse.ts";
import { NativeForward, nativeAddon, paramArena } from "../../executors/native/native.ts";
import { kernelOptionsFromEnv } from "../../executors/webgpu/gemm-table.ts";
import { GraphError, UnsupportedOpError } from "../../graph/graph.ts";
import { buildVelocityGraph, frozenContext, stepFeeds, textInputs } from "./step.ts";
import type { VelocityGraph } from "../../graph/step-graph.ts";
import type { Binding } from "../../executors/webgpu/webgpu.ts";

/** A compiled forward pass of the velocity (WebGpuForward, NativeForward). */
export interface VelocityForward {
  readonly vg: VelocityGraph;
  run(feeds: Map<string, Float32Array>): Promise<Float32Array>;
  dispose(): void;
}

/** Whether this backend has a static forward pass: webgpu (WGSL), or the CPU backends with the native executor built. */
export function staticForwardAvailable(): boolean {
  const b = tf.getBackend();
  return b === "webgpu" || ((b === "wasm" || b === "cpu") && nativeAddon().addon !== null);
}

/**
 * The static forward pass for `sdc sample` / `sdc eval`, or null (with the reason logged) where it
 * does not apply: a backend without one, or a spec it cannot trace.
 */
export async function staticFlowNetworkFor(m: ModelBundle, dims: [number, number, number], log: (s: string) => void): Promise<StaticFlowNetwork | null> {
  if (!staticForwardAvailable()) return null;
  const net = await StaticFlowNetwork.fromStore(m);
  try {
    await net.prepare(1, dims);
    return net;
  } catch (e) {
    net.dispose();
    if (!(e instanceof UnsupportedOpError)) throw e;
    log(`sampling with tfjs: ${e.message}`);
    return null;
  }
}

export class StaticFlowNetwork {
  private readonly forwards = new Map<number, Promise<VelocityForward>>();
  constructor(
    private readonly m: ModelBundle,
    /** compiles the velocity graph at one batch size (parameters bound by the caller) */
    private readonly compile: (vg: VelocityGraph) => Promise<VelocityForward>,
    private readonly release: () => void = () => {},
  ) {}

  /** On the WebGPU device, parameters read in place from `param` (e.g. a training step's flat buffers). */
  static webgpu(m: ModelBundle, device: unknown, param: (name: string) => Binding): StaticFlowNetwork {
    return new StaticFlowNetwork(m, (vg) => WebGpuForward.create(device, vg, param, kernelOptionsFromEnv()));
  }

  /** On the CPU (native executor), parameters read in place from `param`. */
  static native(m: ModelBundle, param: (name: string) => { buffer: ArrayBuffer; offset: number }): StaticFlowNetwork {
    return new StaticFlowNetwork(m, async (vg) => {
      fuseGraph(vg.graph, [vg.v.id]);
      return new NativeForward(vg, param);
    });
  }

  /** A copy of the ParamStore's current values (sample, eval) on this backend's executor. */
  static async fromStore(m: ModelBundle): Promise<StaticFlowNetwork> {
    const values = new Map<string, Float32Array>();
    for (const [name, v] of m.store.vars) values.set(name, (await v.data()) as Float32Array);
    if (tf.getBackend() !== "webgpu") return StaticFlowNetwork.native(m, paramArena(values));
    const device = (tf.backend() as unknown as { device: any }).device;
    const bindings = new Map<string, Binding>();
    for (const [name, data] of values) {
      const buffer = device.createBuffer({ size: Math.max(16, data.length * 4), usage: 0x80 | 0x08 });
      device.queue.writeBuffer(buffer, 0, data);
      bindings.set(name, { buffer, offset: 0, size: data.length * 4 });
    }
    const param = (name: string) => {
      const b = bindings.get(name);
      if (!b) throw new GraphError(`no parameter ${name}`);
      return b;
    };
    return new StaticFlowNetwork(
      m,
      (vg) => WebGpuForward.create(device, vg, param, kernelOptionsFromEnv()),
      () => {
        for (const b of bindings.values()) b.buffer.destroy();
      },
    );
  }

  /** The velocity at batch `n` (traced, fused and compiled on first use). */
  private forward(n: number, dims: [number, number, number]): Promise<VelocityForward> {
    let f = this.forwards.get(n);
    if (!f) {
      f = this.compile(buildVelocityGraph(this.m, n, dims, frozenContext(this.m)));
      this.forwards.set(n, f);
    }
    return f;
  }

  /** Check that the network traces (UnsupportedOpError otherwise) and compile it at batch `n`. */
  async prepare(n: number, dims: [number, number, number]): Promise<void> {
    await this.forward(n, dims);
  }

  dispose(): void {
    for (const f of this.forwards.values()) void f.then((x) => x.dispose()).catch(() => undefined);
    this.release();
  }

  /** Mean flow loss over a validation set, as trainer.ts validationLoss. */
  async validationLoss(v: ValidationSet, dims: [number, number, number], batch: number): Promise<number> {
    const per = dims[0] * dims[1] * dims[2];
    let total = 0;
    for (let s = 0; s < v.n; s += batch) {
      const e = Math.min(v.n, s + batch);
      const b: FlowBatch = { x0: v.x0.subarray(s * per, e * per), eps: v.eps.subarray(s * per, e * per), sigma: v.sigma.subarray(s, e), prompts: v.prompts.slice(s, e) };
      const f = await this.forward(e - s, dims);
      const feeds = stepFeeds(f.vg, this.m.flow, b, await textInputs(this.m, b.prompts));
      const out = await f.run(feeds);
      const target = feeds.get("target")!;
      const w = feeds.get("weight")!;
      let l = 0;
      for (let i = 0; i < e - s; i++) {
        let sq = 0;
        for (let j = i * per; j < (i + 1) * per; j++) sq += (out[j] - target[j]) ** 2;
        l += w[i] * sq;
      }
      total += l * (e - s);
    }
    return total / v.n;
  }

  /** sampleImages (runtime/train/trainer.ts) on host arrays: the same integrator and guidance (runtime/flow/sampler.ts). */
  async sample(z: Float32Array, prompts: readonly string[], dims: [number, number, number], opts: SampleOpts): Promise<Float32Array> {
    const flow = this.m.flow;
    const scale = opts.cfg ?? flow.guidance;
    const plan = flowIntegration(flow, { steps: opts.steps, sampler: opts.sampler });
    const b = prompts.length;
    const per = dims[0] * dims[1] * dims[2];
    const interval = opts.cfgInterval ?? flow.guidanceInterval ?? null;
    if (interval) checkGuidanceInterval(interval);
    const { rows, both } = guidanceRows(prompts, scale);
    const f = await this.forward(rows.length, dims);
    const text = await textInputs(this.m, rows);
    const probe: FlowBatch = { x0: new Float32Array(rows.length * per), eps: new Float32Array(rows.length * per), sigma: new Float32Array(rows.length), prompts: rows };
    const feeds = stepFeeds(f.vg, flow, probe, text); // text inputs; xt and t are set per call
    const sign = velocitySign(flow);
    const xin = new Float32Array(rows.length * per);
    const slope = async (x: Float32Array, sigma: number): Promise<Float32Array> => {
      xin.set(x);
      if (both) xin.set(x, b * per);
      feeds.set("xt", xin);
      feeds.set("t", new Float32Array(rows.length).fill(networkTime(flow, sigma)));
      const v = await f.run(feeds);
      const d = new Float32Array(b * per);
      const g = guidanceAt(scale, sigma, interval);
      for (let i = 0; i < d.length; i++) d[i] = sign * (both ? v[b * per + i] + (v[i] - v[b * per + i]) * g : v[i]);
      return d;
    };
    return driveAsync(integrateFlow(HOST_ARITH, Float32Array.from(z), plan, (i) => opts.onStep?.(i + 1, plan.steps)), slope);
  }
}
