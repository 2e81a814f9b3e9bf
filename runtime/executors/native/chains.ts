/**
 * Chains of the native CPU executor: runs of consecutive batched kernels (GEMMs, softmaxes,
 * softmax gradients) that the executor runs batch by batch, every kernel of the run on one batch
 * before the next batch (one thread a batch; src/kernels.cc `run_chain`). Attention is the case:
 * S = q k^T, P = softmax(S), O = P v per (sample, head), and its gradient; the batch's S and P
 * are then read back from L1 and L2 instead of memory, with one fork and join for the run.
 *
 * A run is a chain only where that order cannot change a result: each kernel reads, of what the
 * run's earlier kernels wrote, only the elements that the same batch of them wrote (checked
 * element by element on the first batch, with the batch offsets compared for every batch), and
 * each of those earlier kernels writes every element once. The memory plan then keeps every
 * tensor the run reads or writes until the run's end (`holds`), so no two of them share memory.
 * Each kernel still computes every element as its own instruction does: the same bits.
 */
import { type GemmLayout, type Graph, type Node, inputsOf, sizeOf } from "../../graph/graph.ts";
import { transposedGemm, writesColumns } from "./lower.ts";

export interface Chain {
  /** the run's nodes, in program order */
  nodes: number[];
  /** batches: every GEMM's batch[0] * batch[1]; each softmax's rows split evenly between them */
  nbatch: number;
  /**
   * the chain's local tensors: nodes of the run that only the run reads (attention's scores and
   * their gradients), batch i at i * floats; the executor keeps one batch of each in a thread's
   * buffer and never stores them in memory
   */
  locals: { node: number; floats: number }[];
}

/** nodes that emit no kernel: a run goes on past them */
const NO_KERNEL = new Set(["input", "param", "const", "view"]);
/** the most elements of one batch's footprint that a check enumerates */
const MAX_FOOTPRINT = 1 << 18;
/** the most elements of a tensor that the write check marks */
const MAX_TENSOR = 1 << 24;
/** src/kernels.h CHAIN_B_FLOATS: a bf16 GEMM step packs one batch's B, (n + 31) * (k + 1) floats at most, into a thread's buffer */
export const CHAIN_B_FLOATS = 1 << 16;
/** src/kernels.h CHAIN_LOCAL_FLOATS: one batch of each local tensor, each rounded up to 16 floats, in a thread's buffer */
export const CHAIN_LOCAL_FLOATS = 1 << 16;

/** One batch's access to a tensor: the offset of batch i, and the element offsets of batch 0. */
interface Access {
  batchOffset: (i: number) => number;
  footprint: () => number[] | null;
}

function gemmAccess(L: GemmLayout, which: "a" | "b" | "c"): Access {
  const st = L[which];
  const [rows, cols] = which === "a" ? [L.m, L.k] : which === "b" ? [L.k, L.n] : [L.m, L.n];
  const b2 = L.batch[1];
  return {
    batchOffset: (i) => Math.floor(i / b2) * st[0] + (i % b2) * st[1],
    footprint: () => {
      if (rows * cols > MAX_FOOTPRINT) return null;
      const f: number[] = [];
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) f.push(r * st[2] + c * st[3]);
      return f;
    },
  };
}

/** A softmax's input or output: rows of d, contiguous; batch i the i-th block of rows / nbatch rows. */
function rowsAccess(size: number, nbatch: number): Access {
  const blk = size / nbatch;
  return {
    batchOffset: (i) => i * blk,
    footprint: () => (blk > MAX_FOOTPRINT ? null : Array.from({ length: blk }, (_, j) => j)),
  };
}

function gemmBatches(node: Node): number {
  const op = node.op;
  if (op.kind !== "gemm") return 0;
  const L = op.layout;
  // n > 1 and m > 1: no matrix-vector product (the lowering may swap m and n); a bf16 B of one
  // batch that fits the thread's buffer, in the layout the lowering writes
  const lowered = op.bias === null && writesColumns(L) ? transposedGemm(L) : L;
  if (L.precision === "bf16" && (lowered.n + 31) * (lowered.k + 1) > CHAIN_B_FLOATS) return 0;
  return L.m > 1 && L.n > 1 ? L.batch[0] * L.batch[1] : 0;
}

/** What `node` writes, batch by batch. */
function writeAccess(node: Node, nbatch: number): Access {
  const op = node.op;
  return op.kind === "gemm" ? gemmAccess(op.layout, "c") : rowsAccess(sizeOf(node.shape), nbatch);
}

/** How `node` reads its input `j` (inputsOf order), batch by batch; null where not batch by batch (a GEMM's bias). */
function readAccess(g: Graph, node: Node, j: number, nbatch: number): Access | null {
  const op = node.op;
  if (op.kind === "gemm") return j === 0 ? gemmAccess(op.layout, "a") : j === 1 ? gemmAccess(op.layout, "b") : null;
  return rowsAccess(sizeOf(g.node(inputsOf(op)[j]).shape), nbatch);
}

/** Every element of the tensor written once over the batches (or null: too large to check). */
function writesOnce(node: Node, a: Access, nbatch: number): boolean {
  const size = sizeOf(node.shape);
  const f = a.footprint();
  if (!f || size > MAX_TENSOR || f.length * nbatch !== size) return false;
  const seen = new Uint8Array(size);
  for (let i = 0; i < nbatch; i++) {
    const o = a.batchOffset(i);
    for (const e of f) {
      const x = o + e;
      if (x < 0 || x >= size || seen[x]) return false;
      seen[x] = 1;
    }
  }
  return true;
}

