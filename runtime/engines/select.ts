/** Which engine trains a run (`sdc train --engine`). */
import * as tf from "@tensorflow/tfjs";
import { UnsupportedOpError } from "../graph/graph.ts";
import { nativeAddon } from "../executors/native/native.ts";
import type { ModelBundle } from "../bundle.ts";
import { EngineError, type EngineName, type EngineOptions, type TrainEngine } from "./engine.ts";
import { StaticEngine } from "./static/engine.ts";
import { TfjsEngine } from "./tfjs/engine.ts";

/**
 * The engine for a run: `auto` is static on the webgpu backend and on the CPU backends when the
 * native executor is built (falling back to tfjs, with the reason logged, when it is not or the
 * spec uses an op the static engine lacks), else tfjs.
 */
export async function createEngine(which: EngineName, m: ModelBundle, opts: EngineOptions, batch: number, dims: [number, number, number], log: (s: string) => void): Promise<TrainEngine> {
  if (opts.precision === "bf16") return bf16Engine(which, m, opts, batch, dims);
  if (which === "tfjs") return new TfjsEngine(m, opts);
  const backend = tf.getBackend();
  if (backend !== "webgpu" && backend !== "wasm" && backend !== "cpu") {
    if (which === "static") throw new EngineError(`--engine static runs on the webgpu, wasm and cpu backends (this run uses ${backend}); use --engine tfjs`);
    return new TfjsEngine(m, opts);
  }
  // gradient accumulation runs on the tfjs engine only: the static step is one compiled graph per batch
  if ((opts.accumulate ?? 1) > 1) {
    const why = `gradient accumulation (accumulate ${opts.accumulate}) runs on the tfjs engine only: the static engine compiles one step for the whole batch`;
    if (which === "static") throw new EngineError(`${why}; use --engine tfjs, or accumulate 1 (a smaller --batch-size) on the static engine`);
    log(`${why}; training with tfjs`);
    return new TfjsEngine(m, opts);
  }
  if (backend !== "webgpu" && !nativeAddon().addon) {
    if (which === "static") throw new EngineError(`--engine static on the CPU needs the native executor: ${nativeAddon().why}`);
    log(`static engine unavailable (${nativeAddon().why}); training with tfjs`);
    return new TfjsEngine(m, opts);
  }
  try {
    return await StaticEngine.create(m, opts, batch, dims);
  } catch (e) {
    if (!(e instanceof UnsupportedOpError)) throw e;
    if (which === "static") throw new EngineError(e.message);
    log(`static engine unavailable (${e.message}); training with tfjs`);
    return new TfjsEngine(m, opts);
  }
}

/**
 * bf16 mixed precision runs on the static engine's native CPU kernels only (the tfjs ops and the
 * WGSL kernels are fp32): anything else is refused with the reason, never trained in fp32.
 */
async function bf16Engine(which: EngineName, m: ModelBundle, opts: EngineOptions, batch: number, dims: [number, number, number]): Promise<TrainEngine> {
  const why = "bf16 mixed precision runs on the static engine's native CPU kernels only";
  const backend = tf.getBackend();
  if (which === "tfjs") throw new EngineError(`precision bf16 with --engine tfjs: ${why} (the tfjs ops are fp32); use --engine static (or auto) on the wasm or cpu backend, or --precision fp32`);
  if (backend !== "wasm" && backend !== "cpu") throw new EngineError(`precision bf16 on the ${backend} backend: ${why} (the WGSL kernels are fp32); use --backend wasm or cpu, or --precision fp32`);
  if ((opts.accumulate ?? 1) > 1) throw new EngineError(`precision bf16 with gradient accumulation (accumulate ${opts.accumulate}): ${why}, which compiles one step for the whole batch; use accumulate 1 or --precision fp32`);
  if (!nativeAddon().addon) throw new EngineError(`precision bf16: ${why}, and the native executor is not available: ${nativeAddon().why}`);
  try {
    return await StaticEngine.create(m, opts, batch, dims);
  } catch (e) {
    if (e instanceof UnsupportedOpError) throw new EngineError(`precision bf16: ${why}, and ${e.message.replace(/; train this spec with --engine tfjs$/, "")}; use --precision fp32 (the tfjs engine)`);
    throw e;
  }
}
