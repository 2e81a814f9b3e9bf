/**
 * The library search path: `import "sdc/lib/mmdit.mdl"` from a folder outside the repository,
 * folders given with --lib-path and SDC_PATH, and the diagnostic for an import found nowhere,
 * which lists every place it looked.
 */
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { runCompile } from "../../cli/commands/compile.ts";
import { SDC_LIBRARY } from "../../cli/host.ts";
import { compile, memoryHost } from "../../compiler/index.ts";
import { lines, ROOT } from "./helpers.ts";

const tmp = mkdtempSync(join(tmpdir(), "sdc-imports-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const savedPath = process.env.SDC_PATH;
afterEach(() => {
  if (savedPath === undefined) delete process.env.SDC_PATH;
  else process.env.SDC_PATH = savedPath;
});

/** the mmdit-tiny-a fixture's network, from whatever imports `imp` */
const tinySpec = (imp: string, net = "mmdit(heads: 2, head_dim: 16, depth: 2, patch: 8, channels: 1, max_grid: 4, context_dim: 24, pooled_dim: 20)") =>
  lines(`import "${imp}"`, "spec tiny {", "  data { source: mnist  image: [32, 32, 1] }", "  text { encoder: external(tokens: 5, width: 24, pooled: 20) }", `  network: ${net}`, "}", "");

function sink() {
  const s = { text: "", write: (x: string) => ((s.text += x), true), isTTY: false };
  return s;
}

/** a block library of one block, `twice`, that doubles the image and reads the other inputs */
const myLib = lines(
  "block twice(ch: int) {",
  "  forward(x: [B, H, W, ch], t: [B], c: [B, T, D], p: [B, P]) -> [B, H, W, ch] {",
  "    return 2 * x + unsqueeze(unsqueeze(unsqueeze(t + mean(mean(c, axis: 2), axis: 1) + mean(p, axis: 1), 1), 2), 3)",
  "  }",
  "}",
  "",
);

describe("the library search path", () => {
  it("`sdc/` names the library shipped with sdc: its specs/ folder", () => {
    expect(SDC_LIBRARY).toBe(join(ROOT, "specs/"));
  });

  it("a spec in a folder outside the repository imports sdc/lib/mmdit.mdl: the same network as the fixture", () => {
    const dir = join(tmp, "outside");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "tiny.mdl"), tinySpec("sdc/lib/mmdit.mdl"));
    const err = sink();
    const out = sink();
    expect(runCompile(join(dir, "tiny.mdl"), { outDir: join(dir, "gen"), json: true }, out, err), err.text).toBe(0);
    const fixture = sink();
    expect(runCompile(join(ROOT, "test/specs/mmdit-tiny-a.mdl"), { outDir: join(dir, "gen-fixture"), json: true }, fixture, err), err.text).toBe(0);
    const got = JSON.parse(out.text);
    expect(got.stats.params).toBeGreaterThan(0);
    expect(got.stats).toEqual(JSON.parse(fixture.text).stats);
    expect(got.parameters).toEqual(JSON.parse(fixture.text).parameters);
  });

  it("from the command line, run in that folder", async () => {
    const dir = join(tmp, "cli");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "tiny.mdl"), tinySpec("sdc/lib/mmdit.mdl"));
    const r = await sdc(["compile", "tiny.mdl", "--out-dir", "gen", "--quiet"], dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe("");
  });

  it("--lib-path and SDC_PATH folders are searched, --lib-path first", () => {
    const a = join(tmp, "lib-a");
    const b = join(tmp, "lib-b");
    const dir = join(tmp, "user");
    for (const d of [a, b, dir]) mkdirSync(d, { recursive: true });
    writeFileSync(join(a, "mine.mdl"), myLib);
    writeFileSync(join(b, "mine.mdl"), myLib.replace("2 * x", "3 * x"));
    writeFileSync(join(dir, "s.mdl"), tinySpec("mine.mdl", "twice(ch: 1)"));
    process.env.SDC_PATH = b;
    const out = sink();
    const err = sink();
    expect(runCompile(join(dir, "s.mdl"), { outDir: join(dir, "gen"), check: false, quiet: true, libPath: [a] }, out, err), err.text).toBe(0);
    expect(readFileSync(join(dir, "gen", "s", "model.ts"), "utf8")).toContain("F.mul(2, x)");
    // without --lib-path, SDC_PATH's copy
    expect(runCompile(join(dir, "s.mdl"), { outDir: join(dir, "gen2"), quiet: true }, out, err), err.text).toBe(0);
    expect(readFileSync(join(dir, "gen2", "s", "model.ts"), "utf8")).toContain("F.mul(3, x)");
  });

  it("an import found nowhere lists every place it looked (SDC302)", () => {
    const dir = join(tmp, "missing");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "s.mdl"), tinySpec("sdc/lib/nope.mdl"));
    process.env.SDC_PATH = join(tmp, "lib-b");
    const err = sink();
    expect(runCompile(join(dir, "s.mdl"), { outDir: join(dir, "gen"), libPath: [join(tmp, "lib-a")] }, sink(), err)).toBe(1);
    const looked = [join(dir, "sdc/lib/nope.mdl"), join(tmp, "lib-a/sdc/lib/nope.mdl"), join(tmp, "lib-b/sdc/lib/nope.mdl"), relative(process.cwd(), join(ROOT, "specs/lib/nope.mdl"))]; // shown relative to the working directory, as the other paths below it
    expect(err.text).toContain(`${join(dir, "s.mdl")}:1:1: error SDC302: import not found: "sdc/lib/nope.mdl" (looked for ${looked.join(", ")})`);
    expect(err.text).toContain("= help: imports are found relative to the importing file, then along the library search path");
  });

  it("explicit relative imports (./, ../) are never searched for elsewhere", () => {
    const host = memoryHost({ "a/main.mdl": tinySpec("./mine.mdl", "twice(ch: 1)"), "lib/mine.mdl": myLib }, { libPath: ["lib"] });
    const r = compile("a/main.mdl", host);
    const d = r.diagnostics.find((x) => x.code === "SDC302");
    expect(d?.message).toBe('import not found: "./mine.mdl" (looked for a/mine.mdl)');
    // the same import without ./ is found in the library folder
    const ok = compile("a/main.mdl", memoryHost({ "a/main.mdl": tinySpec("mine.mdl", "twice(ch: 1)"), "lib/mine.mdl": myLib }, { libPath: ["lib"] }));
    expect(ok.diagnostics).toEqual([]);
    expect([...ok.program.files.keys()]).toEqual(["lib/mine.mdl", "a/main.mdl"]);
  });
});

/** Run the CLI; resolves with its exit code and output. */
function sdc(args: string[], cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
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
