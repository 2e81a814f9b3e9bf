/**
 * Issue 12 in the compiler: names that are Object.prototype's (toString, constructor,
 * hasOwnProperty, __proto__) are looked up as names, never as the prototype's members; sections
 * and settings so named are unknown; import chains thousands deep need no stack; a file's size is
 * checked before it is read; and what used to be an internal error (SDC900) or a NaN:NaN
 * position is a positioned diagnostic. One row per input.
 */
import { describe, expect, it } from "vitest";
import { compile, type CompileOptions, memoryHost, type SourceHost } from "../../compiler/index.ts";
import { MAX_SOURCE_BYTES } from "../../compiler/lexer.ts";
import { clipMessage } from "../../compiler/diagnostics.ts";
import { blockB, compileSource, type Expected, expectError, lines, net, spec } from "./helpers.ts";

interface Row extends Expected {
  name: string;
  src: string;
  opts?: CompileOptions;
}

const PROTO = ["toString", "constructor", "hasOwnProperty", "__proto__", "valueOf"];

const rows: Row[] = [
  ...PROTO.map((n): Row => ({ name: `calling ${n}`, src: lines(blockB(`    return ${n}(x) as l`), net(), spec()), code: "SDC304", line: 3, col: 12, msg: `unknown block or primitive '${n}'` })),
  ...PROTO.map((n): Row => ({ name: `naming ${n}`, src: lines(blockB(`    return x * ${n}`), net(), spec()), code: "SDC300", line: 3, col: 16, msg: `unknown identifier '${n}'` })),
  ...PROTO.map((n): Row => ({ name: `section ${n}`, src: lines(net(), spec(undefined, [`  ${n} { x: 1 }`])), code: "SDC700", line: 11, col: 3, msg: `unknown section '${n}'` })),
  ...PROTO.map((n): Row => ({ name: `setting train.${n}`, src: lines(net(), spec(undefined, [`  train { ${n}: 1 }`])), code: "SDC700", line: 11, col: 11, msg: `unknown setting '${n}' in train` })),
  ...PROTO.map((n): Row => ({ name: `adam(lr: 1e-3, ${n}: 1)`, src: lines(net(), spec(undefined, [`  train { optimizer: adam(lr: 1e-3, ${n}: 1) }`])), code: "SDC403", line: 11, col: 37, msg: "adam takes named arguments lr, beta1" })),
  ...PROTO.map((n): Row => ({ name: `external(..., ${n}: 1)`, src: lines(net(), spec(undefined, [], { text: `external(tokens: 5, width: 24, pooled: 20, ${n}: 1)` })), code: "SDC403", line: 9, col: 62, msg: `external has no argument '${n}'` })),
  ...PROTO.map((n): Row => ({ name: `network argument ${n}`, src: lines(net(), spec(`net(ch: 1, ctx: 24, ${n}: 1)`)), code: "SDC403", line: 10, col: 32, msg: `block net has no parameter '${n}'` })),
  ...PROTO.map((n): Row => ({ name: `primitive argument ${n}`, src: lines(blockB(`    return linear(x, width, ${n}: 1) as l`), net(), spec()), code: "SDC403", line: 3, col: 29, msg: `linear has no argument '${n}'` })),
  ...PROTO.map((n): Row => ({ name: `text encoder ${n}`, src: lines(net(), spec(undefined, [], { text: `${n}(width: 1)` })), code: "SDC304", line: 9, col: 19, msg: `unknown text encoder '${n}'` })),
  ...PROTO.map((n): Row => ({ name: `enum value ${n}`, src: lines(net(), spec(undefined, [`  flow { sampler: ${n} }`])), code: "SDC702", line: 11, col: 19, msg: "flow.sampler must be one of euler, heun" })),
  ...PROTO.map((n): Row => ({ name: `--set ${n}=1`, src: lines(net(), spec()), opts: { sets: [`${n}=1`] }, code: "SDC308", line: 1, col: 1, msg: `spec s has no parameter '${n}'` })),
  ...PROTO.map((n): Row => ({ name: `--set train.${n}=1`, src: lines(net(), spec()), opts: { sets: [`train.${n}=1`] }, code: "SDC700", line: 1, col: 1, msg: `no setting '${n}' in section 'train'` })),
  ...PROTO.map((n): Row => ({ name: `--set ${n}.batch=1`, src: lines(net(), spec()), opts: { sets: [`${n}.batch=1`] }, code: "SDC700", line: 1, col: 1, msg: `no setting 'batch' in section '${n}'` })),
  ...PROTO.map((n): Row => ({ name: `--variant ${n}`, src: lines(net(), spec()), opts: { variant: n }, code: "SDC306", line: 7, col: 6, msg: `spec s has no variant '${n}'` })),
  // used to be SDC900 (the IR schema refused a fractional or absurd size)
  { name: "external(tokens: 5.5)", src: lines(net(), spec(undefined, [], { text: "external(tokens: 5.5, width: 24, pooled: 20)" })), code: "SDC702", line: 9, col: 36, msg: "external: 'tokens' must be a positive integer" },
  { name: "external(pooled: 1e300)", src: lines(net(), spec(undefined, [], { text: "external(tokens: 5, width: 24, pooled: 1e300)" })), code: "SDC702", line: 9, col: 58, msg: "external: 'pooled' must be a positive integer" },
  { name: "sd3_pretrained(t5_tokens: 1.5)", src: lines(net(), spec(undefined, [], { text: 'sd3_pretrained(clip_l: "a", t5_tokens: 1.5)' })), code: "SDC702", line: 9, col: 58, msg: "sd3_pretrained: 't5_tokens' must be a positive integer" },
  { name: "sd3_pretrained(t5_tokens: -3)", src: lines(net(), spec(undefined, [], { text: 'sd3_pretrained(clip_l: "a", t5_tokens: -3)' })), code: "SDC702", line: 9, col: 58, msg: "must be a positive integer" },
  // used to exhaust the memory (found by bench/fuzz.ts, seed 8)
  { name: "chunk(x, 2147483648)", src: lines(blockB("    a, b = chunk(linear(x, 2 * width) as l, 2147483648, axis: 2)\n    return a"), net(), spec()), code: "SDC407", line: 3, col: 45, msg: "chunk: at most 4096 parts, got 2147483648" },
  // used to be NaN:NaN
  { name: "--set heads= (empty)", src: lines(net(), spec()), opts: { sets: ["heads="] }, code: "SDC200", line: 1, col: 1, msg: "--set heads= needs a value after '='", file: "--set heads=" },
  { name: "--set train.batch=  (blank)", src: lines(net(), spec()), opts: { sets: ["train.batch=  "] }, code: "SDC200", line: 1, col: 1, msg: "--set train.batch= needs a value" },
  { name: "--set heads=( (unfinished)", src: lines(net(), spec()), opts: { sets: ["heads=("] }, code: "SDC202", line: 1, col: 1, msg: "unterminated parenthesis" },
  { name: "--set heads=1+ (cut short)", src: lines(net(), spec()), opts: { sets: ["heads=1+"] }, code: "SDC200", line: 1, col: 2, msg: "bad value" },
];

