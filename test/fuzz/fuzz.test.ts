/**
 * The quick fuzz run (issues 12, 24): a few thousand seeded cases over mutated specs, command
 * lines, safetensors files, checkpoints and run folders; crashes, hangs, unpositioned diagnostics and wrong
 * acceptances must all be zero. The long run is `npx tsx bench/fuzz.ts --cases 100000`.
 */
import { describe, expect, it } from "vitest";
import { runFuzz } from "./fuzz-cases.ts";

describe("fuzz (seeded)", () => {
  it("specs, command lines, safetensors headers and checkpoints: zero crashes, hangs, unpositioned diagnostics, wrong acceptances", async () => {
    const c = await runFuzz({ seed: 12, cases: { spec: 500, cli: 400, safetensors: 1600, checkpoint: 500 }, limitMs: 20_000 });
    expect(c.failures).toEqual([]);
    expect([c.crashes, c.hangs, c.unpositioned, c.wrongAcceptances]).toEqual([0, 0, 0, 0]);
    // the oracles saw both outcomes of every kind (a fuzzer that only ever refuses proves little)
    for (const k of ["spec", "safetensors", "checkpoint", "cli"] as const) {
      expect(c.accepted[k], `${k} accepted`).toBeGreaterThan(0);
      expect(c.refused[k], `${k} refused`).toBeGreaterThan(0);
    }
    expect(c.cases.spec + c.cases.cli + c.cases.safetensors + c.cases.checkpoint).toBe(3000);
  });

  it("run folders (issue 24): config.json mutations resumed through the CLI, checkpoint files that are not regular files: zero crashes, hangs, unnamed refusals, wrong acceptances", async () => {
    const c = await runFuzz({ seed: 24, cases: { checkpoint: 300, runfolder: 150 }, limitMs: 20_000 });
    expect(c.failures).toEqual([]);
    expect([c.crashes, c.hangs, c.unpositioned, c.wrongAcceptances]).toEqual([0, 0, 0, 0]);
    for (const k of ["checkpoint", "runfolder"] as const) {
      expect(c.accepted[k], `${k} accepted`).toBeGreaterThan(0);
      expect(c.refused[k], `${k} refused`).toBeGreaterThan(0);
    }
  }, 300_000);
});
