/**
 * Whole-process start-up of the `sdc` command (npm run bench:startup): the median wall time of
 * N runs (default 5) of `node bin/sdc.mjs ...`, run from the precompiled dist/ (when it is fresh;
 * `npm run build` refreshes it) and from the TypeScript sources through tsx (SDC_FROM_SOURCE=1):
 *   - compile specs/sd3.mdl --no-write   (check and summary; target under 500 ms)
 *   - compile specs/sd3.mdl              (writes the package to a temporary folder)
 *   - --version                          (Node, the start-up check of dist/, commander)
 * and `node -e 0` (Node alone: the floor on this machine, as loaded as it is at the time).
 * `--baseline DIR` also runs another checkout's bin/sdc.mjs (e.g. the commit before dist/, in a
 * `git worktree` with node_modules linked) on the commands it has. The runs are interleaved
 * (one of each per round), so every mode sees the same load. --runs N, --json.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
// @ts-expect-error: plain JavaScript module without types
import { distState } from "../bin/dist.mjs";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
process.chdir(ROOT);
const args = process.argv.slice(2);
const opt = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const runs = Number(opt("--runs") ?? 5);
const baseline = opt("--baseline");
const TARGET_MS = 500;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const out = mkdtempSync(join(tmpdir(), "sdc-startup-"));
interface Case {
  mode: string;
  command: string;
  argv: string[];
  cwd: string;
  env: Record<string, string>;
}
const sdc = (mode: string, cwd: string, env: Record<string, string>, withNoWrite: boolean): Case[] => [
  ...(withNoWrite ? [{ mode, command: "sdc compile specs/sd3.mdl --no-write", argv: ["bin/sdc.mjs", "compile", "specs/sd3.mdl", "--no-write", "-q"], cwd, env }] : []),
  { mode, command: "sdc compile specs/sd3.mdl", argv: ["bin/sdc.mjs", "compile", "specs/sd3.mdl", "-q", "--out-dir", out], cwd, env },
  { mode, command: "sdc --version", argv: ["bin/sdc.mjs", "--version"], cwd, env },
];
const dist = distState(ROOT) as { fresh: boolean; reason?: string };
if (!dist.fresh) console.log(`dist/ is not fresh (${dist.reason}); run npm run build to measure it`);
const cases: Case[] = [
  ...(dist.fresh ? sdc("dist", ROOT, {}, true) : []),
  ...sdc("source (tsx)", ROOT, { SDC_FROM_SOURCE: "1" }, true),
  ...(baseline ? sdc("baseline", resolve(baseline), {}, false) : []),
  { mode: "node", command: "node -e 0 (no sdc)", argv: ["-e", "0"], cwd: ROOT, env: {} },
];
const times = cases.map(() => [] as number[]);
for (let i = 0; i < runs; i++) {
  cases.forEach((c, k) => {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, c.argv, { cwd: c.cwd, encoding: "utf8", env: { ...process.env, ...c.env } });
    times[k].push(performance.now() - t0);
    if (r.status !== 0) throw new Error(`${c.mode}: ${c.argv.join(" ")} failed (${r.status}): ${r.stderr}`);
  });
}
rmSync(out, { recursive: true, force: true });
const results = cases.map((c, k) => ({ mode: c.mode, command: c.command, medianMs: Math.round(median(times[k])), runsMs: times[k].map(Math.round) }));
if (args.includes("--json")) console.log(JSON.stringify({ runs, targetMs: TARGET_MS, results }));
else {
  console.log(`whole-process wall time, median of ${runs} interleaved runs (node ${process.version}${baseline ? `; baseline: ${baseline}` : ""}):`);
  for (const r of results) console.log(`  ${r.mode.padEnd(13)} ${r.command.padEnd(38)} ${String(r.medianMs).padStart(5)} ms   (${r.runsMs.join(", ")})`);
  const check = results.find((r) => r.mode === "dist" && r.command.endsWith("--no-write"));
  if (check) console.log(`target: compile --no-write under ${TARGET_MS} ms from dist/: ${check.medianMs <= TARGET_MS ? "met" : "NOT met"} (${check.medianMs} ms)`);
}
