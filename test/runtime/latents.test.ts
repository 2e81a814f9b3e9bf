/**
 * Latent datasets: the committed specs/data/mnist-latents.safetensors decodes back to the MNIST
 * digits it was made from; malformed files are refused with what and where; the 16-channel
 * latent spec (specs/sd3-latent.mdl, variant tiny) compiles and trains to the same losses on both
 * engines, its sample grids drawn through the decoder as 32x32 digits.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { DataError } from "../../runtime/data/dataset.ts";
import { latentDatasetFromFile, loadLatents } from "../../runtime/data/latents.ts";
import { loadMnist } from "../../runtime/data/mnist.ts";
import { decodePng } from "../../runtime/image/png.ts";
import { readSafetensors, type TensorToWrite, writeSafetensors } from "../../runtime/io/safetensors.ts";

vi.setConfig({ testTimeout: 180_000 });
const tmp = mkdtempSync(join(tmpdir(), "sdc-latents-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const FILE = "specs/data/mnist-latents.safetensors";

describe("the committed latent dataset", () => {
  it("512 latents [8, 8, 16] with digit labels that decode to the MNIST training digits (to 1e-5)", () => {
    const ds = loadLatents(FILE, [8, 8, 16]);
    const mnist = loadMnist({ split: "train", size: 32 });
    expect(ds.size).toBe(512);
    expect(ds.decoder!.dims(8, 8)).toEqual([32, 32, 1]);
    const z = new Float32Array(8 * 8 * 16);
    const img = new Float32Array(32 * 32);
    let worst = 0;
    for (const i of [0, 1, 77, 511]) {
      ds.image(i, z, 0);
      mnist.image(i, img, 0);
      const px = ds.decoder!.decode(z, 1, 8, 8);
      for (let k = 0; k < img.length; k++) worst = Math.max(worst, Math.abs(px[k] - img[k]));
      expect(ds.label(i)).toBe(mnist.label(i));
      expect(["0123456789"[ds.label(i)], ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"][ds.label(i)]]).toContain(ds.caption(i, { int: () => 0 } as never));
    }
    expect(worst).toBeLessThan(1e-5);
    // a latent is not the image: the channels mix the pixels of a patch
    ds.image(0, z, 0);
    expect(new Set(Array.from(z.subarray(0, 16), (v) => v.toFixed(3))).size).toBeGreaterThan(1);
  });
});

describe("malformed latent files are refused, naming what is wrong", () => {
  const base = (): Record<string, TensorToWrite> => ({ latents: { shape: [2, 8, 8, 16], data: new Float32Array(2 * 8 * 8 * 16) }, labels: { shape: [2], data: new Int32Array([3, 4]) } });
  const rows: [string, (t: Record<string, TensorToWrite>) => void, [number, number, number], RegExp, Record<string, string>?][] = [
    ["no latents", (t) => delete t.latents, [8, 8, 16], /no tensor 'latents'/],
    ["no labels", (t) => delete t.labels, [8, 8, 16], /no tensor 'labels'/],
    ["another shape than the spec's", () => {}, [8, 8, 4], /'latents' is \[2, 8, 8, 16\], but the spec's data.image is \[8, 8, 4\]/],
    ["integer latents", (t) => (t.latents = { shape: [2, 8, 8, 16], data: new Int32Array(2048) }), [8, 8, 16], /'latents' is I32/],
    ["a label that is no digit", (t) => (t.labels = { shape: [2], data: new Int32Array([3, 12]) }), [8, 8, 16], /labels\[1\] = 12 is not a digit/],
    ["one label too few", (t) => (t.labels = { shape: [1], data: new Int32Array([3]) }), [8, 8, 16], /'labels' is \[1\], expected \[2\]/],
    ["a NaN", (t) => ((t.latents.data as Float32Array)[5] = NaN), [8, 8, 16], /non-finite value at element 5/],
    ["a decoder of the wrong shape", (t) => (t["decoder.weight"] = { shape: [16, 4], data: new Float32Array(64) }), [8, 8, 16], /'decoder.weight' must be float \[16, 16\]/, { decoder_factor: "4", decoder_channels: "1" }],
    ["a decoder without its channel count", (t) => (t["decoder.weight"] = { shape: [16, 16], data: new Float32Array(256) }), [8, 8, 16], /decoder_channels must be 1 or 3/, { decoder_factor: "4" }],
  ];
  it.each(rows)("%s", (_, edit, dims, msg, meta) => {
    const t = base();
    edit(t);
    const file = readSafetensors(writeSafetensors(t, meta));
    expect(() => latentDatasetFromFile(file, "x.safetensors", dims)).toThrow(DataError);
    expect(() => latentDatasetFromFile(file, "x.safetensors", dims)).toThrow(msg);
  });
  it("a missing file names the path", () => {
    expect(() => loadLatents(join(tmp, "nope.safetensors"), [8, 8, 16])).toThrow(/latent dataset not found: .*nope.safetensors/);
  });
});

describe("a 16-channel latent spec", () => {
  const sdc = (args: string[]) => spawnSync(process.execPath, ["bin/sdc.mjs", ...args], { encoding: "utf8", timeout: 150_000 });
  it("compiles, trains identically on both engines, and draws its grids through the decoder", () => {
    const c = sdc(["compile", "specs/sd3-latent.mdl", "--variant", "tiny", "--out-dir", join(tmp, "gen")]);
    expect(c.status, c.stderr).toBe(0);
    const ir = JSON.parse(readFileSync(join(tmp, "gen", "sd3-latent-tiny", "ir.json"), "utf8"));
    expect(ir.data).toMatchObject({ source: "latents", channels: 16, height: 8, width: 8 });
    const losses: Record<string, number[]> = {};
    for (const engine of ["tfjs", "static"]) {
      const out = join(tmp, engine);
      const r = sdc(["train", join(tmp, "gen", "sd3-latent-tiny"), "--steps", "3", "--batch-size", "8", "--engine", engine, "--backend", "wasm", "--sample-every", "0", "--samples", "4", "--sample-steps", "2", "--no-progress", "--out", out]);
      expect(r.status, r.stderr.slice(-2000)).toBe(0);
      losses[engine] = readFileSync(join(out, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l)).filter((m) => m.loss !== undefined).map((m) => m.loss);
      const png = decodePng(readFileSync(join(out, "samples", "step-000003.png")));
      expect(png.c).toBe(1);
      expect(png.w).toBeGreaterThanOrEqual(2 * 32); // 2x2 tiles of 32x32 pixels, not 8x8 latents
    }
    // sdc eval judges the decoded samples (the judge takes 32x32x1 digits, not 8x8x16 latents)
    const ev = sdc(["eval", join(tmp, "static"), "--generated", join(tmp, "gen", "sd3-latent-tiny"), "--per-digit", "1", "--cfg", "1", "--steps", "2", "--reference", "20", "--backend", "wasm", "--json"]);
    expect(ev.status, ev.stderr.slice(-2000)).toBe(0);
    const report = JSON.parse(ev.stdout);
    expect(report.cfg[0].images).toBe(10);
    expect(Number.isFinite(report.cfg[0].frechet)).toBe(true);
    expect(losses.static.length).toBe(losses.tfjs.length);
    expect(losses.static.length).toBeGreaterThanOrEqual(1);
    losses.tfjs.forEach((l, i) => expect(Math.abs(losses.static[i] - l)).toBeLessThan(1e-4 * Math.max(1, l)));
  });
});
