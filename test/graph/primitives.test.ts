/**
 * The elementwise primitives (exp, log, sqrt, rsqrt, abs, softmax) end to end: a spec that uses
 * them all (test/specs/elementwise.mdl, importing the shipped library through `sdc/...`) compiles,
 * and trains to the same losses on the tfjs engine (tfjs ops + autodiff) and the static engine
 * (the traced graph, its gradient rules, the native CPU kernels generated from ops.ts).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { expectSameMetrics, type MetricLine, readMetrics } from "./helpers.ts";

vi.setConfig({ testTimeout: 180_000 });
const tmp = mkdtempSync(join(tmpdir(), "sdc-prims-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const sdc = (args: string[]) => spawnSync(process.execPath, ["bin/sdc.mjs", ...args], { encoding: "utf8", timeout: 150_000 });

describe("elementwise primitives in a spec", () => {
  it("compile, and train identically on the tfjs and the static (native) engine", () => {
    const c = sdc(["compile", "test/specs/elementwise.mdl", "--out-dir", join(tmp, "gen")]);
    expect(c.status, c.stderr).toBe(0);
    const model = readFileSync(join(tmp, "gen", "elementwise", "model.ts"), "utf8");
    for (const f of ["exp", "log", "sqrt", "rsqrt", "abs", "softmax"]) expect(model).toContain(`F.${f}(`);
    const metrics: Record<string, MetricLine[]> = {};
    for (const engine of ["tfjs", "static"]) {
      const out = join(tmp, engine);
      const r = sdc(["train", join(tmp, "gen", "elementwise"), "--steps", "6", "--batch-size", "8", "--seed", "2", "--engine", engine, "--backend", "wasm", "--sample-every", "0", "--samples", "4", "--sample-steps", "2", "--no-progress", "--out", out]);
      expect(r.status, r.stderr.slice(-2000)).toBe(0);
      metrics[engine] = readMetrics(out);
    }
    expectSameMetrics(metrics as { tfjs: MetricLine[]; static: MetricLine[] });
  });
});
