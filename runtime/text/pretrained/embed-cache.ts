/**
 * Prompt-embedding cache: each distinct prompt is encoded once and kept in memory and on disk,
 * keyed by an encoder fingerprint and the prompt. A changed encoder folder gives a different
 * fingerprint, hence different keys: stale entries are never read (invalidation by key).
 *
 * Layers:
 *   pure:  encoderFingerprint / combineFingerprints / promptKey (hashing),
 *          serializeEmbedding / deserializeEmbedding (safetensors bytes)
 *   fs:    folderFingerprint (reads config/tokenizer files, stats weights), DirEmbedStore
 *   cache: PromptEmbedCache (in-memory map in front of an optional EmbedStore, hit/miss counts)
 */
import * as tf from "@tensorflow/tfjs";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readSafetensors, writeSafetensors } from "../../io/safetensors.ts";
import { TextEncoderError, isObj } from "./common.ts";
import type { HfFolderOptions } from "./hf-folder.ts";
import type { Sd3TextConditioner } from "./sd3-conditioning.ts";

export class EmbedCacheError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "EmbedCacheError";
  }
}

/** One file that identifies an encoder: by content hash (small files) or by size + mtime (weights). */
export interface FingerprintEntry {
  name: string;
  contentSha256?: string;
  size?: number;
  mtimeMs?: number;
}

const sha256 = (data: string | Uint8Array) => createHash("sha256").update(data).digest("hex");

/** Fingerprint of an encoder from its file entries (pure; order-independent). */
export function encoderFingerprint(entries: readonly FingerprintEntry[]): string {
  const canon = [...entries]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((e) => [e.name, e.contentSha256 ?? null, e.size ?? null, e.mtimeMs ?? null]);
  return sha256(JSON.stringify(canon));
}

/** Fingerprint of several encoders plus settings (e.g. sequence lengths), pure. */
export function combineFingerprints(parts: readonly string[], settings: unknown = null): string {
  return sha256(JSON.stringify({ parts, settings }));
}

/** Cache key for a prompt under an encoder fingerprint (pure). */
export function promptKey(fingerprint: string, prompt: string): string {
  return sha256(`${fingerprint}\u0000${prompt}`);
}

/**
 * Fingerprint a local encoder folder (file-system layer): config.json and tokenizer files by
 * content, weight files (*.safetensors) by size and modification time.
 */
export function folderFingerprint(dir: string, options: HfFolderOptions = {}): string {
  if (!existsSync(dir)) throw new EmbedCacheError(`cannot fingerprint text encoder folder '${dir}': it does not exist`);
  const entries: FingerprintEntry[] = [];
  const byContent = (d: string, name: string, tag: string) => {
    const p = join(d, name);
    if (existsSync(p)) entries.push({ name: `${tag}/${name}`, contentSha256: sha256(readFileSync(p)) });
  };
  const byStamp = (name: string) => {
    const p = join(dir, name);
    if (!existsSync(p)) return;
    const st = statSync(p);
    entries.push({ name: `model/${name}`, size: st.size, mtimeMs: st.mtimeMs });
  };
  byContent(dir, options.configFile ?? "config.json", "model");
  if (options.weightsFile) byStamp(options.weightsFile);
  else {
    byStamp("model.safetensors");
    const idx = join(dir, "model.safetensors.index.json");
    if (existsSync(idx)) {
      byContent(dir, "model.safetensors.index.json", "model");
      try {
        const j = JSON.parse(readFileSync(idx, "utf8"));
        if (isObj(j) && isObj(j.weight_map)) for (const shard of new Set(Object.values(j.weight_map).map(String))) byStamp(shard);
      } catch {
        // a broken index is reported by the loader; the content hash above already covers it
      }
    }
  }
  const tdir = options.tokenizerDir ?? dir;
  for (const name of [options.tokenizerFile ?? "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"]) byContent(tdir, name, "tokenizer");
  return encoderFingerprint(entries);
}

