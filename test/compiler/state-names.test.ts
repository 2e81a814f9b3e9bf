/**
 * State-dict suffix control: `weight_name:` / `bias_name:` on any primitive with parameters
 * rename its "weight" / "bias" (BFL's Flux names an RMSNorm weight `scale`). Checked with
 * positioned errors; the names reach ir.json, the generated code and the layers, which create,
 * save and load their parameters under them.
 */
import * as tf from "@tensorflow/tfjs";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readSafetensors, writeSafetensors } from "../../runtime/io/safetensors.ts";
import { ArgumentError, Conv2d, Embedding, LayerNorm, Linear, PatchConv, RmsNorm } from "../../runtime/nn/layers.ts";
import { ParamStore } from "../../runtime/nn/params.ts";
import { blockB, compileSource, type Expected, expectError, lines, net, spec, ROOT } from "./helpers.ts";
import { typeCheck } from "./hostile.ts";

interface Case extends Expected {
  name: string;
  src: string;
}

// blockB's body is line 3; `    return ` is 11 columns, so the call starts at column 12
const body = (call: string) => lines(blockB(`    return ${call}`), net(), spec());

const cases: Case[] = [
  {
    name: "a name that is not a string",
    src: body("rms_norm(x, weight_name: 3) as n"),
    code: "SDC401", line: 3, col: 37, msg: "rms_norm: argument 'weight_name' must be a string (a state-dict name such as \"scale\"), got int 3",
  },
  {
    name: "an empty name",
    src: body('rms_norm(x, weight_name: "") as n'),
    code: "SDC407", line: 3, col: 37, msg: 'rms_norm: weight_name must be a state-dict name: identifiers or integers joined by dots (e.g. "scale"), got ""',
  },
  {
    name: "a name with an empty part",
    src: body('linear(x, width, bias_name: "a..b") as l'),
    code: "SDC407", line: 3, col: 40, msg: 'linear: bias_name must be a state-dict name: identifiers or integers joined by dots (e.g. "scale"), got "a..b"',
  },
  {
    name: "a name with a space",
    src: body('layer_norm(x, weight_name: "my weight") as l'),
    code: "SDC407", line: 3, col: 39, msg: 'got "my weight"',
  },
  {
    name: "a part that is neither an identifier nor an integer",
    src: body('linear(x, width, weight_name: "net.1x") as l'),
    code: "SDC407", line: 3, col: 42, msg: 'got "net.1x"',
  },
  {
    name: "renaming a bias the call does not have",
    src: body('linear(x, width, bias: false, bias_name: "b") as l'),
    code: "SDC407", line: 3, col: 42, msg: "linear(...) here has no parameter named 'bias' to rename (its parameters: weight)",
  },
  {
    name: "renaming the weight of a primitive whose parameter is the call's name itself",
    src: body('x + parameter([N, width], weight_name: "w") as p'),
    code: "SDC407", line: 3, col: 38, msg: "parameter(...) here has no parameter named 'weight' to rename (its parameters: the call's name itself)",
  },
  {
    name: "renaming the weight onto the bias's name",
    src: body('linear(x, width, weight_name: "bias") as l'),
    code: "SDC307", line: 3, col: 42, msg: 'linear: "bias" would name two of its parameters',
  },
  {
    name: "a primitive without parameters takes no name",
    src: body('silu(x, weight_name: "w")'),
    code: "SDC403", line: 3, col: 20, msg: "silu has no argument 'weight_name'",
  },
  {
    name: "a misspelt rename is suggested",
    src: body('rms_norm(x, weight_nme: "scale") as n'),
    code: "SDC403", line: 3, col: 24, msg: "rms_norm has no argument 'weight_nme' (did you mean 'weight_name'?)",
  },
];

describe("weight_name / bias_name: positioned errors", () => {
  it.each(cases.map((c) => [c.name, c] as const))("%s", (_, c) => {
    expectError(compileSource(c.src), c);
  });
});

// a network whose named calls rename their parameters; every value reaches the output
const NET = lines(
  "block net(ch: int, ctx: int) {",
  "  forward(x: [B, H, W, ch], t: [B], c: [B, T, ctx], p: [B, P]) -> [B, H, W, ch] {",
  '    q = linear(c, 8, weight_name: "w.0", bias_name: "b") as attn.to_q',
  '    q = rms_norm(q, eps: 1e-6, heads: 2, weight_name: "scale") as norm.query_norm',
  '    e = layer_norm(q, weight_name: "gamma", bias_name: "beta") as ln',
  '    h = conv2d(x, ch, 3, padding: 1, weight_name: "kernel") as conv',
  "    return h + unsqueeze(unsqueeze(unsqueeze(t + mean(mean(e, axis: 2), axis: 1) + mean(p, axis: 1), 1), 2), 3)",
  "  }",
  "}",
);
const WANT = ["attn.to_q.w.0", "attn.to_q.b", "norm.query_norm.scale", "ln.gamma", "ln.beta", "conv.kernel", "conv.bias"];

