/**
 * Weight tying: `share: "NAME"` on a call with parameters uses those of the earlier call NAME.
 * Checked (positioned errors: unknown or later target, another shape, a suffix the target lacks,
 * an `as` name), counted once, one variable in the store, and the gradient of both uses on the
 * tfjs engine and on the traced static graph.
 */
import * as tf from "@tensorflow/tfjs";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { differentiate } from "../../runtime/graph/autodiff.ts";
import { evaluate } from "../../runtime/executors/interp/interp.ts";
import { Graph, type Sym } from "../../runtime/graph/graph.ts";
import { TraceContext, withTrace } from "../../runtime/graph/trace.ts";
import { Embedding, Linear } from "../../runtime/nn/layers.ts";
import { ParamError, ParamStore } from "../../runtime/nn/params.ts";
import { Rng } from "../../runtime/util/rng.ts";
import { blockB, compileSource, type Expected, expectError, lines, net, spec, ROOT } from "./helpers.ts";
import { typeCheck } from "./hostile.ts";

interface Case extends Expected {
  name: string;
  src: string;
}

/** block b's body (from line 3) called on the context [B, 5, 24] by the network (so it is elaborated) */
const inB = (...body: string[]) => lines(blockB(lines(...body)), net("    y = b(c, width: 24) as blk"), spec());

const cases: Case[] = [
  {
    name: "a target that is not a string",
    src: inB("    h = linear(x, width) as p", "    return linear(h, width, share: 3)"),
    code: "SDC401", line: 4, col: 36, msg: "linear: argument 'share' must be a string (the name of an earlier call, e.g. \"token_embedding\"), got int 3",
  },
  {
    name: "a target that is no name",
    src: inB("    h = linear(x, width) as p", '    return linear(h, width, share: "p q")'),
    code: "SDC407", line: 4, col: 36, msg: 'linear: share must name a call: identifiers or integers joined by dots (e.g. "token_embedding"), got "p q"',
  },
  {
    name: "a sharing call takes no name",
    src: inB("    h = linear(x, width) as p", '    return linear(h, width, share: "p") as q'),
    code: "SDC406", line: 4, col: 44, msg: "linear(..., share: \"p\") uses the parameters of 'p' and creates none of its own, so it takes no name; remove `as q`",
  },
  {
    name: "an unknown target, with did-you-mean",
    src: inB("    h = linear(x, width) as proj", '    return linear(h, width, share: "prj")'),
    code: "SDC308", line: 4, col: 36, msg: "share: no call before this one is named 'prj' with trainable parameters (did you mean 'proj'?)",
  },
  {
    name: "a target that comes later",
    src: inB('    h = linear(x, width, share: "p")', "    return linear(h, width) as p"),
    code: "SDC308", line: 3, col: 33, msg: "share: no call before this one is named 'p'",
  },
  {
    name: "another shape",
    src: inB("    h = linear(x, 2 * width) as p", '    return linear(h, width, share: "p")'),
    code: "SDC500", line: 4, col: 36, msg: "share: this linear's weight would be [24, 48] but p.weight is [48, 24]",
  },
  {
    name: "a parameter the target lacks",
    src: inB("    h = linear(x, width, bias: false) as p", '    return linear(h, width, share: "p")'),
    code: "SDC308", line: 4, col: 36, msg: "share: 'p' (linear) has no parameter 'p.bias' for this linear's bias (its parameters: weight)",
  },
  {
    name: "a primitive without parameters shares nothing",
    src: inB("    h = linear(x, width) as p", '    return silu(h, share: "p")'),
    code: "SDC403", line: 4, col: 20, msg: "silu has no argument 'share'",
  },
];

describe("share: positioned errors", () => {
  it.each(cases.map((c) => [c.name, c] as const))("%s", (_, c) => {
    expectError(compileSource(c.src), c);
  });
});

