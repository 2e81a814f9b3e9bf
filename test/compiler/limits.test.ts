/**
 * The compiler stays linear and terse on hostile sizes (issue 24): 30,000 spec or block parameters
 * compile with exactly one warning each; each kind of diagnostic is printed 20 times, the rest in
 * one line; a long source line is shown as a window around the span; sizes that overflow, a text
 * vocabulary that disagrees with its encoder's, and optimizer arguments out of range are refused
 * at their position. (Timings are in bench/compile-limits.ts, never here.)
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { compile, formatAll, formatDiagnostic, memoryHost, summarizeDiagnostics } from "../../compiler/index.ts";
import { type Diagnostic, excerpt, MAX_EXCERPT, SHOWN_PER_CODE, warn } from "../../compiler/diagnostics.ts";
import { runCompile } from "../../cli/commands/compile.ts";
import { compileSource, expectError, lines, net, spec, ROOT } from "./helpers.ts";

const SD3 = readFileSync(new URL("../../specs/sd3.mdl", import.meta.url), "utf8");
const LIB = {
  "specs/lib/mmdit.mdl": readFileSync(new URL("../../specs/lib/mmdit.mdl", import.meta.url), "utf8"),
  "specs/lib/text.mdl": readFileSync(new URL("../../specs/lib/text.mdl", import.meta.url), "utf8"),
};

/** specs/sd3.mdl (variant tiny), with `edit` applied to its text, compiled in memory without code generation. */
function sd3(edit?: (s: string) => string, sets?: string[]) {
  const text = edit ? edit(SD3) : SD3;
  if (edit) expect(text, "the edit changed nothing: the test is broken").not.toBe(SD3);
  return { text, r: compile("specs/sd3.mdl", memoryHost({ ...LIB, "specs/sd3.mdl": text }), { variant: "tiny", sets, generate: false }) };
}

/** 1-based line and column of the first `needle` in `text` (after `after`, if given). */
function locate(text: string, needle: string, after = ""): { line: number; col: number } {
  const at = text.indexOf(needle, after ? text.indexOf(after) : 0);
  if (at < 0) throw new Error(`'${needle}' is not in the source`);
  const before = text.slice(0, at).split("\n");
  return { line: before.length, col: before[before.length - 1].length + 1 };
}

const count = (ds: readonly Diagnostic[], code: string) => ds.filter((d) => d.code === code).length;

