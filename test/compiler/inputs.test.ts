/**
 * The declared network interface: `inputs { NAME: SOURCE }` binds each forward input to what feeds
 * it (image, timestep, context, context_mask, pooled, label), `flow.output: velocity_variance`
 * doubles the returned channels, latent datasets take any channel count. One bad spec per row,
 * with the code, the exact position (found by the text it points at) and a message fragment.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { compileSource, expectError, lines } from "./helpers.ts";

const TEXT_LIB_SRC = readFileSync(new URL("../../specs/lib/text.mdl", import.meta.url), "utf8");

/** A class-conditional network (lines 1-6) reading x, t and y. */
const CNET = lines(
  "block cnet(ch: int, out: int = 1) {",
  "  forward(x: [B, H, W, ch], t: [B], y: int32[B]) -> [B, H, W, out] {",
  "    e = embedding(y, 11, 4) as emb",
  "    return linear(x, out) as proj + unsqueeze(unsqueeze(unsqueeze(t + mean(e, axis: 1), 1), 2), 3)",
  "  }",
  "}",
);

/** A network reading x, t, the context tokens c and their mask m (lines 1-6). */
const MNET = lines(
  "block mnet(ch: int) {",
  "  forward(x: [B, H, W, ch], t: [B], c: [B, T, D], m: [B, T]) -> [B, H, W, ch] {",
  "    s = mean(mean(c, axis: 2) * m, axis: 1)",
  "    return x + unsqueeze(unsqueeze(unsqueeze(t + s, 1), 2), 3)",
  "  }",
  "}",
);

/** A spec (starting on line 7) around `network`, with the given section lines. */
const specOf = (network: string, sections: string[]) => lines("spec s {", ...sections, `  network: ${network}`, "}");

const DATA = "  data { source: mnist  image: [32, 32, 1] }";
const INPUTS = "  inputs { x: image  t: timestep  y: label }";
const TEXT = "  text { encoder: text_encoder(vocab: 32, tokens: 8, width: 16, depth: 1, heads: 2)  tokens: 8  vocab: 32 }";
const TEXT_LIB = 'import "lib/text.mdl"';

interface Row {
  name: string;
  src: string;
  code: string;
  /** the line and the text on it the diagnostic starts at */
  line: number;
  at: string;
  msg: string | RegExp;
}

/** 1-based column of `needle` on line `line` of `src`. */
function col(src: string, line: number, needle: string): number {
  const text = src.split("\n")[line - 1] ?? "";
  const i = text.indexOf(needle);
  if (i < 0) throw new Error(`test bug: '${needle}' is not on line ${line}: ${text}`);
  return i + 1;
}

const rows: Row[] = [
  {
    name: "an unknown source, with did-you-mean",
    src: lines(CNET, specOf("cnet(ch: 1)", [DATA, "  inputs { x: image  t: timestep  y: labels }"])),
    code: "SDC702", line: 9, at: "labels", msg: "inputs.y must be one of image, timestep, context, context_mask, pooled, label, got labels (did you mean 'label'?)",
  },
  {
    name: "a name the forward does not have",
    src: lines(CNET, specOf("cnet(ch: 1)", [DATA, "  inputs { x: image  t: timestep  y: label  cls: label }"])),
    code: "SDC700", line: 9, at: "cls", msg: "network cnet's forward has no input 'cls'; its inputs: x, t, y",
  },
  {
    name: "a forward input left unbound",
    src: lines(CNET, specOf("cnet(ch: 1)", [DATA, "  inputs { x: image  t: timestep }"])),
    code: "SDC703", line: 9, at: "inputs", msg: "inputs binds no source to 'y' of network cnet's forward",
  },
  {
    name: "an input bound twice",
    src: lines(CNET, specOf("cnet(ch: 1)", [DATA, "  inputs { x: image  t: timestep  y: label  y: label }"])),
    code: "SDC301", line: 9, at: "y: label }", msg: "input 'y' is bound twice",
  },
  {
    name: "a label input on data without labels",
    src: lines(CNET, specOf("cnet(ch: 1)", ['  data { source: folder  path: "imgs"  prompts: captions }', INPUTS])),
    code: "SDC702", line: 9, at: "label", msg: "a label input needs labelled data",
  },
  {
    name: "a text encoder no input reads",
    src: lines(CNET, specOf("cnet(ch: 1)", [DATA, "  text { encoder: external(tokens: 5, width: 24, pooled: 20) }", INPUTS])),
    code: "SDC704", line: 9, at: "external", msg: "the text encoder feeds no network input",
  },
  {
    name: "a network ignoring its label",
    src: lines(
      "block cnet(ch: int) {",
      "  forward(x: [B, H, W, ch], t: [B], y: int32[B]) -> [B, H, W, ch] {",
      "    return x + unsqueeze(unsqueeze(unsqueeze(t, 1), 2), 3)",
      "  }",
      "}",
      specOf("cnet(ch: 1)", [DATA, INPUTS]),
    ),
    code: "SDC704", line: 2, at: "y: int32", msg: "network cnet never uses its input 'y' [B], fed by the data's class labels",
  },
  {
    name: "velocity_variance with a network returning the image channels only",
    src: lines(CNET, specOf("cnet(ch: 1)", [DATA, INPUTS, "  flow { output: velocity_variance }"])),
    code: "SDC703", line: 11, at: "cnet", msg: "must return the velocity and the variance channels [B, 32, 32, 2] (flow.output: velocity_variance), but returns [B, 32, 32, 1]",
  },
  {
    name: "a context mask without the learned text encoder",
    src: lines(MNET, specOf("mnet(ch: 1)", [DATA, "  text { encoder: external(tokens: 5, width: 24, pooled: 20) }", "  inputs { x: image  t: timestep  c: context  m: context_mask }"])),
    code: "SDC702", line: 10, at: "context_mask", msg: "context_mask needs the learned text encoder",
  },
  {
    name: "16 channels of MNIST",
    src: lines(CNET, specOf("cnet(ch: 16, out: 16)", ["  data { source: mnist  image: [32, 32, 16] }", INPUTS])),
    code: "SDC702", line: 8, at: "[32, 32, 16]", msg: "mnist images have 1 or 3 channels, got 16 (a latent dataset, data.source: latents, may have any number)",
  },
  {
    name: "a latent dataset without its file",
    src: lines(CNET, specOf("cnet(ch: 16, out: 16)", ["  data { source: latents  image: [8, 8, 16] }", INPUTS])),
    code: "SDC701", line: 7, at: "s {", msg: "data.source latents needs data.path",
  },
  {
    name: "an inputs section in a classifier",
    src: lines(
      "block cls(n: int) {",
      "  forward(x: [B, H, W, C]) -> [B, n] {",
      "    return linear(flatten(x), n) as head",
      "  }",
      "}",
      "spec s {",
      "  task { kind: classifier  classes: 10 }",
      DATA,
      "  inputs { x: image }",
      "  network: cls(n: 10)",
      "}",
    ),
    code: "SDC700", line: 9, at: "inputs", msg: "a classifier spec takes the image only",
  },
];

