/**
 * bench/cpu-vs-torch: sdc's training step against its PyTorch twin at its best on this machine's CPU,
 * measured in one run, and a GEMM table on the step's own shapes.
 *
 * PyTorch at its best: for each configuration the PyTorch side first runs once with each thread
 * split of --splits (TORCHxBLAS: torch.set_num_threads x OPENBLAS_NUM_THREADS; default 1x1, 2x1
 * and the old 1x2) for --calib-warmup + --calib-steps steps, and the fastest split is kept (all are
 * printed). bench/torch_step.py forces OpenBLAS's SkylakeX kernels when OpenBLAS falls back to
 * Prescott on an AVX-512 CPU (printed), and uses foreach Adam. A bf16 configuration runs PyTorch
 * under torch.autocast("cpu", dtype=torch.bfloat16) and sdc with `bench/step.ts --precision bf16`
 * (the static engine's mixed precision: GEMM operands rounded to bf16, fp32 accumulation, the rest
 * fp32; it needs --engine static in --sdc-args, the default).
 *
 * Then the two sides ALTERNATE for --rounds rounds (torch, sdc, torch, sdc, ...), each run a fresh
 * process doing --warmup + --steps steps (where PyTorch's calibrated step is short, enough timed
 * steps for --min-round-seconds, default 1, and at least half as many warmup steps: a 10-step round
 * of a 10 ms step measured the host's hiccups more than the step); the table gives the median of the per-round medians of
 * each side and the median of the per-round ratios sdc / PyTorch (so a drift in the machine's load
 * hits both sides of a ratio alike).
 *
 * The GEMM table (--gemm auto: the linear layers of the last sd3-seed-like configuration's
 * transformer, M = batch x image tokens: q/k/v/out [M, w, w], MLP up [M, 4w, w], MLP down [M, w, 4w];
 * or --gemm MxNxK,... (M tokens, N outputs, K inputs); --gemm none skips it), each layer's three
 * GEMMs at their own shapes (forward M x N x K, input gradient M x K x N, weight gradient N x K x M):
 * bench/native-gemm.ts --openblas --precision bf16 (sdc
 * fp32 against OpenBLAS sgemm, 1 and 2 threads, OpenBLAS forced to SkylakeX when it falls back to
 * Prescott, and sdc's bf16 GEMM) and bench/torch_matmul.py (PyTorch's bf16 matmul, 1 and 2
 * threads) on the three layouts.
 *
 *   npx tsx bench/cpu-vs-torch.ts [--configs sd3-tiny:64,sd3-seed:64,sd3-seed:64:bf16] [--rounds 3]
 *       [--splits 1x1,2x1,1x2] [--sdc-args "--engine static"] [--torch-args "..."]
 *       [--gemm auto] [--sides torch,sdc] [--json bench/results/cpu-vs-torch.json]
 *
 * A configuration is PACKAGE:BATCH[:PRECISION][:SIDE], PRECISION fp32 (default) or bf16, SIDE torch
 * or sdc (that side only), PACKAGE a folder under generated/ or a path; --sides limits every
 * configuration.
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
  configs: { type: "string", default: "sd3-tiny:64,sd3-seed:64,sd3-seed:64:bf16" },
  splits: { type: "string", default: "1x1,2x1,1x2" },
  "calib-steps": { type: "string", default: "3" },
  "calib-warmup": { type: "string", default: "1" },
  gemm: { type: "string", default: "auto" },
  "gemm-reps": { type: "string", default: "10" },
  rounds: { type: "string", default: "3" },
  steps: { type: "string", default: "10" },
  warmup: { type: "string", default: "3" },
  "min-round-seconds": { type: "string", default: "1" },
  "context-tokens": { type: "string", default: "8" },
  "sdc-args": { type: "string", default: "--engine static" },
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
const minRoundS = Number(values["min-round-seconds"]);
if (!(minRoundS >= 0)) usage(`--min-round-seconds must be a non-negative number, got "${values["min-round-seconds"]}"`);
const timeoutS = posInt("timeout", values.timeout!);
const split = (s: string): string[] => s.split(/\s+/).filter((x) => x.length > 0);
const sdcArgs = split(values["sdc-args"]!);
const torchArgs = split(values["torch-args"]!);
const sides = values.sides!.split(",").map((s) => s.trim()) as Side[];
for (const s of sides) if (s !== "torch" && s !== "sdc") usage(`--sides takes torch and/or sdc, got "${s}"`);
if (torchArgs.some((a) => /^--(threads|torch-threads|autocast)\b/.test(a))) usage("--torch-args may not set --threads, --torch-threads or --autocast: the driver sets them (--splits, PRECISION)");
if (sdcArgs.some((a) => /^--precision\b/.test(a))) usage("--sdc-args may not set --precision: the driver sets it (PRECISION)");
interface Split {
  torch: number;
  blas: number;
}
const splits: Split[] = values.splits!.split(",").map((x) => {
  const m = /^(\d+)x(\d+)$/.exec(x.trim());
  if (!m || Number(m[1]) < 1 || Number(m[2]) < 1) usage(`--splits entries are TORCHxBLAS thread counts (e.g. 2x1), got "${x}"`);
  return { torch: Number(m[1]), blas: Number(m[2]) };
});
const splitName = (s: Split) => `${s.torch}x${s.blas}`;
const calibSteps = posInt("calib-steps", values["calib-steps"]!);
const calibWarmup = Number(values["calib-warmup"]);
if (!Number.isInteger(calibWarmup) || calibWarmup < 0) usage(`--calib-warmup must be a non-negative integer, got "${values["calib-warmup"]}"`);
const gemmReps = posInt("gemm-reps", values["gemm-reps"]!);
type Precision = "fp32" | "bf16";

interface Config {
  generated: string;
  batch: number;
  precision: Precision;
  sides: Side[];
  /** ir.json stats.networkParams */
  params: number;
  /** ir.json network.args and data (the GEMM shapes) */
  args: Record<string, number>;
  image: { height: number; width: number };
  /** the PyTorch thread split the rounds use (the fastest of --splits) */
  split: Split;
  calibration: { split: string; msPerStep: number | null; error?: string }[];
  /** timed and warmup steps a round: --steps and --warmup, more for a fast step (--min-round-seconds) */
  steps: number;
  warmup: number;
}
const configs: Config[] = values.configs!.split(",").map((c) => {
  const m = /^([^:]+):(\d+)(?::(fp32|bf16))?(?::(torch|sdc))?$/.exec(c.trim());
  if (!m) usage(`--configs entries are PACKAGE:BATCH[:fp32|bf16][:torch|sdc] (e.g. sd3-tiny:64, generated/sd3-seed:64:bf16), got "${c}"`);
  const generated = m[1].includes("/") ? m[1] : join("generated", m[1]);
  if (!existsSync(join(generated, "ir.json"))) {
    console.error(`cpu-vs-torch: ${join(generated, "ir.json")} not found (compile the spec first)`);
    process.exit(1);
  }
  let ir: { stats?: { networkParams?: number }; network?: { args?: Record<string, number> }; data?: { height: number; width: number } };
  try {
    ir = JSON.parse(readFileSync(join(generated, "ir.json"), "utf8"));
  } catch (e) {
    console.error(`cpu-vs-torch: ${join(generated, "ir.json")}: ${(e as Error).message}`);
    process.exit(1);
  }
  const image = { height: Number(ir.data?.height), width: Number(ir.data?.width) };
  const config: Config = {
    generated,
    batch: posInt("configs batch", m[2]),
    precision: (m[3] ?? "fp32") as Precision,
    sides: m[4] ? sides.filter((s) => s === m[4]) : sides,
    params: Number(ir.stats?.networkParams),
    args: ir.network?.args ?? {},
    image,
    split: splits[0],
    calibration: [],
    steps,
    warmup,
  };
  return config;
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
/** "family 25 model 17" and the cpuinfo flags that choose kernels (sdc's ISA levels, OpenBLAS's and oneDNN's). */
function cpuIds(): { id: string; flags: string[] } {
  try {
    const info = readFileSync("/proc/cpuinfo", "utf8").split("\n");
    const field = (k: string) => info.find((l) => new RegExp(`^${k}\\s*:`).test(l))?.split(":")[1].trim() ?? "?";
    const flags = field("flags").split(/\s+/).filter((f) => /^(avx2|fma|avx512\w*|amx\w*)$/.test(f));
    return { id: `family ${field("cpu family")} model ${field("model")}`, flags };
  } catch {
    return { id: "?", flags: [] };
  }
}
const host = { date: new Date().toISOString(), cpu: cpuModel(), cpuId: cpuIds().id, cpuFlags: cpuIds().flags, cores: cpus().length, loadAtStart: loadavg().map((x) => Number(x.toFixed(2))) };

// the PyTorch side runs without the machine's OpenBLAS overrides (torch_step.py also drops them,
// and forces SkylakeX itself where OpenBLAS falls back to Prescott on AVX-512) unless --torch-args
// has --keep-openblas-env; OMP_NUM_THREADS would override torch.set_num_threads' pool size
const torchEnv = { ...process.env };
delete torchEnv.OMP_NUM_THREADS;
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

function command(side: Side, c: Config, split: Split, n = steps, w = warmup): [string, string[], NodeJS.ProcessEnv] {
  const common = ["--generated", c.generated, "--batch", String(c.batch), "--context-tokens", String(tokens), "--steps", String(n), "--warmup", String(w), "--json"];
  const torchSide = ["--threads", String(split.blas), "--torch-threads", String(split.torch), "--autocast", c.precision === "bf16" ? "bf16" : "none"];
  if (side === "torch") return [values.python!, ["bench/torch_step.py", ...common, ...torchSide, ...torchArgs], torchEnv];
  return ["npx", ["tsx", "bench/step.ts", ...common, "--precision", c.precision, ...sdcArgs], process.env];
}

/** The line of a failed run's stderr that says what went wrong (not its stack frames or progress). */
function errorLine(stderr: string): string {
  const lines = stderr.split("\n").map((l) => l.trim()).filter((l) => l && !/^at |^step \d+\/|^Node\.js v|^\^+$/.test(l));
  const err = lines.filter((l) => /error|abort|killed|out of memory|out of bounds|exception/i.test(l));
  return (err.at(-1) ?? lines.at(-1) ?? "").slice(0, 400);
}

function runOnce(side: Side, c: Config, split = c.split, n = c.steps, w = c.warmup): Promise<Run> {
  const [cmd, argv, env] = command(side, c, split, n, w);
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
  config: Config;
}
const results: Result[] = [];
console.error(`cpu-vs-torch: ${host.cores} x ${host.cpu}, load ${host.loadAtStart.join(" ")}; ${rounds} rounds of ${warmup} + ${steps} steps; sdc ${sdcArgs.join(" ")}; torch ${values.python} bench/torch_step.py ${torchArgs.join(" ")}`);
for (const c of configs) {
  // PyTorch at its best: one short run per thread split, the fastest kept
  if (c.sides.includes("torch") && splits.length > 1) {
    for (const split of splits) {
      const run = await runOnce("torch", c, split, calibSteps, calibWarmup);
      c.calibration.push(run.ok ? { split: splitName(split), msPerStep: run.msPerStep } : { split: splitName(split), msPerStep: null, error: run.error });
      console.error(`  ${c.generated} batch ${c.batch} ${c.precision}, PyTorch split ${splitName(split)} (torch x OpenBLAS threads): ${run.ok ? `${run.msPerStep} ms/step` : `FAILED: ${run.error}`}`);
    }
    const ok = c.calibration.filter((x) => x.msPerStep !== null);
    if (ok.length) {
      const best = ok.reduce((a, b) => (b.msPerStep! < a.msPerStep! ? b : a));
      c.split = splits[c.calibration.indexOf(best)];
      // a fast step: enough timed steps for --min-round-seconds of PyTorch's, and half as many warmup
      // steps (sdc's host code and both sides' caches settle over the first tens of steps)
      const n = Math.ceil((minRoundS * 1000) / best.msPerStep!);
      if (n > c.steps) {
        c.steps = n;
        c.warmup = Math.max(c.warmup, Math.ceil(n / 2));
      }
    }
  }
  const r: Result = { generated: c.generated, batch: c.batch, runs: { torch: [], sdc: [] }, failed: {}, ratios: [], sides: c.sides, params: c.params, config: c };
  results.push(r);
  for (let i = 0; i < rounds; i++) {
    const got: Partial<Record<Side, RunOk>> = {};
    for (const side of c.sides) {
      if (r.failed[side]) continue;
      const run = await runOnce(side, c);
      r.runs[side].push(run);
      if (run.ok) {
        got[side] = run;
        console.error(`  ${c.generated} batch ${c.batch} ${c.precision}, round ${i + 1}/${rounds}, ${side}: ${run.msPerStep} ms/step (min ${run.minMs}), ${run.params.toLocaleString("en-US")} parameters, load ${run.load}`);
      } else {
        r.failed[side] = run.error;
        console.error(`  ${c.generated} batch ${c.batch} ${c.precision}, round ${i + 1}/${rounds}, ${side}: FAILED after ${run.seconds} s: ${run.error}`);
      }
    }
    if (got.torch && got.sdc) r.ratios.push(got.sdc.msPerStep / got.torch.msPerStep);
  }
}

// ---- the table --------------------------------------------------------------------------------
const oks = (rs: Run[]): RunOk[] => rs.filter((x): x is RunOk => x.ok);
const fmtMs = (ms: number): string => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(ms < 100 ? 1 : 0)} ms`);
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
    precision: r.config.precision === "bf16" ? "bf16 (PyTorch autocast; sdc --precision bf16)" : "fp32",
    split: r.sides.includes("torch") ? `${splitName(r.config.split)}${r.config.calibration.length ? ` (of ${r.config.calibration.map((x) => `${x.split}: ${x.msPerStep === null ? "failed" : fmtMs(x.msPerStep)}`).join(", ")})` : ""}` : "-",
    torch: cell(r, "torch"),
    sdc: cell(r, "sdc"),
    ratio: r.ratios.length ? `${median(r.ratios).toFixed(2)}x` : "-",
    paramsDiffer: reported.some((x) => x !== p),
  };
});
const header = ["network (parameters)", "batch", "precision", "PyTorch threads torch x BLAS (calibration)", "PyTorch ms/step", "sdc ms/step", "sdc / PyTorch"];
const rows = summary.map((x) => [x.network, String(x.batch), x.precision, x.split, x.torch, x.sdc, x.ratio]);
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
const firstTorch = results.flatMap((r) => oks(r.runs.torch))[0]?.raw;
const firstSdc = results.flatMap((r) => oks(r.runs.sdc))[0]?.raw;
const blas = firstTorch?.blas as { config?: string; core?: string } | undefined;
const loadAtEnd = loadavg().map((x) => Number(x.toFixed(2)));
console.log(`\n${host.date}, ${host.cores} x ${host.cpu} (${host.cpuId}; ${host.cpuFlags.join(" ") || "no AVX2/AVX-512/AMX flags"}), load average ${host.loadAtStart.join(" ")} at start, ${loadAtEnd.join(" ")} at end`);
const stepsLine = results.map((r) => `${r.generated.replace(/^generated\//, "")}:${r.batch}:${r.config.precision} ${r.config.warmup} + ${r.config.steps}`).join(", ");
console.log(`${rounds} alternating rounds per configuration, each a fresh process doing warmup + timed steps (--warmup ${warmup} + --steps ${steps}, more where PyTorch's step is short: at least ${minRoundS} s of timed steps): ${stepsLine}; ${tokens} context tokens; cells: median of the per-round medians (range); ratio: median of the per-round ratios`);
if (firstTorch)
  console.log(
    `PyTorch: torch ${String(firstTorch.torch)} (${String(firstTorch.python)}), ${blas?.config ?? "?"}, OpenBLAS core ${blas?.core ?? "?"}` +
      `${firstTorch.coreForced ? ` FORCED: OPENBLAS_CORETYPE=${String(firstTorch.coreForced)}` : " (its own choice)"}, Adam ${String(firstTorch.optimizer)}, threads per row below`,
  );
if (firstSdc) console.log(`sdc: bench/step.ts ${sdcArgs.join(" ")} --precision PRECISION: ${String(firstSdc.executor ?? firstSdc.backend)}${firstSdc.engine ? `, engine ${String(firstSdc.engine)}` : ""}, precision per row (bf16: GEMM operands rounded to bf16, fp32 accumulation; the rest fp32)`);
console.log(line(header));
console.log(line(widths.map((w) => "-".repeat(w))));
for (const row of rows) console.log(line(row));
for (const r of results) for (const side of r.sides) if (r.failed[side]) console.log(`${r.generated} batch ${r.batch}, ${side === "torch" ? "PyTorch" : "sdc"} failed: ${r.failed[side]}`);
for (const x of summary) if (x.paramsDiffer) console.log(`WARNING: ${x.network}: a side reports a parameter count other than ir.json's stats.networkParams`);

// ---- the GEMM table ---------------------------------------------------------------------------
/** [m, n, k] of the transformer's GEMMs at a configuration: M = batch x image tokens. */
function stepShapes(c: Config): [number, number, number][] {
  const w = c.args.heads * c.args.head_dim;
  const mlp = (c.args.mlp_ratio ?? 4) * w;
  const m = c.batch * (c.image.height / c.args.patch) * (c.image.width / c.args.patch);
  if (![w, mlp, m].every((x) => Number.isInteger(x) && x > 0)) return [];
  return [
    [m, w, w],
    [m, mlp, w],
    [m, w, mlp],
  ];
}
let gemmShapes: [number, number, number][] = [];
if (values.gemm === "auto") {
  const big = [...configs].sort((a, b) => b.params - a.params)[0];
  gemmShapes = big ? stepShapes(big) : [];
  if (big) console.log(`\nGEMMs of ${big.generated.replace(/^generated\//, "")} batch ${big.batch}'s step (q/k/v/out, MLP up, MLP down)`);
} else if (values.gemm !== "none") {
  gemmShapes = values.gemm!.split(",").map((x) => {
    const m = /^(\d+)x(\d+)x(\d+)$/.exec(x.trim());
    if (!m) usage(`--gemm takes auto, none or MxNxK,... got "${x}"`);
    return [Number(m[1]), Number(m[2]), Number(m[3])] as [number, number, number];
  });
}
interface GemmRow {
  layout: string;
  m: number;
  n: number;
  k: number;
  threads: number;
  sdcFp32: number | null;
  openblasFp32: number | null;
  sdcBf16: number | null;
  torchBf16: number | null;
}
const gemmRows: GemmRow[] = [];
const gemmNotes: string[] = [];
let gemmExecutor = "";
let gemmOpenblas = "";
let gemmTorch = "";
for (const [m, n, k] of gemmShapes) {
  const mnk = [String(m), String(n), String(k)];
  const sdc = spawnSync("npx", ["tsx", "bench/native-gemm.ts", "--m", mnk[0], "--n", mnk[1], "--k", mnk[2], "--reps", String(gemmReps), "--threads", "1,2", "--openblas", "--precision", "bf16", "--rounds", "2", "--json"], { encoding: "utf8", env: torchEnv, timeout: timeoutS * 1000 });
  const line = sdc.stdout?.trim().split("\n").reverse().find((l) => l.startsWith("{"));
  type NativeRow = { layout: string; threads: number; wallGflops: number; openblasWallGflops?: number; bf16WallGflops?: number };
  let native: { executor: string; openblas?: string; rows: NativeRow[] } | null = null;
  try {
    native = sdc.status === 0 && line ? JSON.parse(line) : null;
  } catch {
    native = null;
  }
  if (!native) gemmNotes.push(`${m}x${n}x${k}: bench/native-gemm.ts failed: ${errorLine(sdc.stderr ?? "") || `exit ${sdc.status}`}`);
  else {
    gemmExecutor = native.executor;
    gemmOpenblas = native.openblas ?? "";
  }
  const tb = spawnSync(values.python!, ["bench/torch_matmul.py", ...mnk, String(gemmReps), "--dtype", "bf16", "--threads", "1,2"], { encoding: "utf8", env: torchEnv, timeout: timeoutS * 1000 });
  const torchRows: { layout: string; threads: number; wallGflops: number; engine: string }[] = [];
  if (tb.status === 0) for (const l of tb.stdout.trim().split("\n")) if (l.startsWith("{")) torchRows.push(JSON.parse(l));
  if (tb.status !== 0) gemmNotes.push(`${m}x${n}x${k}: bench/torch_matmul.py failed: ${errorLine(tb.stderr ?? "") || `exit ${tb.status}`}`);
  if (torchRows[0]) gemmTorch = torchRows[0].engine;
  // the layer's three GEMMs at their own shapes (M tokens, N outputs, K inputs), and the weight
  // gradient as the step runs it (lowered as C^T = x^T dy: lower.ts transposedGemm)
  const own: [string, [number, number, number]][] = [["x W^T (forward)", [m, n, k]], ["dy W (input gradient)", [m, k, n]], ["dy^T x (weight gradient)", [n, k, m]], ["x^T dy (weight gradient, as a step runs it)", [k, n, m]]];
  for (const threads of [1, 2])
    for (const [layout, [gm, gn, gk]] of own) {
      const a = native?.rows.find((r) => r.layout === layout && r.threads === threads);
      const b = torchRows.find((r) => r.layout === layout && r.threads === threads);
      gemmRows.push({ layout, m: gm, n: gn, k: gk, threads, sdcFp32: a?.wallGflops ?? null, openblasFp32: a?.openblasWallGflops ?? null, sdcBf16: a?.bf16WallGflops ?? null, torchBf16: b?.wallGflops ?? null });
    }
  console.error(`  GEMM ${m}x${n}x${k} measured`);
}
if (gemmShapes.length) {
  const f = (x: number | null) => (x === null ? "failed" : x.toFixed(1));
  const gh = ["M x N x K", "layout", "threads", "sdc fp32", "OpenBLAS fp32", "sdc / OpenBLAS", "sdc bf16", "PyTorch bf16 matmul", "sdc / PyTorch bf16"];
  const gr = gemmRows.map((r) => [`${r.m} x ${r.n} x ${r.k}`, r.layout, String(r.threads), f(r.sdcFp32), f(r.openblasFp32), r.sdcFp32 !== null && r.openblasFp32 ? `${(r.sdcFp32 / r.openblasFp32).toFixed(2)}x` : "-", f(r.sdcBf16), f(r.torchBf16), r.sdcBf16 !== null && r.torchBf16 ? `${(r.sdcBf16 / r.torchBf16).toFixed(2)}x` : "-"]);
  const gw = gh.map((h, i) => Math.max(h.length, ...gr.map((row) => row[i].length)));
  const gl = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(gw[i])).join(" | ")} |`;
  console.log(`GFLOP/s (wall), best of 2 interleaved rounds of ${gemmReps} calls for sdc (fp32 and bf16: operands rounded to bf16, fp32 accumulation) and OpenBLAS; ${gemmExecutor}; ${gemmOpenblas}; PyTorch bf16: ${gemmTorch}, torch.set_num_threads = threads`);
  console.log(gl(gh));
  console.log(gl(gw.map((w) => "-".repeat(w))));
  for (const row of gr) console.log(gl(row));
  for (const n of gemmNotes) console.log(n);
}

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
    torch: { python: values.python, args: torchArgs.join(" "), version: firstTorch?.torch ?? null, blas: blas ?? null, coreForced: firstTorch?.coreForced ?? null, optimizer: firstTorch?.optimizer ?? null, splits: splits.map(splitName), calibSteps, calibWarmup },
    sdcBackend: firstSdc?.backend ?? null,
    sdcExecutor: firstSdc?.executor ?? null,
    sdcPrecision: "per config: fp32, or bf16 mixed precision (bench/step.ts --precision bf16)",
    gemm: gemmShapes.length ? { executor: gemmExecutor, openblas: gemmOpenblas, torch: gemmTorch, reps: gemmReps, rows: gemmRows, failed: gemmNotes } : null,
    configs: results.map((r, i) => ({
      generated: r.generated,
      batch: r.batch,
      steps: r.config.steps,
      warmup: r.config.warmup,
      precision: r.config.precision,
      torchSplit: splitName(r.config.split),
      torchCalibration: r.config.calibration,
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
process.exit(results.some((r) => Object.keys(r.failed).length > 0) || gemmNotes.length > 0 ? 1 : 0);
