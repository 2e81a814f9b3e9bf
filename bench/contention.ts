/**
 * bench/contention: the native engine's training step with other CPU-bound processes on the
 * machine. Runs bench/step.ts (--engine static) on one thread and on the default thread count,
 * interleaved, first as the machine is, then with --load busy-looping processes started beside
 * it, and prints ms/step for each (median over --rounds) and the ratio of the default thread
 * count to one thread. The default must never be slower than one thread (ratio <= 1).
 *
 *   npx tsx bench/contention.ts --generated generated/sd3-tiny --batch 64 [--load 2] [--rounds 3] [--json]
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { cpus } from "node:os";
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
    json: { type: "boolean", default: false },
  },
});
const cpusHere = availableCpus();
const load = values.load !== undefined ? Number(values.load) : cpusHere;
const rounds = Number(values.rounds);

function step(threads: number): number {
  const r = spawnSync(process.execPath, ["--import", "tsx", "bench/step.ts", "--generated", values.generated!, "--batch", values.batch!, "--engine", "static", "--backend", "cpu", "--steps", values.steps!, "--warmup", "3", "--json"], {
    encoding: "utf8",
    env: { ...process.env, SDC_THREADS: String(threads) },
  });
  const line = r.stdout.split("\n").find((l) => l.startsWith("{"));
  if (r.status !== 0 || !line) throw new Error(`bench/step.ts failed (SDC_THREADS=${threads}): ${r.stderr.slice(-500)}`);
  return JSON.parse(line).msPerStep as number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function measure(): { one: number; all: number } {
  const one: number[] = [];
  const all: number[] = [];
  for (let i = 0; i < rounds; i++) {
    one.push(step(1));
    all.push(step(cpusHere));
  }
  return { one: median(one), all: median(all) };
}

function startLoad(n: number): ChildProcess[] {
  return Array.from({ length: n }, () => spawn(process.execPath, ["-e", "for (;;) {}"], { stdio: "ignore" }));
}

const rows: { condition: string; oneThreadMs: number; defaultMs: number; ratio: number }[] = [];
const asIs = measure();
rows.push({ condition: "machine as it is", oneThreadMs: asIs.one, defaultMs: asIs.all, ratio: asIs.all / asIs.one });
const busy = startLoad(load);
try {
  const loaded = measure();
  rows.push({ condition: `+ ${load} busy-loop process${load === 1 ? "" : "es"}`, oneThreadMs: loaded.one, defaultMs: loaded.all, ratio: loaded.all / loaded.one });
} finally {
  for (const p of busy) p.kill("SIGKILL");
}

const head = { bench: "contention", executor: nativeDetail(), cpu: cpus()[0]?.model ?? "?", cpusThisProcess: cpusHere, generated: values.generated, batch: Number(values.batch), rounds, date: new Date().toISOString() };
if (values.json) console.log(JSON.stringify({ ...head, rows }));
else {
  console.log(`${head.executor}; ${head.cpu}; ${cpusHere} CPUs for this process; ${values.generated} batch ${values.batch}; median of ${rounds} interleaved rounds`);
  console.log("condition                      | 1 thread ms/step | " + `${cpusHere} threads ms/step | ratio`);
  for (const r of rows) console.log(`${r.condition.padEnd(30)} | ${r.oneThreadMs.toFixed(1).padStart(16)} | ${r.defaultMs.toFixed(1).padStart(16)} | ${r.ratio.toFixed(2)}`);
}
