/**
 * The committed architecture specs compute the published functions: each spec's tiny variant,
 * compiled into a temp dir, loads the PyTorch reference's state dict strictly (every name and
 * shape on both sides) and matches the reference output (test/fixtures/arch, made by
 * make_fixtures.py from transcriptions of the published code) within 1e-4 on the tfjs forward,
 * the traced static graph on the CPU interpreter and the native CPU executor; and it trains two
 * steps through `sdc train` (its runTrain, in process) on both engines with finite and equal
 * losses (the WGSL kernels of the same specs: test/graph/webgpu.test.ts). The
 * gradients of every parameter match PyTorch's too, and at the specs' default sizes the compiled
 * state dict is the reference's, name for name and shape for shape.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { runCompile } from "../../cli/commands/compile.ts";
import { runTrain } from "../../cli/commands/train.ts";
import { loadCompiled, type LoadedSpec } from "../../cli/generated.ts";
import { initBackend } from "../../runtime/backend.ts";
import { evaluate } from "../../runtime/executors/interp/interp.ts";
import { differentiate } from "../../runtime/graph/autodiff.ts";
import { compileGraph, nativeAddon, paramArena } from "../../runtime/executors/native/native.ts";
import { buildVelocityGraph } from "../../runtime/engines/static/step.ts";
import { readSafetensors, type SafeTensor } from "../../runtime/io/safetensors.ts";
import { ParamStore } from "../../runtime/nn/params.ts";
import { networkSources } from "../../runtime/train/conditioning.ts";
import type { InputSource } from "../../ir/ir.ts";

vi.setConfig({ testTimeout: 240_000 });
const FX = "test/fixtures/arch";
const tmp = mkdtempSync(join(tmpdir(), "sdc-arch-fx-"));
const sink = { write: () => true, isTTY: false } as unknown as NodeJS.WriteStream;
beforeAll(async () => {
  await initBackend("wasm", { log: () => {} });
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** NCHW (PyTorch) -> NHWC (sdc) */
function toNHWC(t: SafeTensor): Float32Array {
  const [b, c, h, w] = t.shape;
  const x = t.data as Float32Array;
  const out = new Float32Array(b * h * w * c);
  for (let i = 0; i < b; i++) for (let ch = 0; ch < c; ch++) for (let y = 0; y < h; y++) for (let z = 0; z < w; z++) out[((i * h + y) * w + z) * c + ch] = x[((i * c + ch) * h + y) * w + z];
  return out;
}
function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

const losses = (out: string): { step: number; loss: number }[] =>
  readFileSync(join(out, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l)).filter((m) => m.loss !== undefined);

interface Arch {
  spec: string;
  name: string;
  fixture: string;
  /** the tfjs backend of its gradients and training: tfjs-wasm has no Conv2DBackpropFilter (U-ViT's final 3x3 conv), tfjs's CPU backend has */
  backend?: "cpu";
}
const ARCHS: Arch[] = [
  { spec: "specs/mmditx.mdl", name: "mmditx-tiny-train_log_every1", fixture: "mmditx" },
  { spec: "specs/dit.mdl", name: "dit-tiny-train_log_every1", fixture: "dit" },
  { spec: "specs/flux.mdl", name: "flux-tiny-train_log_every1", fixture: "flux" },
  { spec: "specs/hdit.mdl", name: "hdit-tiny-train_log_every1", fixture: "hdit" },
  { spec: "specs/uvit.mdl", name: "uvit-tiny-train_log_every1", fixture: "uvit", backend: "cpu" },
];

/** Run `f` on the arch's tfjs backend (wasm unless it names another), wasm again after. */
async function onBackend<T>(a: Arch, f: () => Promise<T>): Promise<T> {
  if (!a.backend) return f();
  await tf.setBackend(a.backend);
  try {
    return await f();
  } finally {
    await tf.setBackend("wasm");
  }
}

async function compileTiny(a: Arch): Promise<LoadedSpec> {
  expect(runCompile(a.spec, { outDir: tmp, quiet: true, variant: "tiny", set: ["train.log_every=1"] }, sink, sink)).toBe(0);
  return loadCompiled(join(tmp, a.name));
}

