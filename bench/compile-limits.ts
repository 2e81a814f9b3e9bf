/**
 * The compiler on hostile sizes (issue 24): `npx tsx bench/compile-limits.ts [--json]`.
 * specs/sd3.mdl (variant tiny) with N extra spec parameters (unused, or each used by the next) or
 * N extra block parameters, N = 1,000 / 10,000 / 30,000: the in-process check (no code generation),
 * then the text of the diagnostics (formatAll). Median of 3 warm runs each, and the ratio of the
 * 30,000 time to the 10,000 one (3 when linear, 9 when quadratic). Target: 30,000 in well under 1 s.
 * Times are the process's CPU time (user + system) around the call, which a machine shared with
 * other jobs inflates less than the wall clock (printed too).
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const { compile, formatAll, memoryHost } = await import("../compiler/index.ts");
const read = (f: string) => readFileSync(ROOT + f, "utf8");
const SD3 = read("specs/sd3.mdl");
const LIB = { "specs/lib/mmdit.mdl": read("specs/lib/mmdit.mdl"), "specs/lib/text.mdl": read("specs/lib/text.mdl") };
const SIZES = [0, 1_000, 10_000, 30_000];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ids = (n: number) => Array.from({ length: n }, (_, i) => i);
const withSpecParams = (n: number, line: (i: number) => string) => ({ ...LIB, "specs/sd3.mdl": SD3.replace("  param heads = 6 ", ids(n).map(line).join("") + "  param heads = 6 ") });
const CASES: Record<string, (n: number) => Record<string, string>> = {
  "spec params, unused": (n) => withSpecParams(n, (i) => `  param p${i} = ${i}\n`),
  "spec params, chained": (n) => withSpecParams(n, (i) => `  param p${i} = ${i ? `p${i - 1} + 1` : 0}\n`),
  "block params, unused": (n) => ({ ...LIB, "specs/sd3.mdl": SD3, "specs/lib/text.mdl": LIB["specs/lib/text.mdl"].replace("block text_layer(width: int,", `block text_layer(${ids(n).map((i) => `q${i}: int = ${i}, `).join("")}width: int,`) }),
};

const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

function run(files: Record<string, string>): { check: number; wall: number; format: number; diagnostics: number; chars: number } {
  const [c0, t0] = [cpuMs(), performance.now()];
  const r = compile("specs/sd3.mdl", memoryHost(files), { variant: "tiny", generate: false });
  const [c1, t1] = [cpuMs(), performance.now()];
  const text = formatAll(r.diagnostics, r.program.sources);
  const c2 = cpuMs();
  if (!r.ir) throw new Error(`did not compile: ${r.diagnostics.find((d) => d.severity === "error")?.message}`);
  return { check: c1 - c0, wall: t1 - t0, format: c2 - c1, diagnostics: r.diagnostics.length, chars: text.length };
}

run(CASES["spec params, unused"](100)); // warm-up: parser, schema
const rows: Record<string, unknown>[] = [];
for (const [name, make] of Object.entries(CASES)) {
  const byN = new Map<number, ReturnType<typeof run>>();
  for (const n of SIZES) {
    const files = make(n);
    const runs = [run(files), run(files), run(files)];
    byN.set(n, { ...runs[0], check: median(runs.map((x) => x.check)), wall: median(runs.map((x) => x.wall)), format: median(runs.map((x) => x.format)) });
  }
  const last = byN.get(30_000)!;
  const ratio = last.check / byN.get(10_000)!.check;
  rows.push({ case: name, ...Object.fromEntries(SIZES.map((n) => [`check${n}`, Math.round(byN.get(n)!.check)])), format30000: Math.round(last.format), diagnostics30000: last.diagnostics, textChars30000: last.chars, wall30000: Math.round(last.wall), ratio30kTo10k: Number(ratio.toFixed(2)) });
}
if (process.argv.includes("--json")) console.log(JSON.stringify(rows));
else {
  console.log(`in-process check of specs/sd3.mdl --variant tiny plus N parameters (CPU ms, median of 3); CPU: ${cpuModel()}`);
  for (const r of rows) console.log(`  ${String(r.case).padEnd(22)} ${SIZES.map((n) => `N=${n}: ${String(r[`check${n}`]).padStart(5)}`).join("  ")}  30k/10k ${r.ratio30kTo10k}  (N=30000 wall ${r.wall30000} ms); formatAll ${r.format30000} ms: ${r.diagnostics30000} diagnostics -> ${r.textChars30000} chars`);
}

function cpuModel(): string {
  try {
    return /model name\s*:\s*(.*)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "unknown";
  } catch {
    return "unknown";
  }
}
