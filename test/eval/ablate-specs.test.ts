/**
 * `sdc ablate` across spec files (arms SPEC.mdl[:VARIANT][+name=value...]) and with matched
 * parameter counts (--match-params): the arm syntax and its errors, the search (synthetic counts,
 * and exact compiled counts of tiny specs checked against a brute-force scan), and one end-to-end
 * ablation of two different tiny spec files for 2 steps, with its report.
 */
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { compiledCount, matchUnit, parseMatchParams, parseMatchRange, searchClosest } from "../../cli/ablate/match.ts";
import { type AblateOptions, parseArm, planAblation } from "../../cli/ablate/plan.ts";
import { runAblation } from "../../cli/ablate/inprocess.ts";
import { runAblationJobs } from "../../cli/ablate/jobs.ts";
import { writeReport } from "../../cli/commands/report.ts";
import { parseSweep, type UnitResult } from "../../runtime/eval/sweep.ts";

// under the repository (ignored output/), because compiled units import "sdc/runtime"
const root = join("output", `test-ablate-specs-${process.pid}`);
afterAll(() => { if (!process.env.KEEP) rmSync(root, { recursive: true, force: true }); });

const EW = "test/specs/ablate-ew.mdl";
/** results.md's table without its timing column (step_s is measured) */
const table = (out: string) => {
  const rows = readFileSync(join(out, "results.md"), "utf8").split("\n").filter((l) => l.startsWith("|"));
  const col = rows[0].split("|").map((c) => c.trim()).indexOf("step_s");
  return rows.map((l) => l.split("|").filter((_, i) => i !== col).join("|"));
};
const SD3_TINY = 347_264; // specs/sd3.mdl:tiny, all parameters
const count = (spec: string, variant: string | null, set: string[]) => (compiledCount({ spec, variant, set }, "params") as { count: number }).count;

describe("arms: SPEC.mdl[:VARIANT][+name=value...]", () => {
  const ok: [string, ReturnType<typeof parseArm>][] = [
    ["specs/sd3.mdl", { spec: "specs/sd3.mdl", variant: null, set: [] }],
    ["specs/sd3.mdl:tiny", { spec: "specs/sd3.mdl", variant: "tiny", set: [] }],
    ["specs/sd3.mdl:base", { spec: "specs/sd3.mdl", variant: null, set: [] }],
    ["specs/sd3.mdl:tiny+depth=1", { spec: "specs/sd3.mdl", variant: "tiny", set: [["depth", "1"]] }],
    ["specs/sd3.mdl+depth=1+train.lr=1e+3", { spec: "specs/sd3.mdl", variant: null, set: [["depth", "1"], ["train.lr", "1e+3"]] }],
    ["a.mdl.d/x.mdl:v", { spec: "a.mdl.d/x.mdl", variant: "v", set: [] }],
  ];
  it.each(ok)("%s", (s, want) => expect(parseArm(s)).toEqual(want));
  const bad: [string, RegExp][] = [
    ["specs/sd3", /expected a .mdl spec file, got 'specs\/sd3'/],
    ["specs/sd3.mdl:ti-ny", /'ti-ny' is not a variant name/],
    ["specs/sd3.mdl:tiny+depth", /the override 'depth' must look like name=value/],
    ["specs/sd3.mdl:tiny+depth=1,2", /takes one value/],
  ];
  it.each(bad)("refuses %s", (s, msg) => {
    expect(() => parseArm(s)).toThrow(msg);
    expect((() => { try { parseArm(s); } catch (e) { return (e as { exitCode: number }).exitCode; } })()).toBe(2);
  });
  it("parses --match-params and --match-range", () => {
    expect(parseMatchParams("head_dim")).toEqual(["head_dim"]);
    expect(parseMatchParams("-, width ,head_dim")).toEqual([null, "width", "head_dim"]);
    expect(() => parseMatchParams("-,-")).toThrow(/matches no arm/);
    expect(() => parseMatchParams("a b")).toThrow(/'a b' is not a spec parameter name/);
    expect(parseMatchRange("8..256")).toEqual([8, 256]);
    expect(() => parseMatchRange("8-256")).toThrow(/LO\.\.HI/);
    expect(() => parseMatchRange("9..3")).toThrow(/1 <= LO <= HI/);
  });
});

