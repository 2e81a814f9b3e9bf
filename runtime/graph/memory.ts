/**
 * Memory planning for a static graph, as a pure function: which nodes share which buffer.
 * Kernels run in node order; a node's buffer goes back to a pool after the last kernel that reads
 * it (directly or through a view), and a later node takes the smallest free buffer that holds it
 * without wasting more than half. A node never receives the buffer of one of its own inputs.
 * `hold` (node -> node) keeps a buffer past its last reader.
 */
import { type Graph, inputsOf, rootOf, sizeOf } from "./graph.ts";

export interface BufferPlan {
  /** pooled node -> buffer slot */
  slot: Map<number, number>;
  /** floats of each slot */
  slotFloats: number[];
  /** floats the pooled nodes would take with one buffer each */
  unpooledFloats: number;
}

/**
 * Plan buffers for the `live` nodes for which `pooled(id)` holds (the others keep buffers of
 * their own: inputs, constants, parameters, results read after the pass).
 */
export function planBuffers(g: Graph, live: Set<number>, pooled: (id: number) => boolean, hold?: ReadonlyMap<number, number>): BufferPlan {
  const lastUse = new Map<number, number>();
  for (const id of live) {
    for (const i of inputsOf(g.node(id).op)) {
      const r = rootOf(g, i);
      lastUse.set(r, Math.max(lastUse.get(r) ?? -1, id));
    }
  }
  // held nodes keep their buffers at least until the node given (an executor that runs a range of
  // kernels interleaved: runtime/executors/native/chains.ts)
  for (const [id, until] of hold ?? []) {
    const r = rootOf(g, id);
    lastUse.set(r, Math.max(lastUse.get(r) ?? -1, until));
  }
  const releaseAt = new Map<number, number[]>();
  for (const [r, at] of lastUse) releaseAt.set(at, [...(releaseAt.get(at) ?? []), r]);
  const slot = new Map<number, number>();
  const slotFloats: number[] = [];
  const free: number[] = [];
  let unpooledFloats = 0;
  for (const node of g.nodes) {
    if (!live.has(node.id) || node.op.kind === "view") continue;
    if (pooled(node.id)) {
      const n = sizeOf(node.shape);
      unpooledFloats += n;
      let best = -1;
      for (let i = 0; i < free.length; i++) {
        const f = slotFloats[free[i]];
        if (f >= n && f <= 2 * n && (best < 0 || f < slotFloats[free[best]])) best = i;
      }
      if (best >= 0) slot.set(node.id, free.splice(best, 1)[0]);
      else slot.set(node.id, slotFloats.push(n) - 1);
    }
    // after this node's output is placed (never on top of its own inputs), free what it read last
    for (const r of releaseAt.get(node.id) ?? []) {
      const s = slot.get(r);
      if (s !== undefined) free.push(s);
    }
  }
  return { slot, slotFloats, unpooledFloats };
}
