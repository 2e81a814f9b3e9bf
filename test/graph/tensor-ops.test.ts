/**
 * The layout and constant primitives (reshape, permute, transpose, slice, repeat, broadcast_to,
 * pad, squeeze, zeros, ones, full, arange) and the elementwise ones (minimum, maximum, clamp,
 * where, pow, square, sin, cos): each runtime function (nn/functional.ts) eagerly on tfjs and traced into
 * the static graph (trace.ts), forward values and gradients: tfjs autodiff against the graph's
 * gradient rules, run by the reference interpreter (cpu.ts) and by the native CPU kernels; all
 * three against PyTorch's values (test/fixtures/tensor-ops); gradients of the elementwise ops
 * against finite differences; and a spec using them all (test/specs/tensor-ops.mdl) trains to the
 * same losses on both engines.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { initBackend } from "../../runtime/backend.ts";
import { differentiate } from "../../runtime/graph/autodiff.ts";
import { evaluate } from "../../runtime/executors/interp/interp.ts";
import { fuse } from "../../runtime/graph/fuse.ts";
import { Graph, type Sym } from "../../runtime/graph/graph.ts";
import { compileGraph, paramArena } from "../../runtime/executors/native/native.ts";
import { TraceContext, withTrace } from "../../runtime/graph/trace.ts";
import * as F from "../../runtime/nn/functional.ts";
import { Rng } from "../../runtime/util/rng.ts";
import { expectSameMetrics, finiteDifferenceError, type MetricLine, readMetrics } from "./helpers.ts";

beforeAll(async () => {
  await initBackend("cpu", { log: () => {} });
});

/* eslint-disable @typescript-eslint/no-explicit-any */
type Fn = (xs: any[]) => any;
const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/**
 * fn's output and the gradients of sum(w * fn(xs)) for every input: [tfjs, interpreter, native],
 * each flattened into one array (output first), and the output shapes of both.
 */
function run(fn: Fn, shapes: number[][], data?: Float32Array[], seed = 1, weight?: Float32Array) {
  const rng = new Rng(seed);
  const xs = data ?? shapes.map((s) => rng.normals(size(s)));
  // tfjs: eager values, autodiff
  const ts = xs.map((d, i) => tf.tensor(d, shapes[i]));
  const yt = fn(ts) as tf.Tensor;
  const w = weight ?? rng.normals(yt.size);
  const grads = tf.grads((...a: tf.Tensor[]) => tf.sum(tf.mul(fn(a), tf.tensor(w, yt.shape))))(ts);
  const want = Float32Array.from([...yt.dataSync(), ...grads.flatMap((g) => [...g.dataSync()])]);
  // the traced graph
  const g = new Graph();
  const ps = shapes.map((s, i) => g.param(`p${i}`, s));
  const y = withTrace(new TraceContext(g, new Map()), () => fn(ps)) as Sym;
  const loss = g.sumTo(g.ew("mul", [y, g.constant(w, y.shape)]), [1]);
  const { grads: gg } = differentiate(g, loss);
  const out = g.concat([g.reshape(y, [-1]), ...ps.map((_, i) => g.reshape(gg.get(`p${i}`)!, [-1]))], 0);
  const params = new Map(xs.map((d, i) => [`p${i}`, d] as const));
  const cpu = evaluate(g, new Map(), params)[out.id];
  fuse({ graph: g, loss: out, grads: new Map(), params: [], oneHots: [], batch: 1, dims: [1, 1, 1], text: "learned" } as never);
  const native = compileGraph({ graph: g, v: out, batch: 1 }, paramArena(params)).run(new Map());
  return { want, cpu, native, shapes: [yt.shape, y.shape] };
}

function worst(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let w = 0;
  for (let i = 0; i < a.length; i++) w = Math.max(w, Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(b[i])));
  return w;
}