/** The reader takes, of the writer's tensor, batch i's elements only, for every batch i. */
function sameBatches(reader: Access, writer: Access, nbatch: number): boolean {
  for (let i = 0; i < nbatch; i++) if (reader.batchOffset(i) !== writer.batchOffset(i)) return false;
  const fr = reader.footprint();
  const fw = writer.footprint();
  if (!fr || !fw) return false;
  const w = new Set(fw);
  return fr.every((e) => w.has(e));
}

function chainable(node: Node): boolean {
  const k = node.op.kind;
  return gemmBatches(node) > 1 || k === "softmax" || k === "softmax_grad";
}

/**
 * The chains among the `live` nodes, in node (program) order: maximal runs that start with a
 * batched GEMM and in which at least one kernel reads what an earlier one wrote.
 */
export function findChains(g: Graph, live: ReadonlySet<number>, outputs: readonly number[] = []): Chain[] {
  const chains: Chain[] = [];
  const readers = new Map<number, number[]>();
  for (const id of live)
    for (const i of inputsOf(g.node(id).op)) {
      const rs = readers.get(i);
      if (rs) rs.push(id);
      else readers.set(i, [id]);
    }
  const out = new Set(outputs);
  let run: Node[] = [];
  let nbatch = 0;
  let linked = false;
  const members = new Set<number>();
  const onceChecked = new Map<number, boolean>();
  const flush = () => {
    if (run.length >= 2 && linked) chains.push({ nodes: run.map((n) => n.id), nbatch, locals: localsOf(g, run, nbatch, readers, out) });
    run = [];
    members.clear();
    linked = false;
  };
  // `node` may join the run: same batches, and batch by batch on whatever of the run it reads
  const fits = (node: Node): { ok: boolean; links: boolean } => {
    const op = node.op;
    if (op.kind === "gemm" && gemmBatches(node) !== nbatch) return { ok: false, links: false };
    if ((op.kind === "softmax" || op.kind === "softmax_grad") && sizeOf(node.shape) % (nbatch * node.shape[node.shape.length - 1]) !== 0) return { ok: false, links: false };
    let links = false;
    const ins = inputsOf(op);
    for (let j = 0; j < ins.length; j++) {
      const src = g.node(ins[j]);
      if (src.op.kind === "view" && [...members].some((m) => viewOf(g, src.id, m))) return { ok: false, links: false };
      if (!members.has(src.id)) continue;
      const r = readAccess(g, node, j, nbatch);
      const w = writeAccess(src, nbatch);
      if (!r) return { ok: false, links: false };
      let once = onceChecked.get(src.id);
      if (once === undefined) onceChecked.set(src.id, (once = writesOnce(src, w, nbatch)));
      if (!once || !sameBatches(r, w, nbatch)) return { ok: false, links: false };
      links = true;
    }
    return { ok: true, links };
  };
  for (const node of g.nodes) {
    if (!live.has(node.id) || NO_KERNEL.has(node.op.kind)) continue;
    if (!chainable(node)) {
      flush();
      continue;
    }
    if (run.length > 0) {
      const f = fits(node);
      if (f.ok) {
        run.push(node);
        members.add(node.id);
        linked ||= f.links;
        continue;
      }
      flush();
    }
    if (gemmBatches(node) > 1) {
      nbatch = gemmBatches(node);
      run = [node];
      members.add(node.id);
    }
  }
  flush();
  return chains;
}

/**
 * The run's nodes that only the run reads (every reader in the run, no view of them, not an
 * output) and whose batch i is the block of floats at i * floats (the same offsets for every
 * reader: sameBatches), while their blocks fit CHAIN_LOCAL_FLOATS.
 */
function localsOf(g: Graph, run: readonly Node[], nbatch: number, readers: ReadonlyMap<number, number[]>, outputs: ReadonlySet<number>): Chain["locals"] {
  const inRun = new Set(run.map((n) => n.id));
  const locals: Chain["locals"] = [];
  let used = 0;
  for (const node of run) {
    const rs = readers.get(node.id) ?? [];
    if (outputs.has(node.id) || rs.length === 0 || !rs.every((r) => inRun.has(r))) continue;
    const w = writeAccess(node, nbatch);
    const floats = sizeOf(node.shape) / nbatch;
    const f = w.footprint();
    if (!f || f.length !== floats || !f.every((e, j) => e === j)) continue;
    let blocks = true;
    for (let i = 0; i < nbatch && blocks; i++) blocks = w.batchOffset(i) === i * floats;
    if (!blocks || used + floats > CHAIN_LOCAL_FLOATS) continue;
    locals.push({ node: node.id, floats });
    used += Math.ceil(floats / 16) * 16;
  }
  return locals;
}

/** Whether view `id` reads (through views) node `of`. */
function viewOf(g: Graph, id: number, of: number): boolean {
  let n = g.node(id);
  while (n.op.kind === "view") {
    const src = inputsOf(n.op)[0];
    if (src === of) return true;
    n = g.node(src);
  }
  return false;
}

/**
 * For the memory plan: every node a chain reads or writes, held until the chain's last node
 * (node id -> the node after which its buffer may be reused), so that none of them shares memory
 * with another while the chain runs its kernels batch by batch.
 */
export function chainHolds(g: Graph, chains: readonly Chain[]): Map<number, number> {
  const hold = new Map<number, number>();
  for (const c of chains) {
    const end = c.nodes[c.nodes.length - 1];
    for (const id of c.nodes) {
      for (const x of [id, ...inputsOf(g.node(id).op)]) hold.set(x, Math.max(hold.get(x) ?? -1, end));
    }
  }
  return hold;
}
