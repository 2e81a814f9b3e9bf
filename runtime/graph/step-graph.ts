/**
 * The compiled forms of a training step and of a velocity pass, as the graph core sees them:
 * a Graph with its loss, gradients and inputs. Built by the static engine (runtime/engines/static/step.ts),
 * fused (fuse.ts) and run by the executors (runtime/executors); nothing here knows what the
 * network computes.
 */
import { type Graph, GraphError, kernelCount, liveNodes, rootOf, type Sym } from "./graph.ts";
import type { DropoutInput, OneHotInput } from "./trace.ts";

export interface StepGraph {
  graph: Graph;
  loss: Sym;
  /** gradient node per parameter, in the store's order */
  grads: Map<string, Sym>;
  /** parameter names and shapes in the store's order */
  params: { name: string; shape: number[] }[];
  oneHots: OneHotInput[];
  /** dropout masks, drawn on the host for each step (stepFeeds) */
  dropouts?: DropoutInput[];
  batch: number;
  dims: [number, number, number];
  /** "learned": token ids are an input; "external": context and pooled are inputs; "none": the network takes no text features */
  text: "learned" | "external" | "none";
}

/** The velocity alone (sampling, validation): inputs xt, t and the text; output v [B, H, W, C]. */
export interface VelocityGraph {
  graph: Graph;
  v: Sym;
  oneHots: OneHotInput[];
  batch: number;
  dims: [number, number, number];
  text: StepGraph["text"];
}

/** Kernels the step launches before fusion (live nodes that are not free views/inputs). */
export function liveKernelCount(sg: StepGraph): number {
  return kernelCount(sg.graph, liveNodes(sg.graph, stepOutputs(sg)));
}

/** What a training step reads back: the loss and every parameter's gradient. */
export function stepOutputs(sg: Pick<StepGraph, "loss" | "grads">): number[] {
  return [sg.loss.id, ...[...sg.grads.values()].map((s) => s.id)];
}

/**
 * Where each parameter gradient is written: the node that holds it (its root) -> the parameter's
 * offset in a flat buffer laid out by `offsets`. Unused parameters (a constant zero gradient) are
 * absent: their slice of the flat buffer stays 0.
 */
export function gradientRoots(sg: Pick<StepGraph, "graph" | "params" | "grads">, offsets: Map<string, number>): Map<number, number> {
  const g = sg.graph;
  const at = new Map<number, number>();
  for (const p of sg.params) {
    const gs = sg.grads.get(p.name);
    if (!gs) throw new GraphError(`no gradient for ${p.name}`);
    const r = rootOf(g, gs.id);
    const kind = g.node(r).op.kind;
    if (kind === "const") continue;
    if (kind === "input" || kind === "param" || at.has(r)) throw new GraphError(`the gradient of ${p.name} cannot be placed in the flat buffer`);
    const off = offsets.get(p.name);
    if (off === undefined) throw new GraphError(`no offset for ${p.name}`);
    at.set(r, off);
  }
  return at;
}
