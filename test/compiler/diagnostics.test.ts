/**
 * Every diagnostic a user can meet, one bad input per row: the stable code, the exact 1-based
 * line:column it points at, and a fragment of its message. Sources are small and in memory;
 * positions were counted by hand from the sources below (see the line maps in helpers.ts).
 */
import { describe, expect, it } from "vitest";
import { formatDiagnostic } from "../../compiler/index.ts";
import type { CompileOptions } from "../../compiler/index.ts";
import { MAX_SOURCE_BYTES } from "../../compiler/lexer.ts";
import { blockB, compileSource, type Expected, expectError, lines, net, spec } from "./helpers.ts";

interface Case extends Expected {
  name: string;
  src: string | Uint8Array;
  files?: Record<string, string | Uint8Array>;
  opts?: CompileOptions;
}

const enc = (s: string) => new TextEncoder().encode(s);

/** a network calling `b` on the context [B, 5, 24]; the call is on line 8 when `b` is blockB (5 lines) */
const useB = (call: string) => net(`    y = ${call}`);

// ---------------------------------------------------------------- names, calls and arguments

const names: Case[] = [
  {
    name: "unknown identifier, with did-you-mean for a swapped pair",
    src: lines(blockB("    return linear(x, widht) as l"), net(), spec()),
    code: "SDC300", line: 3, col: 22, msg: "unknown identifier 'widht' (did you mean 'width'?)",
  },
  {
    name: "unknown primitive, with did-you-mean",
    src: lines(blockB("    return linaer(x, width) as l"), net(), spec()),
    code: "SDC304", line: 3, col: 12, msg: "unknown block or primitive 'linaer' (did you mean 'linear'?)",
  },
  {
    name: "unknown network block in the spec",
    src: lines(net(), spec("nte(ch: 1, ctx: 24)")),
    code: "SDC304", line: 10, col: 12, msg: "unknown block 'nte' (did you mean 'net'?)",
  },
  {
    name: "wrong argument count (primitive)",
    src: lines(blockB("    return silu(x, x)"), net(), spec()),
    code: "SDC400", line: 3, col: 20, msg: "silu takes at most 1 argument (x), got 2",
  },
  {
    name: "wrong argument count (block: two tensors for one input)",
    src: lines(blockB("    return x"), useB("b(c, c, width: 24) as blk"), spec()),
    code: "SDC400", line: 8, col: 14, msg: "block b takes 1 tensor argument (x), got 2",
  },
  {
    name: "wrong argument type: float where int",
    src: lines(blockB("    return linear(x, 2.5) as l"), net(), spec()),
    code: "SDC401", line: 3, col: 22, msg: "linear: argument 'out' must be int, got float 2.5",
  },
  {
    name: "wrong argument type: tensor where int",
    src: lines(blockB("    return linear(x, x) as l"), net(), spec()),
    code: "SDC401", line: 3, col: 22, msg: "argument 'out' must be int, got tensor [B, N, width]",
  },
  {
    name: "wrong argument type: float for a block's int parameter",
    src: lines(blockB("    return x"), useB("b(c, width: 2.5) as blk"), spec()),
    code: "SDC401", line: 8, col: 21, msg: "parameter 'width' of b is int, got float 2.5",
  },
  {
    name: "missing argument (primitive)",
    src: lines(blockB("    return linear(x) as l"), net(), spec()),
    code: "SDC402", line: 3, col: 12, msg: "linear: missing argument 'out'",
  },
  {
    name: "missing argument (block parameter without default)",
    src: lines(blockB("    return x"), useB("b(c) as blk"), spec()),
    code: "SDC402", line: 8, col: 9, msg: "missing argument 'width' of block b",
  },
  {
    name: "unknown named argument (primitive), with did-you-mean",
    src: lines(blockB("    return linear(x, width, bais: false) as l"), net(), spec()),
    code: "SDC403", line: 3, col: 29, msg: "linear has no argument 'bais' (did you mean 'bias'?)",
  },
  {
    name: "unknown named argument (block)",
    src: lines(blockB("    return x"), useB("b(c, width: 24, widht: 3) as blk"), spec()),
    code: "SDC403", line: 8, col: 25, msg: "block b has no parameter 'widht' (did you mean 'width'?)",
  },
  {
    name: "parametric call without `as name`",
    src: lines(blockB("    return linear(x, width)"), net(), spec()),
    code: "SDC405", line: 3, col: 12, msg: "'linear' has parameters: name it for the state dict",
  },
  {
    name: "syntax error",
    src: lines(net(), "spec s {", "  param = 3", "}"),
    code: "SDC200", line: 8, col: 9, msg: "expected a name but found '='",
  },
  {
    name: "unexpected character",
    src: lines(net(), "spec s {", "  param a = 1 € 2", "}"),
    code: "SDC103", line: 8, col: 15, msg: 'unexpected character "€"',
  },
];

