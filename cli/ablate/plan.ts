/**
 * `sdc ablate SPEC --variants a,b | --base v --sweep k=v1,v2 ...`, or arms from several spec files,
 * `sdc ablate specs/sd3.mdl:tiny specs/dit.mdl:tiny+depth=2 ...` (ARM = SPEC.mdl[:VARIANT][+name=value...]),
 * optionally with matched parameter counts (--match-params NAME, match.ts): run each unit
 * (spec + variant + overrides + seed) as a self-contained job in OUT/<unit-id>/:
 *   inputs.json        the unit's inputs (UnitInputs): everything that determines its result
 *   generated/<name>/  the compiled spec (compileSpecFile)
 *   run/               the training run (runTrain: checkpoints, metrics.jsonl, summary.json)
 *   eval.json          the eval report (evaluateRun)
 *   unit.json          the result (UnitResult), written last and atomically: its presence means done
 * A unit with unit.json is skipped; an interrupted one resumes from run/checkpoints/latest.
 * Then OUT/results.{md,csv,json} and OUT/plot.{svg,png} (Vega-Lite rendered without a browser).
 * This file plans the units and writes the results; inprocess.ts runs them in this process,
 * jobs.ts (--executor local|slurm) each as a job, command.ts is the `sdc ablate` command.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { formatAll } from "../../compiler/index.ts";
import { writeDirAtomic, writeFileAtomic } from "../../runtime/io/atomic.ts";
import { readCheckpoint, resolveCheckpoint } from "../../runtime/train/checkpoint.ts";
import { type Arm, matchError, type PlannedUnit, parseSet, planUnits, resultsCsv, resultsMarkdown, resultsPlotSpec, SweepError, type Sweep, type UnitInputs, type UnitMatch, type UnitResult, unitId } from "../../runtime/eval/sweep.ts";
import type { BackendName } from "../../runtime/backend.ts";
import { analyzeSeeds, armsPlotSpec, hasSeeds, seedsMarkdown } from "../../runtime/eval/seeds.ts";
import { InputError, UsageError } from "../errors.ts";
import { compiledCount, matchUnit } from "./match.ts";
import { compileSpecFile } from "../commands/compile.ts";

export interface AblateOptions {
  variants?: string[];
  base?: string;
  sweeps: Sweep[];
  set?: string[];
  steps: number;
  batch: number;
  seed: number;
  out?: string;
  backend: BackendName;
  perDigit: number;
  cfg: number[];
  sampleSteps?: number;
  /** MNIST test images for the reference features (default: all) */
  reference?: number;
  /** training seeds per arm: seed, seed + 1, ... (default 1) */
  seeds?: number;
  /** CFG scale whose prompt accuracy is plotted (default: the largest) */
  plotCfg?: number;
  checkpointEvery?: number;
  judge?: string;
  judgeWeights?: string;
  /** --match-params: one integer parameter to search per arm (one name for every arm, or one per arm; null = keep the arm as it is) */
  match?: MatchOptions;
  log?: (s: string) => void;
  stdout?: (s: string) => void;
}

export interface MatchOptions {
  params: (string | null)[];
  /** --target-params (default: the first arm's count, per sweep combination) */
  target?: number;
  on: UnitMatch["on"];
  range?: [number, number];
}

/** An arm as written on the command line: the spec file, its variant ("base" or none: null), its own overrides. */
export interface ArmArg {
  spec: string;
  variant: string | null;
  set: [string, string][];
}

const VARIANT = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** "specs/dit.mdl:tiny+depth=2+head_dim=32" -> { spec: "specs/dit.mdl", variant: "tiny", set: [["depth","2"], ["head_dim","32"]] }. */
export function parseArm(s: string): ArmArg {
  const m = /^(.+?\.mdl)(?::([^+]*))?(\+.*)?$/.exec(s);
  if (!m) throw new UsageError(s.includes(".mdl") ? `'${s}' is not an arm: expected SPEC.mdl[:VARIANT][+name=value...], e.g. specs/sd3.mdl:tiny or specs/sd3.mdl:tiny+depth=1` : `expected a .mdl spec file, got '${s}'`);
  const [, spec, variant, sets] = m;
  if (variant !== undefined && !VARIANT.test(variant)) throw new UsageError(`'${s}': '${variant}' is not a variant name (after ':' comes the variant, e.g. specs/sd3.mdl:tiny; overrides follow with '+name=value')`);
  const set = sets ? sets.slice(1).split(/\+(?=[A-Za-z_][A-Za-z0-9_.]*=)/).map((x) => {
    try {
      return parseSet(x);
    } catch (e) {
      throw new UsageError(`'${s}': the override '${x}' must look like name=value (${(e as Error).message})`);
    }
  }) : [];
  return { spec, variant: variant === undefined || variant === "base" ? null : variant, set };
}

