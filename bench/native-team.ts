/**
 * bench/native-team: the cost of the native thread team's parallel regions. Runs programs of
 * --kernels layer norms in a chain, each a small parallel region (rows x d floats: 2 chunks at
 * the default 512 x 64, a few microseconds of work), on one thread and on --threads, interleaved
 * (--rounds times, the best kept), and prints microseconds per kernel and the team's overhead per
 * region: (time at t threads) - (time on one thread) / t, the time the fork/join and the idle
 * waiting add to a region that would split perfectly.
 *
 *   npx tsx bench/native-team.ts [--rows 512,1024,2048] [--d 64] [--kernels 400] [--reps 50] [--threads 2] [--json]
 */
import { benchArgs } from "./args.ts";
import { Graph } from "../runtime/graph/graph.ts";
import { lowerGraph, nativeDetail, paramArena, requireNative } from "../runtime/executors/native/native.ts";
import { Rng } from "../runtime/util/rng.ts";

const { values } = benchArgs(import.meta.url, {
  options: {
    rows: { type: "string", default: "512,1024,2048" },
    d: { type: "string", default: "64" },
    kernels: { type: "string", default: "400" },
    reps: { type: "string", default: "50" },
    rounds: { type: "string", default: "5" },
    threads: { type: "string", default: "2" },
    json: { type: "boolean", default: false },
  },
});
const [D, kernels, reps, rounds, threads] = [values.d, values.kernels, values.reps, values.rounds, values.threads].map(Number);
const rowCounts = values.rows!.split(",").map(Number);
if (![D, kernels, reps, rounds, threads, ...rowCounts].every((x) => Number.isInteger(x) && x > 0)) {
  console.error("--rows, --d, --kernels, --reps, --rounds and --threads must be positive integers");
  process.exit(2);
}
const addon = requireNative();
const rng = new Rng(0);

// a chain of `kernels` layer norms over [rows, D]: one parallel region each
function program(rows: number): () => void {
  const g = new Graph();
  let x = g.param("x", [rows, D]);
  for (let i = 0; i < kernels; i++) x = g.layerNorm(x, 1e-5);
  const l = lowerGraph({ graph: g, v: x, batch: 1 }, paramArena(new Map([["x", rng.normals(rows * D)]])));
  const p = addon.build(l.program, l.arenas);
  return () => addon.run(p);
}

// microseconds per kernel on t threads
function time(run: () => void, t: number): number {
  addon.threads(t);
  for (let i = 0; i < Math.max(3, reps / 5); i++) run();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) run();
  return ((performance.now() - t0) * 1000) / (reps * kernels);
}

const rows = rowCounts.map((r) => {
  const run = program(r);
  let one = Infinity;
  let many = Infinity;
  for (let i = 0; i < rounds; i++) {
    one = Math.min(one, time(run, 1));
    many = Math.min(many, time(run, threads));
  }
  const fix = (x: number) => Number(x.toFixed(2));
  return { rows: r, d: D, usPerKernel1: fix(one), [`usPerKernel${threads}`]: fix(many), speedup: fix(one / many), overheadUsPerRegion: fix(many - one / threads) };
});
addon.threads(0);
if (values.json) console.log(JSON.stringify({ executor: nativeDetail(), kernels, rows }));
else {
  console.log(`${nativeDetail()}; ${kernels} layer norms a program, best of ${rounds} interleaved rounds`);
  console.table(rows);
}