// a text encoder whose output head is tied to its token embedding, and a network that applies one
// linear twice and one from a sub-block (dotted path) again
const SRC = lines(
  "block enc(vocab: int, tokens: int, width: int) {",
  "  forward(ids: int32[B, tokens]) -> ([B, tokens, width], [B, width]) {",
  "    h = embedding(ids, vocab, width) as token_embedding",
  '    logits = linear(h, vocab, bias: false, share: "token_embedding")',
  "    h = h + linear(logits, width) as back",
  "    return h, mean(h, axis: 1)",
  "  }",
  "}",
  "block sub(width: int) {",
  "  forward(x: [B, N, width]) -> [B, N, width] {",
  "    return linear(x, width) as inner",
  "  }",
  "}",
  "block net(ch: int, ctx: int) {",
  "  forward(x: [B, H, W, ch], t: [B], c: [B, T, ctx], p: [B, P]) -> [B, H, W, ch] {",
  "    q = linear(c, ctx) as proj",
  '    q = linear(silu(q), ctx, share: "proj")',
  "    q = sub(q, width: ctx) as s",
  '    q = linear(q, ctx, share: "s.inner")',
  "    return x + unsqueeze(unsqueeze(unsqueeze(t + mean(mean(q, axis: 2), axis: 1) + mean(p, axis: 1), 1), 2), 3)",
  "  }",
  "}",
  "spec s {",
  "  data { source: mnist  image: [4, 4, 1] }",
  "  text { encoder: enc(vocab: 32, tokens: 5, width: 24)  tokens: 5  vocab: 32 }",
  "  network: net(ch: 1, ctx: 24)",
  "}",
);

