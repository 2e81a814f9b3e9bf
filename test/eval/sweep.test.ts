import { describe, expect, it } from "vitest";
import { parseCfgList } from "../../cli/commands/eval.ts";
import { expandSweeps, parseSet, parseSweep, planUnits, precisionNote, resultsCsv, resultsMarkdown, resultsPlotSpec, SweepError, unitId, type UnitResult } from "../../runtime/eval/sweep.ts";

const plan = (over: Partial<Parameters<typeof planUnits>[0]> = {}) =>
  planUnits({ spec: "specs/sd3.mdl", specHash: "h", variants: ["tiny"], fixed: [], sweeps: [], seed: 0, steps: 2, batch: 4, backend: "cpu", eval: { perDigit: 1, cfg: [1], sampleSteps: 2, seed: 0, reference: null }, ...over });

describe("sweeps", () => {
  it("parses name=v1,v2", () => {
    expect(parseSweep("depth=2,4")).toEqual({ name: "depth", values: ["2", "4"] });
    expect(parseSweep(" head_dim = 16 , 32 ")).toEqual({ name: "head_dim", values: ["16", "32"] });
    expect(parseSweep("train.batch=8")).toEqual({ name: "train.batch", values: ["8"] });
    expect(parseSweep("lr=1e-3,2e-4")).toEqual({ name: "lr", values: ["1e-3", "2e-4"] });
    expect(parseSet("depth=3")).toEqual(["depth", "3"]);
  });

  it("rejects bad input with a usage error that says what is wrong", () => {
    const bad: [string, RegExp][] = [
      ["depth", /name=v1,v2/],
      ["=2,4", /not a parameter name/],
      ["2x=2", /not a parameter name/],
      ["depth=", /one or more comma-separated values/],
      ["depth=2,,4", /one or more comma-separated values/],
      ["depth=2,2", /lists 2 twice/],
      ["depth=2;rm", /may only hold/],
    ];
    for (const [s, re] of bad) {
      const e = (() => { try { parseSweep(s); } catch (err) { return err; } })() as SweepError;
      expect(e, s).toBeInstanceOf(SweepError);
      expect(e.message, s).toMatch(re);
      expect(e.name).toBe("UsageError");
    }
    expect(() => parseSet("depth=2,4")).toThrow(/takes one value/);
    expect(() => expandSweeps([parseSweep("depth=2"), parseSweep("depth=4")])).toThrow(/given twice/);
  });

  it("expands the cartesian product, first sweep slowest", () => {
    const p = expandSweeps([parseSweep("depth=2,4"), parseSweep("head_dim=16,32"), parseSweep("mlp_ratio=2")]);
    expect(p.map((c) => c.map(([k, v]) => `${k}=${v}`).join(" "))).toEqual([
      "depth=2 head_dim=16 mlp_ratio=2",
      "depth=2 head_dim=32 mlp_ratio=2",
      "depth=4 head_dim=16 mlp_ratio=2",
      "depth=4 head_dim=32 mlp_ratio=2",
    ]);
    expect(expandSweeps([])).toEqual([[]]);
  });

  it("plans units: variants x sweeps with fixed overrides, unique folder ids", () => {
    const u = plan({ variants: ["tiny", "tiny_wide"], fixed: [["text_depth", "1"]], sweeps: [parseSweep("depth=2,4")] });
    expect(u.map((x) => x.id)).toEqual(["tiny+text_depth=1+depth=2", "tiny+text_depth=1+depth=4", "tiny_wide+text_depth=1+depth=2", "tiny_wide+text_depth=1+depth=4"]);
    expect(u[1].inputs.set).toEqual(["text_depth=1", "depth=4"]);
    expect(u[3].inputs.variant).toBe("tiny_wide");
    expect(unitId(null, [])).toBe("base");
    expect(() => plan({ variants: ["tiny", "tiny"] })).toThrow(/share the folder/);
    expect(() => plan({ fixed: [["depth", "2"]], sweeps: [parseSweep("depth=2,4")] })).toThrow(/both --set and --sweep/);
  });

  it("parses CFG lists", () => {
    expect(parseCfgList("1,2,4")).toEqual([1, 2, 4]);
    expect(parseCfgList("1.5")).toEqual([1.5]);
    expect(() => parseCfgList("1,,2")).toThrow(/comma-separated/);
    expect(() => parseCfgList("1,x")).toThrow(/'x' is not a number/);
    expect(() => parseCfgList("-1")).toThrow(/>= 0/);
  });

  it("renders results as markdown, CSV and a Vega-Lite spec", () => {
    const r = (id: string, params: number, acc: number): UnitResult => ({
      id, inputs: plan()[0].inputs, name: "sd3-tiny", params, networkParams: params - 10, stepSeconds: 0.5, trainSeconds: 1, finalTrainLoss: 1.23456, valLoss: 1.5,
      cfg: [{ cfg: 1, accuracy: acc, frechet: 12.345, sampleSeconds: 1 }], wallSeconds: 2,
    });
    const rs = [r("tiny", 100, 0.5), r("tiny_wide", 200, 0.75)];
    const md = resultsMarkdown(rs);
    expect(md.split("\n")[0]).toBe("| unit | spec | network | variant | overrides | params | network_params | step_s | final_loss | val_loss | acc_cfg1 | fd_cfg1 |");
    expect(md).toContain("| tiny_wide | specs/sd3.mdl |  | tiny |  | 200 | 190 | 0.500 | 1.2346 | 1.5000 | 0.750 | 12.35 |");
    const csv = resultsCsv(rs).trim().split("\n");
    expect(csv).toHaveLength(3);
    expect(csv[1]).toBe("tiny,specs/sd3.mdl,,tiny,,100,90,0.500,1.2346,1.5000,0.500,12.35");
    const vl = resultsPlotSpec(rs, 1, "t") as { data: { values: { accuracy: number }[] } };
    expect(vl.data.values.map((v) => v.accuracy)).toEqual([0.5, 0.75]);
  });

  it("plans arms from several spec files: ids start with the spec's name, arm overrides before the sweep's", () => {
    const arms = [
      { spec: "specs/sd3.mdl", specHash: "a", variant: "tiny", set: [["depth", "1"]] as [string, string][], label: "sd3" },
      { spec: "specs/dit.mdl", specHash: "b", variant: null, set: [], label: "dit" },
    ];
    const u = plan({ arms, fixed: [["train.log_every", "1"]], sweeps: [parseSweep("mlp_ratio=2,4")] });
    expect(u.map((x) => x.id)).toEqual(["sd3.tiny+train.log_every=1+depth=1+mlp_ratio=2", "sd3.tiny+train.log_every=1+depth=1+mlp_ratio=4", "dit.base+train.log_every=1+mlp_ratio=2", "dit.base+train.log_every=1+mlp_ratio=4"]);
    expect(u.map((x) => [x.arm, x.combo, x.inputs.spec, x.inputs.specHash])).toEqual([[0, 0, "specs/sd3.mdl", "a"], [0, 1, "specs/sd3.mdl", "a"], [1, 0, "specs/dit.mdl", "b"], [1, 1, "specs/dit.mdl", "b"]]);
    expect(u[1].inputs.set).toEqual(["train.log_every=1", "depth=1", "mlp_ratio=4"]);
    expect(() => plan({ arms: [arms[0], arms[0]] })).toThrow(/share the folder sd3.tiny\+depth=1; is an arm listed twice/);
    expect(() => plan({ arms, fixed: [["depth", "2"]] })).toThrow(/depth is both --set and set by the arm specs\/sd3.mdl:tiny/);
    expect(() => plan({ arms, sweeps: [parseSweep("depth=1,2")] })).toThrow(/depth is both --sweep and set by the arm/);
  });

  it("renders the spec, network and matched counts of cross-spec arms", () => {
    const base = { stepSeconds: 0.5, trainSeconds: 1, finalTrainLoss: 1, valLoss: 1.5, cfg: [{ cfg: 1, accuracy: 0.5, frechet: 1, sampleSeconds: 1 }], wallSeconds: 2 };
    const inputs = (spec: string, variant: string | null, set: string[]) => ({ ...plan()[0].inputs, spec, variant, set });
    const rs: UnitResult[] = [
      { ...base, id: "sd3.tiny", inputs: inputs("specs/sd3.mdl", "tiny", []), name: "sd3-tiny", network: "mmdit", params: 347264, networkParams: 294592 },
      { ...base, id: "ew.base+width=264", inputs: inputs("test/specs/ablate-ew.mdl", null, ["width=264"]), name: "ablate-ew-width264", network: "ew_net", params: 343320, networkParams: 1, match: { param: "width", value: 264, from: 32, on: "params", target: 347264, achieved: 343320, compiled: 71 } },
    ];
    const md = resultsMarkdown(rs).split("\n");
    expect(md[0]).toBe("| unit | spec | network | variant | overrides | params | network_params | match | target_params | achieved_params | match_err | step_s | final_loss | val_loss | acc_cfg1 | fd_cfg1 |");
    expect(md[2]).toBe("| sd3.tiny | specs/sd3.mdl | mmdit | tiny |  | 347264 | 294592 |  |  |  |  | 0.500 | 1.0000 | 1.5000 | 0.500 | 1.00 |");
    expect(md[3]).toBe("| ew.base+width=264 | test/specs/ablate-ew.mdl | ew_net |  | width=264 | 343320 | 1 | width=264 | 347264 | 343320 | -1.14% | 0.500 | 1.0000 | 1.5000 | 0.500 | 1.00 |");
    const vl = resultsPlotSpec(rs, 1, "t") as { data: { values: { spec: string; params: number; target_params: number | null }[] }; hconcat: { layer: { encoding: { shape?: { field: string } } }[] }[] };
    expect(vl.data.values.map((v) => [v.spec, v.params, v.target_params])).toEqual([["sd3.mdl (mmdit)", 347264, null], ["ablate-ew.mdl (ew_net)", 343320, 347264]]);
    expect(vl.hconcat[0].layer[0].encoding.shape?.field).toBe("spec");
    const xField = (v: unknown) => (v as { hconcat: { layer: { encoding: { x: { field: string } } }[] }[] }).hconcat[0].layer[0].encoding.x.field;
    expect(xField(vl)).toBe("params");
    expect(xField(resultsPlotSpec([rs[0], { ...rs[1], match: { ...rs[1].match!, on: "network" } }], 1, "t"))).toBe("network_params");
  });

  it("shows each unit's precision and says where units differ in it (older unit files: fp32)", () => {
    const base = { stepSeconds: 0.5, trainSeconds: 1, finalTrainLoss: 1, valLoss: 1.5, cfg: [{ cfg: 1, accuracy: 0.5, frechet: 1, sampleSeconds: 1 }], wallSeconds: 2, params: 10, networkParams: 9 };
    const u = (id: string, precision?: "fp32" | "bf16"): UnitResult => ({ ...base, id, inputs: plan()[0].inputs, name: id, ...(precision ? { precision } : {}) });
    const mixed = resultsMarkdown([u("sd3.cpu", "bf16"), u("dit.tiny"), u("unet.tiny", "fp32")]).split("\n");
    expect(mixed[0]).toBe("| unit | spec | network | variant | overrides | params | network_params | precision | step_s | final_loss | val_loss | acc_cfg1 | fd_cfg1 |");
    expect(mixed.slice(2, 5).map((l) => l.split(" | ")[7])).toEqual(["bf16", "fp32", "fp32"]);
    expect(mixed[5]).toBe("note: the units train in different precisions (bf16: sd3.cpu; fp32: dit.tiny, unet.tiny), so step times and losses differ for that reason too; to train them alike add --set train.precision=fp32 (or bf16)");
    expect(precisionNote([u("a", "bf16"), u("b", "bf16")])).toBe("");
    expect(resultsMarkdown([u("a", "bf16"), u("b", "bf16")]).split("\n")[0]).toContain("| precision |");
    expect(resultsMarkdown([u("a"), u("b", "fp32")])).not.toMatch(/precision/);
    expect(resultsCsv([u("a", "bf16"), u("b")]).split("\n")[0]).toContain(",precision,");
  });
});
