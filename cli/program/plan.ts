/** `sdc plan`: its arguments and options, and how they reach its command. */
import type { Command } from "commander";
import { parseIntArg } from "../errors.ts";
import { MAX_BATCH, type CommandContext } from "./shared.ts";

export function definePlan(program: Command, { onResult }: CommandContext): void {
  program
    .command("plan")
    .description("what a training step will cost on the static engine, before anything runs: dispatches, GEMM work, GPU memory, the largest tensor")
    .argument("<generated>", "a compiled spec folder, e.g. generated/sd3")
    .option("--batch-size <n>", "batch size (default: the spec's)")
    .option("--context-tokens <n>", "frozen-encoder specs: context length (default: the spec's)")
    .option("--json", "print JSON")
    .action(async (dir: string, o) => {
      const { runPlan } = await import("../commands/plan.ts");
      onResult(
        await runPlan(dir, {
          batch: o.batchSize !== undefined ? parseIntArg("--batch-size", o.batchSize, 1, MAX_BATCH) : undefined,
          contextTokens: o.contextTokens !== undefined ? parseIntArg("--context-tokens", o.contextTokens, 1) : undefined,
          json: o.json,
        }),
      );
    });
}