describe("tied parameters end to end", () => {
  const r = compileSource(SRC);
  const tmp = mkdtempSync(join(tmpdir(), "sdc-tying-"));
  beforeAll(async () => {
    await tf.setBackend("cpu");
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it("compiles, each parameter listed and counted once", () => {
    expect(r.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
    const ir = JSON.parse(Object.fromEntries(r.files!)["ir.json"]) as { parameters: { name: string; count: number }[]; stats: { networkParams: number; textParams: number } };
    expect(ir.parameters.map((p) => p.name)).toEqual(["proj.weight", "proj.bias", "s.inner.weight", "s.inner.bias", "text_encoder.token_embedding.weight", "text_encoder.back.weight", "text_encoder.back.bias"]);
    expect(ir.stats.networkParams).toBe(2 * (24 * 24 + 24));
    expect(ir.stats.textParams).toBe(32 * 24 + 24 * 32 + 24);
  });

  it("generates code that passes tsc --strict, building the sharing layers on store.shared()", () => {
    const model = Object.fromEntries(r.files!)["model.ts"];
    expect(model).toContain('new Linear(store.shared(), joinName(path, "token_embedding"), { inFeatures: width, outFeatures: vocab, bias: false })');
    expect(model).toContain('new Linear(store.shared(), joinName(path, "s.inner")');
    expect(typeCheck(ROOT, new Map([["tying", r.files!]]))).toEqual([]);
  });

  it("builds one variable per parameter; the head computes with the embedding table", async () => {
    const dir = join(tmp, "pkg");
    mkdirSync(dir);
    for (const [p, c] of r.files!) writeFileSync(join(dir, p), c);
    type Mod = { forward(...xs: tf.Tensor[]): tf.Tensor | tf.Tensor[] };
    const mod = (await import(pathToFileURL(join(dir, "index.ts")).href)) as { spec: { createNetwork(s: ParamStore): Mod; createTextEncoder(s: ParamStore): Mod } };
    const store = new ParamStore(1);
    const netw = mod.spec.createNetwork(store);
    const enc = mod.spec.createTextEncoder(store);
    expect(store.vars.size).toBe(7);
    expect(store.numParams).toBe(2 * (24 * 24 + 24) + 32 * 24 + 24 * 32 + 24);
    // the encoder by hand: h = E[ids]; logits = h E^T; h + logits W^T + b
    const ids = tf.tensor2d([[1, 2, 3, 4, 5], [0, 31, 7, 7, 2]], [2, 5], "int32");
    const [ctx] = enc.forward(ids) as tf.Tensor[];
    const E = store.vars.get("text_encoder.token_embedding.weight")!;
    const h = tf.gather(E, ids);
    const want = tf.add(h, tf.add(tf.matMul(tf.reshape(tf.matMul(tf.reshape(h, [10, 24]), E, false, true), [10, 32]), store.vars.get("text_encoder.back.weight")!, false, true), store.vars.get("text_encoder.back.bias")!).reshape([2, 5, 24]));
    expect(Math.max(...(tf.abs(tf.sub(ctx, want)).dataSync() as Float32Array))).toBeLessThan(1e-5);
    const y = netw.forward(tf.zeros([2, 4, 4, 1]), tf.zeros([2]), ctx, tf.zeros([2, 24])) as tf.Tensor;
    expect(y.shape).toEqual([2, 4, 4, 1]);
    tf.dispose([ids, ctx, h, want, y]);
    store.dispose();
  });
});

describe("a shared layer at run time", () => {
  it("the gradient of a tied weight sums both uses, on tfjs and on the traced graph", () => {
    const store = new ParamStore(3);
    const emb = new Embedding(store, "e", { vocab: 6, width: 4 });
    const head = new Linear(store.shared(), "e", { inFeatures: 4, outFeatures: 6, bias: false });
    expect(head.weight).toBe(emb.weight);
    expect(store.vars.size).toBe(1);
    const rng = new Rng(5);
    const idsData = Int32Array.from([0, 3, 5, 1, 1, 2]);
    const cd = rng.normals(6 * 6);
    const ids = tf.tensor2d(idsData, [2, 3], "int32");
    const c = tf.tensor3d(cd, [2, 3, 6]);
    const f = () => tf.sum(tf.mul(head.apply(emb.apply(ids)), c)) as tf.Scalar;
    const { value, grads } = tf.variableGrads(f, [emb.weight]);
    const gEager = grads[emb.weight.name].dataSync() as Float32Array;
    // the same through the trace: one param node, its gradient from both uses
    const g = new Graph();
    const sids = g.input("ids", [2, 3]);
    const y = withTrace(new TraceContext(g, new Map([[emb.weight, { name: "e.weight", shape: [6, 4] }]])), () => head.apply(emb.apply(sids as never) as never) as unknown as Sym);
    const loss = g.sumTo(g.ew("mul", [y, g.constant(cd, [2, 3, 6])]), [1]);
    const d = differentiate(g, loss);
    const onehot = new Float32Array(6 * 6);
    idsData.forEach((t, r) => (onehot[r * 6 + t] = 1));
    const feeds = new Map<string, Float32Array>([["ids", Float32Array.from(idsData)], ["ids.onehot", onehot]]);
    const vals = evaluate(g, feeds, new Map([["e.weight", emb.weight.dataSync() as Float32Array]]));
    expect(vals[loss.id][0]).toBeCloseTo(value.dataSync()[0], 4);
    const gt = vals[d.grads.get("e.weight")!.id];
    let worst = 0;
    gEager.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - gt[i]))));
    expect(worst).toBeLessThan(1e-4);
    // and it is the sum of the two uses: not the embedding's part alone
    const frozen = tf.tensor2d(emb.weight.dataSync() as Float32Array, [6, 4]);
    const onlyEmb = tf.variableGrads(() => tf.sum(tf.mul(tf.matMul(tf.reshape(emb.apply(ids), [6, 4]), frozen, false, true), tf.reshape(c, [6, 6]))) as tf.Scalar, [emb.weight]);
    const ge = onlyEmb.grads[emb.weight.name].dataSync() as Float32Array;
    expect(Math.max(...gEager.map((v, i) => Math.abs(v - ge[i])))).toBeGreaterThan(1e-3);
    tf.dispose([ids, c, frozen, value, ...Object.values(grads), onlyEmb.value, ...Object.values(onlyEmb.grads)]);
    store.dispose();
  });

  it("refuses a parameter that does not exist or has another shape", () => {
    const store = new ParamStore(0);
    new Linear(store, "l", { inFeatures: 2, outFeatures: 3 });
    expect(() => new Linear(store.shared(), "m", { inFeatures: 2, outFeatures: 3 })).toThrow(new ParamError("shared parameter 'm.weight' does not exist (the layer whose weights are shared is built first)"));
    expect(() => new Linear(store.shared(), "l", { inFeatures: 3, outFeatures: 2 })).toThrow(/shared parameter 'l.weight' has shape \[3,2\], the layer sharing it needs \[2,3\]/);
    expect(store.vars.size).toBe(2);
    store.dispose();
  });
});
