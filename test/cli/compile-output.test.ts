/** `--set` and `--variant` compile into their own folder, never over another spec's package. */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { packageName, runCompile } from "../../cli/commands/compile.ts";

const tmp = mkdtempSync(join(tmpdir(), "sdc-compile-out-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const sink = { write: () => true };

describe("package names", () => {
  it.each([
    ["specs/sd3.mdl", undefined, [], "sd3"],
    ["specs/sd3.mdl", "tiny", [], "sd3-tiny"],
    ["specs/sd3.mdl", undefined, ["depth=4"], "sd3-depth4"],
    ["specs/sd3.mdl", "tiny", ["depth=4", "train.batch=32"], "sd3-tiny-depth4-train_batch32"],
    ["specs/sd3.mdl", undefined, ["lr=1e-3"], "sd3-lr1e-3"],
    ["specs/sd3.mdl", undefined, ["flow.cfg_drop = 0.1"], "sd3-flow_cfg_drop0p1"],
    ["specs/sd3.mdl", undefined, ['data.path="x/y z"'], "sd3-data_path_x_y_z_"],
    ["specs/sd3-seed.mdl", undefined, [], "sd3-seed"],
  ] as const)("%s variant %s set %j -> %s", (spec, variant, sets, name) => {
    expect(packageName(spec, variant, sets)).toBe(name);
    expect(name).toMatch(/^[A-Za-z_][A-Za-z0-9_-]*$/); // the IR schema's spec.name pattern
  });
});

describe("sdc compile writes each override to its own folder", () => {
  it.each([
    [{ set: ["depth=4"] }, "sd3-depth4"],
    [{ variant: "tiny" }, "sd3-tiny"],
    [{ variant: "tiny", set: ["depth=1"] }, "sd3-tiny-depth1"],
  ])("%j -> %s, and nothing else", (o, name) => {
    const out = join(tmp, name);
    expect(runCompile("specs/sd3.mdl", { ...o, outDir: out, quiet: true }, sink, sink)).toBe(0);
    expect(readdirSync(out)).toEqual([name]);
    const ir = JSON.parse(readFileSync(join(out, name, "ir.json"), "utf8"));
    expect(ir.spec.name).toBe(name);
    if ("set" in o && o.set?.[0] === "depth=4") expect(ir.spec.params.depth).toBe(4);
  });

  it("a --set compile into a generated/ folder writes no sd3/ there; the committed sd3 is still up to date", () => {
    expect(runCompile("specs/sd3.mdl", { set: ["depth=4"], outDir: join(tmp, "generated"), quiet: true }, sink, sink)).toBe(0);
    expect(existsSync(join(tmp, "generated", "sd3"))).toBe(false);
    expect(runCompile("specs/sd3.mdl", { outDir: "generated", check: true, quiet: true }, sink, sink)).toBe(0);
  });
});
