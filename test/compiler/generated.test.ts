/**
 * The generated packages: the committed ones are up to date, compiling is deterministic, the
 * generated TypeScript is strictly typed (checked by tsc), and a package compiled outside the
 * repository runs.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { compileSpecFile, runCompile } from "../../cli/commands/compile.ts";
import { ROOT } from "./helpers.ts";

const committed: [spec: string, variant: string | undefined, dir: string][] = [
  ["specs/sd3.mdl", undefined, "generated/sd3"],
  ["specs/sd3-seed.mdl", undefined, "generated/sd3-seed"],
  ["specs/sd3.mdl", "tiny", "generated/sd3-tiny"],
  ["specs/sd3.mdl", "cpu", "generated/sd3-cpu"],
];

describe("committed generated packages are up to date", () => {
  it.each(committed)("%s %s -> %s", (specPath, variant, dir) => {
    const { result, dir: outDir } = compileSpecFile(specPath, { variant, outDir: "generated" });
    expect(result.diagnostics).toEqual([]);
    expect(outDir).toBe(dir);
    const files = result.files!;
    expect(files.map(([p]) => p).sort()).toEqual(["README.md", "index.ts", "ir.json", "model.ts", "package.json"]);
    const stale = files.filter(([p, c]) => !existsSync(join(dir, p)) || readFileSync(join(dir, p), "utf8") !== c).map(([p]) => join(dir, p));
    const extra = readdirSync(dir).filter((f) => !files.some(([p]) => p === f)).map((f) => `${join(dir, f)} (not generated)`);
    expect([...stale, ...extra], `stale generated files; run: node bin/sdc.mjs compile ${specPath}${variant ? ` --variant ${variant}` : ""}`).toEqual([]);
  });
});

describe("determinism", () => {
  it("compiling twice (and after other specs) gives byte-identical files", () => {
    const first = compileSpecFile("specs/sd3.mdl", { outDir: "generated" }).result.files!;
    // other compiles in between share the code generator's state: they must not leak into the output
    compileSpecFile("specs/sd3-seed.mdl", { outDir: "generated" });
    compileSpecFile("test/specs/mmdit-tiny-b.mdl", { outDir: "generated" });
    const second = compileSpecFile("specs/sd3.mdl", { outDir: "generated" }).result.files!;
    expect(second.map(([p]) => p)).toEqual(first.map(([p]) => p));
    second.forEach(([p, c], i) => expect(c, p).toBe(first[i][1]));
  });

  it("the IR's hash in index.ts is the hash of ir.json", async () => {
    const { irHash } = await import("../../compiler/index.ts");
    const files = Object.fromEntries(compileSpecFile("specs/sd3.mdl", { outDir: "generated" }).result.files!);
    expect(files["index.ts"]).toContain(`irHash: "${irHash(files["ir.json"])}"`);
  });
});

describe("generated code is strictly typed", () => {
  const tmp = mkdtempSync(join(tmpdir(), "sdc-typing-"));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it("tsc --strict accepts the correct uses and rejects each mistake at its line", () => {
    const typing = join(ROOT, "test/compiler/typing/sd3-typing.ts");
    const source = readFileSync(typing, "utf8").split("\n");
    // a copy without the @ts-expect-error directives: every line they guarded must now be an error, and no other
    const expectErrorAt = new Set<number>();
    const copy: string[] = [];
    for (const line of source) {
      if (line.trim().startsWith("// @ts-expect-error")) {
        expectErrorAt.add(copy.length + 1); // 1-based line of the next kept line
        continue;
      }
      copy.push(line.replace('"../../../generated/sd3/index.ts"', JSON.stringify(join(ROOT, "generated/sd3/index.ts"))));
    }
    expect(expectErrorAt.size).toBeGreaterThanOrEqual(10);
    const unchecked = join(tmp, "sd3-typing-unchecked.ts");
    writeFileSync(unchecked, copy.join("\n"));
    writeFileSync(
      join(tmp, "tsconfig.json"),
      JSON.stringify({
        extends: join(ROOT, "tsconfig.json"),
        compilerOptions: { strict: true, noEmit: true, typeRoots: [join(ROOT, "node_modules/@types")] },
        include: [join(ROOT, "generated/sd3/*.ts"), typing, unchecked],
      }),
    );
    const r = spawnSync(join(ROOT, "node_modules/.bin/tsc"), ["-p", join(tmp, "tsconfig.json"), "--strict", "--noEmit", "--pretty", "false"], { cwd: ROOT, encoding: "utf8", timeout: 120_000 });
    const out = r.stdout + r.stderr;
    const errors = out.split("\n").filter((l) => /\(\d+,\d+\): error TS\d+/.test(l));
    // the generated package and the checked typing file are clean (so every @ts-expect-error there is used)
    const elsewhere = errors.filter((l) => !l.includes(basename(unchecked)));
    expect(elsewhere, out).toEqual([]);
    // the unchecked copy fails exactly on the guarded lines
    const lines = new Set(errors.map((l) => Number(/\((\d+),\d+\)/.exec(l)![1])));
    expect([...lines].sort((a, b) => a - b), out).toEqual([...expectErrorAt].sort((a, b) => a - b));
    expect(r.status).not.toBe(0);
    // and for the reasons intended
    expect(out).toContain("Argument of type 'Tensor3D' is not assignable to parameter of type 'Tensor4D'");
    expect(out).toContain("Argument of type 'Tensor2D' is not assignable to parameter of type 'Tensor1D'");
    expect(out).toContain("Expected 4 arguments, but got 3");
    expect(out).toContain("Expected 4 arguments, but got 5");
    expect(out).toContain("Type 'string' is not assignable to type 'number'");
    expect(out).toContain("Property 'heads' is missing");
  });
});

describe("a package compiled outside the repository runs", () => {
  const tmp = mkdtempSync(join(tmpdir(), "sdc-outside-"));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it("sdc forward on mmdit-tiny-a compiled into a temp dir matches the reference within 1e-4", () => {
    expect(tmp.startsWith(ROOT)).toBe(false);
    let text = "";
    const sink = { write: (s: string) => ((text += s), true), isTTY: false } as unknown as NodeJS.WriteStream;
    expect(runCompile("test/specs/mmdit-tiny-a.mdl", { outDir: tmp, quiet: true }, sink, sink), text).toBe(0);
    const pkg = join(tmp, "mmdit-tiny-a");
    expect(readdirSync(pkg).sort()).toEqual(["README.md", "index.ts", "ir.json", "model.ts", "package.json"]);
    const fx = join(ROOT, "test/fixtures/mmdit-fixtures");
    // run from the temp dir, so nothing resolves through the repository's working directory
    const r = spawnSync(process.execPath, [join(ROOT, "bin/sdc.mjs"), "forward", pkg, "--weights", join(fx, "mmdit-tiny-a.weights.safetensors"), "--inputs", join(fx, "mmdit-tiny-a.io.safetensors"), "--out", join(tmp, "out.safetensors")], { cwd: tmp, encoding: "utf8", timeout: 120_000 });
    const out = r.stdout + r.stderr;
    expect(r.status, out).toBe(0);
    expect(out).toContain("output [2, 1, 32, 32]");
    const m = /max abs error vs\. .*:output = ([0-9.e+-]+)/.exec(out);
    expect(m, out).not.toBeNull();
    const err = Number(m![1]);
    expect(Number.isFinite(err)).toBe(true);
    expect(err).toBeLessThan(1e-4);
    expect(existsSync(join(tmp, "out.safetensors"))).toBe(true);
  });
});
