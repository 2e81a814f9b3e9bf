/**
 * Checkpoints: a folder written atomically (temporary folder, then rename) holding
 *   model.safetensors         the network, with the reference's state-dict names (loads into its PyTorch model)
 *   text_encoder.safetensors  the learned text encoder, if any
 *   ema.safetensors           EMA weights (network + text encoder), if EMA is on
 *   optimizer.safetensors     Adam moments (exp_avg.<name>, exp_avg_sq.<name>)
 *   state.json                step, RNG and data-order state, tokenizer words, checksums (its own included)
 *   ir.json                   the compiled spec, to rebuild the model
 * Reading verifies every file's checksum, state.json's own (`checksum`: the sha-256 of the file as
 * written without that field), and validates state.json against a JSON schema (ajv) plus what a
 * schema cannot say (no all-zero generator state) before anything in it is used, so a truncated,
 * corrupt or hand-edited checkpoint is refused with what is wrong. Checkpoints written before
 * state.json had its own checksum are accepted after the same validation. No file is read before
 * it is known to be a regular file (not a device, FIFO or symbolic link out of the run folder) of
 * a sane size: a safetensors file's size must be what its header describes, and fit in the memory
 * the process may use (runtime/io/read-file.ts, runtime/util/memory-limit.ts).
 */
import { createHash } from "node:crypto";
import AjvModule from "ajv";
import { existsSync, lstatSync, readdirSync, rmSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { checkSafetensorsSize, readSafetensors, type SafeTensor, writeSafetensors } from "../io/safetensors.ts";
import { writeDirAtomic, writeFileAtomic } from "../io/atomic.ts";
import { InputFileError, readRegularFile } from "../io/read-file.ts";
import { memoryBudget } from "../util/memory-limit.ts";
import type { BatchSamplerState } from "../data/dataset.ts";

export class CheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CheckpointError";
  }
}

export interface CheckpointState {
  format: "sdc-checkpoint";
  version: 1;
  spec: string;
  irHash: string;
  step: number;
  seed: number;
  rng: number[];
  sampler: BatchSamplerState | null;
  words: string[];
  optimizerSteps: number;
  emaUpdates: number;
  lastLoss: number | null;
  elapsedSeconds: number;
  /** sha-256 of each file in the folder */
  files: Record<string, string>;
  /** sha-256 of this state.json as written without this field (absent in older checkpoints) */
  checksum?: string;
}

/** The files a checkpoint may list: nothing else is ever read (no `../` names). */
const CHECKPOINT_FILES = ["model.safetensors", "text_encoder.safetensors", "ema.safetensors", "optimizer.safetensors", "ir.json"];
const SHA = { type: "string", pattern: "^[0-9a-f]{64}$" };
const COUNT = { type: "integer", minimum: 0, maximum: Number.MAX_SAFE_INTEGER };
/** An Rng state: four 32-bit words, a flag, the cached normal deviate. */
const RNG = { type: "array", minItems: 5, maxItems: 6, items: [{ type: "integer", minimum: 0, maximum: 0xffffffff }, { type: "integer", minimum: 0, maximum: 0xffffffff }, { type: "integer", minimum: 0, maximum: 0xffffffff }, { type: "integer", minimum: 0, maximum: 0xffffffff }, { enum: [0, 1] }, { type: "number" }], additionalItems: false };

