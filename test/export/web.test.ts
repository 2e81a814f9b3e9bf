/**
 * `sdc export --web`: the page in headless chromium (Debian's chromium; .ci/run installs it, and
 * this test fails without it) samples what `sdc sample` samples. A tiny spec trained 3 steps is
 * exported; in the page a prompt is typed, CFG, steps, seed and image count set, "generate"
 * clicked; the canvas's pixels are compared with the PNG of `sdc sample` for the same settings.
 * Both draw the same noise (runtime/util/rng.ts) through the same sampler arithmetic; only the
 * network's kernels differ (TensorFlow.js in the page, sdc's CPU executor in `sdc sample`), so
 * pixels may differ by rounding: at most 2 of 255 levels, the mean under 0.05.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { PNG } from "pngjs";
import { afterAll, describe, expect, it } from "vitest";
import { Browser, CHROMIUM } from "./cdp.ts";

const tmp = mkdtempSync(join(tmpdir(), "sdc-web-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true, maxRetries: 3 }));

const sdc = (...args: string[]) => {
  const r = spawnSync(process.execPath, ["bin/sdc.mjs", ...args], { encoding: "utf8", timeout: 180_000 });
  expect(r.status, `sdc ${args.join(" ")}: ${r.stderr}`).toBe(0);
  return r;
};

describe("sdc export --web", () => {
  it("samples in headless chromium what sdc sample samples for the same prompt, CFG, steps and seed", async () => {
    expect(existsSync(CHROMIUM), `${CHROMIUM} is needed for this test (apt-get install chromium; .ci/run installs it)`).toBe(true);
    const run = join(tmp, "run");
    const web = join(tmp, "web");
    sdc("train", "generated/sd3-tiny", "--steps", "3", "--batch-size", "8", "--out", run, "--no-progress");
    sdc("export", run, "--generated", "generated/sd3-tiny", "--web", web);
    const [prompt, cfg, steps, seed, n] = ["a seven", "3", "4", "5", "4"];
    const png = join(tmp, "sample.png");
    sdc("sample", "generated/sd3-tiny", "--checkpoint", run, "--prompt", prompt, "--n", n, "--cfg", cfg, "--steps", steps, "--seed", seed, "--out", png);
    const want = PNG.sync.read(readFileSync(png));

    const browser = new Browser(join(tmp, "profile"));
    try {
      const page = await browser.open(`file://${resolve(web, "index.html")}`);
      await browser.until(page, `document.getElementById("status")?.textContent === "ready"`, 60_000);
      // type the prompt as a user would; set the numbers
      await browser.eval(page, `(() => { const p = document.getElementById("prompt"); p.focus(); p.select(); })()`);
      await browser.send("Input.insertText", { text: prompt }, page);
      await browser.eval(page, `(() => { for (const [id, v] of ${JSON.stringify([["cfg", cfg], ["steps", steps], ["seed", seed], ["count", n]])}) document.getElementById(id).value = v; document.getElementById("generate").click(); })()`);
      await browser.until(page, `document.getElementById("status").dataset.done === "1"`, 120_000);
      const status: string = await browser.eval(page, `document.getElementById("status").textContent`);
      const backend: string = await browser.eval(page, `document.getElementById("backend").textContent`);
      const typed: string = await browser.eval(page, `document.getElementById("prompt").value`);
      expect(typed).toBe(prompt);
      expect(status).toMatch(/^4 images, 4 euler steps, CFG 3: \d+\.\d\d s$/);
      const canvas: { w: number; h: number; px: number[] } = await browser.eval(page, `(() => { const c = document.getElementById("grid"); const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data; return { w: c.width, h: c.height, px: Array.from(d) }; })()`);
      expect([canvas.w, canvas.h]).toEqual([want.width, want.height]);
      let worst = 0;
      let sum = 0;
      for (let i = 0; i < canvas.w * canvas.h; i++) {
        const e = Math.abs(canvas.px[i * 4] - want.data[i * 4]);
        worst = Math.max(worst, e);
        sum += e;
      }
      const mean = sum / (canvas.w * canvas.h);
      console.log(`page (${backend}): ${status}; |canvas - sdc sample| max ${worst}, mean ${mean.toFixed(4)} levels of 255 over ${canvas.w}x${canvas.h} pixels`);
      expect(worst).toBeLessThanOrEqual(2);
      expect(mean).toBeLessThan(0.05);
    } finally {
      await browser.close();
    }
  });
});
