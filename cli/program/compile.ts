/** `sdc compile`: its arguments and options, and how they reach its command. */
import type { Command } from "commander";
import { collect, type CommandContext } from "./shared.ts";

export function defineCompile(program: Command, { onResult }: CommandContext): void {
  program
    .command("compile")
    .description("check a .mdl spec (shapes, parameter counts, constraints) and generate its typed TensorFlow.js package")
    .argument("<spec>", "the .mdl file, e.g. specs/sd3.mdl")
    .option("--variant <name>", "compile a named variant of the spec")
    .option("--all-variants", "compile the spec and every variant")
    .option("--set <name=value>", "override a spec parameter or a setting (e.g. depth=4, train.batch=32); repeatable", collect)
    .option("--out-dir <dir>", "where generated folders go", "generated")
    .option("--json", "print the summary as JSON")
    .option("--check", "do not write; fail if the generated folder is out of date")
    .option("--no-write", "check the spec and print its summary; generate and write nothing")
    .option("-q, --quiet", "print only errors")
    .option("--lib-path <dir>", "a folder to look in for imports not found beside the importing file (before $SDC_PATH; `sdc/...` is the library shipped with sdc); repeatable", collect)
    .action(async (spec: string, o) => {
      const { runCompile } = await import("../commands/compile.ts");
      onResult(runCompile(spec, { variant: o.variant, allVariants: o.allVariants, set: o.set, outDir: o.outDir, json: o.json, check: o.check, noWrite: o.write === false, quiet: o.quiet, libPath: o.libPath }));
    });
}
