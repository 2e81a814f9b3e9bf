/**
 * Loop fusion of elementwise chains: an `ew` node whose only reader is another `ew` node of the
 * same shape is inlined into its reader's expression, so `layer_norm(x) * (1 + scale) + shift`
 * or `gelu'(x) * dy` become one kernel. Nodes the step reads (the loss, parameter gradients)
 * are kept. Runs after autodiff, in place: replaced nodes stay in the graph but nothing reads
 * them, so the executors skip them.
 */
import type { Expr, Graph, Node } from "./graph.ts";
import { inputsOf, liveNodes, sizeOf } from "./graph.ts";
import type { StepGraph } from "./step.ts";

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
}

export function fuse(sg: StepGraph): FuseStats {
  return fuseGraph(sg.graph, [sg.loss.id, ...[...sg.grads.values()].map((s) => s.id)]);
}

/** Fuse a graph whose results are the nodes `outputs` (kept as they are). */
export function fuseGraph(g: Graph, outputs: number[]): FuseStats {
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

export { inputsOf };
