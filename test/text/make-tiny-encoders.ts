/**
 * Tiny stand-ins for SD3's three text encoders, as Hugging Face-style folders built from the
 * text fixtures (test/fixtures/text-fixtures/), for tests and the docs:
 *
 *   clip_l/, clip_g/   config.json (clip-tiny: hidden 32, projection 24), model.safetensors, tokenizer.json
 *   t5/                config.json (t5-tiny: d_model 32), model.safetensors, tokenizer.json
 *
 * Two adjustments make them usable where the real encoders go:
 *  - CLIP positions: clip-tiny has 16 position embeddings, SD3 (and `sd3_pretrained` specs) use 77
 *    CLIP tokens. The stand-ins get 77 rows (rows 16..76 repeat rows 0..15 cyclically). CLIP's
 *    attention is causal, so states at positions < 16 (and the pooled EOS output of a short
 *    prompt) equal the fixture model's exactly.
 *  - Tokenizer: the BPE fixture's ids exceed clip-tiny's 99-token vocabulary, so the CLIP folders
 *    use the Unigram fixture (ids < 51) with a CLIP-like post-processor adding BOS 49 / EOS 98
 *    (clip-tiny's ids), as test/text/sd3-conditioning.test.ts does. The T5 folder uses the
 *    Unigram fixture with T5's post-processor (appends `</s>`, id 1).
 *
 * Widths the conditioner gives with them: context width max(32 + 32, 32) = 64, pooled 24 + 24 = 48,
 * tokens 77 + t5_tokens.
 *
 * Usable as a script too: `npx tsx test/text/make-tiny-encoders.ts DIR` writes DIR/{clip_l,clip_g,t5}
 * and prints the matching `--text-encoders` value.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { readSafetensors, type TensorToWrite, writeSafetensors } from "../../runtime/io/safetensors.ts";

const FIXTURES = fileURLToPath(new URL("../fixtures/text-fixtures/", import.meta.url));

export interface TinyEncoderFolders {
  root: string;
  clipL: string;
  clipG: string;
  t5: string;
  /** The `--text-encoders` value for these folders. */
  arg: string;
}

/** CLIP positions of the stand-ins (SD3's CLIP length). */
export const TINY_CLIP_POSITIONS = 77;
/** What the tiny encoders give: context width max(32 + 32, 32), pooled 24 + 24. */
export const TINY_WIDTH = 64;
export const TINY_POOLED = 48;

const fixtureJson = (name: string): Record<string, unknown> => JSON.parse(readFileSync(join(FIXTURES, name), "utf8"));

function clipTokenizerJson(): Record<string, unknown> {
  return {
    ...fixtureJson("unigram-tiny.tokenizer.json"),
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<bos>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "<eos>", type_id: 0 } }],
      pair: [{ SpecialToken: { id: "<bos>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { Sequence: { id: "B", type_id: 0 } }, { SpecialToken: { id: "<eos>", type_id: 0 } }],
      special_tokens: { "<bos>": { id: "<bos>", ids: [49], tokens: ["<bos>"] }, "<eos>": { id: "<eos>", ids: [98], tokens: ["<eos>"] } },
    },
  };
}

function t5TokenizerJson(): Record<string, unknown> {
  return {
    ...fixtureJson("unigram-tiny.tokenizer.json"),
    post_processor: {
      type: "TemplateProcessing",
      single: [{ Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "</s>", type_id: 0 } }],
      pair: [{ Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "</s>", type_id: 0 } }, { Sequence: { id: "B", type_id: 0 } }, { SpecialToken: { id: "</s>", type_id: 0 } }],
      special_tokens: { "</s>": { id: "</s>", ids: [1], tokens: ["</s>"] } },
    },
  };
}

/** clip-tiny's weights with the position table extended to `positions` rows (cyclic repeat). */
function clipWeights(positions: number): Uint8Array {
  const src = readSafetensors(readFileSync(join(FIXTURES, "clip-tiny.weights.safetensors")), "clip-tiny.weights.safetensors").tensors;
  const out = new Map<string, TensorToWrite>();
  for (const [name, t] of src) {
    if (!(t.data instanceof Float32Array)) throw new Error(`clip-tiny fixture: ${name} is not float32`);
    if (name.endsWith("embeddings.position_embedding.weight")) {
      const [rows, width] = t.shape;
      const data = new Float32Array(positions * width);
      for (let r = 0; r < positions; r++) data.set(t.data.subarray((r % rows) * width, (r % rows + 1) * width), r * width);
      out.set(name, { shape: [positions, width], data });
    } else out.set(name, { shape: [...t.shape], data: t.data });
  }
  return writeSafetensors(out, { format: "pt" });
}

/** Write the three stand-in folders under `root` (default: a new temp dir). */
export function makeTinyEncoders(root: string = mkdtempSync(join(tmpdir(), "sdc-tiny-encoders-"))): TinyEncoderFolders {
  const ref = fixtureJson("text-reference.json") as Record<string, Record<string, unknown>>;
  const clipBytes = clipWeights(TINY_CLIP_POSITIONS);
  const clipConfig = { ...ref["clip-tiny"], max_position_embeddings: TINY_CLIP_POSITIONS };
  const dirs = { clipL: join(root, "clip_l"), clipG: join(root, "clip_g"), t5: join(root, "t5") };
  for (const d of [dirs.clipL, dirs.clipG]) {
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, "config.json"), JSON.stringify(clipConfig, null, 2));
    writeFileSync(join(d, "model.safetensors"), clipBytes);
    writeFileSync(join(d, "tokenizer.json"), JSON.stringify(clipTokenizerJson()));
  }
  mkdirSync(dirs.t5, { recursive: true });
  writeFileSync(join(dirs.t5, "config.json"), JSON.stringify(ref["t5-tiny"], null, 2));
  copyFileSync(join(FIXTURES, "t5-tiny.weights.safetensors"), join(dirs.t5, "model.safetensors"));
  writeFileSync(join(dirs.t5, "tokenizer.json"), JSON.stringify(t5TokenizerJson()));
  return { root, ...dirs, arg: `clip_l=${dirs.clipL},clip_g=${dirs.clipG},t5=${dirs.t5}` };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const dir = process.argv[2];
  const made = makeTinyEncoders(dir ? resolve(dir) : undefined);
  process.stdout.write(`${made.arg}\n`);
}
