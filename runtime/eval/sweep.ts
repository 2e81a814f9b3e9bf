/**
 * Ablation plans, pure: parse `--sweep name=v1,v2`, expand variants x sweeps into units (the
 * cartesian product), name them, and render results as markdown, CSV and a Vega-Lite plot spec.
 */

export class SweepError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

export interface Sweep {
  name: string;
  values: string[];
}

const NAME = /^[A-Za-z_][A-Za-z0-9_.]*$/;
const VALUE = /^[A-Za-z0-9_.+-]+$/;

/** "depth=2,4" -> { name: "depth", values: ["2", "4"] }. */
export function parseSweep(s: string): Sweep {
  const eq = s.indexOf("=");
  if (eq < 0) throw new SweepError(`--sweep '${s}' must look like name=v1,v2 (e.g. depth=2,4)`);
  const name = s.slice(0, eq).trim();
  if (!NAME.test(name)) throw new SweepError(`--sweep '${s}': '${name}' is not a parameter name (letters, digits, _ and ., e.g. depth or train.batch)`);
  const raw = s.slice(eq + 1);
  const values = raw.split(",").map((v) => v.trim());
  if (raw.trim() === "" || values.some((v) => v === "")) throw new SweepError(`--sweep '${s}' needs one or more comma-separated values after '=', e.g. ${name}=2,4`);
  for (const v of values) if (!VALUE.test(v)) throw new SweepError(`--sweep '${s}': value '${v}' may only hold letters, digits and _ . + -`);
  const seen = new Set<string>();
  for (const v of values) {
    if (seen.has(v)) throw new SweepError(`--sweep '${s}' lists ${v} twice`);
    seen.add(v);
  }
  return { name, values };
}

/** Parse a --set override "name=value" (one value). */
export function parseSet(s: string): [string, string] {
  const sw = parseSweep(s);
  if (sw.values.length !== 1) throw new SweepError(`--set '${s}' takes one value; use --sweep for several`);
  return [sw.name, sw.values[0]];
}

/** The cartesian product of sweeps, first sweep varying slowest: [[["depth","2"],["head_dim","16"]], ...]. */
export function expandSweeps(sweeps: Sweep[]): [string, string][][] {
  const names = new Set<string>();
  for (const s of sweeps) {
    if (names.has(s.name)) throw new SweepError(`--sweep ${s.name} is given twice; list all its values in one --sweep ${s.name}=a,b`);
    names.add(s.name);
  }
  let out: [string, string][][] = [[]];
  for (const s of sweeps) out = out.flatMap((combo) => s.values.map((v) => [...combo, [s.name, v] as [string, string]]));
  return out;
}

export interface UnitInputs {
  /** path of the .mdl file, as given */
  spec: string;
  /** sha-256 of the spec file and the files it imports, so a changed spec is not mistaken for a finished unit */
  specHash: string;
  variant: string | null;
  /** --set overrides, in order (fixed ones first, then the sweep's) */
  set: string[];
  seed: number;
  steps: number;
  batch: number;
  backend: string;
  eval: { perDigit: number; cfg: number[]; sampleSteps: number | null; seed: number; reference: number | null };
}

/**
 * Unit folder name: the variant (or "base") then each override, e.g. "tiny+depth=2+head_dim=16";
 * with a `label` (arms from several spec files: the spec file's name) it comes first, "dit.tiny+depth=2".
 */
export function unitId(variant: string | null, set: string[], label?: string): string {
  return [(label ? `${label}.` : "") + (variant ?? "base"), ...set].join("+").replace(/[^A-Za-z0-9_.=+-]/g, "_");
}

/** One arm of an ablation: a spec file, a variant and the arm's own overrides (the sweeps apply to every arm). */
export interface Arm {
  spec: string;
  specHash: string;
  variant: string | null;
  set: [string, string][];
  /** unit ids start with it (set when the arms come from several spec files) */
  label?: string;
}

/**
 * Matched parameter counts: the unit's `param` was set to `value`, the one in the searched range
 * whose compiled count (`on`: all parameters, or the network's) is closest to `target`.
 */
export interface UnitMatch {
  param: string;
  value: number;
  /** the value before matching (the spec's, variant's or arm's) */
  from: number;
  on: "params" | "network";
  target: number;
  achieved: number;
  /** values compiled in the search */
  compiled: number;
}

export interface PlanOptions {
  /** one spec's variants (spec + specHash + variants), or `arms` (which then wins) */
  spec: string;
  specHash: string;
  variants: (string | null)[];
  arms?: Arm[];
  fixed: [string, string][];
  sweeps: Sweep[];
  seed: number;
  /** training seeds per arm and sweep combination: seed, seed + 1, ... (default 1) */
  seeds?: number;
  steps: number;
  batch: number;
  backend: string;
  eval: UnitInputs["eval"];
}

