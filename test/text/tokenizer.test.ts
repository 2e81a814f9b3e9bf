import { describe, expect, it } from "vitest";
import { TokenizerError, clipTokenizerJsonFromVocabMerges, loadTokenizerJson } from "../../runtime/text/pretrained/tokenizer.ts";
import { fixtureJson, reference } from "./helpers.ts";

const probes = reference()["tokenizer-probes"];

describe("tokenizer.json: fixture probes (exact ids)", () => {
  for (const name of ["bpe-tiny", "unigram-tiny"] as const) {
    const tok = loadTokenizerJson(fixtureJson(`${name}.tokenizer.json`), name);
    it(`${name} has probes to check`, () => {
      expect(Object.keys(probes[name]).length).toBeGreaterThanOrEqual(7);
      expect(Object.keys(probes[name])).toContain("");
      expect(Object.keys(probes[name])).toContain("\u00e9clair 42");
    });
    for (const [text, ids] of Object.entries(probes[name])) {
      it(`${name} ${JSON.stringify(text)}`, () => {
        expect(tok.encode(text)).toEqual(ids);
      });
    }
  }

  it("byte-level BPE decodes back to the text", () => {
    const tok = loadTokenizerJson(fixtureJson("bpe-tiny.tokenizer.json"), "bpe-tiny");
    for (const text of Object.keys(probes["bpe-tiny"])) expect(tok.decode(tok.encode(text))).toBe(text);
  });
});

describe("tokenizer: arbitrary input never crashes", () => {
  const inputs = ["\u0000\u0001\t\n\r", "🙂🚀 emoji", "日本語のテキスト", "ﬁ ligature Ⅻ", " ".repeat(40), "a".repeat(500), "\ud800 lone surrogate", "<|endoftext|>seven<pad></s>"];
  for (const name of ["bpe-tiny", "unigram-tiny"] as const) {
    const tok = loadTokenizerJson(fixtureJson(`${name}.tokenizer.json`), name);
    it(name, () => {
      for (const text of inputs) {
        const ids = tok.encode(text);
        expect(ids.every((id) => Number.isInteger(id) && id >= 0 && id < 400)).toBe(true);
      }
    });
  }

  it("special added tokens in the text map to their ids", () => {
    const tok = loadTokenizerJson(fixtureJson("bpe-tiny.tokenizer.json"), "bpe-tiny");
    expect(tok.encode("seven<|endoftext|>seven")).toEqual([297, 0, 297]);
  });
});

describe("tokenizer: post-processing, padding, truncation", () => {
  const t5Json = {
    ...(fixtureJson("unigram-tiny.tokenizer.json") as object),
    post_processor: {
      type: "TemplateProcessing",
      single: [{ Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "</s>", type_id: 0 } }],
      pair: [],
      special_tokens: { "</s>": { id: "</s>", ids: [1], tokens: ["</s>"] } },
    },
  };
  const t5 = loadTokenizerJson(t5Json, "t5-like");

  it("TemplateProcessing appends </s>", () => {
    expect(t5.encode("seven")).toEqual([9, 1]);
    expect(t5.encode("")).toEqual([1]);
  });

  it("encodePadded pads with the pad id and masks padding", () => {
    expect(t5.padId).toBe(0);
    expect(t5.encodePadded("seven", 4)).toEqual({ ids: [9, 1, 0, 0], mask: [1, 1, 0, 0] });
    expect(t5.encodePadded("seven", 4, { padId: 7 }).ids).toEqual([9, 1, 7, 7]);
  });

  it("truncation keeps the special tokens", () => {
    const full = t5.encode("a handwritten nine");
    const { ids, mask } = t5.encodePadded("a handwritten nine", 5);
    expect(ids).toEqual([...full.slice(0, 4), 1]);
    expect(mask).toEqual([1, 1, 1, 1, 1]);
    expect(() => t5.encodePadded("a handwritten nine", 5, { truncate: false })).toThrow(/needs 18 tokens, more than the length 5/);
    expect(() => t5.encodePadded("seven", 0)).toThrow(TokenizerError);
  });

  it("a CLIP-style tokenizer (NFC/lowercase, Split, </w> suffix, RobertaProcessing)", () => {
    const chars = "abcdefghijklmnopqrstuvwxyz.";
    const vocab: Record<string, number> = {};
    let n = 0;
    for (const c of chars) vocab[c] = n++;
    for (const c of chars) vocab[c + "</w>"] = n++;
    for (const t of ["ca", "cat</w>", "<|startoftext|>", "<|endoftext|>"]) vocab[t] = n++;
    const json = clipTokenizerJsonFromVocabMerges(vocab, "#version: 0.2\nc a\nca t</w>\n", "clip-like");
    const tok = loadTokenizerJson(json, "clip-like");
    const [bos, eos] = [vocab["<|startoftext|>"], vocab["<|endoftext|>"]];
    expect(tok.encode("A  CAT.")).toEqual([bos, vocab["a</w>"], vocab["cat</w>"], vocab[".</w>"], eos]);
    expect(tok.encode("")).toEqual([bos, eos]);
    expect(tok.encode("cab")).toEqual([bos, vocab.ca, vocab["b</w>"], eos]);
    // unknown bytes become the unk token (<|endoftext|>, one per byte: fuse_unk is off), never a crash
    expect(tok.encode("a🙂")).toEqual([bos, vocab["a</w>"], eos, eos, eos, eos, eos]);
    expect(tok.decode(tok.encode("A cat.")).trim()).toBe("a cat .");
  });
});

describe("tokenizer: malformed tokenizer.json gives plain errors", () => {
  it("names the unsupported component", () => {
    expect(() => loadTokenizerJson({ model: { type: "WordLevel", vocab: {} } }, "x.json")).toThrow("x.json: model type 'WordLevel' is not supported");
    const bad = { ...(fixtureJson("bpe-tiny.tokenizer.json") as object), normalizer: { type: "Nope" } };
    expect(() => loadTokenizerJson(bad, "y.json")).toThrow("y.json: normalizer: normalizer type 'Nope' is not supported");
    expect(() => loadTokenizerJson(null, "z.json")).toThrow(TokenizerError);
  });
});
