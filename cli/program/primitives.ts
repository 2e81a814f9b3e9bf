/** `sdc primitives`: its arguments and options, and how they reach its command. */
import type { Command } from "commander";
import { type CommandContext } from "./shared.ts";

export function definePrimitives(program: Command, { onResult }: CommandContext): void {
  program
    .command("primitives")
    .description("list the primitives a spec composes networks from: signatures, arguments and defaults, shapes, parameters and their state-dict names (from the compiler's own table)")
    .argument("[names...]", "only these primitives")
    .option("--markdown", "print docs/primitives.md")
    .option("--json", "print JSON")
    .action(async (names: string[], o) => {
      const { runPrimitives } = await import("../commands/primitives.ts");
      onResult(runPrimitives(names, { markdown: o.markdown, json: o.json }));
    });
}
