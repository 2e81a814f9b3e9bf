/**
 * bench/native-gemm: GFLOP/s of the native executor's GEMM for the three GEMMs a training step runs
 * for one linear layer of M tokens, K inputs and N outputs, each at its own shape: x W^T (forward,
 * C[M, N], K summed), dy W (input gradient, C[M, K], N summed) and dy^T x (weight gradient,
 * C[N, K], the M tokens summed), and the weight gradient as a training step runs it: x^T dy (C[K, N],
 * row by row: the step's weight gradient is stored [out, in] column by column, which the lowering
 * turns into C^T = x^T dy; lower.ts transposedGemm). The rows give each GEMM's own m x n x k; all
 * are 2MNK FLOPs. Prints wall and process CPU GFLOP/s (the CPU figure is the
 * one to read on a loaded machine with SDC_THREADS=1).
 *
 *   npx tsx bench/native-gemm.ts --m 1024 --n 1152 --k 384 [--reps 20] [--threads 1,2] [--openblas]
 *
 * --openblas: OpenBLAS's sgemm (bench/openblas_sgemm.py: Debian's libopenblas0-pthread through
 * ctypes) on the same layouts and thread counts, measured in turn with sdc (--rounds times, the
 * best of each kept), and the ratios sdc / OpenBLAS (wall; and CPU per thread, the figure to
 * read on a loaded machine). OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE of the environment are
 * dropped for OpenBLAS, as bench/cpu-vs-torch.ts does (said on the first line; --keep-openblas-env
 * keeps them): a machine-wide OPENBLAS_CORETYPE=Haswell halves its rate on an AVX-512 CPU. When
 * OpenBLAS does not know an AVX-512 CPU and falls back to its Prescott kernels,
 * OPENBLAS_CORETYPE=SKYLAKEX is set (the core is printed).
 *
 * --precision bf16: the bf16 GEMM (operands rounded to bf16, fp32 accumulation; vdpbf16ps at the
 * avx512bf16 ISA level) beside the fp32 one on the same layouts, measured in turn (--rounds
 * times, the best of each kept), with the ratio bf16 / fp32 (wall; CPU per thread).
 *
 * --cold: before each timed call, a pass over 2 x 64 MiB (not timed) evicts the caches, so the
 * operands come from memory as they do inside a training step (where the GEMM's inputs were
 * written many kernels earlier); the figures are then sums over the calls alone.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { benchArgs } from "./args.ts";
import { Graph } from "../runtime/graph/graph.ts";
import { lowerGraph, nativeDetail, paramArena, requireNative } from "../runtime/executors/native/native.ts";
import { Rng } from "../runtime/util/rng.ts";
import { cacheEvictor } from "./evict.ts";

const { values } = benchArgs(import.meta.url, {
  options: {
    m: { type: "string", default: "1024" },
    n: { type: "string", default: "1152" },
    k: { type: "string", default: "384" },
    reps: { type: "string", default: "20" },
    threads: { type: "string" },
    rounds: { type: "string", default: "3" },
    openblas: { type: "boolean", default: false },
    /** keep OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE from the environment for OpenBLAS (default: dropped, as bench/cpu-vs-torch.ts does) */
    "keep-openblas-env": { type: "boolean", default: false },
    precision: { type: "string", default: "fp32" },
    json: { type: "boolean", default: false },
    cold: { type: "boolean", default: false },
  },
});
const [M, N, K, reps] = [values.m, values.n, values.k, values.reps].map(Number);
const addon = requireNative();
const threadCounts = values.threads ? values.threads.split(",").map(Number) : [addon.threads()];
if (values.precision !== "fp32" && values.precision !== "bf16") {
  console.error(`--precision must be fp32 or bf16 (got ${values.precision})`);
  process.exit(2);
}
const bf16 = values.precision === "bf16";
const rounds = values.openblas || bf16 ? Number(values.rounds) : 1;
const rng = new Rng(0);
type Prec = { precision?: "bf16" };
// one linear layer (M tokens, K inputs, N outputs): its three GEMMs at their own shapes [m, n, k]
const layouts: [string, (g: Graph, p: Prec) => ReturnType<Graph["gemm"]>, number[][], [number, number, number]][] = [
  ["x W^T (forward)", (g, p) => g.gemm(g.param("p0", [M, K]), g.param("p1", [N, K]), [M, N], { batch: [1, 1], m: M, n: N, k: K, alpha: 1, a: [0, 0, K, 1], b: [0, 0, 1, K], c: [0, 0, N, 1], ...p }), [[M, K], [N, K]], [M, N, K]],
  ["dy W (input gradient)", (g, p) => g.gemm(g.param("p0", [M, N]), g.param("p1", [N, K]), [M, K], { batch: [1, 1], m: M, n: K, k: N, alpha: 1, a: [0, 0, N, 1], b: [0, 0, K, 1], c: [0, 0, K, 1], ...p }), [[M, N], [N, K]], [M, K, N]],
  ["dy^T x (weight gradient)", (g, p) => g.gemm(g.param("p0", [M, N]), g.param("p1", [M, K]), [N, K], { batch: [1, 1], m: N, n: K, k: M, alpha: 1, a: [0, 0, 1, N], b: [0, 0, K, 1], c: [0, 0, K, 1], ...p }), [[M, N], [M, K]], [N, K, M]],
  ["x^T dy (weight gradient, as a step runs it)", (g, p) => g.gemm(g.param("p0", [M, K]), g.param("p1", [M, N]), [K, N], { batch: [1, 1], m: K, n: N, k: M, alpha: 1, a: [0, 0, 1, K], b: [0, 0, N, 1], c: [0, 0, N, 1], ...p }), [[M, K], [M, N]], [K, N, M]],
];
const compileAll = (p: Prec) =>
  layouts.map(([name, build, shapes]) => {
    const g = new Graph();
    const y = build(g, p);
    const params = new Map(shapes.map((s, i) => [`p${i}`, rng.normals(s[0] * s[1])]));
    // the program alone, run without reading its output back (a copy of C per call is no part of a GEMM)
    const l = lowerGraph({ graph: g, v: y, batch: 1 }, paramArena(params));
    const program = addon.build(l.program, l.arenas);
    return { name, run: () => addon.run(program) };
  });
