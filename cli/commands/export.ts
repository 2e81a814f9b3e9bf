/**
 * `sdc export RUN --onnx FILE` / `--web DIR`: the trained network outside sdc. RUN is a run folder
 * (its checkpoints/latest) or a checkpoint folder; the compiled package is
 * generated/<spec name from the checkpoint> unless --generated is given. EMA weights by default.
 * --onnx: the forward pass (learned text encoder included) as an ONNX model (runtime/export).
 * --web: a static page that samples in the browser with TensorFlow.js, the same graph inside.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { initBackend } from "../../runtime/backend.ts";
import { lowerModel } from "../../runtime/export/model.ts";
import { encodeOnnx } from "../../runtime/export/onnx-proto.ts";
import { type ModelCard, webIndexHtml, webModelScript } from "../../runtime/export/web.ts";
import { checkOutputFile, writeFileAtomic } from "../../runtime/io/atomic.ts";
import { readCheckpoint, resolveCheckpoint } from "../../runtime/train/checkpoint.ts";
import type { ModelBundle } from "../../runtime/bundle.ts";
import { LearnedPromptEncoder } from "../../runtime/text/learned.ts";
import { buildModel, buildTraceModel } from "../../runtime/train/trainer.ts";
import { EXIT, InputError, UsageError } from "../errors.ts";
import { checkpointSpec } from "../generated.ts";
import { SDC_VERSION } from "../version.ts";

export interface ExportCliOptions {
  onnx?: string;
  web?: string;
  generated?: string;
  weights?: "ema" | "raw";
  log?: (s: string) => void;
}

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const require = createRequire(import.meta.url);

/** The model of a checkpoint with the chosen weights loaded, and what the card says about it. */
async function loadRun(run: string, o: ExportCliOptions) {
  const ckDir = resolveCheckpoint(run);
  const ck = readCheckpoint(ckDir);
  const { loaded, genDir } = await checkpointSpec(ckDir, ck, o.generated);
  if (loaded.spec.task !== "diffusion") throw new InputError(`${genDir} is a classifier spec; sdc export takes a trained diffusion model`);
  const weights = o.weights ?? "ema";
  if (weights === "ema" && !ck.ema) throw new InputError(`checkpoint ${ckDir} has no EMA weights (train.ema is 0); use --weights raw`);
  // a frozen (pretrained or external) encoder is not part of the export: its features are inputs
  const m: ModelBundle = loaded.ir.text.kind === "learned" || loaded.ir.text.kind === "none" ? buildModel(loaded.spec, loaded.ir, 0, ck.state.words) : buildTraceModel(loaded.spec, loaded.ir, 0);
  m.store.load(weights === "ema" ? ck.ema! : new Map([...ck.network, ...ck.text]), { what: `checkpoint ${ckDir}` });
  return { m, ckDir, step: ck.state.step, weights };
}

/** The last training loss and validation loss of the run (metrics.jsonl beside its checkpoints), and its eval report (eval.json, `sdc eval --out`), if there. */
function runFigures(ckDir: string): [string, string][] {
  const runDir = [ckDir, dirname(ckDir), dirname(dirname(ckDir))].find((d) => existsSync(join(d, "metrics.jsonl")));
  const rows: [string, string][] = [];
  if (runDir) {
    const lines = readFileSync(join(runDir, "metrics.jsonl"), "utf8").trim().split("\n").flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, number>];
      } catch {
        return [];
      }
    });
    const loss = lines.filter((l) => typeof l.loss === "number").at(-1);
    const val = lines.filter((l) => typeof l.val_loss === "number").at(-1);
    if (loss) rows.push(["training loss", `${loss.loss.toFixed(4)} (step ${loss.step})`]);
    if (val) rows.push(["validation loss", `${val.val_loss.toFixed(4)} (step ${val.step})`]);
    const evalPath = join(runDir, "eval.json");
    if (existsSync(evalPath)) {
      try {
        const r = JSON.parse(readFileSync(evalPath, "utf8")) as { perCfg?: { cfg: number; accuracy?: number; frechet?: number }[] };
        for (const c of r.perCfg ?? []) rows.push([`eval, CFG ${c.cfg}`, [c.accuracy !== undefined ? `${(c.accuracy * 100).toFixed(1)}% prompts followed` : "", c.frechet !== undefined ? `judge Fréchet ${c.frechet.toFixed(2)}` : ""].filter(Boolean).join(", ")]);
      } catch {
        throw new InputError(`${evalPath} is not valid JSON`);
      }
    }
  }
  return rows;
}

function card(m: ModelBundle, step: number, weights: string, figures: [string, string][]): ModelCard {
  const ir = m.ir;
  const f = m.flow;
  return {
    title: `${ir.spec.name}: ${ir.spec.title}`,
    rows: [
      ["spec", `${ir.spec.file}${ir.spec.variant ? ` (variant ${ir.spec.variant})` : ""}`],
      ["network", `${ir.network.block}, ${m.store.numParams.toLocaleString("en-US")} parameters`],
      ["trained", `${step.toLocaleString("en-US")} steps (batch ${ir.train.batch}), ${weights === "ema" ? `EMA weights (decay ${ir.train.ema})` : "raw weights"}`],
      ["images", `${ir.data.height}x${ir.data.width}x${ir.data.channels}, ${ir.data.source}`],
      ["flow", `rectified flow, noise at t = ${f.noiseAt}; ${f.sampler}, ${f.steps} steps, shift ${f.shift}, CFG ${f.guidance}`],
      ...figures,
      ["exported by", `sdc ${SDC_VERSION}`],
    ],
  };
}

