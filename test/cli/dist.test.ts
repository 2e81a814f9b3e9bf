/**
 * The precompiled CLI (scripts/build.mjs -> dist/): built from the sources as they are it is
 * fresh and runs; any changed, missing or unlisted state makes it stale, and bin/sdc.mjs then
 * runs the TypeScript sources, so no test (and no user) runs code older than its sources.
 */
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { validateIr } from "../../ir/validate.ts";
// @ts-expect-error: plain JavaScript module without types
import { distState } from "../../bin/dist.mjs";

const ROOT = process.cwd();
// inside the repository, so the bundles' external packages resolve from node_modules
const OUT = join(ROOT, ".scratch", `dist-test-${process.pid}`);
type State = { fresh: boolean; reason?: string };
const state = (dir: string): State => distState(ROOT, dir);

beforeAll(() => {
  mkdirSync(join(ROOT, ".scratch"), { recursive: true });
  const r = spawnSync(process.execPath, ["scripts/build.mjs", "--outdir", OUT, "--quiet"], { encoding: "utf8" });
  expect(r.status, r.stderr).toBe(0);
});
afterAll(() => rmSync(OUT, { recursive: true, force: true }));

describe("dist/ freshness", () => {
  it("a fresh build is fresh and lists the sources it bundled", () => {
    expect(state(OUT)).toEqual({ fresh: true });
    const m = JSON.parse(readFileSync(join(OUT, "manifest.json"), "utf8"));
    for (const f of ["cli/main.ts", "compiler/parser.ts", "runtime/index.ts", "ir/ir.schema.json", "package-lock.json"]) expect(Object.keys(m.inputs)).toContain(f);
  });

  const cases: [string, (m: { inputs: Record<string, { sha256: string; size: number; mtimeMs: number }> }) => void, State | RegExp][] = [
    ["an edited source (other content)", (m) => Object.assign(m.inputs["compiler/parser.ts"], { sha256: "0".repeat(64), mtimeMs: 1 }), /compiler\/parser\.ts changed/],
    ["a touched source with the same content", (m) => Object.assign(m.inputs["compiler/parser.ts"], { mtimeMs: 1 }), { fresh: true }],
    ["a source that is gone", (m) => (m.inputs["compiler/no-such-file.ts"] = { sha256: "0", size: 1, mtimeMs: 1 }), /no-such-file\.ts is gone/],
    ["an empty manifest", (m) => (m.inputs = {}), /lists no sources/],
  ];
  it.each(cases)("%s", (_, edit, want) => {
    const dir = `${OUT}-case`;
    rmSync(dir, { recursive: true, force: true });
    cpSync(OUT, dir, { recursive: true });
    const m = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"));
    edit(m);
    writeFileSync(join(dir, "manifest.json"), JSON.stringify(m));
    const s = state(dir);
    rmSync(dir, { recursive: true, force: true });
    if (want instanceof RegExp) {
      expect(s.fresh).toBe(false);
      expect(s.reason).toMatch(want);
    } else expect(s).toEqual(want);
  });

  it("no manifest: stale", () => {
    expect(state(join(ROOT, ".scratch", "no-such-dist"))).toMatchObject({ fresh: false, reason: expect.stringMatching(/manifest\.json is missing/) });
  });

  it("the bundled CLI checks sd3 like the sources do", () => {
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", `const { main } = await import(${JSON.stringify(join(OUT, "main.mjs"))}); process.exitCode = await main(["compile", "specs/sd3.mdl", "--no-write", "--json"]);`], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).stats.params).toBe(64_445_760);
  });

  it("the precompiled IR validator of dist/ judges IRs as the sources' ajv does", () => {
    const ir = JSON.parse(readFileSync("generated/sd3-tiny/ir.json", "utf8"));
    const bad = [ir, { ...ir, sdc: 2 }, { ...ir, train: { ...ir.train, batch: "64" } }, { ...ir, modules: undefined, flow: { ...ir.flow, sampler: "dpm" } }, {}, null, []];
    const want = bad.map((x) => validateIr(x));
    expect(want[0]).toEqual([]);
    expect(want.slice(1).every((e) => e.length > 0)).toBe(true);
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", `const { validateIr } = await import(${JSON.stringify(join(OUT, "compiler.mjs"))}); let s = ""; for await (const c of process.stdin) s += c; console.log(JSON.stringify(JSON.parse(s).map((x) => validateIr(x))));`], { input: JSON.stringify(bad), encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(want);
    expect(readFileSync(join(OUT, "compiler.mjs"), "utf8") + readdirSync(join(OUT, "chunks")).map((f) => readFileSync(join(OUT, "chunks", f), "utf8")).join("")).toMatch(/function validate10\(/); // ajv standalone code, compiled at build time
  });

  it("bin/sdc.mjs runs dist/ exactly when it is fresh", () => {
    const r = spawnSync(process.execPath, ["bin/sdc.mjs", "--version"], { encoding: "utf8", env: { ...process.env, SDC_DEBUG_START: "1" } });
    expect(r.status).toBe(0);
    const fresh = state(join(ROOT, "dist")).fresh;
    expect(r.stderr).toMatch(fresh ? /running dist\// : /running the sources through tsx/);
    const src = spawnSync(process.execPath, ["bin/sdc.mjs", "--version"], { encoding: "utf8", env: { ...process.env, SDC_DEBUG_START: "1", SDC_FROM_SOURCE: "1" } });
    expect(src.stderr).toMatch(/running the sources through tsx \(SDC_FROM_SOURCE=1\)/);
  });
});
