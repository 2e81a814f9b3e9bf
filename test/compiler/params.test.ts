/**
 * Parameter counts and state-dict names, derived by hand from the layer list of each network
 * (not from the compiler), then compared with what the compiler proves.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { compile, summaryTable } from "../../compiler/index.ts";
import { fsHost } from "../../cli/host.ts";
import { compileSource, lines, net, spec } from "./helpers.ts";
import { runCompile } from "../../cli/commands/compile.ts";

type Entry = [name: string, shape: number[]];

const linear = (name: string, inF: number, outF: number): Entry[] => [
  [`${name}.weight`, [outF, inF]],
  [`${name}.bias`, [outF]],
];
const count = (es: Entry[]) => es.reduce((s, [, shape]) => s + shape.reduce((a, b) => a * b, 1), 0);
const sorted = (es: Entry[]) => [...es].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));

/**
 * The reference SD3 MMDiT's trainable parameters, layer by layer (PyTorch names and shapes).
 * `width` = heads * head_dim; the last block is pre-only: its context norm is a continuous adaLN
 * (Linear(width -> 2 * width)), and it has no attn.to_add_out and no ff_context.
 */
function mmditLayers(c: { heads: number; headDim: number; depth: number; mlp: number; patch: number; channels: number; context: number; pooled: number; freq: number }): Entry[] {
  const w = c.heads * c.headDim;
  const out: Entry[] = [
    ["pos_embed.proj.weight", [w, c.channels, c.patch, c.patch]],
    ["pos_embed.proj.bias", [w]],
    // pos_embed.pos_embed is a fixed buffer: not a parameter
    ...linear("time_text_embed.timestep_embedder.linear_1", c.freq, w),
    ...linear("time_text_embed.timestep_embedder.linear_2", w, w),
    ...linear("time_text_embed.text_embedder.linear_1", c.pooled, w),
    ...linear("time_text_embed.text_embedder.linear_2", w, w),
    ...linear("context_embedder", c.context, w),
  ];
  for (let i = 0; i < c.depth; i++) {
    const b = `transformer_blocks.${i}`;
    const preOnly = i === c.depth - 1;
    out.push(...linear(`${b}.norm1.linear`, w, 6 * w)); // adaLN-zero: shift, scale, gate x 2
    out.push(...linear(`${b}.norm1_context.linear`, w, preOnly ? 2 * w : 6 * w));
    for (const p of ["to_q", "to_k", "to_v", "add_q_proj", "add_k_proj", "add_v_proj", "to_out.0"]) out.push(...linear(`${b}.attn.${p}`, w, w));
    if (!preOnly) out.push(...linear(`${b}.attn.to_add_out`, w, w));
    out.push(...linear(`${b}.ff.net.0.proj`, w, c.mlp * w), ...linear(`${b}.ff.net.2`, c.mlp * w, w));
    if (!preOnly) out.push(...linear(`${b}.ff_context.net.0.proj`, w, c.mlp * w), ...linear(`${b}.ff_context.net.2`, c.mlp * w, w));
  }
  out.push(...linear("norm_out.linear", w, 2 * w));
  out.push(...linear("proj_out", w, c.patch * c.patch * c.channels));
  return out;
}

/** sdc's learned text encoder (specs/lib/text.mdl), layer by layer. */
function textEncoderLayers(c: { vocab: number; tokens: number; width: number; depth: number; mlp: number }): Entry[] {
  const w = c.width;
  const ln = (name: string): Entry[] => [[`${name}.weight`, [w]], [`${name}.bias`, [w]]];
  const out: Entry[] = [
    ["text_encoder.token_embedding.weight", [c.vocab, w]],
    ["text_encoder.position_embedding", [c.tokens, w]],
  ];
  for (let i = 0; i < c.depth; i++) {
    const l = `text_encoder.layers.${i}`;
    out.push(...ln(`${l}.norm1`));
    for (const p of ["q", "k", "v", "out"]) out.push(...linear(`${l}.${p}`, w, w));
    out.push(...ln(`${l}.norm2`), ...linear(`${l}.fc1`, w, c.mlp * w), ...linear(`${l}.fc2`, c.mlp * w, w));
  }
  out.push(...ln("text_encoder.final_norm"));
  return out;
}

const SEED = { heads: 6, headDim: 64, depth: 12, mlp: 4, patch: 8, channels: 1, context: 2048, pooled: 2048, freq: 256 };