function expectSame(fn: Fn, shapes: number[][], data?: Float32Array[]) {
  const r = run(fn, shapes, data);
  expect(r.shapes[1]).toEqual(r.shapes[0]);
  expect(worst(r.cpu, r.want)).toBeLessThan(1e-5);
  expect(worst(r.native, r.want)).toBeLessThan(1e-5);
  return r;
}

const fixed = (...v: number[]) => Float32Array.from(v);

describe("pooling on the static graph (a reshape and a mean; the max of the window's slices)", () => {
  it.each([
    ["avg_pool 2", (a: any[]) => F.avgPool(a[0], 2), [[2, 4, 6, 3]]],
    ["avg_pool 3", (a: any[]) => F.avgPool(a[0], 3), [[1, 6, 3, 2]]],
    ["max_pool 2", (a: any[]) => F.maxPool(a[0], 2), [[2, 4, 6, 3]]],
    ["max_pool 3", (a: any[]) => F.maxPool(a[0], 3), [[1, 6, 3, 2]]],
  ] as [string, Fn, number[][]][])("%s: values and gradients as tfjs, on the interpreter and the native kernels", (_, fn, shapes) => {
    expectSame(fn, shapes);
  });
});

// each on the cpu and the wasm backend of tfjs (they differ: a cast of 0.3 to bool is false on wasm)
describe.each(["cpu", "wasm"] as const)("tfjs %s", (backend) => {
  beforeAll(async () => {
    await initBackend(backend, { log: () => {} });
  });

  describe("layout primitives: tfjs and the traced graph (interpreter, native) agree, forward and backward", () => {
    it.each<[string, Fn, number[][]]>([
      ["reshape with -1", ([x]) => F.reshape(x, [2, -1, 2]), [[2, 3, 4]]],
      ["reshape then elementwise (views)", ([x]) => F.mul(F.reshape(x, [6, 4]), 2), [[2, 3, 4]]],
      ["permute", ([x]) => F.permute(x, [2, 0, 1]), [[2, 3, 4]]],
      ["permute with a negative axis", ([x]) => F.permute(x, [0, -1, 1]), [[2, 3, 4]]],
      ["transpose", ([x]) => F.transpose(x, 1, -1), [[2, 3, 4]]],
      ["slice", ([x]) => F.slice(x, 1, 3, 1), [[2, 4, 3]]],
      ["slice with negative bounds", ([x]) => F.slice(x, -3, -1), [[2, 5]]],
      ["two slices of one tensor (gradients meet)", ([x]) => F.mul(F.slice(x, 0, 2, 0), F.slice(x, 1, 3, 0)), [[3, 4]]],
      ["repeat (tile) along the middle axis", ([x]) => F.repeat(x, 3, 1), [[2, 2, 3]]],
      ["repeat along the last axis", ([x]) => F.repeat(x, 2), [[2, 3]]],
      ["repeat along the first axis", ([x]) => F.repeat(x, 2, 0), [[2, 3]]],
      ["broadcast_to (size-1 and missing axes)", ([x]) => F.broadcastTo(x, [2, 3, 4]), [[3, 1]]],
      ["pad with zeros", ([x]) => F.pad(x, 1, 2, 1), [[2, 3, 2]]],
      ["pad with a value, before only", ([x]) => F.pad(x, 2, 0, -1, -1.5), [[3, 2]]],
      ["pad with a value on the first axis", ([x]) => F.pad(x, 1, 1, 0, 0.25), [[2, 3]]],
      ["squeeze", ([x]) => F.squeeze(x, 1), [[3, 1, 4]]],
      ["layout chain: heads split, transposed, merged back", ([x]) => F.reshape(F.transpose(F.reshape(x, [2, 3, 2, 2]), 1, 2), [2, 3, 4]), [[2, 3, 4]]],
    ])("%s", (_, fn, shapes) => {
      expectSame(fn, shapes);
    });
  });

  describe("constant tensors: the same values eagerly and traced", () => {
    it.each<[string, Fn, number[][]]>([
      ["zeros", ([x]) => F.add(x, F.zeros([2, 1])), [[2, 3]]],
      ["ones", ([x]) => F.mul(x, F.ones([3])), [[2, 3]]],
      ["full", ([x]) => F.mul(x, F.full([1, 3], -0.75)), [[2, 3]]],
      ["arange", ([x]) => F.add(x, F.arange(3)), [[2, 3]]],
      ["arange as frequencies (exp of a scaled arange)", ([x]) => F.mul(x, F.exp(F.mul(F.arange(4), -0.5))), [[3, 4]]],
    ])("%s", (_, fn, shapes) => {
      expectSame(fn, shapes);
    });
    it("arange and full hold what they say", () => {
      expect([...F.arange(4).dataSync()]).toEqual([0, 1, 2, 3]);
      expect([...F.full([2, 2], 3.5).dataSync()]).toEqual([3.5, 3.5, 3.5, 3.5]);
      expect(F.zeros([2, 3]).shape).toEqual([2, 3]);
    });
  });

  describe("elementwise primitives: tfjs and the traced graph (interpreter, native) agree, forward and backward", () => {
    it.each<[string, Fn, number[][], Float32Array[]?]>([
      ["minimum", ([a, b]) => F.minimum(a, b), [[2, 3], [2, 3]]],
      ["maximum, broadcast (the gradient of b summed)", ([a, b]) => F.maximum(a, b), [[2, 3], [1, 3]]],
      ["maximum with a number", ([a]) => F.maximum(a, 0.25), [[2, 3]]],
      ["minimum with a number first", ([a]) => F.minimum(-0.1, a), [[2, 3]]],
      ["ties: maximum and minimum give the gradient to a (as tfjs)", ([a, b]) => F.add(F.maximum(a, b), F.mul(F.minimum(a, b), 3)), [[4], [4]], [fixed(1, -2, 0.5, 3), fixed(1, 2, 0.5, -3)]],
      ["clamp (ends included)", ([x]) => F.clamp(x, -0.5, 0.75), [[9]], [fixed(-2, -0.5, -0.2, 0, 0.3, 0.75, 0.9, 3, -0.49)]],
      ["where, the mask broadcast", ([c, a, b]) => F.where(F.relu(c), a, b), [[2, 1, 3], [2, 4, 3], [4, 3]]],
      ["where with a number (a masked fill)", ([c, a]) => F.where(F.relu(c), a, -1e9), [[2, 3], [2, 3]]],
      ["where with the number first", ([c, b]) => F.where(F.relu(c), 0.5, b), [[2, 3], [2, 3]]],
      ["pow with a fractional exponent (positive base)", ([x]) => F.pow(F.add(F.square(x), 0.1), 1.5), [[7]]],
      ["pow with an integer exponent (negative bases)", ([x]) => F.pow(x, 3), [[7]]],
      ["pow with a negative even exponent", ([x]) => F.pow(F.add(F.abs(x), 0.5), -2), [[7]]],
      ["square", ([x]) => F.square(x), [[2, 4]]],
      ["sin", ([x]) => F.sin(F.mul(x, 3)), [[2, 4]]],
      ["cos", ([x]) => F.cos(F.mul(x, 3)), [[2, 4]]],
      ["sin and cos of one input (Fourier features)", ([x]) => F.concat([F.sin(x), F.cos(x)], -1), [[3, 5]]],
    ])("%s", (_, fn, shapes, data) => {
      expectSame(fn, shapes, data);
    });
    it("where never reads the side it does not select (an infinite fill stays out)", () => {
      const r = run(([c, a]) => F.where(F.relu(c), a, Number.NEGATIVE_INFINITY), [[4], [4]], [fixed(1, -1, 2, -3), fixed(0.5, 0.25, -1, 2)]);
      expect([...r.cpu.slice(0, 4)]).toEqual([0.5, -Infinity, -1, -Infinity]);
      expect([...r.native.slice(0, 4)]).toEqual([0.5, -Infinity, -1, -Infinity]);
      expect([...r.want.slice(0, 4)]).toEqual([0.5, -Infinity, -1, -Infinity]);
    });
  });
});

