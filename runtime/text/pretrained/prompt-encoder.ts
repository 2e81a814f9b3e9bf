/**
 * The trainer's PromptEncoder for `sd3_pretrained` specs: frozen CLIP-L + CLIP-G + T5 loaded from
 * local Hugging Face folders, SD3 conditioning (Sd3TextConditioner), and a prompt-embedding cache
 * (memory + disk) in front of them.
 *
 *   folders   the IR's paths (relative to the current directory), overridden by the environment
 *             (SDC_CLIP_L, SDC_CLIP_G, SDC_T5), overridden by `--text-encoders clip_l=DIR,...`
 *   checks    at construction, before any weights are read: every folder exists and holds
 *             config.json, weights and a tokenizer (one error naming each missing folder/file),
 *             and the configs give the IR's context tokens / width and pooled width
 *   loading   lazy: the weights are read on the first prompt that is not in the cache, so a run
 *             whose prompts are all cached on disk never loads the encoders
 *   cache     PromptEmbedCache over DirEmbedStore in <cache>/text (default ~/.cache/sdc/text; see
 *             defaultTextCacheDir), keyed by the folders' fingerprints (config/tokenizer content,
 *             weight size + mtime) and the sequence settings: changing a folder invalidates it
 *   frozen    `encode` returns plain tensors built from cached arrays: no variables, nothing for
 *             the optimizer, no gradient into the encoders
 */