/** page.js: runtime/export/web/page.ts bundled for the browser, TensorFlow.js as the page's global `tf`. */
async function bundlePage(): Promise<string> {
  const esbuild = await import("esbuild");
  const r = await esbuild.build({
    entryPoints: [join(ROOT, "runtime/export/web/page.ts")],
    bundle: true,
    write: false,
    format: "iife",
    target: "es2020",
    minify: true,
    logLevel: "silent",
    plugins: [
      {
        name: "sdc-page-externals",
        setup(b) {
          // the runtime modules the page uses import tfjs (the page's global) and Node packages they never call in the page
          b.onResolve({ filter: /^[^./]/ }, (a) => ({ path: a.path, namespace: "sdc-page-stub" }));
          b.onLoad({ filter: /.*/, namespace: "sdc-page-stub" }, (a) => ({ contents: a.path === "@tensorflow/tfjs" ? "module.exports = globalThis.tf;" : "module.exports = {};", loader: "js" }));
        },
      },
    ],
  });
  return r.outputFiles[0].text;
}

/** TensorFlow.js's browser builds, from this installation's node_modules. */
function tfjsFiles(): { from: string; to: string }[] {
  const files = [
    { pkg: "@tensorflow/tfjs/dist/tf.min.js", required: true },
    { pkg: "@tensorflow/tfjs-backend-webgpu/dist/tf-backend-webgpu.min.js", required: false },
    { pkg: "@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.min.js", required: true },
    { pkg: "@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm", required: true },
    { pkg: "@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm", required: true },
    { pkg: "@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm", required: true },
  ];
  return files.flatMap((f) => {
    try {
      const from = require.resolve(f.pkg);
      return [{ from, to: basename(from) }];
    } catch {
      if (f.required) throw new InputError(`${f.pkg} is missing from node_modules; reinstall sdc (npm install)`);
      return []; // the optional WebGPU backend: the page uses WebGL or wasm
    }
  });
}

export async function runExport(run: string, o: ExportCliOptions): Promise<number> {
  const log = o.log ?? ((s: string) => process.stderr.write(s + "\n"));
  if (!o.onnx && !o.web) throw new UsageError("say what to export: --onnx FILE.onnx and/or --web DIR");
  if (o.onnx !== undefined) {
    if (!o.onnx.endsWith(".onnx")) throw new UsageError(`--onnx must name a .onnx file, got '${o.onnx}'`);
    checkOutputFile(o.onnx);
  }
  if (o.web !== undefined && existsSync(o.web) && !statSync(o.web).isDirectory()) throw new UsageError(`--web must name a folder, and ${o.web} is a file`);
  await initBackend("cpu", { log: () => {} });
  const { m, ckDir, step, weights } = await loadRun(run, o);
  try {
    const info = { step, weights, producerVersion: SDC_VERSION };
    if (o.web !== undefined) {
      if (!(m.text instanceof LearnedPromptEncoder) && m.ir.text.kind !== "none") throw new InputError(`${m.ir.spec.name} takes a frozen text encoder's features, which a page cannot compute; export it with --onnx`);
      if (m.ir.data.channels !== 1 && m.ir.data.channels !== 3) throw new InputError(`${m.ir.spec.name} makes ${m.ir.data.channels}-channel latents, which need a decoder the page does not have; export it with --onnx`);
    }
    const model = await lowerModel(m, info);
    if (o.onnx !== undefined) {
      const bytes = encodeOnnx(model);
      writeFileAtomic(o.onnx, bytes);
      log(`wrote ${o.onnx} (${(bytes.length / 1e6).toFixed(1)} MB, ONNX opset 17; inputs ${model.inputs.map((i) => `${i.name} [${i.dims}]`).join(", ")}; output ${model.outputs[0].name}) from ${ckDir} (${weights} weights, step ${step})`);
    }
    if (o.web !== undefined) {
      mkdirSync(o.web, { recursive: true });
      const c = card(m, step, weights, runFigures(ckDir));
      const prompt = m.ir.data.classes ? "7" : "seven";
      writeFileAtomic(join(o.web, "model.js"), webModelScript(model, model.metadata ?? {}, c));
      writeFileAtomic(join(o.web, "page.js"), await bundlePage());
      for (const f of tfjsFiles()) copyFileSync(f.from, join(o.web, f.to));
      writeFileAtomic(join(o.web, "index.html"), webIndexHtml(c, prompt));
      log(`wrote ${join(o.web, "index.html")} (open it from disk or serve the folder) from ${ckDir} (${weights} weights, step ${step})`);
    }
    return EXIT.ok;
  } finally {
    m.store.dispose();
  }
}
