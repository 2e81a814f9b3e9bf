/**
 * A cache eviction for the native kernel benches' --cold: a native program that writes 2 x a
 * 64 MiB buffer into another (y = 2 x, 128 MiB touched: more than this machine's L3), run before
 * a timed call so that its operands come from memory, as inside a training step.
 */
import { Graph } from "../runtime/graph/graph.ts";
import { lowerGraph, paramArena, requireNative } from "../runtime/executors/native/native.ts";

/** a function that evicts the caches (one pass over 2 x 64 MiB) */
export function cacheEvictor(addon: ReturnType<typeof requireNative>): () => void {
  const g = new Graph();
  const n = 1 << 24;
  const y = g.ew("mul", [g.param("x", [n]), 2]);
  const l = lowerGraph({ graph: g, v: y, batch: 1 }, paramArena(new Map([["x", new Float32Array(n)]])));
  const program = addon.build(l.program, l.arenas);
  return () => addon.run(program);
}
