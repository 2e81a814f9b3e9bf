/**
 * Ctrl-C and SIGTERM during `sdc train`, with real signals to a real child process: the step
 * finishes, a checkpoint is written, the process exits 130 (SIGINT) or 143 (SIGTERM), and
 * `--resume` continues from that checkpoint; a second signal exits at once, without one.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { watchInterrupts } from "../../cli/signals.ts";

const GEN = "generated/sd3-tiny";
const tmp = mkdtempSync(join(tmpdir(), "sdc-signals-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const trainArgs = (out: string, extra: string[] = []) => [
  "bin/sdc.mjs", "train", GEN, "--steps", "1000", "--batch-size", "8", "--backend", "wasm", "--sample-every", "0", "--checkpoint-every", "0",
  "--samples", "4", "--sample-steps", "2", "--no-progress", "--out", out, ...extra,
];

interface Exited {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** Start `sdc train`, wait until it has finished a step (its first progress line), run `poke`, wait for the exit. */
function trainAndSignal(out: string, poke: (c: ChildProcess) => void): Promise<Exited> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, trainArgs(out), { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    let poked = false;
    const timer = setTimeout(() => {
      c.kill("SIGKILL");
      reject(new Error(`no exit within 90 s; stderr:\n${stderr}`));
    }, 90_000);
    c.stderr!.on("data", (d: Buffer) => {
      stderr += d.toString();
      if (!poked && /step \d+\/1000/.test(stderr)) {
        poked = true;
        poke(c);
      }
    });
    c.on("exit", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stderr });
    });
  });
}

const checkpoints = (out: string) => (existsSync(join(out, "checkpoints")) ? readdirSync(join(out, "checkpoints")).filter((f) => f.startsWith("step-")) : []);

describe("sdc train under signals", () => {
  it.each([
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const)("%s: finishes the step, writes a checkpoint, exits %i; --resume continues from it", async (sig, code) => {
    const out = join(tmp, sig);
    const r = await trainAndSignal(out, (c) => c.kill(sig));
    expect(r.signal, r.stderr).toBeNull();
    expect(r.code, r.stderr).toBe(code);
    const m = /interrupted at step (\d+); checkpoint (\S+)/.exec(r.stderr);
    expect(m, r.stderr).not.toBeNull();
    const step = Number(m![1]);
    expect(step).toBeGreaterThan(0);
    expect(step).toBeLessThan(1000);
    expect(checkpoints(out)).toEqual([`step-${String(step).padStart(6, "0")}`]);
    expect(readFileSync(join(out, "checkpoints", "latest"), "utf8").trim()).toBe(`step-${String(step).padStart(6, "0")}`);
    expect(r.stderr).not.toMatch(/\n\s+at /);

    const resumed = spawnSync(process.execPath, [...trainArgs(out, ["--resume", out]).map((a) => (a === "1000" ? String(step + 2) : a))], { encoding: "utf8" });
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(resumed.stderr).toContain(`at step ${step}`);
    expect(resumed.stderr).toMatch(new RegExp(`done at step ${step + 2}`));
  });

  it("a second signal exits at once, without a checkpoint", async () => {
    const out = join(tmp, "twice");
    // two different signals, sent back to back: the kernel merges a signal that is already
    // pending with a second of the same kind, never two kinds
    const r = await trainAndSignal(out, (c) => {
      c.kill("SIGINT");
      c.kill("SIGTERM");
    });
    // both arrive before the next step ends; the process sees them in either order
    const again = /(SIGINT|SIGTERM) again: exiting now/.exec(r.stderr);
    expect(again, r.stderr).not.toBeNull();
    expect(r.code, r.stderr).toBe(again![1] === "SIGINT" ? 130 : 143);
    expect(r.stderr).toMatch(again![1] === "SIGINT" ? /SIGTERM received: finishing this step/ : /interrupted \(Ctrl-C\): finishing this step/);
    expect(r.stderr).not.toMatch(/interrupted at step/);
    expect(checkpoints(out)).toEqual([]);
  });
});

describe("watchInterrupts", () => {
  it.each([
    [["SIGINT"], null, 130],
    [["SIGTERM"], null, 143],
    [["SIGINT", "SIGINT"], 130, 130],
    [["SIGTERM", "SIGINT"], 130, 143],
  ] as const)("signals %j: exit at once with %s, exit code %i", (sigs, exitAtOnce, code) => {
    const before = process.listenerCount("SIGINT");
    const logs: string[] = [];
    let exited: number | null = null;
    const w = watchInterrupts({ log: (s) => logs.push(s), then: "stopping", exit: (c) => (exited = c) });
    try {
      expect(w.requested).toBe(false);
      for (const s of sigs) process.emit(s as NodeJS.Signals, s as NodeJS.Signals);
      expect(w.requested).toBe(true);
      expect(w.signal).toBe(sigs[0]);
      expect(w.exitCode).toBe(code);
      expect(exited).toBe(exitAtOnce);
      expect(logs[0]).toMatch(/stopping/);
    } finally {
      w.dispose();
    }
    expect(process.listenerCount("SIGINT")).toBe(before);
  });
});