/** What the results and plot are titled by: the spec, or the arms as given. */
function ablationTitle(specs: string | string[]): string {
  return typeof specs === "string" ? specs : specs.join(" ");
}

/** sha-256 of the spec file and of the .mdl files it imports (one level, as `import "lib/x.mdl"`). */
export function specHash(specPath: string): string {
  const h = createHash("sha256");
  const text = readFileSync(specPath, "utf8");
  h.update(text);
  const dir = specPath.includes("/") ? specPath.slice(0, specPath.lastIndexOf("/")) : ".";
  for (const m of text.matchAll(/^\s*import\s+"([^"]+)"/gm)) {
    const p = join(dir, m[1]);
    if (existsSync(p)) h.update(readFileSync(p));
  }
  return h.digest("hex");
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

export interface UnitModel {
  name: string;
  /** the network block (the architecture, e.g. mmdit) */
  network?: string;
  params: number;
  networkParams: number;
  /** the spec's training precision (train.precision) */
  precision: "fp32" | "bf16";
}

/** Compile the unit's spec (variant + overrides) into DIR/generated/<name>/. */
export function compileUnit(unit: PlannedUnit, dir: string): { genDir: string; model: UnitModel } {
  const inp = unit.inputs;
  const { result, dir: genDir } = compileSpecFile(inp.spec, { variant: inp.variant ?? undefined, set: inp.set, outDir: join(dir, "generated") });
  if (!result.ir || !result.files || !genDir) {
    throw new InputError(`unit ${unit.id}: the spec does not compile:\n${formatAll(result.diagnostics, result.program.sources, false)}`);
  }
  writeDirAtomic(genDir, Object.fromEntries(result.files));
  return { genDir, model: { name: result.ir.spec.name, network: result.ir.network.block, params: result.ir.stats.params, networkParams: result.ir.stats.networkParams, precision: result.ir.train.precision ?? "fp32" } };
}

