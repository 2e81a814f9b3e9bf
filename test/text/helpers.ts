/** Shared fixture access for the pretrained text-encoder tests. */
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type * as tf from "@tensorflow/tfjs";
import { type SafeTensor, readSafetensors } from "../../runtime/io/safetensors.ts";

export const FIXTURES = fileURLToPath(new URL("../fixtures/text-fixtures/", import.meta.url));

export interface TextReference {
  "clip-tiny": Record<string, unknown>;
  "t5-tiny": Record<string, unknown>;
  "tokenizer-probes": Record<"bpe-tiny" | "unigram-tiny", Record<string, number[]>>;
}

export const reference = (): TextReference => JSON.parse(readFileSync(join(FIXTURES, "text-reference.json"), "utf8"));
export const fixtureJson = (name: string): unknown => JSON.parse(readFileSync(join(FIXTURES, name), "utf8"));
export const fixtureTensors = (name: string): Map<string, SafeTensor> => readSafetensors(readFileSync(join(FIXTURES, name)), name).tensors;

export function tensorOf(m: Map<string, SafeTensor>, name: string): SafeTensor {
  const t = m.get(name);
  if (!t) throw new Error(`fixture lacks ${name}`);
  return t;
}

/** A [B, T] integer fixture tensor as rows. */
export function rows(t: SafeTensor): number[][] {
  const [B, T] = t.shape;
  return Array.from({ length: B }, (_, b) => Array.from(t.data.subarray(b * T, (b + 1) * T)));
}

export function maxAbsErr(got: tf.Tensor, want: SafeTensor): number {
  if (got.shape.join("x") !== want.shape.join("x")) throw new Error(`shape [${got.shape}] differs from the fixture's [${want.shape}]`);
  const a = got.dataSync();
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - want.data[i]));
  return m;
}

/** A temporary Hugging Face-style folder made from a fixture: config.json, model.safetensors, tokenizer.json. */
export function makeHfFolder(kind: "clip" | "t5"): string {
  const dir = mkdtempSync(join(tmpdir(), `sdc-${kind}-`));
  const ref = reference();
  writeFileSync(join(dir, "config.json"), JSON.stringify(kind === "clip" ? ref["clip-tiny"] : ref["t5-tiny"]));
  copyFileSync(join(FIXTURES, kind === "clip" ? "clip-tiny.weights.safetensors" : "t5-tiny.weights.safetensors"), join(dir, "model.safetensors"));
  copyFileSync(join(FIXTURES, kind === "clip" ? "bpe-tiny.tokenizer.json" : "unigram-tiny.tokenizer.json"), join(dir, "tokenizer.json"));
  return dir;
}
