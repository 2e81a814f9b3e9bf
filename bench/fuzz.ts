/**
 * The long fuzz run of issue 12: `npx tsx bench/fuzz.ts [--cases N] [--seed S]` runs N cases
 * split over mutated specs, command lines, safetensors files and checkpoints (in the proportions
 * of the quick run in test/fuzz/fuzz.test.ts) and prints the counts. Exit 1 if any crash, hang,
 * unpositioned diagnostic or wrong acceptance was found.
 */
import { runFuzz } from "../test/fuzz/fuzz-cases.ts";

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const total = arg("--cases", 100_000);
const seed = arg("--seed", 1);
const share = { spec: 0.2, cli: 0.1, safetensors: 0.5, checkpoint: 0.2 };
const cases = Object.fromEntries(Object.entries(share).map(([k, f]) => [k, Math.round(total * f)]));
const c = await runFuzz({ seed, cases, limitMs: 20_000, log: (s) => process.stderr.write(s + "\n") });
const n = Object.values(c.cases).reduce((a, b) => a + b, 0);
console.log(`fuzz seed ${seed}: ${n} cases in ${c.seconds.toFixed(0)} s`);
for (const k of Object.keys(c.cases) as (keyof typeof c.cases)[]) console.log(`  ${k.padEnd(12)} ${String(c.cases[k]).padStart(7)} cases: ${c.accepted[k]} accepted, ${c.refused[k]} refused`);
console.log(`  crashes ${c.crashes}, hangs ${c.hangs}, unpositioned ${c.unpositioned}, wrong acceptances ${c.wrongAcceptances}`);
for (const f of c.failures) console.log(`  ${f}`);
process.exit(c.crashes + c.hangs + c.unpositioned + c.wrongAcceptances ? 1 : 0);
