/**
 * Load a pretrained text encoder (CLIP text model or T5 encoder) from a local Hugging Face
 * model folder. Never downloads: everything comes from the folder.
 *
 * A folder must contain
 *   config.json                                  (model_type "clip_text_model", "clip" or "t5"/"umt5")
 *   model.safetensors, or model.safetensors.index.json with its shards
 *   tokenizer.json, or (CLIP only) vocab.json + merges.txt
 * and may contain tokenizer_config.json (pad_token, model_max_length). The tokenizer files may
 * live in a separate folder (`tokenizerDir`, e.g. diffusers' `tokenizer/` next to `text_encoder/`).
 *
 * `readHfTextEncoderFolder` is the only part that touches the file system; `buildHfTextEncoder`
 * is pure (parsed files in, model out).
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { type SafeTensor, readSafetensors } from "../../io/safetensors.ts";
import { ClipTextEncoder } from "./clip-text.ts";
import { isObj } from "./common.ts";
import { T5Encoder } from "./t5-encoder.ts";
import { type Tokenizer, clipTokenizerJsonFromVocabMerges, loadTokenizerJson } from "./tokenizer.ts";

export class HfFolderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "HfFolderError";
  }
}

export const FOLDER_CONTENTS =
  "config.json, model.safetensors (or model.safetensors.index.json with its shards) and tokenizer.json (or, for CLIP, vocab.json + merges.txt)";

export interface HfFolderOptions {
  /** Config file name inside the folder (default config.json). */
  configFile?: string;
  /** Weights file name inside the folder (default model.safetensors, then model.safetensors.index.json). */
  weightsFile?: string;
  /** Tokenizer file name inside the tokenizer folder (default tokenizer.json). */
  tokenizerFile?: string;
  /** Folder holding the tokenizer files (default: the model folder). */
  tokenizerDir?: string;
}

export interface HfTextEncoderFiles {
  dir: string;
  config: unknown;
  tensors: Map<string, SafeTensor>;
  tokenizerJson: unknown;
  /** Parsed tokenizer_config.json, or null when absent. */
  tokenizerConfig: unknown;
}

export type TextEncoderKind = "clip" | "t5";

interface LoadedBase {
  dir: string;
  tokenizer: Tokenizer;
  /** Longest sequence the encoder takes / the tokenizer's model_max_length (CLIP: 77). */
  maxLength: number;
}
export interface LoadedClip extends LoadedBase {
  kind: "clip";
  model: ClipTextEncoder;
}
export interface LoadedT5 extends LoadedBase {
  kind: "t5";
  model: T5Encoder;
}
export type LoadedTextEncoder = LoadedClip | LoadedT5;

/** Which encoder a config.json describes, from its model_type. */
export function textEncoderKind(config: unknown, what: string): TextEncoderKind {
  const mt = isObj(config) ? config.model_type : undefined;
  if (mt === "clip_text_model" || mt === "clip") return "clip";
  if (mt === "t5" || mt === "umt5" || mt === "mt5") return "t5";
  throw new HfFolderError(`${what}: config.json model_type ${JSON.stringify(mt)} is not a supported text encoder (clip_text_model, clip, t5)`);
}

function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new HfFolderError(`${file} is not valid JSON`);
  }
}

