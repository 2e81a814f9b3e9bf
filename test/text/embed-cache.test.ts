import * as tf from "@tensorflow/tfjs";
import { mkdtempSync, rmSync, utimesSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DirEmbedStore,
  PromptEmbedCache,
  type PromptEmbedding,
  conditionerCompute,
  deserializeEmbedding,
  encoderFingerprint,
  folderFingerprint,
  promptKey,
  sd3ConditionerFingerprint,
  serializeEmbedding,
} from "../../runtime/text/pretrained/embed-cache.ts";
import { loadHfTextEncoder } from "../../runtime/text/pretrained/hf-folder.ts";
import { Sd3TextConditioner } from "../../runtime/text/pretrained/sd3-conditioning.ts";
import { makeHfFolder } from "./helpers.ts";

const dirs: string[] = [];
const tmp = (tag: string) => {
  const d = mkdtempSync(join(tmpdir(), `sdc-${tag}-`));
  dirs.push(d);
  return d;
};
beforeAll(async () => {
  await tf.setBackend("cpu");
});
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A deterministic fake encoder that counts the prompts it encodes. */
function fakeCompute() {
  const seen: string[] = [];
  const compute = (prompts: string[]): PromptEmbedding[] => {
    seen.push(...prompts);
    return prompts.map((p) => ({
      context: Float32Array.from({ length: 6 }, (_, i) => p.length * 10 + i),
      contextShape: [3, 2] as [number, number],
      pooled: Float32Array.from([p.length, -p.length]),
    }));
  };
  return { seen, compute };
}

describe("embedding cache keys (pure)", () => {
  it("fingerprints are order-independent and change with any entry", () => {
    const a = { name: "model/config.json", contentSha256: "ab" };
    const b = { name: "model/model.safetensors", size: 10, mtimeMs: 5 };
    expect(encoderFingerprint([a, b])).toBe(encoderFingerprint([b, a]));
    expect(encoderFingerprint([a, { ...b, mtimeMs: 6 }])).not.toBe(encoderFingerprint([a, b]));
    expect(encoderFingerprint([a, { ...b, size: 11 }])).not.toBe(encoderFingerprint([a, b]));
    expect(promptKey("f1", "seven")).toMatch(/^[0-9a-f]{64}$/);
    expect(promptKey("f1", "seven")).not.toBe(promptKey("f2", "seven"));
    expect(promptKey("f1", "seven")).not.toBe(promptKey("f1", "seven "));
  });

  it("serialized entries round-trip and refuse another fingerprint or prompt", () => {
    const e = fakeCompute().compute(["nine"])[0];
    const bytes = serializeEmbedding(e, "fp", "nine");
    expect(deserializeEmbedding(bytes, "entry", "fp", "nine")).toEqual(e);
    expect(deserializeEmbedding(bytes, "entry", "other", "nine")).toBeNull();
    expect(deserializeEmbedding(bytes, "entry", "fp", "eight")).toBeNull();
  });
});

