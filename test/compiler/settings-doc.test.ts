/**
 * docs/settings.md is generated from the compiler's tables (compiler/settings-doc.ts): it must
 * be what the generator writes now, list every setting, and its defaults must be the ones the
 * compiler really uses when a spec leaves a setting out.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { settingsMarkdown } from "../../compiler/settings-doc.ts";
import { SECTIONS } from "../../compiler/spec.ts";
import { compileSource, lines, net } from "./helpers.ts";

const doc = settingsMarkdown();
const row = (name: string) => doc.split("\n").find((l) => l.startsWith(`| \`${name}\` |`))?.split(" | ");

describe("docs/settings.md", () => {
  it("is up to date (regenerate: npx tsx scripts/gen-settings-doc.ts)", () => {
    expect(readFileSync("docs/settings.md", "utf8")).toBe(doc);
  });

  it("lists every setting of the data, text, flow, train and task sections", () => {
    for (const section of ["data", "text", "flow", "train", "task"]) for (const key of Object.keys(SECTIONS[section])) expect(row(`${section}.${key}`), `${section}.${key}`).toBeDefined();
  });

  it("states the defaults the compiler uses for a spec that sets nothing", () => {
    // a learned text encoder that sets no text settings; no flow or train section
    const src = lines(
      net(),
      "block enc(vocab: int, tokens: int) {",
      "  forward(ids: int32[B, tokens]) -> ([B, tokens, 24], [B, 20]) {",
      "    e = embedding(ids, vocab, 24) as emb",
      "    return e, linear(mean(e, 1), 20) as proj",
      "  }",
      "}",
      "spec s {",
      "  text { encoder: enc(vocab: 32, tokens: 8) }",
      "  network: net(ch: 1, ctx: 24)",
      "}",
    );
    const r = compileSource(src);
    expect(r.diagnostics.map((d) => d.message)).toEqual([]);
    const ir = r.ir!;
    const documented = (name: string) => row(name)![2];
    expect(documented("data.source")).toBe(ir.data.source);
    expect(documented("data.image")).toBe(`[${ir.data.height}, ${ir.data.width}, ${ir.data.channels}]`);
    expect(documented("data.prompts")).toContain(ir.data.prompts);
    expect(Number(documented("text.tokens"))).toBe((ir.text as { tokens: number }).tokens);
    expect(Number(documented("text.vocab"))).toBe((ir.text as { vocab: number }).vocab);
    const flow = ir.flow as unknown as Record<string, unknown>;
    for (const [k, v] of Object.entries({ path: flow.path, noise_at: flow.noiseAt, cfg_drop: flow.cfgDrop, sampler: flow.sampler, steps: flow.steps, shift: flow.shift, guidance: flow.guidance, weighting: flow.weighting })) expect(documented(`flow.${k}`), k).toBe(String(v));
    const t = ir.train as unknown as Record<string, unknown>;
    for (const [k, v] of Object.entries({ clip: t.clip, batch: t.batch, steps: t.steps, ema: t.ema, sample_every: t.sampleEvery, checkpoint_every: t.checkpointEvery, log_every: t.logEvery, samples: t.samples, seed: t.seed, warmup: t.warmup })) expect(documented(`train.${k}`), k).toBe(String(v));
    expect(documented("train.optimizer")).toContain(`lr: ${ir.train.optimizer.lr}`);
    expect(ir.task.kind).toBe(documented("task.kind"));
  });
});
