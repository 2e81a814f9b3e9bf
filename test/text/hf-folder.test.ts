import * as tf from "@tensorflow/tfjs";
import { mkdtempSync, rmSync, unlinkSync, renameSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HfFolderError, loadHfTextEncoder, textEncoderKind } from "../../runtime/text/pretrained/hf-folder.ts";
import { FIXTURES, fixtureTensors, makeHfFolder, maxAbsErr, reference, rows, tensorOf } from "./helpers.ts";

const made: string[] = [];
const folder = (kind: "clip" | "t5") => {
  const d = makeHfFolder(kind);
  made.push(d);
  return d;
};

beforeAll(async () => {
  await tf.setBackend("cpu");
});
afterAll(() => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

describe("loadHfTextEncoder: local Hugging Face folders", () => {
  it("loads a CLIP folder (kind from model_type) that matches the reference", () => {
    const before = tf.memory().numTensors;
    const enc = loadHfTextEncoder(folder("clip"));
    expect(enc.kind).toBe("clip");
    if (enc.kind !== "clip") return;
    expect(enc.maxLength).toBe(16);
    expect(enc.tokenizer.encode("seven")).toEqual(reference()["tokenizer-probes"]["bpe-tiny"].seven);
    const io = fixtureTensors("clip-tiny.io.safetensors");
    const out = enc.model.forward(rows(tensorOf(io, "input_ids")));
    expect(maxAbsErr(out.penultimateHiddenState, tensorOf(io, "penultimate_hidden_state"))).toBeLessThan(1e-4);
    tf.dispose([out.lastHiddenState, out.penultimateHiddenState, out.pooled, out.textEmbeds as tf.Tensor]);
    enc.model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it("loads a T5 folder that matches the reference", () => {
    const before = tf.memory().numTensors;
    const enc = loadHfTextEncoder(folder("t5"));
    expect(enc.kind).toBe("t5");
    const io = fixtureTensors("t5-tiny.io.safetensors");
    const { lastHiddenState } = enc.model.forward(rows(tensorOf(io, "input_ids")), rows(tensorOf(io, "attention_mask")));
    expect(maxAbsErr(lastHiddenState, tensorOf(io, "last_hidden_state"))).toBeLessThan(1e-4);
    lastHiddenState.dispose();
    enc.model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it("accepts explicit file names (fixture-style weights file)", () => {
    const d = folder("clip");
    renameSync(join(d, "model.safetensors"), join(d, "clip-tiny.weights.safetensors"));
    const enc = loadHfTextEncoder(d, { weightsFile: "clip-tiny.weights.safetensors" });
    expect(enc.kind).toBe("clip");
    enc.model.dispose();
  });

  it("a missing folder: the message names the folder and what it must contain", () => {
    const missing = join(mkdtempSync(join(tmpdir(), "sdc-none-")), "no-such-encoder");
    made.push(missing);
    let err: unknown;
    try {
      loadHfTextEncoder(missing);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(HfFolderError);
    const msg = (err as Error).message;
    expect(msg).toContain(`'${missing}'`);
    expect(msg).toContain("does not exist");
    expect(msg).toMatch(/config\.json.*model\.safetensors.*tokenizer\.json/);
  });

  it("a missing file: the message names the folder, the file and the folder's required contents", () => {
    for (const [file, role] of [["tokenizer.json", "tokenizer"], ["model.safetensors", "weights"], ["config.json", "model config"]]) {
      const d = folder("t5");
      unlinkSync(join(d, file));
      expect(() => loadHfTextEncoder(d)).toThrow(`text encoder folder '${d}' is missing ${file} (the ${role}); it must contain config.json, model.safetensors`);
    }
  });

  it("an unsupported model_type is named", () => {
    expect(() => textEncoderKind({ model_type: "bert" }, "enc")).toThrow('enc: config.json model_type "bert" is not a supported text encoder');
  });

  it("the fixtures folder itself is not an HF folder (no config.json)", () => {
    expect(() => loadHfTextEncoder(FIXTURES)).toThrow(/is missing config\.json/);
  });
});
