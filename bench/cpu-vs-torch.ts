/**
 * bench/cpu-vs-torch: sdc's training step against its PyTorch twin on this machine's CPU, measured
 * in one run. For each configuration the two sides ALTERNATE for --rounds rounds (torch, sdc,
 * torch, sdc, ...), each run a fresh process doing --warmup + --steps steps; the table gives the
 * median of the per-round medians of each side and the median of the per-round ratios
 * sdc / PyTorch (so a drift in the machine's load hits both sides of a ratio alike).
 *
 *   npx tsx bench/cpu-vs-torch.ts [--configs sd3-tiny:32,sd3-tiny:64,sd3-seed:64] [--rounds 3]
 *       [--sdc-args "--backend wasm --engine static"] [--torch-args "--threads 2 --torch-threads 1"]
 *       [--sides torch,sdc] [--json bench/results/cpu-vs-torch.json]
 *
 * A configuration is PACKAGE:BATCH (both sides) or PACKAGE:BATCH:SIDE (that side only), PACKAGE a
 * folder under generated/ or a path; --sides limits every configuration.
 *
 * The PyTorch side is bench/torch_step.py under Debian's /usr/bin/python3 (python3-torch with
 * libopenblas0-pthread); the sdc side is `npx tsx bench/step.ts --generated DIR --batch B
 * --context-tokens T --json` plus --sdc-args. Both build the same network from the package's
 * ir.json (the parameter counts are compared) and run the same step: fixed random context and
 * pooled vector, forward, loss, backward, clip, Adam, EMA. A side that fails (exit code, no JSON,
 * out of memory) is reported as failed in the table and not retried in later rounds; the driver
 * then exits 1 after printing everything. A benchmark, not a test: CI does not need PyTorch.
 */
import { spawn, spawnSync } from "node:child_process";
import { readFileSync, writeFileSync, mkdirSync, existsSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";

type Side = "torch" | "sdc";

function usage(msg: string): never {
  console.error(`cpu-vs-torch: ${msg}`);
  process.exit(2);
}

const options = {
  configs: { type: "string", default: "sd3-tiny:32,sd3-tiny:64,sd3-seed:64" },
  rounds: { type: "string", default: "3" },
  steps: { type: "string", default: "10" },
  warmup: { type: "string", default: "3" },
  "context-tokens": { type: "string", default: "8" },
  "sdc-args": { type: "string", default: "--backend wasm --engine static" },
  "torch-args": { type: "string", default: "" },
  python: { type: "string", default: "/usr/bin/python3" },
  sides: { type: "string", default: "torch,sdc" },
  timeout: { type: "string", default: "900" },
  json: { type: "string" },
} as const;
// `--sdc-args "--backend wasm"`: a value that starts with a dash, which parseArgs only takes as --sdc-args=...
const argv: string[] = [];
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if ((a === "--sdc-args" || a === "--torch-args") && i + 1 < process.argv.length) argv.push(`${a}=${process.argv[++i]}`);
  else argv.push(a);
}
function parse() {
  try {
    return parseArgs({ args: argv, options }).values;
  } catch (e) {
    usage((e as Error).message);
  }
}
const values = parse();

const posInt = (name: string, v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) usage(`--${name} must be a positive integer, got "${v}"`);
  return n;
};
const rounds = posInt("rounds", values.rounds!);
const steps = posInt("steps", values.steps!);
const warmup = Number(values.warmup);
if (!Number.isInteger(warmup) || warmup < 0) usage(`--warmup must be a non-negative integer, got "${values.warmup}"`);
const tokens = posInt("context-tokens", values["context-tokens"]!);
const timeoutS = posInt("timeout", values.timeout!);
const split = (s: string): string[] => s.split(/\s+/).filter((x) => x.length > 0);
const sdcArgs = split(values["sdc-args"]!);
const torchArgs = split(values["torch-args"]!);
const sides = values.sides!.split(",").map((s) => s.trim()) as Side[];
for (const s of sides) if (s !== "torch" && s !== "sdc") usage(`--sides takes torch and/or sdc, got "${s}"`);

