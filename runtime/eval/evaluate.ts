/**
 * Measured quality of a trained text-to-digit flow model, judged by the MNIST classifier of
 * specs/judge.mdl:
 *   - prompt accuracy: for N images per digit (half prompted with the numeral "7", half with the
 *     word "seven"), how often the judge's argmax is the requested digit, per digit (with the
 *     counts) and overall, with its 95% Wilson score interval;
 *   - judge-feature Fréchet distance: the FID formula on the judge's penultimate features of the
 *     generated images vs MNIST test images. NOT Inception FID: numbers are only comparable with
 *     the same judge weights and the same number of generated images. Its 95% interval is a
 *     bootstrap over the generated images (the reference statistics fixed): FD ± 1.96 se, se the
 *     standard deviation of the FDs of `bootstrap` resampled sets (default 100);
 *   - the flow model's validation loss at fixed timesteps and noise on MNIST test images (the same
 *     set `sdc train` logs as val_loss);
 *   - the sampler's steps and wall time.
 * Everything random comes from `seed`: the same model, judge and seed give the same numbers
 * (wall times aside). The same noise is used at every CFG scale, so scales are compared paired.
 * Pure runtime: no file access.
 */
import * as tf from "@tensorflow/tfjs";
import type { ImageTextDataset } from "../data/dataset.ts";
import type { ImageDecoder } from "../data/load.ts";
import { DIGIT_WORDS } from "../data/mnist.ts";
import { makeValidationSet, sampleImages, validationLoss } from "../train/trainer.ts";
import { type ModelBundle, type SampleOpts, type ValidationSet } from "../bundle.ts";
import { Rng } from "../util/rng.ts";
import { bootstrapFrechet, featureStats, type FeatureStats, frechetDistance, frechetTo } from "./frechet.ts";
import { type Judge, judgeImages } from "./judge.ts";
import { promptAccuracy } from "./metrics.ts";
import { type Interval, normalQuantile, wilsonInterval } from "./stats.ts";

/**
 * The default images per digit of `sdc eval`: 100 (1,000 images). At 99% accuracy the 95% Wilson
 * interval is then 98.2-99.5% (-0.8/+0.5 points); 50 per digit would give 97.7-99.6% (-1.3), 10
 * per digit 94.6-99.8% (-4.5).
 */
export const DEFAULT_PER_DIGIT = 100;
/** bootstrap resamples of the FD interval by default */
export const DEFAULT_BOOTSTRAP = 100;
/** the confidence of every interval an eval reports */
export const EVAL_CONFIDENCE = 0.95;

export interface EvalOptions {
  /** called after each batch of generated images: (images done, images in all) */
  onProgress?: (done: number, total: number) => void;
  /** generated images per digit (default DEFAULT_PER_DIGIT); the first half use the numeral, the rest the word */
  perDigit?: number;
  /** CFG scales (default [1, 2, 4]) */
  cfg?: number[];
  /** sampler steps (default: the spec's) */
  steps?: number;
  sampler?: "euler" | "heun";
  /** the noise levels [lo, hi] where guidance applies (default: the spec's, else every step) */
  cfgInterval?: [number, number];
  /** noise seed (default 0); the bootstrap's resampling is seeded from it too */
  seed?: number;
  /** bootstrap resamples for the FD interval (default DEFAULT_BOOTSTRAP; 0: no interval) */
  bootstrap?: number;
  /** images per sampler call (default 50) */
  batch?: number;
  /** MNIST test images for the reference features (default: all) */
  referenceCount?: number;
  /** the reference features, kept here for the next eval with the same judge and test set (several checkpoints of a run) */
  referenceCache?: { value?: ReferenceFeatures };
  /** validation set: images x noise levels (default 32 x 8, as `sdc train`'s val_loss) */
  valCount?: number;
  valLevels?: number;
  log?: (s: string) => void;
  /** latent specs: how samples (and the test set) become the images the judge sees */
  decode?: ImageDecoder;
  /** run the network this way instead of through tfjs (the static engine's forward pass) */
  network?: {
    validationLoss(v: ValidationSet, dims: [number, number, number], batch: number): Promise<number>;
    sample(z: Float32Array, prompts: readonly string[], dims: [number, number, number], opts: SampleOpts): Promise<Float32Array>;
  };
}

