/**
 * The language server's latency on specs/sd3.mdl (npm run bench:lsp), as an editor sees it over
 * stdio: the time from spawning `node bin/sdc.mjs lsp` to the first diagnostics of the opened
 * spec (start-up, initialize, the first full check), median of N fresh servers (default 5); then
 * per-keystroke re-checks: one character typed at a time into a comment (N x 20 didChange),
 * each timed from the change to the diagnostics of that version.
 * Pass --runs N, --json for one machine-readable line.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
// @ts-expect-error: plain JavaScript module without types
import { distState } from "../bin/dist.mjs";
import { LspClient, positionOf, uriOf } from "../test/cli/lsp-client.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
process.chdir(ROOT);
const args = process.argv.slice(2);
const runs = args.includes("--runs") ? Number(args[args.indexOf("--runs") + 1]) : 5;
const KEYS = 20;
const SPEC = "specs/sd3.mdl";
const text = readFileSync(SPEC, "utf8");
const uri = uriOf(SPEC);
const q = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * (s.length - 1) + 0.5))];
};

const first: number[] = [];
const keys: number[] = [];
for (let r = 0; r < runs; r++) {
  const t0 = performance.now();
  const lsp = new LspClient();
  await lsp.initialize();
  lsp.open(uri, text, 1);
  const d = await lsp.diagnostics(uri, 1);
  first.push(performance.now() - t0);
  if (d.length) throw new Error(`specs/sd3.mdl has diagnostics: ${JSON.stringify(d)}`);
  // type "// keystroke" at the end of the first line, one character per change
  const at = positionOf(text, "\n");
  const typed = " // keystroke timing";
  for (let k = 0; k < KEYS; k++) {
    const t1 = performance.now();
    lsp.change(uri, k + 2, [{ range: { start: { line: at.line, character: at.character + k }, end: { line: at.line, character: at.character + k } }, text: typed[k] }]);
    await lsp.diagnostics(uri, k + 2);
    keys.push(performance.now() - t1);
  }
  await lsp.close();
}
const mode = (distState(ROOT) as { fresh: boolean }).fresh ? "dist" : "source (tsx)";
const res = { mode, runs, firstDiagnosticsMs: { median: Math.round(q(first, 0.5)), all: first.map(Math.round) }, keystrokeMs: { median: Math.round(q(keys, 0.5)), p90: Math.round(q(keys, 0.9)), max: Math.round(Math.max(...keys)), n: keys.length } };
if (args.includes("--json")) console.log(JSON.stringify(res));
else {
  console.log(`sdc lsp on ${SPEC}, running ${mode} (node ${process.version}):`);
  console.log(`  spawn to first diagnostics: median ${res.firstDiagnosticsMs.median} ms of ${runs} (${res.firstDiagnosticsMs.all.join(", ")})`);
  console.log(`  re-check per keystroke:     median ${res.keystrokeMs.median} ms, p90 ${res.keystrokeMs.p90} ms, max ${res.keystrokeMs.max} ms (${res.keystrokeMs.n} keystrokes)`);
}