/** JSON schema of state.json (draft-07, as ajv checks it). */
export const CHECKPOINT_STATE_SCHEMA = {
  type: "object",
  // nothing unknown: a damaged "checksum" key must not turn a checkpoint into an old one without it
  additionalProperties: false,
  required: ["format", "version", "spec", "irHash", "step", "seed", "rng", "sampler", "words", "optimizerSteps", "emaUpdates", "lastLoss", "elapsedSeconds", "files"],
  properties: {
    format: { const: "sdc-checkpoint" },
    version: { const: 1 },
    spec: { type: "string", maxLength: 1000 },
    irHash: SHA,
    step: COUNT,
    seed: COUNT,
    rng: RNG,
    sampler: {
      oneOf: [
        { type: "null" },
        {
          type: "object",
          required: ["version", "dataset", "datasetSize", "batchSize", "epoch", "cursor", "epochRng", "itemRng"],
          additionalProperties: false,
          properties: { version: { const: 1 }, dataset: { type: "string" }, datasetSize: COUNT, batchSize: { type: "integer", minimum: 1, maximum: 1 << 20 }, epoch: COUNT, cursor: COUNT, epochRng: RNG, itemRng: RNG },
        },
      ],
    },
    words: { type: "array", maxItems: 1 << 20, items: { type: "string", maxLength: 1000 } },
    optimizerSteps: COUNT,
    emaUpdates: COUNT,
    lastLoss: { type: ["number", "null"] },
    elapsedSeconds: { type: "number", minimum: 0 },
    files: { type: "object", required: ["model.safetensors", "optimizer.safetensors", "ir.json"], propertyNames: { enum: CHECKPOINT_FILES }, additionalProperties: SHA },
    checksum: SHA,
  },
} as const;

const Ajv = (AjvModule as unknown as { default?: typeof AjvModule }).default ?? AjvModule;
let validateState: ReturnType<InstanceType<typeof Ajv>["compile"]> | undefined;

/** What is wrong with a parsed state.json (empty: nothing). Pure. */
export function checkpointStateProblems(state: unknown): string[] {
  validateState ??= new Ajv({ allErrors: true, strict: false }).compile(CHECKPOINT_STATE_SCHEMA);
  if (!validateState(state)) return (validateState.errors ?? []).slice(0, 5).map((e) => `${e.instancePath || "/"} ${e.message ?? "is invalid"}${e.params && "allowedValues" in e.params ? ` (${(e.params.allowedValues as unknown[]).join(", ")})` : ""}`);
  const st = state as CheckpointState;
  const problems: string[] = [];
  // an all-zero xorshift state only ever gives zeros: the normal sampler would never return
  const zero = (r: readonly number[]) => r.slice(0, 4).every((v) => v === 0);
  if (zero(st.rng)) problems.push("/rng is all zero (not a generator state)");
  if (st.sampler && zero(st.sampler.epochRng)) problems.push("/sampler/epochRng is all zero (not a generator state)");
  if (st.sampler && zero(st.sampler.itemRng)) problems.push("/sampler/itemRng is all zero (not a generator state)");
  if (st.sampler && st.sampler.cursor > st.sampler.datasetSize) problems.push(`/sampler/cursor ${st.sampler.cursor} is past the dataset's ${st.sampler.datasetSize} items`);
  if (st.emaUpdates > st.optimizerSteps) problems.push(`/emaUpdates ${st.emaUpdates} is more than the ${st.optimizerSteps} optimizer steps`);
  return problems;
}

/** state.json's text, and its own checksum: the sha-256 of the text without `checksum`. */
function stateText(state: CheckpointState | Omit<CheckpointState, "checksum">): string {
  return JSON.stringify(state, null, 2) + "\n";
}

export type HostTensors = Map<string, { shape: number[]; data: Float32Array }>;

export interface CheckpointContents {
  network: HostTensors;
  text: HostTensors;
  ema: HostTensors | null;
  optimizer: HostTensors;
  state: Omit<CheckpointState, "files">;
  irText: string;
}

const sha = (b: Uint8Array | string) => createHash("sha256").update(b).digest("hex");

/** Write a checkpoint folder atomically and point `<parent>/latest` at it. */
export function saveCheckpoint(dir: string, c: CheckpointContents): void {
  const meta = { format: "sdc", spec: c.state.spec, irHash: c.state.irHash, step: String(c.state.step) };
  const files: Record<string, Uint8Array | string> = {
    "model.safetensors": writeSafetensors(c.network, meta),
    "optimizer.safetensors": writeSafetensors(c.optimizer, { ...meta, optimizerSteps: String(c.state.optimizerSteps) }),
    "ir.json": c.irText,
  };
  if (c.text.size) files["text_encoder.safetensors"] = writeSafetensors(c.text, meta);
  if (c.ema) files["ema.safetensors"] = writeSafetensors(c.ema, meta);
  const sums = Object.fromEntries(Object.entries(files).map(([k, v]) => [k, sha(v)]));
  const state: CheckpointState = { ...c.state, files: sums };
  files["state.json"] = stateText({ ...state, checksum: sha(stateText(state)) });
  writeDirAtomic(dir, files);
}

