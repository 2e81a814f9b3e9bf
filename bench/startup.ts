/**
 * Whole-process start-up of the `sdc` command (npm run bench:startup): the median wall time of
 * N runs (default 5) of `node bin/sdc.mjs ...`, run from the precompiled dist/ (when it is fresh;
 * `npm run build` refreshes it) and from the TypeScript sources through tsx (SDC_FROM_SOURCE=1):
 *   - compile specs/sd3.mdl --no-write   (check and summary; target under 500 ms)
 *   - compile specs/sd3.mdl              (writes the package to a temporary folder)
 *   - --version                          (the floor: Node, the loader, commander)
 * Pass --runs N, --json for one machine-readable line.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
// @ts-expect-error: plain JavaScript module without types
import { distState } from "../bin/dist.mjs";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
process.chdir(ROOT);
const args = process.argv.slice(2);
const runs = args.includes("--runs") ? Number(args[args.indexOf("--runs") + 1]) : 5;
const TARGET_MS = 500;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const out = mkdtempSync(join(tmpdir(), "sdc-startup-"));
const commands: [string, string[]][] = [
  ["compile specs/sd3.mdl --no-write", ["compile", "specs/sd3.mdl", "--no-write", "-q"]],
  ["compile specs/sd3.mdl", ["compile", "specs/sd3.mdl", "-q", "--out-dir", out]],
  ["--version", ["--version"]],
];
const dist = distState(ROOT) as { fresh: boolean; reason?: string };
const modes: [string, Record<string, string>][] = [...(dist.fresh ? [["dist", {}] as [string, Record<string, string>]] : []), ["source (tsx)", { SDC_FROM_SOURCE: "1" }]];
if (!dist.fresh) console.log(`dist/ is not fresh (${dist.reason}); run npm run build to measure it`);
const results: { mode: string; command: string; medianMs: number; runsMs: number[] }[] = [];
for (const [mode, env] of modes) {
  for (const [name, argv] of commands) {
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      const r = spawnSync(process.execPath, ["bin/sdc.mjs", ...argv], { encoding: "utf8", env: { ...process.env, ...env } });
      times.push(performance.now() - t0);
      if (r.status !== 0) throw new Error(`sdc ${argv.join(" ")} failed (${r.status}): ${r.stderr}`);
    }
    results.push({ mode, command: name, medianMs: Math.round(median(times)), runsMs: times.map((t) => Math.round(t)) });
  }
}
rmSync(out, { recursive: true, force: true });
if (args.includes("--json")) console.log(JSON.stringify({ runs, targetMs: TARGET_MS, results }));
else {
  console.log(`whole-process wall time, median of ${runs} (node ${process.version}):`);
  for (const r of results) console.log(`  ${r.mode.padEnd(13)} sdc ${r.command.padEnd(34)} ${String(r.medianMs).padStart(5)} ms   (${r.runsMs.join(", ")})`);
  const check = results.find((r) => r.mode === "dist" && r.command.endsWith("--no-write"));
  if (check) console.log(`target: compile --no-write under ${TARGET_MS} ms from dist/: ${check.medianMs <= TARGET_MS ? "met" : "NOT met"}`);
}