/** A spec's tiny variant with the reference weights loaded strictly, its inputs for tfjs and the traced graph. */
async function setup(a: Arch) {
  const loaded = await compileTiny(a);
  if (loaded.spec.task !== "diffusion") throw new Error("a diffusion spec");
  const weights = readSafetensors(readFileSync(join(FX, `${a.fixture}.weights.safetensors`)));
  const io = readSafetensors(readFileSync(join(FX, `${a.fixture}.io.safetensors`)));
  const store = new ParamStore(0);
  const network = loaded.spec.createNetwork(store);
  const { loaded: n, missing, unknown } = store.load(weights.tensors, { strict: true, what: a.fixture });
  expect(missing).toEqual([]);
  expect(unknown).toEqual([]);
  expect(n).toBe(store.vars.size);
  const ref = JSON.parse(readFileSync(join(FX, "reference.json"), "utf8"))[a.fixture];
  expect(store.numParams).toBe(ref.params);
  for (const [name, v] of store.vars) expect([...v.shape], name).toEqual(ref.state_dict[name]);

  const t = (k: string) => io.tensors.get(k)!;
  const [b, c, h, w] = t("x").shape;
  const xs = toNHWC(t("x"));
  const want = toNHWC(t("output")); // all the output channels (with learned sigma, 2C)
  const co = t("output").shape[1];
  const ts = t("timestep").data as Float32Array;
  const sources = networkSources(loaded.ir);

  // tfjs: the network's forward with each input from its source
  const tensorOf = (s: InputSource): tf.Tensor => {
    switch (s) {
      case "image": return tf.tensor4d(xs, [b, h, w, c]);
      case "timestep": return tf.tensor1d(ts);
      case "context": return tf.tensor(t("text_embeddings").data as Float32Array, t("text_embeddings").shape);
      case "pooled": return tf.tensor(t("pooled_text_embeddings").data as Float32Array, t("pooled_text_embeddings").shape);
      case "context_mask": return tf.tensor(t("text_mask").data as Float32Array, t("text_mask").shape);
      case "label": return tf.tensor1d(t("label").data as Int32Array, "int32");
    }
  };

  // the static graph
  const frozen = { words: [], encode: () => { throw new Error("unused"); } };
  // a network fed the pooled prompt alone (HDiT's mapping condition): the graph's context input is unused, fed a [B, 1, 1] placeholder;
  // one fed the tokens alone (U-ViT): the pooled input is unused, fed a [B, 1] placeholder
  const pooledOnly = !io.tensors.has("text_embeddings") && io.tensors.has("pooled_text_embeddings");
  const pooledWidth = io.tensors.has("pooled_text_embeddings") ? t("pooled_text_embeddings").shape[1] : 1;
  const ctxShape = io.tensors.has("text_embeddings")
    ? { tokens: t("text_embeddings").shape[1], width: t("text_embeddings").shape[2], pooled: pooledWidth }
    : pooledOnly ? { tokens: 1, width: 1, pooled: pooledWidth } : undefined;
  const vg = buildVelocityGraph({ store, network, text: frozen, ir: loaded.ir }, b, [h, w, c], ctxShape);
  // with flow.output velocity_variance the graph's v is the velocity half: compare the whole output
  const vNode = vg.graph.node(vg.v.id).op;
  const out = loaded.ir.flow.output === "velocity_variance" && vNode.kind === "slice" ? vg.graph.sym(vNode.src) : vg.v;
  expect(out.shape).toEqual([b, h, w, co]);
  const params = new Map([...store.vars].map(([name, v]) => [name, v.dataSync() as Float32Array]));
  const feeds = new Map<string, Float32Array>([["xt", xs], ["t", ts]]);
  if (io.tensors.has("text_embeddings")) {
    feeds.set("context", t("text_embeddings").data as Float32Array);
    feeds.set("pooled", io.tensors.has("pooled_text_embeddings") ? (t("pooled_text_embeddings").data as Float32Array) : new Float32Array(b));
  }
  if (pooledOnly) {
    feeds.set("context", new Float32Array(b));
    feeds.set("pooled", t("pooled_text_embeddings").data as Float32Array);
  }
  if (io.tensors.has("text_mask")) feeds.set("mask", t("text_mask").data as Float32Array);
  if (io.tensors.has("label")) {
    const labels = t("label").data as Int32Array;
    feeds.set("labels", Float32Array.from(labels));
    for (const oh of vg.oneHots) {
      expect(oh.from).toBe("labels");
      const rows = new Float32Array(labels.length * oh.vocab);
      labels.forEach((l, i) => (rows[i * oh.vocab + l] = 1));
      feeds.set(oh.name, rows);
    }
  }
  return { store, network, t, b, h, w, co, want, sources, tensorOf, vg, out, params, feeds };
}

