/**
 * The sdc command line. Only this layer touches the file system and the process; compiler
 * phases are pure and the runtime takes data in and gives data out.
 */
import { Argument, Command, CommanderError, Option } from "commander";
import { fsReason } from "../runtime/io/atomic.ts";
import { outOfMemoryLine } from "../bin/fatal.mjs";
import { EXIT, USER_ERROR_NAMES, UsageError, parseFloatArg, parseIntArg, parsePositiveArg } from "./errors.ts";
import { SDC_VERSION } from "./version.ts";

/** The spec's own ranges (compiler/spec.ts SECTIONS), so a flag cannot ask for what a spec may not. */
const MAX_STEPS = 1e9;
const MAX_BATCH = 1 << 16;

/** `sdc eval`'s and `sdc ablate`'s images per digit: runtime/eval/evaluate.ts DEFAULT_PER_DIGIT (not imported: it loads tfjs). */
const EVAL_PER_DIGIT = "100";
const collect = (v: string, prev: string[] = []) => [...prev, v];

function build(onResult: (code: number) => void, argv: string[] = []): Command {
  const program = new Command();
  program
    .name("sdc")
    .description("sdc: a declarative model-spec compiler for diffusion transformers (SD3 MMDiT, rectified flow) that emits typed TensorFlow.js code")
    .version(SDC_VERSION)
    .exitOverride()
    .showHelpAfterError("(run with --help for usage)");

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
      const { runCompile } = await import("./commands/compile.ts");
      onResult(runCompile(spec, { variant: o.variant, allVariants: o.allVariants, set: o.set, outDir: o.outDir, json: o.json, check: o.check, noWrite: o.write === false, quiet: o.quiet, libPath: o.libPath }));
    });

  program
    .command("diff")
    .description("what changed between two specs, two variants or two compiled folders: parameters per module, the training step's GEMM work and GPU memory (sdc plan), every setting that differs")
    .usage("A [--variant V] [--set k=v ...] B [--variant V] [--set k=v ...] [--batch-size N] [--context-tokens T] [--depth D] [--no-plan] [--json]")
    .argument("<a>", "a .mdl spec (its --variant/--set follow it) or a compiled folder")
    .argument("<b>", "the other one")
    .allowUnknownOption()
    .allowExcessArguments()
    .action(async () => {
      // side options belong to the path before them, so diff reads its arguments in order itself
      const { runDiff } = await import("./commands/diff.ts");
      onResult(await runDiff(argv.slice(argv.indexOf("diff") + 1)));
    });

  program
    .command("lsp")
    .description("a language server for .mdl specs over stdio (diagnostics as you type, hover with shapes and parameter counts, go to definition, completion); editors start it")
    .option("--stdio", "talk over stdin/stdout (the default and only transport)")
    .action(async () => {
      const { runLsp } = await import("./commands/lsp.ts");
      onResult(await runLsp());
    });

  program
    .command("primitives")
    .description("list the primitives a spec composes networks from: signatures, arguments and defaults, shapes, parameters and their state-dict names (from the compiler's own table)")
    .argument("[names...]", "only these primitives")
    .option("--markdown", "print docs/primitives.md")
    .option("--json", "print JSON")
    .action(async (names: string[], o) => {
      const { runPrimitives } = await import("./commands/primitives.ts");
      onResult(runPrimitives(names, { markdown: o.markdown, json: o.json }));
    });

  program
    .command("forward")
    .description("run a compiled network once on given weights and inputs (safetensors, channels first) and write its output")
    .argument("<generated>", "a compiled spec folder, e.g. generated/sd3")
    .requiredOption("--weights <file>", "state dict (.safetensors) with the reference's parameter names")
    .requiredOption("--inputs <file>", "x [B,C,H,W], timestep [B], text_embeddings [B,T,D], pooled_text_embeddings [B,P]")
    .option("--out <file>", "write `output` [B,C,H,W] here")
    .addOption(new Option("--backend <name>", "tensor backend").choices(["auto", "tensorflow", "webgpu", "wasm", "cpu"]).default("cpu"))
    .action(async (dir: string, o) => {
      const { runForward } = await import("./commands/forward.ts");
      // the backend starts once the files have been read and checked (a bad input is one line)
      const startBackend = async () => {
        const { initBackend } = await import("../runtime/backend.ts");
        const b = await initBackend(o.backend, { log: (m) => process.stderr.write(m + "\n") });
        process.stderr.write(`backend: ${b.detail}\n`);
      };
      await runForward(dir, { weights: o.weights, inputs: o.inputs, out: o.out, startBackend });
      onResult(EXIT.ok);
    });

  program
    .command("train")
    .description("train a compiled spec with rectified flow (MNIST with text prompts by default), writing sample grids and checkpoints")
    .argument("<generated>", "a compiled spec folder, e.g. generated/sd3")
    .option("--steps <n>", "training steps (default: the spec's)")
    .option("--batch-size <n>", "batch size (default: the spec's)")
    .option("--lr <x>", "learning rate (default: the spec's)")
    .option("--seed <n>", "random seed (default: the spec's)")
    .addOption(new Option("--backend <name>", "tensor backend: auto picks tensorflow, webgpu, wasm, cpu in that order").choices(["auto", "tensorflow", "webgpu", "wasm", "cpu"]).default("auto"))
    .addOption(new Option("--engine <name>", "training engine: static (the whole step as one compiled graph: WebGPU kernels on webgpu, native C++ kernels on the CPU), tfjs (eager ops); auto = static where it is available").choices(["auto", "tfjs", "static"]).default("auto"))
    .option("--out <dir>", "output folder (default: output/<name>)")
    .option("--resume [dir]", "continue from a checkpoint folder or a run folder (its latest checkpoint), with the run's settings (config.json); alone or `latest`: the newest run of this package under output/")
    .option("--sample-every <n>", "steps between sample grids (default: the spec's)")
    .option("--checkpoint-every <n>", "steps between checkpoints (default: the spec's)")
    .option("--samples <n>", "images per sample grid (default: the spec's)")
    .option("--sample-steps <n>", "sampler steps for grids (default: the spec's)")
    .option("--warmup <n>", "learning-rate warmup steps (default: the spec's)")
    .addOption(new Option("--lr-schedule <name>", "learning rate after the warmup: constant, or linear/cosine decay to 0 at the last step (default: the spec's, constant)").choices(["constant", "linear", "cosine"]))
    .option("--grad-accum <k>", "gradient accumulation: run each step's batch as k micro-batches, gradients summed (same update, less memory; tfjs engine)")
    .option("--keep-checkpoints <n>", "keep only the last N checkpoints (0 = all; default: the spec's)")
    .option("--keep-best", "also keep the checkpoint with the lowest validation loss (checkpoints/best)")
    .option("--precision <p>", "training precision: fp32 (the only one supported; fp16/bf16 are refused)")
    .option("--no-progress", "no progress bar")
    .option("--text-encoders <list>", "sd3_pretrained specs: local encoder folders clip_l=DIR,clip_g=DIR,t5=DIR (t5=none: no T5; cache=DIR|off: embedding cache); see docs/text-encoders.md")
    .action(async (dir: string, o) => {
      const { runTrain } = await import("./commands/train.ts");
      onResult(
        await runTrain(dir, {
          steps: o.steps !== undefined ? parseIntArg("--steps", o.steps, 1, MAX_STEPS) : undefined,
          batch: o.batchSize !== undefined ? parseIntArg("--batch-size", o.batchSize, 1, MAX_BATCH) : undefined,
          lr: o.lr !== undefined ? parsePositiveArg("--lr", o.lr) : undefined,
          seed: o.seed !== undefined ? parseIntArg("--seed", o.seed, 0) : undefined,
          backend: o.backend,
          engine: o.engine,
          out: o.out,
          resume: o.resume,
          argv: ["sdc", ...argv],
          sampleEvery: o.sampleEvery !== undefined ? parseIntArg("--sample-every", o.sampleEvery, 0) : undefined,
          checkpointEvery: o.checkpointEvery !== undefined ? parseIntArg("--checkpoint-every", o.checkpointEvery, 0) : undefined,
          samples: o.samples !== undefined ? parseIntArg("--samples", o.samples, 1, 1024) : undefined,
          sampleSteps: o.sampleSteps !== undefined ? parseIntArg("--sample-steps", o.sampleSteps, 1, 100000) : undefined,
          progress: o.progress,
          textEncoders: o.textEncoders,
          warmup: o.warmup !== undefined ? parseIntArg("--warmup", o.warmup, 0) : undefined,
          lrSchedule: o.lrSchedule,
          accumulate: o.gradAccum !== undefined ? parseIntArg("--grad-accum", o.gradAccum, 1) : undefined,
          keepCheckpoints: o.keepCheckpoints !== undefined ? parseIntArg("--keep-checkpoints", o.keepCheckpoints, 0) : undefined,
          keepBest: o.keepBest === true ? true : undefined,
          precision: o.precision,
        }),
      );
    });

  program
    .command("plan")
    .description("what a training step will cost on the static engine, before anything runs: dispatches, GEMM work, GPU memory, the largest tensor")
    .argument("<generated>", "a compiled spec folder, e.g. generated/sd3")
    .option("--batch-size <n>", "batch size (default: the spec's)")
    .option("--context-tokens <n>", "frozen-encoder specs: context length (default: the spec's)")
    .option("--json", "print JSON")
    .action(async (dir: string, o) => {
      const { runPlan } = await import("./commands/plan.ts");
      onResult(
        await runPlan(dir, {
          batch: o.batchSize !== undefined ? parseIntArg("--batch-size", o.batchSize, 1, MAX_BATCH) : undefined,
          contextTokens: o.contextTokens !== undefined ? parseIntArg("--context-tokens", o.contextTokens, 1) : undefined,
          json: o.json,
        }),
      );
    });

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
      const { runSample } = await import("./commands/sample.ts");
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
      const { runTrainJudgeCli } = await import("./commands/judge.ts");
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
      const { runEval, parseCfgList, parseCfgInterval } = await import("./commands/eval.ts");
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

  program
    .command("export")
    .description("the trained model outside sdc: its forward pass as an ONNX file (--onnx), a static page that samples in the browser (--web)")
    .argument("<run>", "a run folder (its checkpoints/latest) or a checkpoint folder")
    .option("--onnx <file>", "write the network (with its learned text encoder) as ONNX, e.g. model.onnx")
    .option("--web <dir>", "write a self-contained page (index.html, TensorFlow.js, the model) to this folder")
    .option("--generated <dir>", "the compiled spec folder (default: generated/<spec name from the checkpoint's ir.json>)")
    .addOption(new Option("--weights <which>", "EMA or raw weights").choices(["ema", "raw"]).default("ema"))
    .action(async (run: string, o) => {
      const { runExport } = await import("./commands/export.ts");
      onResult(await runExport(run, { onnx: o.onnx, web: o.web, generated: o.generated, weights: o.weights }));
    });

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
    .action(async (specs: string[], o) => {
      const spec: string | string[] | undefined = specs.length === 0 ? undefined : specs.length === 1 ? specs[0] : specs;
      const { runAblateCli, runAblateStatusCli } = await import("./ablate/command.ts");
      if (o.status !== undefined) {
        if (spec !== undefined) throw new UsageError("--status DIR takes no spec; run `sdc ablate --status DIR`");
        onResult(await runAblateStatusCli(o.status, { json: o.json }));
        return;
      }
      if (o.json) throw new UsageError("--json is for --status DIR");
      if (spec === undefined) throw new UsageError("sdc ablate needs a spec (e.g. sdc ablate specs/sd3.mdl --variants tiny,small), arms from spec files (sdc ablate specs/sd3.mdl:tiny specs/dit.mdl:tiny), or --status DIR");
      const matchOnly = (["targetParams", "matchOn", "matchRange"] as const).filter((k) => o[k] !== undefined);
      if (matchOnly.length && o.matchParams === undefined) throw new UsageError(`--${matchOnly[0].replace(/[A-Z]/g, (c) => "-" + c.toLowerCase())} is for --match-params NAME`);
      const slurmOnly = (["partition", "gpusPerUnit", "time", "sbatchArg"] as const).filter((k) => o[k] !== undefined);
      if (o.submit === false && (o.executor ?? "inprocess") !== "slurm") throw new UsageError("--no-submit is for --executor slurm");
      const executor: string = o.executor ?? (o.jobs !== undefined ? "local" : "inprocess");
      if (o.jobs !== undefined && executor !== "local") throw new UsageError(`--jobs is for --executor local (got --executor ${executor})`);
      if (slurmOnly.length && executor !== "slurm") throw new UsageError(`--${slurmOnly[0].replace(/[A-Z]/g, (c) => "-" + c.toLowerCase())} is for --executor slurm`);
      if (o.sdcCommand !== undefined && executor === "inprocess") throw new UsageError("--sdc-command is for --executor local or slurm");
      if (o.cpusPerUnit !== undefined && executor === "inprocess") throw new UsageError("--cpus-per-unit is for --executor local or slurm");
      const jobs = executor === "inprocess" ? undefined : {
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
      const { parseCfgList } = await import("./commands/eval.ts");
      const { parseSweep } = await import("../runtime/eval/sweep.ts");
      const { parseMatchParams, parseMatchRange } = await import("./ablate/match.ts");
      onResult(
        await runAblateCli(spec, {
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
        }, jobs),
      );
    });

  program
    .command("report")
    .description("write one self-contained HTML page for a run (loss curves, sample grids over the steps, eval per CFG) or an ablation (table and curves of all units)")
    .argument("<dir>", "a run folder (e.g. output/sd3-tiny) or an ablation folder (e.g. ablations/sd3)")
    .option("--out <file>", "the HTML file (default: DIR/report.html)")
    .action(async (dir: string, o) => {
      const { runReportCli } = await import("./commands/report.ts");
      onResult(runReportCli(dir, { out: o.out }));
    });

  program
    .command("completion")
    .description("print a shell completion script, generated from these commands and options: eval \"$(sdc completion bash)\"")
    .addArgument(new Argument("<shell>", "bash or zsh").choices(["bash", "zsh"]))
    .action(async (shell: "bash" | "zsh") => {
      const { bashCompletion, zshCompletion } = await import("./completion.ts");
      process.stdout.write(shell === "bash" ? bashCompletion(program) : zshCompletion(program));
      onResult(EXIT.ok);
    });

  return program;
}