export interface CfgResult {
  cfg: number;
  images: number;
  /** fraction of images the judge classifies as the requested digit */
  accuracy: number;
  /** images classified as the requested digit */
  correct: number;
  /** 95% Wilson score interval of the accuracy */
  accuracyInterval: Interval;
  /** accuracy per requested digit 0..9 */
  perDigit: number[];
  /** per requested digit 0..9: images asked for, and those judged right */
  perDigitCounts: { requested: number[]; correct: number[] };
  /** accuracy of the numeral-prompted and the word-prompted halves */
  byPromptForm: { numeral: number; word: number };
  /** judge-feature Fréchet distance to MNIST test images (not Inception FID) */
  frechet: number;
  /** its 95% bootstrap interval (FD ± 1.96 se, clipped at 0) and standard error; null without a bootstrap */
  frechetInterval: (Interval & { se: number }) | null;
  /** wall time of sampling these images (not repeatable) */
  sampleSeconds: number;
}

export interface EvalResult {
  seed: number;
  perDigit: number;
  /** the sampler; guidanceInterval: the noise levels where CFG applied (null: every step) */
  sampler: { name: string; steps: number; guidanceInterval: [number, number] | null };
  /** flow validation loss at fixed timesteps and noise on MNIST test */
  valLoss: number;
  valSet: { images: number; levels: number };
  reference: { images: number; featureDim: number; frechetKind: "judge-feature" };
  /** FD of as many real MNIST test images as were generated (per scale) to the reference: the floor at this sample size */
  referenceSplitFrechet: number;
  /** how the intervals were made */
  intervals: { confidence: number; accuracy: "wilson"; frechet: { method: "bootstrap-normal"; resamples: number } | null };
  cfg: CfgResult[];
  /** problems noticed while evaluating, e.g. a model whose images do not depend on the prompt */
  warnings: string[];
}

/** The prompts of an eval: digit d repeated perDigit times, first ceil(perDigit/2) as numerals. */
export function evalPrompts(perDigit: number): { prompts: string[]; digits: Int32Array; word: Uint8Array } {
  if (!Number.isInteger(perDigit) || perDigit < 1) throw new RangeError(`perDigit must be a positive integer, got ${perDigit}`);
  const prompts: string[] = [];
  const digits = new Int32Array(10 * perDigit);
  const word = new Uint8Array(10 * perDigit);
  const numerals = Math.ceil(perDigit / 2);
  for (let d = 0; d < 10; d++) {
    for (let i = 0; i < perDigit; i++) {
      const k = d * perDigit + i;
      digits[k] = d;
      word[k] = i < numerals ? 0 : 1;
      prompts.push(i < numerals ? String(d) : DIGIT_WORDS[d]);
    }
  }
  return { prompts, digits, word };
}

export type ReferenceFeatures = { stats: FeatureStats; features: Float32Array; n: number; d: number };

/** Reference statistics of the judge's features on n images of a dataset (default all), decoded first when latent. */
export async function referenceFeatures(judge: Judge, ds: ImageTextDataset, n = ds.size, decode?: ImageDecoder): Promise<ReferenceFeatures> {
  const m = Math.min(n, ds.size);
  const per = ds.height * ds.width * ds.channels;
  const raw = new Float32Array(m * per);
  for (let i = 0; i < m; i++) ds.image(i, raw, i * per);
  const imgs = decode ? decode.decode(raw, m).map((v) => Math.min(1, Math.max(-1, v))) : raw;
  const out = await judgeImages(judge, imgs, m);
  return { stats: featureStats(out.features, m, out.featureDim), features: out.features, n: m, d: out.featureDim };
}

