/**
 * `sdc completion bash|zsh`: generated from the commander program; the bash script is sourced in
 * a real bash and asked for completions; the zsh script is checked by zsh's parser.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { bashCompletion, describeProgram, zshCompletion } from "../../cli/completion.ts";
import { cliProgram } from "../../cli/main.ts";

const tmp = mkdtempSync(join(tmpdir(), "sdc-completion-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const program = cliProgram();
const bashFile = join(tmp, "sdc.bash");
writeFileSync(bashFile, bashCompletion(program));

/** What bash completes for the words typed so far (the last one is the word being completed). */
function complete(words: string[]): string[] {
  const arr = words.map((w) => `'${w}'`).join(" ");
  const r = spawnSync("bash", ["-c", `source '${bashFile}'; cd '${tmp}'; COMP_WORDS=(${arr}); COMP_CWORD=${words.length - 1}; _sdc; printf '%s\\n' "\${COMPREPLY[@]}"`], { encoding: "utf8" });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout.split("\n").filter(Boolean).sort();
}

describe("bash completion", () => {
  it.each([
    [["sdc", "tr"], ["train", "train-judge"]],
    [["sdc", "comp"], ["compile", "completion"]],
    [["sdc", "train", "generated/x", "--back"], ["--backend"]],
    [["sdc", "train", "generated/x", "--backend", "w"], ["wasm", "webgpu"]],
    [["sdc", "train", "generated/x", "--lr-s"], ["--lr-schedule"]],
    [["sdc", "train", "generated/x", "--lr-schedule", "c"], ["constant", "cosine"]],
    [["sdc", "train", "generated/x", "--keep"], ["--keep-best", "--keep-checkpoints"]],
    [["sdc", "eval", "run", "--weights", ""], ["auto", "ema", "raw"]],
    [["sdc", "completion", ""], ["bash", "zsh"]],
    [["sdc", "compile", "--q"], ["--quiet"]],
  ])("%j -> %j", (words, want) => {
    expect(complete(words)).toEqual(want);
  });

  it("offers every command and every option of each (it is generated from the program)", () => {
    const cmds = describeProgram(program);
    expect(complete(["sdc", ""])).toEqual([...cmds.map((c) => c.name), "--help", "--version"].sort());
    for (const c of cmds) {
      const want = c.options.flatMap((o) => o.flags).filter((f) => f.startsWith("--")).sort();
      expect(complete(["sdc", c.name, "--"]), c.name).toEqual(want);
    }
  });
});

describe("zsh completion", () => {
  it("parses in zsh and names every command and option", () => {
    const script = zshCompletion(program);
    const file = join(tmp, "_sdc");
    writeFileSync(file, script);
    const r = spawnSync("zsh", ["-n", file], { encoding: "utf8" });
    expect(r.error, "zsh is needed for this test (apt-get install zsh; .ci/run installs it)").toBeUndefined();
    expect(r.status, r.stderr).toBe(0);
    for (const c of describeProgram(program)) {
      expect(script).toContain(`    ${c.name})`);
      for (const o of c.options) for (const f of o.flags) expect(script).toContain(f);
    }
    expect(script.split("\n")[0]).toBe("#compdef sdc");
  });
});
