/**
 * The script of the exported page (sdc export --web): sdc's own sampler arithmetic (the noise of
 * runtime/util/rng.ts, the sigmas and time convention of runtime/flow/schedule.ts, the tokenizer
 * and the labels of the training run, classifier-free guidance (with the spec's guidance interval)
 * and the Euler/Heun integrator of runtime/flow/sampler.ts itself) around the exported ONNX graph
 * run with TensorFlow.js (interpret.ts), so a seed and a prompt give `sdc sample`'s grid. Bundled
 * by esbuild at export, with `tf` the page's global TensorFlow.js (WebGPU, else WebGL, else wasm,
 * else plain JS).
 */
import type * as TF from "@tensorflow/tfjs";
import { driveAsync, guidanceAt, guidanceRows, HOST_ARITH, integrateFlow } from "../../flow/sampler.ts";
import { networkTime, samplingSigmas, velocitySign } from "../../flow/schedule.ts";
import { gridLayout, toByte } from "../../image/png.ts";
import { WordTokenizer } from "../../text/words.ts";
import { promptLabels } from "../../train/conditioning.ts";
import { Rng } from "../../util/rng.ts";
import { type WebGraph, WebNetwork } from "./interpret.ts";

interface PageModel {
  graph: WebGraph;
  meta: Record<string, string>;
  card: { title: string; rows: [string, string][] };
}

declare const tf: typeof TF;
const model = (globalThis as unknown as { SDC_MODEL: PageModel }).SDC_MODEL;
const meta = model.meta;
const [H, W, C] = JSON.parse(meta["sdc.image"]) as [number, number, number];
const flow = { noiseAt: Number(meta["flow.noise_at"]) as 0 | 1, shift: Number(meta["flow.shift"]) };
const interval = meta["flow.guidance_interval"] ? (JSON.parse(meta["flow.guidance_interval"]) as [number, number]) : null;
const inputs = model.graph.inputs;
const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

/** The conditioning inputs for prompts: token ids (learned encoder) or class labels. */
function textFeeds(prompts: string[]): Record<string, { data: Int32Array; dims: number[] }> {
  const out: Record<string, { data: Int32Array; dims: number[] }> = {};
  if (meta["text.words"]) {
    const words = JSON.parse(meta["text.words"]) as string[];
    const tokens = Number(meta["text.tokens"]);
    out.ids = { data: new WordTokenizer(words, words.length + 2, tokens).encodeBatch(prompts), dims: [prompts.length, tokens] };
  }
  if (meta["label.null"] !== undefined) {
    const label = inputs.find((i) => i.dtype === "int32" && i.name !== "ids")!;
    out[label.name] = { data: promptLabels(prompts, Number(meta["label.null"])), dims: [prompts.length] };
  }
  return out;
}

/**
 * As StaticFlowNetwork.sample (runtime/engines/static/sampler.ts), on the page's network: the
 * guided rows and the integrator of runtime/flow/sampler.ts on host arrays. `onStep(i)` is
 * awaited after step i (1-based), before the next slope (the page redraws its progress).
 */
async function sample(net: WebNetwork, z: Float32Array, prompts: string[], scale: number, steps: number, sampler: string, onStep: (i: number) => Promise<void>): Promise<Float32Array> {
  const b = prompts.length;
  const per = H * W * C;
  const { rows: all, both } = guidanceRows(prompts, scale);
  const text = textFeeds(all);
  const [image, time] = [inputs[0].name, inputs[1].name];
  const sign = velocitySign(flow);
  const xin = new Float32Array(all.length * per);
  const dxds = (x: Float32Array, sigma: number): Float32Array => {
    xin.set(x);
    if (both) xin.set(x, b * per);
    const v = net.run({ ...text, [image]: { data: xin, dims: [all.length, H, W, C] }, [time]: { data: new Float32Array(all.length).fill(networkTime(flow, sigma)), dims: [all.length] } });
    const d = new Float32Array(b * per);
    const g = guidanceAt(scale, sigma, interval);
    for (let i = 0; i < d.length; i++) d[i] = sign * (both ? v[b * per + i] + (v[i] - v[b * per + i]) * g : v[i]);
    return d;
  };
  const plan = { steps, sampler: sampler === "euler" ? ("euler" as const) : ("heun" as const), sigmas: samplingSigmas({ steps, shift: flow.shift }) };
  let done = 0;
  let shown = 0;
  const x = await driveAsync(integrateFlow(HOST_ARITH, Float32Array.from(z), plan, (i) => (done = i + 1)), async (x, sigma) => {
    for (; shown < done; ) await onStep(++shown);
    return dxds(x, sigma);
  });
  for (; shown < done; ) await onStep(++shown);
  return x;
}

