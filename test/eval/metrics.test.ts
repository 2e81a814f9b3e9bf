import { describe, expect, it } from "vitest";
import { evalPrompts } from "../../runtime/eval/evaluate.ts";
import { featureStats, frechetDistance } from "../../runtime/eval/frechet.ts";
import { promptAccuracy } from "../../runtime/eval/metrics.ts";

describe("eval glue", () => {
  it("asks for every digit, half as numerals and half as words", () => {
    const p = evalPrompts(4);
    expect(p.prompts.slice(0, 8)).toEqual(["0", "0", "zero", "zero", "1", "1", "one", "one"]);
    expect(p.prompts.slice(-4)).toEqual(["9", "9", "nine", "nine"]);
    expect(Array.from(p.digits.slice(4, 8))).toEqual([1, 1, 1, 1]);
    expect(Array.from(p.word.slice(0, 4))).toEqual([0, 0, 1, 1]);
    expect(evalPrompts(3).prompts.slice(0, 3)).toEqual(["0", "0", "zero"]);
    expect(() => evalPrompts(0)).toThrow(RangeError);
  });

  it("prompt accuracy per digit and overall", () => {
    const { digits } = evalPrompts(2); // 0,0,1,1,...,9,9
    const pred = Int32Array.from(digits);
    pred[0] = 5; // one of the two zeros wrong
    pred[18] = 3;
    pred[19] = 3; // both nines wrong
    const a = promptAccuracy(digits, pred, 10);
    expect(a.overall).toBeCloseTo(17 / 20, 12);
    expect(a.perClass[0]).toBe(0.5);
    expect(a.perClass[9]).toBe(0);
    expect(a.perClass[4]).toBe(1);
    expect(a.counts.requested.every((n) => n === 2)).toBe(true);
  });

  it("Fréchet distance by hand: 1-d and diagonal 2-d Gaussians", () => {
    // 1-d: samples {-1, 1} (mean 0, var 2) and {2, 4, 6} (mean 4, var 4): d^2 = 16 + (sqrt2 - 2)^2
    const a = featureStats(Float64Array.from([-1, 1]), 2, 1);
    const b = featureStats(Float64Array.from([2, 4, 6]), 3, 1);
    expect(frechetDistance(a, b)).toBeCloseTo(16 + (Math.SQRT2 - 2) ** 2, 10);
    // 2-d, independent axes: the sum of per-axis distances
    const x = Float64Array.from([0, 0, 2, 0, 0, 4, 2, 4]); // mean (1, 2), var (4/3, 16/3)
    const y = Float64Array.from([1, 1, 1, 3, 3, 1, 3, 3]); // mean (2, 2), var (4/3, 4/3)
    const d = frechetDistance(featureStats(x, 4, 2), featureStats(y, 4, 2));
    expect(d).toBeCloseTo(1 + 0 + (Math.sqrt(16 / 3) - Math.sqrt(4 / 3)) ** 2, 10);
    expect(frechetDistance(featureStats(x, 4, 2), featureStats(x, 4, 2))).toBeCloseTo(0, 10);
  });
});
