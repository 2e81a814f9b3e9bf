/** `sdc ablate`, `sdc ablate --status` and `--combine`: plan and run (in process or as jobs), print the summary. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { analyzeSeeds, hasSeeds, seedsMarkdown } from "../../runtime/eval/seeds.ts";
import { resultsMarkdown } from "../../runtime/eval/sweep.ts";
import { EXIT } from "../errors.ts";
import { runAblation } from "./inprocess.ts";
import type { AblateOptions } from "./plan.ts";

export async function runAblateCli(specPath: string | string[], o: AblateOptions, jobs?: import("./jobs.ts").JobOptions): Promise<number> {
  const out = o.stdout ?? ((s: string) => process.stdout.write(s));
  const t0 = performance.now();
  if (jobs) {
    const { runAblationJobs, formatJobsSummary, unitStatuses } = await import("./jobs.ts");
    const s = await runAblationJobs(specPath, o, jobs);
    const rec = JSON.parse(readFileSync(join(s.out, "ablation.json"), "utf8"));
    const r = formatJobsSummary(s, (performance.now() - t0) / 1000, s.results ? [] : unitStatuses(s.out, rec));
    out(r.text);
    return r.code;
  }
  const s = await runAblation(specPath, o);
  out(`${resultsMarkdown(s.results)}${hasSeeds(s.results) ? `\n${seedsMarkdown(analyzeSeeds(s.results))}` : ""}\nran ${s.ran.length}, skipped ${s.skipped.length} (done before); ${((performance.now() - t0) / 1000).toFixed(0)} s; results in ${s.out}/results.{md,csv,json}${s.plot.svg ? `, plot ${s.plot.png ?? s.plot.svg}` : ""}\n`);
  return EXIT.ok;
}

/** `sdc ablate --status DIR` */
export async function runAblateStatusCli(dir: string, o: { json?: boolean; stdout?: (s: string) => void } = {}): Promise<number> {
  const out = o.stdout ?? ((s: string) => process.stdout.write(s));
  const { ablationStatus, formatStatus } = await import("./jobs.ts");
  const rows = ablationStatus(dir);
  out(o.json ? JSON.stringify(rows, null, 2) + "\n" : formatStatus(rows));
  return EXIT.ok;
}

/** `sdc ablate --combine DIR --combine DIR ... --out OUT` */
export async function runAblateCombineCli(dirs: string[], out: string, o: { stdout?: (s: string) => void; log?: (s: string) => void } = {}): Promise<number> {
  const write = o.stdout ?? ((s: string) => process.stdout.write(s));
  const { combineAblations } = await import("./combine.ts");
  const s = await combineAblations(dirs, out, o.log ?? ((l) => process.stderr.write(l + "\n")));
  write(`${resultsMarkdown(s.results)}${hasSeeds(s.results) ? `\n${seedsMarkdown(analyzeSeeds(s.results))}` : ""}\ncombined ${s.results.length} units from ${dirs.length} folders; results in ${out}/results.{md,csv,json}${s.plot.svg ? `, plot ${s.plot.png ?? s.plot.svg}` : ""}\n`);
  return EXIT.ok;
}