/** The grid as `sdc sample` writes it (runtime/image/png.ts: make_grid's layout, padding 2, black). */
function draw(canvas: HTMLCanvasElement, images: Float32Array, n: number): void {
  const { cols, height, width, padding } = gridLayout(n, H, W);
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d")!;
  const img = ctx.createImageData(width, height);
  const pad = toByte(-1);
  for (let i = 0; i < width * height; i++) img.data.set([pad, pad, pad, 255], i * 4);
  for (let k = 0; k < n; k++) {
    const y0 = Math.floor(k / cols) * (H + padding) + padding;
    const x0 = (k % cols) * (W + padding) + padding;
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const src = ((k * H + y) * W + x) * C;
        const at = ((y0 + y) * width + x0 + x) * 4;
        for (let ch = 0; ch < 3; ch++) img.data[at + ch] = toByte(images[src + (C === 1 ? 0 : ch)]);
      }
    }
  }
  ctx.putImageData(img, 0, 0);
  canvas.style.width = `${Math.min(3, Math.max(1, Math.floor(480 / width))) * width}px`;
}

async function pickBackend(): Promise<string> {
  for (const name of ["webgpu", "webgl", "wasm", "cpu"]) {
    if (!tf.findBackendFactory(name)) continue;
    try {
      // the wasm binaries lie beside the page
      if (name === "wasm") (tf as unknown as { wasm?: { setWasmPaths(p: string): void } }).wasm?.setWasmPaths("./");
      if (await tf.setBackend(name)) return name;
    } catch {
      // the next one
    }
  }
  throw new Error("no TensorFlow.js backend could start");
}

async function main(): Promise<void> {
  $("title").textContent = model.card.title;
  const card = $<HTMLTableElement>("card");
  for (const [k, v] of model.card.rows) {
    const tr = card.insertRow();
    tr.insertCell().textContent = k;
    tr.insertCell().textContent = v;
  }
  ($("cfg") as HTMLInputElement).value = meta["flow.guidance"];
  ($("steps") as HTMLInputElement).value = meta["flow.steps"];
  const backend = await pickBackend();
  $("backend").textContent = `TensorFlow.js ${tf.version.tfjs} on ${backend}`;
  const net = new WebNetwork(tf, model.graph);
  const status = $("status");
  const button = $<HTMLButtonElement>("generate");
  button.disabled = false;
  status.textContent = "ready";
  button.addEventListener("click", async () => {
    const prompt = ($("prompt") as HTMLInputElement).value;
    const scale = Number(($("cfg") as HTMLInputElement).value);
    const steps = Number(($("steps") as HTMLInputElement).value);
    const seed = Number(($("seed") as HTMLInputElement).value);
    const n = Number(($("count") as HTMLInputElement).value);
    if (!(Number.isInteger(steps) && steps >= 1 && Number.isInteger(seed) && seed >= 0 && Number.isInteger(n) && n >= 1 && Number.isFinite(scale) && scale >= 0)) {
      status.textContent = "steps and images must be whole numbers >= 1, the seed a whole number >= 0, CFG a number >= 0";
      return;
    }
    button.disabled = true;
    delete status.dataset.done;
    const t0 = performance.now();
    try {
      const z = new Rng(seed).normals(n * H * W * C);
      const prompts = new Array<string>(n).fill(prompt);
      const images = await sample(net, z, prompts, scale, steps, meta["flow.sampler"], async (i) => {
        status.textContent = `step ${i} / ${steps}`;
        await new Promise((r) => setTimeout(r, 0));
      });
      draw($<HTMLCanvasElement>("grid"), images, n);
      const s = (performance.now() - t0) / 1000;
      status.textContent = `${n} image${n === 1 ? "" : "s"}, ${steps} ${meta["flow.sampler"]} steps, CFG ${scale}: ${s.toFixed(2)} s`;
    } catch (e) {
      status.textContent = `failed: ${(e as Error).message}`;
    } finally {
      button.disabled = false;
      status.dataset.done = "1";
    }
  });
}

main().catch((e) => {
  $("status").textContent = `failed: ${(e as Error).message}`;
  $("status").dataset.done = "1";
});