describe.each(ARCHS)("$name vs the PyTorch reference", (a) => {
  it("loads the reference state dict strictly and matches its output within 1e-4 on tfjs, the graph interpreter and the native executor", async () => {
    const { store, network, b, h, w, co, want, sources, tensorOf, vg, out, params, feeds } = await setup(a);
    const worst: Record<string, number> = {};
    const y = tf.tidy(() => network.forward(...sources.map(tensorOf)));
    expect(y.shape).toEqual([b, h, w, co]);
    worst.tfjs = maxAbs(y.dataSync(), want);
    y.dispose();
    if (sources.includes("context_mask")) {
      // the fixture's padding matters: without the mask the output is far from PyTorch's
      const unmasked = tf.tidy(() => network.forward(...sources.map((s) => (s === "context_mask" ? tf.onesLike(tensorOf(s)) : tensorOf(s)))));
      expect(maxAbs(unmasked.dataSync(), want)).toBeGreaterThan(1e-3);
      unmasked.dispose();
    }
    worst.graph = maxAbs(evaluate(vg.graph, feeds, params, out.id + 1)[out.id], want);
    expect(nativeAddon().addon, nativeAddon().why).not.toBeNull();
    worst.native = maxAbs(compileGraph({ graph: vg.graph, v: out, batch: b }, paramArena(params)).run(feeds), want);
    console.log(`${a.name}: ${store.numParams} parameters; max |sdc - PyTorch| of the output: tfjs ${worst.tfjs.toExponential(2)}, graph ${worst.graph.toExponential(2)}, native ${worst.native.toExponential(2)}`);
    for (const [engine, e] of Object.entries(worst)) expect(e, engine).toBeLessThan(1e-4);
    store.dispose();
  });

  it("backpropagates as PyTorch: the gradient of sum(output * cotangent) for every parameter within 1e-4 (relative to its largest entry, at least 1) on tfjs, the graph interpreter and the native executor", () => onBackend(a, async () => {
    const { store, network, t, co, sources, tensorOf, vg, out, params, feeds } = await setup(a);
    const cot = toNHWC(t("cotangent"));
    const ref = new Map([...store.vars.keys()].map((name) => [name, t(`grad.${name}`).data as Float32Array]));
    const worst: Record<string, number> = { tfjs: 0, graph: 0, native: 0 };
    const check = (engine: string, name: string, got: ArrayLike<number>) => {
      const want = ref.get(name)!;
      let scale = 1;
      for (const v of want) scale = Math.max(scale, Math.abs(v));
      const e = maxAbs(got, want) / scale;
      // the timestep MLP's weights are the worst (2e-5 .. 5e-5): their gradients carry the sin/cos
      // features of t * 1000 directly, and one float32 ulp of a 1000-radian argument is 6e-5
      if (e > 1e-5) console.log(`  ${engine} ${name}: ${e.toExponential(2)} (max |grad| ${scale.toPrecision(3)})`);
      worst[engine] = Math.max(worst[engine], e);
    };
    // tfjs autodiff
    const vars = [...store.vars];
    const nameOf = new Map(vars.map(([name, v]) => [v.name, name]));
    const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(network.forward(...sources.map(tensorOf)), tf.tensor(cot, [...out.shape]))) as tf.Scalar, vars.map(([, v]) => v));
    value.dispose();
    for (const [vn, gt] of Object.entries(grads)) check("tfjs", nameOf.get(vn)!, gt.dataSync());
    expect(Object.keys(grads).length).toBe(vars.length);
    tf.dispose(grads);
    // the graph's autodiff: one loss node, every gradient flattened into one output for the native executor
    const g = vg.graph;
    const loss = g.sumTo(g.ew("mul", [out, g.input("cotangent", [...out.shape])]), [1]);
    const { grads: gs } = differentiate(g, loss);
    feeds.set("cotangent", cot);
    const names = vars.map(([name]) => name).filter((name) => gs.has(name));
    expect(names.length, "every parameter has a gradient").toBe(vars.length);
    const flat = g.concat(names.map((name) => g.reshape(gs.get(name)!, [gs.get(name)!.size])), 0);
    const values = evaluate(g, feeds, params, flat.id + 1);
    for (const name of names) check("graph", name, values[gs.get(name)!.id]);
    const nat = compileGraph({ graph: g, v: flat, batch: out.shape[0] }, paramArena(params)).run(feeds);
    let at = 0;
    for (const name of names) {
      const n = gs.get(name)!.size;
      check("native", name, nat.subarray(at, at + n));
      at += n;
    }
    console.log(`${a.name}: ${names.length} parameter gradients (${co} output channels); max |sdc - PyTorch| / max(1, max |PyTorch|): tfjs ${worst.tfjs.toExponential(2)}, graph ${worst.graph.toExponential(2)}, native ${worst.native.toExponential(2)}`);
    for (const [engine, e] of Object.entries(worst)) expect(e, engine).toBeLessThan(1e-4);
    store.dispose();
  }));

  it("at the spec's default sizes, has the reference's state dict (every name and shape, parameters and buffers)", () => {
    let text = "";
    const capture = { write: (x: string) => ((text += x), true), isTTY: false } as unknown as NodeJS.WriteStream;
    expect(runCompile(a.spec, { outDir: tmp, noWrite: true, json: true }, capture, sink)).toBe(0);
    const got = JSON.parse(text) as { stats: { networkParams: number }; parameters: { name: string; shape: number[] }[] };
    const ref = JSON.parse(readFileSync(join(FX, "reference.json"), "utf8"))[`${a.fixture}-default`];
    const net = got.parameters.filter((p) => !p.name.startsWith("text_encoder."));
    expect(Object.fromEntries(net.map((p) => [p.name, p.shape]))).toEqual(ref.state_dict);
    expect(got.stats.networkParams).toBe(ref.params);
  });

  it("trains 2 steps through sdc train on the tfjs and the static (native) engine: finite losses, the same for the same seed", async () => {
    await compileTiny(a);
    const run = async (engine: "tfjs" | "static") => {
      const out = join(tmp, `${a.name}-${engine}`);
      const lines: string[] = [];
      const opts = { steps: 2, batch: 2, seed: 1, engine, backend: a.backend ?? ("wasm" as const), sampleEvery: 0, checkpointEvery: 0, samples: 2, sampleSteps: 1, progress: false, out, log: (l: string) => lines.push(l) };
      expect(await runTrain(join(tmp, a.name), opts), lines.join("\n")).toBe(0);
      if (engine === "static") expect(lines.join("\n")).toMatch(/engine: static graph on the CPU, native CPU kernels/);
      return losses(out);
    };
    const tfjs = await run("tfjs");
    const stat = await run("static");
    for (const m of tfjs) expect(Number.isFinite(m.loss) && m.loss > 0, `tfjs loss ${m.loss} at step ${m.step}`).toBe(true);
    expect(stat.map((m) => m.step)).toEqual([1, 2]);
    stat.forEach((m, i) => expect(Math.abs(m.loss - tfjs[i].loss), `static vs tfjs loss at step ${m.step}`).toBeLessThan(1e-4 * Math.max(1, tfjs[i].loss)));
  }, a.backend ? 600_000 : undefined); // tfjs on its CPU backend (U-ViT) trains far slower than on wasm
});
