/**
 * The CLI's output rules: exit codes (missing input file 1, usage 2, a bare `sdc` is usage),
 * NO_COLOR, one backend line and no foreign Dawn warning on a CPU run, the progress bar's last
 * figures equal to the summary line's, "1 image", and `--json` output that is JSON only.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { runCompile, useColor } from "../../cli/commands/compile.ts";
import { main } from "../../cli/main.ts";
import { SDC_VERSION } from "../../cli/version.ts";

const GEN = "generated/sd3-tiny";
const tmp = mkdtempSync(join(tmpdir(), "sdc-output-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const sdc = (args: string[], env: Record<string, string> = {}) => spawnSync(process.execPath, ["bin/sdc.mjs", ...args], { encoding: "utf8", env: { ...process.env, ...env } });

/** Run the CLI in this process (no tsx start-up per case), collecting stderr. */
async function inProcess(argv: string[]): Promise<{ code: number; stderr: string }> {
  let stderr = "";
  const spy = vi.spyOn(process.stderr, "write").mockImplementation((s: string | Uint8Array) => {
    stderr += String(s);
    return true;
  });
  try {
    return { code: await main(argv), stderr };
  } finally {
    spy.mockRestore();
  }
}

describe("exit codes", () => {
  it.each([
    [[], 2, /Usage: sdc \[options\] \[command\]/],
    [["compile", "no-such.mdl"], 1, /spec file not found: no-such.mdl/],
    [["ablate", "no-such.mdl", "--variants", "tiny"], 1, /spec file not found: no-such.mdl/],
    [["train", "generated/no-such"], 1, /not a generated folder: generated\/no-such/],
    [["plan", "generated/no-such"], 1, /not a generated folder/],
    [["sample", GEN, "--checkpoint", "no-such-run", "--prompt", "7"], 1, /checkpoint not found: no-such-run/],
    [["eval", "no-such-run"], 1, /checkpoint not found: no-such-run/],
    [["forward", GEN, "--weights", "no-such.safetensors", "--inputs", "x.safetensors"], 1, /not found: no-such.safetensors/],
    [["compile"], 2, /missing required argument 'spec'/],
    [["train", GEN, "--no-such-flag"], 2, /unknown option '--no-such-flag'/],
    [["train", GEN, "--steps", "ten"], 2, /--steps must be an integer, got 'ten'/],
    [["no-such-command"], 2, /unknown command 'no-such-command'/],
    [["compile", "README.md"], 2, /expected a .mdl spec file/],
  ])("sdc %j exits %i", async (argv, code, msg) => {
    const r = await inProcess(argv as string[]);
    expect(r.code, r.stderr).toBe(code);
    expect(r.stderr).toMatch(msg);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it("--version is the package's", async () => {
    expect(JSON.parse(readFileSync("package.json", "utf8")).version).toBe(SDC_VERSION);
  });
});

describe("NO_COLOR", () => {
  it.each([
    [true, {}, true],
    [true, { NO_COLOR: "1" }, false],
    [true, { NO_COLOR: "" }, true], // no-color.org: only a non-empty value counts
    [false, {}, false],
  ] as const)("a TTY %s with env %j: colour %s", (isTTY, env, want) => {
    expect(useColor({ isTTY }, env as NodeJS.ProcessEnv)).toBe(want);
  });

  it("diagnostics on a terminal have colour, and none with NO_COLOR", () => {
    const run = () => {
      let err = "";
      const sink = { write: (s: string) => (err += s), isTTY: true };
      expect(runCompile("docs/examples/broken.mdl", { outDir: tmp }, { write: () => true }, sink)).toBe(1);
      return err;
    };
    const before = process.env.NO_COLOR;
    try {
      delete process.env.NO_COLOR;
      expect(run()).toContain("\x1b[");
      process.env.NO_COLOR = "1";
      const plain = run();
      expect(plain).not.toContain("\x1b[");
      expect(plain).toContain("error SDC700");
    } finally {
      if (before === undefined) delete process.env.NO_COLOR;
      else process.env.NO_COLOR = before;
    }
  });
});

describe("a CPU run's output", () => {
  const run = join(tmp, "run");
  let train: ReturnType<typeof sdc>;
  beforeAll(() => {
    train = sdc(["train", GEN, "--steps", "2", "--batch-size", "8", "--samples", "1", "--sample-steps", "1", "--sample-every", "0", "--no-progress", "--out", run]);
  });

  it("prints the backend once, and no Dawn warning from a foreign build path", () => {
    expect(train.status, train.stderr).toBe(0);
    // the one chosen, once (auto also says why it skipped the ones before it: "backend: skipped ...")
    expect(train.stderr.match(/^backend: (?!skipped)/gm)).toHaveLength(1);
    expect(train.stderr).not.toMatch(/Couldn't load Vulkan|\/home\/runner|third_party\/dawn/);
  });

  it("the progress bar's last figures are the summary line's", () => {
    const bar = /step 2\/2 \[=+\] loss (\S+) \| (\S+) steps\/s/.exec(train.stderr);
    const done = /done at step 2: loss (\S+), val_loss \S+, (\S+) steps\/s/.exec(train.stderr);
    expect(bar, train.stderr).not.toBeNull();
    expect(done, train.stderr).not.toBeNull();
    expect(done![1].replace(/,$/, "")).toBe(bar![1]);
    expect(done![2]).toBe(bar![2]);
  });

  it("says '1 image' for one", () => {
    const r = sdc(["sample", GEN, "--checkpoint", run, "--prompt", "7", "--steps", "1", "--backend", "wasm", "--out", join(tmp, "one.png")]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/\(1 image, /);
    expect(r.stderr).toMatch(/^step 1\/1 \[=+\] \S+ steps\/s \| ETA 0s$/m); // the sampler's progress
    expect(r.stderr.match(/^backend: /gm)).toHaveLength(1);
  });

  it.each([
    [["plan", GEN, "--batch-size", "2", "--json"]],
    [["compile", "specs/sd3.mdl", "--variant", "tiny", "--check", "--json"]],
    [["eval", "RUN", "--per-digit", "1", "--cfg", "1", "--steps", "1", "--reference", "20", "--backend", "wasm", "--json"]],
  ])("sdc %j prints JSON and nothing else on stdout", (args) => {
    const r = sdc(args.map((a) => (a === "RUN" ? run : a)));
    expect(r.status, r.stderr).toBe(0);
    if (args[0] === "eval") expect(r.stderr).toMatch(/^image 10\/10 \[=+\] .* \| ETA 0s$/m); // eval's progress, on stderr
    expect(() => JSON.parse(r.stdout), r.stdout).not.toThrow();
    expect(r.stdout.trimStart()[0]).toMatch(/[[{]/);
  });
});