describe("PromptEmbedCache", () => {
  it("computes each distinct prompt once; memory hits on the second lookup", () => {
    const { seen, compute } = fakeCompute();
    const cache = new PromptEmbedCache({ fingerprint: "fp", compute });
    const first = cache.lookup(["seven", "nine", "seven"]);
    expect(seen).toEqual(["seven", "nine"]);
    expect(cache.stats).toEqual({ hits: 0, memoryHits: 0, diskHits: 0, misses: 2 });
    const second = cache.lookup(["nine", "seven"]);
    expect(seen).toEqual(["seven", "nine"]);
    expect(cache.stats).toEqual({ hits: 2, memoryHits: 2, diskHits: 0, misses: 2 });
    expect(second[0]).toBe(first[1]);
    expect(second[1].pooled).toEqual(Float32Array.from([5, -5]));
  });

  it("disk layer: a new process (new cache) hits on disk; a changed fingerprint misses", () => {
    const store = new DirEmbedStore(join(tmp("cache"), "embeds"));
    const one = fakeCompute();
    new PromptEmbedCache({ fingerprint: "fp-A", compute: one.compute, store }).lookup(["seven", "nine"]);
    const two = fakeCompute();
    const again = new PromptEmbedCache({ fingerprint: "fp-A", compute: two.compute, store });
    const got = again.lookup(["nine", "seven", "zero"]);
    expect(two.seen).toEqual(["zero"]);
    expect(again.stats).toEqual({ hits: 2, memoryHits: 0, diskHits: 2, misses: 1 });
    expect(got[0].context).toEqual(Float32Array.from({ length: 6 }, (_, i) => 40 + i));
    const three = fakeCompute();
    const changed = new PromptEmbedCache({ fingerprint: "fp-B", compute: three.compute, store });
    changed.lookup(["seven"]);
    expect(three.seen).toEqual(["seven"]);
    expect(changed.stats.misses).toBe(1);
    expect(changed.stats.hits).toBe(0);
  });

  it("folder fingerprints change when config.json or the weights change (invalidation)", () => {
    const d = makeHfFolder("clip");
    dirs.push(d);
    const f0 = folderFingerprint(d);
    expect(folderFingerprint(d)).toBe(f0);
    // weights touched (same size, new mtime)
    utimesSync(join(d, "model.safetensors"), new Date(), new Date(Date.now() + 60_000));
    const f1 = folderFingerprint(d);
    expect(f1).not.toBe(f0);
    // config edited
    const cfg = JSON.parse(readFileSync(join(d, "config.json"), "utf8"));
    writeFileSync(join(d, "config.json"), JSON.stringify({ ...cfg, layer_norm_eps: 1e-6 }));
    const f2 = folderFingerprint(d);
    expect(f2).not.toBe(f1);

    const { seen, compute } = fakeCompute();
    const store = new DirEmbedStore(tmp("cache2"));
    new PromptEmbedCache({ fingerprint: f1, compute, store }).lookup(["seven"]);
    new PromptEmbedCache({ fingerprint: f1, compute, store }).lookup(["seven"]);
    expect(seen).toEqual(["seven"]);
    new PromptEmbedCache({ fingerprint: f2, compute, store }).lookup(["seven"]);
    expect(seen).toEqual(["seven", "seven"]);
  });

  it("with a real (tiny) SD3 conditioner: cached tensors equal fresh ones, no tensor leak", () => {
    const t5dir = makeHfFolder("t5");
    dirs.push(t5dir);
    const t5 = loadHfTextEncoder(t5dir);
    if (t5.kind !== "t5") throw new Error("expected t5");
    const clipDir = makeHfFolder("clip");
    dirs.push(clipDir);
    const clip = loadHfTextEncoder(clipDir);
    if (clip.kind !== "clip") throw new Error("expected clip");
    // clip-tiny's 99-id vocabulary is smaller than the BPE fixture's: use the T5 tokenizer (ids < 51) for the CLIP stand-ins
    const clipStandIn = { model: clip.model, tokenizer: t5.tokenizer };
    const cond = new Sd3TextConditioner({ clipL: clipStandIn, clipG: clipStandIn, t5 }, { clipLength: 8, t5Length: 6 });
    const fp = sd3ConditionerFingerprint({ clipL: folderFingerprint(clipDir), clipG: folderFingerprint(clipDir), t5: folderFingerprint(t5dir) }, cond);
    const before = tf.memory().numTensors;
    const cache = new PromptEmbedCache({ fingerprint: fp, compute: conditionerCompute(cond), store: new DirEmbedStore(tmp("cache3")) });
    const prompts = ["seven", "a handwritten nine", "seven"];
    const cached = cache.tensors(prompts);
    const again = cache.tensors(prompts);
    const fresh = cond.encode(prompts);
    expect(cache.stats).toEqual({ hits: 2, memoryHits: 2, diskHits: 0, misses: 2 });
    expect(cached.context.shape).toEqual([3, 14, 64]);
    expect(cached.context.arraySync()).toEqual(fresh.context.arraySync());
    expect(again.pooled.arraySync()).toEqual(fresh.pooled.arraySync());
    tf.dispose([cached.context, cached.pooled, again.context, again.pooled, fresh.context, fresh.pooled]);
    expect(tf.memory().numTensors).toBe(before);
    clip.model.dispose();
    t5.model.dispose();
  });
});
