/**
 * Training an `sd3_pretrained` spec (test/specs/sd3-tiny-pretrained.mdl) with the tiny stand-in
 * encoders (make-tiny-encoders.ts): PretrainedPromptEncoder checks, the embedding cache during
 * training (memory, then disk on a second run without loading the encoders), the time the cache
 * saves, and the errors for missing folders and mismatched shapes.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, cpSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compileSpecFile } from "../../cli/commands/compile.ts";
import { runTrain } from "../../cli/commands/train.ts";
import { loadCompiled, type LoadedSpec } from "../../cli/generated.ts";
import { initBackend } from "../../runtime/backend.ts";
import { digitPrompt } from "../../runtime/data/mnist.ts";
import { writeDirAtomic } from "../../runtime/io/atomic.ts";
import { readCheckpoint } from "../../runtime/train/checkpoint.ts";
import { buildModel } from "../../runtime/train/trainer.ts";
import { sd3ConditionerFingerprint, folderFingerprint } from "../../runtime/text/pretrained/embed-cache.ts";
import { loadHfTextEncoder, type LoadedClip, type LoadedT5 } from "../../runtime/text/pretrained/hf-folder.ts";
import {
  PretrainedPromptEncoder,
  type Sd3PretrainedTextIR,
  defaultTextCacheDir,
  parseTextEncodersArg,
  textEncoderOverrides,
  tokenizerDirFor,
} from "../../runtime/text/pretrained/prompt-encoder.ts";
import { Sd3TextConditioner } from "../../runtime/text/pretrained/sd3-conditioning.ts";
import { Rng } from "../../runtime/util/rng.ts";
import { makeTinyEncoders, TINY_POOLED, TINY_WIDTH, type TinyEncoderFolders } from "./make-tiny-encoders.ts";

const SPEC = "test/specs/sd3-tiny-pretrained.mdl";
const root = mkdtempSync(join(tmpdir(), "sdc-pretrained-train-"));
let enc: TinyEncoderFolders;
let gen: string;
let loaded: LoadedSpec;
let text: Sd3PretrainedTextIR;

beforeAll(async () => {
  await initBackend("cpu", { log: () => {} });
  enc = makeTinyEncoders(join(root, "encoders"));
  const { result, dir } = compileSpecFile(SPEC, { outDir: join(root, "generated") });
  expect(result.diagnostics).toEqual([]);
  if (!dir || !result.files) throw new Error("compile failed");
  // generated code outside the repository needs an ESM package scope for the CLI (node + tsx)
  writeDirAtomic(dir, Object.fromEntries(result.files));
  writeFileSync(join(root, "generated", "package.json"), '{ "type": "module" }\n');
  gen = dir;
  loaded = await loadCompiled(gen);
  if (loaded.ir.text.kind !== "sd3_pretrained") throw new Error("not sd3_pretrained");
  text = loaded.ir.text;
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const folders = () => ({ clipL: enc.clipL, clipG: enc.clipG, t5: enc.t5 });

describe("the tiny sd3_pretrained spec", () => {
  it("compiles to 77 + 8 context tokens of width 64, pooled 48, and only network parameters", () => {
    expect(text).toEqual({ kind: "sd3_pretrained", clipL: "models/tiny/clip_l", clipG: "models/tiny/clip_g", t5: "models/tiny/t5", t5Tokens: 8, tokens: 85, width: TINY_WIDTH, pooled: TINY_POOLED });
    expect(loaded.ir.stats.textParams).toBe(0);
    expect(loaded.ir.stats.params).toBe(loaded.ir.stats.networkParams);
    const m = buildModel(loaded.spec, loaded.ir, 0, undefined, { ...folders(), cacheDir: null });
    // what cli/commands/train.ts compares: the store holds the network's parameters only
    expect(m.store.numParams).toBe(loaded.ir.stats.params);
    expect([...m.store.vars.keys()].some((k) => k.startsWith("text_encoder."))).toBe(false);
    expect(m.text.words).toEqual([]);
    m.store.dispose();
  });
});

describe("PretrainedPromptEncoder", () => {
  it("is frozen: plain tensors of the IR's shapes and no variables (nothing for the optimizer)", () => {
    const m = buildModel(loaded.spec, loaded.ir, 0, undefined, { ...folders(), cacheDir: null });
    const p = m.text as PretrainedPromptEncoder;
    const varsBefore = Object.keys(tf.engine().registeredVariables).length;
    const [ctx, pooled] = p.encode(["7", "seven", ""]);
    expect(ctx.shape).toEqual([3, 85, 64]);
    expect(pooled.shape).toEqual([3, 48]);
    expect(ctx instanceof tf.Variable || pooled instanceof tf.Variable).toBe(false);
    expect(Object.keys(tf.engine().registeredVariables).length).toBe(varsBefore);
    // "7" and "seven" tokenize differently, so their CLIP states at token 1 differ
    const c = ctx.arraySync();
    expect(c[0][1]).not.toEqual(c[1][1]);
    tf.dispose([ctx, pooled]);
    p.dispose();
    m.store.dispose();
  });

  it("loads lazily inside tf.tidy without losing its weights, and leaves no tensors behind", () => {
    const before = tf.memory().numTensors;
    const p = new PretrainedPromptEncoder("tiny", text, { ...folders(), cacheDir: null });
    expect(p.stats.loaded).toBe(false);
    const s1 = tf.tidy(() => tf.sum(p.encode(["1", "one"])[0]).dataSync()[0]);
    expect(p.stats.loaded).toBe(true);
    const s2 = tf.tidy(() => tf.sum(p.encode(["2", "two"])[0]).dataSync()[0]); // a miss after the tidy: weights still alive
    expect(Number.isFinite(s1) && Number.isFinite(s2)).toBe(true);
    expect(p.stats).toMatchObject({ misses: 4, hits: 0 });
    tf.tidy(() => {
      p.encode(["one", "2"]);
    });
    expect(p.stats).toMatchObject({ misses: 4, hits: 2, memoryHits: 2 });
    p.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it("uses the same cache keys as sd3ConditionerFingerprint; changing a folder changes them", () => {
    const p = new PretrainedPromptEncoder("tiny", text, { ...folders(), cacheDir: null });
    const load = (d: string) => loadHfTextEncoder(d);
    const l = load(enc.clipL) as LoadedClip;
    const g = load(enc.clipG) as LoadedClip;
    const t = load(enc.t5) as LoadedT5;
    const cond = new Sd3TextConditioner({ clipL: { model: l.model, tokenizer: l.tokenizer }, clipG: { model: g.model, tokenizer: g.tokenizer }, t5: { model: t.model, tokenizer: t.tokenizer } }, { clipLength: 77, t5Length: 8 });
    expect(p.fingerprint).toBe(sd3ConditionerFingerprint({ clipL: folderFingerprint(enc.clipL), clipG: folderFingerprint(enc.clipG), t5: folderFingerprint(enc.t5) }, cond));
    // the same context as the conditioner gives directly
    const [ctx, pooled] = p.encode(["nine"]);
    const direct = cond.encode(["nine"]);
    expect(ctx.arraySync()).toEqual(direct.context.arraySync());
    expect(pooled.arraySync()).toEqual(direct.pooled.arraySync());
    tf.dispose([ctx, pooled, direct.context, direct.pooled]);
    for (const x of [l, g, t]) x.model.dispose();
    p.dispose();

    const copy = join(root, "t5-edited");
    cpSync(enc.t5, copy, { recursive: true });
    const cfg = JSON.parse(readFileSync(join(copy, "config.json"), "utf8"));
    writeFileSync(join(copy, "config.json"), JSON.stringify({ ...cfg, layer_norm_epsilon: 1e-5 }));
    const q = new PretrainedPromptEncoder("tiny", text, { ...folders(), t5: copy, cacheDir: null });
    expect(q.fingerprint).not.toBe(p.fingerprint);
    const noT5 = new PretrainedPromptEncoder("tiny", text, { ...folders(), t5: null, cacheDir: null });
    expect(noT5.fingerprint).not.toBe(p.fingerprint);
  });

  it("says which folder gives which width when the spec's shapes differ", () => {
    const open = (t: Sd3PretrainedTextIR) => () => new PretrainedPromptEncoder("tiny", t, { ...folders(), cacheDir: null });
    expect(open({ ...text, pooled: 50 })).toThrow(
      `clip_l '${enc.clipL}' gives width 32 and pooled 24, clip_g '${enc.clipG}' width 32 and pooled 24, t5 '${enc.t5}' width 32; so context is [85 tokens, width max(32 + 32, 32) = 64] and pooled 24 + 24 = 48, but the spec says [85 tokens, width 64] and pooled 50`,
    );
    expect(open({ ...text, width: 128 })).toThrow("Set `width: 64  pooled: 48` in the spec's text section");
    expect(open({ ...text, t5Tokens: 8, tokens: 8 + 100 })).toThrow(/has 77 position embeddings \(max_position_embeddings\), but tiny uses 100 CLIP tokens/);
    expect(() => new PretrainedPromptEncoder("tiny", text, { ...folders(), clipG: enc.t5, cacheDir: null })).toThrow(
      `clip_g '${enc.t5}': config.json describes a T5 model, but the clip_g folder must hold a CLIP text model`,
    );
  });

  it("names each missing folder or file and what a folder must contain", () => {
    const partial = join(root, "partial");
    mkdirSync(partial, { recursive: true });
    cpSync(join(enc.clipL, "config.json"), join(partial, "config.json"));
    let err: Error | undefined;
    try {
      new PretrainedPromptEncoder("tiny", text, { clipG: partial, origins: { clip_g: "--text-encoders" }, cacheDir: null });
    } catch (e) {
      err = e as Error;
    }
    expect(err?.name).toBe("HfFolderError");
    expect(err?.message).toContain("clip_l folder 'models/tiny/clip_l' (from the spec) does not exist");
    expect(err?.message).toContain(`clip_g folder '${partial}' (from --text-encoders) is missing model.safetensors, tokenizer.json (or vocab.json + merges.txt)`);
    expect(err?.message).toContain("t5 folder 'models/tiny/t5' (from the spec) does not exist");
    expect(err?.message).toContain("Each folder must contain config.json, model.safetensors");
    expect(() => new PretrainedPromptEncoder("tiny", { ...text, clipL: null }, { clipG: enc.clipG, t5: null, cacheDir: null })).toThrow("clip_l: no folder given");
  });

  it("finds a diffusers pipeline's tokenizer folders (text_encoder_2/ -> tokenizer_2/)", () => {
    const pipe = join(root, "pipeline");
    cpSync(enc.clipG, join(pipe, "text_encoder_2"), { recursive: true });
    mkdirSync(join(pipe, "tokenizer_2"));
    cpSync(join(pipe, "text_encoder_2", "tokenizer.json"), join(pipe, "tokenizer_2", "tokenizer.json"));
    rmSync(join(pipe, "text_encoder_2", "tokenizer.json"));
    expect(tokenizerDirFor(join(pipe, "text_encoder_2"), "clip_g")).toBe(join(pipe, "tokenizer_2"));
    expect(tokenizerDirFor(enc.clipL, "clip_l")).toBe(enc.clipL);
    const p = new PretrainedPromptEncoder("tiny", text, { ...folders(), clipG: join(pipe, "text_encoder_2"), cacheDir: null });
    const [ctx, pooled] = p.encode(["3"]);
    expect(ctx.shape).toEqual([1, 85, 64]);
    tf.dispose([ctx, pooled]);
    p.dispose();
  });
});

describe("folder options", () => {
  it("--text-encoders parses, and wins over SDC_CLIP_L / SDC_CLIP_G / SDC_T5", () => {
    expect(parseTextEncodersArg("clip_l=a,clip_g=b,t5=none,cache=off")).toEqual({ clipL: "a", clipG: "b", t5: null, cacheDir: null, origins: { clip_l: "--text-encoders", clip_g: "--text-encoders", t5: "--text-encoders" } });
    expect(() => parseTextEncodersArg("clip_x=a")).toThrow("unknown key 'clip_x'");
    expect(() => parseTextEncodersArg("clip_l")).toThrow("'clip_l' is not KEY=VALUE");
    expect(() => parseTextEncodersArg("clip_l=a,clip_l=b")).toThrow("clip_l is given twice");
    const o = textEncoderOverrides("clip_l=flag", { SDC_CLIP_L: "env-l", SDC_T5: "env-t5" });
    expect(o).toMatchObject({ clipL: "flag", t5: "env-t5", origins: { clip_l: "--text-encoders", t5: "SDC_T5" } });
    expect(o.clipG).toBeUndefined();
    expect(defaultTextCacheDir({}, "/home/u")).toBe("/home/u/.cache/sdc/text");
    expect(defaultTextCacheDir({ XDG_CACHE_HOME: "/x" }, "/home/u")).toBe("/x/sdc/text");
    expect(defaultTextCacheDir({ SDC_CACHE_DIR: "/c", XDG_CACHE_HOME: "/x" }, "/home/u")).toBe("/c/text");
  });
});

describe("sdc train with pretrained encoders", () => {
  const cacheDir = () => join(root, "cache");
  const logs: string[] = [];

  it("trains on the CPU, checkpoints only the network, and fills the embedding cache", async () => {
    const out = join(root, "run1");
    const code = await runTrain(gen, { backend: "cpu", steps: 6, batch: 8, samples: 4, sampleSteps: 2, out, progress: false, textEncoders: `${enc.arg},cache=${cacheDir()}`, log: (s) => logs.push(s) });
    expect(code).toBe(0);
    expect(readFileSync(join(out, "checkpoints", "latest"), "utf8").trim()).toBe("step-000006");
    const ck = readCheckpoint(join(out, "checkpoints", "step-000006"));
    expect(ck.text.size).toBe(0);
    expect(ck.network.size).toBeGreaterThan(0);
    expect(ck.state.words).toEqual([]);
    expect(existsSync(join(out, "samples", "step-000006.png"))).toBe(true);
    const summary = JSON.parse(readFileSync(join(out, "summary.json"), "utf8"));
    expect(Number.isFinite(summary.lastLoss)).toBe(true);
    const s = summary.textEmbeddings;
    // MNIST prompts: 20 words + the empty (dropped) prompt; each is computed once, then every lookup hits
    expect(s.misses).toBeLessThanOrEqual(21);
    expect(s.hits).toBeGreaterThan(0);
    expect(s.diskHits).toBe(0);
    expect(s.loaded).toBe(true);
    expect(readdirSync(cacheDir()).filter((f) => f.endsWith(".safetensors")).length).toBe(s.misses);
    expect(logs.join("\n")).toMatch(new RegExp(`text embeddings: ${s.misses} computed, [\\d,]+ from cache`));
    expect(logs.join("\n")).toContain("text encoders (frozen): clip_l");
  });

  it("a later run reads every embedding from disk and never loads the encoders", () => {
    const before = tf.memory().numTensors;
    const p = new PretrainedPromptEncoder("tiny", text, { ...folders(), cacheDir: cacheDir() });
    const prompts = ["", ...Array.from({ length: 10 }, (_, d) => String(d)), "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];
    const seen = JSON.parse(readFileSync(join(root, "run1", "summary.json"), "utf8")).textEmbeddings.misses as number;
    const [c, q] = p.encode(prompts);
    tf.dispose([c, q]);
    // the prompts run 1 met come from disk; any it did not meet are computed now
    expect(p.stats.diskHits).toBe(seen);
    expect(p.stats.misses).toBe(21 - seen);
    expect(p.stats.loaded).toBe(21 - seen > 0);
    if (seen === 21) expect(p.summary()).toContain("encoders not loaded (every prompt was cached)");
    p.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it("measures the time the cache saves on MNIST-like prompt batches", () => {
    // 8 batches of 8 prompts as training draws them (numeral or word, 20% dropped to "")
    const rng = new Rng(5);
    const batches = Array.from({ length: 8 }, () => Array.from({ length: 8 }, () => (rng.uniform() < 0.2 ? "" : digitPrompt(rng.int(10), rng))));
    const l = loadHfTextEncoder(enc.clipL) as LoadedClip;
    const g = loadHfTextEncoder(enc.clipG) as LoadedClip;
    const t = loadHfTextEncoder(enc.t5) as LoadedT5;
    const cond = new Sd3TextConditioner({ clipL: { model: l.model, tokenizer: l.tokenizer }, clipG: { model: g.model, tokenizer: g.tokenizer }, t5: { model: t.model, tokenizer: t.tokenizer } }, { clipLength: 77, t5Length: 8 });
    let t0 = performance.now();
    for (const b of batches) {
      const r = cond.encode(b);
      r.context.dataSync();
      tf.dispose([r.context, r.pooled]);
    }
    const uncached = performance.now() - t0;
    const p = new PretrainedPromptEncoder("tiny", text, { ...folders(), cacheDir: null });
    t0 = performance.now();
    for (const b of batches) {
      const [c, q] = p.encode(b);
      c.dataSync();
      tf.dispose([c, q]);
    }
    const cached = performance.now() - t0;
    const st = p.stats;
    console.log(
      `[cache saving] backend ${tf.getBackend()}: ${batches.length} batches x 8 prompts: uncached ${uncached.toFixed(0)} ms, cached ${cached.toFixed(0)} ms ` +
        `(${st.misses} computed in ${(st.encodeSeconds * 1000).toFixed(0)} ms, ${st.hits} hits); ${(uncached / cached).toFixed(1)}x`,
    );
    expect(st.misses).toBeLessThanOrEqual(21);
    expect(cached).toBeLessThan(uncached);
    for (const x of [l, g, t]) x.model.dispose();
    p.dispose();
  });

  it("without the folders, `sdc train` stops with exit 1 and a plain message (no stack trace)", () => {
    const env = { ...process.env, SDC_CLIP_L: "", SDC_CLIP_G: "", SDC_T5: "" };
    const r = spawnSync(process.execPath, ["bin/sdc.mjs", "train", gen, "--backend", "cpu", "--steps", "1", "--no-progress", "--out", join(root, "run-missing")], { encoding: "utf8", env });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`error: cannot load the pretrained text encoders of sd3-tiny-pretrained:`);
    expect(r.stderr).toContain("clip_l folder 'models/tiny/clip_l' (from the spec) does not exist");
    expect(r.stderr).toContain("--text-encoders clip_l=DIR,clip_g=DIR,t5=DIR");
    expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
    const bad = spawnSync(process.execPath, ["bin/sdc.mjs", "train", gen, "--backend", "cpu", "--steps", "1", "--text-encoders", "clip_x=1"], { encoding: "utf8", env });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("--text-encoders: unknown key 'clip_x'");
  });
});
