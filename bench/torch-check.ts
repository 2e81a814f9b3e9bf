/**
 * bench/torch-check: the PyTorch twin (bench/torch_step.py) and sdc compute the same loss and
 * gradient on the same numbers. Builds a compiled network with its seeded initial weights, draws
 * one batch (x0, eps, sigma, a random context and pooled vector, as bench/step.ts does), computes
 * sdc's training loss (runtime/train/trainer.ts flowLoss) and the global gradient norm on a tfjs
 * backend, writes the weights (PyTorch names, with the position buffer) and the inputs as
 * safetensors into --out (default: a temporary folder, removed afterwards), runs `torch_step.py --check` on them and compares.
 *
 *   npx tsx bench/torch-check.ts [--generated generated/sd3-tiny] [--batch 4] [--backend cpu] [--out DIR]
 *
 * Exit 0 when loss and gradient norm agree within --tol (relative, default 1e-4), 1 otherwise or
 * when PyTorch is not installed. A check of the benchmark's twin, not part of npm test.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { benchArgs } from "./args.ts";
import * as tf from "@tensorflow/tfjs";
import { loadCompiled } from "../cli/generated.ts";
import { initBackend, shutdownBackend } from "../runtime/backend.ts";
import { sampleSigmas } from "../runtime/flow/schedule.ts";
import { writeSafetensors, type TensorToWrite } from "../runtime/io/safetensors.ts";
import { ParamStore } from "../runtime/nn/params.ts";
import { flowLoss } from "../runtime/train/trainer.ts";
import { type ModelBundle, type PromptEncoder } from "../runtime/bundle.ts";
import { Rng } from "../runtime/util/rng.ts";

const { values } = benchArgs(import.meta.url, {
  options: {
    generated: { type: "string", default: "generated/sd3-tiny" },
    batch: { type: "string", default: "4" },
    "context-tokens": { type: "string", default: "8" },
    backend: { type: "string", default: "cpu" },
    python: { type: "string", default: "/usr/bin/python3" },
    out: { type: "string" },
    tol: { type: "string", default: "1e-4" },
    seed: { type: "string", default: "0" },
  },
});

await initBackend(values.backend as "cpu", { log: (m) => console.error(m) });
const loaded = await loadCompiled(values.generated!);
if (loaded.spec.task !== "diffusion") throw new Error("bench/torch-check needs a diffusion spec");
const ir = loaded.ir;
const batch = Number(values.batch);
const tokens = Number(values["context-tokens"]);
const ctxWidth = Number(ir.network.inputs[2].shape[2]);
const pooledWidth = Number(ir.network.inputs[3].shape[1]);
const [h, w, c] = [ir.data.height, ir.data.width, ir.data.channels];
const per = h * w * c;

const store = new ParamStore(Number(values.seed));
const network = loaded.spec.createNetwork(store);
const rng = new Rng(Number(values.seed));
const ctx = rng.normals(batch * tokens * ctxWidth);
const pooledData = rng.normals(batch * pooledWidth);
const text: PromptEncoder = { words: [], encode: () => [tf.tensor3d(ctx, [batch, tokens, ctxWidth]), tf.tensor2d(pooledData, [batch, pooledWidth])] };
const m: ModelBundle = { store, network, text, flow: { ...ir.flow }, ir };
const x0 = new Float32Array(batch * per);
for (let i = 0; i < x0.length; i++) x0[i] = rng.uniform() * 2 - 1;
const b = { x0, eps: rng.normals(batch * per), sigma: sampleSigmas(m.flow.density, batch, rng), prompts: new Array<string>(batch).fill("") };

const vars = [...store.vars.values()];
const { value, grads } = tf.variableGrads(() => flowLoss(m, b, [batch, h, w, c]), vars);
const sdcLoss = (await value.data())[0];
let sq = 0;
for (const g of Object.values(grads)) for (const x of (await g.data()) as Float32Array) sq += x * x;
const sdcNorm = Math.sqrt(sq);
const sdcParams = store.numParams;

const dir = values.out ?? mkdtempSync(join(tmpdir(), "sdc-torch-check-"));
mkdirSync(dir, { recursive: true });
const weights = new Map<string, TensorToWrite>();
for (const [name, v] of [...store.vars, ...store.buffers]) weights.set(name, { shape: [...v.shape], data: (await v.data()) as Float32Array });
const wPath = join(dir, "weights.safetensors");
const iPath = join(dir, "inputs.safetensors");
writeFileSync(wPath, writeSafetensors(weights));
writeFileSync(iPath, writeSafetensors({ x0: { shape: [batch, h, w, c], data: x0 }, eps: { shape: [batch, h, w, c], data: b.eps }, sigma: { shape: [batch], data: b.sigma }, context: { shape: [batch, tokens, ctxWidth], data: ctx }, pooled: { shape: [batch, pooledWidth], data: pooledData } }));
store.dispose();
await shutdownBackend();

const r = spawnSync(values.python!, ["bench/torch_step.py", "--generated", values.generated!, "--context-tokens", String(tokens), "--check", wPath, "--check-inputs", iPath, "--json"], { encoding: "utf8" });
if (!values.out) rmSync(dir, { recursive: true, force: true }); // a temporary folder: nothing is left behind
if (r.status !== 0) {
  console.error(`torch-check: bench/torch_step.py failed (exit ${r.status ?? r.signal}):\n${(r.stderr || r.error?.message || "").trim()}`);
  process.exit(1);
}
const t = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
const tol = Number(values.tol);
const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b), 1e-12);
const lossRel = rel(sdcLoss, t.loss);
const normRel = rel(sdcNorm, t.gradNorm);
const ok = lossRel <= tol && normRel <= tol && t.params === sdcParams;
console.log(
  JSON.stringify({
    bench: "torch-check",
    generated: values.generated,
    backend: values.backend,
    batch,
    contextTokens: tokens,
    params: { sdc: sdcParams, torch: t.params },
    loss: { sdc: sdcLoss, torch: t.loss, relDiff: Number(lossRel.toExponential(2)) },
    gradNorm: { sdc: sdcNorm, torch: t.gradNorm, relDiff: Number(normRel.toExponential(2)) },
    tol,
    ok,
    files: values.out ?? "temporary, removed",
  }),
);
process.exit(ok ? 0 : 1);
