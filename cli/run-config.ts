/**
 * What a training run ran: `RUN/config.json` holds the effective settings after every override
 * (spec, then the run's own config when resuming, then flags), the command line, versions, seed,
 * backend and engine. `--resume` reuses them: a flag that differs from the run's value is an
 * error that names it (`--steps` may grow: that is what resuming is for; the backend and engine
 * may change: checkpoints are the same on every engine).
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { writeFileAtomic } from "../runtime/io/atomic.ts";
import { UsageError } from "./errors.ts";

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

export function readRunConfig(runDir: string): RunConfig | null {
  const p = join(runDir, CONFIG_FILE);
  if (!existsSync(p)) return null;
  try {
    const c = JSON.parse(readFileSync(p, "utf8")) as RunConfig;
    if (c?.format !== "sdc-run-config" || typeof c.settings !== "object") throw new Error("not an sdc run config");
    return c;
  } catch (e) {
    throw new UsageError(`${p} is not a valid run config (${(e as Error).message}); remove it to resume with the spec's settings`);
  }
}

export function writeRunConfig(runDir: string, c: RunConfig): void {
  writeFileAtomic(join(runDir, CONFIG_FILE), JSON.stringify(c, null, 2) + "\n");
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
        const ck = join(dir, "checkpoints", readFileSync(latest, "utf8").trim());
        ok = existsSync(join(ck, "ir.json")) && hashOf(readFileSync(join(ck, "ir.json"), "utf8")) === irHash;
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
  if (!existsSync(path)) return 0;
  const lines = readFileSync(path, "utf8").split("\n").filter((l) => l.trim() !== "");
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
  if (!existsSync(path)) return out;
  for (const l of readFileSync(path, "utf8").split("\n")) {
    try {
      const r = JSON.parse(l) as { step?: number; val_loss?: number };
      if (typeof r.step === "number" && typeof r.val_loss === "number") out.set(r.step, r.val_loss);
    } catch {
      // blank or torn line
    }
  }
  return out;
}
