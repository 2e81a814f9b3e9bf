/** `sdc sample`: its arguments and options, and how they reach its command. */
import { Option, type Command } from "commander";
import { parseFloatArg, parseIntArg } from "../errors.ts";
import { collect, type CommandContext } from "./shared.ts";

export function defineSample(program: Command, { onResult }: CommandContext): void {
  program
    .command("sample")
    .description("generate images from a checkpoint for the prompts you give")
    .argument("<generated>", "a compiled spec folder, e.g. generated/sd3")
    .requiredOption("--checkpoint <dir>", "a checkpoint folder (or a run folder: its latest checkpoint)")
    .option("--prompt <text>", "a prompt; repeatable", collect)
    .option("--n <count>", "images per prompt", "1")
    .option("--cfg <scale>", "classifier-free guidance scale (default: the spec's)")
    .option("--steps <n>", "sampler steps (default: the spec's)")
    .addOption(new Option("--sampler <name>", "ODE sampler (default: the spec's)").choices(["euler", "heun"]))
    .option("--seed <n>", "noise seed", "0")
    .option("--out <file>", "PNG grid to write", "samples.png")
    .addOption(new Option("--backend <name>", "tensor backend").choices(["auto", "tensorflow", "webgpu", "wasm", "cpu"]).default("auto"))
    .option("--no-ema", "use the raw weights even if the checkpoint has EMA weights")
    .option("--text-encoders <list>", "sd3_pretrained specs: local encoder folders clip_l=DIR,clip_g=DIR,t5=DIR (as for train)")
    .action(async (dir: string, o) => {
      const { runSample } = await import("../commands/sample.ts");
      onResult(
        await runSample(dir, {
          checkpoint: o.checkpoint,
          prompts: o.prompt ?? [],
          n: parseIntArg("--n", o.n, 1, 10000),
          cfg: o.cfg !== undefined ? parseFloatArg("--cfg", o.cfg, 0) : undefined,
          steps: o.steps !== undefined ? parseIntArg("--steps", o.steps, 1, 100000) : undefined,
          sampler: o.sampler,
          seed: parseIntArg("--seed", o.seed, 0),
          out: o.out,
          backend: o.backend,
          ema: o.ema,
          textEncoders: o.textEncoders,
        }),
      );
    });
}