describe("the reference network (specs/sd3-seed.mdl)", () => {
  const r = compile("specs/sd3-seed.mdl", fsHost, {});
  const expected = mmditLayers(SEED);

  it("compiles", () => {
    expect(r.diagnostics).toEqual([]);
    expect(r.ir).toBeDefined();
  });

  it("has the hand-derived parameter count: 64,231,744", () => {
    // spelled out per module, width 384:
    //   patch conv 384*1*8*8 + 384                                   =     24,960
    //   timestep embedder (256*384+384) + (384*384+384)              =    246,528
    //   text embedder (2048*384+384) + (384*384+384)                 =    934,656
    //   context embedder 2048*384+384                                =    786,816
    //   11 full blocks x (2 x 887,040 adaLN-zero + 8 x 147,840 attn + 2 x 1,181,568 MLP = 5,319,936)
    //                                                                = 58,519,296
    //   last block 887,040 + 295,680 (continuous adaLN) + 7 x 147,840 + 1,181,568
    //                                                                =  3,399,168
    //   norm_out 384*768+768 + proj_out 384*64+64                    =    320,320
    expect(count(expected)).toBe(64_231_744);
    expect(r.ir!.stats.networkParams).toBe(count(expected));
    expect(r.ir!.stats.textParams).toBe(0);
    expect(r.ir!.stats.params).toBe(64_231_744);
  });

  it("has exactly the hand-derived state-dict names and shapes", () => {
    const mine = r.ir!.parameters.filter((p) => !p.buffer).map((p): Entry => [p.name, p.shape]);
    expect(sorted(mine)).toEqual(sorted(expected));
    for (const p of r.ir!.parameters) expect(p.count).toBe(p.shape.reduce((a, b) => a * b, 1));
  });

  it("keeps the position table as a buffer that is not counted", () => {
    const buffers = r.ir!.parameters.filter((p) => p.buffer);
    expect(buffers.map((p) => [p.name, p.shape])).toEqual([["pos_embed.pos_embed", [1, 16, 384]]]);
    expect(r.ir!.stats.buffers).toBe(16 * 384);
  });

  it("module totals add up per block (11 full blocks, 1 pre-only)", () => {
    const root = r.ir!.modules[0];
    expect(root.params).toBe(64_231_744);
    const blocks = root.children.filter((m) => m.path.startsWith("transformer_blocks."));
    expect(blocks).toHaveLength(12);
    expect(blocks.slice(0, 11).every((b) => b.params === 5_319_936)).toBe(true);
    expect(blocks[11].params).toBe(3_399_168);
    expect(root.children.reduce((s, m) => s + m.params, 0)).toBe(root.params);
  });
});

describe("the product spec (specs/sd3.mdl, learned text encoder)", () => {
  it("network and text encoder counts match their layer lists", () => {
    const r = compile("specs/sd3.mdl", fsHost, {});
    expect(r.diagnostics).toEqual([]);
    const net = mmditLayers({ ...SEED, context: 256, pooled: 256 });
    const text = textEncoderLayers({ vocab: 32, tokens: 8, width: 256, depth: 2, mlp: 4 });
    expect(r.ir!.stats.networkParams).toBe(count(net)); // 62,855,488
    expect(r.ir!.stats.textParams).toBe(count(text)); // 1,590,272
    expect(r.ir!.stats.params).toBe(64_445_760);
    const mine = r.ir!.parameters.filter((p) => !p.buffer).map((p): Entry => [p.name, p.shape]);
    expect(sorted(mine)).toEqual(sorted([...net, ...text]));
  });

  it("variants change the counts as their layer lists say", () => {
    const r = compile("specs/sd3.mdl", fsHost, { variant: "tiny" });
    expect(r.diagnostics).toEqual([]);
    const net = mmditLayers({ ...SEED, heads: 2, headDim: 32, depth: 2, context: 64, pooled: 64 });
    const text = textEncoderLayers({ vocab: 32, tokens: 8, width: 64, depth: 1, mlp: 4 });
    expect(r.ir!.stats.networkParams).toBe(count(net));
    expect(r.ir!.stats.textParams).toBe(count(text));
    expect(r.ir!.spec.name).toBe("sd3-tiny");
  });

  it("a variant sets settings as `section.key = value`; --set, applied after, wins", () => {
    const src = lines(net(), spec(undefined, ["  param lr = 1e-3", "  train { optimizer: adam(lr: lr), warmup: 10 }", "  variant fast { lr = 2e-3, train.lr_schedule = cosine, train.warmup = 200, flow.shift = 3 }"]));
    const base = compileSource(src);
    expect(base.diagnostics).toEqual([]);
    expect([base.ir!.train.warmup, base.ir!.train.lrSchedule, base.ir!.flow.shift]).toEqual([10, undefined, 1]);
    const fast = compileSource(src, { variant: "fast" });
    expect(fast.diagnostics).toEqual([]);
    expect([fast.ir!.train.optimizer.lr, fast.ir!.train.warmup, fast.ir!.train.lrSchedule, fast.ir!.flow.shift]).toEqual([2e-3, 200, "cosine", 3]);
    const set = compileSource(src, { variant: "fast", sets: ["train.warmup=50"] });
    expect([set.ir!.train.warmup, set.ir!.train.lrSchedule]).toEqual([50, "cosine"]);
  });
});

