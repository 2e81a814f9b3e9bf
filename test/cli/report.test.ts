/**
 * `sdc report`: one self-contained HTML page for a run or an ablation, loaded in a real browser
 * (Debian's chromium, headless; .ci/run installs it: this test fails without it). The page's own
 * check (every image decoded, every chart drawn, no script error) must say "ok" in the DOM.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeReport } from "../../cli/commands/report.ts";
import { runTrain } from "../../cli/commands/train.ts";
import { initBackend } from "../../runtime/backend.ts";
import { analyzeSeeds } from "../../runtime/eval/seeds.ts";
import type { UnitResult } from "../../runtime/eval/sweep.ts";

const tmp = mkdtempSync(join(tmpdir(), "sdc-report-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const CHROMIUM = process.env.SDC_CHROMIUM ?? "/usr/bin/chromium";

/** Load a page in headless chromium: its DOM after load, and a screenshot. */
function browse(html: string, screenshot: string): string {
  const flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,1800"];
  const profile = (n: string) => `--user-data-dir=${mkdtempSync(join(tmp, `chromium-${n}-`))}`;
  const dom = spawnSync(CHROMIUM, [...flags, profile("dom"), "--virtual-time-budget=5000", "--dump-dom", `file://${html}`], { encoding: "utf8", timeout: 90_000 });
  expect(dom.error, `${CHROMIUM} is needed for this test (apt-get install chromium; .ci/run installs it)`).toBeUndefined();
  expect(dom.status, dom.stderr).toBe(0);
  const shot = spawnSync(CHROMIUM, [...flags, profile("shot"), `--screenshot=${screenshot}`, `file://${html}`], { encoding: "utf8", timeout: 90_000 });
  expect(shot.status, shot.stderr).toBe(0);
  expect(statSync(screenshot).size).toBeGreaterThan(20_000);
  expect(readFileSync(screenshot).subarray(1, 4).toString()).toBe("PNG");
  return dom.stdout;
}

function selfContained(html: string): void {
  expect(html).not.toMatch(/(src|href)=["']?(https?:)?\/\//i);
  expect(html).not.toMatch(/@import|url\(\s*["']?http/i);
  expect(html).toContain("default-src 'none'"); // the page itself forbids any fetch
}

describe("sdc report", () => {
  const run = join(tmp, "run");
  beforeAll(async () => {
    await initBackend("wasm", { log: () => {} });
    expect(await runTrain("generated/sd3-tiny", { steps: 4, batch: 8, backend: "wasm", sampleEvery: 2, checkpointEvery: 0, samples: 4, sampleSteps: 1, progress: false, out: run, log: () => {} })).toBe(0);
    // an eval report beside the run, as `sdc eval RUN --out RUN/eval.json` writes it (a real one, from the docs)
    copyFileSync("docs/ablation-example/tiny/eval.json", join(run, "eval.json"));
  });

  it("a run: loss curves, the grids over the steps with their prompts, eval per CFG; renders in chromium", () => {
    const out = writeReport(run);
    const html = readFileSync(out, "utf8");
    selfContained(html);
    expect(html).toContain("training and validation loss");
    expect(html.match(/<img /g)).toHaveLength(2); // the grids at steps 2 and 4
    expect(html).toContain("<figcaption>step 2<pre>"); // each grid with its step and prompts
    expect(html).toContain(readFileSync(join(run, "samples", "step-000004.txt"), "utf8").trim().split("\n")[0]);
    expect(html).toContain('<table class="eval">');
    const dom = browse(out, join(tmp, "run.png"));
    expect(dom).toMatch(/<body data-rendered="ok" data-images="2" data-charts="2">/);
    expect(dom).toMatch(/<polyline class="series" data-series="loss"/);
  });

  it("an ablation: the table, the curves of all units, their grids side by side; renders in chromium", () => {
    const dir = join(tmp, "ablation");
    spawnSync("cp", ["-r", "docs/ablation-example", dir]);
    const out = writeReport(dir);
    const html = readFileSync(out, "utf8");
    selfContained(html);
    expect(html).toContain('<table class="results">');
    for (const unit of ["tiny", "tiny_wide"]) expect(html).toContain(`data-series="${unit}"`);
    const dom = browse(out, join(tmp, "ablation.png"));
    // 2 grids + the ablation's own plot; training loss, validation loss, accuracy against parameters
    expect(dom).toMatch(/<body data-rendered="ok" data-images="3" data-charts="3">/);
  });

  it("an ablation over seeds: each arm's mean and interval and the tests between arms (arms.json)", () => {
    const dir = join(tmp, "ablation-seeds");
    spawnSync("cp", ["-r", "docs/ablation-example", dir]);
    // the two units as two seeds of one arm, and a second arm shifted: a real analysis of these numbers
    const units = JSON.parse(readFileSync(join(dir, "results.json"), "utf8")) as UnitResult[];
    const arms = analyzeSeeds([...units.map((u, i) => ({ ...u, group: "a", inputs: { ...u.inputs, seed: i } })), ...units.map((u, i) => ({ ...u, id: `b${i}`, group: "b", valLoss: u.valLoss + 1, inputs: { ...u.inputs, seed: i } }))]);
    writeFileSync(join(dir, "arms.json"), JSON.stringify(arms));
    const html = readFileSync(writeReport(dir), "utf8");
    expect(html).toContain('<table class="arms">');
    expect(html).toContain("Welch's two-sided t-test");
    expect(html).toMatch(/<td>val_loss<\/td><td>a<\/td><td>b<\/td><td>-1\.0000<\/td>/);
    const dom = browse(join(dir, "report.html"), join(tmp, "ablation-seeds.png"));
    expect(dom).toMatch(/<body data-rendered="ok"/);
  });

  it("refuses a folder that is neither", () => {
    expect(() => writeReport(mkdtempSync(join(tmp, "empty-")))).toThrow(/neither a run \(no metrics.jsonl\) nor an ablation/);
    expect(() => writeReport(join(tmp, "no-such"))).toThrow(/not a folder/);
  });
});
