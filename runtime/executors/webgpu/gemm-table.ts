/**
 * GEMM configurations tuned per product shape (bench/gemm-tune.ts on the GPU machine; key:
 * kernels.ts gemmKey). Shapes not listed use the heuristic chooseTile. Environment overrides:
 * SDC_GEMM_TILE pins a tiling for every product, SDC_GEMM_SPLIT a split-K factor (tuning, tests),
 * SDC_GEMM_TABLE=file.json replaces this table.
 */
import { readFileSync } from "node:fs";
import type { GemmConfig, KernelOptions } from "./kernels.ts";

/**
 * Tuned on one NVIDIA H200 (Dawn/Vulkan, driver 580) for the step shapes of specs/sd3 and
 * specs/sd3-seed (8 and 205 context tokens) at batch 64: bench/results/static-h200-retuned.
 * The configurations are correct on any device; they are fastest on the one they were tuned on.
 */
export const TUNED_GEMMS: Record<string, GemmConfig> = {
  "1:13120x384x384:kk": { tile: "128", split: 4 },
  "1:13120x384x384:kn": { tile: "64", split: 1 },
  "1:384x384x13120:mn": { tile: "32x64", split: 8 },
  "1:13120x1536x384:kk": { tile: "128", split: 1 },
  "1:13120x384x1536:kk": { tile: "128", split: 4 },
  "1:13120x1536x384:kn": { tile: "64", split: 1 },
  "1:1536x384x13120:mn": { tile: "64", split: 8 },
  "1:13120x384x1536:kn": { tile: "64", split: 4 },
  "1:384x1536x13120:mn": { tile: "64", split: 8 },
  "1:1024x384x384:kk": { tile: "128", split: 8 },
  "1:1024x1536x384:kk": { tile: "64", split: 1 },
  "1:1024x384x1536:kk": { tile: "128", split: 8 },
  "1:1024x1536x384:kn": { tile: "64", split: 1 },
  "1:1536x384x1024:mn": { tile: "64", split: 8 },
  "1:1024x384x1536:kn": { tile: "64", split: 8 },
  "1:384x1536x1024:mn": { tile: "64", split: 8 },
  "1:1024x384x384:kn": { tile: "64", split: 4 },
  "1:384x384x1024:mn": { tile: "64", split: 8 },
  "1:13120x384x2048:kk": { tile: "128", split: 4 },
  "1:2048x384x13120:mn": { tile: "64", split: 8 },
  "1:512x384x384:kk": { tile: "64", split: 8 },
  "1:512x384x384:kn": { tile: "32", split: 1 },
  "1:384x384x512:mn": { tile: "64", split: 8 },
  "1:512x1536x384:kk": { tile: "128", split: 4 },
  "1:512x384x1536:kk": { tile: "64", split: 8 },
  "1:512x1536x384:kn": { tile: "64", split: 4 },
  "1:1536x384x512:mn": { tile: "64", split: 8 },
  "1:512x384x1536:kn": { tile: "64", split: 8 },
  "1:384x1536x512:mn": { tile: "64", split: 8 },
  "1:64x2304x384:kk": { tile: "64", split: 8 },
  "1:64x384x2304:kn": { tile: "32", split: 8 },
  "1:384x2304x64:mn": { tile: "32x64", split: 1 },
  "1:512x384x2048:kk": { tile: "64", split: 8 },
  "1:2048x384x512:mn": { tile: "64", split: 4 },
  "1:512x256x256:kk": { tile: "64", split: 8 },
  "1:512x1024x256:kk": { tile: "128", split: 8 },
  "1:512x256x1024:kk": { tile: "64", split: 8 },
  "1:512x1024x256:kn": { tile: "128", split: 8 },
  "1:1024x256x512:mn": { tile: "64", split: 8 },
  "1:512x256x1024:kn": { tile: "64", split: 8 },
  "1:256x1024x512:mn": { tile: "64", split: 8 },
  "1:512x256x256:kn": { tile: "64", split: 8 },
  "1:256x256x512:mn": { tile: "32", split: 8 },
  "1:64x768x384:kk": { tile: "64", split: 8 },
  "1:64x384x768:kn": { tile: "32", split: 8 },
  "1:384x768x64:mn": { tile: "32", split: 1 },
  "1:64x384x2048:kk": { tile: "32", split: 8 },
  "1:2048x384x64:mn": { tile: "32x64", split: 1 },
  "1:1024x384x64:kk": { tile: "64", split: 2 },
  "1:1024x64x384:kk": { tile: "64", split: 8 },
  "1:1024x384x64:kn": { tile: "32", split: 1 },
  "1:384x64x1024:mn": { tile: "32", split: 8 },
  "1:64x384x1024:mn": { tile: "32", split: 8 },
  "384:221x221x64:kk": { tile: "128", split: 1 },
  "384:221x64x221:kn": { tile: "64", split: 1 },
  "1:64x384x384:kk": { tile: "32", split: 8 },
  "1:64x384x384:kn": { tile: "32", split: 8 },
  "1:384x384x64:mn": { tile: "32", split: 1 },
  "1:512x384x256:kk": { tile: "64", split: 8 },
  "1:512x256x384:kn": { tile: "64", split: 8 },
  "1:256x384x512:mn": { tile: "32x64", split: 8 },
  "384:221x64x221:mn": { tile: "64", split: 1 },
  "384:64x221x221:mn": { tile: "64", split: 1 },
  "1:64x384x256:kk": { tile: "64", split: 8 },
  "1:256x384x64:mn": { tile: "32", split: 1 },
  "1:64x256x384:kn": { tile: "32", split: 8 },
  "1:512x256x32:kn": { tile: "32", split: 1 },
  "1:32x256x512:mn": { tile: "32", split: 8 },
  "384:24x24x64:kk": { tile: "32", split: 1 },
  "384:24x64x24:kn": { tile: "32x64", split: 1 },
  "384:24x64x24:mn": { tile: "32x64", split: 1 },
  "384:64x24x24:mn": { tile: "64", split: 1 },
  "256:8x8x64:kk": { tile: "32", split: 1 },
  "256:8x64x8:kn": { tile: "32x64", split: 1 },
  "256:8x64x8:mn": { tile: "32x64", split: 1 },
  "256:64x8x8:mn": { tile: "32", split: 1 },
};

/** Kernel options from SDC_GEMM_TILE, SDC_GEMM_SPLIT and SDC_GEMM_TABLE (a JSON file from bench/gemm-tune). */
export function kernelOptionsFromEnv(env: Record<string, string | undefined> = process.env, table: Record<string, GemmConfig> = TUNED_GEMMS): KernelOptions {
  const split = env.SDC_GEMM_SPLIT ? Number(env.SDC_GEMM_SPLIT) : undefined;
  if (env.SDC_GEMM_TABLE) table = JSON.parse(readFileSync(env.SDC_GEMM_TABLE, "utf8")) as Record<string, GemmConfig>;
  return { gemmTile: env.SDC_GEMM_TILE, gemmSplit: split, gemmTable: env.SDC_GEMM_TILE || split ? undefined : table };
}
