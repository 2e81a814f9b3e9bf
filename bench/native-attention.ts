/**
 * bench/native-attention: milliseconds per call of the native executor's attention-shaped kernels
 * at a step's shapes (batch B, heads H, tokens N, head width D; the README job's sd3 cpu variant by
 * default: 64 x 3 heads x 72 tokens x 32): the five batched GEMMs of attention forward and
 * backward (q k^T, P v, P^T dO, dS k, dS^T q) and softmax and its gradient, in fp32 and bf16, with
 * each kernel's GFLOP/s (GEMMs) or GB/s (the rest: operands and output, once).
 *
 *   npx tsx bench/native-attention.ts [--b 64 --h 3 --n 72 --d 32] [--threads 1,2] [--reps 30]
 *       [--against build-old/sdc_cpu.node] [--rounds 3] [--cold]
 *
 * --cold: before each timed call, a 64 MiB elementwise pass (not timed) evicts the caches, so the
 * operands come from memory as they do inside a step (whose activations outgrow the L3), not from
 * the L2 and L3 where the previous call left them.
 *
 * --against ADDON: the same kernels on another build of the addon (a copy of build/Release/sdc_cpu.node
 * made before a change), measured in turn with this one (--rounds times, each in its own process,
 * the best of each kept), and the ratio this / that: side by side in one run, as a shared machine
 * needs.
 */
import { spawnSync } from "node:child_process";
import { benchArgs } from "./args.ts";
import { Graph, type GemmLayout, type Sym } from "../runtime/graph/graph.ts";
import { lowerGraph, paramArena, requireNative } from "../runtime/executors/native/native.ts";
import { Rng } from "../runtime/util/rng.ts";
import { cacheEvictor } from "./evict.ts";

const { values } = benchArgs(import.meta.url, {
  options: {
    b: { type: "string", default: "64" },
    h: { type: "string", default: "3" },
    n: { type: "string", default: "72" },
    d: { type: "string", default: "32" },
    reps: { type: "string", default: "30" },
    threads: { type: "string" },
    against: { type: "string" },
    rounds: { type: "string", default: "3" },
    cold: { type: "boolean", default: false },
    json: { type: "boolean", default: false },
  },
});
const [B, H, N, D, reps] = [values.b, values.h, values.n, values.d, values.reps].map(Number);
if (![B, H, N, D, reps].every((x) => Number.isInteger(x) && x > 0)) {
  console.error("--b, --h, --n, --d and --reps must be positive whole numbers");
  process.exit(2);
}
const addon = requireNative();
const threadCounts = values.threads ? values.threads.split(",").map(Number) : [addon.threads()];
const dm = H * D;
type L4 = [number, number, number, number];
const gemm = (g: Graph, a: Sym, b: Sym, shape: number[], m: number, n: number, k: number, alpha: number, as: L4, bs: L4, cs: L4, bf16: boolean) =>
  g.gemm(a, b, shape, { batch: [B, H], m, n, k, alpha, a: as, b: bs, c: cs, ...(bf16 ? { precision: "bf16" } : {}) } as GemmLayout);
const tokens = [B, N, dm];
const scores = [B, H, N, N];
/** name, operand shapes, the node, flops or bytes */
const kernels: [string, number[][], (g: Graph, p: Sym[], bf16: boolean) => Sym, number, "gflop" | "gb"][] = [
  ["q k^T   (scores)", [tokens, tokens], (g, [q, k], h) => gemm(g, q, k, scores, N, N, D, 1 / Math.sqrt(D), [N * dm, D, dm, 1], [N * dm, D, 1, dm], [H * N * N, N * N, N, 1], h), 2 * B * H * N * N * D, "gflop"],
  ["P v     (output)", [scores, tokens], (g, [p, v], h) => gemm(g, p, v, tokens, N, D, N, 1, [H * N * N, N * N, N, 1], [N * dm, D, dm, 1], [N * dm, D, dm, 1], h), 2 * B * H * N * N * D, "gflop"],
  ["P^T dO  (dv)", [scores, tokens], (g, [p, o], h) => gemm(g, p, o, tokens, N, D, N, 1, [H * N * N, N * N, 1, N], [N * dm, D, dm, 1], [N * dm, D, dm, 1], h), 2 * B * H * N * N * D, "gflop"],
  ["dS k    (dq)", [scores, tokens], (g, [s, k], h) => gemm(g, s, k, tokens, N, D, N, 1 / Math.sqrt(D), [H * N * N, N * N, N, 1], [N * dm, D, dm, 1], [N * dm, D, dm, 1], h), 2 * B * H * N * N * D, "gflop"],
  ["dS^T q  (dk, C^T)", [tokens, scores], (g, [q, s], h) => gemm(g, q, s, tokens, D, N, N, 1, [N * dm, D, 1, dm], [H * N * N, N * N, N, 1], [N * dm, D, 1, dm], h), 2 * B * H * N * N * D, "gflop"],
  ["softmax", [scores], (g, [x]) => g.softmax(x), 8 * B * H * N * N, "gb"],
  ["softmax_grad", [scores, scores], (g, [y, dy]) => g.add(y.shape, { kind: "softmax_grad", y: y.id, dy: dy.id }), 12 * B * H * N * N, "gb"],
];
const rng = new Rng(0);
const build = (bf16: boolean) =>
  kernels
    .filter(([, , , , unit]) => !bf16 || unit === "gflop")
    .map(([name, shapes, node, work, unit]) => {
      const g = new Graph();
      const ps = shapes.map((s, i) => g.param(`p${i}`, s));
      const y = node(g, ps, bf16);
      const params = new Map(shapes.map((s, i) => [`p${i}`, rng.normals(s.reduce((a, b) => a * b, 1))]));
      const l = lowerGraph({ graph: g, v: y, batch: 1 }, paramArena(params));
      const program = addon.build(l.program, l.arenas);
      return { name: `${name}${bf16 ? " bf16" : ""}`, work, unit, run: () => addon.run(program) };
    });
