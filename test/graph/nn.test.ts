/**
 * The UNet building blocks (conv2d, conv_transpose2d, group_norm, upsample_nearest): each layer's
 * tfjs form and its traced static-graph form (convolutions as im2col and one GEMM, transposed
 * ones as one GEMM and col2im; group norm as permutes and layer_norm) against PyTorch's outputs and gradients
 * (test/fixtures/nn-fixtures/make.py), the traced gradients against finite differences, and the
 * native CPU executor against the interpreter on the forward and every gradient.
 */
import { readFileSync } from "node:fs";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { initBackend } from "../../runtime/backend.ts";
import { differentiate } from "../../runtime/graph/autodiff.ts";
import { evaluate } from "../../runtime/executors/interp/interp.ts";
import { fuseGraph } from "../../runtime/graph/fuse.ts";
import { Graph, type Sym } from "../../runtime/graph/graph.ts";
import { compileGraph, paramArena } from "../../runtime/executors/native/native.ts";
import { TraceContext, withTrace } from "../../runtime/graph/trace.ts";
import * as F from "../../runtime/nn/functional.ts";
import { Conv2d, ConvTranspose2d, GroupNorm } from "../../runtime/nn/layers.ts";
import { ParamStore } from "../../runtime/nn/params.ts";
import { finiteDifferenceError, worstRel } from "./helpers.ts";

beforeAll(async () => {
  await initBackend("cpu", { log: () => {} });
});

interface Fixture {
  name: string;
  x: { shape: number[]; data: number[] };
  y: { shape: number[]; data: number[] };
  c: { shape: number[]; data: number[] };
  dx: number[];
  params: Record<string, { shape: number[]; data: number[]; grad: number[] }>;
}
const FIX = JSON.parse(readFileSync("test/fixtures/nn-fixtures/nn.json", "utf8")) as { cases: Fixture[] };

/** A layer (or a stateless function) under test, built from the fixture's name. */
function build(name: string, store: ParamStore, ch: number): (x: tf.Tensor) => tf.Tensor {
  let m = /^conv2d k(\d) s(\d) p(\d)$/.exec(name);
  if (m) {
    const l = new Conv2d(store, "m", { channels: ch, outFeatures: 4, kernel: +m[1], stride: +m[2], padding: +m[3] });
    return (x) => l.apply(x);
  }
  m = /^conv_transpose2d k(\d) s(\d) p(\d)$/.exec(name);
  if (m) {
    const l = new ConvTranspose2d(store, "m", { channels: ch, outFeatures: 4, kernel: +m[1], stride: +m[2], padding: +m[3] });
    return (x) => l.apply(x);
  }
  m = /^group_norm groups (\d+) eps ([\d.e-]+)$/.exec(name);
  if (m) {
    const l = new GroupNorm(store, "m", { channels: ch, groups: +m[1], eps: +m[2] });
    return (x) => l.apply(x);
  }
  if (name === "group_norm on a sequence [B, N, C]") {
    const l = new GroupNorm(store, "m", { channels: ch, groups: 3 });
    return (x) => l.apply(x);
  }
  m = /^upsample_nearest (\d)$/.exec(name);
  if (m) return (x) => F.upsampleNearest(x, +m![1]);
  throw new Error(`no layer for fixture ${name}`);
}

describe.each(FIX.cases.map((c) => [c.name, c] as const))("%s", (_, fx) => {
  // tfjs variable names are global: one store at a time
  let store: ParamStore;
  let f: (x: tf.Tensor) => tf.Tensor;
  let names: string[];
  const c = Float32Array.from(fx.c.data);
  beforeAll(() => {
    store = new ParamStore(0);
    f = build(fx.name, store, fx.x.shape[fx.x.shape.length - 1]);
    for (const [p, v] of Object.entries(fx.params)) store.vars.get(`m.${p}`)!.assign(tf.tensor(v.data, v.shape));
    names = [...store.vars.keys()];
  });
  afterAll(() => store.dispose());

  it("has the state dict PyTorch has (names and shapes)", () => {
    expect(names).toEqual(Object.keys(fx.params).map((p) => `m.${p}`));
    for (const [p, v] of Object.entries(fx.params)) expect(store.vars.get(`m.${p}`)!.shape).toEqual(v.shape);
  });

  it("tfjs: PyTorch's output and gradients", () => {
    const x = tf.variable(tf.tensor(fx.x.data, fx.x.shape));
    const vars = [x, ...store.vars.values()];
    const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(f(x), tf.tensor(c, fx.c.shape))) as tf.Scalar, vars);
    const y = f(x);
    expect(y.shape).toEqual(fx.y.shape);
    expect(worstRel(y.dataSync(), fx.y.data)).toBeLessThan(1e-5);
    expect(worstRel(grads[x.name].dataSync(), fx.dx)).toBeLessThan(1e-5);
    for (const [p, v] of Object.entries(fx.params)) expect(worstRel(grads[store.vars.get(`m.${p}`)!.name].dataSync(), v.grad), p).toBeLessThan(1e-5);
    tf.dispose([x, value, y, ...Object.values(grads)]);
  });

  it("static graph (interpreter, then native): PyTorch's output and gradients", () => {
    const g = new Graph();
    const table = new Map([...store.vars].map(([n, v]) => [v, { name: n, shape: v.shape }] as const));
    const xs = g.param("x", fx.x.shape);
    const y = withTrace(new TraceContext(g, table), () => f(xs as never) as unknown as Sym);
    expect(y.shape).toEqual(fx.y.shape);
    const loss = g.sumTo(g.ew("mul", [y, g.constant(c, fx.c.shape)]), [1]);
    const { grads } = differentiate(g, loss);
    const params = new Map<string, Float32Array>([["x", Float32Array.from(fx.x.data)], ...names.map((n) => [n, store.vars.get(n)!.dataSync() as Float32Array] as [string, Float32Array])]);
    const vals = evaluate(g, new Map(), params);
    const want: [string, Sym, number[]][] = [["y", y, fx.y.data], ["dx", grads.get("x")!, fx.dx], ...Object.entries(fx.params).map(([p, v]) => [`d${p}`, grads.get(`m.${p}`)!, v.grad] as [string, Sym, number[]])];
    for (const [what, s, ref] of want) expect(worstRel(vals[s.id], ref), `interpreter ${what}`).toBeLessThan(1e-5);
    fuseGraph(g, want.map(([, s]) => s.id));
    for (const [what, s, ref] of want) {
      const got = compileGraph({ graph: g, v: s, batch: 1 }, paramArena(params)).run(new Map());
      expect(worstRel(got, ref), `native ${what}`).toBeLessThan(1e-5);
    }
  });

  it("static graph: gradients against central finite differences of its own loss", () => {
    const g = new Graph();
    const table = new Map([...store.vars].map(([n, v]) => [v, { name: n, shape: v.shape }] as const));
    const xs = g.param("x", fx.x.shape);
    const y = withTrace(new TraceContext(g, table), () => f(xs as never) as unknown as Sym);
    const loss = g.sumTo(g.ew("mul", [y, g.constant(c, fx.c.shape)]), [1]);
    const { grads } = differentiate(g, loss);
    const params = new Map<string, Float32Array>([["x", Float32Array.from(fx.x.data)], ...names.map((n) => [n, Float32Array.from(store.vars.get(n)!.dataSync())] as [string, Float32Array])]);
    // a few coordinates of each (the first, the last, one in the middle)
    const worst = finiteDifferenceError(g, loss, grads, params, new Map(), (n) => [0, Math.floor(n / 2), n - 1]);
    expect(worst).toBeLessThan(5e-3);
  });
});
