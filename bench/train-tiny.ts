/**
 * bench/train-tiny: train the tiny variant of specs/sd3.mdl on the CPU (wasm backend) and record
 * steps, wall time, steps/s, validation loss and the final sample grid.
 *   npx tsx bench/train-tiny.ts [--steps 1500] [--batch 64] [--backend wasm] [--out output/bench-train-tiny] [--resume]
 * With --resume it continues the run in --out from its latest checkpoint up to --steps.
 * Writes bench/results/train-tiny.json and docs/images/train-tiny.png (+ .txt prompts).
 */
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { benchArgs } from "./args.ts";
import { runTrain } from "../cli/commands/train.ts";

const { values } = benchArgs(import.meta.url, { options: { steps: { type: "string", default: "1500" }, batch: { type: "string", default: "64" }, backend: { type: "string", default: "wasm" }, out: { type: "string", default: "output/bench-train-tiny" }, "sample-every": { type: "string", default: "500" }, resume: { type: "boolean", default: false } } });
const steps = Number(values.steps);
const batch = Number(values.batch);
const out = values.out!;
const previous = values.resume ? JSON.parse(readFileSync("bench/results/train-tiny.json", "utf8")) : null;
const t0 = performance.now();
const code = await runTrain("generated/sd3-tiny", { steps, batch, backend: values.backend as "wasm", out, sampleEvery: Number(values["sample-every"]), checkpointEvery: 500, samples: 64, progress: false, resume: values.resume ? out : undefined });
const wall = (performance.now() - t0) / 1000;
const summary = JSON.parse(readFileSync(join(out, "summary.json"), "utf8"));
const metrics = readFileSync(join(out, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
const val = metrics.filter((m) => m.val_loss !== undefined);
const result = {
  bench: "train-tiny",
  spec: "specs/sd3.mdl --variant tiny",
  params: summary.params,
  backend: summary.backend,
  cpu: `${cpus().length} x ${cpus()[0]?.model ?? "?"}`,
  steps: summary.steps,
  batch,
  wallSeconds: Math.round(wall) + (previous?.wallSeconds ?? 0),
  trainSeconds: Math.round(summary.seconds) + (previous?.trainSeconds ?? 0),
  ...(previous ? { resumedAt: previous.steps } : {}),
  stepsPerSecond: Number(summary.stepsPerSecond.toFixed(3)),
  finalLoss: Number(summary.lastLoss.toFixed(4)),
  valLoss: val.map((m) => ({ step: m.step, val_loss: Number(m.val_loss.toFixed(4)) })),
  exitCode: code,
};
mkdirSync("bench/results", { recursive: true });
writeFileSync("bench/results/train-tiny.json", JSON.stringify(result, null, 2) + "\n");
const grid = `step-${String(summary.steps).padStart(6, "0")}`;
copyFileSync(join(out, "samples", `${grid}.png`), "docs/images/train-tiny.png");
copyFileSync(join(out, "samples", `${grid}.txt`), "docs/images/train-tiny.txt");
console.log(JSON.stringify(result, null, 2));