const programs = [...build(false), ...build(true)];
/** a pass over 2 x 64 MiB (y = 2 x), run before each timed call with --cold */
const evict = values.cold ? cacheEvictor(addon) : () => {};

/** the fastest call of each kernel (ms) on `threads` threads */
function measure(threads: number): number[] {
  addon.threads(threads);
  return programs.map(({ run }) => {
    for (let i = 0; i < 5; i++) run();
    let best = Infinity;
    for (let i = 0; i < reps; i++) {
      evict();
      const t0 = performance.now();
      run();
      best = Math.min(best, performance.now() - t0);
    }
    return best;
  });
}

/** the ISA level of this addon (the thread counts are the rows') */
const isaLine = () => `native CPU kernels (${addon.isa()})`;
if (values.json) {
  console.log(JSON.stringify({ executor: isaLine(), ms: threadCounts.map(measure) }));
  process.exit(0);
}
/** the other addon's figures: this script in a child process with SDC_NATIVE_ADDON set */
function theirs(): { executor: string; ms: number[][] } {
  const args = [process.argv[1], "--json", ...(values.cold ? ["--cold"] : []), "--b", String(B), "--h", String(H), "--n", String(N), "--d", String(D), "--reps", String(reps), "--threads", threadCounts.join(",")];
  const r = spawnSync(process.execPath, [...process.execArgv, ...args], { encoding: "utf8", env: { ...process.env, SDC_NATIVE_ADDON: values.against } });
  if (r.status !== 0) throw new Error(`the run with --against ${values.against} failed: ${r.stderr.trim().slice(-400)}`);
  return JSON.parse(r.stdout.trim().split("\n").pop()!);
}
const rounds = values.against ? Number(values.rounds) : 1;
const mine = threadCounts.map(() => programs.map(() => Infinity));
const other = threadCounts.map(() => programs.map(() => Infinity));
let otherExecutor = "";
for (let r = 0; r < rounds; r++) {
  threadCounts.forEach((t, ti) => measure(t).forEach((ms, i) => (mine[ti][i] = Math.min(mine[ti][i], ms))));
  if (values.against) {
    const o = theirs();
    otherExecutor = o.executor;
    o.ms.forEach((row, ti) => row.forEach((ms, i) => (other[ti][i] = Math.min(other[ti][i], ms))));
  }
}
const rate = (work: number, unit: string, ms: number) => `${(work / ms / 1e6).toFixed(1)} ${unit === "gflop" ? "GFLOP/s" : "GB/s"}`;
console.log(`${isaLine()}; B ${B} x H ${H} x N ${N} x D ${D}; best of ${reps} calls${values.cold ? " (caches evicted before each)" : ""}${values.against ? `, ${rounds} interleaved rounds against ${values.against} (${otherExecutor})` : ""}`);
const rows = threadCounts.flatMap((t, ti) =>
  programs.map(({ name, work, unit }, i) => ({
    kernel: name,
    threads: t,
    ms: Number(mine[ti][i].toFixed(3)),
    rate: rate(work, unit, mine[ti][i]),
    ...(values.against ? { "ms (against)": Number(other[ti][i].toFixed(3)), "rate (against)": rate(work, unit, other[ti][i]), ratio: Number((mine[ti][i] / other[ti][i]).toFixed(2)) } : {}),
  })),
);
console.table(rows);