export function writeLatest(checkpointsDir: string, name: string): void {
  writeFileAtomic(join(checkpointsDir, "latest"), name + "\n");
}

/** The largest state.json, ir.json and `latest` read (a checkpoint's own are KBs). */
const MAX_STATE = 64 << 20;
const MAX_LATEST = 4096;

/** A file of a checkpoint or run folder read as a regular file inside `root` (read-file.ts); its problems are CheckpointErrors. */
function readInside(path: string, root: string, maxBytes: number, o: { limitWhy?: string; safetensors?: boolean } = {}): Buffer {
  try {
    return readRegularFile(path, { maxBytes, root, limitWhy: o.limitWhy, check: o.safetensors ? (read, size) => checkSafetensorsSize(read, size, path) : undefined });
  } catch (e) {
    if (e instanceof InputFileError) throw new CheckpointError(`checkpoint file ${e.message}`);
    throw e;
  }
}

/** The run folder of a checkpoint (RUN/checkpoints/step-N -> RUN), else the checkpoint folder: symbolic links must stay inside it. */
function trustRoot(checkpointDir: string): string {
  const parent = dirname(checkpointDir);
  return basename(parent) === "checkpoints" ? dirname(parent) : checkpointDir;
}

/** The checkpoint a `latest` (or `best`) file names: one folder name, nothing else. */
function readPointer(file: string, root: string): string {
  const name = readInside(file, root, MAX_LATEST).toString("utf8").trim();
  if (!/^[A-Za-z0-9._-]{1,200}$/.test(name) || name === "." || name === "..") throw new CheckpointError(`${file} does not name a checkpoint folder (${JSON.stringify(name.slice(0, 40))})`);
  return name;
}

/** A checkpoint folder, or a run folder / checkpoints folder whose `latest` names one. */
export function resolveCheckpoint(path: string): string {
  if (!existsSync(path)) throw new CheckpointError(`checkpoint not found: ${path}`);
  if (!statSync(path).isDirectory()) throw new CheckpointError(`${path} is not a checkpoint folder`);
  if (existsSync(join(path, "state.json"))) return path;
  for (const base of [path, join(path, "checkpoints")]) {
    const latest = join(base, "latest");
    if (existsSync(latest)) {
      const name = readPointer(latest, base === path ? dirname(path) : path);
      const dir = join(base, name);
      if (!existsSync(join(dir, "state.json"))) throw new CheckpointError(`${latest} names ${name}, which is not a complete checkpoint`);
      return dir;
    }
  }
  throw new CheckpointError(`${path} is not a checkpoint: no state.json (nor a checkpoints/latest pointing to one)`);
}

function isLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

function toHost(tensors: Map<string, SafeTensor>): HostTensors {
  const out: HostTensors = new Map();
  for (const [k, t] of tensors) out.set(k, { shape: t.shape, data: t.data instanceof Float32Array ? t.data : Float32Array.from(t.data as ArrayLike<number>) });
  return out;
}

