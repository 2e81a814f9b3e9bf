/**
 * The per-kernel profile of bench/step.ts on the native CPU executor: the seconds the addon
 * measured around each kernel of a step (wall, and the calling thread's CPU time), summed by
 * kernel kind (GEMM against everything else) and, for the GEMMs, by shape, printed as tables. On
 * a loaded machine read the CPU columns with SDC_THREADS=1 (one thread does all the work, and its
 * CPU time leaves out the time it waited for a core).
 */
import { type Expr, type Graph, inputsOf, sizeOf } from "../runtime/graph/graph.ts";

export interface KindRow {
  kind: string;
  count: number;
  /** wall milliseconds per step */
  ms: number;
  /** the calling thread's CPU milliseconds per step */
  cpuMs: number;
}

export interface GemmShapeRow {
  /** "b1 x b2 x M x N x K, A op B" */
  shape: string;
  count: number;
  ms: number;
  cpuMs: number;
  gflop: number;
}

/** One node's kernels other than a GEMM: what they read and write (whole operands: an upper bound of the bytes moved). */
export interface NodeRow {
  node: string;
  ms: number;
  cpuMs: number;
  bytes: number;
  /** an elementwise node's expression and shape ("mul(in0, add(in1, 1)) [1024, 384]"), else "" */
  what?: string;
}

export interface StepProfile {
  kinds: KindRow[];
  gemms: GemmShapeRow[];
  /** the nodes other than GEMMs, slowest first */
  others: NodeRow[];
  /** milliseconds per step over all kernels */
  totalMs: number;
  gemmMs: number;
  gemmGflop: number;
}

/** "A B^T" (x W^T), "A B" (dy W), "A^T B" (dy^T x): which operand is read transposed (its stride over k, or n, is not 1). */
function layoutName(a: readonly number[], b: readonly number[]): string {
  const at = a[3] !== 1 ? "A^T" : "A";
  const bt = b[3] !== 1 ? "B^T" : "B";
  return `${at} ${bt}`;
}

/** Sums a profile (`prof`: wall seconds per kernel, then CPU seconds per kernel, over `steps` steps). */
export function stepProfile(g: Graph, labels: readonly string[], nodes: readonly number[], prof: Float64Array, steps: number): StepProfile {
  const n = labels.length;
  const kinds = new Map<string, KindRow>();
  const gemms = new Map<string, GemmShapeRow>();
  const others = new Map<number, NodeRow>();
  let totalMs = 0;
  for (let i = 0; i < n; i++) {
    const kind = labels[i].split(":")[1];
    const ms = (prof[i] * 1000) / steps;
    const cpuMs = (prof[n + i] * 1000) / steps;
    totalMs += ms;
    const k = kinds.get(kind) ?? { kind, count: 0, ms: 0, cpuMs: 0 };
    kinds.set(kind, { ...k, count: k.count + 1, ms: k.ms + ms, cpuMs: k.cpuMs + cpuMs });
    const op = nodes[i] >= 0 ? g.node(nodes[i]).op : null;
    if (op?.kind !== "gemm" || kind !== "gemm") {  // a chain (kind attention or chain) starts with a GEMM node: counted apart
      const o = others.get(nodes[i]) ?? { node: labels[i], ms: 0, cpuMs: 0, bytes: nodeBytes(g, nodes[i]), what: op?.kind === "ew" ? `${exprText(op.expr)} [${g.node(nodes[i]).shape}]` : "" };
      others.set(nodes[i], { ...o, ms: o.ms + ms, cpuMs: o.cpuMs + cpuMs });
      continue;
    }
    const L = op.layout;
    const shape = `${L.batch[0]} x ${L.batch[1]} x ${L.m} x ${L.n} x ${L.k}, ${layoutName(L.a, L.b)}${L.precision === "bf16" ? " bf16" : ""}`;
    const flop = 2 * L.batch[0] * L.batch[1] * L.m * L.n * L.k;
    const r = gemms.get(shape) ?? { shape, count: 0, ms: 0, cpuMs: 0, gflop: 0 };
    gemms.set(shape, { shape, count: r.count + 1, ms: r.ms + ms, cpuMs: r.cpuMs + cpuMs, gflop: r.gflop + flop / 1e9 });
  }
  const gemmMs = [...gemms.values()].reduce((s, r) => s + r.ms, 0);
  const gemmGflop = [...gemms.values()].reduce((s, r) => s + r.gflop, 0);
  const others_ = [...others.values()].sort((a, b) => b.cpuMs - a.cpuMs);
  return { kinds: [...kinds.values()].sort((a, b) => b.ms - a.ms), gemms: [...gemms.values()].sort((a, b) => b.ms - a.ms), others: others_, totalMs, gemmMs, gemmGflop };
}

