/** `sdc diff`: its arguments and options, and how they reach its command. */
import type { Command } from "commander";
import { type CommandContext } from "./shared.ts";

export function defineDiff(program: Command, { onResult, argv }: CommandContext): void {
  program
    .command("diff")
    .description("what changed between two specs, two variants or two compiled folders: parameters per module, the training step's GEMM work and GPU memory (sdc plan), every setting that differs")
    .usage("A [--variant V] [--set k=v ...] B [--variant V] [--set k=v ...] [--batch-size N] [--context-tokens T] [--depth D] [--no-plan] [--json]")
    .argument("<a>", "a .mdl spec (its --variant/--set follow it) or a compiled folder")
    .argument("<b>", "the other one")
    .allowUnknownOption()
    .allowExcessArguments()
    .action(async () => {
      // side options belong to the path before them, so diff reads its arguments in order itself
      const { runDiff } = await import("../commands/diff.ts");
      onResult(await runDiff(argv.slice(argv.indexOf("diff") + 1)));
    });
}
