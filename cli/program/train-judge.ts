/** `sdc train-judge`: its arguments and options, and how they reach its command. */
import { Option, type Command } from "commander";
import { parseFloatArg, parseIntArg, parsePositiveArg } from "../errors.ts";
import { MAX_BATCH, type CommandContext } from "./shared.ts";

export function defineTrainJudge(program: Command, { onResult }: CommandContext): void {
  program
    .command("train-judge")
    .description("train the eval judge (an MNIST CNN classifier compiled from specs/judge.mdl) and write weights/judge.safetensors + .json with its test accuracy")
    .option("--generated <dir>", "the compiled judge spec", "generated/judge")
    .option("--epochs <n>", "epochs over the 60k MNIST training images", "3")
    .option("--batch-size <n>", "batch size (default: the spec's, 128)")
    .option("--lr <x>", "peak Adam learning rate, cosine-decayed (default: the spec's)")
    .option("--seed <n>", "seed for initialisation, data order and shifts (default: the spec's)")
    .option("--shift <px>", "random translations of up to this many pixels (0 = none)", "1")
    .option("--min-accuracy <x>", "exit 1 if the test accuracy is below this fraction", "0")
    .option("--out <file>", "weights to write (a .json report goes beside it)", "weights/judge.safetensors")
    .addOption(new Option("--backend <name>", "tensor backend").choices(["auto", "tensorflow", "webgpu", "wasm", "cpu"]).default("wasm"))
    .action(async (o) => {
      const { runTrainJudgeCli } = await import("../commands/judge.ts");
      onResult(
        await runTrainJudgeCli(
          {
            generated: o.generated,
            epochs: parseIntArg("--epochs", o.epochs, 1),
            batch: o.batchSize !== undefined ? parseIntArg("--batch-size", o.batchSize, 1, MAX_BATCH) : undefined,
            lr: o.lr !== undefined ? parsePositiveArg("--lr", o.lr) : undefined,
            seed: o.seed !== undefined ? parseIntArg("--seed", o.seed, 0) : undefined,
            shift: parseIntArg("--shift", o.shift, 0),
            out: o.out,
            backend: o.backend,
          },
          parseFloatArg("--min-accuracy", o.minAccuracy, 0),
        ),
      );
    });
}
