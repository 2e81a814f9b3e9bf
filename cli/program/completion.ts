/** `sdc completion`: its arguments and options, and how they reach its command. */
import { Argument, type Command } from "commander";
import { EXIT } from "../errors.ts";
import { type CommandContext } from "./shared.ts";

export function defineCompletion(program: Command, { onResult }: CommandContext): void {
  program
    .command("completion")
    .description("print a shell completion script, generated from these commands and options: eval \"$(sdc completion bash)\"")
    .addArgument(new Argument("<shell>", "bash or zsh").choices(["bash", "zsh"]))
    .action(async (shell: "bash" | "zsh") => {
      const { bashCompletion, zshCompletion } = await import("../completion.ts");
      process.stdout.write(shell === "bash" ? bashCompletion(program) : zshCompletion(program));
      onResult(EXIT.ok);
    });
}
