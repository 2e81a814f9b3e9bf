/** `sdc export`: its arguments and options, and how they reach its command. */
import { Option, type Command } from "commander";
import { type CommandContext } from "./shared.ts";

export function defineExport(program: Command, { onResult }: CommandContext): void {
  program
    .command("export")
    .description("the trained model outside sdc: its forward pass as an ONNX file (--onnx), a static page that samples in the browser (--web)")
    .argument("<run>", "a run folder (its checkpoints/latest) or a checkpoint folder")
    .option("--onnx <file>", "write the network (with its learned text encoder) as ONNX, e.g. model.onnx")
    .option("--web <dir>", "write a self-contained page (index.html, TensorFlow.js, the model) to this folder")
    .option("--generated <dir>", "the compiled spec folder (default: generated/<spec name from the checkpoint's ir.json>)")
    .addOption(new Option("--weights <which>", "EMA or raw weights").choices(["ema", "raw"]).default("ema"))
    .action(async (run: string, o) => {
      const { runExport } = await import("../commands/export.ts");
      onResult(await runExport(run, { onnx: o.onnx, web: o.web, generated: o.generated, weights: o.weights }));
    });
}
