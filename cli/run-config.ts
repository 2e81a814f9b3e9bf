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
import { removeStaleTemps, writeFileAtomic } from "../runtime/io/atomic.ts";
import { readRegularFile } from "../runtime/io/read-file.ts";
import { InputError, UsageError } from "./errors.ts";

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

/** Settings with a flag: the flag's name, and whether a resumed run may change it. */
export const SETTING_FLAGS: Record<string, { flag: string; mayChangeOnResume?: boolean }> = {
  steps: { flag: "--steps", mayChangeOnResume: true },
  batch: { flag: "--batch-size" },
  lr: { flag: "--lr" },
  seed: { flag: "--seed" },
  sampleEvery: { flag: "--sample-every" },
  checkpointEvery: { flag: "--checkpoint-every" },
  samples: { flag: "--samples" },
  sampleSteps: { flag: "--sample-steps" },
  warmup: { flag: "--warmup" },
  lrSchedule: { flag: "--lr-schedule" },
  accumulate: { flag: "--grad-accum" },
  keepCheckpoints: { flag: "--keep-checkpoints", mayChangeOnResume: true },
  keepBest: { flag: "--keep-best", mayChangeOnResume: true },
  precision: { flag: "--precision" },
};

export interface RunConfig {
  format: "sdc-run-config";
  version: 1;
  /** the compiled package trained, as given */
  package: string;
  spec: string;
  irHash: string;
  settings: Record<string, number | string | boolean | null>;
  /** the spec's training recipe as compiled (optimizer, clip, EMA, ...) */
  recipe: Record<string, unknown>;
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
/** Each setting's type and range: what the flags of `sdc train` accept (cli/program/train.ts). */
export const SETTING_SCHEMAS: Record<string, object> = {
  steps: INT(1, 1e9),
  batch: INT(1, 1 << 16),
  lr: { type: "number", exclusiveMinimum: 0 },
  seed: INT(0),
  sampleEvery: INT(0),
  checkpointEvery: INT(0),
  samples: INT(1, 1024),
  sampleSteps: INT(1, 100000),
  warmup: INT(0),
  lrSchedule: { enum: ["constant", "linear", "cosine"] },
  accumulate: INT(1, 1 << 16),
  keepCheckpoints: INT(0),
  keepBest: { type: "boolean" },
  precision: { enum: ["fp32", "bf16"] },
};
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
    const meta = SETTING_FLAGS[k];
    if (prior && before !== undefined && before !== f && !meta?.mayChangeOnResume) differing.push(`${meta?.flag ?? k} ${f} (the run has ${before})`);
    out[k] = f;
  }
  if (differing.length) {
    throw new UsageError(`resuming a run with other settings than it was started with: ${differing.join(", ")}; ${priorPath} records the run's settings; drop the flag${differing.length > 1 ? "s" : ""} to continue as it was, or start a new run with --out DIR`);
  }
  return out;
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
