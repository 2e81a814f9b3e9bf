/** `sdc eval`: its arguments and options, and how they reach its command. */
import { Option, type Command } from "commander";
import { UsageError, parseIntArg } from "../errors.ts";
import { EVAL_PER_DIGIT, type CommandContext } from "./shared.ts";

/** --bootstrap N: 0 (no FD interval) or 2 and more resamples. */
function parseBootstrap(v: string): number {
  const n = parseIntArg("--bootstrap", v, 0);
  if (n === 1) throw new UsageError("--bootstrap must be 0 (no FD interval) or 2 or more resamples, got 1");
  return n;
}

export function defineEval(program: Command, { onResult }: CommandContext): void {
  program
    .command("eval")
    .description("measure a trained model: prompt accuracy (judged by the MNIST classifier) with its 95% Wilson interval and per-digit counts, judge-feature Fréchet distance (not Inception FID) with a 95% bootstrap interval, validation loss, sampler time, per CFG scale")
    .argument("<run>", "a run folder (its checkpoints/latest) or a checkpoint folder")
    .option("--generated <dir>", "the compiled spec folder (default: generated/<spec name from the checkpoint's ir.json>)")
    .option("--per-digit <n>", "generated images per digit, half prompted \"7\", half \"seven\"; 100 (1,000 images) puts the 95% interval of a 99% accuracy at 98.2-99.5%", EVAL_PER_DIGIT)
    .option("--cfg <list>", "comma-separated CFG scales", "1,2,4")
    .option("--bootstrap <n>", "resamples of the generated images for the FD's 95% interval (FD ± 1.96 se); 0: none", "100")
    .option("--steps <n>", "sampler steps (default: the spec's)")
    .addOption(new Option("--sampler <name>", "ODE sampler (default: the spec's)").choices(["euler", "heun"]))
    .option("--cfg-interval <lo,hi>", "apply guidance only at noise levels in [lo, hi] (1 = noise, 0 = data), the conditional velocity elsewhere (default: the spec's flow.guidance_interval, else every step)")
    .option("--seed <n>", "noise seed", "0")
    .option("--reference <n>", "MNIST test images for the reference features (default: all 10000)")
    .option("--judge <dir>", "the compiled judge spec", "generated/judge")
    .option("--judge-weights <file>", "the judge's weights (sdc train-judge)", "weights/judge.safetensors")
    .addOption(new Option("--weights <which>", "EMA or raw weights; auto: EMA once the initial weights are < 5% of it").choices(["auto", "ema", "raw"]).default("auto"))
    .addOption(new Option("--checkpoints <which>", "latest: the run's latest checkpoint; all: every checkpoint of the run, each appended to RUN/metrics.jsonl with its training minutes and FLOPs (sdc report plots them; one done before with the same settings is skipped)").choices(["latest", "all"]).default("latest"))
    .option("--json", "print the report as JSON instead of a table")
    .option("--out <file>", "also write the JSON report here")
    .addOption(new Option("--backend <name>", "tensor backend").choices(["auto", "tensorflow", "webgpu", "wasm", "cpu"]).default("auto"))
    .action(async (run: string, o) => {
      const { runEval, parseCfgList, parseCfgInterval } = await import("../commands/eval.ts");
      onResult(
        await runEval(run, {
          generated: o.generated,
          perDigit: parseIntArg("--per-digit", o.perDigit, 1),
          cfg: parseCfgList(o.cfg),
          steps: o.steps !== undefined ? parseIntArg("--steps", o.steps, 1) : undefined,
          sampler: o.sampler,
          cfgInterval: o.cfgInterval !== undefined ? parseCfgInterval(String(o.cfgInterval)) : undefined,
          seed: parseIntArg("--seed", o.seed, 0),
          referenceCount: o.reference !== undefined ? parseIntArg("--reference", o.reference, 2) : undefined,
          bootstrap: parseBootstrap(o.bootstrap),
          checkpoints: o.checkpoints,
          judge: o.judge,
          judgeWeights: o.judgeWeights,
          weights: o.weights,
          json: o.json,
          out: o.out,
          backend: o.backend,
        }),
      );
    });
}
