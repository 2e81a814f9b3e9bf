/**
 * `sdc ablate --combine DIR --combine DIR ... --out OUT`: the finished units of several ablation
 * folders (each folder's results.json) as one ablation, e.g. an arm run later beside arms run
 * before. OUT gets results.{md,csv,json}, arms.json and the plot as `sdc ablate` writes them
 * (writeResults), so the intervals and the pairwise tests (Holm across every pair of the combined
 * arms) are recomputed, never copied. Units are only combined when they share every training and
 * eval setting but their arm and seed: steps, batch, backend and the eval's images, scales,
 * sampler steps, seed and reference set.
 */
import { existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import type { UnitInputs, UnitResult } from "../../runtime/eval/sweep.ts";
import { InputError, UsageError } from "../errors.ts";
import { type AblationSummary, writeResults } from "./plan.ts";

export interface CombineSource {
  dir: string;
  results: UnitResult[];
}

/** A finished ablation folder's units (DIR/results.json). */
export function readAblationResults(dir: string): CombineSource {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`--combine: no such folder: ${dir}`);
  const file = join(dir, "results.json");
  if (!existsSync(file)) throw new InputError(`${dir} has no results.json: --combine reads finished ablation folders (rerun its sdc ablate to gather its units first)`);
  let results: unknown;
  try {
    results = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new InputError(`${file}: not JSON (${(e as Error).message})`);
  }
  if (!Array.isArray(results) || results.some((r) => typeof r?.id !== "string" || typeof r?.inputs?.spec !== "string" || !Array.isArray(r?.cfg))) {
    throw new InputError(`${file}: not an ablation's results (a list of units with id, inputs and cfg)`);
  }
  return { dir, results: results as UnitResult[] };
}

/** The settings every combined unit must share: all inputs but the arm (spec, variant, overrides) and the seed. */
export function sharedSettings(i: UnitInputs): Pick<UnitInputs, "steps" | "batch" | "backend" | "eval"> {
  return { steps: i.steps, batch: i.batch, backend: i.backend, eval: i.eval };
}

const specLabel = (spec: string) => basename(spec).replace(/\.mdl$/, "");

/** A unit's id and group as an ablation with arms from several spec files names them ("unet.tiny+ch=20"). */
function labelled(r: UnitResult): UnitResult {
  const label = `${specLabel(r.inputs.spec)}.`;
  const group = r.group ?? r.id;
  return group.startsWith(label) ? r : { ...r, id: label + r.id, group: label + group };
}

/**
 * The units of several folders as one list, in folder order. Pure. Refuses units trained or
 * evaluated with other settings than the first folder's, and two units with the same id.
 */
export function combineResults(sources: CombineSource[]): UnitResult[] {
  const all = sources.flatMap((s) => s.results.map((r) => ({ dir: s.dir, r })));
  if (!all.length) throw new InputError(`--combine: no units in ${sources.map((s) => s.dir).join(", ")}`);
  const first = all[0];
  const ref = JSON.stringify(sharedSettings(first.r.inputs));
  for (const { dir, r } of all) {
    if (JSON.stringify(sharedSettings(r.inputs)) !== ref) {
      throw new InputError(`--combine: ${dir}: unit ${r.id} has other settings (${settingsText(r.inputs)}) than ${first.dir}'s ${first.r.id} (${settingsText(first.r.inputs)}); only units trained and evaluated alike are compared`);
    }
  }
  const severalSpecs = new Set(all.map(({ r }) => r.inputs.spec)).size > 1;
  const out = all.map(({ dir, r }) => ({ dir, r: severalSpecs ? labelled(r) : r }));
  const seen = new Map<string, string>();
  for (const { dir, r } of out) {
    if (seen.has(r.id)) throw new InputError(`--combine: unit ${r.id} is in both ${seen.get(r.id)} and ${dir}; is a folder listed twice?`);
    seen.set(r.id, dir);
  }
  return out.map(({ r }) => r);
}

function settingsText(i: UnitInputs): string {
  const e = i.eval;
  return `${i.steps} steps, batch ${i.batch}, backend ${i.backend}, eval ${e.perDigit} per digit at CFG ${e.cfg.join(",")}, ${e.sampleSteps ?? "the spec's"} sampler steps, seed ${e.seed}, reference ${e.reference ?? "all"}`;
}

/** `sdc ablate --combine DIR... --out OUT`: read, combine, write OUT's results, tables, tests and plot. */
export async function combineAblations(dirs: string[], out: string, log: (s: string) => void): Promise<{ results: UnitResult[]; plot: AblationSummary["plot"] }> {
  if (dirs.length < 2) throw new UsageError("--combine needs two or more ablation folders (--combine DIR --combine DIR ...)");
  const sources = dirs.map(readAblationResults);
  const results = combineResults(sources);
  if (existsSync(out) && !statSync(out).isDirectory()) throw new UsageError(`--out ${out} is not a folder`);
  mkdirSync(out, { recursive: true });
  const inp = results[0].inputs;
  const specs = [...new Set(results.map((r) => r.inputs.spec))];
  const from = `Combined by \`sdc ablate --combine\` from ${sources.map((s) => `${s.dir} (${s.results.length} unit${s.results.length === 1 ? "" : "s"})`).join(", ")}.`;
  const plot = await writeResults(out, specs, { steps: inp.steps, batch: inp.batch, cfg: inp.eval.cfg }, results, log, from);
  return { results, plot };
}
