/**
 * The structure of the code, measured from its imports and function bodies (the TypeScript
 * compiler's own parser, no regexes): every non-generated .ts file's import statements (static,
 * `export ... from`, dynamic `import()`, type-only ones too) give a graph of files, in which
 *   - no files import each other, directly or in a circle;
 *   - the IR (ir/) is a leaf: it imports nothing of sdc outside ir/;
 *   - the graph core (runtime/graph/) imports only itself and runtime/util/;
 *   - the executors (runtime/executors/) import only the graph core, each other, runtime/util/, ir/;
 *   - nothing under runtime/ imports the CLI or the compiler, nothing under compiler/ the runtime or the CLI;
 * and no function of the source (ir, compiler, runtime, cli, bench, scripts; not test/, not
 * generated/) is longer than MAX_FUNCTION_LINES lines, but for the known ones listed below, which
 * must be exactly those (fixing one means taking it off the list; a new one fails).
 */
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, posix } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const MAX_FUNCTION_LINES = 120;

/** Functions over MAX_FUNCTION_LINES lines still to be split (file#name). */
const KNOWN_LONG: string[] = [];

const ROOTS = ["ir", "compiler", "runtime", "cli", "test", "bench", "scripts"];
const SOURCE_ROOTS = ["ir", "compiler", "runtime", "cli", "bench", "scripts"];

function tsFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = posix.join(dir, name);
    if (statSync(p).isDirectory()) tsFiles(p, out);
    else if (p.endsWith(".ts")) out.push(p);
  }
  return out;
}

/** The repository files a file's text imports (relative specifiers and the sdc/* aliases), as repo paths. */
export function importsOf(file: string, text: string): string[] {
  const out: string[] = [];
  for (const { fileName } of ts.preProcessFile(text, true, true).importedFiles) {
    if (fileName === "sdc/runtime") out.push("runtime/index.ts");
    else if (fileName === "sdc/compiler") out.push("compiler/index.ts");
    else if (fileName.startsWith(".")) out.push(posix.normalize(posix.join(posix.dirname(file), fileName)));
  }
  return out.filter((p) => p.endsWith(".ts"));
}

/** The circles of an import graph: its strongly connected components with more than one file (or a file importing itself). */
export function importCycles(edges: Map<string, string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  let next = 0;
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!edges.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const scc: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      scc.push(w);
    } while (w !== v);
    if (scc.length > 1 || (edges.get(v) ?? []).includes(v)) cycles.push(scc.sort());
  };
  for (const v of edges.keys()) if (!index.has(v)) visit(v);
  return cycles;
}

/** What a file may import, by the folder it is in (null: no rule); returns the reason an import is refused, or null. */
export function layerViolation(from: string, to: string): string | null {
  const under = (p: string, ...dirs: string[]) => dirs.some((d) => p.startsWith(d + "/"));
  if (under(from, "ir") && !under(to, "ir")) return "the IR is a leaf";
  if (under(from, "runtime/graph") && !under(to, "runtime/graph", "runtime/util")) return "the graph core imports only itself and runtime/util";
  if (under(from, "runtime/executors") && !under(to, "runtime/graph", "runtime/executors", "runtime/util", "ir")) return "the executors import only the graph core, each other, runtime/util and ir";
  if (under(from, "runtime") && under(to, "cli", "compiler")) return "the runtime imports neither the CLI nor the compiler";
  if (under(from, "compiler") && under(to, "runtime", "cli")) return "the compiler imports neither the runtime nor the CLI";
  return null;
}

/** Functions (declarations, methods, accessors, constructors, arrows, expressions) of a file longer than `max` lines: "file#name" with its length. */
export function longFunctions(file: string, text: string, max: number): { id: string; lines: number }[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true);
  const out: { id: string; lines: number }[] = [];
  const visit = (n: ts.Node) => {
    if (ts.isFunctionLike(n) && "body" in n && n.body) {
      const first = sf.getLineAndCharacterOfPosition(n.getStart(sf)).line;
      const last = sf.getLineAndCharacterOfPosition(n.getEnd()).line;
      const name = "name" in n && n.name ? (n.name as ts.Node).getText(sf) : ts.isVariableDeclaration(n.parent) ? n.parent.name.getText(sf) : `(anonymous at line ${first + 1})`;
      if (last - first + 1 > max) out.push({ id: `${file}#${name}`, lines: last - first + 1 });
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return out;
}

const files = ROOTS.flatMap((r) => tsFiles(r));
const texts = new Map(files.map((f) => [f, readFileSync(f, "utf8")]));
const edges = new Map(files.map((f) => [f, importsOf(f, texts.get(f)!)]));

describe("the checks themselves", () => {
  it("find a circle, a refused import and a long function in made-up code", () => {
    const g = new Map([["a.ts", ["b.ts"]], ["b.ts", ["c.ts"]], ["c.ts", ["a.ts"]], ["d.ts", ["a.ts"]]]);
    expect(importCycles(g)).toEqual([["a.ts", "b.ts", "c.ts"]]);
    expect(importCycles(new Map([["a.ts", ["b.ts"]], ["b.ts", []]]))).toEqual([]);
    expect(layerViolation("runtime/graph/fuse.ts", "runtime/train/trainer.ts")).not.toBeNull();
    expect(layerViolation("runtime/executors/native/native.ts", "runtime/engines/engine.ts")).not.toBeNull();
    expect(layerViolation("ir/ir.ts", "compiler/check.ts")).not.toBeNull();
    expect(layerViolation("runtime/engines/static/step.ts", "runtime/graph/graph.ts")).toBeNull();
    const body = (n: number) => Array.from({ length: n }, (_, i) => `  const x${i} = ${i};`).join("\n");
    expect(longFunctions("x.ts", `function f() {\n${body(118)}\n}\n`, 120)).toEqual([]); // 120 lines
    expect(longFunctions("x.ts", `function f() {\n${body(119)}\n}\n`, 120)).toEqual([{ id: "x.ts#f", lines: 121 }]);
    expect(longFunctions("x.ts", `class C {\n  m() {\n${body(119)}\n  }\n}\nconst g = () => {\n${body(119)}\n};\n`, 120)).toEqual([{ id: "x.ts#m", lines: 121 }, { id: "x.ts#g", lines: 121 }]);
    expect(importsOf("runtime/a/b.ts", `import { x } from "../c.ts";\nexport type { Y } from "./d.ts";\nconst z = await import("sdc/runtime");\n`)).toEqual(["runtime/c.ts", "runtime/a/d.ts", "runtime/index.ts"]);
  });
});

describe("structure", () => {
  it("reads the files it measures", () => {
    expect(files.length).toBeGreaterThan(100);
    expect(edges.get("runtime/engines/static/step.ts")).toContain("runtime/graph/graph.ts");
  });

  it("has no import circles", () => {
    expect(importCycles(edges)).toEqual([]);
  });

  it("keeps the IR a leaf, the graph core and the executors below the engines, the trainer, the CLI and the compiler", () => {
    const bad: string[] = [];
    for (const [from, tos] of edges) for (const to of tos) {
      const why = layerViolation(from, to);
      if (why) bad.push(`${from} -> ${to}: ${why}`);
    }
    expect(bad).toEqual([]);
  });

  it(`has no function over ${MAX_FUNCTION_LINES} lines but the known ones`, () => {
    const long = files.filter((f) => SOURCE_ROOTS.some((r) => f.startsWith(r + "/"))).flatMap((f) => longFunctions(f, texts.get(f)!, MAX_FUNCTION_LINES));
    expect(long.map((l) => l.id).sort()).toEqual(KNOWN_LONG);
  });
});
