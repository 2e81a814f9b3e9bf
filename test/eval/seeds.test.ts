import { describe, expect, it } from "vitest";
import { analyzeSeeds, armsPlotSpec, compareArms, seedsMarkdown, summarizeArms } from "../../runtime/eval/seeds.ts";
import { planUnits, type UnitResult } from "../../runtime/eval/sweep.ts";

const unit = (group: string, seed: number, valLoss: number, acc: number, fd: number): UnitResult => ({
  id: `${group}+seed=${seed}`, group, inputs: { spec: "s.mdl", specHash: "h", variant: null, set: [], seed, steps: 1, batch: 1, backend: "cpu", eval: { perDigit: 1, cfg: [4], sampleSteps: null, seed: 0, reference: null } },
  name: "x", params: group === "a" ? 100 : 200, networkParams: 0, stepSeconds: 0.1, trainSeconds: 1, finalTrainLoss: valLoss + 0.01, valLoss, cfg: [{ cfg: 4, accuracy: acc, frechet: fd, sampleSeconds: 1 }], wallSeconds: 1,
});

describe("seeds per arm", () => {
  it("plans seed, seed + 1, ... per arm, each in its own folder; one seed keeps the old ids", () => {
    const base = { spec: "specs/sd3.mdl", specHash: "h", variants: ["tiny", "small"], fixed: [], sweeps: [], seed: 5, steps: 2, batch: 4, backend: "cpu", eval: { perDigit: 1, cfg: [1], sampleSteps: null, seed: 0, reference: null } };
    const us = planUnits({ ...base, seeds: 3 });
    expect(us.map((u) => u.id)).toEqual(["tiny+seed=5", "tiny+seed=6", "tiny+seed=7", "small+seed=5", "small+seed=6", "small+seed=7"]);
    expect(us.map((u) => u.inputs.seed)).toEqual([5, 6, 7, 5, 6, 7]);
    expect(new Set(us.map((u) => u.group))).toEqual(new Set(["tiny", "small"]));
    expect(planUnits(base).map((u) => u.id)).toEqual(["tiny", "small"]);
    expect(() => planUnits({ ...base, seeds: 0 })).toThrow(/--seeds/);
  });

  it("mean and t-interval per arm, Welch + Holm between arms", () => {
    // a: val loss 1.0, 1.1, 0.9 (mean 1, sd 0.1); b: 2.0, 2.1, 1.9; c: like a, shifted by 0.01
    const rs = [
      ...[1.0, 1.1, 0.9].map((v, i) => unit("a", i, v, 0.9 + i * 0.01, 50 + i)),
      ...[2.0, 2.1, 1.9].map((v, i) => unit("b", i, v, 0.5 + i * 0.01, 80 + i)),
      ...[1.01, 1.11, 0.91].map((v, i) => unit("c", i, v, 0.9 + i * 0.01, 50 + i)),
    ];
    const arms = summarizeArms(rs);
    expect(arms.map((a) => a.arm)).toEqual(["a", "b", "c"]);
    const a = arms[0].metrics.val_loss;
    expect(a.mean).toBeCloseTo(1, 12);
    expect(a.values).toEqual([1.0, 1.1, 0.9]);
    // t_{0.975, 2} = 4.303; sd 0.1, n 3
    expect(a.hi - a.mean).toBeCloseTo(4.302653 * 0.1 / Math.sqrt(3), 5);
    expect(arms[0].seeds).toEqual([0, 1, 2]);
    const cs = compareArms(arms);
    const val = cs.filter((c) => c.metric === "val_loss");
    expect(val.map((c) => `${c.a}-${c.b}`)).toEqual(["a-b", "a-c", "b-c"]);
    expect(val.find((c) => c.a === "a" && c.b === "b")!.significant).toBe(true);
    expect(val.find((c) => c.a === "a" && c.b === "c")!.significant).toBe(false);
    expect(val.find((c) => c.a === "a" && c.b === "c")!.pHolm).toBeGreaterThan(0.5);
    // Holm: adjusted >= raw, 3 pairs
    for (const c of val) expect(c.pHolm).toBeGreaterThanOrEqual(c.p);
    expect(cs.filter((c) => c.metric === "acc_cfg4" && c.significant).map((c) => `${c.a}-${c.b}`)).toEqual(["a-b", "b-c"]);
    const md = seedsMarkdown(analyzeSeeds(rs));
    expect(md).toContain("| a | 0,1,2 | 100 | 1.0000 [0.7516, 1.2484] |");
    expect(md).toMatch(/Welch's two-sided t-test/);
    expect(md).toMatch(/\| val_loss \| a \| b \| -1\.0000 \|.*\| yes \|/);
    const plot = armsPlotSpec(analyzeSeeds(rs), 4, "t");
    const values = (plot.data as { values: { arm: string; metric: string; lo: number | null }[] }).values;
    expect(values.filter((v) => v.metric === "fd_cfg4")).toHaveLength(3);
  });

  it("one seed per arm: means without intervals, no tests", () => {
    const s = analyzeSeeds([unit("a", 0, 1, 0.9, 50), unit("b", 0, 2, 0.8, 60)]);
    expect(Number.isNaN(s.arms[0].metrics.val_loss.lo)).toBe(true);
    expect(s.comparisons).toEqual([]);
    expect(seedsMarkdown(s)).toContain("No comparisons");
  });
});