describe("bad arguments at run time are errors that say what", () => {
  it.each<[string, () => unknown, RegExp]>([
    ["reshape to a different count", () => F.reshape(tf.zeros([2, 3]), [4, -1]), /cannot reshape \[2,3\] to \[4,-1\]/],
    ["slice out of range", () => F.slice(tf.zeros([2, 3]), 1, 4), /\[1, 4\) is out of range/],
    ["squeeze of a longer axis", () => F.squeeze(tf.zeros([2, 3]), 0), /axis 0 of \[2,3\] does not have size 1/],
  ])("%s", (_, f, msg) => {
    expect(f).toThrow(msg);
  });
});

/** The PyTorch reference (test/fixtures/tensor-ops/make_fixtures.py): each case's inputs, weight, output and gradients. */
interface TorchCase {
  inputs: { shape: number[]; data: number[] }[];
  w: { shape: number[]; data: number[] };
  y: { shape: number[]; data: number[] };
  grads: { shape: number[]; data: number[] }[];
}
const TORCH = JSON.parse(readFileSync("test/fixtures/tensor-ops/reference.json", "utf8")) as { torch: string; cases: Record<string, TorchCase> };
const TORCH_FNS: Record<string, Fn> = {
  reshape: ([x]) => F.reshape(x, [2, -1, 2]),
  permute: ([x]) => F.permute(x, [2, 0, 1]),
  transpose: ([x]) => F.transpose(x, 1, 2),
  slice: ([x]) => F.slice(x, 1, 3, 1),
  slice_negative: ([x]) => F.slice(x, -3, -1),
  repeat: ([x]) => F.repeat(x, 3, 1),
  broadcast_to: ([x]) => F.broadcastTo(x, [2, 3, 4]),
  pad: ([x]) => F.pad(x, 1, 2, 1),
  pad_value: ([x]) => F.pad(x, 2, 0, -1, -1.5),
  squeeze: ([x]) => F.squeeze(x, 1),
  constants: ([x]) => F.add(F.mul(F.mul(F.add(x, F.zeros([2, 1])), F.ones([3])), F.full([1, 3], -0.75)), F.arange(3)),
  minimum: ([a, b]) => F.minimum(a, b),
  maximum_broadcast: ([a, b]) => F.maximum(a, b),
  clamp: ([x]) => F.clamp(x, -0.5, 0.75),
  where: ([c, a, b]) => F.where(F.relu(c), a, b),
  where_fill: ([c, a]) => F.where(F.relu(c), a, -1e9),
  pow_fractional: ([x]) => F.pow(F.add(F.mul(x, x), 0.1), 1.5),
  pow_integer: ([x]) => F.pow(x, 3),
  pow_negative: ([x]) => F.pow(F.add(F.abs(x), 0.5), -2),
  square: ([x]) => F.square(x),
};