describe("prototype names and bad settings: positioned diagnostics, never a crash or SDC900", () => {
  it.each(rows.map((r) => [r.name, r] as const))("%s", (_, r) => {
    const result = compileSource(r.src, r.opts);
    const d = expectError(result, r);
    expect(Number.isFinite(d.span.start.line) && Number.isFinite(d.span.start.column)).toBe(true);
    expect(result.diagnostics.map((x) => x.code)).not.toContain("SDC900");
  });

  it("a block parameter named like Object.prototype members keeps its value (the IR and the generated arguments)", () => {
    const src = lines(
      "block net(ch: int, ctx: int, __proto__: int, constructor: int = 3) {",
      "  forward(x: [B, H, W, ch], t: [B], c: [B, T, ctx], p: [B, P]) -> [B, H, W, ch] {",
      "    return x * (__proto__ + constructor) + unsqueeze(unsqueeze(unsqueeze(t + mean(p, 1) + mean(mean(c, 1), 1), 1), 1), 1) * 0.0",
      "  }",
      "}",
      spec("net(ch: 1, ctx: 24, __proto__: 2)"),
    );
    const r = compileSource(src);
    expect(r.diagnostics).toEqual([]);
    expect(Object.entries(r.ir!.network.args)).toEqual([["ch", 1], ["ctx", 24], ["__proto__", 2]]);
    const index = Object.fromEntries(r.files!)["index.ts"];
    expect(index).toContain('new Net(store, "", {"ch":1,"ctx":24,"__proto__$":2})');
    const model = Object.fromEntries(r.files!)["model.ts"];
    expect(model).toContain("const __proto__$ = args.__proto__$;");
    expect(model).toContain("this.p = { ch, ctx, __proto__$, constructor$ };");
    expect(model).toContain("const constructor$ = args.constructor$ ?? 3;");
  });
});

