import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { ClipTextEncoder } from "../../runtime/text/pretrained/clip-text.ts";
import { TextEncoderError } from "../../runtime/text/pretrained/common.ts";
import { T5Encoder, relativePositionBucket } from "../../runtime/text/pretrained/t5-encoder.ts";
import { fixtureTensors, maxAbsErr, reference, rows, tensorOf } from "./helpers.ts";

const TOL = 1e-4;
const ref = reference();

beforeAll(async () => {
  await tf.setBackend("cpu");
});

describe("CLIP text encoder vs the reference (clip-tiny)", () => {
  it("last, penultimate hidden states and text_embeds within 1e-4; no tensor leak", () => {
    const io = fixtureTensors("clip-tiny.io.safetensors");
    const before = tf.memory().numTensors;
    const clip = ClipTextEncoder.fromTensors(ref["clip-tiny"], fixtureTensors("clip-tiny.weights.safetensors"), "clip-tiny");
    expect(clip.width).toBe(32);
    expect(clip.pooledWidth).toBe(24);
    const ids = rows(tensorOf(io, "input_ids"));
    expect(clip.eosPositions(ids)).toEqual([4, 6]);
    const out = clip.forward(ids);
    const errs = {
      last: maxAbsErr(out.lastHiddenState, tensorOf(io, "last_hidden_state")),
      penultimate: maxAbsErr(out.penultimateHiddenState, tensorOf(io, "penultimate_hidden_state")),
      textEmbeds: maxAbsErr(out.textEmbeds as tf.Tensor, tensorOf(io, "text_embeds")),
    };
    console.log("clip-tiny max abs errors", errs);
    expect(errs.last).toBeLessThan(TOL);
    expect(errs.penultimate).toBeLessThan(TOL);
    expect(errs.textEmbeds).toBeLessThan(TOL);
    // the penultimate state is not the last one (the test would catch mixing them up)
    expect(maxAbsErr(out.lastHiddenState, tensorOf(io, "penultimate_hidden_state"))).toBeGreaterThan(0.01);
    tf.dispose([out.lastHiddenState, out.penultimateHiddenState, out.pooled, out.textEmbeds as tf.Tensor]);
    clip.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it("rejects bad ids and over-long input with plain messages", () => {
    const clip = ClipTextEncoder.fromTensors(ref["clip-tiny"], fixtureTensors("clip-tiny.weights.safetensors"), "clip-tiny");
    const before = tf.memory().numTensors;
    expect(() => clip.forward([[49, 99]])).toThrow("clip-tiny: input id 99 at [0, 1] is outside the vocabulary [0, 99)");
    expect(() => clip.forward([Array(17).fill(5)])).toThrow("clip-tiny: 17 tokens exceed max_position_embeddings 16");
    expect(() => clip.forward([[1, 2], [3]])).toThrow(TextEncoderError);
    expect(tf.memory().numTensors).toBe(before);
    clip.dispose();
    expect(() => clip.forward([[1]])).toThrow("used after dispose()");
  });

  it("without text_projection (plain CLIPTextModel): textEmbeds is null, pooled still given", () => {
    const w = fixtureTensors("clip-tiny.weights.safetensors");
    w.delete("text_projection.weight");
    const before = tf.memory().numTensors;
    const clip = ClipTextEncoder.fromTensors(ref["clip-tiny"], w, "clip-tiny");
    expect(clip.hasProjection).toBe(false);
    const out = clip.forward([[49, 5, 98]]);
    expect(out.textEmbeds).toBeNull();
    expect(out.pooled.shape).toEqual([1, 32]);
    tf.dispose([out.lastHiddenState, out.penultimateHiddenState, out.pooled]);
    clip.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it("names a missing or mis-shaped weight and leaks nothing", () => {
    const before = tf.memory().numTensors;
    const w = fixtureTensors("clip-tiny.weights.safetensors");
    w.delete("text_model.encoder.layers.1.mlp.fc2.bias");
    expect(() => ClipTextEncoder.fromTensors(ref["clip-tiny"], w, "clip-tiny")).toThrow("clip-tiny: weights lack tensor 'text_model.encoder.layers.1.mlp.fc2.bias' (expected shape [32])");
    const cfg = { ...ref["clip-tiny"], intermediate_size: 65 };
    expect(() => ClipTextEncoder.fromTensors(cfg, fixtureTensors("clip-tiny.weights.safetensors"), "clip-tiny")).toThrow(
      "clip-tiny: tensor 'text_model.encoder.layers.0.mlp.fc1.weight' has shape [64,32], expected [65,32] from the config",
    );
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe("T5 encoder vs the reference (t5-tiny)", () => {
  it("last_hidden_state with the attention mask within 1e-4; no tensor leak", () => {
    const io = fixtureTensors("t5-tiny.io.safetensors");
    const before = tf.memory().numTensors;
    const t5 = T5Encoder.fromTensors(ref["t5-tiny"], fixtureTensors("t5-tiny.weights.safetensors"), "t5-tiny");
    expect(t5.config.gated).toBe(true);
    expect(t5.config.act).toBe("gelu_new");
    const { lastHiddenState } = t5.forward(rows(tensorOf(io, "input_ids")), rows(tensorOf(io, "attention_mask")));
    const err = maxAbsErr(lastHiddenState, tensorOf(io, "last_hidden_state"));
    console.log("t5-tiny max abs error", err);
    expect(err).toBeLessThan(TOL);
    // without the mask the padded keys change the result (the mask is really applied)
    const unmasked = t5.forward(rows(tensorOf(io, "input_ids"))).lastHiddenState;
    expect(maxAbsErr(unmasked, tensorOf(io, "last_hidden_state"))).toBeGreaterThan(0.01);
    tf.dispose([lastHiddenState, unmasked]);
    t5.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it("relative position buckets match T5's bidirectional bucketing", () => {
    // HF T5 with 32 buckets, max distance 128 (values from transformers' _relative_position_bucket)
    const b = (r: number) => relativePositionBucket(r, 32, 128);
    expect([0, -1, -7, -8, -12, -16, -127, -128, -500].map(b)).toEqual([0, 1, 7, 8, 9, 10, 15, 15, 15]);
    expect([1, 7, 8, 16, 32, 64, 127, 128].map(b)).toEqual([17, 23, 24, 26, 28, 30, 31, 31]);
    // tiny config: 8 buckets, max distance 16
    expect([-3, -2, -1, 0, 1, 2, 3, 7].map((r) => relativePositionBucket(r, 8, 16))).toEqual([2, 2, 1, 0, 5, 6, 6, 7]);
  });

  it("names a missing weight", () => {
    const w = fixtureTensors("t5-tiny.weights.safetensors");
    w.delete("encoder.block.1.layer.1.DenseReluDense.wi_1.weight");
    expect(() => T5Encoder.fromTensors(ref["t5-tiny"], w, "t5-tiny")).toThrow("t5-tiny: weights lack tensor 'encoder.block.1.layer.1.DenseReluDense.wi_1.weight' (expected shape [48,32])");
  });
});