/** One prompt's conditioning, as plain arrays (no tensors). */
export interface PromptEmbedding {
  /** [tokens, width] row-major */
  context: Float32Array;
  contextShape: [number, number];
  /** [pooledWidth] */
  pooled: Float32Array;
}

/** Encode an embedding as safetensors bytes, with the fingerprint and prompt in the metadata (pure). */
export function serializeEmbedding(e: PromptEmbedding, fingerprint: string, prompt: string): Uint8Array {
  return writeSafetensors(
    { context: { shape: [...e.contextShape], data: e.context }, pooled: { shape: [e.pooled.length], data: e.pooled } },
    { fingerprint, prompt },
  );
}

/** Decode bytes from serializeEmbedding; null when they belong to another fingerprint/prompt (pure). */
export function deserializeEmbedding(bytes: Uint8Array, what: string, fingerprint: string, prompt: string): PromptEmbedding | null {
  const f = readSafetensors(bytes, what);
  if (f.metadata.fingerprint !== fingerprint || f.metadata.prompt !== prompt) return null;
  const c = f.tensors.get("context");
  const p = f.tensors.get("pooled");
  if (!c || !p || c.shape.length !== 2 || p.shape.length !== 1 || !(c.data instanceof Float32Array) || !(p.data instanceof Float32Array)) {
    throw new EmbedCacheError(`${what}: cached embedding lacks float 'context' [tokens, width] or 'pooled' [width]`);
  }
  return { context: c.data, contextShape: [c.shape[0], c.shape[1]], pooled: p.data };
}

/** Where serialized embeddings live between runs. */
export interface EmbedStore {
  read(key: string): Uint8Array | null;
  write(key: string, bytes: Uint8Array): void;
}

/** One safetensors file per key in a folder (file-system layer). Writes are atomic (temp file + rename). */
export class DirEmbedStore implements EmbedStore {
  constructor(readonly dir: string) {}
  private path(key: string): string {
    if (!/^[0-9a-f]{16,}$/.test(key)) throw new EmbedCacheError(`embedding cache key '${key}' is not a hex hash`);
    return join(this.dir, `${key}.safetensors`);
  }
  read(key: string): Uint8Array | null {
    const p = this.path(key);
    return existsSync(p) ? new Uint8Array(readFileSync(p)) : null;
  }
  write(key: string, bytes: Uint8Array): void {
    mkdirSync(this.dir, { recursive: true });
    const p = this.path(key);
    const tmp = `${p}.${process.pid}.tmp`;
    writeFileSync(tmp, bytes);
    renameSync(tmp, p);
  }
}

export interface EmbedCacheStats {
  /** Lookups answered from memory or disk. */
  hits: number;
  memoryHits: number;
  diskHits: number;
  /** Lookups that had to run the encoders. */
  misses: number;
}

export interface PromptEmbedCacheOptions {
  /** Encoder fingerprint (folderFingerprint / combineFingerprints). */
  fingerprint: string;
  /** Encodes prompts that are not cached (called once per batch of distinct misses). */
  compute: (prompts: string[]) => PromptEmbedding[];
  /** The same without synchronous reads (WebGPU has none): used by prefetch. */
  computeAsync?: (prompts: string[]) => Promise<PromptEmbedding[]>;
  /** Disk layer; null/absent: memory only. */
  store?: EmbedStore | null;
}

export class PromptEmbedCache {
  readonly fingerprint: string;
  private readonly memory = new Map<string, PromptEmbedding>();
  private readonly compute: (prompts: string[]) => PromptEmbedding[];
  private readonly computeAsync: ((prompts: string[]) => Promise<PromptEmbedding[]>) | null;
  private readonly store: EmbedStore | null;
  private counts: EmbedCacheStats = { hits: 0, memoryHits: 0, diskHits: 0, misses: 0 };