describe("the reference fixtures", () => {
  const reference = JSON.parse(readFileSync("test/fixtures/mmdit-fixtures/reference.json", "utf8")) as Record<string, { params: number; state_dict: Record<string, number[]> }>;

  it.each([
    ["mmdit-tiny-a", 80_128],
    ["mmdit-tiny-b", 68_160],
  ])("%s gives exactly the reference state dict and %i parameters", (name, params) => {
    const ref = reference[name];
    expect(ref.params).toBe(params);
    const r = compile(`test/specs/${name}.mdl`, fsHost, {});
    expect(r.diagnostics).toEqual([]);
    const mine = Object.fromEntries(r.ir!.parameters.map((p) => [p.name, p.shape]));
    // same names (buffers included: pos_embed.pos_embed is in the state dict), same shapes
    expect(Object.keys(mine).sort()).toEqual(Object.keys(ref.state_dict).sort());
    expect(mine).toEqual(ref.state_dict);
    expect(r.ir!.stats.networkParams).toBe(params);
    // and the reference's count excludes the buffer, as ours does
    const all = Object.entries(ref.state_dict).filter(([n]) => n !== "pos_embed.pos_embed").reduce((s, [, shape]) => s + shape.reduce((a, b) => a * b, 1), 0);
    expect(all).toBe(params);
  });

  it("tiny-a matches its hand-derived layer list too", () => {
    const r = compile("test/specs/mmdit-tiny-a.mdl", fsHost, {});
    const expected = mmditLayers({ heads: 2, headDim: 16, depth: 2, mlp: 4, patch: 8, channels: 1, context: 24, pooled: 20, freq: 256 });
    expect(count(expected)).toBe(80_128);
    expect(sorted(r.ir!.parameters.filter((p) => !p.buffer).map((p): Entry => [p.name, p.shape]))).toEqual(sorted(expected));
  });
});

describe("the compile summary", () => {
  const tmp = mkdtempSync(join(tmpdir(), "sdc-params-"));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  const capture = () => {
    let text = "";
    return { stream: { write: (s: string) => ((text += s), true), isTTY: false } as unknown as NodeJS.WriteStream, text: () => text };
  };

  it("--json gives the stats, modules and every parameter", () => {
    const out = capture();
    const err = capture();
    const code = runCompile("specs/sd3-seed.mdl", { outDir: tmp, json: true }, out.stream, err.stream);
    expect(err.text()).toBe("");
    expect(code).toBe(0);
    const j = JSON.parse(out.text()) as { ok: boolean; out: string; stats: { networkParams: number; params: number; buffers: number }; parameters: { name: string; count: number; buffer: boolean }[] };
    expect(j.ok).toBe(true);
    expect(j.out).toBe(join(tmp, "sd3-seed"));
    expect(j.stats.networkParams).toBe(64_231_744);
    expect(j.stats.buffers).toBe(6144);
    expect(j.parameters.filter((p) => !p.buffer).reduce((s, p) => s + p.count, 0)).toBe(64_231_744);
    expect(readFileSync(join(tmp, "sd3-seed", "ir.json"), "utf8")).toContain('"networkParams": 64231744');
  });

  it("the table collapses the 11 identical blocks and prints the totals", () => {
    const r = compile("specs/sd3-seed.mdl", fsHost, {});
    const table = summaryTable(r.ir!);
    expect(table).toMatch(/transformer_blocks\.0\.\.10\s+mmdit_block x11\s+58,519,296\s+5,319,936 each/);
    expect(table).toMatch(/transformer_blocks\.11\s+mmdit_block\s+3,399,168/);
    expect(table).toContain("total parameters: 64,231,744 (64.23M): network 64,231,744, text encoder 0; fixed buffers 6,144");
  });

  it("a failed compile reports its diagnostics and writes nothing", () => {
    const out = capture();
    const err = capture();
    // an unknown variant is a spec error: exit 1, no folder
    const code = runCompile("specs/sd3-seed.mdl", { outDir: tmp, variant: "nope" }, out.stream, err.stream);
    expect(code).toBe(1);
    expect(err.text()).toMatch(/specs\/sd3-seed\.mdl:\d+:\d+: error SDC306: spec sd3_seed has no variant 'nope'/);
    expect(err.text()).toContain("nothing written");
    expect(out.text()).toBe("");
  });
});
