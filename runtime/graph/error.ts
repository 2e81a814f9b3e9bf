/** A malformed graph or an op a graph cannot hold: a bug in a lowering, said as an error (graph.ts re-exports it). */
export class GraphError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "GraphError";
  }
}
