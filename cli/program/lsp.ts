/** `sdc lsp`: its arguments and options, and how they reach its command. */
import type { Command } from "commander";
import { type CommandContext } from "./shared.ts";

export function defineLsp(program: Command, { onResult }: CommandContext): void {
  program
    .command("lsp")
    .description("a language server for .mdl specs over stdio (diagnostics as you type, hover with shapes and parameter counts, go to definition, completion); editors start it")
    .option("--stdio", "talk over stdin/stdout (the default and only transport)")
    .action(async () => {
      const { runLsp } = await import("../commands/lsp.ts");
      onResult(await runLsp());
    });
}