// ---------------------------------------------------------------- shapes and arithmetic

const shapes: Case[] = [
  {
    name: "broadcast failure",
    src: lines("block b(width: int) {", "  forward(x: [B, N, width]) -> [B, N, width] {", "    y = linear(x, 3) as l", "    return x + y", "  }", "}", useB("b(c, width: 24) as blk"), spec()),
    code: "SDC500", line: 4, col: 12, msg: "cannot broadcast [B, 5, 24] with [B, 5, 3]: axis 2 is 24 vs 3",
  },
  {
    name: "block input shape mismatch names the axis",
    src: lines(blockB("    return x"), useB("b(c, width: 16) as blk"), spec()),
    code: "SDC500", line: 8, col: 11, msg: "argument 'x' of b: expected [B, N, width] = [B, 5, 16], got [B, 5, 24]: axis 2 is 24, expected width = 16",
  },
  {
    name: "rank mismatch (primitive)",
    src: lines(blockB("    return attention(x, x, x, heads: 2)", "x: [B, width]"), net(), spec()),
    code: "SDC501", line: 3, col: 22, msg: "attention needs a rank-3 tensor, got rank 2 [B, width]",
  },
  {
    name: "rank mismatch (block input), reported once with concrete sizes",
    src: lines(blockB("    return x"), useB("b(p, width: 20) as blk"), spec()),
    code: "SDC501", line: 8, col: 11, msg: "argument 'x' of b: expected rank 3 [B, N, width], got rank 2 [B, 20]",
  },
  {
    name: "heads not dividing the width: `require` in the library's joint_attention",
    src: lines('import "lib/mmdit.mdl"', net(lines("    h = linear(c, 384) as proj", "    a, o = joint_attention(h, h, width: 384, heads: 5) as attn")), spec()),
    code: "SDC600", line: 5, col: 12, msg: /heads must divide the width.*width = 384, heads = 5/,
  },
  {
    name: "heads not dividing the width: attention(..., heads: 5) on width 384",
    src: lines(net(lines("    h = linear(c, 384) as proj", "    a = attention(h, h, h, heads: 5)")), spec()),
    code: "SDC502", line: 4, col: 35, msg: "attention: heads must divide the width: 384 is not divisible by 5",
  },
  {
    name: "exact division fails: 32 / 5 in a block's let",
    src: lines("block b(width: int) {", "  let q = 32 / 5", "  forward(x: [B, N, width]) -> [B, N, width] {", "    return x", "  }", "}", net(), spec()),
    code: "SDC502", line: 2, col: 11, msg: "32 / 5 is not exact: 32 is not divisible by 5",
  },
  {
    name: "exact division fails: 32 / 5 in a spec param",
    src: lines(net(), spec(undefined, ["  param q = 32 / 5"])),
    code: "SDC502", line: 11, col: 13, msg: "32 / 5 is not exact",
  },
  {
    name: "return shape mismatch",
    src: lines(blockB("    return linear(x, 2 * width) as l"), useB("b(c, width: 24) as blk"), spec()),
    code: "SDC503", line: 3, col: 12, msg: "output 1 of b is declared [B, 5, 24] ([B, N, width]) but the value returned is [B, 5, 48]",
  },
];

// ---------------------------------------------------------------- duplicates, imports, recursion

