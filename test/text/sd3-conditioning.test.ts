import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { ClipTextEncoder } from "../../runtime/text/pretrained/clip-text.ts";
import { Sd3TextConditioner } from "../../runtime/text/pretrained/sd3-conditioning.ts";
import { T5Encoder } from "../../runtime/text/pretrained/t5-encoder.ts";
import { loadTokenizerJson } from "../../runtime/text/pretrained/tokenizer.ts";
import { fixtureJson, fixtureTensors, reference } from "./helpers.ts";

const ref = reference();
/**
 * The BPE fixture's ids (up to ~300) exceed clip-tiny's 99-token vocabulary, so the CLIP stand-ins use
 * the Unigram fixture (ids < 51) with a CLIP-like post-processor adding BOS 49 and EOS 98 (clip-tiny's ids).
 */
const bpe = () =>
  loadTokenizerJson(
    {
      ...(fixtureJson("unigram-tiny.tokenizer.json") as object),
      post_processor: {
        type: "TemplateProcessing",
        single: [{ SpecialToken: { id: "<bos>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "<eos>", type_id: 0 } }],
        special_tokens: { "<bos>": { id: "<bos>", ids: [49], tokens: ["<bos>"] }, "<eos>": { id: "<eos>", ids: [98], tokens: ["<eos>"] } },
      },
    },
    "clip-stand-in",
  );
const uni = () => loadTokenizerJson(fixtureJson("unigram-tiny.tokenizer.json"), "unigram-tiny");
const clip = () => ClipTextEncoder.fromTensors(ref["clip-tiny"], fixtureTensors("clip-tiny.weights.safetensors"), "clip-tiny");
const t5 = () => T5Encoder.fromTensors(ref["t5-tiny"], fixtureTensors("t5-tiny.weights.safetensors"), "t5-tiny");

beforeAll(async () => {
  await tf.setBackend("cpu");
});

/** [b, t0:t1, w0:w1] of a [B, T, W] tensor, as a nested array. */
const block = (x: tf.Tensor3D, b: number, t0: number, t1: number, w0: number, w1: number) =>
  tf.tidy(() => tf.slice(x, [b, t0, w0], [1, t1 - t0, w1 - w0]).arraySync());

describe("Sd3TextConditioner with tiny stand-in encoders", () => {
  it("context = [CLIP-L | CLIP-G] penultimate states then width-padded T5; pooled = both text_embeds; no leak", () => {
    const L = clip();
    const G = clip();
    const T = t5();
    const before = tf.memory().numTensors;
    const cond = new Sd3TextConditioner({ clipL: { model: L, tokenizer: bpe() }, clipG: { model: G, tokenizer: bpe() }, t5: { model: T, tokenizer: uni() } }, { t5Length: 12 });
    expect([cond.clipLength, cond.t5Length, cond.contextLength, cond.contextWidth, cond.pooledWidth]).toEqual([16, 12, 28, 64, 48]);
    const prompts = ["a handwritten nine", "seven"];
    const { context, pooled } = cond.encode(prompts);
    expect(context.shape).toEqual([2, 28, 64]);
    expect(pooled.shape).toEqual([2, 48]);

    // the pieces, computed directly from the encoders on the same ids
    const ids = cond.tokenize(prompts);
    expect(ids.clipL[1]).toEqual([49, 9, 98, ...Array(13).fill(0)]); // BOS "seven" EOS, padded with id 0
    expect(ids.t5?.[1]).toEqual([9, ...Array(11).fill(0)]);
    expect(L.eosPositions(ids.clipL)).toEqual([16 - ids.clipL[0].filter((i) => i === 0).length - 1, 2]);
    const l = L.forward(ids.clipL);
    const t = T.forward(ids.t5 as number[][]).lastHiddenState;
    for (let b = 0; b < 2; b++) {
      const pen = tf.tidy(() => tf.slice(l.penultimateHiddenState, [b, 0, 0], [1, 16, 32]).arraySync());
      expect(block(context, b, 0, 16, 0, 32)).toEqual(pen);
      expect(block(context, b, 0, 16, 32, 64)).toEqual(pen); // clipG is the same tiny model
      expect(block(context, b, 16, 28, 0, 32)).toEqual(tf.tidy(() => tf.slice(t, [b, 0, 0], [1, 12, 32]).arraySync()));
      expect((block(context, b, 16, 28, 32, 64) as number[][][]).flat(2).every((v) => v === 0)).toBe(true);
    }
    const te = (l.textEmbeds as tf.Tensor2D).arraySync();
    const p = pooled.arraySync();
    for (let b = 0; b < 2; b++) expect(p[b]).toEqual([...te[b], ...te[b]]);
    tf.dispose([context, pooled, l.lastHiddenState, l.penultimateHiddenState, l.pooled, l.textEmbeds as tf.Tensor, t]);
    expect(tf.memory().numTensors).toBe(before);
    L.dispose();
    G.dispose();
    T.dispose();
  });

  it("a T5 wider than the CLIPs pads the CLIP block instead (as real SD3: 2048 -> 4096)", () => {
    const L = clip();
    const before = tf.memory().numTensors;
    const cond = new Sd3TextConditioner({ clipL: { model: L, tokenizer: bpe() }, clipG: { model: L, tokenizer: bpe() }, t5: null }, { clipLength: 8, t5Length: 5, t5Width: 100 });
    const { context, pooled } = cond.encode(["seven"]);
    expect(context.shape).toEqual([1, 13, 100]);
    expect(pooled.shape).toEqual([1, 48]);
    expect((block(context, 0, 0, 8, 64, 100) as number[][][]).flat(2).every((v) => v === 0)).toBe(true);
    expect((block(context, 0, 8, 13, 0, 100) as number[][][]).flat(2).every((v) => v === 0)).toBe(true); // no T5: zeros
    expect((block(context, 0, 0, 8, 0, 64) as number[][][]).flat(2).some((v) => v !== 0)).toBe(true);
    tf.dispose([context, pooled]);
    expect(tf.memory().numTensors).toBe(before);
    L.dispose();
  });

  it("rejects lengths beyond the CLIP position table and empty prompt lists", () => {
    const L = clip();
    const enc = { clipL: { model: L, tokenizer: bpe() }, clipG: { model: L, tokenizer: bpe() } };
    expect(() => new Sd3TextConditioner(enc, { clipLength: 77 })).toThrow("clipLength 77 must be an integer in [2, 16]");
    expect(() => new Sd3TextConditioner(enc).encode([])).toThrow("prompts must be a non-empty list");
    L.dispose();
    const w = fixtureTensors("clip-tiny.weights.safetensors");
    w.delete("text_projection.weight");
    const plain = ClipTextEncoder.fromTensors(ref["clip-tiny"], w, "clip-tiny");
    expect(() => new Sd3TextConditioner({ clipL: { model: plain, tokenizer: bpe() }, clipG: { model: plain, tokenizer: bpe() } })).toThrow(
      "Sd3TextConditioner: clipL has no text_projection (SD3 needs CLIPTextModelWithProjection weights)",
    );
    plain.dispose();
  });
});