const compiled = compileAll({});
const compiledBf16 = bf16 ? compileAll({ precision: "bf16" }) : [];

/** --cold: a pass over 2 x 64 MiB (y = 2 x), run before each timed call */
const evict = values.cold ? cacheEvictor(addon) : null;

type Figures = { wallGflops: number; cpuGflopsPerThread: number };
/** seconds of wall and process CPU time of `reps` calls (each after an eviction with --cold) */
function timeCalls(run: () => void): { wall: number; cpu: number } {
  let wall = 0;
  let cpu = 0;
  const calls = evict ? reps : 1;
  for (let c = 0; c < calls; c++) {
    evict?.();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < reps / calls; i++) run();
    wall += (performance.now() - t0) / 1000;
    const u = process.cpuUsage(cpu0);
    cpu += (u.user + u.system) / 1e6;
  }
  return { wall, cpu };
}
function sdc(threads: number, programs = compiled): Figures[] {
  addon.threads(threads);
  return programs.map(({ run }) => {
    for (let i = 0; i < Math.max(3, reps / 2); i++) run(); // warm: clocks, pages
    const { wall, cpu } = timeCalls(run);
    const gf = (2 * M * N * K * reps) / 1e9;
    return { wallGflops: gf / wall, cpuGflopsPerThread: gf / cpu };
  });
}