import * as tf from "@tensorflow/tfjs";
import { existsSync, readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import type { IR } from "../../../ir/ir.ts";
import type { PromptEncoder } from "../../bundle.ts";
import { parseClipTextConfig } from "./clip-text.ts";
import { TextEncoderError } from "./common.ts";
import {
  DirEmbedStore,
  type EmbedCacheStats,
  type EmbedStore,
  PromptEmbedCache,
  type PromptEmbedding,
  combineFingerprints,
  conditionerCompute,
  conditionerComputeAsync,
  folderFingerprint,
} from "./embed-cache.ts";
import { FOLDER_CONTENTS, HfFolderError, type LoadedTextEncoder, loadHfTextEncoder, textEncoderKind } from "./hf-folder.ts";
import { Sd3TextConditioner } from "./sd3-conditioning.ts";
import { parseT5Config } from "./t5-encoder.ts";

export type Sd3PretrainedTextIR = Extract<IR["text"], { kind: "sd3_pretrained" }>;

export type EncoderRole = "clip_l" | "clip_g" | "t5";
const ROLE_KEY = { clip_l: "clipL", clip_g: "clipG", t5: "t5" } as const;
const ENV_VAR = { clip_l: "SDC_CLIP_L", clip_g: "SDC_CLIP_G", t5: "SDC_T5" } as const;
const HF_REPO = {
  clip_l: "openai/clip-vit-large-patch14 (or SD3's text_encoder/)",
  clip_g: "laion/CLIP-ViT-bigG-14-laion2B-39B-b160k (or SD3's text_encoder_2/)",
  t5: "google/t5-v1_1-base / -large (or SD3's text_encoder_3/, T5-v1.1-XXL)",
} as const;

/** Folder overrides; `t5: null` means no T5 (its block of the context is zeros, as diffusers does without text_encoder_3). */
export interface TextEncoderFolders {
  clipL?: string;
  clipG?: string;
  t5?: string | null;
  /** Where each override came from, for messages (e.g. "--text-encoders", "SDC_CLIP_L"). */
  origins?: Partial<Record<EncoderRole, string>>;
}

export interface PretrainedTextOptions extends TextEncoderFolders {
  /** Embedding cache folder; null: memory only; undefined: defaultTextCacheDir(process.env). */
  cacheDir?: string | null;
  /** Prompts per encoder batch when filling the cache (default 16). */
  batchSize?: number;
  /** Progress lines (loading, cache problems). */
  log?: (s: string) => void;
}

export interface PretrainedTextStats extends EmbedCacheStats {
  /** Whether the encoder weights were loaded (false when every prompt came from the cache). */
  loaded: boolean;
  loadSeconds: number;
  /** Time spent running the encoders on cache misses. */
  encodeSeconds: number;
}

// ---------------------------------------------------------------------------------------------
// options (pure)

/** Parse `--text-encoders clip_l=DIR,clip_g=DIR,t5=DIR[,cache=DIR|off]` (t5=none: no T5). Throws TextEncoderError with the fix. */
export function parseTextEncodersArg(value: string): TextEncoderFolders & { cacheDir?: string | null } {
  const out: TextEncoderFolders & { cacheDir?: string | null } = { origins: {} };
  const usage = "expected --text-encoders clip_l=DIR,clip_g=DIR,t5=DIR (any subset; t5=none drops T5; cache=DIR or cache=off sets the embedding cache)";
  if (value.trim() === "") throw new TextEncoderError(`--text-encoders is empty; ${usage}`);
  for (const part of value.split(",")) {
    const eq = part.indexOf("=");
    const key = (eq < 0 ? part : part.slice(0, eq)).trim().toLowerCase().replace("-", "_");
    const v = eq < 0 ? "" : part.slice(eq + 1).trim();
    if (eq < 0 || v === "") throw new TextEncoderError(`--text-encoders: '${part}' is not KEY=VALUE; ${usage}`);
    if (key === "cache") {
      out.cacheDir = v === "off" ? null : v;
    } else if (key === "clip_l" || key === "clip_g" || key === "t5") {
      if (out[ROLE_KEY[key]] !== undefined) throw new TextEncoderError(`--text-encoders: ${key} is given twice`);
      if (key === "t5") out.t5 = v === "none" ? null : v;
      else out[ROLE_KEY[key]] = v;
      out.origins![key] = "--text-encoders";
    } else throw new TextEncoderError(`--text-encoders: unknown key '${key}'; ${usage}`);
  }
  return out;
}

/** Overrides from the environment (SDC_CLIP_L, SDC_CLIP_G, SDC_T5; SDC_T5=none drops T5) and then the --text-encoders value, which wins. */
export function textEncoderOverrides(arg: string | undefined, env: Record<string, string | undefined>): TextEncoderFolders & { cacheDir?: string | null } {
  const out: TextEncoderFolders & { cacheDir?: string | null } = { origins: {} };
  for (const role of ["clip_l", "clip_g", "t5"] as const) {
    const v = env[ENV_VAR[role]];
    if (v === undefined || v === "") continue;
    if (role === "t5") out.t5 = v === "none" ? null : v;
    else out[ROLE_KEY[role]] = v;
    out.origins![role] = ENV_VAR[role];
  }
  if (arg === undefined) return out;
  const cli = parseTextEncodersArg(arg);
  return { ...out, ...Object.fromEntries(Object.entries(cli).filter(([k, v]) => k !== "origins" && v !== undefined)), origins: { ...out.origins, ...cli.origins } };
}

/**
 * Default embedding cache folder: $SDC_CACHE_DIR/text, else $XDG_CACHE_HOME/sdc/text, else
 * ~/.cache/sdc/text. User-wide on purpose: keys are content fingerprints, so runs, output folders
 * and specs that use the same encoders share entries safely.
 */
export function defaultTextCacheDir(env: Record<string, string | undefined> = process.env, home: string = homedir()): string {
  if (env.SDC_CACHE_DIR) return join(env.SDC_CACHE_DIR, "text");
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, "sdc", "text");
  return join(home, ".cache", "sdc", "text");
}

interface Folder {
  role: EncoderRole;
  dir: string;
  origin: string;
  /** Where the tokenizer files are: the folder itself, or diffusers' sibling tokenizer folder. */
  tokenizerDir: string;
}

const hasTokenizer = (d: string, role: EncoderRole) =>
  existsSync(join(d, "tokenizer.json")) || (role !== "t5" && existsSync(join(d, "vocab.json")) && existsSync(join(d, "merges.txt")));

/**
 * The tokenizer folder for a model folder: the folder itself when it has tokenizer files, else for a
 * diffusers pipeline layout (text_encoder/, text_encoder_2/, text_encoder_3/) the sibling
 * tokenizer/, tokenizer_2/, tokenizer_3/ when that has them.
 */