const structure: Case[] = [
  {
    name: "duplicate block",
    src: lines(blockB("    return x"), blockB("    return x"), net(), spec()),
    code: "SDC301", line: 6, col: 7, msg: "block 'b' is already defined at main.mdl:1",
  },
  {
    name: "duplicate `as` label",
    src: lines("block b(width: int) {", "  forward(x: [B, N, width]) -> [B, N, width] {", "    h = linear(x, width) as l", "    return linear(h, width) as l", "  }", "}", net(), spec()),
    code: "SDC301", line: 4, col: 32, msg: "duplicate name 'l' in block b",
  },
  {
    name: "duplicate block parameter",
    src: lines(blockB("    return x", undefined, "width: int, width: int"), net(), spec()),
    code: "SDC301", line: 1, col: 21, msg: "duplicate parameter 'width' in block b",
  },
  {
    name: "duplicate spec parameter",
    src: lines(net(), spec(undefined, ["  param depth = 2", "  param depth = 3"])),
    code: "SDC301", line: 12, col: 9, msg: "'depth' is defined twice in spec s",
  },
  {
    name: "cyclic imports: a.mdl and b.mdl import each other",
    src: lines('import "a.mdl"', net(), spec()),
    files: { "a.mdl": lines('import "b.mdl"', blockB("    return x")), "b.mdl": lines('import "a.mdl"', "block c(w: int) {", "  forward(x: [B, w]) -> [B, w] {", "    return x", "  }", "}") },
    code: "SDC303", line: 1, col: 1, file: "b.mdl", msg: "cyclic import: a.mdl -> b.mdl -> a.mdl",
  },
  {
    name: "cyclic imports: the entry file imported back",
    src: lines('import "a.mdl"', net(), spec()),
    files: { "a.mdl": lines('import "main.mdl"', blockB("    return x")) },
    code: "SDC303", line: 1, col: 1, file: "a.mdl", msg: "cyclic import: main.mdl -> a.mdl -> main.mdl",
  },
  {
    name: "missing import",
    src: lines(net(), 'import "lib/nope.mdl"', spec()),
    code: "SDC302", line: 7, col: 1, file: "main.mdl", msg: 'import not found: "lib/nope.mdl"',
  },
  {
    name: "recursion: a block calling itself (used by the network)",
    src: lines(blockB("    return b(x, width: width) as inner"), useB("b(c, width: 24) as blk"), spec()),
    code: "SDC604", line: 3, col: 12, msg: "block b calls itself",
  },
  {
    name: "recursion: a block calling itself (not used)",
    src: lines(blockB("    return b(x, width: width) as inner"), net(), spec()),
    code: "SDC604", line: 3, col: 12, msg: "block b calls itself (b -> b)",
  },
  {
    name: "recursion: two blocks calling each other",
    src: lines(blockB("    return a(x, width: width) as inner"), blockB("    return b(x, width: width) as inner").replace("block b", "block a"), useB("b(c, width: 24) as blk"), spec()),
    code: "SDC604", line: 8, col: 12, msg: "block b calls itself (net -> b -> a -> b)",
  },
];

// ---------------------------------------------------------------- malformed input

const input: Case[] = [
  {
    name: "unterminated block (`{` never closed)",
    src: lines("block b(width: int) {", "  forward(x: [B, N, width]) -> [B, N, width] {", "    return x", "  }", net(), spec()),
    code: "SDC202", line: 1, col: 21, msg: "unterminated block: `{` is never closed",
  },
  {
    name: "unterminated comment",
    src: lines(net(), "/* the spec", spec()),
    code: "SDC104", line: 7, col: 1, msg: "unterminated comment: `/*` has no closing `*/`",
  },
  {
    name: "unterminated string",
    src: lines(net(), 'spec s "my title', "{", "}"),
    code: "SDC105", line: 7, col: 8, msg: "unterminated string",
  },
  { name: "empty file", src: "", code: "SDC101", line: 1, col: 1, msg: "input is empty" },
  { name: "whitespace-only file", src: "  \n\t\r\n   \n", code: "SDC101", line: 1, col: 1, msg: "input is empty" },
  { name: "binary file (NUL bytes)", src: enc("spec\0\0\0s"), code: "SDC100", line: 1, col: 5, msg: "NUL byte at offset 4" },
  {
    name: "binary file (PNG signature)",
    src: new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d]),
    code: "SDC100", line: 1, col: 1, msg: "not valid UTF-8 text (byte 0x89 at offset 0)",
  },
  {
    name: "non-UTF-8 bytes (Latin-1 é in a comment)",
    src: new Uint8Array([...enc("spec s {\n  // caf"), 0xe9, ...enc("\n}\n")]),
    code: "SDC100", line: 2, col: 9, msg: "not valid UTF-8 text (byte 0xe9 at offset 17)",
  },
  {
    name: "integer literal beyond 2^53",
    src: lines(net(), spec(undefined, ["  param width = 99999999999999999999"])),
    code: "SDC106", line: 11, col: 17, msg: "integer 99999999999999999999 is too large",
  },
];

