/**
 * What a training run ran: `RUN/config.json` holds the effective settings after every override
 * (spec, then the run's own config when resuming, then flags), the command line, versions, seed,
 * backend and engine. `--resume` reuses them: a flag that differs from the run's value is an
 * error that names it (`--steps` may grow: that is what resuming is for; the backend and engine
 * may change: checkpoints are the same on every engine).
 */
import { createHash } from "node:crypto";
import { existsSync, lstatSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import AjvModule from "ajv";
import irSchema from "../ir/ir.schema.json" with { type: "json" };
import * as tf from "@tensorflow/tfjs";
import { TRAIN_OPTIONAL_DEFAULTS } from "../compiler/spec.ts";
import type { IR, TrainIR } from "../ir/ir.ts";
import { irHash } from "../ir/validate.ts";
import { checkOutputDir, removeStaleTemps, writeFileAtomic } from "../runtime/io/atomic.ts";
import { type CheckpointContents, CheckpointError, readCheckpoint, resolveCheckpoint } from "../runtime/train/checkpoint.ts";
import { readRegularFile } from "../runtime/io/read-file.ts";
import type { LrScheduleName } from "../runtime/train/lr-schedule.ts";
import { InputError, UsageError, parseIntArg, parsePositiveArg } from "./errors.ts";
import { SDC_VERSION } from "./version.ts";

/** The settings a run trains with (each one a flag of `sdc train`, or a spec setting without one). */
export interface RunSettings {
  steps: number;
  batch: number;
  lr: number;
  seed: number;
  sampleEvery: number;
  checkpointEvery: number;
  samples: number;
  sampleSteps: number;
  [k: string]: number | string | boolean | null;
}

/** The settings a run may be given by a flag of `sdc train` (by setting name; undefined: not given). */
export interface SettingFlags {
  steps?: number;
  batch?: number;
  lr?: number;
  seed?: number;
  sampleEvery?: number;
  checkpointEvery?: number;
  samples?: number;
  sampleSteps?: number;
  /** learning-rate warmup steps (default: the spec's) */
  warmup?: number;
  lrSchedule?: LrScheduleName;
  /** gradient accumulation: micro-batches per step (must divide the batch) */
  accumulate?: number;
  /** keep the last N checkpoints (0 = all) */
  keepCheckpoints?: number;
  /** also keep the checkpoint with the lowest validation loss */
  keepBest?: boolean;
  /** "fp32" or "bf16" (mixed precision, the static engine on native CPU kernels); anything else is refused with what is supported */
  precision?: string;
}

/** How a setting's flag is read: an integer in [min, max], a positive number, one of the choices (commander checks them), a switch, or text checked later. */
type SettingValue = { int: [number, number?] } | { positive: true } | { choices: string[] } | { boolean: true } | { text: true; schema: object };

/** Every setting with a flag, in the flags' order: the flag, what it accepts (the flag and config.json alike), and whether a resumed run may change it. */
export const SETTINGS: Record<keyof SettingFlags, { flag: string; mayChangeOnResume?: boolean } & SettingValue> = {
  steps: { flag: "--steps", int: [1, 1e9], mayChangeOnResume: true },
  batch: { flag: "--batch-size", int: [1, 1 << 16] },
  lr: { flag: "--lr", positive: true },
  seed: { flag: "--seed", int: [0] },
  sampleEvery: { flag: "--sample-every", int: [0] },
  checkpointEvery: { flag: "--checkpoint-every", int: [0] },
  samples: { flag: "--samples", int: [1, 1024] },
  sampleSteps: { flag: "--sample-steps", int: [1, 100000] },
  warmup: { flag: "--warmup", int: [0] },
  lrSchedule: { flag: "--lr-schedule", choices: ["constant", "linear", "cosine"] },
  accumulate: { flag: "--grad-accum", int: [1, 1 << 16] },
  keepCheckpoints: { flag: "--keep-checkpoints", int: [0], mayChangeOnResume: true },
  keepBest: { flag: "--keep-best", boolean: true, mayChangeOnResume: true },
  precision: { flag: "--precision", text: true, schema: { enum: ["fp32", "bf16"] } },
};

/** commander's name of a flag's value: --batch-size -> batchSize. */
const attributeOf = (flag: string) => flag.slice(2).replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** The settings' flags of `sdc train` as commander parsed them (text), each read and range-checked (UsageError naming the flag). */
export function parseSettingFlags(o: Record<string, unknown>): SettingFlags {
  const out: Record<string, number | string | boolean | undefined> = {};
  for (const [k, s] of Object.entries(SETTINGS)) {
    const v = o[attributeOf(s.flag)];
    if (v === undefined) continue;
    if ("int" in s) out[k] = parseIntArg(s.flag, String(v), s.int[0], s.int[1]);
    else if ("positive" in s) out[k] = parsePositiveArg(s.flag, String(v));
    else if ("boolean" in s) out[k] = v === true ? true : undefined;
    else out[k] = String(v);
  }
  return out as SettingFlags;
}

export interface RunConfig {
  format: "sdc-run-config";
  version: 1;
  /** the compiled package trained, as given */
  package: string;
  spec: string;
  irHash: string;
  settings: Record<string, number | string | boolean | null>;
  /** the spec's training recipe as compiled (optimizer, clip, EMA, ...; the IR's TrainIR, its optimizer's lr the run's) */
  recipe: object;
  command: string[];
  versions: { sdc: string; node: string; tfjs: string };
  seed: number;
  backend: string;
  engine: string;
  created: string;
  /** every invocation that trained this run folder: the first, then each resume */
  history: { command: string[]; fromStep: number; at: string }[];
}

export const CONFIG_FILE = "config.json";
/** config.json is refused past this size before it is parsed (a run's own is a few KB, plus ~0.3 KB a resume). */
export const CONFIG_MAX_BYTES = 1 << 20;

const INT = (minimum: number, maximum = Number.MAX_SAFE_INTEGER) => ({ type: "integer", minimum, maximum });
/** Each setting's type and range in config.json: what its flag of `sdc train` accepts (SETTINGS). */
export const SETTING_SCHEMAS: Record<string, object> = Object.fromEntries(
  Object.entries(SETTINGS).map(([k, s]) => [k, "int" in s ? INT(s.int[0], s.int[1]) : "positive" in s ? { type: "number", exclusiveMinimum: 0 } : "choices" in s ? { enum: s.choices } : "boolean" in s ? { type: "boolean" } : s.schema]),
);
const SHA = { type: "string", pattern: "^[0-9a-f]{64}$" };
const TEXT = { type: "string", maxLength: 4096 };
const ARGV = { type: "array", minItems: 1, maxItems: 1000, items: TEXT };
const ir = irSchema as unknown as { properties: { train: object }; definitions: object };

/** JSON schema of config.json (draft-07, as ajv checks it): nothing unknown, every setting in its range. */
export const RUN_CONFIG_SCHEMA = {
  type: "object",
  additionalProperties: false,
  required: ["format", "version", "package", "spec", "irHash", "settings", "recipe", "command", "versions", "seed", "backend", "engine", "created", "history"],
  properties: {
    format: { const: "sdc-run-config" },
    version: { const: 1 },
    package: TEXT,
    spec: { type: "string", maxLength: 1000 },
    irHash: SHA,
    // older runs lack the settings added since (keep_best, precision, ...): the spec's value then
    settings: { type: "object", additionalProperties: false, required: ["steps", "batch", "lr", "seed", "sampleEvery", "checkpointEvery", "samples", "sampleSteps"], properties: SETTING_SCHEMAS },
    // the spec's training recipe as compiled: the IR's own schema of it
    recipe: ir.properties.train,
    command: ARGV,
    versions: { type: "object", additionalProperties: false, required: ["sdc", "node", "tfjs"], properties: { sdc: TEXT, node: TEXT, tfjs: TEXT } },
    seed: INT(0),
    backend: { enum: ["tensorflow", "webgpu", "wasm", "cpu"] },
    engine: { enum: ["tfjs", "static"] },
    created: TEXT,
    history: { type: "array", minItems: 1, maxItems: 100000, items: { type: "object", additionalProperties: false, required: ["command", "fromStep", "at"], properties: { command: ARGV, fromStep: INT(0, 1e9), at: TEXT } } },
    checksum: SHA,
  },
  definitions: ir.definitions,
} as const;

const Ajv = (AjvModule as unknown as { default?: typeof AjvModule }).default ?? AjvModule;
let validateConfig: ReturnType<InstanceType<typeof Ajv>["compile"]> | undefined;

/** The value at a JSON pointer (ajv's instancePath), for messages. */
function at(doc: unknown, pointer: string): unknown {
  let v = doc;
  for (const part of pointer.split("/").slice(1)) v = v !== null && typeof v === "object" && Object.hasOwn(v, part.replace(/~1/g, "/").replace(/~0/g, "~")) ? (v as Record<string, unknown>)[part.replace(/~1/g, "/").replace(/~0/g, "~")] : undefined;
  return v;
}
const shown = (v: unknown) => {
  const t = JSON.stringify(v) ?? String(v);
  return t.length > 40 ? `${t.slice(0, 39)}…` : t;
};

/** What is wrong with a parsed config.json (empty: nothing), each naming the field: schema, then what a schema cannot say. Pure. */
export function runConfigProblems(c: unknown): string[] {
  validateConfig ??= new Ajv({ allErrors: true, strict: false }).compile(RUN_CONFIG_SCHEMA);
  if (!validateConfig(c)) {
    return (validateConfig.errors ?? []).slice(0, 5).map((e) => {
      const path = e.instancePath || "/";
      const p = e.params as Record<string, unknown>;
      if (e.keyword === "additionalProperties") return `${path === "/" ? "" : path}/${String(p.additionalProperty)} is not a known key`;
      if (e.keyword === "required") return `${path === "/" ? "" : path}/${String(p.missingProperty)} is missing`;
      const allowed = "allowedValues" in p ? ` (${(p.allowedValues as unknown[]).join(", ")})` : "allowedValue" in p ? ` ${shown(p.allowedValue)}` : "";
      return `${path} ${e.message ?? "is invalid"}${allowed}, found ${shown(at(c, e.instancePath))}`;
    });
  }
  const r = c as RunConfig;
  const st = r.settings as RunSettings;
  const problems: string[] = [];
  if (r.seed !== r.settings.seed) problems.push(`/seed ${r.seed} differs from /settings/seed ${r.settings.seed}`);
  const lr = (r.recipe as { optimizer: { lr: number } }).optimizer.lr;
  if (lr !== r.settings.lr) problems.push(`/recipe/optimizer/lr ${lr} differs from /settings/lr ${r.settings.lr}`);
  const accumulate = (st.accumulate ?? 1) as number;
  if (st.batch % accumulate !== 0) problems.push(`/settings/accumulate ${accumulate} does not divide /settings/batch ${st.batch}`);
  const last = r.history.at(-1)?.fromStep ?? 0;
  if (last >= st.steps) problems.push(`/history's last run started at step ${last}, not before /settings/steps ${st.steps}`);
  return problems;
}

/** config.json's text: the object, pretty-printed; its checksum is the sha-256 of the text without `checksum`. */
const configText = (c: object) => JSON.stringify(c, null, 2) + "\n";
const sha = (s: string) => createHash("sha256").update(s).digest("hex");

/** What the run folder must be of: the package being trained. */
export interface RunConfigExpect {
  spec: string;
  irHash: string;
}

/**
 * A run folder's config.json, verified before anything in it is used: a regular file inside the
 * run folder of at most CONFIG_MAX_BYTES, JSON, valid against RUN_CONFIG_SCHEMA, consistent, of
 * the package being trained (`expect`), and matching its own checksum (configs written before it
 * had one are accepted when they validate). Null when there is none. InputError (exit 1) naming
 * the field otherwise.
 */
export function readRunConfig(runDir: string, expect?: RunConfigExpect): RunConfig | null {
  const p = join(runDir, CONFIG_FILE);
  try {
    lstatSync(p);
  } catch {
    return null;
  }
  const fix = "the run folder was edited or is damaged; restore config.json, or start a new run with --out DIR";
  const text = readRegularFile(p, { maxBytes: CONFIG_MAX_BYTES, root: runDir, limitWhy: "a run's config is a few KB" }).toString("utf8");
  let c: unknown;
  try {
    c = JSON.parse(text);
  } catch (e) {
    throw new InputError(`${p} is not valid JSON (${(e as Error).message}); ${fix}`);
  }
  if (c === null || typeof c !== "object" || Array.isArray(c) || (c as { format?: unknown }).format !== "sdc-run-config") throw new InputError(`${p} is not an sdc run config (format ${shown((c as { format?: unknown } | null)?.format)}); ${fix}`);
  const problems = runConfigProblems(c);
  if (problems.length) throw new InputError(`${p} is invalid: ${problems.join("; ")}; ${fix}`);
  const r = c as RunConfig & { checksum?: string };
  if (expect && r.spec !== expect.spec) throw new InputError(`${p}: /spec ${shown(r.spec)} is not the spec being trained (${expect.spec}); ${fix}`);
  if (expect && r.irHash !== expect.irHash) throw new InputError(`${p}: /irHash ${r.irHash.slice(0, 12)} is not the IR of the package being trained (${expect.irHash.slice(0, 12)}); ${fix}`);
  if (r.checksum !== undefined) {
    const { checksum, ...rest } = r;
    if (sha(configText(rest)) !== checksum) throw new InputError(`${p} does not match its checksum (edited by hand or damaged); ${fix}`);
  }
  return r;
}

/** Write config.json with its own checksum (the sha-256 of the text without it). */
export function writeRunConfig(runDir: string, c: RunConfig): void {
  const { checksum: _old, ...rest } = c as RunConfig & { checksum?: string };
  writeFileAtomic(join(runDir, CONFIG_FILE), configText({ ...rest, checksum: sha(configText(rest)) }));
}

/**
 * Effective settings: the spec's defaults, then the resumed run's config, then the flags given.
 * Resuming, a flag whose value differs from the run's is refused (all of them, in one message).
 */
export function resolveSettings(
  spec: RunSettings,
  flags: Partial<Record<string, number | string | boolean | undefined>>,
  prior: RunConfig | null,
  priorPath = "config.json",
): RunSettings {
  const out: RunSettings = { ...spec };
  const differing: string[] = [];
  for (const k of Object.keys(spec)) {
    const before = prior?.settings[k];
    if (prior && before !== undefined) out[k] = before;
    const f = flags[k];
    if (f === undefined) continue;
    const meta = SETTINGS[k as keyof SettingFlags];
    if (prior && before !== undefined && before !== f && !meta?.mayChangeOnResume) differing.push(`${meta?.flag ?? k} ${f} (the run has ${before})`);
    out[k] = f;
  }
  if (differing.length) {
    throw new UsageError(`resuming a run with other settings than it was started with: ${differing.join(", ")}; ${priorPath} records the run's settings; drop the flag${differing.length > 1 ? "s" : ""} to continue as it was, or start a new run with --out DIR`);
  }
  return out;
}

/** What a request for a precision other than fp32 and bf16 gets. */
export function precisionRefusal(what: string): string {
  return `${what} is not supported: sdc trains in fp32, or in bf16 mixed precision (the static engine on native CPU kernels); supported: fp32, bf16`;
}

/** What `sdc train` asks of a run: its settings' flags, where it goes and what it resumes. */
export interface RunRequest extends SettingFlags {
  out?: string;
  /** a checkpoint or run folder; "latest" or true: the newest run of this package under `runsDir` (and --out) */
  resume?: string | boolean;
  /** where `--resume latest` looks for runs (default: output) */
  runsDir?: string;
  /** the command line, recorded in config.json */
  argv?: string[];
}

/** The package a run trains: its folder as given, its IR and the IR's hash. */
export interface RunPackage {
  dir: string;
  ir: IR;
  hash: string;
}

/** The checkpoint a run resumes from (found and verified before any work) and its run folder. */
export interface ResumePoint {
  resumed?: CheckpointContents;
  resumeDir?: string;
  runDir: string | null;
}

/**
 * A run, resolved from its request before any work: the config.json it trains by and writes
 * (all but the backend and the engine, known once they start), the checkpoint it resumes from,
 * the resumed run's own config, its output folder, and notes for the log.
 */
export interface ResolvedRun {
  config: Omit<RunConfig, "backend" | "engine" | "recipe" | "settings"> & { recipe: TrainIR; settings: RunSettings };
  resume: ResumePoint;
  prior: RunConfig | null;
  out: string;
  notes: string[];
}

/** The settings a spec trains with when no flag and no resumed run says otherwise. */
function specSettings(ir: IR): RunSettings {
  const t = ir.train;
  const D = TRAIN_OPTIONAL_DEFAULTS;
  return {
    steps: t.steps, batch: t.batch, lr: t.optimizer.lr, seed: t.seed, sampleEvery: t.sampleEvery, checkpointEvery: t.checkpointEvery, samples: t.samples, sampleSteps: ir.flow.steps,
    warmup: t.warmup, lrSchedule: t.lrSchedule ?? D.lrSchedule, accumulate: t.accumulate ?? D.accumulate, keepCheckpoints: t.keepCheckpoints ?? D.keepCheckpoints, keepBest: t.keepBest ?? D.keepBest, precision: t.precision ?? D.precision,
  };
}

/** `--resume`: find the checkpoint (the newest run of this spec, or the folder given) and check it is of this spec. */
function findResume(pkg: RunPackage, req: RunRequest): ResumePoint {
  const { ir, hash } = pkg;
  if (req.resume === undefined || req.resume === false) return { runDir: null };
  let resumeDir: string;
  let runDir: string | null;
  if (req.resume === true || req.resume === "latest") {
    const roots = [req.runsDir ?? "output", ...(req.out ? [req.out] : [])];
    runDir = newestRun(roots, ir.spec.name, hash, irHash);
    if (!runDir) throw new CheckpointError(`no run of ${ir.spec.name} to resume: no folder under ${roots.join(", ")} has checkpoints/latest of this spec; give the run folder (--resume DIR) or start a run without --resume`);
    resumeDir = resolveCheckpoint(runDir);
  } else {
    resumeDir = resolveCheckpoint(req.resume);
    runDir = runDirOf(resumeDir);
  }
  const resumed = readCheckpoint(resumeDir);
  if (resumed.state.irHash !== hash) {
    throw new CheckpointError(`checkpoint ${resumeDir} is from another spec (${resumed.state.spec}, IR ${resumed.state.irHash.slice(0, 12)}) than ${pkg.dir} (${ir.spec.name}, IR ${hash.slice(0, 12)})`);
  }
  return { resumed, resumeDir, runDir };
}

/**
 * The one resolver of `sdc train`'s options: the checkpoint resumed, then the settings (the
 * spec's, the resumed run's config.json, the flags; a flag that differs from the run's is
 * refused), then the output folder, each checked before any work; returns the run's config.
 */
export function resolveRun(pkg: RunPackage, req: RunRequest): ResolvedRun {
  const { ir, hash } = pkg;
  const resume = findResume(pkg, req);
  const { runDir, resumed } = resume;
  const prior = runDir ? readRunConfig(runDir, { spec: ir.spec.name, irHash: hash }) : null;
  if (req.precision !== undefined && req.precision !== "fp32" && req.precision !== "bf16") throw new UsageError(precisionRefusal(`--precision ${req.precision}`));
  const flags = Object.fromEntries(Object.keys(SETTINGS).map((k) => [k, req[k as keyof SettingFlags]]));
  const settings = resolveSettings(specSettings(ir), flags, prior, runDir ? join(runDir, CONFIG_FILE) : undefined);
  const { steps, batch } = settings;
  const accumulate = settings.accumulate as number;
  if (batch % accumulate !== 0) throw new UsageError(`--grad-accum ${accumulate} does not divide the batch size ${batch}: each step's batch is split into that many equal micro-batches`);
  const schedule = settings.lrSchedule as LrScheduleName;
  const notes = prior && schedule !== "constant" && prior.settings.steps !== steps ? [`note: the ${schedule} learning-rate schedule now spans ${steps} steps (the run was started for ${prior.settings.steps}); the rate changes from here`] : [];
  const out = req.out ?? runDir ?? join("output", ir.spec.name);
  // an output folder that cannot be one (a file, a device, read-only) is refused before any work
  checkOutputDir(out);
  if (resumed && resumed.state.step >= steps) throw new InputError(`checkpoint ${resume.resumeDir} is already at step ${resumed.state.step}; ask for more --steps (now ${steps})`);
  const now = new Date().toISOString();
  const command = req.argv ?? ["sdc", "train", pkg.dir];
  const config: ResolvedRun["config"] = {
    format: "sdc-run-config", version: 1, package: pkg.dir, spec: ir.spec.name, irHash: hash, settings, recipe: { ...ir.train, optimizer: { ...ir.train.optimizer, lr: settings.lr } }, command,
    versions: { sdc: SDC_VERSION, node: process.version, tfjs: tf.version_core }, seed: settings.seed, created: prior?.created ?? now,
    history: [...(prior?.history ?? []), { command, fromStep: resumed?.state.step ?? 0, at: now }],
  };
  return { config, resume, prior, out, notes };
}

/** The run folder a checkpoint belongs to (RUN/checkpoints/step-N -> RUN), or null. */
export function runDirOf(checkpointDir: string): string | null {
  const parent = dirname(checkpointDir);
  return basename(parent) === "checkpoints" ? dirname(parent) : null;
}

/**
 * The newest run of a package under `root` (each subfolder with checkpoints/latest whose
 * config.json, or else whose checkpoint's ir.json, is of that spec), by the time of its latest
 * checkpoint. Null when there is none.
 */
export function newestRun(roots: string[], spec: string, irHash: string, hashOf: (irText: string) => string): string | null {
  let best: { dir: string; t: number } | null = null;
  const seen = new Set<string>();
  const consider = (dir: string) => {
    if (seen.has(dir)) return;
    seen.add(dir);
    const latest = join(dir, "checkpoints", "latest");
    if (!existsSync(latest)) return;
    let ok = false;
    try {
      const c = readRunConfig(dir);
      if (c) ok = c.spec === spec && c.irHash === irHash;
      else {
        const ck = join(dir, "checkpoints", readRegularFile(latest, { maxBytes: 4096, root: dir }).toString("utf8").trim());
        ok = existsSync(join(ck, "ir.json")) && hashOf(readRegularFile(join(ck, "ir.json"), { maxBytes: 64 << 20, root: dir }).toString("utf8")) === irHash;
      }
    } catch {
      ok = false;
    }
    if (!ok) return;
    const t = statSync(latest).mtimeMs;
    if (!best || t > best.t) best = { dir, t };
  };
  for (const root of roots) {
    if (!existsSync(root) || !statSync(root).isDirectory()) continue;
    consider(root);
    for (const e of readdirSync(root, { withFileTypes: true })) if (e.isDirectory()) consider(join(root, e.name));
  }
  return (best as { dir: string } | null)?.dir ?? null;
}

/**
 * Resuming at `step`: drop the metric lines of later steps (the resume redoes them), so each
 * step appears once. Returns how many lines were dropped.
 */
export function truncateMetrics(path: string, step: number): number {
  if (!existsSync(path) && !isLink(path)) return 0;
  const lines = readMetricsText(path).split("\n").filter((l) => l.trim() !== "");
  const keep = lines.filter((l) => {
    try {
      const s = (JSON.parse(l) as { step?: number }).step;
      return typeof s !== "number" || s <= step;
    } catch {
      return false; // a torn last line from a killed run
    }
  });
  if (keep.length !== lines.length) writeFileAtomic(path, keep.map((l) => l + "\n").join(""));
  return lines.length - keep.length;
}

/** Validation losses by step from a metrics.jsonl (lines with val_loss). */
export function readValLosses(path: string): Map<number, number> {
  const out = new Map<number, number>();
  if (!existsSync(path) && !isLink(path)) return out;
  for (const l of readMetricsText(path).split("\n")) {
    try {
      const r = JSON.parse(l) as { step?: number; val_loss?: number };
      if (typeof r.step === "number" && typeof r.val_loss === "number") out.set(r.step, r.val_loss);
    } catch {
      // blank or torn line
    }
  }
  return out;
}

/** Largest metrics.jsonl read back (a line is ~150 bytes per logged step). */
const METRICS_MAX_BYTES = 1 << 30;

/** metrics.jsonl of a run folder: a regular file inside it (never a FIFO or device that would block or never end). */
function readMetricsText(path: string): string {
  return readRegularFile(path, { maxBytes: METRICS_MAX_BYTES, root: dirname(path) }).toString("utf8");
}

function isLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

/**
 * At the start of a run in `out`: remove what interrupted writes left (`*.tmp-*` files and folders
 * of processes no longer running, runtime/io/atomic.ts) in the run folder, its samples and its
 * checkpoints; returns a line per action.
 */
export function cleanRunFolder(out: string): string[] {
  return [out, join(out, "samples"), join(out, "checkpoints")].flatMap((d) => removeStaleTemps(d));
}