function exprText(e: Expr): string {
  if ("in" in e) return `in${e.in}`;
  if ("c" in e) return String(e.c);
  return `${e.op}(${e.args.map(exprText).join(", ")})`;
}

/** Bytes a node's kernels read and write at most: each distinct input whole, and the output ("tag:kind, [shape]"). */
function nodeBytes(g: Graph, id: number): number {
  if (id < 0) return 0;
  const node = g.node(id);
  return 4 * [...new Set(inputsOf(node.op))].reduce((s, i) => s + sizeOf(g.node(i).shape), sizeOf(node.shape));
}

function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(" | ")} |`;
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)];
}

/** The tables: kinds (GEMM against the rest), then the `top` GEMM shapes by time. */
export function profileTables(p: StepProfile, top = 12): string[] {
  const pct = (ms: number) => `${((100 * ms) / p.totalMs).toFixed(1)}%`;
  const rest = p.totalMs - p.gemmMs;
  const out = [`kernel time per step: ${p.totalMs.toFixed(2)} ms; GEMMs ${p.gemmMs.toFixed(2)} ms (${pct(p.gemmMs)}, ${(p.gemmGflop / (p.gemmMs / 1000)).toFixed(1)} GFLOP/s), everything else ${rest.toFixed(2)} ms (${pct(rest)})`];
  out.push(...table(["kind", "kernels", "wall ms", "share", "caller CPU ms"], p.kinds.map((k) => [k.kind, String(k.count), k.ms.toFixed(2), pct(k.ms), k.cpuMs.toFixed(2)])));
  out.push("", `GEMMs by shape (batch x batch x M x N x K, operand layout), the ${Math.min(top, p.gemms.length)} slowest of ${p.gemms.length}:`);
  const rows = p.gemms.slice(0, top).map((r) => [r.shape, String(r.count), r.ms.toFixed(2), pct(r.ms), (r.gflop / (r.ms / 1000)).toFixed(1), r.cpuMs.toFixed(2)]);
  out.push(...table(["shape", "kernels", "wall ms", "share", "GFLOP/s (wall)", "caller CPU ms"], rows));
  out.push("", `the ${Math.min(top, p.others.length)} slowest other nodes by caller CPU time (bytes: their operands and output, whole):`);
  const gbps = (r: NodeRow) => (r.cpuMs > 0 ? (r.bytes / (r.cpuMs / 1000) / 1e9).toFixed(1) : "-");
  const orows = p.others.slice(0, top).map((r) => [r.node, r.ms.toFixed(3), r.cpuMs.toFixed(3), (r.bytes / 2 ** 20).toFixed(2), gbps(r)]);
  out.push(...table(["node", "wall ms", "caller CPU ms", "MiB", "GB/s (CPU)"], orows));
  const groups = new Map<string, NodeRow & { count: number }>();
  for (const r of p.others) {
    const key = r.what ? `${r.node} ${r.what}` : r.node;
    const e = groups.get(key) ?? { node: key, ms: 0, cpuMs: 0, bytes: 0, count: 0 };
    groups.set(key, { ...e, ms: e.ms + r.ms, cpuMs: e.cpuMs + r.cpuMs, bytes: e.bytes + r.bytes, count: e.count + 1 });
  }
  const grouped = [...groups.values()].sort((a, b) => b.cpuMs - a.cpuMs).slice(0, top);
  out.push("", `the other nodes by label, the ${grouped.length} slowest of ${groups.size} labels:`);
  out.push(...table(["label", "nodes", "wall ms", "caller CPU ms", "MiB", "GB/s (CPU)"], grouped.map((r) => [r.node, String(r.count), r.ms.toFixed(2), r.cpuMs.toFixed(2), (r.bytes / 2 ** 20).toFixed(1), gbps(r)])));
  return out;
}