export interface PlannedUnit {
  id: string;
  /** the id without its seed: the units of one arm and sweep combination share it (their mean is the arm's) */
  group: string;
  /** "+seed=K" when the ablation has several seeds, else "" (id = group + seedTag) */
  seedTag: string;
  inputs: UnitInputs;
  /** which arm (index into the arms, or the variants) and which sweep combination (index) it is */
  arm?: number;
  combo?: number;
  /** the arm's label, the start of the id (arms from several spec files) */
  label?: string;
  /** set when its parameter count was matched (not an input: the value it chose is in inputs.set) */
  match?: UnitMatch;
}

/**
 * Units: every arm (or variant) x every sweep combination, with the fixed overrides, then the
 * arm's own; x every seed (o.seed + 0 .. seeds - 1) when there are several, each unit then
 * in a folder of its own: "<group>+seed=K".
 */
export function planUnits(o: PlanOptions): PlannedUnit[] {
  const seeds = o.seeds ?? 1;
  if (!Number.isInteger(seeds) || seeds < 1) throw new SweepError(`--seeds must be a positive integer, got ${seeds}`);
  const arms: Arm[] = o.arms ?? o.variants.map((variant) => ({ spec: o.spec, specHash: o.specHash, variant, set: [] }));
  if (!arms.length) throw new SweepError("no variants to run");
  const fixedNames = new Set(o.fixed.map(([k]) => k));
  for (const s of o.sweeps) if (fixedNames.has(s.name)) throw new SweepError(`${s.name} is both --set and --sweep`);
  for (const a of arms) {
    for (const [k] of a.set) {
      if (fixedNames.has(k)) throw new SweepError(`${k} is both --set and set by the arm ${a.spec}${a.variant ? `:${a.variant}` : ""}`);
      if (o.sweeps.some((s) => s.name === k)) throw new SweepError(`${k} is both --sweep and set by the arm ${a.spec}${a.variant ? `:${a.variant}` : ""}`);
    }
  }
  const combos = expandSweeps(o.sweeps);
  const units: PlannedUnit[] = [];
  const ids = new Set<string>();
  for (const [arm, a] of arms.entries()) {
    for (const [combo, c] of combos.entries()) {
      const set = [...o.fixed, ...a.set, ...c].map(([k, v]) => `${k}=${v}`);
      const group = unitId(a.variant, set, a.label);
      if (ids.has(group)) throw new SweepError(`two units would share the folder ${group}; is ${a.label ? "an arm" : "a variant"} listed twice?`);
      ids.add(group);
      for (let k = 0; k < seeds; k++) {
        const seed = o.seed + k;
        const seedTag = seeds > 1 ? `+seed=${seed}` : "";
        units.push({ id: group + seedTag, group, seedTag, arm, combo, ...(a.label ? { label: a.label } : {}), inputs: { spec: a.spec, specHash: a.specHash, variant: a.variant, set, seed, steps: o.steps, batch: o.batch, backend: o.backend, eval: o.eval } });
      }
    }
  }
  return units;
}

/** What a finished unit reports (unit.json). */
export interface UnitResult {
  id: string;
  /** the unit's arm and sweep combination (its id without "+seed=K"); absent in older files: the id */
  group?: string;
  inputs: UnitInputs;
  /** the compiled spec's name, its network block (the architecture, e.g. mmdit) and parameter counts */
  name: string;
  network?: string;
  params: number;
  networkParams: number;
  /** the training precision (train.precision); absent in older files: fp32 */
  precision?: "fp32" | "bf16";
  /** when its parameter count was matched to a target (--match-params) */
  match?: UnitMatch;
  /** mean seconds per training step (this unit's backend and machine) */
  stepSeconds: number;
  trainSeconds: number;
  finalTrainLoss: number;
  valLoss: number;
  /** per CFG scale: prompt accuracy and judge-feature Fréchet distance */
  cfg: { cfg: number; accuracy: number; frechet: number; sampleSeconds: number }[];
  wallSeconds: number;
}

const num = (x: number, d: number) => (Number.isFinite(x) ? x.toFixed(d) : "");

/** "+0.12%": how far a matched count is from its target. */
export function matchError(m: UnitMatch): string {
  const e = ((m.achieved - m.target) / m.target) * 100;
  return `${e >= 0 ? "+" : ""}${e.toFixed(2)}%`;
}

/** The spec file's name, as the tables and plots show the arm's architecture: "sd3.mdl (mmdit)". */
export function archLabel(r: Pick<UnitResult, "inputs" | "network">): string {
  const file = r.inputs.spec.slice(r.inputs.spec.lastIndexOf("/") + 1);
  return r.network ? `${file} (${r.network})` : file;
}

