/**
 * Compile-time benchmark (npx tsx bench/compile.ts).
 *   - module import of the compiler (chevrotain, ts-morph, ajv), once;
 *   - in-process compile() of specs/sd3.mdl: the first run (cold: parser self-analysis, the
 *     ts-morph project, the ajv schema) and the median of 10 warm runs;
 *   - the whole `node bin/sdc.mjs compile specs/sd3.mdl --out-dir <tmp>` process, median of 3.
 * Target: under 1 s for sd3.mdl. Pass --json for one machine-readable line.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const SPEC = "specs/sd3.mdl";
const TARGET_MS = 1000;
process.chdir(ROOT);

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const ms = (x: number) => `${x.toFixed(0)} ms`;

const t0 = performance.now();
const { compile } = await import("../compiler/index.ts");
const { fsHost } = await import("../cli/host.ts");
const importMs = performance.now() - t0;

function once(): number {
  const t = performance.now();
  const r = compile(SPEC, fsHost, { specPath: SPEC, name: "sd3" });
  const dt = performance.now() - t;
  if (!r.files || r.diagnostics.length) throw new Error(`${SPEC} did not compile: ${r.diagnostics.map((d) => d.message).join("; ")}`);
  return dt;
}

const coldMs = once();
const warm = Array.from({ length: 10 }, once);
const warmMs = median(warm);

const out = mkdtempSync(join(tmpdir(), "sdc-bench-"));
const proc: number[] = [];
try {
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    const r = spawnSync(process.execPath, ["bin/sdc.mjs", "compile", SPEC, "--out-dir", out, "--quiet"], { cwd: ROOT, encoding: "utf8" });
    proc.push(performance.now() - t);
    if (r.status !== 0) throw new Error(`sdc compile exited ${r.status}: ${r.stderr}`);
  }
} finally {
  rmSync(out, { recursive: true, force: true });
}
const procMs = median(proc);

if (process.argv.includes("--json")) {
  console.log(JSON.stringify({ spec: SPEC, importMs: Math.round(importMs), coldMs: Math.round(coldMs), warmMedianMs: Math.round(warmMs), warmMs: warm.map(Math.round), processMedianMs: Math.round(procMs), processMs: proc.map(Math.round), targetMs: TARGET_MS }));
} else {
  const ok = (x: number) => (x < TARGET_MS ? "ok" : "OVER");
  console.log(`sdc compile benchmark: ${SPEC} (node ${process.version}, ${process.platform}/${process.arch})`);
  console.log(`  import compiler modules         ${ms(importMs).padStart(8)}`);
  console.log(`  compile(), first run (cold)     ${ms(coldMs).padStart(8)}   ${ok(coldMs)}`);
  console.log(`  compile(), median of 10 warm    ${ms(warmMs).padStart(8)}   ${ok(warmMs)}   (min ${ms(Math.min(...warm))}, max ${ms(Math.max(...warm))})`);
  console.log(`  sdc compile process, median/3   ${ms(procMs).padStart(8)}   (${proc.map(ms).join(", ")})`);
  console.log(`  target: compile() under ${TARGET_MS} ms for ${SPEC}`);
}