describe("inputs: each mistake is positioned", () => {
  it.each(rows.map((r) => [r.name, r] as const))("%s", (_, r) => {
    const src = r.src.includes("text_encoder(") ? lines(TEXT_LIB, r.src) : r.src;
    const shift = src === r.src ? 0 : 1;
    expectError(compileSource(src, { files: { "lib/text.mdl": TEXT_LIB_SRC } }), { code: r.code, line: r.line + shift, col: col(src, r.line + shift, r.at), msg: r.msg });
  });
});

describe("inputs: what compiles", () => {
  it("a class-conditional network: the sources in the IR, the label int32 [B], the null class in data.classes", () => {
    const r = compileSource(lines(CNET, specOf("cnet(ch: 1, out: 2)", [DATA, INPUTS, "  flow { output: velocity_variance }"])));
    expect(r.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
    const ir = r.ir!;
    expect(ir.text).toEqual({ kind: "none" });
    expect(ir.data.classes).toBe(10);
    expect(ir.flow.output).toBe("velocity_variance");
    expect(ir.network.inputs).toEqual([
      { name: "x", dtype: "float32", shape: ["B", 32, 32, 1], source: "image" },
      { name: "t", dtype: "float32", shape: ["B"], source: "timestep" },
      { name: "y", dtype: "int32", shape: ["B"], source: "label" },
    ]);
    expect(ir.network.output.shape).toEqual(["B", 32, 32, 2]);
  });

  it("the inputs in any order, bound by name; a mask [B, T] from the learned encoder's tokens", () => {
    const src = lines(TEXT_LIB, MNET, specOf("mnet(ch: 1)", [DATA, TEXT, "  inputs { m: context_mask  c: context  t: timestep  x: image }"]));
    const r = compileSource(src, { files: { "lib/text.mdl": TEXT_LIB_SRC } });
    expect(r.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
    expect(r.ir!.network.inputs.map((i) => [i.name, i.source, i.shape])).toEqual([
      ["x", "image", ["B", 32, 32, 1]],
      ["t", "timestep", ["B"]],
      ["c", "context", ["B", 8, 16]],
      ["m", "context_mask", ["B", 8]],
    ]);
  });

  it("a 16-channel latent dataset", () => {
    const r = compileSource(lines(CNET, specOf("cnet(ch: 16, out: 16)", ['  data { source: latents  path: "lat.safetensors"  image: [8, 8, 16] }', INPUTS])));
    expect(r.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
    expect(r.ir!.data).toMatchObject({ source: "latents", path: "lat.safetensors", channels: 16, prompts: "digits", classes: 10 });
  });

  it("without an inputs section, the forward takes (x, t, context, pooled) by position, as before", () => {
    const src = lines(
      "block n(ch: int) {",
      "  forward(x: [B, H, W, ch], t: [B], c: [B, T, D], p: [B, P]) -> [B, H, W, ch] {",
      "    return x + unsqueeze(unsqueeze(unsqueeze(t + mean(mean(c, axis: 2), axis: 1) + mean(p, axis: 1), 1), 2), 3)",
      "  }",
      "}",
      specOf("n(ch: 1)", [DATA, "  text { encoder: external(tokens: 5, width: 24, pooled: 20) }"]),
    );
    const r = compileSource(src);
    expect(r.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
    expect(r.ir!.network.inputs.map((i) => i.source)).toEqual(["image", "timestep", "context", "pooled"]);
  });
});