  constructor(options: PromptEmbedCacheOptions) {
    if (typeof options.fingerprint !== "string" || options.fingerprint.length === 0) throw new EmbedCacheError("PromptEmbedCache: fingerprint must be a non-empty string");
    this.fingerprint = options.fingerprint;
    this.compute = options.compute;
    this.computeAsync = options.computeAsync ?? null;
    this.store = options.store ?? null;
  }

  get stats(): EmbedCacheStats {
    return { ...this.counts };
  }

  /** Embeddings for prompts (duplicates allowed), computing each distinct uncached prompt once. */
  lookup(prompts: readonly string[]): PromptEmbedding[] {
    const out = new Map<string, PromptEmbedding>();
    const missing: string[] = [];
    for (const prompt of new Set(prompts)) {
      const key = promptKey(this.fingerprint, prompt);
      const mem = this.memory.get(key);
      if (mem) {
        out.set(prompt, mem);
        this.counts.hits++;
        this.counts.memoryHits++;
        continue;
      }
      const bytes = this.store?.read(key) ?? null;
      const disk = bytes ? deserializeEmbedding(bytes, `embedding cache entry ${key}`, this.fingerprint, prompt) : null;
      if (disk) {
        this.memory.set(key, disk);
        out.set(prompt, disk);
        this.counts.hits++;
        this.counts.diskHits++;
        continue;
      }
      missing.push(prompt);
    }
    if (missing.length) {
      const computed = this.compute(missing);
      if (computed.length !== missing.length) throw new EmbedCacheError(`PromptEmbedCache: compute returned ${computed.length} embeddings for ${missing.length} prompts`);
      missing.forEach((prompt, i) => {
        const key = promptKey(this.fingerprint, prompt);
        this.memory.set(key, computed[i]);
        this.store?.write(key, serializeEmbedding(computed[i], this.fingerprint, prompt));
        out.set(prompt, computed[i]);
        this.counts.misses++;
      });
    }
    return prompts.map((p) => out.get(p) as PromptEmbedding);
  }

  /**
   * Compute (asynchronously) the prompts that neither memory nor disk holds, so that the next
   * lookup of them is a memory hit: on backends without synchronous reads (WebGPU) call this first.
   */
  async prefetch(prompts: readonly string[]): Promise<void> {
    // prompts another prefetch is computing right now (training overlaps the next batch's text
    // with the current step) are awaited, not computed twice
    const waits: Promise<void>[] = [];
    const missing: string[] = [];
    for (const p of new Set(prompts)) {
      const key = promptKey(this.fingerprint, p);
      const busy = this.inflight.get(key);
      if (busy) waits.push(busy);
      else if (!this.memory.has(key) && !(this.store?.read(key) ?? null)) missing.push(p);
    }
    if (missing.length) {
      const keys = missing.map((p) => promptKey(this.fingerprint, p));
      const job = (async () => {
        const computed = this.computeAsync ? await this.computeAsync(missing) : this.compute(missing);
        if (computed.length !== missing.length) throw new EmbedCacheError(`PromptEmbedCache: compute returned ${computed.length} embeddings for ${missing.length} prompts`);
        missing.forEach((prompt, i) => {
          this.memory.set(keys[i], computed[i]);
          this.store?.write(keys[i], serializeEmbedding(computed[i], this.fingerprint, prompt));
          this.counts.misses++;
        });
      })();
      for (const k of keys) this.inflight.set(k, job);
      try {
        await job;
      } finally {
        for (const k of keys) this.inflight.delete(k);
      }
    }
    await Promise.all(waits);
  }
  private readonly inflight = new Map<string, Promise<void>>();

  /** Lookup, stacked into tensors {context [B, T, W], pooled [B, P]} owned by the caller. */
  tensors(prompts: readonly string[]): { context: tf.Tensor3D; pooled: tf.Tensor2D } {
    return embeddingsToTensors(this.lookup(prompts));
  }
}

