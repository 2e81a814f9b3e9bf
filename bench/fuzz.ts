/**
 * The long fuzz run of issues 12 and 24: `npx tsx bench/fuzz.ts [--cases N] [--seed S] [--kinds
 * a,b]` runs N cases split over mutated specs, command lines, safetensors files, checkpoints and
 * run folders (in the proportions below; --kinds: only those, N split evenly) and prints the
 * counts. Exit 1 if any crash, hang, unpositioned diagnostic or wrong acceptance was found.
 */
import { runFuzz } from "../test/fuzz/fuzz-cases.ts";

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const total = arg("--cases", 100_000);
const seed = arg("--seed", 1);
const kindsArg = process.argv.indexOf("--kinds");
const only = kindsArg >= 0 ? process.argv[kindsArg + 1].split(",") : null;
const share: Record<string, number> = only ? Object.fromEntries(only.map((k) => [k, 1 / only.length])) : { spec: 0.2, cli: 0.1, safetensors: 0.4, checkpoint: 0.15, runfolder: 0.15 };
const cases = Object.fromEntries(Object.entries(share).map(([k, f]) => [k, Math.round(total * f)]));
const c = await runFuzz({ seed, cases, limitMs: 20_000, log: (s) => process.stderr.write(s + "\n") });
const n = Object.values(c.cases).reduce((a, b) => a + b, 0);
console.log(`fuzz seed ${seed}: ${n} cases in ${c.seconds.toFixed(0)} s`);
for (const k of Object.keys(c.cases) as (keyof typeof c.cases)[]) console.log(`  ${k.padEnd(12)} ${String(c.cases[k]).padStart(7)} cases: ${c.accepted[k]} accepted, ${c.refused[k]} refused`);
console.log(`  crashes ${c.crashes}, hangs ${c.hangs}, unpositioned ${c.unpositioned}, wrong acceptances ${c.wrongAcceptances}`);
for (const f of c.failures) console.log(`  ${f}`);
process.exit(c.crashes + c.hangs + c.unpositioned + c.wrongAcceptances ? 1 : 0);
