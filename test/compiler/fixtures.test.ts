/**
 * The compiled fixture networks compute the reference's function: both fixture specs are compiled
 * into a temp dir and run on the reference weights and inputs. Plus the CLI's exit codes.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCompile } from "../../cli/commands/compile.ts";
import { runForward } from "../../cli/commands/forward.ts";
import { ROOT } from "./helpers.ts";

const FX = join(ROOT, "test/fixtures/mmdit-fixtures");

describe("compiled fixture networks match the PyTorch reference", () => {
  const tmp = mkdtempSync(join(tmpdir(), "sdc-fixtures-"));
  beforeAll(async () => {
    tf.env().set("PROD", true); // as the CLI: no debug checks, no "install tfjs-node" banner
    await tf.setBackend("cpu");
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it.each(["mmdit-tiny-a", "mmdit-tiny-b"])("%s: output within 1e-4, position table within 1e-5", async (name) => {
    let text = "";
    const sink = { write: (s: string) => ((text += s), true), isTTY: false } as unknown as NodeJS.WriteStream;
    expect(runCompile(`test/specs/${name}.mdl`, { outDir: tmp, quiet: true }, sink, sink), text).toBe(0);
    const logs: string[] = [];
    const report = await runForward(join(tmp, name), { weights: join(FX, `${name}.weights.safetensors`), inputs: join(FX, `${name}.io.safetensors`) }, (s) => logs.push(s));
    expect(report.maxAbsError, logs.join("\n")).toBeDefined();
    expect(report.maxAbsError!).toBeLessThan(1e-4);
    expect(report.bufferMaxAbsError).toBeDefined();
    expect(report.bufferMaxAbsError!).toBeLessThan(1e-5);
    // channels first, as the reference: [B, C, H, W]
    expect(report.shape).toEqual(name === "mmdit-tiny-a" ? [2, 1, 32, 32] : [2, 3, 16, 16]);
  });
});

/** Run the CLI; resolves with its exit code and output. */
function sdc(args: string[], cwd = ROOT): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [join(ROOT, "bin/sdc.mjs"), ...args], { cwd, env: { ...process.env, NO_COLOR: "1", FORCE_COLOR: "0" } });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    p.on("error", reject);
    p.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("CLI exit codes", () => {
  const tmp = mkdtempSync(join(tmpdir(), "sdc-cli-"));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it("a bad spec exits 1 with the diagnostic on stderr and no stack trace; a missing file or a bad flag exits 2", async () => {
    const bad = join(tmp, "bad.mdl");
    writeFileSync(bad, ["block b(width: int) {", "  forward(x: [B, N, width]) -> [B, N, width] {", "    return linear(x, widht) as l", "  }", "}", "spec s {", "  network: b(width: 4)", "}", ""].join("\n"));
    // the three runs are independent: run them side by side (each process costs seconds)
    const [badSpec, missing, badFlag] = await Promise.all([
      sdc(["compile", bad, "--out-dir", join(tmp, "out")]),
      sdc(["compile", join(tmp, "does-not-exist.mdl"), "--out-dir", join(tmp, "out")]),
      sdc(["compile", bad, "--no-such-flag"]),
    ]);

    expect(badSpec.code, badSpec.stderr).toBe(1);
    expect(badSpec.stderr).toContain(`${bad}:3:22: error SDC300: unknown identifier 'widht' (did you mean 'width'?)`);
    expect(badSpec.stderr).toContain("3 |     return linear(x, widht) as l");
    expect(badSpec.stderr).toMatch(/\|\s+\^{5}/);
    expect(badSpec.stderr).toContain("nothing written");
    for (const r of [badSpec, missing, badFlag]) {
      expect(r.stderr).not.toMatch(/\n\s+at .*\(.*:\d+:\d+\)/); // no stack frames
      expect(r.stderr).not.toContain("internal error");
    }

    expect(missing.code, missing.stderr).toBe(1); // a missing input file is an input error, as everywhere
    expect(missing.stderr).toContain("spec file not found");

    expect(badFlag.code, badFlag.stderr).toBe(2);
    expect(badFlag.stderr).toMatch(/unknown option '--no-such-flag'/);
  });
});
