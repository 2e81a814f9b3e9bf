/**
 * dropout(x, p): active in a training step, the identity in validation and sampling. On tfjs its
 * masks come from the step's seed (F.training); on the static engine they are graph inputs the
 * host draws per step (stepFeeds), absent from the forward graph of sampling.
 */
import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { initBackend } from "../../runtime/backend.ts";
import { differentiate } from "../../runtime/graph/autodiff.ts";
import { evaluate } from "../../runtime/executors/interp/interp.ts";
import { Graph, type Sym } from "../../runtime/graph/graph.ts";
import { dropoutMask } from "../../runtime/engines/static/step.ts";
import { TraceContext, withTrace } from "../../runtime/graph/trace.ts";
import * as F from "../../runtime/nn/functional.ts";
import { compileSource, expectError, lines, net, spec } from "../compiler/helpers.ts";

beforeAll(async () => {
  await initBackend("cpu", { log: () => {} });
});

describe("dropout in a spec", () => {
  it.each([
    ["p = 1", "1.0", "dropout: p must be in [0, 1), got 1"],
    ["p < 0", "-0.1", "dropout: p must be in [0, 1), got -0.1"],
  ])("refuses %s at the argument", (_, p, msg) => {
    expectError(compileSource(lines(net(`    y = dropout(x, ${p})`), spec())), { code: "SDC407", line: 3, col: 20, msg });
  });
  it("compiles to F.dropout (no parameters, no name)", () => {
    const r = compileSource(lines(net("    x = dropout(x, 0.25)"), spec()));
    expect(r.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
    expect(Object.fromEntries(r.files!)["model.ts"]).toContain("F.dropout(x, 0.25)");
  });
});

describe("dropout on tfjs", () => {
  const x = () => tf.ones([64, 64]);
  it("is the identity outside a training step", () => {
    const a = x();
    expect(F.dropout(a, 0.5)).toBe(a);
    a.dispose();
  });
  it("in a training step: zeroes about p, scales the rest by 1 / (1 - p), the same for the same step, another mask for another", () => {
    const a = x();
    const [y1, y1b, y2] = [F.training(7, () => F.dropout(a, 0.3)), F.training(7, () => F.dropout(a, 0.3)), F.training(8, () => F.dropout(a, 0.3))].map((t) => t.dataSync() as Float32Array);
    const zeros = y1.filter((v) => v === 0).length / y1.length;
    expect(zeros).toBeGreaterThan(0.25);
    expect(zeros).toBeLessThan(0.35);
    for (const v of y1) expect(v === 0 || Math.abs(v - 1 / 0.7) < 1e-6).toBe(true);
    expect(y1b).toEqual(y1);
    expect(y2).not.toEqual(y1);
    a.dispose();
  });
  it("two dropouts in one step draw two masks; the gradient is the mask", () => {
    const a = tf.variable(tf.ones([32, 32]));
    const { grads } = tf.variableGrads(() => F.training(3, () => {
      const m1 = F.dropout(a, 0.5);
      const m2 = F.dropout(a, 0.5);
      expect(m1.dataSync()).not.toEqual(m2.dataSync());
      return tf.sum(m1) as tf.Scalar;
    }), [a]);
    const y = F.training(3, () => F.dropout(a, 0.5)).dataSync();
    expect(grads[a.name].dataSync()).toEqual(y);
    a.dispose();
  });
});

describe("dropout on the static graph", () => {
  it("in a training trace: x times a mask input the host draws per step; its gradient is the mask", () => {
    const g = new Graph();
    const tc = new TraceContext(g, new Map());
    tc.training = true;
    const x = g.param("x", [4, 50]);
    const y = withTrace(tc, () => F.dropout(x as never, 0.2) as unknown as Sym);
    expect(tc.dropouts).toEqual([{ name: "dropout.0", shape: [4, 50], p: 0.2 }]);
    const loss = g.sumTo(y, [1]);
    const { grads } = differentiate(g, loss);
    const mask = dropoutMask(tc.dropouts[0], 5, 0);
    const zeros = mask.filter((v) => v === 0).length / mask.length;
    expect(zeros).toBeGreaterThan(0.1);
    expect(zeros).toBeLessThan(0.3);
    for (const v of mask) expect(v === 0 || Math.abs(v - 1.25) < 1e-6).toBe(true);
    expect(dropoutMask(tc.dropouts[0], 5, 0)).toEqual(mask); // a resumed run draws the same
    expect(dropoutMask(tc.dropouts[0], 6, 0)).not.toEqual(mask);
    expect(dropoutMask(tc.dropouts[0], 5, 1)).not.toEqual(mask);
    const xv = Float32Array.from({ length: 200 }, (_, i) => i / 10);
    const vals = evaluate(g, new Map([["dropout.0", mask]]), new Map([["x", xv]]));
    vals[y.id].forEach((v, i) => expect(v).toBeCloseTo(xv[i] * mask[i], 5));
    expect(Array.from(vals[grads.get("x")!.id])).toEqual(Array.from(mask));
  });
  it("in the forward of sampling and validation (not a training trace): the identity, no input", () => {
    const g = new Graph();
    const tc = new TraceContext(g, new Map());
    const x = g.input("x", [4, 50]);
    const y = withTrace(tc, () => F.dropout(x as never, 0.2) as unknown as Sym);
    expect(y.id).toBe(x.id);
    expect(tc.dropouts).toEqual([]);
  });
});
