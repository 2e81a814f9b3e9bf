/**
 * WebGPU smoke test + micro-benchmark (runs anywhere).
 *
 *   npx tsx bench/webgpu-smoke.ts [--n 4096] [--iters 10] [--ops 1000] [--no-wasm] [--wasm-n N]
 *   bash pack/sdc-gpu/run.sh bench            (same, from the GPU pack)
 *
 * For each backend (webgpu, then wasm for comparison):
 *   - a correctness check (small matmul against a CPU reference),
 *   - an NxN fp32 matmul: time per call and TFLOP/s (2*N^3 flops), synced with dataSync,
 *   - a small elementwise op chain latency: us/op over --ops ops, synced once at the end.
 * Each backend runs in its own child process, because tfjs can only hold one Dawn instance
 * and dawn.node must be dropped for the process to exit.
 * Without a WebGPU adapter it prints "webgpu: SKIPPED (...)" and still exits 0.
 * Set SDC_DAWN_TOGGLES (see runtime/backend.ts) to try Dawn toggles.
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import * as tf from "@tensorflow/tfjs";
import { initBackend, shutdownBackend, BackendError, type BackendName } from "../runtime/backend.ts";

interface Args { n: number; iters: number; ops: number; wasm: boolean; wasmN?: number; only?: string }

function parseArgs(argv: string[]): Args {
  const a: Args = { n: 4096, iters: 10, ops: 1000, wasm: true };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = () => {
      const x = Number(argv[++i]);
      if (!Number.isFinite(x) || x <= 0) throw new Error(`${k} needs a positive number`);
      return Math.floor(x);
    };
    if (k === "--n") a.n = v();
    else if (k === "--iters") a.iters = v();
    else if (k === "--ops") a.ops = v();
    else if (k === "--wasm-n") a.wasmN = v();
    else if (k === "--no-wasm") a.wasm = false;
    else if (k === "--only") a.only = argv[++i];
    else if (k === "bench") continue; // `run.sh bench` passes the word through
    else if (k === "-h" || k === "--help") {
      console.log("usage: webgpu-smoke [--n 4096] [--iters 10] [--ops 1000] [--wasm-n N (default: --n)] [--no-wasm]");
      process.exit(0);
    } else throw new Error(`unknown argument ${k}`);
  }
  return a;
}

const fmt = (x: number, d = 2) => x.toFixed(d);

async function check(): Promise<string> {
  // 3x5 @ 5x4, integers so float32 is exact.
  const A = Array.from({ length: 15 }, (_, i) => (i % 7) - 3);
  const B = Array.from({ length: 20 }, (_, i) => (i % 5) - 2);
  const ref: number[] = [];
  for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) {
    let s = 0;
    for (let k = 0; k < 5; k++) s += A[r * 5 + k]! * B[k * 4 + c]!;
    ref.push(s);
  }
  const gt = tf.tidy(() => tf.matMul(tf.tensor2d(A, [3, 5]), tf.tensor2d(B, [5, 4])));
  const got = await gt.data(); // async reads only: WebGPU in Node has no synchronous readback
  gt.dispose();
  const bad = ref.findIndex((v, i) => Math.abs(v - got[i]!) > 1e-4);
  if (bad >= 0) throw new Error(`matmul check FAILED at ${bad}: got ${got[bad]}, want ${ref[bad]}`);
  const et = tf.tidy(() => tf.add(tf.mul(tf.tensor1d([1, 2, 3]), 2), 1));
  const e = await et.data();
  et.dispose();
  if (e[0] !== 3 || e[1] !== 5 || e[2] !== 7) throw new Error(`elementwise check FAILED: ${Array.from(e)}`);
  return "ok";
}

async function matmulBench(n: number, iters: number): Promise<{ ms: number; tflops: number }> {
  const a = tf.randomUniform([n, n], -1, 1, "float32");
  const b = tf.randomUniform([n, n], -1, 1, "float32");
  // Warm-up (shader compile / XNNPACK pack), synced.
  const w = tf.tidy(() => tf.matMul(a, b).sum());
  await w.data();
  w.dispose();
  const t0 = performance.now();
  let last: tf.Tensor | null = null;
  for (let i = 0; i < iters; i++) {
    last?.dispose();
    last = tf.matMul(a, b);
  }
  // Read back one element only: syncs the queue without timing a 64 MiB download.
  const one = last!.slice([0, 0], [1, 1]);
  await one.data();
  one.dispose();
  const ms = (performance.now() - t0) / iters;
  last?.dispose();
  a.dispose();
  b.dispose();
  return { ms, tflops: (2 * n ** 3) / (ms * 1e-3) / 1e12 };
}

async function elementwiseBench(ops: number): Promise<number> {
  const x = tf.randomUniform([256], -1, 1);
  const run = async (count: number) => {
    let y = x.clone();
    for (let i = 0; i < count; i += 2) {
      const m = tf.mul(y, 0.5);
      const z = tf.add(m, 0.25); // 2 ops per iteration
      m.dispose();
      y.dispose();
      y = z;
    }
    await y.data();
    y.dispose();
  };
  await run(50); // warm-up
  const t0 = performance.now();
  await run(ops);
  const us = ((performance.now() - t0) * 1000) / ops;
  x.dispose();
  return us;
}

async function runOne(name: BackendName, n: number, args: Args): Promise<number> {
  let init;
  try {
    init = await initBackend(name, { log: () => {} });
  } catch (e) {
    if (e instanceof BackendError) {
      console.log(`${name}: SKIPPED (${e.message})`);
      return 0;
    }
    throw e;
  }
  try {
    // tfjs-webgpu runs ops on small CPU-resident tensors on the CPU by default; measure the GPU.
    if (name === "webgpu") tf.env().set("WEBGPU_CPU_FORWARD", false);
    console.log(`${name}: ${init.detail}`);
    console.log(`${name}: correctness ${await check()}`);
    const mm = await matmulBench(n, name === "webgpu" ? args.iters : Math.max(1, Math.min(args.iters, 2)));
    console.log(`${name}: matmul ${n}x${n} fp32: ${fmt(mm.ms)} ms/call, ${fmt(mm.tflops, 3)} TFLOP/s`);
    const us = await elementwiseBench(args.ops);
    console.log(`${name}: elementwise [256] latency: ${fmt(us)} us/op over ${args.ops} ops (synced at end)`);
    return 0;
  } catch (e) {
    console.log(`${name}: FAILED ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  } finally {
    await shutdownBackend();
  }
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  if (args.only) {
    const name = args.only as BackendName;
    return runOne(name, name === "webgpu" ? args.n : args.wasmN ?? args.n, args);
  }
  console.log(`webgpu-smoke: node ${process.version} ${process.platform}-${process.arch}, tfjs ${tf.version["tfjs-core"]}`);
  // One child process per backend (see header). process.argv[1] is this script (tsx or bundle).
  const self = fileURLToPath(import.meta.url);
  const execArgv = process.execArgv; // keeps tsx's loader when run through tsx
  let rc = 0;
  for (const name of ["webgpu", ...(args.wasm ? ["wasm"] : [])]) {
    const child = spawnSync(process.execPath, [...execArgv, self, ...process.argv.slice(2), "--only", name], {
      stdio: "inherit",
      timeout: 15 * 60_000,
    });
    if (child.error) {
      console.log(`${name}: FAILED to run child: ${child.error.message}`);
      rc = 1;
    } else if (child.status !== 0) {
      console.log(`${name}: child exited with ${child.status ?? child.signal}`);
      rc = 1;
    }
  }
  return rc;
}

main().then(
  (rc) => process.exit(rc),
  (e) => {
    console.error(e instanceof Error ? e.stack ?? e.message : String(e));
    process.exit(1);
  },
);