// ---------------------------------------------------------------- sizes

const sizes: Case[] = [
  {
    name: "integer overflow: heads * head_dim beyond 2^53",
    src: lines("block big(heads: int, head_dim: int) {", "  let width = heads * head_dim", "  forward(x: [B, N, width]) -> [B, N, width] {", "    return x", "  }", "}", useB("big(c, heads: 99999999, head_dim: 999999999) as blk"), spec()),
    code: "SDC601", line: 2, col: 15, msg: "integer overflow: heads * head_dim exceeds 2^53",
  },
  {
    name: "integer overflow in spec lets",
    src: lines(net(), spec(undefined, ["  param heads = 99999999", "  param head_dim = 999999999", "  let width = heads * head_dim"])),
    code: "SDC601", line: 13, col: 15, msg: "integer overflow: heads * head_dim exceeds 2^53",
  },
];

// ---------------------------------------------------------------- the spec: interface, sections, variants, --set

const specs: Case[] = [
  {
    name: "network output is not the image shape",
    src: lines("block net(ch: int, ctx: int) {", "  forward(x: [B, H, W, ch], t: [B], c: [B, T, ctx], p: [B, P]) -> [B, H, ch] {", "    return mean(x, axis: 1)", "  }", "}", spec()),
    code: "SDC703", line: 9, col: 12, msg: "must return the image shape [B, 32, 32, 1] (a velocity), but returns [B, 32, 1]",
  },
  {
    name: "text encoder width does not match the network's context input",
    src: lines(net(), spec("net(ch: 1, ctx: 32)")),
    code: "SDC703", line: 10, col: 12, msg: "argument 'c' of net: expected [B, T, ctx] = [B, 5, 32], got [B, 5, 24]: axis 2 is 24, expected ctx = 32",
  },
  {
    name: "network taking the wrong number of inputs",
    src: lines(blockB("    return x").replace("block b", "block net"), spec("net(width: 1)")),
    code: "SDC703", line: 9, col: 12, msg: "network net must take 4 tensors",
  },
  {
    name: "unknown section, with suggestion",
    src: lines(net(), spec(undefined, ["  trian { steps: 10 }"])),
    code: "SDC700", line: 11, col: 3, msg: "unknown section 'trian' (did you mean 'train'?)",
  },
  {
    name: "unknown setting, with suggestion",
    src: lines(net(), spec(undefined, ["  train { stpes: 10 }"])),
    code: "SDC700", line: 11, col: 11, msg: "unknown setting 'stpes' in train (did you mean 'steps'?)",
  },
  {
    name: "bad setting value: cfg_drop: 2",
    src: lines(net(), spec(undefined, ["  flow { cfg_drop: 2 }"])),
    code: "SDC702", line: 11, col: 20, msg: "flow.cfg_drop = 2 is out of range [0, 1]",
  },
  {
    name: "bad setting value: steps: 2.5",
    src: lines(net(), spec(undefined, ["  train { steps: 2.5 }"])),
    code: "SDC702", line: 11, col: 18, msg: "train.steps must be an integer, got float 2.5",
  },
  {
    name: "bad setting value: unknown sampler",
    src: lines(net(), spec(undefined, ["  flow { sampler: rk4 }"])),
    code: "SDC702", line: 11, col: 19, msg: "flow.sampler must be one of euler, heun",
  },
  {
    name: "unknown variant, with suggestion",
    src: lines(net(), spec(undefined, ["  param depth = 2", "  variant small { depth = 1 }"])),
    opts: { variant: "smal" },
    code: "SDC306", line: 7, col: 6, msg: "spec s has no variant 'smal' (did you mean 'small'?)",
  },
  {
    name: "a variant overriding a non-param",
    src: lines(net(), spec(undefined, ["  param depth = 2", "  let d2 = depth * 2", "  variant small { d2 = 1 }"])),
    opts: { variant: "small" },
    code: "SDC308", line: 13, col: 19, msg: "variant small sets 'd2', which is not a `param` of spec s",
  },
  {
    name: "a variant setting an unknown setting, with suggestion",
    src: lines(net(), spec(undefined, ["  param depth = 2", "  variant small { train.lr_shedule = cosine }"])),
    opts: { variant: "small" },
    code: "SDC700", line: 12, col: 19, msg: "variant small sets 'train.lr_shedule': no setting 'lr_shedule' in section 'train' (did you mean 'train.lr_schedule'?)",
  },
  {
    name: "--set of an unknown param",
    src: lines(net(), spec(undefined, ["  param depth = 2"])),
    opts: { sets: ["dpeth=3"] },
    code: "SDC308", line: 1, col: 1, file: "--set dpeth=3", msg: "--set dpeth: spec s has no parameter 'dpeth' (did you mean 'depth'?)",
  },
  {
    name: "--set of an unknown setting",
    src: lines(net(), spec()),
    opts: { sets: ["train.stpes=3"] },
    code: "SDC700", line: 1, col: 1, msg: "no setting 'stpes' in section 'train' (did you mean 'train.steps'?)",
  },
  {
    name: "--set without =",
    src: lines(net(), spec()),
    opts: { sets: ["depth"] },
    code: "SDC200", line: 1, col: 1, msg: "--set expects name=value, got 'depth'",
  },
];