/** Read and verify a checkpoint folder. */
export function readCheckpoint(dir: string): CheckpointContents {
  const statePath = join(dir, "state.json");
  if (!existsSync(statePath)) throw new CheckpointError(`${dir} is not a checkpoint: state.json is missing`);
  const root = trustRoot(dir);
  let state: CheckpointState;
  const stateBytes = readInside(statePath, root, MAX_STATE, { limitWhy: "not a checkpoint's state" });
  try {
    state = JSON.parse(stateBytes.toString("utf8"));
  } catch {
    throw new CheckpointError(`${statePath} is corrupt (not valid JSON)`);
  }
  if (state === null || typeof state !== "object" || state.format !== "sdc-checkpoint") throw new CheckpointError(`${statePath} is not an sdc checkpoint (format ${JSON.stringify((state as { format?: unknown } | null)?.format)})`);
  // its own checksum first (a flipped digit is corruption, not a schema error), then the schema
  if (state.checksum !== undefined) {
    const { checksum, ...rest } = state;
    if (typeof checksum !== "string" || sha(stateText(rest)) !== checksum) throw new CheckpointError(`checkpoint ${dir} is corrupt: state.json does not match its checksum (truncated or modified)`);
  }
  const problems = checkpointStateProblems(state);
  if (problems.length) throw new CheckpointError(`checkpoint ${dir} is invalid: state.json: ${problems.join("; ")}`);
  // each file once: kind and size checked before it is read, then its checksum
  const budget = memoryBudget();
  const bytes = new Map<string, Uint8Array>();
  for (const name of Object.keys(state.files)) {
    const p = join(dir, name);
    if (!existsSync(p) && !isLink(p)) throw new CheckpointError(`checkpoint ${dir} is incomplete: ${name} is missing`);
    const b = name.endsWith(".safetensors") ? readInside(p, root, budget.bytes, { limitWhy: budget.why, safetensors: true }) : readInside(p, root, MAX_STATE);
    if (sha(b) !== state.files[name]) throw new CheckpointError(`checkpoint ${dir} is corrupt: ${name} does not match its checksum (truncated or modified)`);
    bytes.set(name, b);
  }
  const read = (name: string): Uint8Array => bytes.get(name)!;
  const st = (name: string) => toHost(readSafetensors(read(name), join(dir, name)).tensors);
  const { files: _files, checksum: _checksum, ...rest } = state;
  return {
    network: st("model.safetensors"),
    text: state.files["text_encoder.safetensors"] ? st("text_encoder.safetensors") : new Map(),
    ema: state.files["ema.safetensors"] ? st("ema.safetensors") : null,
    optimizer: st("optimizer.safetensors"),
    state: rest,
    irText: new TextDecoder().decode(read("ir.json")),
  };
}

export interface RetentionOptions {
  /** keep the last N checkpoints; 0 = all */
  keep: number;
  /** also keep the one with the lowest validation loss (written to `best`) */
  keepBest: boolean;
  /** validation loss by step, for the steps that have one */
  valLoss: ReadonlyMap<number, number>;
}

/**
 * Checkpoint retention in a checkpoints folder: keep the last `keep` (by step), the one `latest`
 * names, and with `keepBest` the one with the lowest validation loss (its name goes to `best`);
 * delete the other step-N folders. Returns the names deleted.
 */
export function pruneCheckpoints(dir: string, o: RetentionOptions): string[] {
  if (!existsSync(dir)) return [];
  const all = readdirSync(dir)
    .map((name) => ({ name, m: /^step-(\d+)$/.exec(name) }))
    .filter((e) => e.m && existsSync(join(dir, e.name, "state.json")))
    .map((e) => ({ name: e.name, step: Number(e.m![1]) }))
    .sort((a, b) => a.step - b.step);
  const keep = new Set<string>();
  const latest = join(dir, "latest");
  if (existsSync(latest)) keep.add(readPointer(latest, dirname(dir)));
  if (o.keepBest) {
    let best: { name: string; v: number } | null = null;
    for (const c of all) {
      const v = o.valLoss.get(c.step);
      if (v !== undefined && Number.isFinite(v) && (!best || v < best.v)) best = { name: c.name, v };
    }
    if (best) {
      keep.add(best.name);
      writeFileAtomic(join(dir, "best"), best.name + "\n");
    }
  }
  if (o.keep <= 0) return [];
  for (const c of all.slice(-o.keep)) keep.add(c.name);
  const removed: string[] = [];
  for (const c of all) {
    if (keep.has(c.name)) continue;
    rmSync(join(dir, c.name), { recursive: true, force: true });
    removed.push(c.name);
  }
  return removed;
}