export function tokenizerDirFor(dir: string, role: EncoderRole): string {
  if (hasTokenizer(dir, role)) return dir;
  const m = /^text_encoder(_\d+)?$/.exec(basename(resolve(dir)));
  if (m) {
    const sibling = join(dirname(resolve(dir)), `tokenizer${m[1] ?? ""}`);
    if (existsSync(sibling) && hasTokenizer(sibling, role)) return sibling;
  }
  return dir;
}

/** The three folders after overrides; t5 null when there is none. */
export function resolveFolders(text: Sd3PretrainedTextIR, o: TextEncoderFolders = {}): { clipL: Folder | null; clipG: Folder | null; t5: Folder | null } {
  const pick = (role: EncoderRole, override: string | null | undefined, fromSpec: string | null): Folder | null => {
    if (override === null) return null;
    if (override !== undefined) return { role, dir: override, origin: o.origins?.[role] ?? "the caller", tokenizerDir: tokenizerDirFor(override, role) };
    return fromSpec === null ? null : { role, dir: fromSpec, origin: "the spec", tokenizerDir: tokenizerDirFor(fromSpec, role) };
  };
  return { clipL: pick("clip_l", o.clipL, text.clipL), clipG: pick("clip_g", o.clipG, text.clipG), t5: pick("t5", o.t5, text.t5) };
}

// ---------------------------------------------------------------------------------------------
// folder checks (file system, no weights read)

const HOW_TO_GIVE = "Give the folders with --text-encoders clip_l=DIR,clip_g=DIR,t5=DIR (or SDC_CLIP_L, SDC_CLIP_G, SDC_T5), or edit the paths in the spec";

