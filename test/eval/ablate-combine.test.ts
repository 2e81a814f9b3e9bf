import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { combineAblations, combineResults } from "../../cli/ablate/combine.ts";
import { analyzeSeeds } from "../../runtime/eval/seeds.ts";
import type { UnitInputs, UnitResult } from "../../runtime/eval/sweep.ts";

const root = join("output", `test-ablate-combine-${process.pid}`);
afterAll(() => rmSync(root, { recursive: true, force: true }));

const inputs = (spec: string, variant: string, seed: number, over: Partial<UnitInputs> = {}): UnitInputs => ({
  spec, specHash: "h", variant, set: [], seed, steps: 500, batch: 64, backend: "auto", eval: { perDigit: 50, cfg: [4], sampleSteps: 20, seed: 0, reference: null }, ...over,
});

/** One finished unit; its metrics are given, the rest fixed. */
function unit(id: string, group: string, inp: UnitInputs, valLoss: number, acc: number, fd: number): UnitResult {
  return { id, group, inputs: inp, name: "x", params: 1000, networkParams: 900, stepSeconds: 0.5, trainSeconds: 250, finalTrainLoss: valLoss - 0.02, valLoss, cfg: [{ cfg: 4, accuracy: acc, frechet: fd, sampleSeconds: 10 }], wallSeconds: 300 };
}

/** A folder as `sdc ablate` leaves it: two arms from two spec files (ids labelled), three seeds each. */
function twoSpecFolder(): UnitResult[] {
  const a = [0.27, 0.268, 0.272].map((v, s) => unit(`a.cpu+seed=${s}`, "a.cpu", inputs("specs/a.mdl", "cpu", s), v, 0.16 + s / 100, 620 + s));
  const b = [0.22, 0.225, 0.218].map((v, s) => unit(`b.tiny+seed=${s}`, "b.tiny", inputs("specs/b.mdl", "tiny", s), v, 0.24 - s / 100, 430 - s));
  return [...a, ...b];
}

/** A folder of one spec file's arm: `sdc ablate` does not prefix its ids with the spec's name. */
function oneSpecFolder(over: Partial<UnitInputs> = {}): UnitResult[] {
  const match = { param: "ch", value: 20, from: 16, on: "network" as const, target: 288400, achieved: 263041, compiled: 13 };
  return [0.3, 0.31, 0.305].map((v, s) => ({ ...unit(`tiny+ch=20+seed=${s}`, "tiny+ch=20", inputs("specs/unet.mdl", "tiny", s, { set: ["ch=20"], ...over }), v, 0.12, 700 + 3 * s), match }));
}

function folder(name: string, results: UnitResult[]): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "results.json"), JSON.stringify(results));
  return dir;
}