interface Config {
  generated: string;
  batch: number;
  sides: Side[];
  /** ir.json stats.networkParams */
  params: number;
}
const configs: Config[] = values.configs!.split(",").map((c) => {
  const m = /^([^:]+):(\d+)(?::(torch|sdc))?$/.exec(c.trim());
  if (!m) usage(`--configs entries are PACKAGE:BATCH or PACKAGE:BATCH:SIDE (e.g. sd3-tiny:64, generated/sd3-seed:64:torch), got "${c}"`);
  const generated = m[1].includes("/") ? m[1] : join("generated", m[1]);
  if (!existsSync(join(generated, "ir.json"))) {
    console.error(`cpu-vs-torch: ${join(generated, "ir.json")} not found (compile the spec first)`);
    process.exit(1);
  }
  let params = NaN;
  try {
    params = Number(JSON.parse(readFileSync(join(generated, "ir.json"), "utf8")).stats?.networkParams);
  } catch (e) {
    console.error(`cpu-vs-torch: ${join(generated, "ir.json")}: ${(e as Error).message}`);
    process.exit(1);
  }
  return { generated, batch: posInt("configs batch", m[2]), sides: m[3] ? sides.filter((s) => s === m[3]) : sides, params };
});

// ---- the machine ------------------------------------------------------------------------------
function cpuModel(): string {
  try {
    const line = readFileSync("/proc/cpuinfo", "utf8").split("\n").find((l) => l.startsWith("model name"));
    if (line) return line.split(":")[1].trim();
  } catch {
    /* not Linux */
  }
  return cpus()[0]?.model ?? "?";
}
const host = { date: new Date().toISOString(), cpu: cpuModel(), cores: cpus().length, loadAtStart: loadavg().map((x) => Number(x.toFixed(2))) };

// the PyTorch side runs without the machine's OpenBLAS overrides (torch_step.py also drops them)
// unless --torch-args has --keep-openblas-env
const torchEnv = { ...process.env };
if (!torchArgs.includes("--keep-openblas-env")) {
  delete torchEnv.OPENBLAS_CORETYPE;
  delete torchEnv.OPENBLAS_L2_SIZE;
}

if (configs.some((c) => c.sides.includes("torch"))) {
  const probe = spawnSync(values.python!, ["-c", "import torch"], { env: torchEnv, encoding: "utf8" });
  if (probe.status !== 0) {
    console.error(
      `cpu-vs-torch: ${values.python} cannot import torch${probe.error ? ` (${probe.error.message})` : `:\n${(probe.stderr ?? "").trim().split("\n").slice(-1)[0]}`}\n` +
        "The PyTorch side needs Debian's PyTorch with OpenBLAS:  apt-get install python3-torch libopenblas0-pthread\n" +
        "(or give another interpreter with --python, or run only sdc with --sides sdc)",
    );
    process.exit(1);
  }
}

// ---- one run ----------------------------------------------------------------------------------
interface RunOk {
  ok: true;
  msPerStep: number;
  minMs: number;
  params: number;
  loss: number;
  seconds: number;
  load: number;
  raw: Record<string, unknown>;
}
interface RunFail {
  ok: false;
  error: string;
  seconds: number;
}
type Run = RunOk | RunFail;

function command(side: Side, c: Config): [string, string[], NodeJS.ProcessEnv] {
  const common = ["--generated", c.generated, "--batch", String(c.batch), "--context-tokens", String(tokens), "--steps", String(steps), "--warmup", String(warmup), "--json"];
  if (side === "torch") return [values.python!, ["bench/torch_step.py", ...common, ...torchArgs], torchEnv];
  return ["npx", ["tsx", "bench/step.ts", ...common, ...sdcArgs], process.env];
}

/** The line of a failed run's stderr that says what went wrong (not its stack frames or progress). */
function errorLine(stderr: string): string {
  const lines = stderr.split("\n").map((l) => l.trim()).filter((l) => l && !/^at |^step \d+\/|^Node\.js v|^\^+$/.test(l));
  const err = lines.filter((l) => /error|abort|killed|out of memory|out of bounds|exception/i.test(l));
  return (err.at(-1) ?? lines.at(-1) ?? "").slice(0, 400);
}

