/** `sdc sample DIR --checkpoint C --prompt "seven" --prompt 2`: images for typed prompts. */
import * as tf from "@tensorflow/tfjs";
import { irHash } from "../../ir/validate.ts";
import { initBackend } from "../../runtime/backend.ts";
import { encodeGridPng, promptsGridText } from "../../runtime/image/png.ts";
import { checkOutputFile, writeFileAtomic } from "../../runtime/io/atomic.ts";
import { CheckpointError, readCheckpoint, resolveCheckpoint } from "../../runtime/train/checkpoint.ts";
import { buildModel, sampleImages } from "../../runtime/train/trainer.ts";
import { staticFlowNetworkFor } from "../../runtime/engines/static/sampler.ts";
import { Rng } from "../../runtime/util/rng.ts";
import { EXIT, InputError, UsageError } from "../errors.ts";
import { loadCompiled } from "../generated.ts";
import { Progress } from "../progress.ts";
import { pretrainedTextOptions } from "./train.ts";
import { sampleViewer } from "../../runtime/data/load.ts";

export interface SampleCliOptions {
  checkpoint: string;
  prompts: string[];
  n: number;
  cfg?: number;
  steps?: number;
  sampler?: "euler" | "heun";
  seed: number;
  out: string;
  backend: "auto" | "tensorflow" | "webgpu" | "wasm" | "cpu";
  ema?: boolean;
  /** sd3_pretrained specs: clip_l=DIR,clip_g=DIR,t5=DIR (as `sdc train --text-encoders`) */
  textEncoders?: string;
  /** false: no progress bar */
  progress?: boolean;
  log?: (s: string) => void;
}

/** Images sampled at once on the tfjs path. */
const SAMPLE_CHUNK = 256;

export async function runSample(dir: string, o: SampleCliOptions): Promise<number> {
  const log = o.log ?? ((s: string) => process.stderr.write(s + "\n"));
  if (!o.prompts.length) throw new UsageError('give at least one --prompt, e.g. --prompt "seven" --prompt 2');
  if (!o.out.endsWith(".png")) throw new UsageError(`--out must be a .png file, got '${o.out}'`);
  checkOutputFile(o.out);
  checkOutputFile(o.out.replace(/\.png$/, ".txt"));
  const loaded = await loadCompiled(dir);
  const ckDir = resolveCheckpoint(o.checkpoint);
  const ck = readCheckpoint(ckDir);
  if (ck.state.irHash !== irHash(loaded.irText)) throw new CheckpointError(`checkpoint ${ckDir} is from another spec (${ck.state.spec}) than ${dir} (${loaded.ir.spec.name})`);
  const b = await initBackend(o.backend, { log });
  log(`backend: ${b.detail}`);
  const m = buildModel(loaded.spec, loaded.ir, 0, ck.state.words, pretrainedTextOptions(loaded.ir, o.textEncoders, log));
  const weights = o.ema !== false && ck.ema ? ck.ema : new Map([...ck.network, ...ck.text]);
  m.store.load(weights, { what: `checkpoint ${ckDir}` });
  const prompts = o.prompts.flatMap((p) => new Array(o.n).fill(p));
  const [h, w, c] = [loaded.ir.data.height, loaded.ir.data.width, loaded.ir.data.channels];
  const noise = new Rng(o.seed).normals(prompts.length * h * w * c);
  const t0 = performance.now();
  const steps = o.steps ?? loaded.ir.flow.steps;
  const progress = new Progress(steps, 0, o.progress !== false && process.stderr.isTTY === true, log);
  const onStep = (done: number) => progress.update(done);
  // on webgpu the network runs as a recorded forward pass (runtime/graph), else through tfjs
  const net = await staticFlowNetworkFor(m, [h, w, c], log);
  let data: Float32Array;
  if (net) {
    data = await net.sample(noise, prompts, [h, w, c], { cfg: o.cfg, steps: o.steps, sampler: o.sampler, onStep });
    net.dispose();
  } else {
    await m.text.prepare?.([...prompts, ""]);
    // in chunks, so --n 5000 needs the memory of SAMPLE_CHUNK images at a time (each image's noise is drawn above, so the result is the same)
    data = new Float32Array(prompts.length * h * w * c);
    for (let at = 0; at < prompts.length; at += SAMPLE_CHUNK) {
      const n = Math.min(SAMPLE_CHUNK, prompts.length - at);
      const z = tf.tensor4d(noise.subarray(at * h * w * c, (at + n) * h * w * c), [n, h, w, c]);
      const imgs = sampleImages(m, z, prompts.slice(at, at + n), { cfg: o.cfg, steps: o.steps, sampler: o.sampler, onStep });
      data.set((await imgs.data()) as Float32Array, at * h * w * c);
      tf.dispose([z, imgs]);
    }
  }
  progress.done();
  const nrow = Math.ceil(Math.sqrt(prompts.length));
  // latent samples are drawn through the dataset's decoder
  const viewer = sampleViewer(loaded.ir);
  if (!viewer && c !== 1 && c !== 3) throw new InputError(`${loaded.ir.spec.name} makes ${c}-channel samples and its data has no decoder to draw them with`);
  writeFileAtomic(o.out, viewer ? encodeGridPng(viewer.decode(data, prompts.length), prompts.length, ...viewer.dims, { nrow }) : encodeGridPng(data, prompts.length, h, w, c, { nrow }));
  writeFileAtomic(o.out.replace(/\.png$/, ".txt"), promptsGridText(prompts, nrow));
  log(`wrote ${o.out} (${prompts.length} image${prompts.length === 1 ? "" : "s"}, ${(o.steps ?? loaded.ir.flow.steps)} ${o.sampler ?? loaded.ir.flow.sampler} steps, cfg ${o.cfg ?? loaded.ir.flow.guidance}, ${((performance.now() - t0) / 1000).toFixed(1)} s) from ${ckDir}${o.ema !== false && ck.ema ? " (EMA weights)" : ""}`);
  m.store.dispose();
  return EXIT.ok;
}