describe("sdc ablate --combine", () => {
  it("one table of every arm: units labelled by spec file, intervals and Holm-adjusted tests recomputed over all pairs", async () => {
    const out = join(root, "combined");
    const s = await combineAblations([folder("two", twoSpecFolder()), folder("one", oneSpecFolder())], out, () => {});
    expect(s.results.map((r) => r.id)).toEqual(["a.cpu+seed=0", "a.cpu+seed=1", "a.cpu+seed=2", "b.tiny+seed=0", "b.tiny+seed=1", "b.tiny+seed=2", "unet.tiny+ch=20+seed=0", "unet.tiny+ch=20+seed=1", "unet.tiny+ch=20+seed=2"]);
    const arms = JSON.parse(readFileSync(join(out, "arms.json"), "utf8"));
    expect(arms.arms.map((a: { arm: string }) => a.arm)).toEqual(["a.cpu", "b.tiny", "unet.tiny+ch=20"]);
    // three arms: three pairs per metric, each p adjusted across the three
    expect(arms.comparisons.filter((c: { metric: string }) => c.metric === "val_loss").map((c: { a: string; b: string }) => `${c.a}/${c.b}`)).toEqual(["a.cpu/b.tiny", "a.cpu/unet.tiny+ch=20", "b.tiny/unet.tiny+ch=20"]);
    expect(arms).toEqual(JSON.parse(JSON.stringify(analyzeSeeds(s.results))));
    // the same pair's adjusted p is larger among three pairs than alone (Holm multiplies by the pairs left)
    const alone = analyzeSeeds(twoSpecFolder()).comparisons.find((c) => c.metric === "val_loss")!;
    const among = arms.comparisons.find((c: { metric: string; a: string; b: string }) => c.metric === "val_loss" && c.a === "a.cpu" && c.b === "b.tiny");
    expect(among.p).toBeCloseTo(alone.p, 12);
    expect(among.pHolm).toBeGreaterThan(alone.pHolm);
    const md = readFileSync(join(out, "results.md"), "utf8");
    expect(md).toContain("# Ablation: specs/a.mdl specs/b.mdl specs/unet.mdl");
    expect(md).toContain(`from ${join(root, "two")} (6 units), ${join(root, "one")} (3 units)`);
    expect(md).toMatch(/\| unet\.tiny\+ch=20 \| 0,1,2 \| 1000 \| 0\.3050 \[/);
    // the match columns and note come from the units (matched on the network's count)
    expect(md).toContain("| unet.tiny+ch=20+seed=0 | specs/unet.mdl |  | tiny | ch=20 | 1000 | 900 | ch=20 | 288400 | 263041 | -8.79% |");
    expect(md).toContain("whose exact network parameter count is closest to target_params");
    expect(readFileSync(join(out, "results.csv"), "utf8").trim().split("\n")).toHaveLength(10);
    const plot = JSON.parse(readFileSync(join(out, "plot.vl.json"), "utf8"));
    expect(plot.title).toMatch(/^a\.mdl vs b\.mdl vs unet\.mdl: 500 steps, batch 64 \(mean over seeds/);
    expect(new Set(plot.data.values.map((v: { arm: string }) => v.arm))).toEqual(new Set(["a.cpu", "b.tiny", "unet.tiny+ch=20"]));
  });

  it("keeps ids as they are when every unit comes from one spec file", () => {
    const r = combineResults([{ dir: "x", results: oneSpecFolder().slice(0, 2) }, { dir: "y", results: oneSpecFolder().slice(2) }]);
    expect(r.map((u) => u.id)).toEqual(["tiny+ch=20+seed=0", "tiny+ch=20+seed=1", "tiny+ch=20+seed=2"]);
  });

  it("refuses units trained or evaluated otherwise, a unit twice, and folders without results", async () => {
    expect(() => combineResults([{ dir: "two", results: twoSpecFolder() }, { dir: "one", results: oneSpecFolder({ steps: 400 }) }]))
      .toThrow(/one: unit tiny\+ch=20\+seed=0 has other settings \(400 steps, batch 64.*\) than two's a\.cpu\+seed=0 \(500 steps/);
    expect(() => combineResults([{ dir: "one", results: oneSpecFolder() }, { dir: "two", results: twoSpecFolder() }, { dir: "again", results: oneSpecFolder() }]))
      .toThrow(/unit unet\.tiny\+ch=20\+seed=0 is in both one and again/);
    expect(() => combineResults([{ dir: "two", results: twoSpecFolder() }, { dir: "one", results: oneSpecFolder({ eval: { perDigit: 100, cfg: [4], sampleSteps: 20, seed: 0, reference: null } }) }]))
      .toThrow(/eval 100 per digit/);
    mkdirSync(join(root, "empty"), { recursive: true });
    await expect(combineAblations([folder("two2", twoSpecFolder()), join(root, "empty")], join(root, "o"), () => {})).rejects.toThrow(/empty has no results\.json/);
    writeFileSync(join(root, "empty", "results.json"), "{}");
    await expect(combineAblations([folder("two3", twoSpecFolder()), join(root, "empty")], join(root, "o"), () => {})).rejects.toThrow(/not an ablation's results/);
  });

  it("the command: --combine needs --out, two folders and no spec; bad folders exit 1, usage 2", async () => {
    const { main } = await import("../../cli/main.ts");
    const err: string[] = [];
    const spies = [vi.spyOn(process.stderr, "write").mockImplementation((s) => (err.push(String(s)), true)), vi.spyOn(process.stdout, "write").mockImplementation(() => true)];
    const a = folder("cli-two", twoSpecFolder());
    const b = folder("cli-one", oneSpecFolder());
    try {
      expect(await main(["ablate", "--combine", a, "--combine", b])).toBe(2);
      expect(await main(["ablate", "specs/sd3.mdl", "--combine", a, "--combine", b, "--out", join(root, "c")])).toBe(2);
      expect(await main(["ablate", "--combine", a, "--out", join(root, "c")])).toBe(2);
      expect(await main(["ablate", "--combine", a, "--combine", join(root, "nope"), "--out", join(root, "c")])).toBe(2);
      expect(await main(["ablate", "--combine", a, "--combine", folder("cli-other", oneSpecFolder({ batch: 32 })), "--out", join(root, "c")])).toBe(1);
      expect(await main(["ablate", "--combine", a, "--combine", b, "--out", join(root, "c")])).toBe(0);
    } finally {
      for (const s of spies) s.mockRestore();
    }
    expect(err.join("")).toMatch(/needs --out[\s\S]*takes no spec[\s\S]*two or more[\s\S]*no such folder[\s\S]*batch 32/);
    expect(JSON.parse(readFileSync(join(root, "c", "arms.json"), "utf8")).arms).toHaveLength(3);
  });
});
