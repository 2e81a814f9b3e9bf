/**
 * The UNet baseline (specs/lib/unet.mdl: conv2d, group_norm, silu, stride-2 downsampling,
 * conv_transpose2d and upsample_nearest up, skip concats, timestep + pooled-text conditioning,
 * a bottleneck cross-attention, dropout) at test size (test/specs/unet-tiny.mdl): it compiles, and
 * trains to the same losses on the tfjs engine and the static (native) engine without dropout;
 * with dropout the static step draws its masks and trains to another, finite loss. The committed
 * spec (specs/unet.mdl) compiles with its tiny variant.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { runCompile } from "../../cli/commands/compile.ts";
import { expectSameMetrics } from "./helpers.ts";

vi.setConfig({ testTimeout: 240_000 });
const tmp = mkdtempSync(join(tmpdir(), "sdc-unet-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const sdc = (args: string[]) => spawnSync(process.execPath, ["bin/sdc.mjs", ...args], { encoding: "utf8", timeout: 200_000 });
type Metrics = { loss?: number; grad_norm?: number; val_loss?: number }[];

function train(dir: string, engine: string, out: string): Metrics {
  const r = sdc(["train", dir, "--steps", "3", "--batch-size", "4", "--seed", "2", "--engine", engine, "--backend", "wasm", "--sample-every", "0", "--samples", "4", "--sample-steps", "2", "--no-progress", "--out", join(tmp, out)]);
  expect(r.status, r.stderr.slice(-2000)).toBe(0);
  return readFileSync(join(tmp, out, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
}

describe("the UNet baseline", () => {
  const lines: string[] = [];
  const sink = { write: (s: string) => lines.push(s) > 0 };

  it("specs/unet.mdl compiles (tiny variant)", () => {
    expect(runCompile("specs/unet.mdl", { variant: "tiny", outDir: join(tmp, "spec") }, sink, sink), lines.join("")).toBe(0);
    expect(lines.join("")).toMatch(/upsample1 +conv_transpose2d/);
  });

  it("trains identically on tfjs and the static engine without dropout; with dropout, masks are drawn", () => {
    expect(runCompile("test/specs/unet-tiny.mdl", { set: ["drop=0"], outDir: join(tmp, "gen0"), quiet: true }, sink, sink), lines.join("")).toBe(0);
    expect(runCompile("test/specs/unet-tiny.mdl", { outDir: join(tmp, "gen1"), quiet: true }, sink, sink), lines.join("")).toBe(0);
    const model = readFileSync(join(tmp, "gen1", "unet-tiny", "model.ts"), "utf8");
    for (const f of ["new GroupNorm(", "new ConvTranspose2d(", "new Conv2d(", "F.upsampleNearest(", "F.dropout("]) expect(model).toContain(f);
    const m = { tfjs: train(join(tmp, "gen0", "unet-tiny-drop0"), "tfjs", "tfjs"), static: train(join(tmp, "gen0", "unet-tiny-drop0"), "static", "static") };
    expectSameMetrics(m);
    const dropped = train(join(tmp, "gen1", "unet-tiny"), "static", "static-drop");
    const loss = dropped.find((r) => r.loss !== undefined)!.loss!;
    expect(Number.isFinite(loss)).toBe(true);
    expect(Math.abs(loss - m.static.find((r) => r.loss !== undefined)!.loss!)).toBeGreaterThan(1e-4);
  });

  it("odd convolution windows (test/specs/conv-windows.mdl: k 3 s 2 p 0, k 5 p 3, transposed k 3 s 2 p 2 and k 2) train identically on both engines", () => {
    expect(runCompile("test/specs/conv-windows.mdl", { outDir: join(tmp, "gen2"), quiet: true }, sink, sink), lines.join("")).toBe(0);
    const dir = join(tmp, "gen2", "conv-windows");
    expectSameMetrics({ tfjs: train(dir, "tfjs", "cw-tfjs"), static: train(dir, "static", "cw-static") });
  });
});