export async function evaluateModel(m: ModelBundle, judge: Judge, test: ImageTextDataset, o: EvalOptions = {}): Promise<EvalResult> {
  const log = o.log ?? (() => {});
  const perDigit = o.perDigit ?? DEFAULT_PER_DIGIT;
  const resamples = o.bootstrap ?? DEFAULT_BOOTSTRAP;
  if (!Number.isInteger(resamples) || resamples < 0 || resamples === 1) throw new RangeError(`bootstrap resamples must be 0 (none) or an integer >= 2, got ${resamples}`);
  const z = normalQuantile(1 - (1 - EVAL_CONFIDENCE) / 2);
  const scales = o.cfg ?? [1, 2, 4];
  const seed = o.seed ?? 0;
  const batch = o.batch ?? 50;
  const dims: [number, number, number] = [m.ir.data.height, m.ir.data.width, m.ir.data.channels];
  const seen = o.decode?.dims ?? dims;
  if (seen.join() !== judge.dims.join()) throw new RangeError(`the model makes ${seen.join("x")} images${o.decode ? ` (decoded from ${dims.join("x")} latents)` : ""} but the judge takes ${judge.dims.join("x")}`);
  if (!scales.length || scales.some((s) => !Number.isFinite(s) || s < 0)) throw new RangeError(`cfg scales must be numbers >= 0, got ${scales.join(",")}`);
  const steps = o.steps ?? m.flow.steps;
  const sampler = o.sampler ?? m.flow.sampler;
  const cfgInterval = o.cfgInterval ?? m.flow.guidanceInterval ?? null;

  // flow validation loss (fixed images, timesteps and noise)
  const val = makeValidationSet(test, Math.min(o.valCount ?? 32, test.size), o.valLevels ?? 8);
  const valLoss = o.network ? await o.network.validationLoss(val, dims, 64) : await validationLoss(m, val, dims, 64);
  log(`validation loss ${valLoss.toFixed(4)} (${val.n} examples)`);

  // reference features; the split FD is the noise floor at this many images
  const ref = o.referenceCache?.value ?? (await referenceFeatures(judge, test, o.referenceCount, o.decode));
  if (o.referenceCache) o.referenceCache.value = ref;
  const nGen = 10 * perDigit;
  // the floor: FD of as many real test images as generated ones (evenly spaced) to the reference
  let referenceSplitFrechet = NaN;
  const k = Math.min(nGen, ref.n);
  if (k >= 2) {
    const sub = new Float32Array(k * ref.d);
    for (let i = 0; i < k; i++) {
      const src = Math.floor((i * ref.n) / k);
      sub.set(ref.features.subarray(src * ref.d, (src + 1) * ref.d), i * ref.d);
    }
    referenceSplitFrechet = frechetDistance(featureStats(sub, k, ref.d), ref.stats);
  }

  const toRef = resamples > 0 && nGen >= 2 ? frechetTo(ref.stats) : null;
  const { prompts, digits, word } = evalPrompts(perDigit);
  const per = dims[0] * dims[1] * dims[2];
  const noise = new Rng(seed).normals(nGen * per);
  const results: CfgResult[] = [];
  const warnings: string[] = [];
  let first: { cfg: number; images: Float32Array } | null = null;
  o.onProgress?.(0, scales.length * nGen);
  const seenPer = seen[0] * seen[1] * seen[2];
  // the judged image of samples x [n, ...dims]: decoded when latent, clipped to [-1, 1]
  const view = (x: Float32Array, n: number) => (o.decode ? o.decode.decode(x, n) : x).map((v) => Math.min(1, Math.max(-1, v)));
  for (const cfg of scales) {
    const images = new Float32Array(nGen * seenPer);
    const t0 = performance.now();
    for (let s = 0; s < nGen; s += batch) {
      const e = Math.min(nGen, s + batch);
      if (o.network) {
        const x = await o.network.sample(noise.subarray(s * per, e * per), prompts.slice(s, e), dims, { cfg, steps, sampler, ...(cfgInterval ? { cfgInterval } : {}) });
        images.set(view(x, e - s), s * seenPer);
      } else {
        await m.text.prepare?.([...prompts.slice(s, e), ""]);
        const z = tf.tensor4d(noise.subarray(s * per, e * per), [e - s, ...dims]);
        const x = sampleImages(m, z, prompts.slice(s, e), { cfg, steps, sampler, ...(cfgInterval ? { cfgInterval } : {}) });
        images.set(view((await x.data()) as Float32Array, e - s), s * seenPer);
        tf.dispose([z, x]);
      }
      o.onProgress?.(results.length * nGen + e, scales.length * nGen);
      await new Promise((r) => setImmediate(r)); // lets signal handlers and progress output run
    }
    const sampleSeconds = (performance.now() - t0) / 1000;
    if (!first) first = { cfg, images };
    else if (cfg !== first.cfg && images.every((v, i) => v === first!.images[i])) {
      const w = `cfg ${cfg} gives exactly the images of cfg ${first.cfg}: the conditional and unconditional velocities are identical, so the model ignores its prompt (text encoder output does not depend on the tokens?)`;
      if (!warnings.includes(w)) warnings.push(w);
      log(`warning: ${w}`);
    }
    const j = await judgeImages(judge, images, nGen);
    const acc = promptAccuracy(digits, j.predicted, 10);
    const form = (w: number) => {
      let n = 0;
      let ok = 0;
      for (let i = 0; i < nGen; i++) if (word[i] === w) {
        n++;
        if (j.predicted[i] === digits[i]) ok++;
      }
      return n ? ok / n : NaN;
    };
    const frechet = nGen >= 2 ? frechetDistance(featureStats(j.features, nGen, j.featureDim), ref.stats) : NaN;
    // the same resampling at every scale (paired), seeded from the eval's seed
    const boot = toRef ? bootstrapFrechet(j.features, nGen, j.featureDim, ref.stats, frechet, { resamples, seed: seed + 1, z, confidence: EVAL_CONFIDENCE, to: toRef }) : null;
    const correct = acc.counts.correct.reduce((a, b) => a + b, 0);
    const accuracyInterval = wilsonInterval(correct, nGen, EVAL_CONFIDENCE);
    results.push({
      cfg, images: nGen, accuracy: acc.overall, correct, accuracyInterval, perDigit: acc.perClass, perDigitCounts: acc.counts, byPromptForm: { numeral: form(0), word: form(1) },
      frechet, frechetInterval: boot ? { lo: boot.lo, hi: boot.hi, se: boot.se } : null, sampleSeconds,
    });
    log(`cfg ${cfg}: prompt accuracy ${(acc.overall * 100).toFixed(1)}% [${(accuracyInterval.lo * 100).toFixed(1)}, ${(accuracyInterval.hi * 100).toFixed(1)}], judge-feature FD ${frechet.toFixed(2)}${boot ? ` [${boot.lo.toFixed(2)}, ${boot.hi.toFixed(2)}]` : ""}, ${sampleSeconds.toFixed(1)} s`);
  }
  return {
    seed, perDigit, sampler: { name: sampler, steps, guidanceInterval: cfgInterval }, valLoss, valSet: { images: val.n / (o.valLevels ?? 8), levels: o.valLevels ?? 8 },
    reference: { images: ref.n, featureDim: ref.d, frechetKind: "judge-feature" }, referenceSplitFrechet,
    intervals: { confidence: EVAL_CONFIDENCE, accuracy: "wilson", frechet: toRef ? { method: "bootstrap-normal", resamples } : null }, cfg: results, warnings,
  };
}

