/** `sdc diff`: argument parsing, the IR comparison, and the command end to end on tiny specs. */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { diffIr } from "../../compiler/diff.ts";
import type { IR } from "../../ir/ir.ts";
import { parseDiffArgs } from "../../cli/commands/diff.ts";

const ir = (name: string): IR => JSON.parse(readFileSync(`generated/${name}/ir.json`, "utf8"));
const sdc = (args: string[]) => spawnSync(process.execPath, ["bin/sdc.mjs", "diff", ...args], { encoding: "utf8" });

describe("parseDiffArgs", () => {
  const ok: [string[], object][] = [
    [["a.mdl", "b.mdl"], { a: { path: "a.mdl", set: [] }, b: { path: "b.mdl", set: [] }, plan: true, json: false }],
    [["a.mdl", "--variant", "tiny", "a.mdl"], { a: { path: "a.mdl", variant: "tiny" }, b: { path: "a.mdl", set: [] } }],
    [["a.mdl", "b.mdl", "--variant=small", "--set", "depth=4", "--json", "--no-plan"], { a: { path: "a.mdl", set: [] }, b: { variant: "small", set: ["depth=4"] }, json: true, plan: false }],
    [["generated/x", "a.mdl", "--batch-size", "8", "--depth", "2"], { a: { path: "generated/x" }, batch: 8, depth: 2 }],
  ];
  it.each(ok)("%j", (argv, want) => expect(parseDiffArgs(argv)).toMatchObject(want));

  const bad: [string[], RegExp][] = [
    [["a.mdl"], /compares two things, got 1/],
    [["a.mdl", "b.mdl", "c.mdl"], /got 3/],
    [["--variant", "tiny", "a.mdl", "b.mdl"], /must follow the spec/],
    [["generated/sd3", "--variant", "tiny", "b.mdl"], /applies to a spec/],
    [["a.mdl", "b.mdl", "--bogus"], /unknown option '--bogus'/],
    [["a.mdl", "b.mdl", "--batch-size", "0"], /at least 1/],
    [["a.mdl", "b.mdl", "--variant"], /needs a value/],
  ];
  it.each(bad)("%j is a usage error", (argv, msg) => expect(() => parseDiffArgs(argv)).toThrow(msg));
});

describe("diffIr", () => {
  it("tiny against sd3: module totals, per-block sizes and the settings that differ", () => {
    const a = ir("sd3-tiny");
    const b = ir("sd3");
    const d = diffIr(a, b);
    const row = (p: string) => d.modules.find((m) => m.path === p)!;
    expect(row("(network)")).toMatchObject({ depth: 0, a: { params: a.stats.networkParams }, b: { params: b.stats.networkParams } });
    // the last MMDiT block is pre_only (smaller): two sizes per side
    expect(row("transformer_blocks.*")).toMatchObject({ a: { count: 2, kind: "mmdit_block" }, b: { count: 12, each: [[11, 5_319_936], [1, 3_399_168]] } });
    for (const [top, total] of [["(network)", "networkParams"], ["text_encoder", "textParams"]] as const) {
      const kids = d.modules.slice(d.modules.indexOf(row(top)) + 1).filter((m, i, all) => m.depth === 1 && all.slice(0, i).every((x) => x.depth === 1));
      expect(kids.reduce((s, m) => s + m.b!.params, 0)).toBe(b.stats[total]);
    }
    expect(d.totals[0]).toEqual({ name: "parameters", a: 347_264, b: 64_445_760 });
    const settings = Object.fromEntries(d.settings.map((s) => [s.path, [s.a, s.b]]));
    expect(settings["spec.params.depth"]).toEqual([2, 12]);
    expect(settings["train.optimizer.lr"]).toEqual([0.001, 0.0002]);
    expect(settings["network.inputs.context"]).toEqual(["[B, 8, 64]", "[B, 8, 256]"]);
    expect(settings["train.batch"]).toBeUndefined(); // the same on both sides
  });

  it("a spec against itself: nothing differs", () => {
    const d = diffIr(ir("sd3-seed"), ir("sd3-seed"));
    expect(d.settings).toEqual([]);
    expect(d.modules.every((m) => m.a!.params === m.b!.params)).toBe(true);
  });
});

describe("sdc diff", () => {
  it("a compiled folder against its spec: the same model, and the step cost on both sides", () => {
    const r = sdc(["generated/sd3-tiny", "specs/sd3.mdl", "--variant", "tiny", "--set", "depth=1", "--batch-size", "2", "--json"]);
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.labels).toEqual({ a: "generated/sd3-tiny", b: "specs/sd3.mdl --variant tiny --set depth=1" });
    expect(j.settings.map((s: { path: string }) => s.path)).toEqual(["spec.params.depth", "network.args.depth"]);
    const plan = Object.fromEntries(j.plan.map((p: { name: string; a: number; b: number }) => [p.name, p]));
    expect(plan.batch).toMatchObject({ a: 2, b: 2 });
    expect(plan["dispatches per step"].b).toBeLessThan(plan["dispatches per step"].a);
    expect(plan["parameters + gradients + Adam (MiB)"].b).toBeLessThan(plan["parameters + gradients + Adam (MiB)"].a);
    expect(j.totals[0].b).toBeLessThan(j.totals[0].a);
  });

  it("prints a table", () => {
    const r = sdc(["specs/sd3.mdl", "--variant", "tiny", "generated/sd3-tiny", "--no-plan"]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^A: specs\/sd3.mdl --variant tiny \(sd3-tiny\)\nB: generated\/sd3-tiny \(sd3-tiny\)/);
    expect(r.stdout).toMatch(/transformer_blocks\.\*\s+mmdit_block x2\s+244,864\s+244,864\s+=/);
    expect(r.stdout).toMatch(/settings: all the same/);
  });

  const errors: [string[], number, RegExp][] = [
    [["docs/examples/broken.mdl", "specs/sd3.mdl", "--no-plan"], 1, /SDC700[\s\S]*docs\/examples\/broken.mdl does not compile \(3 errors above\)/],
    [["specs/sd3.mdl", "--variant", "nope", "specs/sd3.mdl", "--no-plan"], 1, /SDC306/],
    [["specs/none.mdl", "specs/sd3.mdl"], 2, /spec file not found: specs\/none.mdl/],
    [["specs/sd3.mdl"], 2, /missing required argument/],
  ];
  it.each(errors)("%j exits %i", (args, code, msg) => {
    const r = sdc(args);
    expect(r.status).toBe(code);
    expect(r.stderr).toMatch(msg);
    expect(r.stderr).not.toMatch(/internal error|    at /);
  });
});