describe(`against PyTorch ${TORCH.torch} (test/fixtures/tensor-ops/reference.json): outputs and gradients within 1e-4`, () => {
  it("every reference case has its sdc form and every form its case", () => {
    expect(Object.keys(TORCH_FNS).sort()).toEqual(Object.keys(TORCH.cases).sort());
  });
  it.each(Object.keys(TORCH_FNS))("%s: tfjs, the interpreter and the native kernels", (name) => {
    const c = TORCH.cases[name];
    const r = run(TORCH_FNS[name], c.inputs.map((x) => x.shape), c.inputs.map((x) => Float32Array.from(x.data)), 1, Float32Array.from(c.w.data));
    expect(r.shapes[0]).toEqual(c.y.shape);
    const ref = Float32Array.from([...c.y.data, ...c.grads.flatMap((g) => g.data)]);
    expect(worst(r.want, ref)).toBeLessThan(1e-4);
    expect(worst(r.cpu, ref)).toBeLessThan(1e-4);
    expect(worst(r.native, ref)).toBeLessThan(1e-4);
  });
});

/** d(sum(w * f(params)))/d params by central differences vs the graph's gradient (the interpreter). */
function finiteDifference(fn: Fn, data: Float32Array[], seed = 4): number {
  const rng = new Rng(seed);
  const g = new Graph();
  const ps = data.map((d, i) => g.param(`p${i}`, [d.length]));
  const y = withTrace(new TraceContext(g, new Map()), () => fn(ps)) as Sym;
  const loss = g.sumTo(g.ew("mul", [y, g.constant(rng.normals(y.size), y.shape)]), [1]);
  const { grads } = differentiate(g, loss);
  const params = new Map(data.map((d, i) => [`p${i}`, Float32Array.from(d)] as const));
  return finiteDifferenceError(g, loss, grads, params);
}

