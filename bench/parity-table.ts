/**
 * The bf16-vs-fp32 parity table of a folder of finished runs: for each seed, the last validation
 * loss of `fp32-seedK-metrics.jsonl` and `bf16-seedK-metrics.jsonl` (sdc train's metrics) and, at
 * one CFG scale, the prompt accuracy and judge FD with their 95% intervals from
 * `{fp32,bf16}-seedK-eval.json` (sdc eval --out). Prints a markdown table.
 *
 *   npx tsx bench/parity-table.ts bench/results/bf16-parity-readme-s4 [--cfg 2]
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { benchArgs } from "./args.ts";

interface Scale {
  cfg: number;
  images: number;
  accuracy: number;
  accuracyInterval: { lo: number; hi: number };
  frechet: number;
  frechetInterval: { lo: number; hi: number };
}

const { values, positionals } = benchArgs(import.meta.url, { allowPositionals: true, options: { cfg: { type: "string", default: "2" } } });
const dir = positionals[0];
if (!dir || !existsSync(dir)) {
  process.stderr.write("usage: npx tsx bench/parity-table.ts DIR [--cfg 2]  (DIR holds {fp32,bf16}-seedK-{metrics.jsonl,eval.json})\n");
  process.exit(2);
}
const cfg = Number(values.cfg);

function lastValLoss(file: string): { step: number; val: number } {
  const rows = readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { step: number; val_loss?: number });
  const v = rows.filter((r) => r.val_loss !== undefined).at(-1);
  if (!v) throw new Error(`${file}: no validation loss`);
  return { step: v.step, val: v.val_loss! };
}

function scale(file: string): Scale {
  const s = (JSON.parse(readFileSync(file, "utf8")) as { cfg: Scale[] }).cfg.find((c) => c.cfg === cfg);
  if (!s) throw new Error(`${file}: no CFG ${cfg}`);
  return s;
}

const pct = (x: number) => (100 * x).toFixed(1);
const acc = (s: Scale) => `${pct(s.accuracy)}% [${pct(s.accuracyInterval.lo)}, ${pct(s.accuracyInterval.hi)}]`;
const fd = (s: Scale) => `${s.frechet.toFixed(1)} [${s.frechetInterval.lo.toFixed(1)}, ${s.frechetInterval.hi.toFixed(1)}]`;

console.log(`| seed | val loss fp32 | val loss bf16 | bf16 - fp32 | accuracy fp32 (CFG ${cfg}) | accuracy bf16 | bf16 inside fp32's interval | FD fp32 | FD bf16 |`);
console.log("|---:|---:|---:|---:|---|---|---|---|---|");
for (let k = 0; existsSync(join(dir, `fp32-seed${k}-metrics.jsonl`)); k++) {
  const [a, b] = (["fp32", "bf16"] as const).map((p) => lastValLoss(join(dir, `${p}-seed${k}-metrics.jsonl`)));
  if (a.step !== b.step) throw new Error(`seed ${k}: fp32 ends at step ${a.step}, bf16 at ${b.step}`);
  const [ea, eb] = (["fp32", "bf16"] as const).map((p) => scale(join(dir, `${p}-seed${k}-eval.json`)));
  const inside = eb.accuracy >= ea.accuracyInterval.lo && eb.accuracy <= ea.accuracyInterval.hi;
  console.log(`| ${k} | ${a.val.toFixed(4)} | ${b.val.toFixed(4)} | ${(((b.val - a.val) / a.val) * 100).toFixed(2)}% | ${acc(ea)} | ${acc(eb)} | ${inside ? "yes" : "no"} | ${fd(ea)} | ${fd(eb)} |`);
}