// OpenBLAS at its best: without the machine's overrides (an OPENBLAS_CORETYPE=Haswell in the
// environment halves its rate on an AVX-512 CPU, and nothing in the table would show why), unless
// --keep-openblas-env; forced to its SkylakeX kernels where it falls back to Prescott on an
// AVX-512 CPU
const avx512 = /\bavx512f\b/.test(readFileSync("/proc/cpuinfo", "utf8"));
const openblasEnv: NodeJS.ProcessEnv = { ...process.env };
const dropped = values["keep-openblas-env"] ? [] : ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"].filter((k) => openblasEnv[k] !== undefined).map((k) => `${k}=${openblasEnv[k]}`);
if (!values["keep-openblas-env"]) {
  delete openblasEnv.OPENBLAS_CORETYPE;
  delete openblasEnv.OPENBLAS_L2_SIZE;
}
let coretype = openblasEnv.OPENBLAS_CORETYPE;
function openblas(threads: number): (Figures & { core: string })[] {
  const r = spawnSync("/usr/bin/python3", ["bench/openblas_sgemm.py", String(M), String(N), String(K), String(reps)], { encoding: "utf8", env: { ...openblasEnv, OPENBLAS_NUM_THREADS: String(threads), ...(coretype ? { OPENBLAS_CORETYPE: coretype } : {}) } });
  if (r.status !== 0) throw new Error(`bench/openblas_sgemm.py failed: ${r.stderr.trim().slice(-400)}`);
  const rows = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
  if (!coretype && avx512 && rows[0].core === "Prescott") {
    coretype = "SKYLAKEX";
    return openblas(threads);
  }
  return rows;
}

const best = (a: Figures | undefined, b: Figures): Figures => (!a ? b : { wallGflops: Math.max(a.wallGflops, b.wallGflops), cpuGflopsPerThread: Math.max(a.cpuGflopsPerThread, b.cpuGflopsPerThread) });
const rows: Record<string, unknown>[] = [];
let core = "";
for (const t of threadCounts) {
  const mine: (Figures | undefined)[] = [];
  const theirs: (Figures | undefined)[] = [];
  const mineBf16: (Figures | undefined)[] = [];
  for (let r = 0; r < rounds; r++) {
    sdc(t).forEach((f, i) => (mine[i] = best(mine[i], f)));
    if (bf16) sdc(t, compiledBf16).forEach((f, i) => (mineBf16[i] = best(mineBf16[i], f)));
    if (values.openblas)
      openblas(t).forEach((f, i) => {
        theirs[i] = best(theirs[i], f);
        core = f.core;
      });
  }
  compiled.forEach(({ name }, i) => {
    const a = mine[i]!;
    const [m, n, k] = layouts[i][3];
    const row: Record<string, unknown> = { layout: name, m, n, k, threads: t, wallGflops: Number(a.wallGflops.toFixed(1)), cpuGflopsPerThread: Number(a.cpuGflopsPerThread.toFixed(1)) };
    const b = theirs[i];
    const h = mineBf16[i];
    if (h) Object.assign(row, { bf16WallGflops: Number(h.wallGflops.toFixed(1)), bf16CpuGflopsPerThread: Number(h.cpuGflopsPerThread.toFixed(1)), bf16WallRatio: Number((h.wallGflops / a.wallGflops).toFixed(2)), bf16CpuRatio: Number((h.cpuGflopsPerThread / a.cpuGflopsPerThread).toFixed(2)) });
    if (b) Object.assign(row, { openblasWallGflops: Number(b.wallGflops.toFixed(1)), openblasCpuGflopsPerThread: Number(b.cpuGflopsPerThread.toFixed(1)), wallRatio: Number((a.wallGflops / b.wallGflops).toFixed(2)), cpuRatio: Number((a.cpuGflopsPerThread / b.cpuGflopsPerThread).toFixed(2)) });
    rows.push(row);
  });
}
const openblasLine = values.openblas ? `OpenBLAS ${core} kernels${coretype ? ` (OPENBLAS_CORETYPE=${coretype})` : " (its own choice)"}${dropped.length ? `, ${dropped.join(" ")} of the environment dropped (--keep-openblas-env keeps it)` : ""}` : "";
if (values.json) console.log(JSON.stringify({ executor: nativeDetail(), openblas: openblasLine || undefined, rows }));
else {
  console.log(nativeDetail() + (evict ? "; caches evicted before each call" : "") + (openblasLine ? `; ${openblasLine}` : "") + (bf16 ? "; bf16 beside fp32" : "") + (rounds > 1 ? `; best of ${rounds} interleaved rounds` : ""));
  console.table(rows);
}
