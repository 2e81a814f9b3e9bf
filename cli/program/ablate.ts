/** `sdc ablate`: its arguments and options, and how they reach its command. */
import { Option, type Command, type OptionValues } from "commander";
import type { JobOptions } from "../ablate/jobs.ts";
import type { AblateOptions } from "../ablate/plan.ts";
import { UsageError, parseIntArg } from "../errors.ts";
import { collect, EVAL_PER_DIGIT, MAX_STEPS, MAX_BATCH, type CommandContext } from "./shared.ts";

export function defineAblate(program: Command, { onResult }: CommandContext): void {
  program
    .command("ablate")
    .description("run ablation units (spec + variant + overrides + seed: compile, train, eval, each in its own folder; finished units are skipped) and write results.{md,csv,json} and a plot; arms may come from several spec files")
    .argument("[specs...]", "the .mdl file, e.g. specs/sd3.mdl; or arms SPEC.mdl[:VARIANT][+name=value...], one unit each (times the sweeps), e.g. specs/sd3.mdl:tiny specs/dit.mdl:tiny+depth=2")
    .option("--variants <list>", "comma-separated variants, one unit each (\"base\" = the spec without a variant)")
    .option("--base <variant>", "the variant the sweeps apply to (default: the spec itself)")
    .option("--sweep <name=v1,v2>", "sweep a parameter; repeat for a cartesian product (e.g. --sweep depth=2,4 --sweep head_dim=16,32)", collect)
    .option("--set <name=value>", "a fixed override for every unit; repeatable", collect)
    .option("--match-params <names>", "matched parameter counts: set this integer spec parameter of each arm to the value whose exact compiled count is closest to the target (one name for every arm, or one per arm, comma-separated; '-' keeps an arm as it is)")
    .option("--target-params <n>", "--match-params: the count to match (default: the first arm's, which is then not matched)")
    .addOption(new Option("--match-on <count>", "--match-params: match all parameters, or the network's (no text encoder) (default: params)").choices(["params", "network"]))
    .option("--match-range <lo..hi>", "--match-params: the values searched (default: 1..max(64, 16 x the arm's value))")
    .option("--steps <n>", "training steps per unit", "200")
    .option("--batch-size <n>", "batch size for every unit", "32")
    .option("--seed <n>", "training seed for every unit (the first, with --seeds)", "0")
    .option("--seeds <n>", "training seeds per arm (--seed, --seed+1, ...), each unit in its own folder <unit>+seed=K; the table, plot and report then show each arm's mean with its 95% t-interval over the seeds, and Welch's t-test of every pair of arms (Holm-corrected, 0.05)", "1")
    .option("--out <dir>", "results folder (default: ablations/<spec name>; with arms from several specs ablations/<a>-vs-<b>...)")
    .option("--per-digit <n>", "eval: generated images per digit, as sdc eval (1,000 images per CFG scale)", EVAL_PER_DIGIT)
    .option("--cfg <list>", "eval: comma-separated CFG scales", "1,4")
    .option("--sample-steps <n>", "eval: sampler steps (default: the spec's)")
    .option("--reference <n>", "eval: MNIST test images for the reference features (default: all 10000)")
    .option("--checkpoint-every <n>", "steps between checkpoints (an interrupted unit resumes from the last)", "50")
    .option("--judge <dir>", "the compiled judge spec", "generated/judge")
    .option("--judge-weights <file>", "the judge's weights", "weights/judge.safetensors")
    .addOption(new Option("--backend <name>", "tensor backend").choices(["auto", "tensorflow", "webgpu", "wasm", "cpu"]).default("auto"))
    .addOption(new Option("--executor <name>", "where units run: inprocess (one after another in this process), local (child processes, --jobs at once), slurm (one sbatch job array); docs/cluster.md").choices(["inprocess", "local", "slurm"]))
    .option("--jobs <n>", "local executor: units at once (implies --executor local)")
    .option("--partition <name>", "slurm: the partition (sbatch --partition)")
    .option("--gpus-per-unit <n>", "slurm: GPUs per unit (sbatch --gres=gpu:N)")
    .option("--cpus-per-unit <n>", "local/slurm: CPUs per unit, each unit's kernel threads (slurm: sbatch --cpus-per-task, default 1; local: default the CPUs this process may use / --jobs)")
    .option("--time <limit>", "slurm: time limit per unit (sbatch --time, e.g. 2:00:00); a unit stopped by it resumes when resubmitted")
    .option("--sbatch-arg <arg>", "slurm: another sbatch argument, e.g. --sbatch-arg=--account=lab; repeatable", collect)
    .option("--no-submit", "slurm: compile the units and write their task scripts and the batch script, but submit nothing (e.g. to build the GPU pack with them first)")
    .option("--sdc-command <cmd>", "local/slurm: how a unit's task starts sdc (default: node <this package>/bin/sdc.mjs), e.g. 'bash /shared/sdc-gpu/run.sh' for the offline GPU pack")
    .option("--status <dir>", "show each unit's state in an ablation folder of --executor local|slurm (pending, running with its step, done, failed with its last log line)")
    .option("--json", "--status: print JSON")
    .option("--combine <dir>", "combine finished ablation folders (repeat: --combine DIR --combine DIR) into --out DIR: one table, plot and set of tests over all their arms (the units must share steps, batch, backend and eval settings)", collect)
    .action(async (specs: string[], o) => {
      const spec: string | string[] | undefined = specs.length === 0 ? undefined : specs.length === 1 ? specs[0] : specs;
      const { runAblateStatusCli, runAblateCombineCli } = await import("../ablate/command.ts");
      if (o.combine !== undefined) {
        if (spec !== undefined || o.status !== undefined) throw new UsageError("--combine DIR... takes no spec and no --status; run `sdc ablate --combine DIR --combine DIR --out DIR`");
        if (o.out === undefined) throw new UsageError("--combine needs --out DIR, the folder for the combined results");
        onResult(await runAblateCombineCli(o.combine, o.out));
        return;
      }
      if (o.status !== undefined) {
        if (spec !== undefined) throw new UsageError("--status DIR takes no spec; run `sdc ablate --status DIR`");
        onResult(await runAblateStatusCli(o.status, { json: o.json }));
        return;
      }
      if (o.json) throw new UsageError("--json is for --status DIR");
      if (spec === undefined) throw new UsageError("sdc ablate needs a spec (e.g. sdc ablate specs/sd3.mdl --variants tiny,small), arms from spec files (sdc ablate specs/sd3.mdl:tiny specs/dit.mdl:tiny), or --status DIR");
      const jobs = ablateJobs(o);
      const { runAblateCli } = await import("../ablate/command.ts");
      onResult(await runAblateCli(spec, await ablateOptions(o), jobs));
    });
}

