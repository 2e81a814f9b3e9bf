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
