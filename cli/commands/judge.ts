/**
 * `sdc train-judge`: train the eval judge (specs/judge.mdl, compiled to generated/judge) on the
 * MNIST training set with Adam + softmax cross-entropy, report its MNIST test accuracy, and write
 * weights/judge.safetensors plus weights/judge.json (accuracy, settings, the command).
 * `loadJudge` is how `sdc eval` gets it back.
 */
import { existsSync, readFileSync } from "node:fs";
import { irHash } from "../../compiler/codegen/files.ts";
import { initBackend, type BackendName } from "../../runtime/backend.ts";
import { loadMnist } from "../../runtime/data/mnist.ts";
import { buildJudge, type Judge, judgeAccuracy, trainJudge } from "../../runtime/eval/judge.ts";
import { registerWasmTrainingKernels } from "../../runtime/eval/wasm-kernels.ts";
import { checkOutputFile, writeFileAtomic } from "../../runtime/io/atomic.ts";
import { readSafetensors, writeSafetensors } from "../../runtime/io/safetensors.ts";
import { EXIT, InputError } from "../errors.ts";
import { loadCompiled } from "../generated.ts";

export const DEFAULT_JUDGE_DIR = "generated/judge";
export const DEFAULT_JUDGE_WEIGHTS = "weights/judge.safetensors";

export interface TrainJudgeOptions {
  generated?: string;
  epochs?: number;
  batch?: number;
  lr?: number;
  seed?: number;
  shift?: number;
  backend?: BackendName;
  out?: string;
  /** for tests: stop after this many steps */
  maxSteps?: number;
  /** for tests: evaluate on only the first n test images */
  testLimit?: number;
  log?: (s: string) => void;
}

export interface JudgeReport {
  spec: string;
  irHash: string;
  params: number;
  testAccuracy: number;
  testImages: number;
  epochs: number;
  steps: number;
  batch: number;
  lr: number;
  seed: number;
  shift: number;
  backend: string;
  trainSeconds: number;
  lastEpochLoss: number;
  command: string;
}

export async function runTrainJudge(o: TrainJudgeOptions = {}): Promise<JudgeReport> {
  const log = o.log ?? ((s: string) => process.stderr.write(s + "\n"));
  const dir = o.generated ?? DEFAULT_JUDGE_DIR;
  const out = o.out ?? DEFAULT_JUDGE_WEIGHTS;
  if (!out.endsWith(".safetensors")) throw new InputError(`--out must end in .safetensors, got '${out}'`);
  checkOutputFile(out);
  checkOutputFile(out.replace(/\.safetensors$/, ".json"));
  const loaded = await loadCompiled(dir);
  const { ir, spec } = loaded;
  if (ir.data.source !== "mnist") throw new InputError(`the judge trains on MNIST; ${dir} has data.source ${ir.data.source}`);
  const b = await initBackend(o.backend ?? "wasm", { log });
  if (b.name === "wasm") registerWasmTrainingKernels();
  log(`backend: ${b.detail}`);
  const epochs = o.epochs ?? 3;
  const batch = o.batch ?? ir.train.batch;
  const lr = o.lr ?? ir.train.optimizer.lr;
  const seed = o.seed ?? ir.train.seed;
  const shift = o.shift ?? 1;
  const j = buildJudge(spec, ir, seed);
  const train = loadMnist({ split: "train", size: ir.data.height });
  const test = loadMnist({ split: "test", size: ir.data.height });
  log(`${ir.spec.name}: ${j.store.numParams.toLocaleString("en-US")} parameters; training ${epochs} epochs of ${train.size} images, batch ${batch}, Adam lr ${lr} (cosine decay), shifts of up to ${shift} px`);
  const t0 = performance.now();
  const r = await trainJudge(j, train.pixels, train.labels, {
    epochs, batch, lr, seed, shift, log, maxSteps: o.maxSteps,
    onEpoch: (e, loss) => log(`epoch ${e + 1}/${epochs}: mean loss ${loss.toFixed(4)} (${((performance.now() - t0) / 1000).toFixed(0)} s)`),
  });
  const trainSeconds = (performance.now() - t0) / 1000;
  const nTest = Math.min(test.size, o.testLimit ?? test.size);
  const per = ir.data.height * ir.data.width * ir.data.channels;
  const acc = await judgeAccuracy(j, test.pixels.subarray(0, nTest * per), test.labels.subarray(0, nTest));
  log(`test accuracy: ${(acc * 100).toFixed(2)}% on ${nTest} MNIST test images; trained in ${trainSeconds.toFixed(0)} s`);
  const hash = irHash(loaded.irText);
  const weights = await j.store.snapshot({ buffers: false });
  writeFileAtomic(out, writeSafetensors(weights, { format: "sdc-judge", spec: ir.spec.name, irHash: hash, testAccuracy: acc.toFixed(4) }));
  const report: JudgeReport = {
    spec: ir.spec.name, irHash: hash, params: j.store.numParams, testAccuracy: acc, testImages: nTest, epochs, steps: r.steps, batch, lr, seed, shift,
    backend: b.name, trainSeconds: Math.round(trainSeconds * 10) / 10, lastEpochLoss: r.lastEpochLoss,
    command: ["sdc", ...process.argv.slice(2)].join(" "),
  };
  writeFileAtomic(out.replace(/\.safetensors$/, ".json"), JSON.stringify(report, null, 2) + "\n");
  log(`wrote ${out} and ${out.replace(/\.safetensors$/, ".json")}`);
  j.store.dispose();
  return report;
}

export async function runTrainJudgeCli(o: TrainJudgeOptions, minAccuracy = 0): Promise<number> {
  const r = await runTrainJudge(o);
  if (r.testAccuracy < minAccuracy) {
    process.stderr.write(`error: test accuracy ${(r.testAccuracy * 100).toFixed(2)}% is below --min-accuracy ${(minAccuracy * 100).toFixed(2)}%\n`);
    return EXIT.spec;
  }
  return EXIT.ok;
}

/** The trained judge: generated/judge + weights/judge.safetensors, checked to belong together. */
export async function loadJudge(generated = DEFAULT_JUDGE_DIR, weights = DEFAULT_JUDGE_WEIGHTS): Promise<Judge & { testAccuracy: number | null }> {
  const loaded = await loadCompiled(generated);
  if (!existsSync(weights)) throw new InputError(`judge weights not found: ${weights}; train them with \`sdc train-judge\` (a few minutes on CPU)`);
  const f = readSafetensors(readFileSync(weights), weights);
  const hash = irHash(loaded.irText);
  if (f.metadata.irHash && f.metadata.irHash !== hash) throw new InputError(`${weights} was trained for another judge spec (IR ${f.metadata.irHash.slice(0, 12)}) than ${generated} (IR ${hash.slice(0, 12)}); retrain with \`sdc train-judge\``);
  const j = buildJudge(loaded.spec, loaded.ir, 0);
  j.store.load(f.tensors, { strict: true, what: weights });
  const acc = Number(f.metadata.testAccuracy);
  return { ...j, testAccuracy: Number.isFinite(acc) ? acc : null };
}