describe("renamed parameters end to end", () => {
  const r = compileSource(lines(NET, spec()));
  const tmp = mkdtempSync(join(tmpdir(), "sdc-names-"));
  beforeAll(async () => {
    await tf.setBackend("cpu");
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it("compiles, with the renamed names (and shapes) in ir.json", () => {
    expect(r.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
    const ir = JSON.parse(Object.fromEntries(r.files!)["ir.json"]) as { parameters: { name: string; shape: number[] }[] };
    const net = ir.parameters.filter((p) => !p.name.startsWith("text_encoder"));
    expect(net.map((p) => p.name)).toEqual(WANT);
    expect(net.find((p) => p.name === "norm.query_norm.scale")!.shape).toEqual([4]);
    expect(net.find((p) => p.name === "conv.kernel")!.shape).toEqual([1, 1, 3, 3]);
  });

  it("generates code that passes tsc --strict and passes the names to the layers", () => {
    const model = Object.fromEntries(r.files!)["model.ts"];
    expect(model).toContain('weightName: "scale"');
    expect(model).toContain('weightName: "w.0", biasName: "b"');
    expect(typeCheck(ROOT, new Map([["names", r.files!]]))).toEqual([]);
  });

  it("builds the network with exactly those names, and saves and loads by them", async () => {
    const dir = join(tmp, "pkg");
    mkdirSync(dir);
    for (const [p, c] of r.files!) writeFileSync(join(dir, p), c);
    const mod = (await import(pathToFileURL(join(dir, "index.ts")).href)) as { spec: { createNetwork(s: ParamStore): { forward(...xs: tf.Tensor[]): tf.Tensor } } };
    const store = new ParamStore(1);
    const netw = mod.spec.createNetwork(store);
    expect([...store.vars.keys()]).toEqual(WANT);
    const xs = [tf.randomNormal([2, 4, 4, 1], 0, 1, "float32", 3), tf.ones([2]), tf.randomNormal([2, 5, 24], 0, 1, "float32", 4), tf.ones([2, 20])];
    const a = netw.forward(...xs);
    const bytes = writeSafetensors(await store.snapshot());
    store.dispose();
    const file = readSafetensors(bytes);
    expect([...file.tensors.keys()].sort()).toEqual([...WANT].sort());
    // a second model (another seed) loads them strictly (every name present, none unknown), to the same forward
    const other = new ParamStore(2);
    const net2 = mod.spec.createNetwork(other);
    other.load(file.tensors, { strict: true });
    const b = net2.forward(...xs);
    expect(Math.max(...(tf.abs(tf.sub(a, b)).dataSync() as Float32Array))).toBeLessThan(1e-6);
    // the default names are refused by that model
    expect(() => other.load(new Map([["norm.query_norm.weight", { shape: [4], data: new Float32Array(4) }]]), { strict: true })).toThrow(/unexpected 1 \(norm.query_norm.weight\)/);
    tf.dispose([...xs, a, b]);
    other.dispose();
  });
});

describe("the layers create their parameters under the given names", () => {
  it.each<[string, (s: ParamStore) => unknown, string[]]>([
    ["Linear", (s) => new Linear(s, "l", { inFeatures: 2, outFeatures: 3, weightName: "w", biasName: "b.0" }), ["l.w", "l.b.0"]],
    ["LayerNorm", (s) => new LayerNorm(s, "n", { dim: 4, weightName: "scale" }), ["n.scale", "n.bias"]],
    ["RmsNorm", (s) => new RmsNorm(s, "q", { dim: 4, weightName: "scale" }), ["q.scale"]],
    ["PatchConv", (s) => new PatchConv(s, "p", { channels: 1, outFeatures: 2, patch: 2, biasName: "b" }), ["p.weight", "p.b"]],
    ["Conv2d", (s) => new Conv2d(s, "c", { channels: 1, outFeatures: 2, kernel: 3, weightName: "k" }), ["c.k", "c.bias"]],
    ["Embedding", (s) => new Embedding(s, "e", { vocab: 5, width: 2, weightName: "table" }), ["e.table"]],
    ["Linear, default names", (s) => new Linear(s, "l", { inFeatures: 2, outFeatures: 3 }), ["l.weight", "l.bias"]],
  ])("%s", (_, make, names) => {
    const s = new ParamStore(0);
    make(s);
    expect([...s.vars.keys()]).toEqual(names);
    s.dispose();
  });

  it("refuses a bad name with the argument and its value", () => {
    const s = new ParamStore(0);
    expect(() => new RmsNorm(s, "q", { dim: 4, weightName: "a b" })).toThrow(ArgumentError);
    expect(() => new RmsNorm(s, "q", { dim: 4, weightName: "" })).toThrow(/RmsNorm: argument 'weightName' must be a state-dict name .*got ""/);
    s.dispose();
  });
});