describe("sdc ablate with arms: usage and input errors (nothing runs)", () => {
  const out = ["--steps", "1", "--out", join(root, "never")];
  const cases: [string[], number, RegExp][] = [
    [["specs/sd3.mdl:tiny", EW, "--variants", "tiny"], 2, /--variants is for one spec file; with arms \(specs\/sd3.mdl:tiny test\/specs\/ablate-ew.mdl\) each arm names its variant: SPEC.mdl:VARIANT/],
    [["specs/sd3.mdl:tiny", EW, "--base", "tiny"], 2, /--base is for one spec file/],
    [["specs/sd3.mdl:tiny", "--variants", "tiny_wide"], 2, /specs\/sd3.mdl:tiny names its variant and overrides itself: give specs\/sd3.mdl:tiny or specs\/sd3.mdl --variants \.\.\., not both/],
    [["specs/sd3.mdl:tiny", "specs/sd3"], 2, /expected a .mdl spec file, got 'specs\/sd3'/],
    [["specs/sd3.mdl:tiny", "specs/nope.mdl:tiny"], 1, /spec file not found: specs\/nope.mdl/],
    [["specs/sd3.mdl:tiny", "specs/sd3.mdl:tiny"], 2, /two units would share the folder sd3.tiny/],
    [["specs/sd3.mdl:tiny", EW, "--set", "depth=1"], 1, /unit ablate-ew.base\+depth=1 \(test\/specs\/ablate-ew.mdl\) does not compile; nothing was run:\s+--set depth=1:1:1: error SDC308: --set depth: spec ew has no parameter 'depth'/],
    [["specs/sd3.mdl:tiny", EW, "--target-params", "1000"], 2, /--target-params is for --match-params NAME/],
    [["specs/sd3.mdl:tiny", EW, "--match-range", "1..9"], 2, /--match-range is for --match-params NAME/],
    [["specs/sd3.mdl:tiny", EW, "--match-on", "network"], 2, /--match-on is for --match-params NAME/],
    [["specs/sd3.mdl:tiny", EW, "--match-params", "-,nope"], 2, /--match-params nope: unit ablate-ew.base \(test\/specs\/ablate-ew.mdl\): spec ew \(test\/specs\/ablate-ew.mdl:20\) has no parameter 'nope'; its parameters: width, text_width/],
    [["specs/sd3.mdl:tiny", EW, "--match-params", "lr", "--target-params", "1000"], 2, /spec sd3 \(specs\/sd3.mdl:7\) has no parameter 'lr'|'lr' \(specs\/sd3.mdl:\d+\) is not an integer parameter \(it is 0.001\)/],
    [["specs/sd3.mdl:tiny", EW, "--match-params", "width,width"], 2, /without --target-params the first arm is the target; give '-' for it, or --target-params N/],
    [["specs/sd3.mdl:tiny", EW, "--match-params", "-,width,width"], 2, /--match-params lists 3 names for 2 arms/],
    [[EW, "--match-params", "width"], 2, /nothing to ablate/],
    [[`${EW}:wide`, "--match-params", "width"], 2, /with one arm needs --target-params N/],
    [["specs/sd3.mdl:tiny", `${EW}+width=16`, "--match-params", "-,width"], 2, /width is both --match-params and an override of unit ablate-ew.base\+width=16 \(width=16\)/],
    [["specs/sd3.mdl:tiny", EW, "--match-params", "-,width", "--match-range", "9..15"], 1, /--match-params width: unit ablate-ew.base \(test\/specs\/ablate-ew.mdl\): no value of 'width' in 9..15 compiles \(7 tried; the error at width=9: test\/specs\/ablate-ew.mdl:23:3: error SDC600: constraint failed: width must be a multiple of 8/],
    [["specs/sd3.mdl:tiny", `${EW}+text_width=31`, "--match-params", "-,width"], 1, /unit ablate-ew.base\+text_width=31 \(test\/specs\/ablate-ew.mdl\): the spec does not compile before matching/],
  ];
  it.each(cases)("sdc ablate %j", async (args, code, msg) => {
    const { main } = await import("../../cli/main.ts");
    const err: string[] = [];
    const spy = vi.spyOn(process.stderr, "write").mockImplementation((s) => (err.push(String(s)), true));
    try {
      expect(await main(["ablate", ...args, ...out])).toBe(code);
    } finally {
      spy.mockRestore();
    }
    expect(err.join("")).toMatch(msg);
    expect(err.join("")).not.toMatch(/\n\s+at /); // no stack trace for a user mistake
    expect(existsSync(join(root, "never"))).toBe(false);
  });
});

describe("the matching search", () => {
  // synthetic counts: (value) -> count, null where a value "does not compile"
  const quad = (v: number) => 1000 + 7 * v * v;
  const cases: [string, (v: number) => number | null, { lo: number; hi: number; start: number; target: number }, number | null][] = [
    ["increasing, exact", quad, { lo: 1, hi: 512, start: 32, target: quad(100) }, 100],
    ["increasing, between two values", quad, { lo: 1, hi: 512, start: 32, target: quad(100) + 5 }, 100],
    ["increasing, only even values compile", (v) => (v % 2 ? null : quad(v)), { lo: 1, hi: 512, start: 32, target: quad(101) + 1 }, 100],
    ["decreasing", (v) => 100000 - v * 10, { lo: 1, hi: 4096, start: 10, target: 70000 }, 3000],
    ["target below the range: the lowest value", quad, { lo: 8, hi: 512, start: 32, target: 10 }, 8],
    ["target above the range: the highest value", quad, { lo: 1, hi: 64, start: 32, target: 1e9 }, 64],
    ["start does not compile", (v) => (v < 40 ? null : quad(v)), { lo: 1, hi: 512, start: 32, target: quad(50) }, 50],
    ["nothing compiles", () => null, { lo: 1, hi: 20, start: 5, target: 100 }, null],
  ];
  it.each(cases)("%s", (_, f, o, want) => {
    const r = searchClosest(f, o);
    expect(r.value).toBe(want);
    if (want !== null) {
      // the answer is the closest over the whole range (brute force)
      let best = Infinity;
      for (let v = o.lo; v <= o.hi; v++) {
        const c = f(v);
        if (c !== null) best = Math.min(best, Math.abs(c - o.target));
      }
      expect(Math.abs(("count" in r ? r.count : NaN) - o.target)).toBe(best);
      expect(r.compiled).toBeLessThan(o.hi - o.lo + 1);
    }
  });

  it("matches a tiny spec's width to sd3 tiny's exact count, skipping the widths its `require` refuses (checked by compiling every width)", () => {
    const target = compiledCount({ spec: "specs/sd3.mdl", variant: "tiny", set: [] }, "params");
    expect(target).toMatchObject({ count: SD3_TINY });
    const r = matchUnit({ spec: EW, variant: null, set: [] }, { param: "width", target: SD3_TINY, on: "params" }, "ew");
    expect(r.match).toMatchObject({ param: "width", from: 32, value: 264, achieved: 343_320, target: SD3_TINY, on: "params" });
    expect(r.range).toEqual([1, 512]);
    expect(r.atBound).toBe(false);
    for (let w = 1; w < 16; w++) if (w % 8) expect("error" in compiledCount({ spec: EW, variant: null, set: [`width=${w}`] }, "params"), `width=${w}`).toBe(true);
    let best = { w: 0, d: Infinity };
    for (let w = 8; w <= 512; w += 8) {
      const c = compiledCount({ spec: EW, variant: null, set: [`width=${w}`] }, "params");
      if ("count" in c && Math.abs(c.count - SD3_TINY) < best.d) best = { w, d: Math.abs(c.count - SD3_TINY) };
    }
    expect(best).toEqual({ w: 264, d: SD3_TINY - 343_320 });
    // on the network's count (no text encoder), from the variant's value
    const n = matchUnit({ spec: "specs/sd3.mdl", variant: "tiny", set: [] }, { param: "head_dim", target: 100_000, on: "network" }, "sd3");
    expect(n.match).toMatchObject({ from: 32, value: 18, on: "network" });
    const at = (h: number) => (compiledCount({ spec: "specs/sd3.mdl", variant: "tiny", set: [`head_dim=${h}`] }, "network") as { count: number }).count;
    expect(n.match.achieved).toBe(at(18));
    // heads = 2 and sincos_2d needs the width a multiple of 4: head_dim is even; its neighbours are farther
    for (const h of [16, 20]) expect(Math.abs(at(h) - 100_000)).toBeGreaterThan(Math.abs(at(18) - 100_000));
  });

  it("plans cross-spec units: the first arm is the target per sweep combination; --target-params targets every arm", () => {
    const logs: string[] = [];
    const o: AblateOptions = { sweeps: [], steps: 2, batch: 4, seed: 0, backend: "wasm", perDigit: 1, cfg: [1], log: (l) => logs.push(l), match: { params: ["width"], on: "params" } };
    const p = planAblation(["specs/sd3.mdl:tiny", EW], o);
    expect(p.out).toBe(join("ablations", "sd3-vs-ablate-ew"));
    expect(p.units.map((u) => u.id)).toEqual(["sd3.tiny", "ablate-ew.base+width=264"]);
    expect(p.units[0].match).toBeUndefined();
    expect(p.units[1].inputs.set).toEqual(["width=264"]);
    expect(logs.join("\n")).toMatch(/match: unit ablate-ew.base \(test\/specs\/ablate-ew.mdl\): width 32 -> 264: 343,320 parameters \(target 347,264, -1.14%; \d+ values compiled in [\d.]+ s\)/);
    const t = planAblation([`${EW}:wide`, "specs/sd3.mdl:tiny+depth=1"], { ...o, match: { params: ["width", "head_dim"], on: "params", target: 100_000 } });
    expect(t.units.map((u) => [u.id, u.match?.target, u.match?.from])).toEqual([["ablate-ew.wide+width=112", 100_000, 64], [expect.stringMatching(/^sd3.tiny\+depth=1\+head_dim=\d+$/), 100_000, 32]]);
    // with a sweep, the target is the first arm's count in the same combination
    const w = planAblation(["specs/sd3.mdl:tiny", EW], { ...o, sweeps: [parseSweep("text_width=32,64")] });
    expect(w.units.map((u) => [u.id, u.match?.target])).toEqual([
      ["sd3.tiny+text_width=32", undefined], ["sd3.tiny+text_width=64", undefined],
      [expect.stringMatching(/^ablate-ew\.base\+text_width=32\+width=\d+$/), count("specs/sd3.mdl", "tiny", ["text_width=32"])],
      [expect.stringMatching(/^ablate-ew\.base\+text_width=64\+width=\d+$/), count("specs/sd3.mdl", "tiny", ["text_width=64"])],
    ]);
    for (const u of w.units.slice(2)) expect(u.match!.achieved).toBe(count(EW, null, u.inputs.set));
    // one spec's variants match too
    const v = planAblation("specs/sd3.mdl", { ...o, variants: ["tiny", "tiny_wide"], match: { params: ["head_dim"], on: "params" } });
    expect(v.units.map((u) => u.id)).toEqual(["tiny", "tiny_wide+head_dim=16"]);
  });
});

describe("sdc ablate, two spec files end to end", () => {
  it("trains and evaluates each arm in its own package with the same steps, batch and seed; the table, plot and report show both", async () => {
    const out = join(root, "e2e");
    const logs: string[] = [];
    const o: AblateOptions = {
      sweeps: [], set: ["train.log_every=1"], steps: 2, batch: 4, seed: 0, out, backend: "wasm", perDigit: 1, cfg: [1], sampleSteps: 2, reference: 200, checkpointEvery: 1,
      match: { params: [null, "width"], on: "params" }, log: (l) => logs.push(l),
    };
    const arms = ["specs/sd3.mdl:tiny+depth=1", EW];
    const s = await runAblation(arms, o);
    const A = "sd3.tiny+train.log_every=1+depth=1";
    expect(s.ran[0]).toBe(A);
    expect(s.ran[1]).toMatch(/^ablate-ew\.base\+train\.log_every=1\+width=\d+$/);
    const B = s.ran[1];
    const target = (compiledCount({ spec: "specs/sd3.mdl", variant: "tiny", set: ["depth=1"] }, "params") as { count: number }).count;
    for (const [id, pkg] of [[A, "sd3-tiny-train_log_every1-depth1"], [B, `ablate-ew-train_log_every1-width${B.split("=").pop()}`]]) {
      for (const f of [`generated/${pkg}/ir.json`, "run/checkpoints/latest", "eval.json", "unit.json"]) expect(existsSync(join(out, id, f)), `${id}/${f}`).toBe(true);
      const u = JSON.parse(readFileSync(join(out, id, "unit.json"), "utf8")) as UnitResult;
      expect([u.inputs.steps, u.inputs.batch, u.inputs.seed]).toEqual([2, 4, 0]);
      expect(Number.isFinite(u.valLoss) && Number.isFinite(u.finalTrainLoss)).toBe(true);
      const ir = JSON.parse(readFileSync(join(out, id, "generated", pkg, "ir.json"), "utf8")) as { stats: { params: number }; network: { block: string } };
      expect(u.params).toBe(ir.stats.params);
      expect(u.network).toBe(ir.network.block);
    }
    const [ra, rb] = s.results;
    expect([ra.network, rb.network]).toEqual(["mmdit", "ew_net"]);
    expect(ra.params).toBe(target);
    expect(rb.match).toMatchObject({ param: "width", target, achieved: rb.params });
    const md = readFileSync(join(out, "results.md"), "utf8");
    expect(md).toContain("# Ablation: specs/sd3.mdl:tiny+depth=1 test/specs/ablate-ew.mdl");
    expect(md).toContain(`| ${A} | specs/sd3.mdl | mmdit | tiny | train.log_every=1 depth=1 | ${target} |`);
    expect(md).toContain(`| ${B} | test/specs/ablate-ew.mdl | ew_net |  | train.log_every=1 width=${rb.match!.value} | ${rb.params} | ${rb.networkParams} | width=${rb.match!.value} | ${target} | ${rb.params} |`);
    expect(readFileSync(join(out, "plot.svg"), "utf8")).toContain("ablate-ew.mdl (ew_net)");
    const html = readFileSync(writeReport(out), "utf8");
    for (const x of [A, B, "specs/sd3.mdl", "test/specs/ablate-ew.mdl", "mmdit", "ew_net", target.toLocaleString("en-US"), `width=${rb.match!.value}`]) expect(html, x).toContain(x);

    // a rerun skips both (the same match is found again)
    const again = await runAblation(arms, { ...o, log: () => {} });
    expect(again.ran).toEqual([]);
    expect(again.skipped).toEqual([A, B]);
    expect(again.results[1].match).toEqual(rb.match);

    // the local executor (each unit's task.sh as a child process) makes the same table, step_s aside
    const local = join(root, "e2e-local");
    const l = await runAblationJobs(arms, { ...o, out: local, log: () => {} }, { executor: "local", jobs: 2 });
    expect(l.results?.map((r) => r.id)).toEqual([A, B]);
    expect(table(local)).toEqual(table(out));
    expect(table(out)).toHaveLength(4);
  }, 300_000);
});
