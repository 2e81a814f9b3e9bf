/**
 * Loop fusion of elementwise chains: an `ew` node whose only reader is another `ew` node of the
 * same shape is inlined into its reader's expression, so `layer_norm(x) * (1 + scale) + shift`
 * or `gelu'(x) * dy` become one kernel. Nodes the step reads (the loss, parameter gradients)
 * are kept. Runs after autodiff, in place: replaced nodes stay in the graph but nothing reads
 * them, so the executors skip them.
 */
import type { Expr, Graph, Node } from "./graph.ts";
import { inputsOf, liveNodes, sizeOf, stridesOf } from "./graph.ts";
import { type StepGraph, stepOutputs } from "./step-graph.ts";

/** At most this many distinct inputs per fused kernel (8 storage buffers per stage, one output). */
export const MAX_EW_INPUTS = 6;

function remap(e: Expr, f: (i: number) => Expr): Expr {
  if ("c" in e) return e;
  if ("in" in e) return f(e.in);
  return { op: e.op, args: e.args.map((a) => remap(a, f)) };
}

function exprSize(e: Expr): number {
  if ("c" in e || "in" in e) return 1;
  return 1 + e.args.reduce((s, a) => s + exprSize(a), 0);
}

export interface FuseStats {
  fused: number;
  /** elementwise operands now read in place from a sliced tensor */
  slices?: number;
}

export function fuse(sg: StepGraph): FuseStats {
  return fuseGraph(sg.graph, stepOutputs(sg));
}

/** Fuse a graph whose results are the nodes `outputs` (kept as they are). */
export function fuseGraph(g: Graph, outputs: number[]): FuseStats {
  const stats = fuseElementwise(g, outputs);
  stats.slices = readSlicesInPlace(g, outputs);
  return stats;
}

/**
 * Elementwise operands that are slices (chunk, split), possibly reshaped by unit axes, are read
 * in place from the sliced tensor through a strided window: the slice kernels disappear when
 * nothing else reads them. Returns how many operands were rewritten.
 */
function readSlicesInPlace(g: Graph, outputs: number[]): number {
  const live = liveNodes(g, outputs);
  let n = 0;
  for (const node of g.nodes) {
    const op = node.op;
    if (op.kind !== "ew" || !live.has(node.id)) continue;
    let changed = false;
    const inputs = [...op.inputs];
    const access = op.access ? [...op.access] : op.inputs.map(() => null);
    op.inputs.forEach((id, j) => {
      if (access[j]) return;
      const shape = g.node(id).shape;
      const vop = g.node(id).op;
      const sl = g.node(vop.kind === "view" ? vop.src : id);
      if (sl.op.kind !== "slice") return;
      const squeeze = (s: readonly number[]) => s.filter((d) => d !== 1);
      const a = squeeze(shape);
      const b = squeeze(sl.shape);
      if (a.length !== b.length || a.some((d, i) => d !== b[i])) return;
      const src = g.node(sl.op.src).shape;
      const sst = stridesOf(src);
      const sliceStrides = sl.shape.map((_, d) => sst[d]).filter((_, d) => sl.shape[d] !== 1);
      let k = 0;
      const strides = shape.map((d) => (d === 1 ? 0 : sliceStrides[k++]));
      inputs[j] = sl.op.src;
      access[j] = { shape: [...shape], base: sl.op.start * sst[sl.op.axis], strides };
      changed = true;
    });
    if (changed && new Set(inputs).size <= MAX_EW_INPUTS) {
      g.nodes[node.id] = { ...node, op: { kind: "ew", inputs, expr: op.expr, access } };
      n += access.filter((x, j) => x && !op.access?.[j]).length;
    }
  }
  return n;
}

function fuseElementwise(g: Graph, outputs: number[]): FuseStats {
  const keep = new Set<number>(outputs);
  let fused = 0;
  let changed = true;
  while (changed) {
    changed = false;
    const live = liveNodes(g, outputs);
    const readers: number[][] = g.nodes.map(() => []);
    for (const id of live) for (const i of inputsOf(g.node(id).op)) readers[i].push(id);
    for (const node of g.nodes) {
      if (node.op.kind !== "ew" || !live.has(node.id)) continue;
      const r = tryFuse(g, node, readers, keep);
      if (r) {
        fused += r;
        changed = true;
      }
    }
  }
  return { fused };
}

function tryFuse(g: Graph, node: Node, readers: number[][], keep: Set<number>): number {
  const op = node.op;
  if (op.kind !== "ew") return 0;
  for (let j = 0; j < op.inputs.length; j++) {
    const pid = op.inputs[j];
    const p = g.node(pid);
    if (p.op.kind !== "ew" || keep.has(pid)) continue;
    const live = readers[pid];
    if (live.length !== 1 || live[0] !== node.id) continue;
    if (sizeOf(p.shape) !== sizeOf(node.shape) || p.shape.length !== node.shape.length) continue;
    // the producer's inputs must read the same elements when indexed by the consumer's shape
    if (!p.shape.every((d, i) => d === node.shape[i])) continue;
    const inputs = op.inputs.filter((_, i) => i !== j);
    const pmap = p.op.inputs.map((id) => {
      let k = inputs.indexOf(id);
      if (k < 0) k = inputs.push(id) - 1;
      return k;
    });
    if (inputs.length > MAX_EW_INPUTS) continue;
    const pExpr = remap(p.op.expr, (i) => ({ in: pmap[i] }));
    if (exprSize(pExpr) + exprSize(op.expr) > 200) continue;
    const expr = remap(op.expr, (i) => {
      if (i === j) return pExpr;
      const id = op.inputs[i];
      return { in: inputs.indexOf(id) };
    });
    g.nodes[node.id] = { id: node.id, shape: node.shape, tag: node.tag, op: { kind: "ew", inputs, expr } };
    readers[pid] = [];
    for (const id of inputs) if (!readers[id].includes(node.id)) readers[id].push(node.id);
    return 1;
  }
  return 0;
}

