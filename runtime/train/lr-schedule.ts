/**
 * The learning rate of optimizer step k (1-based): a linear warmup over `warmup` steps
 * (lr * k / warmup), then `schedule` over the remaining steps up to `steps`:
 *   constant  lr
 *   linear    lr * (1 - p)
 *   cosine    lr * (1 + cos(pi p)) / 2
 * with p = (k - warmup - 1) / (steps - warmup) in [0, 1): the first step after the warmup has
 * the full rate, the last a small positive one (as diffusers' and transformers' schedulers).
 */
export type LrScheduleName = "constant" | "linear" | "cosine";

export interface LrScheduleOptions {
  lr: number;
  warmup: number;
  schedule?: LrScheduleName;
  /** the run's total steps (needed by linear and cosine) */
  steps?: number;
}

export function lrAt(o: LrScheduleOptions, k: number): number {
  if (o.warmup > 0 && k <= o.warmup) return o.lr * Math.min(1, k / o.warmup);
  const schedule = o.schedule ?? "constant";
  if (schedule === "constant" || !o.steps || o.steps <= o.warmup) return o.lr;
  const p = Math.min(1, Math.max(0, (k - o.warmup - 1) / (o.steps - o.warmup)));
  return schedule === "linear" ? o.lr * (1 - p) : o.lr * 0.5 * (1 + Math.cos(Math.PI * p));
}
