/** Graph parameters with random values, for the tests and fuzz cases that build small graphs (no vitest: bench/ imports it too). */
import type { Graph, Sym } from "../../runtime/graph/graph.ts";
import type { Rng } from "../../runtime/util/rng.ts";

/** Parameters `p0`, `p1`, ... of `shapes` in `g`, each filled with standard normals from `rng` in turn. */
export function normalParams(g: Graph, shapes: number[][], rng: Rng): { ins: Sym[]; params: Map<string, Float32Array> } {
  const params = new Map<string, Float32Array>();
  const ins = shapes.map((s, i) => {
    const p = g.param(`p${i}`, s);
    params.set(`p${i}`, rng.normals(p.size));
    return p;
  });
  return { ins, params };
}
