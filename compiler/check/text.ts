/** Names and text: source-like text of expressions, counts, positions, "did you mean" suggestions. */
import type * as A from "../ast.ts";
import type { Span } from "../diagnostics.ts";
import type { Dim } from "../values.ts";

export function joinPath(a: string, b: string): string {
  return a && b ? `${a}.${b}` : a || b;
}

export function freeDimNames(d: Dim): string[] {
  if (typeof d === "number") return [];
  if (d.op === "var") return [d.name];
  if (d.op === "at") return [d.list, ...freeDimNames(d.a)];
  if (d.op === "len") return [d.list];
  if (d.op === "first") return [d.loop, ...freeDimNames(d.from), ...freeDimNames(d.a), ...freeDimNames(d.b)];
  return [...freeDimNames(d.a), ...freeDimNames(d.b)];
}

/** Source-like text of an expression (for messages and generated comments). */
export function exprText(e: A.Expr): string {
  switch (e.kind) {
    case "number":
      return e.text;
    case "string":
      return JSON.stringify(e.value);
    case "bool":
      return String(e.value);
    case "ident":
      return e.name;
    case "unary":
      return `${e.op}${exprText(e.operand)}`;
    case "binary": {
      const wrap = (x: A.Expr) => (x.kind === "binary" ? `(${exprText(x)})` : exprText(x));
      return `${wrap(e.left)} ${e.op} ${wrap(e.right)}`;
    }
    case "ternary":
      return `${exprText(e.cond)} ? ${exprText(e.then)} : ${exprText(e.else)}`;
    case "list":
      return `[${e.items.map(exprText).join(", ")}]`;
    case "index":
      return `${exprText(e.target)}[${exprText(e.index)}]`;
    case "method":
      return `${exprText(e.target)}.${e.method}(${e.args.map(exprText).join(", ")})`;
    case "shape":
      return `${e.dtype === "int32" ? "int32" : ""}[${e.dims.map(exprText).join(", ")}]`;
    case "call":
      return `${e.callee}(${e.args.map((a) => (a.name ? `${a.name}: ` : "") + exprText(a.value)).join(", ")})${e.label ? ` as ${exprLabel(e.label)}` : ""}`;
  }
}

export function exprLabel(l: A.Label): string {
  return l.segments.map((s, i) => (s.index ? `[${exprText(s.index)}]` : (i ? "." : "") + s.name)).join("");
}

export function exprListText(dims: A.Expr[]): string {
  return `[${dims.map(exprText).join(", ")}]`;
}

export function fmtCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}

export function fmtSpan(s: Span): string {
  return `${s.file}:${s.start.line}:${s.start.column}`;
}

/** " (did you mean 'x'?)" for a close match by edit distance. */
export function suggest(name: string, candidates: Iterable<string>): string {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(name, c);
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best !== undefined && bestD <= Math.max(1, Math.floor(name.length / 3)) ? ` (did you mean '${best}'?)` : "";
}

/** Edit distance counting insertions, deletions, substitutions and adjacent transpositions (OSA). */
function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 3) return 99;
  const dp = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) dp[0][j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) {
      dp[i][j] = Math.min(dp[i - 1][j] + 1, dp[i][j - 1] + 1, dp[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      // a swap of two neighbours (widht -> width) is one typo, not two
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) dp[i][j] = Math.min(dp[i][j], dp[i - 2][j - 2] + 1);
    }
  return dp[a.length][b.length];
}