function runOnce(side: Side, c: Config): Promise<Run> {
  const [cmd, argv, env] = command(side, c);
  const t0 = performance.now();
  return new Promise((resolve) => {
    const child = spawn(cmd, argv, { env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => {
      err += d;
      if (err.length > 200_000) err = err.slice(-100_000);
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutS * 1000);
    const finish = (code: number | null, signal: string | null, spawnError?: Error) => {
      clearTimeout(timer);
      const seconds = Number(((performance.now() - t0) / 1000).toFixed(1));
      const tail = errorLine(err);
      if (spawnError) return resolve({ ok: false, error: `could not start ${cmd}: ${spawnError.message}`, seconds });
      const line = out.trim().split("\n").reverse().find((l) => l.startsWith("{"));
      let parsed: Record<string, unknown> | null = null;
      try {
        parsed = line ? JSON.parse(line) : null;
      } catch {
        parsed = null;
      }
      if (code !== 0 || !parsed || typeof parsed.msPerStep !== "number") {
        const why = signal ? (signal === "SIGKILL" && seconds >= timeoutS ? `killed after the ${timeoutS} s timeout` : `killed by ${signal}`) : code !== 0 ? `exit ${code}` : "no JSON result on stdout";
        return resolve({ ok: false, error: `${why}${tail ? `: ${tail}` : ""}`, seconds });
      }
      resolve({ ok: true, msPerStep: parsed.msPerStep, minMs: Number(parsed.minMs), params: Number(parsed.params), loss: Number(parsed.loss), seconds, load: Number(loadavg()[0].toFixed(2)), raw: parsed });
    };
    child.on("error", (e) => finish(null, null, e));
    child.on("close", (code, signal) => finish(code, signal));
  });
}

// ---- the rounds -------------------------------------------------------------------------------
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};

interface Result {
  generated: string;
  batch: number;
  runs: Record<Side, Run[]>;
  failed: Partial<Record<Side, string>>;
  ratios: number[];
  sides: Side[];
  params: number;
}
const results: Result[] = [];
console.error(`cpu-vs-torch: ${host.cores} x ${host.cpu}, load ${host.loadAtStart.join(" ")}; ${rounds} rounds of ${warmup} + ${steps} steps; sdc ${sdcArgs.join(" ")}; torch ${values.python} bench/torch_step.py ${torchArgs.join(" ")}`);
for (const c of configs) {
  const r: Result = { generated: c.generated, batch: c.batch, runs: { torch: [], sdc: [] }, failed: {}, ratios: [], sides: c.sides, params: c.params };
  results.push(r);
  for (let i = 0; i < rounds; i++) {
    const got: Partial<Record<Side, RunOk>> = {};
    for (const side of c.sides) {
      if (r.failed[side]) continue;
      const run = await runOnce(side, c);
      r.runs[side].push(run);
      if (run.ok) {
        got[side] = run;
        console.error(`  ${c.generated} batch ${c.batch}, round ${i + 1}/${rounds}, ${side}: ${run.msPerStep} ms/step (min ${run.minMs}), ${run.params.toLocaleString("en-US")} parameters, load ${run.load}`);
      } else {
        r.failed[side] = run.error;
        console.error(`  ${c.generated} batch ${c.batch}, round ${i + 1}/${rounds}, ${side}: FAILED after ${run.seconds} s: ${run.error}`);
      }
    }
    if (got.torch && got.sdc) r.ratios.push(got.sdc.msPerStep / got.torch.msPerStep);
  }
}

// ---- the table --------------------------------------------------------------------------------
const oks = (rs: Run[]): RunOk[] => rs.filter((x): x is RunOk => x.ok);
/** "35.8 ms (17.3-54.3)" or "2.14 s (1.98-2.31)": the median of the per-round medians and their range, in one unit. */
function cell(r: Result, side: Side): string {
  if (!r.sides.includes(side)) return "not run";
  const ok = oks(r.runs[side]);
  if (r.failed[side] && ok.length === 0) return "FAILED";
  const meds = ok.map((x) => x.msPerStep);
  const med = median(meds);
  const [div, unit, digits] = med >= 1000 ? [1000, "s", 2] : [1, "ms", med < 100 ? 1 : 0];
  const f = (x: number) => (x / div).toFixed(digits);
  const range = meds.length > 1 ? ` (${f(Math.min(...meds))}-${f(Math.max(...meds))})` : "";
  return `${f(med)} ${unit}${range}${r.failed[side] ? " then FAILED" : ""}`;
}
const summary = results.map((r) => {
  const t = oks(r.runs.torch);
  const s = oks(r.runs.sdc);
  const reported = [...new Set([...t, ...s].map((x) => x.params))];
  const p = r.params;
  return {
    network: `${r.generated.replace(/^generated\//, "")} (${Number.isFinite(p) ? (p / 1e6).toFixed(p < 1e6 ? 3 : 1) + "M" : "?"})`,
    batch: r.batch,
    torch: cell(r, "torch"),
    sdc: cell(r, "sdc"),
    ratio: r.ratios.length ? `${median(r.ratios).toFixed(2)}x` : "-",
    paramsDiffer: reported.some((x) => x !== p),
  };
});
const header = ["network (parameters)", "batch", "PyTorch ms/step", "sdc ms/step", "sdc / PyTorch"];
const rows = summary.map((x) => [x.network, String(x.batch), x.torch, x.sdc, x.ratio]);
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
const firstTorch = results.flatMap((r) => oks(r.runs.torch))[0]?.raw;
const firstSdc = results.flatMap((r) => oks(r.runs.sdc))[0]?.raw;
const blas = firstTorch?.blas as { config?: string; core?: string } | undefined;
const loadAtEnd = loadavg().map((x) => Number(x.toFixed(2)));
console.log(`\n${host.date}, ${host.cores} x ${host.cpu}, load average ${host.loadAtStart.join(" ")} at start, ${loadAtEnd.join(" ")} at end`);
console.log(`${rounds} alternating rounds per configuration, each a fresh process: ${warmup} warmup + ${steps} timed steps, ${tokens} context tokens; cells: median of the per-round medians (range); ratio: median of the per-round ratios`);
if (firstTorch) console.log(`PyTorch: torch ${String(firstTorch.torch)}, ${blas?.config ?? "?"} (core ${blas?.core ?? "?"}), OpenBLAS threads ${String(firstTorch.openblasThreads)}, torch threads ${String(firstTorch.torchThreads)}`);
if (firstSdc) console.log(`sdc: bench/step.ts ${sdcArgs.join(" ")}: ${String(firstSdc.backend)}${firstSdc.engine ? `, engine ${String(firstSdc.engine)}` : ""}`);
console.log(line(header));
console.log(line(widths.map((w) => "-".repeat(w))));
for (const row of rows) console.log(line(row));
for (const r of results) for (const side of r.sides) if (r.failed[side]) console.log(`${r.generated} batch ${r.batch}, ${side === "torch" ? "PyTorch" : "sdc"} failed: ${r.failed[side]}`);
for (const x of summary) if (x.paramsDiffer) console.log(`WARNING: ${x.network}: a side reports a parameter count other than ir.json's stats.networkParams`);

if (values.json) {
  const out = {
    bench: "cpu-vs-torch",
    ...host,
    loadAtEnd,
    rounds,
    steps,
    warmup,
    contextTokens: tokens,
    sdcArgs: sdcArgs.join(" "),
    torch: { python: values.python, args: torchArgs.join(" "), version: firstTorch?.torch ?? null, blas: blas ?? null, openblasThreads: firstTorch?.openblasThreads ?? null, torchThreads: firstTorch?.torchThreads ?? null },
    sdcBackend: firstSdc?.backend ?? null,
    configs: results.map((r, i) => ({
      generated: r.generated,
      batch: r.batch,
      torchMsPerStep: oks(r.runs.torch).length ? median(oks(r.runs.torch).map((x) => x.msPerStep)) : null,
      sdcMsPerStep: oks(r.runs.sdc).length ? median(oks(r.runs.sdc).map((x) => x.msPerStep)) : null,
      ratio: r.ratios.length ? Number(median(r.ratios).toFixed(3)) : null,
      ratios: r.ratios.map((x) => Number(x.toFixed(3))),
      table: summary[i],
      failed: r.failed,
      runs: Object.fromEntries(r.sides.map((s) => [s, r.runs[s].map((x) => (x.ok ? { msPerStep: x.msPerStep, minMs: x.minMs, params: x.params, loss: x.loss, seconds: x.seconds, load: x.load } : x))])),
    })),
  };
  mkdirSync(dirname(values.json), { recursive: true });
  writeFileSync(values.json, JSON.stringify(out, null, 2) + "\n");
  console.log(`wrote ${values.json}`);
}
process.exit(results.some((r) => Object.keys(r.failed).length > 0) ? 1 : 0);