/** Every problem with the folders' presence and contents, one line each ([] when fine). */
export function folderProblems(folders: (Folder | null)[], required: EncoderRole[]): string[] {
  const problems: string[] = [];
  for (const role of required) {
    if (!folders.some((f) => f?.role === role)) problems.push(`${role}: no folder given (the spec has none and nothing overrides it)`);
  }
  for (const f of folders) {
    if (!f) continue;
    const where = `${f.role} folder '${f.dir}' (from ${f.origin})`;
    if (!existsSync(f.dir)) {
      problems.push(`${where} does not exist`);
      continue;
    }
    if (!statSync(f.dir).isDirectory()) {
      problems.push(`${where} is not a folder`);
      continue;
    }
    const has = (name: string) => existsSync(join(f.dir, name));
    const missing: string[] = [];
    if (!has("config.json")) missing.push("config.json");
    if (!has("model.safetensors") && !has("model.safetensors.index.json")) missing.push("model.safetensors");
    if (!hasTokenizer(f.tokenizerDir, f.role)) missing.push(f.role === "t5" ? "tokenizer.json" : "tokenizer.json (or vocab.json + merges.txt)");
    if (missing.length) problems.push(`${where} is missing ${missing.join(", ")}`);
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// the encoder

interface Predicted {
  clipLength: number;
  clipL: { width: number; pooled: number; positions: number };
  clipG: { width: number; pooled: number; positions: number };
  t5Width: number | null;
}

/** Tensors reachable from a loaded model (its weights), so they survive an enclosing tf.tidy. */
function keepReachable(root: unknown): void {
  const seen = new Set<unknown>();
  const walk = (v: unknown) => {
    if (v === null || typeof v !== "object" || seen.has(v) || ArrayBuffer.isView(v)) return;
    seen.add(v);
    if (v instanceof tf.Tensor) {
      tf.keep(v);
      return;
    }
    if (v instanceof Map) {
      for (const x of v.values()) walk(x);
      return;
    }
    for (const x of Object.values(v as Record<string, unknown>)) walk(x);
  };
  walk(root);
}

/** A disk store that warns once and goes memory-only when it cannot write (read-only home, full disk). */
class TolerantStore implements EmbedStore {
  private failed = false;
  constructor(
    private readonly inner: DirEmbedStore,
    private readonly log: (s: string) => void,
  ) {}
  read(key: string): Uint8Array | null {
    if (this.failed) return null;
    try {
      return this.inner.read(key);
    } catch {
      return null;
    }
  }
  write(key: string, bytes: Uint8Array): void {
    if (this.failed) return;
    try {
      this.inner.write(key, bytes);
    } catch (e) {
      this.failed = true;
      this.log(`warning: cannot write the text embedding cache in ${this.inner.dir} (${(e as Error).message}); keeping embeddings in memory only`);
    }
  }
}

export class PretrainedPromptEncoder implements PromptEncoder {
  readonly words: readonly string[] = [];
  readonly folders: { clipL: Folder; clipG: Folder; t5: Folder | null };
  /** Cache folder, or null when memory only. */
  readonly cacheDir: string | null;
  readonly fingerprint: string;
  readonly clipLength: number;
  private readonly cache: PromptEmbedCache;
  private loaded: { encoders: LoadedTextEncoder[]; conditioner: Sd3TextConditioner } | null = null;
  private loadSeconds = 0;
  private encodeSeconds = 0;
  private readonly log: (s: string) => void;

  /**
   * Check the folders and their configs against the IR (no weights read yet).
   * Throws HfFolderError when folders or files are missing, TextEncoderError when the shapes do not fit the spec.
   */
  constructor(
    readonly specName: string,
    readonly text: Sd3PretrainedTextIR,
    options: PretrainedTextOptions = {},
  ) {
    this.log = options.log ?? (() => {});
    const f = resolveFolders(text, options);
    const problems = folderProblems([f.clipL, f.clipG, f.t5], ["clip_l", "clip_g"]);
    if (problems.length || !f.clipL || !f.clipG) {
      throw new HfFolderError(
        `cannot load the pretrained text encoders of ${specName}:\n` +
          problems.map((p) => `  ${p}\n`).join("") +
          `Each folder must contain ${FOLDER_CONTENTS} (a diffusers text_encoder*/ folder may take them from its sibling tokenizer*/); ` +
          `clip_l is ${HF_REPO.clip_l}, clip_g ${HF_REPO.clip_g}, t5 ${HF_REPO.t5}. ${HOW_TO_GIVE}. See docs/text-encoders.md.`,
      );
    }
    this.folders = { clipL: f.clipL, clipG: f.clipG, t5: f.t5 };
    this.clipLength = text.tokens - text.t5Tokens;
    const predicted = this.predict();
    this.checkShapes(predicted, "config.json");

    const batchSize = options.batchSize ?? 16;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new TextEncoderError(`PretrainedPromptEncoder: batchSize must be a positive integer, got ${batchSize}`);
    this.fingerprint = combineFingerprints(
      [f.clipL, f.clipG, f.t5].map((x) => (x ? folderFingerprint(x.dir, { tokenizerDir: x.tokenizerDir }) : "no-t5")),
      // the same settings sd3ConditionerFingerprint records, so both give the same keys
      { clipLength: this.clipLength, t5Length: text.t5Tokens, t5AttentionMask: false, contextWidth: text.width, pooledWidth: text.pooled },
    );
    this.cacheDir = options.cacheDir === undefined ? defaultTextCacheDir() : options.cacheDir;
    const store = this.cacheDir === null ? null : new TolerantStore(new DirEmbedStore(this.cacheDir), this.log);
    this.cache = new PromptEmbedCache({ fingerprint: this.fingerprint, store, compute: (prompts) => this.compute(prompts, batchSize), computeAsync: (prompts) => this.computeAsync(prompts, batchSize) });
  }

  private what(f: Folder): string {
    return `${f.role} '${f.dir}'`;
  }

  /** Shapes from the configs alone. */
  private predict(): Predicted {
    const read = (f: Folder) => {
      const files = readConfigOnly(f.dir);
      const kind = textEncoderKind(files, this.what(f));
      const want = f.role === "t5" ? "t5" : "clip";
      if (kind !== want) throw new TextEncoderError(`${this.what(f)}: config.json describes a ${kind === "clip" ? "CLIP text model" : "T5 model"}, but the ${f.role} folder must hold a ${want === "clip" ? "CLIP text model (model_type clip_text_model or clip)" : "T5 encoder (model_type t5)"}`);
      return files;
    };
    const clip = (f: Folder) => {
      const c = parseClipTextConfig(read(f), this.what(f));
      return { width: c.hiddenSize, pooled: c.projectionDim ?? c.hiddenSize, positions: c.maxPositions };
    };
    const clipL = clip(this.folders.clipL);
    const clipG = clip(this.folders.clipG);
    const t5Width = this.folders.t5 ? parseT5Config(read(this.folders.t5), this.what(this.folders.t5)).dModel : null;
    for (const [f, c] of [[this.folders.clipL, clipL], [this.folders.clipG, clipG]] as const) {
      if (c.positions < this.clipLength) {
        throw new TextEncoderError(`${this.what(f)} has ${c.positions} position embeddings (max_position_embeddings), but ${this.specName} uses ${this.clipLength} CLIP tokens (SD3's 77); use a CLIP text model with 77 positions`);
      }
    }
    return { clipLength: this.clipLength, clipL, clipG, t5Width };
  }

  /** Throw a TextEncoderError when the encoders' shapes differ from the IR's, saying which folder gives what. */
  private checkShapes(p: Predicted, source: string): void {
    const t = this.text;
    const clipWidth = p.clipL.width + p.clipG.width;
    const t5Width = p.t5Width ?? t.width;
    const width = Math.max(clipWidth, t5Width);
    const pooled = p.clipL.pooled + p.clipG.pooled;
    const tokens = p.clipLength + t.t5Tokens;
    if (width === t.width && pooled === t.pooled && tokens === t.tokens) return;
    const { clipL, clipG, t5 } = this.folders;
    const t5Part = t5 ? `t5 '${t5.dir}' width ${p.t5Width}` : `no t5 (zeros of width ${t.width})`;
    throw new TextEncoderError(
      `the text encoders do not fit ${this.specName} (from their ${source}): ` +
        `clip_l '${clipL.dir}' gives width ${p.clipL.width} and pooled ${p.clipL.pooled}, clip_g '${clipG.dir}' width ${p.clipG.width} and pooled ${p.clipG.pooled}, ${t5Part}; ` +
        `so context is [${tokens} tokens, width max(${p.clipL.width} + ${p.clipG.width}, ${t5Width}) = ${width}] and pooled ${p.clipL.pooled} + ${p.clipG.pooled} = ${pooled}, ` +
        `but the spec says [${t.tokens} tokens, width ${t.width}] and pooled ${t.pooled}. ` +
        `Set \`width: ${width}  pooled: ${pooled}\` in the spec's text section (and the network's context_dim/pooled_dim) and recompile, or use other folders.`,
    );
  }

  /** Load the three encoders (first cache miss). Safe inside tf.tidy: the weights are kept. */
  private load(): Sd3TextConditioner {
    if (this.loaded) return this.loaded.conditioner;
    const t0 = performance.now();
    const encoders: LoadedTextEncoder[] = [];
    try {
      for (const f of [this.folders.clipL, this.folders.clipG, this.folders.t5]) {
        if (!f) continue;
        this.log(`loading text encoder ${f.role} from ${f.dir}`);
        const e = loadHfTextEncoder(f.dir, { tokenizerDir: f.tokenizerDir });
        keepReachable(e.model);
        encoders.push(e);
      }
      const [l, g, t5] = encoders;
      if (l.kind !== "clip" || g.kind !== "clip" || (t5 && t5.kind !== "t5")) throw new TextEncoderError("PretrainedPromptEncoder: folder kinds changed while loading");
      const cond = new Sd3TextConditioner(
        {
          clipL: { model: l.model, tokenizer: l.tokenizer, maxLength: l.maxLength },
          clipG: { model: g.model, tokenizer: g.tokenizer, maxLength: g.maxLength },
          t5: t5 && t5.kind === "t5" ? { model: t5.model, tokenizer: t5.tokenizer } : null,
        },
        { clipLength: this.clipLength, t5Length: this.text.t5Tokens, t5Width: this.text.width },
      );
      this.checkShapes(
        {
          clipLength: cond.clipLength,
          clipL: { width: l.model.width, pooled: l.model.pooledWidth, positions: l.model.config.maxPositions },
          clipG: { width: g.model.width, pooled: g.model.pooledWidth, positions: g.model.config.maxPositions },
          t5Width: t5 ? t5.model.width : null,
        },
        "weights",
      );
      this.loaded = { encoders, conditioner: cond };
    } catch (e) {
      for (const x of encoders) x.model.dispose();
      throw e;
    }
    this.loadSeconds += (performance.now() - t0) / 1000;
    return this.loaded.conditioner;
  }

  private compute(prompts: string[], batchSize: number): PromptEmbedding[] {
    const cond = this.load();
    const t0 = performance.now();
    return this.checked(prompts, conditionerCompute(cond, batchSize)(prompts), t0);
  }

  private async computeAsync(prompts: string[], batchSize: number): Promise<PromptEmbedding[]> {
    const cond = this.load();
    const t0 = performance.now();
    return this.checked(prompts, await conditionerComputeAsync(cond, batchSize)(prompts), t0);
  }

  private checked(prompts: string[], out: PromptEmbedding[], t0: number): PromptEmbedding[] {
    this.encodeSeconds += (performance.now() - t0) / 1000;
    const { tokens, width, pooled } = this.text;
    out.forEach((e, i) => {
      if (e.contextShape[0] !== tokens || e.contextShape[1] !== width || e.pooled.length !== pooled) {
        throw new TextEncoderError(`the text encoders gave context [${e.contextShape}] and pooled [${e.pooled.length}] for prompt ${JSON.stringify(prompts[i])}; ${this.specName} needs [${tokens}, ${width}] and [${pooled}]`);
      }
    });
    return out;
  }

  /** Compute uncached prompts without synchronous reads (call before encode on WebGPU). */
  prepare(prompts: readonly string[]): Promise<void> {
    return this.cache.prefetch(prompts);
  }

  /** (context [B, tokens, width], pooled [B, pooled]) as plain tensors (frozen; owned by the caller). */
  encode(prompts: readonly string[]): [tf.Tensor3D, tf.Tensor2D] {
    const { context, pooled } = this.cache.tensors(prompts);
    return [context, pooled];
  }

  get stats(): PretrainedTextStats {
    return { ...this.cache.stats, loaded: this.loaded !== null, loadSeconds: this.loadSeconds, encodeSeconds: this.encodeSeconds };
  }

  /** One line for the end of training, e.g. "text embeddings: 21 computed, 1,234 from cache (...)". */
  summary(): string {
    const s = this.stats;
    const n = (x: number) => x.toLocaleString("en-US");
    const lookups = s.hits + s.misses;
    const rate = lookups ? ` (hit rate ${((100 * s.hits) / lookups).toFixed(1)}%: ${n(s.memoryHits)} from memory, ${n(s.diskHits)} from disk)` : "";
    const enc = s.loaded ? `; encoders loaded in ${s.loadSeconds.toFixed(2)} s, encoding took ${s.encodeSeconds.toFixed(2)} s` : "; encoders not loaded (every prompt was cached)";
    return `text embeddings: ${n(s.misses)} computed, ${n(s.hits)} from cache${rate}${enc}; cache ${this.cacheDir ?? "in memory only"}`;
  }

  /** One line describing the folders and the cache, for the start of training. */
  describe(): string {
    const f = this.folders;
    const one = (x: Folder) => `${x.role} ${x.dir}${x.origin === "the spec" ? "" : ` (${x.origin})`}`;
    return `text encoders (frozen): ${one(f.clipL)}, ${one(f.clipG)}, ${f.t5 ? one(f.t5) : "no t5 (zeros)"}; context [${this.text.tokens}, ${this.text.width}], pooled ${this.text.pooled}; embedding cache ${this.cacheDir ?? "in memory only"}`;
  }

  /** Free the encoder weights (the cache stays usable: a later miss reloads them). */
  dispose(): void {
    if (!this.loaded) return;
    for (const e of this.loaded.encoders) e.model.dispose();
    this.loaded = null;
  }
}

/** config.json of a folder, without reading its weights (the folder checks ran already). */
function readConfigOnly(dir: string): unknown {
  const p = join(dir, "config.json");
  try {
    return JSON.parse(readFileSync(p, "utf8"));
  } catch (e) {
    throw new HfFolderError(`${p} is not valid JSON (${(e as Error).message})`);
  }
}
