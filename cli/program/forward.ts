/** `sdc forward`: its arguments and options, and how they reach its command. */
import { Option, type Command } from "commander";
import { EXIT } from "../errors.ts";
import { type CommandContext } from "./shared.ts";

export function defineForward(program: Command, { onResult }: CommandContext): void {
  program
    .command("forward")
    .description("run a compiled network once on given weights and inputs (safetensors, channels first) and write its output")
    .argument("<generated>", "a compiled spec folder, e.g. generated/sd3")
    .requiredOption("--weights <file>", "state dict (.safetensors) with the reference's parameter names")
    .requiredOption("--inputs <file>", "x [B,C,H,W], timestep [B], text_embeddings [B,T,D], pooled_text_embeddings [B,P]")
    .option("--out <file>", "write `output` [B,C,H,W] here")
    .addOption(new Option("--backend <name>", "tensor backend").choices(["auto", "tensorflow", "webgpu", "wasm", "cpu"]).default("cpu"))
    .action(async (dir: string, o) => {
      const { runForward } = await import("../commands/forward.ts");
      // the backend starts once the files have been read and checked (a bad input is one line)
      const startBackend = async () => {
        const { initBackend } = await import("../../runtime/backend.ts");
        const b = await initBackend(o.backend, { log: (m) => process.stderr.write(m + "\n") });
        process.stderr.write(`backend: ${b.detail}\n`);
      };
      await runForward(dir, { weights: o.weights, inputs: o.inputs, out: o.out, startBackend });
      onResult(EXIT.ok);
    });
}
