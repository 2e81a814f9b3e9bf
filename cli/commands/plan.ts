/**
 * `sdc plan DIR`: the static training step of a compiled spec at a batch size, measured before
 * anything runs: dispatches, GEMM work, GPU memory, the largest tensor (runtime/engines/static/plan.ts).
 * Needs no GPU: the graph is traced on the CPU.
 */
import { initBackend } from "../../runtime/backend.ts";
import { kernelOptionsFromEnv } from "../../runtime/executors/webgpu/gemm-table.ts";
import { planStep, type StepPlan } from "../../runtime/engines/static/plan.ts";
import { buildStepGraph } from "../../runtime/engines/static/step.ts";
import { inputSources } from "../../ir/ir.ts";
import { buildTraceModel } from "../../runtime/train/trainer.ts";
import { EXIT, InputError } from "../errors.ts";
import { loadCompiled } from "../generated.ts";

export interface PlanOptions {
  batch?: number;
  contextTokens?: number;
  json?: boolean;
}

export async function planRun(dir: string, o: PlanOptions): Promise<StepPlan & { spec: string; contextTokens: number | null }> {
  const loaded = await loadCompiled(dir);
  if (loaded.spec.task !== "diffusion") throw new InputError(`${dir} is a classifier; sdc plan measures diffusion training steps`);
  await initBackend("cpu", { log: () => {} });
  return stepPlanOf(loaded, o);
}

/** The plan of a loaded diffusion spec's training step, on the backend already initialized (sdc eval uses it for training FLOPs). */
export function stepPlanOf(loaded: Awaited<ReturnType<typeof loadCompiled>>, o: PlanOptions): StepPlan & { spec: string; contextTokens: number | null } {
  if (loaded.spec.task !== "diffusion") throw new InputError(`${loaded.ir.spec.name} is a classifier; a plan measures diffusion training steps`);
  const ir = loaded.ir;
  const batch = o.batch ?? ir.train.batch;
  const dims: [number, number, number] = [ir.data.height, ir.data.width, ir.data.channels];
  const m = buildTraceModel(loaded.spec, ir, 0);
  // frozen text features are step inputs (their token count may be changed); a learned encoder is traced
  const sources = inputSources(ir);
  const ctx = ir.network.inputs[sources.indexOf("context")];
  const pooled = ir.network.inputs[sources.indexOf("pooled")];
  const frozen = (ir.text.kind === "sd3_pretrained" || ir.text.kind === "external") && ctx !== undefined && pooled !== undefined;
  const tokens = frozen ? (o.contextTokens ?? Number(ctx.shape[1])) : null;
  const context = frozen ? { tokens: tokens!, width: Number(ctx.shape[2]), pooled: Number(pooled.shape[1]) } : undefined;
  const sg = buildStepGraph(m, batch, dims, context);
  const plan = planStep(sg, { ema: ir.train.ema > 0, kernels: kernelOptionsFromEnv() });
  m.store.dispose();
  return { spec: ir.spec.name, contextTokens: tokens, ...plan };
}

export async function runPlan(dir: string, o: PlanOptions, out: (s: string) => void = (s) => process.stdout.write(s + "\n")): Promise<number> {
  const p = await planRun(dir, o);
  if (o.json) {
    out(JSON.stringify(p, null, 2));
    return EXIT.ok;
  }
  const rows: [string, string][] = [
    ["training step", `${p.spec}, batch ${p.batch}${p.contextTokens !== null ? `, ${p.contextTokens} context tokens` : ""}`],
    ["parameters", p.params.toLocaleString("en-US")],
    ["dispatches per step", `${p.dispatches} (${p.kernelsBeforeFusion} kernels before fusion; ${p.gemms} GEMMs)`],
    ["GEMM work", `${p.gemmGflop} GFLOP per step`],
    ["GPU memory", `${p.optimizerMiB} MiB parameters + gradients + Adam, ${p.activationMiB} MiB activations (${p.activationMiBNoReuse} without buffer reuse)`],
    ["largest tensor", `${p.largestTensorMiB} MiB: ${p.largestTensor}`],
  ];
  const w = Math.max(...rows.map((r) => r[0].length));
  for (const [k, v] of rows) out(`${k.padEnd(w)}  ${v}`);
  if (p.largestTensorMiB > 128) out(`warning: the largest tensor exceeds WebGPU's default storage binding limit (128 MiB); it runs only where the adapter allows larger bindings (an H200 does)`);
  return EXIT.ok;
}