/** A unit's result from its finished run folder and eval report (every executor assembles unit.json this way). */
export function unitResult(unit: PlannedUnit, run: string, model: UnitModel, ev: { valLoss: number; cfg: { cfg: number; accuracy: number; frechet: number; sampleSeconds: number }[] }, wallSeconds: number): UnitResult {
  let summary: { lastLoss: number; stepsPerSecond: number; seconds: number };
  if (existsSync(join(run, "summary.json"))) summary = JSON.parse(readFileSync(join(run, "summary.json"), "utf8"));
  else {
    // stopped between the last checkpoint and the summary: the checkpoint has what is needed
    const st = readCheckpoint(resolveCheckpoint(run)).state;
    summary = { lastLoss: st.lastLoss ?? NaN, stepsPerSecond: st.step / st.elapsedSeconds, seconds: st.elapsedSeconds };
  }
  const metrics = readFileSync(join(run, "metrics.jsonl"), "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as { step: number; loss?: number });
  const lastLoss = [...metrics].reverse().find((m) => m.loss !== undefined)?.loss ?? summary.lastLoss;

  return {
    id: unit.id, group: unit.group, inputs: unit.inputs, name: model.name, ...(model.network ? { network: model.network } : {}), params: model.params, networkParams: model.networkParams, precision: model.precision, ...(unit.match ? { match: unit.match } : {}),
    stepSeconds: 1 / summary.stepsPerSecond, trainSeconds: summary.seconds, finalTrainLoss: lastLoss, valLoss: ev.valLoss,
    cfg: ev.cfg.map((c) => ({ cfg: c.cfg, accuracy: c.accuracy, frechet: c.frechet, sampleSeconds: c.sampleSeconds })),
    wallSeconds,
  };
}

export interface AblationSummary {
  out: string;
  ran: string[];
  skipped: string[];
  results: UnitResult[];
  plot: { svg: string | null; png: string | null; note?: string };
}

const specName = (p: string) => basename(p).replace(/\.mdl$/, "");

/**
 * The ablation's units and folder, checked (every executor plans the same way). `specs` is one
 * spec (its --variants or --base and --sweeps), or arms (SPEC.mdl[:VARIANT][+name=value...]):
 * one arm is that spec's variant, several are the arms of a cross-spec ablation (unit ids start
 * with the spec file's name: sd3.tiny, dit.tiny+depth=2). Then --match-params, if given.
 */
export function planAblation(specs: string | string[], o: AblateOptions): { units: PlannedUnit[]; out: string } {
  const list = typeof specs === "string" ? [specs] : specs;
  if (!list.length) throw new UsageError("sdc ablate needs a spec (e.g. sdc ablate specs/sd3.mdl --variants tiny,small) or several arms (sdc ablate specs/sd3.mdl:tiny specs/dit.mdl:tiny)");
  const args = list.map(parseArm);
  for (const a of args) if (!existsSync(a.spec)) throw new InputError(`spec file not found: ${a.spec}`);
  const plain = args.length === 1 && list[0] === args[0].spec;
  const common = {
    fixed: (o.set ?? []).map(parseSet), sweeps: o.sweeps, seed: o.seed, seeds: o.seeds ?? 1, steps: o.steps, batch: o.batch, backend: o.backend,
    eval: { perDigit: o.perDigit, cfg: o.cfg, sampleSteps: o.sampleSteps ?? null, seed: 0, reference: o.reference ?? null },
  };
  let units: PlannedUnit[];
  if (plain) {
    const specPath = args[0].spec;
    if (o.variants?.length && o.base) throw new UsageError("give either --variants (one unit per variant) or --base (the variant the sweeps apply to), not both; sweeps apply to every --variants entry too");
    if (!o.variants?.length && !o.sweeps.length) throw new UsageError("nothing to ablate: give --variants a,b and/or --sweep name=v1,v2, or several arms: sdc ablate specs/sd3.mdl:tiny specs/other.mdl:tiny");
    const variants = o.variants?.length ? o.variants.map((v) => (v === "base" ? null : v)) : [o.base ?? null];
    units = planUnits({ spec: specPath, specHash: specHash(specPath), variants, ...common });
  } else {
    if (o.variants?.length || o.base) {
      const flag = o.variants?.length ? "variants" : "base";
      throw new UsageError(args.length === 1 ? `${list[0]} names its variant and overrides itself: give ${list[0]} or ${args[0].spec} --${flag} ..., not both` : `--${flag} is for one spec file; with arms (${list.join(" ")}) each arm names its variant: SPEC.mdl:VARIANT`);
    }
    const arms: Arm[] = args.map((a) => ({ spec: a.spec, specHash: specHash(a.spec), variant: a.variant, set: a.set, ...(args.length > 1 ? { label: specName(a.spec) } : {}) }));
    units = planUnits({ spec: args[0].spec, specHash: arms[0].specHash, variants: [], arms, ...common });
  }
  if (o.match) units = matchUnits(units, o.match, plain ? (o.variants?.length ?? 1) : args.length, o.log ?? ((s: string) => process.stderr.write(s + "\n")));
  // every unit compiles, before any trains (a --set that one of the specs lacks is found now, not after the other arms ran)
  for (const u of units) {
    if (u.match) continue; // compiled by the search
    const c = compiledCount(u.inputs, "params");
    if ("error" in c) throw new InputError(`unit ${u.id} (${u.inputs.spec}${u.inputs.variant ? `:${u.inputs.variant}` : ""}) does not compile; nothing was run:\n${c.error}`);
  }
  const out = o.out ?? join("ablations", [...new Set(args.map((a) => specName(a.spec)))].join("-vs-"));
  return { units, out };
}

/**
 * --match-params: each unit whose arm has a parameter to match gets `name=value` appended to its
 * overrides (and to its id). The target is --target-params, else the count of the first arm's
 * unit with the same sweep combination (the first arm is then the reference and is not matched).
 */
function matchUnits(units: PlannedUnit[], m: MatchOptions, armCount: number, log: (s: string) => void): PlannedUnit[] {
  if (m.params.length !== 1 && m.params.length !== armCount) {
    throw new UsageError(`--match-params lists ${m.params.length} names for ${armCount} arm${armCount === 1 ? "" : "s"}: give one name for every arm, or one per arm in order ('-' keeps an arm as it is)`);
  }
  const paramOf = (arm: number) => (m.params.length === 1 ? (m.target === undefined && arm === 0 ? null : m.params[0]) : m.params[arm]);
  if (m.target === undefined && m.params.length > 1 && m.params[0] !== null) {
    throw new UsageError(`--match-params ${m.params.map((p) => p ?? "-").join(",")}: without --target-params the first arm is the target; give '-' for it, or --target-params N`);
  }
  if (m.target === undefined && armCount < 2) throw new UsageError("--match-params with one arm needs --target-params N (there is no first arm to match)");
  const targets = new Map<number, number>();
  const targetOf = (u: PlannedUnit): number => {
    if (m.target !== undefined) return m.target;
    const combo = u.combo ?? 0;
    if (!targets.has(combo)) {
      const ref = units.find((x) => (x.arm ?? 0) === 0 && (x.combo ?? 0) === combo)!;
      const c = compiledCount(ref.inputs, m.on);
      if ("error" in c) throw new InputError(`unit ${ref.id} (the target of --match-params) does not compile:\n${c.error}`);
      targets.set(combo, c.count);
    }
    return targets.get(combo)!;
  };
  const ids = new Set<string>();
  const searched = new Map<string, ReturnType<typeof matchUnit>>();
  const out = units.map((u) => {
    const param = paramOf(u.arm ?? 0);
    if (param === null) {
      ids.add(u.id);
      return u;
    }
    for (const s of u.inputs.set) if (s.startsWith(`${param}=`)) throw new SweepError(`${param} is both --match-params and an override of unit ${u.id} (${s}); match it, or set it`);
    const where = `unit ${u.id} (${u.inputs.spec}${u.inputs.variant ? `:${u.inputs.variant}` : ""})`;
    const t0 = performance.now();
    // the seeds of one arm and sweep combination match alike: searched once
    const key = JSON.stringify({ ...u.inputs, seed: 0, param });
    const r = searched.get(key) ?? matchUnit(u.inputs, { param, target: targetOf(u), on: m.on, range: m.range }, where);
    const again = searched.has(key);
    searched.set(key, r);
    const set = [...u.inputs.set, `${param}=${r.match.value}`];
    const group = unitId(u.inputs.variant, set, u.label);
    const id = group + u.seedTag;
    if (ids.has(id)) throw new SweepError(`two units would share the folder ${id} after matching ${param}`);
    ids.add(id);
    const what = m.on === "network" ? "network parameters" : "parameters";
    if (!again) log(`match: ${where}: ${param} ${r.match.from} -> ${r.match.value}: ${r.match.achieved.toLocaleString("en-US")} ${what} (target ${r.match.target.toLocaleString("en-US")}, ${matchError(r.match)}; ${r.match.compiled} values compiled in ${((performance.now() - t0) / 1000).toFixed(1)} s)${r.atBound ? `; at the end of the range ${r.range[0]}..${r.range[1]}: widen it with --match-range` : ""}`);
    return { ...u, id, group, match: r.match, inputs: { ...u.inputs, set } };
  });
  return out;
}

/** The unit's unit.json when it is done (refusing one made with other inputs), else null. */
export function finishedUnit(unit: PlannedUnit, dir: string): UnitResult | null {
  const done = join(dir, "unit.json");
  if (!existsSync(done)) return null;
  const r = JSON.parse(readFileSync(done, "utf8")) as UnitResult;
  if (!same(r.inputs, unit.inputs)) throw new InputError(`${done} was made with other inputs (${diffInputs(r.inputs, unit.inputs)}); use another --out, or delete ${dir} to redo it`);
  // the match is how this plan chose the unit's value, not an input: the current plan's is reported
  const { match: _, ...rest } = r;
  const withGroup = { ...rest, group: unit.group };
  return unit.match ? { ...withGroup, match: unit.match } : withGroup;
}

/** An unfinished unit folder made with other inputs is started over. Returns true if it was removed. */
export function clearStaleUnit(unit: PlannedUnit, dir: string): boolean {
  const prev = join(dir, "inputs.json");
  if (existsSync(prev) && !same(JSON.parse(readFileSync(prev, "utf8")), unit.inputs)) {
    rmSync(dir, { recursive: true, force: true });
    return true;
  }
  return false;
}

/**
 * OUT/results.{md,csv,json} and OUT/plot.{svg,png,vl.json}; with several seeds per arm also
 * OUT/arms.json (runtime/eval/seeds.ts: mean and interval per arm, the pairwise tests), its
 * tables in results.md, and the plot of the arms' means with their intervals. `note`: a line under
 * the title (where the units came from, for --combine).
 */
export async function writeResults(out: string, specs: string | string[], o: Pick<AblateOptions, "steps" | "batch" | "cfg" | "plotCfg">, results: UnitResult[], log: (s: string) => void, note?: string): Promise<AblationSummary["plot"]> {
  const on = results.find((r) => r.match)?.match?.on;
  const matched = on ? ` match: the parameter set to the value whose exact ${on === "network" ? "network " : ""}parameter count is closest to target_params (achieved_params, match_err).` : "";
  const seeds = hasSeeds(results) ? analyzeSeeds(results) : null;
  writeFileAtomic(join(out, "results.md"), `# Ablation: ${ablationTitle(specs)}\n\n${note ? `${note}\n\n` : ""}${resultsMarkdown(results)}\nFD: judge-feature Fréchet distance (not Inception FID). acc: prompt accuracy judged by the MNIST classifier.${matched}\n${seeds ? `\n${seedsMarkdown(seeds)}` : ""}`);
  writeFileAtomic(join(out, "results.csv"), resultsCsv(results));
  writeFileAtomic(join(out, "results.json"), JSON.stringify(results, null, 2) + "\n");
  if (seeds) writeFileAtomic(join(out, "arms.json"), JSON.stringify(seeds, null, 2) + "\n");
  else rmSync(join(out, "arms.json"), { force: true });
  const plotCfg = o.plotCfg ?? Math.max(...o.cfg);
  const title = `${(typeof specs === "string" ? [specs] : specs).map((s) => basename(s)).join(" vs ")}: ${o.steps} steps, batch ${o.batch}`;
  return writePlot(join(out, "plot"), seeds ? armsPlotSpec(seeds, plotCfg, title) : resultsPlotSpec(results, plotCfg, title), log);
}

function diffInputs(a: UnitInputs, b: UnitInputs): string {
  const keys = Object.keys({ ...a, ...b }) as (keyof UnitInputs)[];
  return keys.filter((k) => !same(a[k], b[k])).map((k) => `${k}: ${JSON.stringify(a[k])} then, ${JSON.stringify(b[k])} now`).join("; ");
}

/** Vega-Lite -> Vega -> SVG (vega's headless renderer), then PNG with @resvg/resvg-js; SVG only if resvg cannot load. */
export async function writePlot(base: string, vlSpec: Record<string, unknown>, log: (s: string) => void): Promise<AblationSummary["plot"]> {
  writeFileAtomic(base + ".vl.json", JSON.stringify(vlSpec, null, 2) + "\n");
  let svg: string;
  try {
    const vl = await import("vega-lite");
    const vega = await import("vega");
    const compiled = vl.compile(vlSpec as never).spec;
    const view = new vega.View(vega.parse(compiled), { renderer: "none" });
    svg = await view.toSVG();
    view.finalize();
  } catch (e) {
    const note = `plot not drawn (vega/vega-lite unavailable: ${(e as Error).message}); the Vega-Lite spec is in ${base}.vl.json`;
    log(note);
    return { svg: null, png: null, note };
  }
  writeFileAtomic(base + ".svg", svg);
  try {
    const { Resvg } = await import("@resvg/resvg-js");
    const png = new Resvg(svg, { background: "white", fitTo: { mode: "zoom", value: 2 }, font: { loadSystemFonts: true } }).render().asPng();
    writeFileSync(base + ".png", png);
    return { svg: base + ".svg", png: base + ".png" };
  } catch (e) {
    const note = `wrote ${base}.svg only: @resvg/resvg-js failed (${(e as Error).message})`;
    log(note);
    return { svg: base + ".svg", png: null, note };
  }
}
