/**
 * bench/native-adam: milliseconds of the native executor's optimizer kernel (gradient norm,
 * clipping, Adam, EMA over the flat buffers: one instruction of a step's program) alone, for a
 * parameter count (default sd3-seed's 64.2M), on each thread count, beside a copy kernel (the
 * memory's rate on this machine). Prints wall and process CPU time and
 * the bytes per second each reaches (Adam reads the gradient twice, and reads and writes the
 * parameters, both moments and the EMA: 40 bytes per parameter).
 *
 *   npx tsx bench/native-adam.ts [--n 64231744] [--reps 10] [--threads 1,2]
 */
import { benchArgs } from "./args.ts";
import { ProgramWriter } from "../runtime/executors/native/lower.ts";
import { lowerGraph, nativeDetail, requireNative } from "../runtime/executors/native/native.ts";
import { Graph } from "../runtime/graph/graph.ts";

const { values } = benchArgs(import.meta.url, {
  options: {
    n: { type: "string", default: "64231744" },
    reps: { type: "string", default: "10" },
    threads: { type: "string" },
    rounds: { type: "string", default: "2" },
    json: { type: "boolean", default: false },
  },
});
const n = Number(values.n);
const reps = Number(values.reps);
if (!Number.isInteger(n) || n < 16 || n % 16 !== 0 || !(reps >= 1)) {
  console.error("--n must be a multiple of 16 (at least 16), --reps at least 1");
  process.exit(2);
}
const addon = requireNative();
const threadCounts = values.threads ? values.threads.split(",").map(Number) : [addon.threads()];

// one arena: p, g, m, v, ema (n floats each), then hyper (4) and stats (2)
const arena = new ArrayBuffer((5 * n + 32) * 4);
const f = new Float32Array(arena);
for (let i = 0; i < n; i++) {
  f[i] = Math.sin(i) * 0.1; // parameters
  f[n + i] = Math.cos(i) * 1e-3; // gradients
  f[4 * n + i] = f[i]; // EMA
}
f.set([1e-4, 0.1, Math.sqrt(1 - 0.999), 0.999], 5 * n);
const adam = new ProgramWriter();
const at = (i: number) => ({ arena: 0, offset: i * n });
adam.adam({ p: at(0), g: at(1), m: at(2), v: at(3), ema: at(4), hyper: { arena: 0, offset: 5 * n }, stats: { arena: 0, offset: 5 * n + 16 }, n, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, clip: 1, decoupled: false });
const adamProgram = addon.build(adam.finish(), [arena]);
// the memory's rate: a copy kernel (a slice of an input) of 5n/2 floats, 20 bytes per parameter
const g = new Graph();
const x = g.input("x", [(5 * n) / 2 + 16]);
const copy = lowerGraph({ graph: g, v: g.slice(x, 0, 0, (5 * n) / 2), batch: 1 }, () => {
  throw new Error("no parameters");
});
const copyProgram = addon.build(copy.program, copy.arenas);

type Row = { kernel: string; threads: number; wallMs: number; cpuMs: number; gbPerS: number };
function time(kernel: string, program: object, threads: number, bytes: number): Row {
  addon.threads(threads);
  for (let i = 0; i < 2; i++) addon.run(program); // warm: pages, clocks
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) addon.run(program);
  const wall = (performance.now() - t0) / reps;
  const u = process.cpuUsage(cpu0);
  return { kernel, threads, wallMs: Number(wall.toFixed(2)), cpuMs: Number(((u.user + u.system) / 1000 / reps).toFixed(2)), gbPerS: Number((bytes / (wall / 1000) / 1e9).toFixed(1)) };
}

const best = new Map<string, Row>();
for (let r = 0; r < Number(values.rounds); r++)
  for (const t of threadCounts)
    for (const [name, p, bytes] of [["adam + EMA", adamProgram, 40 * n], ["copy", copyProgram, 20 * n]] as const) {
      const row = time(name, p, t, bytes);
      const key = `${name}/${t}`;
      if (!best.has(key) || best.get(key)!.wallMs > row.wallMs) best.set(key, row);
    }
const rows = [...best.values()];
if (values.json) console.log(JSON.stringify({ bench: "native-adam", executor: nativeDetail(), n, reps, rows }));
else {
  console.log(`${nativeDetail()}, ${n} parameters, best of ${values.rounds} rounds of ${reps} runs (40 bytes moved per parameter)`);
  console.table(rows);
}
