/**
 * bench/contention: the native engine with other CPU-bound processes on the machine. Times a
 * training step (bench/step.ts --engine static) and, with --sample, sampling (`sdc sample`, ms per
 * image, from a one-step checkpoint of --sample-generated) on one thread, on the default thread
 * count (the team's workers kept off the caller's CPU: SDC_WORKERS=apart, the default) and on the
 * default count with SDC_WORKERS=anywhere (the OS places them, as before 2026-12-07), interleaved,
 * first as the machine is, then with --load busy-looping processes started beside it. Prints the
 * median over --rounds of each, each team's ratio to one thread and how often a worker moved off
 * the caller's CPU (median per run). The default must never be slower than one thread (ratio <= 1).
 *
 *   npx tsx bench/contention.ts --generated generated/sd3-tiny --batch 64 [--load 2] [--rounds 3] [--sample] [--json]
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { benchArgs } from "./args.ts";
import { availableCpus, nativeDetail } from "../runtime/executors/native/native.ts";

const { values } = benchArgs(import.meta.url, {
  options: {
    generated: { type: "string", default: "generated/sd3-tiny" },
    batch: { type: "string", default: "64" },
    steps: { type: "string", default: "15" },
    rounds: { type: "string", default: "3" },
    /** competing busy-loop processes (default: one per CPU this process may use) */
    load: { type: "string" },
    /** also time sampling (`sdc sample`, 2 prompts x --sample-n images, 50 Euler steps at CFG 2) */
    sample: { type: "boolean", default: false },
    "sample-generated": { type: "string", default: "generated/sd3-cpu" },
    "sample-n": { type: "string", default: "32" },
    json: { type: "boolean", default: false },
  },
});
const cpusHere = availableCpus();
const load = values.load !== undefined ? Number(values.load) : cpusHere;
const rounds = Number(values.rounds);
type Workers = "apart" | "anywhere";
/** ms per step or image; the worker moves of the run (null: the command does not report them) */
type Timing = { ms: number; moves: number | null };

function cli(args: string[], env: NodeJS.ProcessEnv, what: string): string {
  const r = spawnSync(process.execPath, args, { encoding: "utf8", env: { ...process.env, ...env } });
  if (r.status !== 0) throw new Error(`${what} failed (${JSON.stringify(env)}): ${(r.stderr ?? "").slice(-500)}`);
  return `${r.stdout}\n${r.stderr}`;
}

/** ms per training step (median over --steps) */
function step(threads: number, workers: Workers): Timing {
  const out = cli(["--import", "tsx", "bench/step.ts", "--generated", values.generated!, "--batch", values.batch!, "--engine", "static", "--backend", "cpu", "--steps", values.steps!, "--warmup", "3", "--json"], { SDC_THREADS: String(threads), SDC_WORKERS: workers }, "bench/step.ts");
  const r = JSON.parse(out.split("\n").find((l) => l.startsWith("{"))!) as { msPerStep: number; workerMoves: number };
  return { ms: r.msPerStep, moves: r.workerMoves };
}

// sampling: a one-step checkpoint (the weights do not change the work)
let ckpt = "";
function sample(threads: number, workers: Workers): Timing {
  const out = cli(["bin/sdc.mjs", "sample", values["sample-generated"]!, "--checkpoint", ckpt, "--prompt", "7", "--prompt", "seven", "--n", values["sample-n"]!, "--backend", "cpu", "--out", join(ckpt, "grid.png")], { SDC_THREADS: String(threads), SDC_WORKERS: workers }, "sdc sample");
  const m = /\((\d+) images, .*?, ([\d.]+) s\)/.exec(out);
  if (!m) throw new Error(`sdc sample printed no timing: ${out.slice(-300)}`);
  return { ms: (1000 * Number(m[2])) / Number(m[1]), moves: null };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

type Row = { task: string; condition: string; oneThreadMs: number; defaultMs: number; ratio: number; workerMoves: number | null; anywhereMs: number; anywhereRatio: number };
function measure(task: string, run: (threads: number, w: Workers) => Timing, condition: string): Row {
  const one: number[] = [];
  const all: number[] = [];
  const anywhere: number[] = [];
  const moves: (number | null)[] = [];
  for (let i = 0; i < rounds; i++) {
    one.push(run(1, "apart").ms);
    const a = run(cpusHere, "apart");
    all.push(a.ms);
    moves.push(a.moves);
    anywhere.push(run(cpusHere, "anywhere").ms);
  }
  const [o, d, w] = [median(one), median(all), median(anywhere)];
  return { task, condition, oneThreadMs: o, defaultMs: d, ratio: d / o, workerMoves: moves.includes(null) ? null : median(moves as number[]), anywhereMs: w, anywhereRatio: w / o };
}

function startLoad(n: number): ChildProcess[] {
  return Array.from({ length: n }, () => spawn(process.execPath, ["-e", "for (;;) {}"], { stdio: "ignore" }));
}

const tasks: [string, (t: number, w: Workers) => Timing][] = [[`training step, ${values.generated} batch ${values.batch} (ms/step)`, step]];
if (values.sample) {
  ckpt = mkdtempSync(join(tmpdir(), "sdc-contention-"));
  cli(["bin/sdc.mjs", "train", values["sample-generated"]!, "--steps", "1", "--no-progress", "--backend", "cpu", "--out", ckpt], {}, "sdc train (the checkpoint to sample)");
  tasks.push([`sampling, ${values["sample-generated"]} (ms/image)`, sample]);
}
const rows: Row[] = [];
try {
  for (const [task, run] of tasks) rows.push(measure(task, run, "machine as it is"));
  const busy = startLoad(load);
  try {
    for (const [task, run] of tasks) rows.push(measure(task, run, `+ ${load} busy-loop process${load === 1 ? "" : "es"}`));
  } finally {
    for (const p of busy) p.kill("SIGKILL");
  }
} finally {
  if (ckpt) rmSync(ckpt, { recursive: true, force: true });
}

const head = { bench: "contention", executor: nativeDetail(), cpu: cpus()[0]?.model ?? "?", cpusThisProcess: cpusHere, generated: values.generated, batch: Number(values.batch), rounds, date: new Date().toISOString() };
if (values.json) console.log(JSON.stringify({ ...head, rows }));
else {
  console.log(`${head.executor}; ${head.cpu}; ${cpusHere} CPUs for this process; median of ${rounds} interleaved rounds`);
  for (const task of tasks.map((t) => t[0])) {
    console.log(`\n${task}`);
    console.log(`condition                      | 1 thread | ${cpusHere} threads (default: apart) | ratio | moves/run | ${cpusHere} threads, SDC_WORKERS=anywhere | ratio`);
    for (const r of rows.filter((x) => x.task === task)) console.log(`${r.condition.padEnd(30)} | ${r.oneThreadMs.toFixed(1).padStart(8)} | ${r.defaultMs.toFixed(1).padStart(26)} | ${r.ratio.toFixed(2).padStart(5)} | ${(r.workerMoves === null ? "-" : String(r.workerMoves)).padStart(9)} | ${r.anywhereMs.toFixed(1).padStart(32)} | ${r.anywhereRatio.toFixed(2)}`);
  }
}
