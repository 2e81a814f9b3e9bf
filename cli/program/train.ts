/** `sdc train`: its arguments and options, and how they reach its command. */
import { Option, type Command } from "commander";
import type { CommandContext } from "./shared.ts";

export function defineTrain(program: Command, { onResult, argv }: CommandContext): void {
  program
    .command("train")
    .description("train a compiled spec with rectified flow (MNIST with text prompts by default), writing sample grids and checkpoints")
    .argument("<generated>", "a compiled spec folder, e.g. generated/sd3")
    .option("--steps <n>", "training steps (default: the spec's)")
    .option("--batch-size <n>", "batch size (default: the spec's)")
    .option("--lr <x>", "learning rate (default: the spec's)")
    .option("--seed <n>", "random seed (default: the spec's)")
    .addOption(new Option("--backend <name>", "tensor backend: auto picks tensorflow, webgpu, wasm, cpu in that order").choices(["auto", "tensorflow", "webgpu", "wasm", "cpu"]).default("auto"))
    .addOption(new Option("--engine <name>", "training engine: static (the whole step as one compiled graph: WebGPU kernels on webgpu, native C++ kernels on the CPU), tfjs (eager ops); auto = static where it is available").choices(["auto", "tfjs", "static"]).default("auto"))
    .option("--out <dir>", "output folder (default: output/<name>)")
    .option("--resume [dir]", "continue from a checkpoint folder or a run folder (its latest checkpoint), with the run's settings (config.json); alone or `latest`: the newest run of this package under output/")
    .option("--sample-every <n>", "steps between sample grids (default: the spec's)")
    .option("--checkpoint-every <n>", "steps between checkpoints (default: the spec's)")
    .option("--samples <n>", "images per sample grid (default: the spec's)")
    .option("--sample-steps <n>", "sampler steps for grids (default: the spec's)")
    .option("--warmup <n>", "learning-rate warmup steps (default: the spec's)")
    .addOption(new Option("--lr-schedule <name>", "learning rate after the warmup: constant, or linear/cosine decay to 0 at the last step (default: the spec's, constant)").choices(["constant", "linear", "cosine"]))
    .option("--grad-accum <k>", "gradient accumulation: run each step's batch as k micro-batches, gradients summed (same update, less memory; tfjs engine)")
    .option("--keep-checkpoints <n>", "keep only the last N checkpoints (0 = all; default: the spec's)")
    .option("--keep-best", "also keep the checkpoint with the lowest validation loss (checkpoints/best)")
    .option("--precision <p>", "training precision: fp32, or bf16 mixed precision (GEMM operands rounded to bf16, fp32 accumulation; static engine on the CPU) (default: the spec's, fp32)")
    .option("--no-progress", "no progress bar")
    .option("--text-encoders <list>", "sd3_pretrained specs: local encoder folders clip_l=DIR,clip_g=DIR,t5=DIR (t5=none: no T5; cache=DIR|off: embedding cache); see docs/text-encoders.md")
    .action(async (dir: string, o) => {
      const { runTrain } = await import("../commands/train.ts");
      const { parseSettingFlags } = await import("../run-config.ts");
      onResult(await runTrain(dir, { ...parseSettingFlags(o), backend: o.backend, engine: o.engine, out: o.out, resume: o.resume, argv: ["sdc", ...argv], progress: o.progress, textEncoders: o.textEncoders }));
    });
}