/** The command-line program (for completion scripts and tests). */
export function cliProgram(): Command {
  return build(() => {});
}

/** Run the CLI; returns the exit code. Never lets a user mistake surface as a stack trace. */
/** --bootstrap N: 0 (no FD interval) or 2 and more resamples. */
function parseBootstrap(v: string): number {
  const n = parseIntArg("--bootstrap", v, 0);
  if (n === 1) throw new UsageError("--bootstrap must be 0 (no FD interval) or 2 or more resamples, got 1");
  return n;
}

export async function main(argv: string[]): Promise<number> {
  let code: number = EXIT.ok;
  const program = build((c) => (code = c), argv);
  if (argv.length === 0) {
    // a bare `sdc` is a usage error: say so and what there is, exit 2
    process.stderr.write(`error: no command given; the commands are:\n\n${program.helpInformation()}`);
    return EXIT.usage;
  }
  try {
    await program.parseAsync(argv, { from: "user" });
    return code;
  } catch (e) {
    return handleError(e);
  } finally {
    // only commands that started a tensor backend load tfjs; `sdc compile` never does
    if ((globalThis as { [k: symbol]: unknown })[Symbol.for("sdc.backend")]) {
      const { shutdownBackend } = await import("../runtime/backend.ts");
      await shutdownBackend();
    }
  }
}