/** Read the folder's files (file-system layer). Errors name the folder, the missing file and what the folder must contain. */
export function readHfTextEncoderFolder(dir: string, options: HfFolderOptions = {}): HfTextEncoderFiles {
  const need = (d: string, file: string, role: string): string => {
    const p = join(d, file);
    if (!existsSync(p)) throw new HfFolderError(`text encoder folder '${d}' is missing ${file} (${role}); it must contain ${FOLDER_CONTENTS}`);
    return p;
  };
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new HfFolderError(`text encoder folder '${dir}' does not exist or is not a folder; it must contain ${FOLDER_CONTENTS}`);
  }
  const configPath = need(dir, options.configFile ?? "config.json", "the model config");
  const config = parseJson(readFileSync(configPath, "utf8"), configPath);

  let tensors: Map<string, SafeTensor>;
  if (options.weightsFile !== undefined || existsSync(join(dir, "model.safetensors")) || !existsSync(join(dir, "model.safetensors.index.json"))) {
    const p = need(dir, options.weightsFile ?? "model.safetensors", "the weights");
    tensors = readSafetensors(readFileSync(p), p).tensors;
  } else {
    const indexPath = join(dir, "model.safetensors.index.json");
    const index = parseJson(readFileSync(indexPath, "utf8"), indexPath);
    if (!isObj(index) || !isObj(index.weight_map)) throw new HfFolderError(`${indexPath} has no 'weight_map' object`);
    tensors = new Map();
    for (const shard of new Set(Object.values(index.weight_map).map(String))) {
      const p = need(dir, shard, `a weights shard listed in model.safetensors.index.json`);
      for (const [k, v] of readSafetensors(readFileSync(p), p).tensors) tensors.set(k, v);
    }
  }

  const tdir = options.tokenizerDir ?? dir;
  if (tdir !== dir && (!existsSync(tdir) || !statSync(tdir).isDirectory())) {
    throw new HfFolderError(`tokenizer folder '${tdir}' does not exist or is not a folder; it must contain tokenizer.json (or vocab.json + merges.txt)`);
  }
  const tokFile = options.tokenizerFile ?? "tokenizer.json";
  let tokenizerJson: unknown;
  if (existsSync(join(tdir, tokFile)) || options.tokenizerFile !== undefined) {
    const p = need(tdir, tokFile, "the tokenizer");
    tokenizerJson = parseJson(readFileSync(p, "utf8"), p);
  } else if (existsSync(join(tdir, "vocab.json")) && existsSync(join(tdir, "merges.txt"))) {
    const vp = join(tdir, "vocab.json");
    tokenizerJson = clipTokenizerJsonFromVocabMerges(parseJson(readFileSync(vp, "utf8"), vp), readFileSync(join(tdir, "merges.txt"), "utf8"), tdir);
  } else {
    throw new HfFolderError(`text encoder folder '${tdir}' is missing tokenizer.json (the tokenizer); it must contain ${FOLDER_CONTENTS}`);
  }
  const tcPath = join(tdir, "tokenizer_config.json");
  const tokenizerConfig = existsSync(tcPath) ? parseJson(readFileSync(tcPath, "utf8"), tcPath) : null;
  return { dir, config, tensors, tokenizerJson, tokenizerConfig };
}

function tokenString(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (isObj(v) && typeof v.content === "string") return v.content;
  return undefined;
}

/** Build the encoder and tokenizer from already-read folder files (pure). */
export function buildHfTextEncoder(files: HfTextEncoderFiles, what = `text encoder '${files.dir}'`): LoadedTextEncoder {
  const kind = textEncoderKind(files.config, what);
  const tc = isObj(files.tokenizerConfig) ? files.tokenizerConfig : {};
  const tokenizer = loadTokenizerJson(files.tokenizerJson, `${what} tokenizer`, { padToken: tokenString(tc.pad_token) });
  const tcMax = typeof tc.model_max_length === "number" && tc.model_max_length < 1e9 ? tc.model_max_length : undefined;
  if (kind === "clip") {
    const model = ClipTextEncoder.fromTensors(files.config, files.tensors, what);
    return { kind, dir: files.dir, model, tokenizer, maxLength: Math.min(tcMax ?? model.config.maxPositions, model.config.maxPositions) };
  }
  const model = T5Encoder.fromTensors(files.config, files.tensors, what);
  return { kind, dir: files.dir, model, tokenizer, maxLength: tcMax ?? 512 };
}

/** Load a text encoder from a local Hugging Face folder; the kind comes from config.json's model_type. */
export function loadHfTextEncoder(dir: string, options: HfFolderOptions = {}): LoadedTextEncoder {
  return buildHfTextEncoder(readHfTextEncoderFolder(dir, options));
}