/** The executor options (--executor, --jobs and the slurm flags), each refused where its executor is not the one asked for; undefined: in process. */
function ablateJobs(o: OptionValues): JobOptions | undefined {
  const matchOnly = (["targetParams", "matchOn", "matchRange"] as const).filter((k) => o[k] !== undefined);
  if (matchOnly.length && o.matchParams === undefined) throw new UsageError(`--${matchOnly[0].replace(/[A-Z]/g, (c) => "-" + c.toLowerCase())} is for --match-params NAME`);
  const slurmOnly = (["partition", "gpusPerUnit", "time", "sbatchArg"] as const).filter((k) => o[k] !== undefined);
  if (o.submit === false && (o.executor ?? "inprocess") !== "slurm") throw new UsageError("--no-submit is for --executor slurm");
  const executor: string = o.executor ?? (o.jobs !== undefined ? "local" : "inprocess");
  if (o.jobs !== undefined && executor !== "local") throw new UsageError(`--jobs is for --executor local (got --executor ${executor})`);
  if (slurmOnly.length && executor !== "slurm") throw new UsageError(`--${slurmOnly[0].replace(/[A-Z]/g, (c) => "-" + c.toLowerCase())} is for --executor slurm`);
  if (o.sdcCommand !== undefined && executor === "inprocess") throw new UsageError("--sdc-command is for --executor local or slurm");
  if (o.cpusPerUnit !== undefined && executor === "inprocess") throw new UsageError("--cpus-per-unit is for --executor local or slurm");
  if (executor === "inprocess") return undefined;
  return {
    executor: executor as "local" | "slurm",
    jobs: o.jobs !== undefined ? parseIntArg("--jobs", o.jobs, 1) : 1,
    partition: o.partition,
    gpusPerUnit: o.gpusPerUnit !== undefined ? parseIntArg("--gpus-per-unit", o.gpusPerUnit, 0) : undefined,
    cpusPerUnit: o.cpusPerUnit !== undefined ? parseIntArg("--cpus-per-unit", o.cpusPerUnit, 1, 1024) : executor === "slurm" ? 1 : undefined,
    time: o.time,
    sbatchArgs: o.sbatchArg,
    sdcCommand: o.sdcCommand,
    submit: o.submit !== false,
  };
}

/** The ablation's units and their training and eval settings, from the options. */
async function ablateOptions(o: OptionValues): Promise<AblateOptions> {
  const { parseCfgList } = await import("../commands/eval.ts");
  const { parseSweep } = await import("../../runtime/eval/sweep.ts");
  const { parseMatchParams, parseMatchRange } = await import("../ablate/match.ts");
  return {
    variants: o.variants !== undefined ? String(o.variants).split(",").map((v: string) => v.trim()).filter(Boolean) : undefined,
    base: o.base,
    sweeps: (o.sweep ?? []).map(parseSweep),
    set: o.set,
    steps: parseIntArg("--steps", o.steps, 1, MAX_STEPS),
    batch: parseIntArg("--batch-size", o.batchSize, 1, MAX_BATCH),
    seed: parseIntArg("--seed", o.seed, 0),
    seeds: parseIntArg("--seeds", o.seeds, 1, 1000),
    out: o.out,
    perDigit: parseIntArg("--per-digit", o.perDigit, 1),
    cfg: parseCfgList(o.cfg),
    sampleSteps: o.sampleSteps !== undefined ? parseIntArg("--sample-steps", o.sampleSteps, 1) : undefined,
    reference: o.reference !== undefined ? parseIntArg("--reference", o.reference, 2) : undefined,
    checkpointEvery: parseIntArg("--checkpoint-every", o.checkpointEvery, 0),
    judge: o.judge,
    judgeWeights: o.judgeWeights,
    backend: o.backend,
    match: o.matchParams !== undefined ? {
      params: parseMatchParams(String(o.matchParams)),
      target: o.targetParams !== undefined ? parseIntArg("--target-params", o.targetParams, 1) : undefined,
      on: o.matchOn ?? "params",
      range: o.matchRange !== undefined ? parseMatchRange(String(o.matchRange)) : undefined,
    } : undefined,
  };
}
