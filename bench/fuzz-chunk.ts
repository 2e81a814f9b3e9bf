/**
 * One chunk of the long fuzz run (bench/fuzz.ts starts it): `npx tsx bench/fuzz-chunk.ts KIND SEED
 * FROM TO LIMIT_MS` runs cases [FROM, TO) of one kind in this process (test/fuzz/fuzz-cases.ts).
 * Stdout: `case I` before each case (the parent times it by this process's CPU time and kills it
 * when a case never ends), then `done {counts}` with this process's CPU seconds since its start.
 */
import { type Kind, KINDS, cpuMs, runFuzz } from "../test/fuzz/fuzz-cases.ts";

const [kind, seed, from, to, limitMs] = process.argv.slice(2);
if (!KINDS.includes(kind as Kind) || [seed, from, to, limitMs].some((v) => !Number.isSafeInteger(Number(v)))) {
  process.stderr.write("usage: fuzz-chunk.ts KIND SEED FROM TO LIMIT_MS\n");
  process.exit(2);
}
const c = await runFuzz({
  seed: Number(seed),
  cases: { [kind]: Number(to) },
  from: Number(from),
  limitMs: Number(limitMs),
  log: (s) => process.stderr.write(s + "\n"),
  trace: (s) => process.stdout.write(`case ${/ case (\d+) /.exec(s)![1]}\n`),
});
process.stdout.write(`done ${JSON.stringify({ ...c, processCpuSeconds: cpuMs() / 1000 })}\n`);
