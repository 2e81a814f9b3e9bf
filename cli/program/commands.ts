/**
 * The commands of the sdc program, in the order `sdc --help` lists them: each defines its
 * arguments and options (commander) in its own file here and loads its command
 * (cli/commands/, cli/ablate/) only when it runs.
 */
import type { Command } from "commander";
import { defineAblate } from "./ablate.ts";
import { defineCompile } from "./compile.ts";
import { defineCompletion } from "./completion.ts";
import { defineDiff } from "./diff.ts";
import { defineEval } from "./eval.ts";
import { defineExport } from "./export.ts";
import { defineForward } from "./forward.ts";
import { defineLsp } from "./lsp.ts";
import { definePlan } from "./plan.ts";
import { definePrimitives } from "./primitives.ts";
import { defineReport } from "./report.ts";
import { defineSample } from "./sample.ts";
import type { CommandContext } from "./shared.ts";
import { defineTrain } from "./train.ts";
import { defineTrainJudge } from "./train-judge.ts";

export const COMMANDS: ((program: Command, ctx: CommandContext) => void)[] = [
  defineCompile, defineDiff, defineLsp, definePrimitives, defineForward, defineTrain, definePlan, defineSample, defineTrainJudge, defineEval, defineExport, defineAblate, defineReport, defineCompletion,
];
