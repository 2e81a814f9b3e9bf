/**
 * The TextMate grammar of editors/vscode, run by vscode-textmate (VS Code's own tokenizer) on
 * every committed spec: every token that is not whitespace gets a scope of its own (nothing is
 * left as bare `source.mdl`, nothing is `invalid`), keywords and primitives agree with the
 * compiler's lexer and primitive table, and the scopes of specs/sd3.mdl are a snapshot.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import * as oniguruma from "vscode-oniguruma";
import * as vsctm from "vscode-textmate";
import * as T from "../../compiler/lexer.ts";
import { PRIMITIVES } from "../../compiler/primitives.ts";

const GRAMMAR = "editors/vscode/syntaxes/mdl.tmLanguage.json";
const require = createRequire(import.meta.url);

/** Every committed .mdl file (specs, test specs, docs examples). */
function specFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const f of readdirSync(dir).sort()) {
      const p = join(dir, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (f.endsWith(".mdl")) out.push(p);
    }
  };
  ["specs", "test/specs", "docs/examples"].forEach(walk);
  return out;
}

type Token = { text: string; scopes: string[] };
let grammar: vsctm.IGrammar;

beforeAll(async () => {
  const wasm = readFileSync(require.resolve("vscode-oniguruma/release/onig.wasm")).buffer;
  await oniguruma.loadWASM(wasm);
  const registry = new vsctm.Registry({
    onigLib: Promise.resolve({ createOnigScanner: (p: string[]) => new oniguruma.OnigScanner(p), createOnigString: (s: string) => new oniguruma.OnigString(s) }),
    loadGrammar: async (scope) => (scope === "source.mdl" ? vsctm.parseRawGrammar(readFileSync(GRAMMAR, "utf8"), GRAMMAR) : null),
  });
  grammar = (await registry.loadGrammar("source.mdl"))!;
});

function tokenize(text: string): Token[][] {
  let stack = vsctm.INITIAL;
  return text.split("\n").map((line) => {
    const r = grammar.tokenizeLine(line, stack);
    stack = r.ruleStack;
    return r.tokens.map((t) => ({ text: line.slice(t.startIndex, t.endIndex), scopes: t.scopes.slice(1) }));
  });
}

describe("the TextMate grammar", () => {
  const files = specFiles();
  it("finds the committed specs", () => expect(files.length).toBeGreaterThanOrEqual(8));

  it.each(files)("scopes every token of %s", (file) => {
    const unscoped: string[] = [];
    tokenize(readFileSync(file, "utf8")).forEach((line, i) => {
      for (const t of line) {
        if (!t.text.trim()) continue;
        if (!t.scopes.length || t.scopes.some((s) => s.startsWith("invalid"))) unscoped.push(`${file}:${i + 1}: '${t.text}' ${t.scopes.join(" ") || "(no scope)"}`);
      }
    });
    expect(unscoped).toEqual([]);
  });

  it("knows every keyword of the lexer and every primitive of the compiler", () => {
    // the lexer's keywords are the tokens that fall back to an identifier (longer_alt)
    const kws = T.allTokens.filter((t) => t.LONGER_ALT !== undefined).map((t) => String((t.PATTERN as RegExp).source).replace("\\b", ""));
    expect(kws.length).toBeGreaterThanOrEqual(17);
    for (const kw of kws) {
      const [tok] = tokenize(`${kw}`)[0];
      expect(tok.scopes.join(" "), kw).toMatch(/^(keyword|storage|constant\.language)\./);
    }
    const grammarText = readFileSync(GRAMMAR, "utf8");
    const prims = /\\\\b\(((?:[a-z0-9_]+\|)+[a-z0-9_]+)\)\\\\s\*\(\?=\\\\\(\)/.exec(grammarText)![1].split("|").sort();
    expect(prims).toEqual(Object.keys(PRIMITIVES).sort());
    for (const p of prims) expect(tokenize(`${p}(x)`)[0][0].scopes).toEqual(["support.function.primitive.mdl"]);
  });

  it("scopes specs/sd3.mdl as in the snapshot", () => {
    const lines = tokenize(readFileSync("specs/sd3.mdl", "utf8"));
    const text = lines.map((ts) => ts.filter((t) => t.text.trim()).map((t) => `${t.text} <${t.scopes.join(" ")}>`).join("  ")).join("\n");
    expect(text).toMatchSnapshot();
  });
});