/** Stack per-prompt embeddings into batch tensors (caller owns them). */
export function embeddingsToTensors(list: readonly PromptEmbedding[]): { context: tf.Tensor3D; pooled: tf.Tensor2D } {
  if (list.length === 0) throw new EmbedCacheError("embeddingsToTensors: empty list");
  const [T, W] = list[0].contextShape;
  const P = list[0].pooled.length;
  const ctx = new Float32Array(list.length * T * W);
  const pooled = new Float32Array(list.length * P);
  list.forEach((e, b) => {
    if (e.contextShape[0] !== T || e.contextShape[1] !== W || e.pooled.length !== P) throw new EmbedCacheError(`embeddingsToTensors: embedding ${b} has a different shape from embedding 0`);
    ctx.set(e.context, b * T * W);
    pooled.set(e.pooled, b * P);
  });
  return { context: tf.tensor3d(ctx, [list.length, T, W]), pooled: tf.tensor2d(pooled, [list.length, P]) };
}

/** conditionerCompute with asynchronous reads (for backends without synchronous ones: WebGPU). */
export function conditionerComputeAsync(conditioner: Sd3TextConditioner, batchSize = 16): (prompts: string[]) => Promise<PromptEmbedding[]> {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new TextEncoderError(`conditionerComputeAsync: batchSize must be a positive integer, got ${batchSize}`);
  return async (prompts) => {
    const out: PromptEmbedding[] = [];
    for (let s = 0; s < prompts.length; s += batchSize) {
      const { context, pooled } = conditioner.encode(prompts.slice(s, s + batchSize));
      try {
        const [B, T, W] = context.shape;
        const c = (await context.data()) as Float32Array;
        const p = (await pooled.data()) as Float32Array;
        const P = pooled.shape[1];
        for (let b = 0; b < B; b++) out.push({ context: c.slice(b * T * W, (b + 1) * T * W), contextShape: [T, W], pooled: p.slice(b * P, (b + 1) * P) });
      } finally {
        context.dispose();
        pooled.dispose();
      }
    }
    return out;
  };
}

/** A `compute` function for PromptEmbedCache that runs an Sd3TextConditioner (no tensors left behind). */
export function conditionerCompute(conditioner: Sd3TextConditioner, batchSize = 16): (prompts: string[]) => PromptEmbedding[] {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new TextEncoderError(`conditionerCompute: batchSize must be a positive integer, got ${batchSize}`);
  return (prompts) => {
    const out: PromptEmbedding[] = [];
    for (let s = 0; s < prompts.length; s += batchSize) {
      const chunk = prompts.slice(s, s + batchSize);
      const { context, pooled } = conditioner.encode(chunk);
      try {
        const [B, T, W] = context.shape;
        const c = context.dataSync() as Float32Array;
        const p = pooled.dataSync() as Float32Array;
        const P = pooled.shape[1];
        for (let b = 0; b < B; b++) {
          out.push({ context: c.slice(b * T * W, (b + 1) * T * W), contextShape: [T, W], pooled: p.slice(b * P, (b + 1) * P) });
        }
      } finally {
        context.dispose();
        pooled.dispose();
      }
    }
    return out;
  };
}

/** Fingerprint of an SD3 conditioner: its encoder folders and its sequence settings. */
export function sd3ConditionerFingerprint(folderFingerprints: { clipL: string; clipG: string; t5?: string | null }, conditioner: Sd3TextConditioner): string {
  return combineFingerprints([folderFingerprints.clipL, folderFingerprints.clipG, folderFingerprints.t5 ?? "no-t5"], {
    clipLength: conditioner.clipLength,
    t5Length: conditioner.t5Length,
    t5AttentionMask: conditioner.t5AttentionMask,
    contextWidth: conditioner.contextWidth,
    pooledWidth: conditioner.pooledWidth,
  });
}