describe("elementwise gradients against finite differences (away from the kinks)", () => {
  const xs = fixed(-1.3, -0.7, -0.2, 0.15, 0.45, 0.9, 1.6);
  const ys = fixed(0.4, -1.1, 0.3, -0.35, 1.2, 0.2, 1.1);
  it.each<[string, Fn, Float32Array[]]>([
    ["minimum", ([a, b]) => F.minimum(a, b), [xs, ys]],
    ["maximum", ([a, b]) => F.maximum(a, b), [xs, ys]],
    ["clamp", ([x]) => F.clamp(x, -0.5, 0.6), [xs]],
    ["where", ([c, a, b]) => F.where(F.relu(c), F.square(a), F.mul(b, 3)), [ys, xs, ys]],
    ["pow 3 (negative bases)", ([x]) => F.pow(x, 3), [xs]],
    ["pow 2.5 of a positive base", ([x]) => F.pow(F.add(F.square(x), 0.2), 2.5), [xs]],
    ["square", ([x]) => F.square(x), [xs]],
    ["sin", ([x]) => F.sin(F.mul(x, 2)), [xs]],
    ["cos", ([x]) => F.cos(F.mul(x, 2)), [xs]],
  ])("%s", (_, fn, data) => {
    expect(finiteDifference(fn, data)).toBeLessThan(2e-3);
  });
});

const tmp = mkdtempSync(join(tmpdir(), "sdc-tensor-ops-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const sdc = (args: string[]) => spawnSync(process.execPath, ["bin/sdc.mjs", ...args], { encoding: "utf8", timeout: 150_000 });

describe("the primitives in a spec (test/specs/tensor-ops.mdl)", () => {
  it("compiles, and trains identically on the tfjs and the static (native) engine", { timeout: 180_000 }, () => {
    const c = sdc(["compile", "test/specs/tensor-ops.mdl", "--out-dir", join(tmp, "gen")]);
    expect(c.status, c.stderr).toBe(0);
    const model = readFileSync(join(tmp, "gen", "tensor-ops", "model.ts"), "utf8");
    for (const f of ["reshape", "permute", "transpose", "slice", "repeat", "broadcastTo", "pad", "squeeze", "zeros", "ones", "full", "arange", "minimum", "maximum", "clamp", "where", "pow", "square"]) expect(model).toContain(`F.${f}(`);
    const metrics: Record<string, MetricLine[]> = {};
    for (const engine of ["tfjs", "static"]) {
      const out = join(tmp, engine);
      const r = sdc(["train", join(tmp, "gen", "tensor-ops"), "--steps", "6", "--batch-size", "8", "--seed", "2", "--engine", engine, "--backend", "wasm", "--sample-every", "0", "--samples", "4", "--sample-steps", "2", "--no-progress", "--out", out]);
      expect(r.status, r.stderr.slice(-2000)).toBe(0);
      metrics[engine] = readMetrics(out);
    }
    expectSameMetrics(metrics as { tfjs: MetricLine[]; static: MetricLine[] });
  });
});