/** File-system errors that describe the user's files or machine (errno codes). */
const FS_CODES = new Set(["EACCES", "EPERM", "EROFS", "ENOSPC", "EDQUOT", "ENOENT", "ENOTDIR", "EISDIR", "EEXIST", "ENAMETOOLONG", "EMFILE", "ENFILE", "EIO", "ELOOP", "ENXIO", "ETXTBSY"]);

/** An allocation that failed: a wasm abort in the tfjs backend, or an ArrayBuffer the JS heap would not give. */
export function isOutOfMemory(e: unknown): boolean {
  const err = e as { name?: string; message?: string; stack?: string } | undefined;
  if (!err || typeof err.message !== "string") return false;
  if (err.name === "RuntimeError" && /^Aborted\(/.test(err.message) && /tfjs-backend-wasm/.test(err.stack ?? "")) return true;
  return err.name === "RangeError" && /Array buffer allocation failed|could not allocate memory|Maximum memory size exceeded|Out of memory|Invalid typed array length|Array buffer allocation/i.test(err.message);
}

/** A message printed as one line (a user error is one line: `error: ...`). */
function oneLine(s: string): string {
  return s.replace(/\s*[\r\n]+\s*/g, " ").trim();
}

export function handleError(e: unknown): number {
  if (e instanceof CommanderError) {
    if (e.code === "commander.helpDisplayed" || e.code === "commander.version" || e.code === "commander.help") return EXIT.ok;
    return EXIT.usage;
  }
  const err = e as { name?: string; message?: string; exitCode?: number; stack?: string; code?: string; syscall?: string; path?: string };
  if (err && typeof err.name === "string" && USER_ERROR_NAMES.has(err.name)) {
    process.stderr.write(`error: ${oneLine(err.message ?? "")}\n`);
    return err.exitCode ?? (e instanceof UsageError ? EXIT.usage : EXIT.spec);
  }
  // the machine said no (memory, disk, permissions): the user's to fix, not a bug in sdc
  if (isOutOfMemory(e)) {
    process.stderr.write(`error: ${outOfMemoryLine(e)}\n`);
    return EXIT.spec;
  }
  if (err && typeof err.code === "string" && FS_CODES.has(err.code) && typeof err.syscall === "string") {
    process.stderr.write(`error: cannot ${err.syscall}${err.path ? ` ${err.path}` : ""}: ${fsReason(e)}\n`);
    return EXIT.spec;
  }
  process.stderr.write(`internal error (a bug in sdc; please report it with this trace):\n${err?.stack ?? String(e)}\n`);
  return EXIT.internal;
}