describe("30,000 parameters compile, one warning each", () => {
  const N = 30_000;
  const ids = Array.from({ length: N }, (_, i) => i);

  it("spec parameters, none of them used", () => {
    const { r } = sd3((s) => s.replace("  param heads = 6 ", ids.map((i) => `  param p${i} = ${i}\n`).join("") + "  param heads = 6 "));
    expect(r.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
    expect(count(r.diagnostics, "SDC310")).toBe(N);
    expect(r.ir?.spec.params.p29999).toBe(29_999);
  });

  it("spec parameters, each used by the next", () => {
    const { r } = sd3((s) => s.replace("  param heads = 6 ", ids.map((i) => `  param p${i} = ${i ? `p${i - 1} + 1` : 0}\n`).join("") + "  param heads = 6 "));
    expect(r.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
    expect(count(r.diagnostics, "SDC310")).toBe(1); // the last one
    expect(r.ir?.spec.params.p29999).toBe(29_999);
  });

  it("block parameters with defaults, none of them used", () => {
    const text = LIB["specs/lib/text.mdl"].replace("block text_layer(width: int,", `block text_layer(${ids.map((i) => `q${i}: int = ${i}`).join(", ")}, width: int,`);
    expect(text).not.toBe(LIB["specs/lib/text.mdl"]);
    const r = compile("specs/sd3.mdl", memoryHost({ ...LIB, "specs/lib/text.mdl": text, "specs/sd3.mdl": SD3 }), { variant: "tiny", generate: false });
    expect(r.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
    expect(count(r.diagnostics, "SDC310")).toBe(N);
    expect(r.ir).toBeDefined();
  });
});

describe("diagnostics of one kind are summarized after the first 20", () => {
  const at = (line: number) => ({ file: "f.mdl", start: { offset: line * 10, line, column: 1 }, end: { offset: line * 10 + 1, line, column: 2 } });
  const w = (i: number) => warn("SDC310", at(i), `parameter 'p${i}' of spec s is never used`);
  const e = (i: number) => ({ ...warn("SDC300", at(i), `unknown identifier 'x${i}'`), severity: "error" as const });

  it.each([
    { name: "fewer than the limit: unchanged", ds: Array.from({ length: 20 }, (_, i) => w(i + 1)), kept: 20, summary: [] },
    { name: "one over: the 21st becomes the summary", ds: Array.from({ length: 21 }, (_, i) => w(i + 1)), kept: 20, summary: ["... and 1 more SDC310 warning (the first of them here)"] },
    { name: "30,000 warnings", ds: Array.from({ length: 30_000 }, (_, i) => w(i + 1)), kept: 20, summary: ["... and 29,980 more SDC310 warnings (the first of them here)"] },
    { name: "each code and severity on its own", ds: [...Array.from({ length: 25 }, (_, i) => w(i + 1)), ...Array.from({ length: 22 }, (_, i) => e(i + 100))], kept: 40, summary: ["... and 5 more SDC310 warnings (the first of them here)", "... and 2 more SDC300 errors (the first of them here)"] },
  ])("$name", ({ ds, kept, summary }) => {
    const out = summarizeDiagnostics(ds);
    expect(out.length).toBe(kept + summary.length);
    const seen = new Map<string, number>();
    const firsts = ds.filter((d) => {
      seen.set(d.code, (seen.get(d.code) ?? 0) + 1);
      return seen.get(d.code)! <= SHOWN_PER_CODE;
    });
    expect(out.slice(0, kept)).toEqual(firsts);
    expect(out.slice(kept).map((d) => d.message)).toEqual(summary);
    // the summary sits at the first diagnostic it stands for, with its code and severity
    for (const s of out.slice(kept)) {
      const first = ds.filter((d) => d.code === s.code)[SHOWN_PER_CODE];
      expect(s.span).toEqual(first.span);
      expect(s.severity).toBe(first.severity);
    }
  });

  it("formatAll prints 20 of 30,000 unused parameters and one summary line", () => {
    const ids = Array.from({ length: 30_000 }, (_, i) => i);
    const { r } = sd3((s) => s.replace("  param heads = 6 ", ids.map((i) => `  param p${i} = ${i}\n`).join("") + "  param heads = 6 "));
    const text = formatAll(r.diagnostics, r.program.sources);
    expect(text.match(/warning SDC310: parameter 'p\d+' of spec sd3 is never used/g)?.length).toBe(20);
    expect(text).toContain("warning SDC310: ... and 29,980 more SDC310 warnings (the first of them here)");
    expect(text).toContain("specs/sd3.mdl:28:9: warning SDC310: ... and 29,980"); // p20 is on line 8 + 20
    expect(text.length).toBeLessThan(20_000);
  });
});

describe("sdc compile on 30,000 unused parameters and one error", () => {
  it("prints 20 warnings, the summary and the error, as text and as --json", () => {
    const tmp = mkdtempSync(join(tmpdir(), "sdc-limits-"));
    try {
      const ids = Array.from({ length: 30_000 }, (_, i) => i);
      const path = join(tmp, "many.mdl");
      writeFileSync(path, SD3.replace("  param heads = 6 ", ids.map((i) => `  param p${i} = ${i}\n`).join("") + "  param heads = 6 ").replace("batch: 64", "batch: 0"));
      let text = "";
      const sink = { write: (s: string) => (text += s) };
      expect(runCompile(path, { variant: "tiny", outDir: tmp, noWrite: true, libPath: [join(ROOT, "specs")] }, sink, sink)).toBe(1);
      expect(text.match(/warning SDC310: parameter/g)?.length).toBe(20);
      expect(text).toContain("warning SDC310: ... and 29,980 more SDC310 warnings");
      expect(text).toContain("error SDC702: train.batch = 0 is out of range");
      expect(text).toContain("1 error and 30000 warnings"); // the totals stay exact
      expect(text.length).toBeLessThan(20_000);
      let json = "";
      expect(runCompile(path, { variant: "tiny", outDir: tmp, noWrite: true, json: true, libPath: [join(ROOT, "specs")] }, { write: (s: string) => (json += s) }, { write: () => true })).toBe(1);
      const out = JSON.parse(json) as { diagnostics: Diagnostic[] };
      expect(out.diagnostics.map((d) => d.code).sort()).toEqual([...Array(21).fill("SDC310"), "SDC702"]);
      expect(json.length).toBeLessThan(20_000);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});

describe("source excerpts are clipped around the span", () => {
  it.each([
    // [line, from, to] -> what is shown and where the carets sit (0-based columns)
    { name: "a short line is shown whole", src: "  h = a + b", from: 6, to: 11, shown: "  h = a + b", caret: 6, width: 5 },
    { name: "a long line, span near the start: its first characters", src: "ab" + "x".repeat(300), from: 0, to: 2, shown: "ab" + "x".repeat(MAX_EXCERPT - 2) + "…", caret: 0, width: 2 },
    { name: "a long line, span in the middle: a window from 60 before it", src: "y".repeat(1000) + "@" + "z".repeat(1000), from: 1000, to: 1001, shown: "…" + "y".repeat(60) + "@" + "z".repeat(MAX_EXCERPT - 61) + "…", caret: 61, width: 1 },
    { name: "a long line, span at its end", src: "y".repeat(1000) + "@", from: 1000, to: 1001, shown: "…" + "y".repeat(60) + "@", caret: 61, width: 1 },
    { name: "a span running past the window: carets up to its edge", src: "y".repeat(1000) + "w".repeat(500), from: 1000, to: 1500, shown: "…" + "y".repeat(60) + "w".repeat(MAX_EXCERPT - 60) + "…", caret: 61, width: MAX_EXCERPT - 60 + 1 },
  ])("$name", ({ src, from, to, shown, caret, width }) => {
    expect(excerpt(src, from, to)).toEqual({ shown, caret, width });
  });

  it("a one-line 900 KB source gives a short excerpt with the caret under the bad character", () => {
    const src = `/*${"x".repeat(900_000)}*/ @`;
    const r = compileSource(src);
    const d = r.diagnostics.find((x) => x.code === "SDC103");
    expect(d, JSON.stringify(r.diagnostics.map((x) => x.code))).toBeDefined();
    const text = formatDiagnostic(d!, r.program.sources);
    expect(text.length).toBeLessThan(1000);
    const [, , srcLine, caretLine] = text.split("\n");
    const gutter = srcLine.indexOf("| ") + 2;
    expect(srcLine.slice(gutter).length).toBeLessThanOrEqual(MAX_EXCERPT + 2);
    expect(srcLine[caretLine.indexOf("^")]).toBe("@");
    expect(caretLine.slice(gutter).trim()).toBe("^");
    expect(gutter).toBe(caretLine.indexOf("| ") + 2);
  });
});

describe("sizes, vocabularies and optimizer arguments are refused at their position", () => {
  const cases: { name: string; edit?: (s: string) => string; sets?: string[]; code: string; file?: string; needle: string; after?: string; lib?: boolean; msg: string }[] = [
    { name: "max_grid^2 past 2^53 (an overflowing buffer size)", sets: ["max_grid=4294967297"], code: "SDC601", lib: true, needle: "sincos_2d(", msg: "past 2^53: integer overflow" },
    { name: "max_grid^2 x width past the size limit", sets: ["max_grid=400000"], code: "SDC602", lib: true, needle: "sincos_2d(", msg: "would hold 10,240,000,000,000 values; the limit is 2.00B" },
    { name: "text.vocab disagrees with the encoder's vocab", edit: (s) => s.replace("    vocab: 32\n", "    vocab: 64\n"), code: "SDC702", needle: "64", after: "    vocab: 64", msg: "text.vocab = 64 disagrees with the encoder's vocab: 32 (at specs/sd3.mdl:26:" },
    { name: "the encoder's vocab disagrees with text.vocab left at its default", edit: (s) => s.replace("    vocab: 32\n", "").replace("text_encoder(vocab: 32", "text_encoder(vocab: 64"), code: "SDC702", needle: "64", after: "text_encoder(vocab: 64", msg: "text_encoder(vocab: 64) disagrees with text.vocab, 32 by default" },
    { name: "adam(eps: 0)", edit: (s) => s.replace("adam(lr: lr)", "adam(lr: lr, eps: 0.0)"), code: "SDC702", needle: "0.0", after: "eps: 0.0", msg: "adam: eps must be in (0, 1]" },
    { name: "adam(lr: 0)", edit: (s) => s.replace("adam(lr: lr)", "adam(lr: 0)"), code: "SDC702", needle: "0)", after: "adam(lr: 0)", msg: "adam: the learning rate must be in (0, 10], got 0" },
    { name: "adam(lr: 11)", edit: (s) => s.replace("adam(lr: lr)", "adam(lr: 11)"), code: "SDC702", needle: "11", after: "adam(lr: 11)", msg: "the learning rate must be in (0, 10], got 11" },
    { name: "adam(lr: -1)", edit: (s) => s.replace("adam(lr: lr)", "adam(lr: -1)"), code: "SDC702", needle: "-1", after: "adam(lr: -1)", msg: "adam: lr must be a non-negative number, got -1" },
    { name: "adam(beta1: 1)", edit: (s) => s.replace("adam(lr: lr)", "adam(lr: lr, beta1: 1)"), code: "SDC702", needle: "1)", after: "beta1: 1)", msg: "adam: beta1 must be in [0, 1), got 1" },
    { name: "adamw(beta2: 1.5)", edit: (s) => s.replace("adam(lr: lr)", "adamw(lr: lr, beta2: 1.5)"), code: "SDC702", needle: "1.5", after: "beta2: 1.5", msg: "adamw: beta2 must be in [0, 1), got 1.5" },
    { name: "adam(eps: 2)", edit: (s) => s.replace("adam(lr: lr)", "adam(lr: lr, eps: 2)"), code: "SDC702", needle: "2)", after: "eps: 2)", msg: "adam: eps must be in (0, 1]" },
    { name: "adamw(weight_decay: -0.1)", edit: (s) => s.replace("adam(lr: lr)", "adamw(lr: lr, weight_decay: -0.1)"), code: "SDC702", needle: "-0.1", after: "weight_decay: -0.1", msg: "weight_decay must be a non-negative number" },
  ];
  it.each(cases)("$name", (c) => {
    const { text, r } = sd3(c.edit, c.sets);
    const file = c.lib ? "specs/lib/mmdit.mdl" : "specs/sd3.mdl";
    const { line, col } = locate(c.lib ? LIB["specs/lib/mmdit.mdl"] : text, c.needle, c.after);
    expectError(r, { code: c.code, file, line, col, msg: c.msg });
  });

  it("the edges of each range are accepted", () => {
    for (const args of ["lr: 10", "lr: 1e-9", "beta1: 0, beta2: 0", "eps: 1", "eps: 1e-30", "weight_decay: 0"]) {
      const { r } = sd3((s) => s.replace("adam(lr: lr)", `adamw(${args})`));
      expect(r.diagnostics.filter((d) => d.severity === "error"), args).toEqual([]);
    }
    const { r } = sd3((s) => s.replace("text_encoder(vocab: 32", "text_encoder(vocab: 40").replace("    vocab: 32\n", "    vocab: 40\n"));
    expect(r.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
    expect(r.ir?.text.kind === "learned" && r.ir.text.vocab).toBe(40);
  });

  it("a small spec without a learned encoder is unaffected (no vocab to compare)", () => {
    const r = compileSource(lines(net(), spec()));
    expect(r.diagnostics).toEqual([]);
  });
});
