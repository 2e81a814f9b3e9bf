/**
 * The static engine on the CPU (the native executor) through the CLI, as a user runs it: it
 * tracks the tfjs engine for the same seed, checkpoints resume across the two engines both ways,
 * a resumed run is bit-identical, sampling and eval through the native forward pass agree with
 * tfjs, and the failure modes are one clear line (no executor, not enough memory).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PNG } from "pngjs";
import { afterAll, describe, expect, it, vi } from "vitest";

vi.setConfig({ testTimeout: 240_000 });
const tmp = mkdtempSync(join(tmpdir(), "sdc-native-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function sdc(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, ["bin/sdc.mjs", ...args], { encoding: "utf8", env: { ...process.env, ...env }, timeout: 200_000 });
  return { status: r.status, out: r.stdout, err: r.stderr };
}
const train = (engine: string, out: string, extra: string[] = [], steps = 12) =>
  sdc(["train", "generated/sd3-tiny", "--steps", String(steps), "--batch-size", "8", "--seed", "3", "--engine", engine, "--backend", "wasm", "--sample-every", "0", "--checkpoint-every", "6", "--samples", "4", "--sample-steps", "2", "--no-progress", "--out", out, ...extra]);
const metrics = (out: string) => readFileSync(join(out, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
const lastLoss = (out: string) => metrics(out).filter((m) => m.loss !== undefined).pop();

describe("the static engine on the CPU (native executor)", () => {
  it("is the default on the CPU and tracks the tfjs engine for the same seed (loss, gradient norm, validation, grid)", () => {
    const a = train("auto", join(tmp, "static"));
    expect(a.status, a.err.slice(-2000)).toBe(0);
    expect(a.err).toMatch(/engine: static graph on the CPU, native CPU kernels \(\w+, \d+ threads\): \d+ kernels per step/);
    const b = train("tfjs", join(tmp, "tfjs"));
    expect(b.status, b.err.slice(-2000)).toBe(0);
    const [ma, mb] = [metrics(join(tmp, "static")), metrics(join(tmp, "tfjs"))];
    expect(ma.length).toBe(mb.length);
    let compared = 0;
    for (let i = 0; i < ma.length; i++) {
      for (const k of ["loss", "grad_norm", "val_loss"]) {
        if (mb[i][k] === undefined) continue;
        compared++;
        expect(Math.abs(ma[i][k] - mb[i][k]), `${k} at step ${mb[i].step}`).toBeLessThan(1e-4 * Math.max(1, Math.abs(mb[i][k])));
      }
    }
    expect(compared).toBeGreaterThanOrEqual(5);
    expect(JSON.parse(readFileSync(join(tmp, "static", "summary.json"), "utf8")).engine).toBe("static");
    const png = (dir: string) => PNG.sync.read(readFileSync(join(dir, "samples", "step-000012.png"))).data;
    const [pa, pb] = [png(join(tmp, "static")), png(join(tmp, "tfjs"))];
    let worst = 0;
    for (let i = 0; i < pa.length; i++) worst = Math.max(worst, Math.abs(pa[i] - pb[i]));
    expect(worst).toBeLessThanOrEqual(2);
  });

  it("resumes bit-identically: 12 steps straight equal 6 + resume + 6 (all four safetensors)", () => {
    const split = join(tmp, "split");
    expect(train("static", split, [], 6).status).toBe(0);
    const r = train("static", split, ["--resume", join(split, "checkpoints", "step-000006")]);
    expect(r.status, r.err.slice(-2000)).toBe(0);
    for (const f of ["model.safetensors", "text_encoder.safetensors", "optimizer.safetensors", "ema.safetensors"]) {
      const x = readFileSync(join(tmp, "static", "checkpoints", "step-000012", f));
      const y = readFileSync(join(split, "checkpoints", "step-000012", f));
      expect(Buffer.compare(x, y), f).toBe(0);
    }
  });

  it("a native checkpoint resumes on the tfjs engine, and a tfjs checkpoint on the native one, where the straight runs end", () => {
    const toTfjs = join(tmp, "static-then-tfjs");
    const a = train("tfjs", toTfjs, ["--resume", join(tmp, "static", "checkpoints", "step-000006")]);
    expect(a.status, a.err.slice(-2000)).toBe(0);
    const toStatic = join(tmp, "tfjs-then-static");
    const b = train("static", toStatic, ["--resume", join(tmp, "tfjs", "checkpoints", "step-000006")]);
    expect(b.status, b.err.slice(-2000)).toBe(0);
    for (const [resumed, straight] of [[toTfjs, join(tmp, "tfjs")], [toStatic, join(tmp, "static")]]) {
      const r = lastLoss(resumed);
      expect(r.step).toBe(12);
      expect(Math.abs(r.loss - lastLoss(straight).loss)).toBeLessThan(1e-4);
    }
  });

  it("sdc sample and sdc eval run the native forward pass and agree with tfjs", () => {
    const run = join(tmp, "static");
    const sample = (out: string, env: Record<string, string>) => sdc(["sample", "generated/sd3-tiny", "--checkpoint", run, "--prompt", "seven", "--prompt", "2", "--n", "2", "--steps", "3", "--sampler", "heun", "--backend", "wasm", "--out", out], env);
    for (const [f, env] of [["native.png", {}], ["tfjs.png", { SDC_NATIVE: "0" }]] as const) {
      const r = sample(join(tmp, f), env);
      expect(r.status, r.err.slice(-2000)).toBe(0);
    }
    const [pa, pb] = ["native.png", "tfjs.png"].map((f) => PNG.sync.read(readFileSync(join(tmp, f))).data);
    let worst = 0;
    for (let i = 0; i < pa.length; i++) worst = Math.max(worst, Math.abs(pa[i] - pb[i]));
    expect(worst).toBeLessThanOrEqual(2);
    const evalRun = (env: Record<string, string>) => {
      const r = sdc(["eval", run, "--per-digit", "1", "--cfg", "1,4", "--steps", "2", "--reference", "100", "--backend", "wasm", "--json"], env);
      expect(r.status, r.err.slice(-2000)).toBe(0);
      return JSON.parse(r.out);
    };
    const [ea, eb] = [evalRun({}), evalRun({ SDC_NATIVE: "0" })];
    expect(Math.abs(ea.valLoss - eb.valLoss)).toBeLessThan(1e-4);
    ea.cfg.forEach((c: { accuracy: number; frechet: number }, i: number) => {
      expect(c.accuracy).toBe(eb.cfg[i].accuracy);
      expect(Math.abs(c.frechet - eb.cfg[i].frechet)).toBeLessThan(1e-3 * eb.cfg[i].frechet);
    });
  });

  it("SDC_ISA=x86-64 on one thread trains the tiny spec (baseline SSE2 kernels), tracking the default ISA's run", () => {
    const out = join(tmp, "x86-64");
    const r = sdc(["train", "generated/sd3-tiny", "--steps", "12", "--batch-size", "8", "--seed", "3", "--engine", "static", "--backend", "wasm", "--sample-every", "0", "--checkpoint-every", "6", "--samples", "4", "--sample-steps", "2", "--no-progress", "--out", out], { SDC_ISA: "x86-64", SDC_THREADS: "1" });
    expect(r.status, r.err.slice(-2000)).toBe(0);
    expect(r.err).toMatch(/native CPU kernels \(x86-64, 1 threads\)/);
    const base = metrics(join(tmp, "static"));
    let compared = 0;
    for (const m of metrics(out)) {
      const b = base.find((x) => x.step === m.step && x.loss !== undefined);
      if (m.loss === undefined || !b) continue;
      compared++;
      expect(Math.abs(m.loss - b.loss), `loss at step ${m.step}`).toBeLessThan(1e-4 * Math.max(1, Math.abs(b.loss)));
    }
    expect(compared).toBeGreaterThanOrEqual(1);
  });

  it("SDC_ISA, SDC_THREADS and SDC_WORKERS that cannot be used are one clear line (exit 2)", () => {
    for (const [env, msg] of [[{ SDC_ISA: "avx9" }, /^error: SDC_ISA=avx9: unknown ISA level 'avx9'/], [{ SDC_THREADS: "lots" }, /^error: SDC_THREADS must be a whole number/], [{ SDC_WORKERS: "near" }, /^error: SDC_WORKERS must be apart/]] as const) {
      const r = sdc(["train", "generated/sd3-tiny", "--steps", "1", "--batch-size", "2", "--engine", "static", "--backend", "wasm", "--no-progress", "--out", join(tmp, "bad-env")], env);
      expect(r.status, r.err).toBe(2);
      expect(r.err.trim().split("\n").pop()).toMatch(msg);
    }
  });

  it("without the executor: --engine static is one clear line (exit 1), auto falls back to tfjs and says why", () => {
    const off = sdc(["train", "generated/sd3-tiny", "--steps", "1", "--batch-size", "2", "--backend", "wasm", "--engine", "static", "--no-progress", "--out", join(tmp, "off")], { SDC_NATIVE: "0" });
    expect(off.status).toBe(1);
    expect(off.err).toMatch(/--engine static on the CPU needs the native executor: SDC_NATIVE=0/);
    expect(off.err).not.toMatch(/\n\s+at /);
    const auto = sdc(["train", "generated/sd3-tiny", "--steps", "1", "--batch-size", "2", "--backend", "wasm", "--sample-every", "0", "--samples", "2", "--sample-steps", "1", "--no-progress", "--out", join(tmp, "auto-off")], { SDC_NATIVE: "0" });
    expect(auto.status, auto.err.slice(-2000)).toBe(0);
    expect(auto.err).toMatch(/static engine unavailable \(SDC_NATIVE=0\); training with tfjs/);
  });

  it("a batch that does not fit in memory is refused before anything is allocated, saying how much it needs", () => {
    const r = sdc(["train", "generated/sd3-cpu", "--steps", "1", "--batch-size", "65536", "--backend", "wasm", "--engine", "static", "--no-progress", "--out", join(tmp, "too-big")]);
    expect(r.status, r.err).toBe(1);
    expect(r.err).toMatch(/the training step at batch 65536 needs \d+\.\d+ GiB of memory; this machine has \d+\.\d+ GiB/);
    expect(r.err).not.toMatch(/\n\s+at /);
  });
});
