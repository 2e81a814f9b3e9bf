/**
 * bench/native-gemm: GFLOP/s of the native executor's GEMM for the layouts a training step uses
 * (x W^T forward, dy W backward, dy^T x weight gradients, batched attention), at the shapes of a
 * compiled spec's step or given ones. Prints wall and process CPU GFLOP/s (the CPU figure is the
 * one to read on a loaded machine with SDC_THREADS=1).
 *
 *   npx tsx bench/native-gemm.ts --m 1024 --n 1152 --k 384 [--reps 20]
 */
import { parseArgs } from "node:util";
import { Graph } from "../runtime/graph/graph.ts";
import { compileGraph, nativeDetail, paramArena } from "../runtime/executors/native/native.ts";
import { Rng } from "../runtime/util/rng.ts";

const { values } = parseArgs({ options: { m: { type: "string", default: "1024" }, n: { type: "string", default: "1152" }, k: { type: "string", default: "384" }, reps: { type: "string", default: "20" }, json: { type: "boolean", default: false } } });
const [M, N, K, reps] = [values.m, values.n, values.k, values.reps].map(Number);
const rng = new Rng(0);
const rows: Record<string, unknown>[] = [];
const layouts: [string, (g: Graph) => ReturnType<Graph["gemm"]>, number[][]][] = [
  ["x W^T (forward)", (g) => g.linear(g.param("p0", [M, K]), g.param("p1", [N, K]), null), [[M, K], [N, K]]],
  ["dy W (input gradient)", (g) => g.gemm(g.param("p0", [M, K]), g.param("p1", [K, N]), [M, N], { batch: [1, 1], m: M, n: N, k: K, alpha: 1, a: [0, 0, K, 1], b: [0, 0, N, 1], c: [0, 0, N, 1] }), [[M, K], [K, N]]],
  ["dy^T x (weight gradient)", (g) => g.gemm(g.param("p0", [K, M]), g.param("p1", [K, N]), [M, N], { batch: [1, 1], m: M, n: N, k: K, alpha: 1, a: [0, 0, 1, M], b: [0, 0, N, 1], c: [0, 0, N, 1] }), [[K, M], [K, N]]],
];
for (const [name, build, shapes] of layouts) {
  const g = new Graph();
  const y = build(g);
  const params = new Map(shapes.map((s, i) => [`p${i}`, rng.normals(s[0] * s[1])]));
  const c = compileGraph({ graph: g, v: y, batch: 1 }, paramArena(params));
  for (let i = 0; i < Math.max(3, reps / 2); i++) c.run(new Map()); // warm: caches, clocks, pages
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) c.run(new Map());
  const wall = (performance.now() - t0) / 1000;
  const u = process.cpuUsage(cpu0);
  const cpu = (u.user + u.system) / 1e6;
  const gf = (2 * M * N * K * reps) / 1e9;
  rows.push({ layout: name, m: M, n: N, k: K, wallGflops: Number((gf / wall).toFixed(1)), cpuGflopsPerThread: Number((gf / cpu).toFixed(1)) });
}
if (values.json) console.log(JSON.stringify({ executor: nativeDetail(), rows }));
else {
  console.log(nativeDetail());
  console.table(rows);
}
