/** The flat multi-tensor optimizer computes what per-tensor clip + Adam + EMA compute. */
import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { FlatAdam } from "../../runtime/train/flat-optim.ts";
import { Adam, clipByGlobalNorm, Ema } from "../../runtime/train/optim.ts";
import { Rng } from "../../runtime/util/rng.ts";

beforeAll(async () => {
  await tf.setBackend("cpu");
});

function makeVars(seed: number): [string, tf.Variable][] {
  const r = new Rng(seed);
  return [
    ["a.weight", tf.variable(tf.tensor(r.normals(12), [3, 4]))],
    ["a.bias", tf.variable(tf.tensor(r.normals(3), [3]))],
    ["b", tf.variable(tf.tensor(r.normals(10), [2, 5]))],
  ];
}

describe("FlatAdam", () => {
  it.each([
    ["adam", false, 0],
    ["adamw", true, 0.1],
  ])("matches per-tensor clip_grad_norm_ + %s + EMA over 4 steps", (_n, decoupled, wd) => {
    const ref = makeVars(1);
    const flat = makeVars(1);
    const adam = new Adam(ref, { lr: 0.05, weightDecay: wd as number, decoupled: decoupled as boolean });
    const ema = new Ema(ref, 0.9);
    const fa = new FlatAdam(flat, { lr: 0.05, weightDecay: wd as number, decoupled: decoupled as boolean, clip: 1, ema: 0.9, emaWarmup: false });
    const before = tf.memory().numTensors;
    const r = new Rng(7);
    for (let s = 0; s < 4; s++) {
      const grads = new Map(ref.map(([n, v]) => [n, tf.tensor(r.normals(v.size), v.shape)]));
      const c = clipByGlobalNorm(grads, 1);
      adam.step(c.grads);
      ema.update();
      const norm = fa.step(grads);
      expect(norm.dataSync()[0]).toBeCloseTo(c.norm, 4);
      tf.dispose([...grads.values(), ...c.grads.values(), norm]);
    }
    expect(tf.memory().numTensors).toBe(before);
    ref.forEach(([n, v], i) => {
      const got = flat[i][1].dataSync();
      v.dataSync().forEach((x, k) => expect(got[k], n).toBeCloseTo(x, 5));
    });
    const et = ema.tensors();
    const ft = fa.ema!.tensors();
    for (const [n, t] of et) t.dataSync().forEach((x, k) => expect(ft.get(n)!.dataSync()[k]).toBeCloseTo(x, 5));
    // checkpoint state round trip
    const st = fa.stateTensors();
    expect([...st.keys()]).toEqual(["exp_avg.a.weight", "exp_avg_sq.a.weight", "exp_avg.a.bias", "exp_avg_sq.a.bias", "exp_avg.b", "exp_avg_sq.b"]);
    const ref2 = adam.stateTensors();
    for (const [k, t] of ref2) t.dataSync().forEach((x, i) => expect(st.get(k)!.dataSync()[i]).toBeCloseTo(x, 5));
    const fb = new FlatAdam(makeVars(3), { lr: 0.05 });
    fb.loadState(st, fa.stepCount);
    expect(fb.stateTensors().get("exp_avg.b")!.dataSync()[0]).toBeCloseTo(st.get("exp_avg.b")!.dataSync()[0], 6);
    tf.dispose([...et.values(), ...ft.values(), ...st.values(), ...ref2.values()]);
  });

  it("warms the EMA up: decay min(ema, (1 + n) / (10 + n))", () => {
    const vars: [string, tf.Variable][] = [["w", tf.variable(tf.zeros([1]))]];
    const fa = new FlatAdam(vars, { lr: 1, ema: 0.999 });
    expect(fa.ema!.currentDecay()).toBeCloseTo(0.1, 10);
    const g = new Map([["w", tf.ones([1])]]);
    fa.step(g).dispose(); // Adam's first step moves w by -lr: w = -1
    // shadow = 0.1 * 0 + 0.9 * (-1)
    expect(fa.ema!.tensors().get("w")!.dataSync()[0]).toBeCloseTo(-0.9, 5);
    expect(fa.ema!.currentDecay()).toBeCloseTo(2 / 11, 10);
    for (let i = 0; i < 10000; i++) fa.ema!.updates++;
    expect(fa.ema!.currentDecay()).toBe(0.999);
  });

  it("swaps parameters and EMA weights exactly", () => {
    const vars = makeVars(2);
    const fa = new FlatAdam(vars, { lr: 0.1, ema: 0.5 });
    const g = new Map(vars.map(([n, v]) => [n, tf.onesLike(v)]));
    fa.step(g).dispose();
    const p0 = vars[0][1].dataSync().slice();
    fa.ema!.swap();
    expect(Array.from(vars[0][1].dataSync())).not.toEqual(Array.from(p0));
    fa.ema!.swap();
    expect(Array.from(vars[0][1].dataSync())).toEqual(Array.from(p0));
  });
});
