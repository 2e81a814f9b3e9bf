/**
 * bench/args.ts: a bench script's command line. A bad option is one line naming the script and the
 * option, exit 2, no stack trace; --help prints the script's header comment, exit 0.
 */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { headerOf } from "../../bench/args.ts";

const run = (...args: string[]) => spawnSync(process.execPath, ["--import", "tsx", "bench/native-adam.ts", ...args], { encoding: "utf8", timeout: 60_000 });

describe("a bench script's command line", () => {
  it("refuses an unknown option in one line, exit 2, no stack trace", () => {
    const r = run("--bogus");
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe("bench/native-adam.ts: Unknown option '--bogus' (bench/native-adam.ts --help for its options)");
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
  it("prints the script's header comment for --help, exit 0", () => {
    const r = run("--help");
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(headerOf("bench/native-adam.ts"));
    expect(r.stdout).toMatch(/^bench\/native-adam/);
  });
});
