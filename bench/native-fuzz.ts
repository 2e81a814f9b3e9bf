/**
 * The long run of the native decoder fuzz (issue 24): `npx tsx bench/native-fuzz.ts [--cases N]
 * [--seed S] [--parallel P]` builds and runs N malformed programs (test/graph/native-fuzz-cases.ts)
 * in child processes and prints the counts. SDC_NATIVE_ADDON picks the addon (an ASan build, with
 * the sanitizer runtime in LD_PRELOAD). Exit 1 if any signal, hang, wrong acceptance or error.
 */
import { runNativeFuzz } from "../test/graph/native-fuzz-cases.ts";

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const cases = arg("--cases", 100_000);
const seed = arg("--seed", 1);
const c = await runNativeFuzz({ seed, cases, perChild: 5000, parallel: arg("--parallel", 2), log: (s) => process.stderr.write(s + "\n") });
console.log(`native fuzz seed ${seed}: ${c.cases} cases in ${c.seconds.toFixed(0)} s (addon: ${process.env.SDC_NATIVE_ADDON || "build/Release/sdc_cpu.node"})`);
console.log(`  by kind: ${Object.entries(c.byKind).map(([k, n]) => `${k} ${n}`).join(", ")}`);
console.log(`  ran ${c.ran}, refused ${c.refused} (${c.mustRefuse} known malformed), GEMM scratch over the limit ${c.bigScratch}`);
console.log(`  signals ${c.signals}, hangs ${c.hangs}, wrong acceptances ${c.wrongAcceptances}, other errors ${c.errors}`);
for (const f of c.failures.slice(0, 50)) console.log(`  ${f}`);
process.exit(c.signals + c.hangs + c.wrongAcceptances + c.errors ? 1 : 0);
