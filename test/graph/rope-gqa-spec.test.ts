/**
 * Masked grouped-query attention with 2-axis RoPE end to end: test/specs/rope-gqa.mdl (a joint
 * text + image sequence, text padding computed in the spec, Flux-style ids from positions_2d)
 * compiles, and trains to the same losses on the tfjs engine (tfjs ops + autodiff) and the
 * static engine (the traced graph, its gradient rules, the native CPU kernels).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { expectSameMetrics, type MetricLine, readMetrics } from "./helpers.ts";

vi.setConfig({ testTimeout: 180_000 });
const tmp = mkdtempSync(join(tmpdir(), "sdc-rope-gqa-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const sdc = (args: string[]) => spawnSync(process.execPath, ["bin/sdc.mjs", ...args], { encoding: "utf8", timeout: 150_000 });

describe("mask + rope + grouped-query attention in a spec", () => {
  it("compiles, and trains identically on the tfjs and the static (native) engine", () => {
    const c = sdc(["compile", "test/specs/rope-gqa.mdl", "--out-dir", join(tmp, "gen")]);
    expect(c.status, c.stderr).toBe(0);
    const model = readFileSync(join(tmp, "gen", "rope-gqa", "model.ts"), "utf8");
    expect(model).toContain("F.attention(q, k, v, heads, false, m, kv_heads)");
    expect(model).toContain("F.rope(");
    expect(model).toContain("F.positions2d(");
    const metrics: Record<string, MetricLine[]> = {};
    for (const engine of ["tfjs", "static"]) {
      const out = join(tmp, engine);
      const r = sdc(["train", join(tmp, "gen", "rope-gqa"), "--steps", "4", "--batch-size", "4", "--seed", "2", "--engine", engine, "--backend", "wasm", "--sample-every", "0", "--samples", "4", "--sample-steps", "2", "--no-progress", "--out", out]);
      expect(r.status, r.stderr.slice(-2000)).toBe(0);
      metrics[engine] = readMetrics(out);
    }
    expectSameMetrics(metrics as { tfjs: MetricLine[]; static: MetricLine[] });
  });
});
