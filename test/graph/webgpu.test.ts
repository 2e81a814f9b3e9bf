/**
 * The static engine's WGSL kernels on a real WebGPU adapter: Mesa's lavapipe (a Vulkan driver
 * on the CPU) under Dawn, set up by scripts/lavapipe.sh (.ci/run does it). Every kernel of the
 * tiny spec's step against the CPU interpreter under each GEMM tiling and split-K; `sdc train
 * --engine static` against the tfjs engine for the same seed; a static checkpoint resumed by the
 * tfjs engine.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { PNG } from "pngjs";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

// software Vulkan compiles every shader with LLVM on first use: give these tests room on slow CI
vi.setConfig({ testTimeout: 400_000 });

const cache = process.env.SDC_LAVAPIPE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "sdc-lavapipe");
const available = existsSync(join(cache, "root", ".ok"));
if (!available) console.warn(`test/graph/webgpu.test.ts: no software WebGPU adapter (run scripts/lavapipe.sh setup); the WGSL kernels are not tested here`);

const tmp = mkdtempSync(join(tmpdir(), "sdc-webgpu-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Run node under lavapipe (the software adapter) or plainly (wasm). */
function node(args: string[], env: Record<string, string> = {}, gpu = true) {
  const cmd = gpu ? "scripts/lavapipe.sh" : process.execPath;
  const argv = gpu ? ["node", ...args] : args;
  const r = spawnSync(cmd, argv, { encoding: "utf8", env: { ...process.env, ...env }, timeout: 240_000 });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

/**
 * The language's architectures and primitives on the WGSL kernels: each spec's step (one kernel
 * at a time) against the CPU interpreter, compiled into a temp dir. The committed DiT, MMDiT-X,
 * Flux, HDiT and latent specs (tiny variants) and the test specs of the newer primitives and inputs
 * (conv-windows: im2col and col2im on odd kernels, strides and paddings).
 */
const LANGUAGE_SPECS: [string, string[], string][] = [
  ["specs/dit.mdl", ["--variant", "tiny"], "dit-tiny"],
  ["specs/mmditx.mdl", ["--variant", "tiny"], "mmditx-tiny"],
  ["specs/flux.mdl", ["--variant", "tiny"], "flux-tiny"],
  ["specs/hdit.mdl", ["--variant", "tiny"], "hdit-tiny"],
  ["specs/sd3-latent.mdl", ["--variant", "tiny"], "sd3-latent-tiny"],
  ["test/specs/elementwise.mdl", [], "elementwise"],
  ["test/specs/tensor-ops.mdl", [], "tensor-ops"],
  ["test/specs/rope-gqa.mdl", [], "rope-gqa"],
  ["test/specs/labels.mdl", [], "labels"],
  ["test/specs/masked.mdl", [], "masked"],
  ["test/specs/conv-windows.mdl", [], "conv-windows"],
];

describe.skipIf(!available)("the language's specs on WebGPU (lavapipe)", () => {
  const gen = join(tmp, "lang");
  beforeAll(() => {
    for (const [spec, flags] of LANGUAGE_SPECS) {
      const c = node(["bin/sdc.mjs", "compile", spec, ...flags, "--out-dir", gen], {}, false);
      expect(c.status, c.err.slice(-2000)).toBe(0);
    }
  });

  it.each(LANGUAGE_SPECS)("%s %j: every kernel of the step matches the CPU interpreter", (_, __, name) => {
    const dir = join(gen, name);
    const r = node(["--import", "tsx", "bench/graph-check.ts", "--generated", dir, "--batch", "2"]);
    expect(r.status, r.err.slice(-2000)).toBe(0);
    const res = JSON.parse(r.out.trim().split("\n").pop()!);
    expect(res.worstNodeRelError).toBeLessThan(1e-3);
    expect(res.worstParamAbsError).toBeLessThan(1e-5);
    expect(Math.abs(res.loss - res.lossCpu)).toBeLessThan(1e-5);
  });

  it.each(LANGUAGE_SPECS.slice(0, 4))("%s %j: sdc train on WebGPU tracks the tfjs engine for the same seed", (_, __, name) => {
    const dir = join(gen, name);
    const losses: Record<string, number[]> = {};
    for (const engine of ["tfjs", "static"]) {
      const out = join(tmp, `lang-${name}-${engine}`);
      const r = node(["bin/sdc.mjs", "train", dir, "--steps", "3", "--batch-size", "4", "--seed", "3", "--engine", engine, "--backend", engine === "static" ? "webgpu" : "wasm", "--sample-every", "0", "--samples", "4", "--sample-steps", "2", "--no-progress", "--out", out], {}, engine === "static");
      expect(r.status, r.err.slice(-2000)).toBe(0);
      losses[engine] = readFileSync(join(out, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l)).flatMap((m) => [m.loss, m.val_loss].filter((v) => v !== undefined));
    }
    expect(losses.static.length).toBeGreaterThanOrEqual(2);
    expect(losses.static.length).toBe(losses.tfjs.length);
    losses.tfjs.forEach((l, i) => expect(Math.abs(losses.static[i] - l)).toBeLessThan(1e-3 * Math.max(1, l)));
  });
});

describe.skipIf(!available)("static engine on WebGPU (lavapipe)", () => {
  it.each<[string, Record<string, string>, string[]]>([
    ["per-shape tiling", {}, []],
    ["128 tile", { SDC_GEMM_TILE: "128" }, []],
    ["32x64 tile, split-K 2", { SDC_GEMM_TILE: "32x64", SDC_GEMM_SPLIT: "2" }, []],
    ["32 tile, split-K 3", { SDC_GEMM_TILE: "32", SDC_GEMM_SPLIT: "3" }, []],
    ["128 tile with prefetch, split-K 2", { SDC_GEMM_TILE: "128p", SDC_GEMM_SPLIT: "2" }, []],
    ["no fusion", {}, ["--no-fuse"]],
    ["recycled buffers (loss, gradients, parameters)", {}, ["--memory", "reuse"]],
    ["Adam with L2 weight decay", {}, ["--weight-decay", "0.1"]],
    ["AdamW (decoupled weight decay)", {}, ["--weight-decay", "0.1", "--decoupled"]],
  ])("every kernel matches the CPU interpreter: %s", (_, env, extra) => {
    const r = node(["--import", "tsx", "bench/graph-check.ts", "--generated", "generated/sd3-tiny", "--batch", "3", ...extra], env);
    expect(r.status, r.err.slice(-2000)).toBe(0);
    const res = JSON.parse(r.out.trim().split("\n").pop()!);
    expect(res.worstNodeRelError).toBeLessThan(1e-3);
    expect(res.worstParamAbsError).toBeLessThan(1e-5);
    expect(Math.abs(res.loss - res.lossCpu)).toBeLessThan(1e-5);
    expect(res.kernels).toBeGreaterThan(100);
  });

  it("the UNet's kernels (im2col convolutions, transposed convolution, group norm, upsampling, dropout) match the CPU interpreter", () => {
    const c = node(["bin/sdc.mjs", "compile", "test/specs/unet-tiny.mdl", "--out-dir", join(tmp, "unet"), "-q"], {}, false);
    expect(c.status, c.err).toBe(0);
    const r = node(["--import", "tsx", "bench/graph-check.ts", "--generated", join(tmp, "unet", "unet-tiny"), "--batch", "2"]);
    expect(r.status, r.err.slice(-2000)).toBe(0);
    const res = JSON.parse(r.out.trim().split("\n").pop()!);
    expect(res.worstNodeRelError).toBeLessThan(1e-3);
    expect(res.worstParamAbsError).toBeLessThan(1e-5);
    expect(Math.abs(res.loss - res.lossCpu)).toBeLessThan(1e-5);
  });

  const train = (engine: string, out: string, extra: string[] = []) =>
    node(["bin/sdc.mjs", "train", "generated/sd3-tiny", "--steps", "12", "--batch-size", "8", "--seed", "3", "--engine", engine, "--backend", engine === "static" ? "webgpu" : "wasm", "--sample-every", "0", "--checkpoint-every", "6", "--samples", "4", "--sample-steps", "2", "--no-progress", "--out", out, ...extra], {}, engine === "static");
  const metrics = (out: string) => readFileSync(join(out, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));

  it("sdc train --engine static tracks the tfjs engine for the same seed", () => {
    const a = train("static", join(tmp, "static"));
    expect(a.status, a.err.slice(-2000)).toBe(0);
    expect(a.err).toMatch(/engine: static graph: \d+ kernels per step/);
    const b = train("tfjs", join(tmp, "tfjs"));
    expect(b.status, b.err.slice(-2000)).toBe(0);
    const ma = metrics(join(tmp, "static"));
    const mb = metrics(join(tmp, "tfjs"));
    expect(ma.length).toBe(mb.length);
    for (let i = 0; i < ma.length; i++) {
      for (const k of ["loss", "grad_norm", "val_loss"]) {
        if (mb[i][k] === undefined) continue;
        expect(Math.abs(ma[i][k] - mb[i][k]), `${k} at step ${mb[i].step}`).toBeLessThan(1e-4 * Math.max(1, Math.abs(mb[i][k])));
      }
    }
    expect(JSON.parse(readFileSync(join(tmp, "static", "summary.json"), "utf8")).engine).toBe("static");
    // the grid (EMA weights, CFG, Euler) sampled by the static forward pass vs tfjs: same pixels to rounding
    const png = (dir: string) => PNG.sync.read(readFileSync(join(dir, "samples", "step-000012.png"))).data;
    const [pa, pb] = [png(join(tmp, "static")), png(join(tmp, "tfjs"))];
    expect(pa.length).toBe(pb.length);
    let worst = 0;
    for (let i = 0; i < pa.length; i++) worst = Math.max(worst, Math.abs(pa[i] - pb[i]));
    expect(worst).toBeLessThanOrEqual(2);
  });

  it("a static-engine checkpoint resumes on the tfjs engine where the straight run ends", () => {
    const half = join(tmp, "half");
    const a = node(["bin/sdc.mjs", "train", "generated/sd3-tiny", "--steps", "6", "--batch-size", "8", "--seed", "3", "--engine", "static", "--backend", "webgpu", "--sample-every", "0", "--checkpoint-every", "6", "--samples", "4", "--sample-steps", "2", "--no-progress", "--out", half]);
    expect(a.status, a.err.slice(-2000)).toBe(0);
    const b = train("tfjs", half, ["--resume", join(half, "checkpoints", "step-000006")]);
    expect(b.status, b.err.slice(-2000)).toBe(0);
    const straight = metrics(join(tmp, "tfjs")).filter((m) => m.loss !== undefined).pop();
    const resumed = metrics(half).filter((m) => m.loss !== undefined).pop();
    expect(resumed.step).toBe(12);
    expect(Math.abs(resumed.loss - straight.loss)).toBeLessThan(1e-4);
  });

  it("a tfjs-engine checkpoint resumes on the static engine where the straight run ends", () => {
    const out = join(tmp, "tfjs-then-static");
    const b = train("static", out, ["--resume", join(tmp, "tfjs", "checkpoints", "step-000006")]);
    expect(b.status, b.err.slice(-2000)).toBe(0);
    const straight = metrics(join(tmp, "tfjs")).filter((m) => m.loss !== undefined).pop();
    const resumed = metrics(out).filter((m) => m.loss !== undefined).pop();
    expect(resumed.step).toBe(12);
    expect(Math.abs(resumed.loss - straight.loss)).toBeLessThan(1e-4);
  });

  it("sdc sample and sdc eval run the static forward pass on webgpu and agree with tfjs", () => {
    const run = join(tmp, "static");
    const sample = (backend: string, out: string) => node(["bin/sdc.mjs", "sample", "generated/sd3-tiny", "--checkpoint", run, "--prompt", "seven", "--prompt", "2", "--n", "2", "--steps", "3", "--sampler", "heun", "--backend", backend, "--out", out], {}, backend === "webgpu");
    for (const [b, f] of [["webgpu", "gpu.png"], ["wasm", "cpu.png"]]) {
      const r = sample(b, join(tmp, f));
      expect(r.status, r.err.slice(-2000)).toBe(0);
    }
    const [pa, pb] = ["gpu.png", "cpu.png"].map((f) => PNG.sync.read(readFileSync(join(tmp, f))).data);
    let worst = 0;
    for (let i = 0; i < pa.length; i++) worst = Math.max(worst, Math.abs(pa[i] - pb[i]));
    expect(worst).toBeLessThanOrEqual(2);

    const evalRun = (backend: string) => {
      const r = node(["bin/sdc.mjs", "eval", run, "--per-digit", "1", "--cfg", "1,4", "--steps", "2", "--reference", "100", "--backend", backend, "--json"], {}, backend === "webgpu");
      expect(r.status, r.err.slice(-2000)).toBe(0);
      return JSON.parse(r.out);
    };
    const [ea, eb] = [evalRun("webgpu"), evalRun("wasm")];
    expect(ea.backend).toBe("webgpu");
    expect(Math.abs(ea.valLoss - eb.valLoss)).toBeLessThan(1e-4);
    ea.cfg.forEach((c: { accuracy: number; frechet: number }, i: number) => {
      expect(c.accuracy).toBe(eb.cfg[i].accuracy);
      expect(Math.abs(c.frechet - eb.cfg[i].frechet)).toBeLessThan(1e-3 * eb.cfg[i].frechet);
    });
  });

  it("a batch too large for the device is a clear error (exit 1), not a crash", () => {
    const r = node(["bin/sdc.mjs", "train", "generated/sd3-tiny", "--steps", "1", "--batch-size", "40000", "--backend", "webgpu", "--engine", "static", "--no-progress", "--out", join(tmp, "too-big")]);
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/more than this device lets one kernel address \(\d+ MiB\): try a smaller --batch-size/);
    expect(r.err).not.toMatch(/\n\s+at /);
  });

  it("frozen text encoders (sd3_pretrained) train on webgpu with both engines like on the CPU", () => {
    const root = join(tmp, "pretrained");
    const run = (engine: string, backend: string) => {
      const r = node(["--import", "tsx", "test/graph/scripts/train-pretrained.ts", engine, backend, join(tmp, `pt-${engine}-${backend}`), root], {}, backend === "webgpu");
      expect(r.status, r.err.slice(-2000)).toBe(0);
      const res = JSON.parse(r.out.trim().split("\n").pop()!);
      expect(res.exit).toBe(0);
      return (res.metrics as string).trim().split("\n").map((l) => JSON.parse(l));
    };
    const cpu = run("tfjs", "cpu");
    for (const m of [run("static", "webgpu"), run("tfjs", "webgpu")]) {
      expect(m.length).toBe(cpu.length);
      m.forEach((x, i) => {
        for (const k of ["loss", "val_loss"]) if (cpu[i][k] !== undefined) expect(Math.abs(x[k] - cpu[i][k])).toBeLessThan(1e-4);
      });
    }
  });

  it("the WGSL forms of the layout and elementwise primitives (min, max, ge, keep, drop, pow; where, clamp, pad, repeat) match the CPU interpreter", () => {
    const r = node(["--import", "tsx", "test/graph/scripts/tensor-ops-webgpu.ts"]);
    expect(r.status, r.err.slice(-2000)).toBe(0);
    const res = JSON.parse(r.out.trim().split("\n").pop()!);
    expect(res.worst, res.worstAt).toBeLessThan(1e-5);
    expect(res.nodes).toBeGreaterThan(15);
    expect(res.gradNodes).toBe(2); // a and c (b is only where's mask: no gradient)
  });
});