function columns(results: UnitResult[]): { head: string[]; rows: string[][] } {
  const scales = [...new Set(results.flatMap((r) => r.cfg.map((c) => c.cfg)))].sort((a, b) => a - b);
  const matched = results.some((r) => r.match);
  const mixed = results.some((r) => precisionOf(r) !== "fp32"); // the column where any unit is not fp32
  const head = ["unit", "spec", "network", "variant", "overrides", "params", "network_params", ...(mixed ? ["precision"] : []), ...(matched ? ["match", "target_params", "achieved_params", "match_err"] : []), "step_s", "final_loss", "val_loss", ...scales.flatMap((s) => [`acc_cfg${s}`, `fd_cfg${s}`])];
  const rows = results.map((r) => [
    r.id, r.inputs.spec, r.network ?? "", r.inputs.variant ?? "", r.inputs.set.join(" "), String(r.params), String(r.networkParams), ...(mixed ? [precisionOf(r)] : []),
    ...(matched ? (r.match ? [`${r.match.param}=${r.match.value}`, String(r.match.target), String(r.match.achieved), matchError(r.match)] : ["", "", "", ""]) : []),
    num(r.stepSeconds, 3), num(r.finalTrainLoss, 4), num(r.valLoss, 4),
    ...scales.flatMap((s) => {
      const c = r.cfg.find((x) => x.cfg === s);
      return c ? [num(c.accuracy, 3), num(c.frechet, 2)] : ["", ""];
    }),
  ]);
  return { head, rows };
}

const precisionOf = (r: UnitResult) => r.precision ?? "fp32";

/** A line saying which units trained in which precision, where they differ (their step times and losses then differ for that reason too); "" where all are alike. */
export function precisionNote(results: UnitResult[]): string {
  const by = new Map<string, string[]>();
  for (const r of results) by.set(precisionOf(r), [...(by.get(precisionOf(r)) ?? []), r.id]);
  if (by.size < 2) return "";
  const lists = [...by].map(([p, ids]) => `${p}: ${ids.join(", ")}`).join("; ");
  return `note: the units train in different precisions (${lists}), so step times and losses differ for that reason too; to train them alike add --set train.precision=fp32 (or bf16)\n`;
}

export function resultsMarkdown(results: UnitResult[]): string {
  const { head, rows } = columns(results);
  const esc = (s: string) => s.replace(/\|/g, "\\|");
  return [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${r.map(esc).join(" | ")} |`)].join("\n") + "\n" + precisionNote(results);
}

export function resultsCsv(results: UnitResult[]): string {
  const { head, rows } = columns(results);
  const q = (s: string) => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  return [head, ...rows].map((r) => r.map(q).join(",")).join("\n") + "\n";
}

/**
 * Vega-Lite: validation loss and prompt accuracy (at `cfg`) against parameter count, one point per
 * unit, coloured by unit; the shape is the spec file and its network (the architecture). The x
 * axis is the network's count when the counts were matched on it (--match-on network).
 */
export function resultsPlotSpec(results: UnitResult[], cfg: number, title: string): Record<string, unknown> {
  const values = results.map((r) => ({ unit: r.id, spec: archLabel(r), params: r.params, network_params: r.networkParams, target_params: r.match?.target ?? null, val_loss: r.valLoss, accuracy: r.cfg.find((c) => c.cfg === cfg)?.accuracy ?? null }));
  // matched on the network's count: the x axis is what was matched
  const x = results.some((r) => r.match?.on === "network") ? "network_params" : "params";
  const tooltip = [{ field: "unit", type: "nominal" }, { field: "spec", type: "nominal", title: "spec (network)" }, ...["params", "network_params", "target_params"].map((field) => ({ field, type: "quantitative", format: "d" }))];
  const panel = (field: string, label: string) => ({
    width: 280,
    height: 220,
    layer: [
      { mark: { type: "point", filled: true, size: 70 }, encoding: { x: { field: x, type: "quantitative", title: x === "params" ? "parameters" : "network parameters", scale: { zero: false } }, y: { field, type: "quantitative", title: label, scale: { zero: false } }, color: { field: "unit", type: "nominal", title: "unit", legend: { labelLimit: 360 } }, shape: { field: "spec", type: "nominal", title: "spec (network)", legend: { labelLimit: 360 } }, tooltip } },
      { mark: { type: "text", dy: -10, fontSize: 9 }, encoding: { x: { field: x, type: "quantitative" }, y: { field, type: "quantitative" }, text: { field: "unit" } } },
    ],
  });
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    title,
    background: "white",
    data: { values },
    hconcat: [panel("val_loss", "validation loss"), panel("accuracy", `prompt accuracy (cfg ${cfg})`)],
  };
}