describe("imports and file sizes", () => {
  it("an import chain 4,000 files deep compiles (iteratively, no stack overflow)", () => {
    const files: Record<string, string> = {};
    const depth = 4000;
    for (let i = 0; i < depth; i++) files[`f${i}.mdl`] = i + 1 < depth ? `import "f${i + 1}.mdl"\n` : lines(net());
    const r = compile("main.mdl", memoryHost({ "main.mdl": lines('import "f0.mdl"', spec()), ...files }));
    expect(r.diagnostics).toEqual([]);
    expect(r.program.files.size).toBe(depth + 1);
  });

  it("a cycle at the end of a 4,000-deep chain is reported with a clipped message", () => {
    const files: Record<string, string> = {};
    const depth = 4000;
    for (let i = 0; i < depth; i++) files[`f${i}.mdl`] = `import "f${(i + 1) % depth}.mdl"\n`;
    const r = compile("main.mdl", memoryHost({ "main.mdl": lines('import "f0.mdl"', net(), spec()), ...files }));
    const d = r.diagnostics.find((x) => x.code === "SDC303")!;
    expect(d.message.startsWith("cyclic import: f0.mdl -> f1.mdl -> ")).toBe(true);
    expect(d.message.length).toBeLessThanOrEqual(2000);
  });

  it("a file over the size limit is refused from its size, without reading it", () => {
    let reads = 0;
    const host: SourceHost = {
      size: (p) => (p === "main.mdl" ? 1.5 * 2 ** 30 : null),
      read: () => {
        reads++;
        return new Uint8Array(0);
      },
      resolve: (_, s) => s,
    };
    const r = compile("main.mdl", host);
    expect(r.diagnostics.map((d) => `${d.code} ${d.message}`)).toEqual([`SDC102 input too large: main.mdl is 1536.0 MiB; a spec may be at most ${(MAX_SOURCE_BYTES / 2 ** 20).toFixed(1)} MiB`]);
    expect(reads).toBe(0);
  });
});

describe("diagnostics echo at most 80 characters of a name", () => {
  it("a 1 MB identifier is shown as its first 79 characters and an ellipsis", () => {
    const huge = "a".repeat(1 << 19);
    const r = compileSource(lines(blockB(`    return x * ${huge}`), net(), spec()));
    const d = r.diagnostics.find((x) => x.code === "SDC300")!;
    expect(d.message.startsWith(`unknown identifier '${"a".repeat(79)}…'`)).toBe(true);
    expect(d.message.length).toBeLessThan(200);
  });

  it.each([
    ["short", "short"],
    [`x ${"b".repeat(100)} y`, `x ${"b".repeat(79)}… y`],
  ])("clipMessage(%#)", (input, want) => {
    expect(clipMessage(input)).toBe(want);
  });

  it("a message is at most 2,000 characters", () => {
    const m = clipMessage("c ".repeat(5000));
    expect(m.length).toBe(2000);
    expect(m.endsWith("…")).toBe(true);
  });
});
