/**
 * One child of the native decoder fuzz (test/graph/native-fuzz-cases.ts):
 * `node --import tsx native-fuzz-child.ts BASES.json SEED FROM TO` builds and runs cases
 * [FROM, TO) with the addon (SDC_NATIVE_ADDON or build/Release/sdc_cpu.node) and prints one line
 * per case: index, kind, outcome (ran | refused | scratch | wrong | error), must-refuse, detail.
 * A case that kills the process leaves its index as the first without a line.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import type { NativeAddon } from "../../../runtime/executors/native/native.ts";
import { type Base, makeCase, resizableBuffer } from "../native-fuzz-cases.ts";

const [basesFile, seedArg, fromArg, toArg] = process.argv.slice(2);
const bases = JSON.parse(readFileSync(basesFile, "utf8")) as Base[];
const seed = Number(seedArg);
const addon = createRequire(import.meta.url)(process.env.SDC_NATIVE_ADDON || join(import.meta.dirname ?? ".", "..", "..", "..", "build", "Release", "sdc_cpu.node")) as NativeAddon;
const selfTest = process.env.SDC_FUZZ_SELFTEST ? Number(process.env.SDC_FUZZ_SELFTEST) : -1;
/** a program whose GEMM scratch exceeds this is not run (sdc's memory check would refuse it) */
const SCRATCH_LIMIT = 64 * 2 ** 20;

const ours = (e: unknown) => e instanceof Error && String((e as Error & { code?: unknown }).code).startsWith("SDC_NATIVE");
const clean = (s: string) => s.replace(/[\t\n]/g, " ");

for (let i = Number(fromArg); i < Number(toArg); i++) {
  if (i === selfTest) process.kill(process.pid, "SIGSEGV");
  const c = makeCase(bases, seed, i);
  const arenas = c.arenas.map((a) => (a.shared ? new SharedArrayBuffer(a.bytes) : a.resizable ? resizableBuffer(a.bytes, 2 * a.bytes + 64) : new ArrayBuffer(a.bytes))) as ArrayBuffer[];
  const special = [NaN, Infinity, -Infinity];
  for (const a of arenas) new Float32Array(a).forEach((_, j, f) => (f[j] = c.nonFinite && j % 7 === 3 ? special[j % 3] : ((j % 13) - 6) * 0.25));
  let outcome: string;
  let detail = c.what;
  try {
    const p = addon.build(new Float64Array(c.words), arenas);
    if (addon.scratchBytes(p) > SCRATCH_LIMIT) outcome = "scratch";
    else {
      if (c.detach >= 0) structuredClone(arenas[c.detach], { transfer: [arenas[c.detach]] });
      if (c.async) await addon.runAsync(p);
      else addon.run(p);
      outcome = c.mustRefuse ? "wrong" : "ran";
    }
  } catch (e) {
    outcome = ours(e) ? "refused" : "error";
    if (!ours(e)) detail += `: ${e instanceof Error ? e.message : String(e)}`;
  }
  process.stdout.write(`${i}\t${c.kind}\t${outcome}\t${c.mustRefuse ? 1 : 0}\t${clean(`${c.base}: ${detail}`)}\n`);
}