/** The eval as a plain-text table. */
export function formatEval(r: EvalResult, title = ""): string {
  const pct = (x: number) => (Number.isFinite(x) ? (x * 100).toFixed(1) : "-");
  const lines: string[] = [];
  if (title) lines.push(title);
  lines.push(`sampler ${r.sampler.name}, ${r.sampler.steps} steps${r.sampler.guidanceInterval ? `, guidance only for noise levels in [${r.sampler.guidanceInterval.join(", ")}]` : ""}; ${r.perDigit} images per digit (half "7", half "seven"); seed ${r.seed}`);
  lines.push(`validation loss (fixed timesteps and noise, ${r.valSet.images} MNIST test images x ${r.valSet.levels} levels): ${r.valLoss.toFixed(4)}`);
  lines.push(`FD below is a judge-feature Fréchet distance (the FID formula on the judge's ${r.reference.featureDim}-d penultimate features vs ${r.reference.images} MNIST test images), NOT Inception FID; MNIST-vs-MNIST at ${r.cfg[0]?.images ?? 0} images: ${Number.isFinite(r.referenceSplitFrechet) ? r.referenceSplitFrechet.toFixed(2) : "-"}`);
  const fdHow = r.intervals.frechet ? `FD ± 1.96 se, se over ${r.intervals.frechet.resamples} bootstrap resamples of the generated images` : "no FD interval (no bootstrap)";
  lines.push(`[lo, hi]: ${Math.round(r.intervals.confidence * 100)}% intervals (accuracy: Wilson score; ${fdHow}); ${r.cfg[0]?.images ?? 0} images per scale`);
  lines.push("");
  const iv = (i: Interval | null, f: (x: number) => string) => (i ? `[${f(i.lo)}, ${f(i.hi)}]` : "-");
  const head = ["cfg", "acc %", "acc 95% CI", "numeral %", "word %", "FD", "FD 95% CI", ...Array.from({ length: 10 }, (_, d) => `${d}`), "sample s"];
  const rows = r.cfg.map((c) => [
    String(c.cfg), pct(c.accuracy), iv(c.accuracyInterval, pct), pct(c.byPromptForm.numeral), pct(c.byPromptForm.word), c.frechet.toFixed(2), iv(c.frechetInterval, (x) => x.toFixed(2)),
    ...c.perDigit.map((a, d) => `${pct(a)} (${c.perDigitCounts.correct[d]}/${c.perDigitCounts.requested[d]})`), c.sampleSeconds.toFixed(1),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const fmt = (row: string[]) => row.map((x, i) => x.padStart(w[i])).join("  ");
  lines.push(fmt(head), w.map((n) => "-".repeat(n)).join("  "), ...rows.map(fmt));
  lines.push("(columns 0..9: accuracy % per requested digit (judged right / asked for))");
  for (const w of r.warnings) lines.push(`warning: ${w}`);
  return lines.join("\n");
}
