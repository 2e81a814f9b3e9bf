/** `sdc report`: its arguments and options, and how they reach its command. */
import type { Command } from "commander";
import { type CommandContext } from "./shared.ts";

export function defineReport(program: Command, { onResult }: CommandContext): void {
  program
    .command("report")
    .description("write one self-contained HTML page for a run (loss curves, sample grids over the steps, eval per CFG) or an ablation (table and curves of all units)")
    .argument("<dir>", "a run folder (e.g. output/sd3-tiny) or an ablation folder (e.g. ablations/sd3)")
    .option("--out <file>", "the HTML file (default: DIR/report.html)")
    .action(async (dir: string, o) => {
      const { runReportCli } = await import("../commands/report.ts");
      onResult(runReportCli(dir, { out: o.out }));
    });
}