describe.each([
  ["names, calls and arguments", names],
  ["shapes and arithmetic", shapes],
  ["duplicates, imports and recursion", structure],
  ["malformed input", input],
  ["sizes", sizes],
  ["spec sections, variants and --set", specs],
])("%s", (_, cases) => {
  it.each(cases.map((c) => [c.name, c] as const))("%s", (_, c) => {
    const r = compileSource(c.src, { ...c.opts, files: c.files });
    expectError(r, c);
  });
});

describe("limits: refused quickly, never a crash or a hang", () => {
  it("a 10 MB file is refused before it is decoded", () => {
    // a byte that is not UTF-8 at the end: decoding first would report it (SDC100) as well
    const big = new Uint8Array(10 * 1024 * 1024).fill(0x20);
    big[big.length - 1] = 0xff;
    const r = compileSource(big);
    expectError(r, { code: "SDC102", line: 1, col: 1, msg: "input too large: main.mdl is 10.0 MiB; a spec may be at most 1.0 MiB" });
    expect(r.diagnostics.map((d) => d.code)).toEqual(["SDC102"]);
  });

  it("a file just under the size limit with a bad byte at its end is located in linear time", () => {
    const bytes = new Uint8Array(MAX_SOURCE_BYTES - 16).fill(0x20);
    bytes[bytes.length - 2] = 0xff;
    const t0 = performance.now();
    const r = compileSource(bytes);
    expectError(r, { code: "SDC100", line: 1, col: bytes.length - 1, msg: `byte 0xff at offset ${bytes.length - 2}` });
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it("10,000 nested `(` are refused at the 200th level", () => {
    const t0 = performance.now();
    const r = compileSource(lines("spec s {", `  param a = ${"(".repeat(10_000)}1${")".repeat(10_000)}`, "}"));
    // `{` of the spec is level 1, so the 200th `(` (column 12 + 200) opens level 201
    expectError(r, { code: "SDC201", line: 2, col: 212, msg: "nesting too deep: more than 200 levels of brackets" });
    expect(performance.now() - t0).toBeLessThan(2000);
  });

  it("10,000 unclosed `(` alone", () => {
    const r = compileSource("(".repeat(10_000));
    expectError(r, { code: "SDC201", line: 1, col: 201, msg: "nesting too deep" });
  });

  it("a 10,000-term operator chain (a deep tree without brackets) is refused, not a stack overflow", () => {
    const t0 = performance.now();
    const r = compileSource(lines("spec s {", `  param a = ${Array(10_000).fill("1").join(" + ")}`, "}"));
    // the 201st term (column 13 + 4 * 200) makes the tree 201 deep
    expectError(r, { code: "SDC201", line: 2, col: 813, msg: "expression nested too deeply" });
    expect(performance.now() - t0).toBeLessThan(3000);
  });

  it("10,000 unary minus signs: the parser's stack runs out inside the run and says so", () => {
    const r = compileSource(lines("spec s {", `  param a = ${"-".repeat(10_000)}1`, "}"));
    const d = r.diagnostics.find((x) => x.code === "SDC201");
    expect(d, JSON.stringify(r.diagnostics)).toBeDefined();
    expect(d!.message).toContain("nesting too deep");
    // where the stack ran out depends on the stack size, but it is inside the run of signs
    expect(d!.span.start.line).toBe(2);
    expect(d!.span.start.column).toBeGreaterThan(12);
    expect(d!.span.start.column).toBeLessThanOrEqual(12 + 10_000);
    expect(r.ir).toBeUndefined();
  });

  it("--set with a runaway value is a diagnostic, not an exception", () => {
    const r = compileSource(lines(net(), spec(undefined, ["  param depth = 2"])), { sets: [`depth=${"-".repeat(10_000)}1`] });
    expect(r.diagnostics.map((d) => d.code)).toContain("SDC201");
  });

  it("a 200-term chain (at the limit) still compiles", () => {
    const r = compileSource(lines(blockB(`    return ${Array(200).fill("x").join(" + ")}`), useB("b(c, width: 24) as blk"), spec()));
    expect(r.diagnostics).toEqual([]);
    expect(r.ir).toBeDefined();
  });

  it("an absurd parameter count (head_dim 1,000,000) is refused with SDC602 before anything is built", () => {
    const src = lines(
      "block wide(heads: int, head_dim: int, ctx: int) {",
      "  let width = heads * head_dim",
      "  forward(x: [B, N, ctx]) -> [B, N, width] {",
      "    h = linear(x, width) as up",
      "    return linear(h, width) as mix",
      "  }",
      "}",
      net("    y = wide(c, heads: 6, head_dim: 1000000, ctx: ctx) as blk"),
      spec(),
    );
    const t0 = performance.now();
    const r = compileSource(src);
    // up: 24 x 6M is fine; mix: 6M x 6M = 3.6e13 parameters is not
    expectError(r, { code: "SDC602", line: 5, col: 12, msg: "the model would have more than 2.00B parameters (at blk.mix.weight" });
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it("an absurd activation (a 4096x4096 image in 1x1 patches) is refused with SDC602", () => {
    const r = compileSource(lines(net("    h = patch_conv(x, 64, patch: 1) as embed"), spec(undefined, [], { image: "[4096, 4096, 1]" })));
    expectError(r, { code: "SDC602", line: 3, col: 9, msg: "this tensor would hold 1.07B elements per sample ([B, 16777216, 64]); the limit is 268.44M" });
  });

  it("a loop unrolling absurdly deep is refused", () => {
    const r = compileSource(lines('import "lib/mmdit.mdl"', net(), spec("mmdit(heads: 2, head_dim: 16, depth: 100000, patch: 8, channels: 1, max_grid: 4, context_dim: 24, pooled_dim: 20)")));
    const d = r.diagnostics.find((x) => x.code === "SDC602");
    expect(d?.message).toContain("this loop would unroll 100000 times");
    expect(r.ir).toBeUndefined();
  });
});

describe("several errors in one file", () => {
  it("reports independent errors in one block together, in source order, without cascades", () => {
    const src = lines(
      "block b(width: int) {",
      "  forward(x: [B, N, width]) -> [B, N, width] {",
      "    h = linear(x, widht) as l",
      "    g = silu(x, x)",
      "    k = linaer(x, width) as m",
      "    return h + g + k",
      "  }",
      "}",
      net(),
      spec(),
    );
    const r = compileSource(src);
    expectError(r, { code: "SDC300", line: 3, col: 19, msg: "unknown identifier 'widht'" });
    expectError(r, { code: "SDC400", line: 4, col: 17, msg: "silu takes at most 1 argument" });
    expectError(r, { code: "SDC304", line: 5, col: 9, msg: "unknown block or primitive 'linaer'" });
    // `return h + g + k` uses the three failed names: no fourth, follow-on error
    expect(r.diagnostics.map((d) => `${d.code}@${d.span.start.line}`)).toEqual(["SDC300@3", "SDC400@4", "SDC304@5"]);
  });

  it("a failed statement does not make later uses of its name report bogus rank errors", () => {
    // `linear(c, ...)` on an input-bound width fails (SDC504); `h` must not then look like a rank-1 tensor
    const r = compileSource(lines("block net(ch: int) {", "  forward(x: [B, H, W, ch], t: [B], c: [B, T, D], p: [B, P]) -> [B, H, W, ch] {", "    h = linear(c, 384) as proj", "    a = attention(h, h, h, heads: 5)", "    return x", "  }", "}", spec("net(ch: 1)")));
    expectError(r, { code: "SDC504", line: 3, col: 9, msg: "linear's parameters would depend on 'D'" });
    expectError(r, { code: "SDC502", line: 4, col: 35, msg: "384 is not divisible by 5" });
    expect(r.diagnostics.filter((d) => d.code === "SDC501")).toEqual([]);
  });

  it("reports errors across spec sections together", () => {
    const r = compileSource(lines(net(), spec(undefined, ["  trian { steps: 10 }", "  train { stpes: 10, batch: 0 }", "  flow { cfg_drop: 2 }"])));
    expectError(r, { code: "SDC700", line: 11, col: 3, msg: "unknown section 'trian'" });
    expectError(r, { code: "SDC700", line: 12, col: 11, msg: "unknown setting 'stpes'" });
    expectError(r, { code: "SDC702", line: 12, col: 29, msg: "train.batch = 0 is out of range" });
    expectError(r, { code: "SDC702", line: 13, col: 20, msg: "flow.cfg_drop = 2 is out of range" });
  });
});

describe("formatDiagnostic", () => {
  it("prints file:line:col, the code, the source line and a caret under the span", () => {
    const r = compileSource(lines(blockB("    return linear(x, widht) as l"), net(), spec()));
    const d = expectError(r, { code: "SDC300", line: 3, col: 22, msg: "unknown identifier 'widht'" });
    const text = formatDiagnostic(d, r.program.sources);
    const out = text.split("\n");
    expect(out[0]).toBe("main.mdl:3:22: error SDC300: unknown identifier 'widht' (did you mean 'width'?)");
    expect(out).toContain("3 |     return linear(x, widht) as l");
    const caret = out.find((l) => /^\s*\| *\^+$/.test(l));
    expect(caret, text).toBeDefined();
    // the carets sit under `widht` exactly: same column, same width
    const src = out.find((l) => l.startsWith("3 | "))!;
    expect(caret!.indexOf("^")).toBe(src.indexOf("widht"));
    expect(caret!.trim().replace("|", "").trim()).toBe("^^^^^");
    // no colour codes unless asked
    expect(text).not.toContain("\x1b[");
    expect(formatDiagnostic(d, r.program.sources, { color: true })).toContain("\x1b[");
  });

  it("adds the hint as a help line", () => {
    const r = compileSource(lines(net(), spec("net(ch: 1, ctx: 32)")));
    const d = expectError(r, { code: "SDC703", line: 10, col: 12, msg: "expected ctx = 32" });
    const text = formatDiagnostic(d, r.program.sources);
    expect(text).toContain("main.mdl:10:12: error SDC703:");
    expect(text).toContain("10 |   network: net(ch: 1, ctx: 32)");
    expect(text).toMatch(/= help: the network receives x \[B, 32, 32, 1\] from data.image, context \[B, 5, 24\] and pooled \[B, 20\]/);
  });

  it("without the source text (e.g. --set), prints the header only", () => {
    const r = compileSource(lines(net(), spec(undefined, ["  param depth = 2"])), { sets: ["dpeth=3"] });
    const d = expectError(r, { code: "SDC308", line: 1, col: 1, msg: "dpeth" });
    expect(formatDiagnostic(d, r.program.sources)).toBe("--set dpeth=3:1:1: error SDC308: " + d.message);
  });
});
