/**
 * Reverse-mode differentiation of a static graph: appends the backward pass to the graph and
 * returns one gradient node per parameter. Only nodes that depend on a parameter are
 * differentiated; the rules are the textbook ones, written as graph ops (so the backward pass
 * is fused and executed like the forward).
 */
import { type Expr, type GemmLayout, type Graph, GraphError, type Sym, sameShape, sizeOf } from "./graph.ts";
import { EW } from "./ops.ts";

/** Check that strides over dims address every element of a buffer of `size` exactly once. */
function isBijection(dims: number[], strides: number[], size: number): boolean {
  const pairs = dims.map((d, i) => [d, strides[i]] as const).filter(([d]) => d > 1);
  pairs.sort((a, b) => a[1] - b[1]);
  let expect = 1;
  for (const [d, s] of pairs) {
    if (s !== expect) return false;
    expect *= d;
  }
  return expect === size;
}

export interface GradResult {
  /** gradient node by parameter name (same shape as the parameter) */
  grads: Map<string, Sym>;
}

export function differentiate(g: Graph, loss: Sym): GradResult {
  if (loss.size !== 1) throw new GraphError(`the loss must be a scalar, got [${loss.shape}]`);
  const n = g.nodes.length;
  const needs = new Array<boolean>(n).fill(false);
  for (const node of g.nodes.slice(0, loss.id + 1)) {
    const op = node.op;
    if (op.kind === "param") needs[node.id] = true;
    else if (op.kind === "gemm") needs[node.id] = needs[op.a] || needs[op.b] || (op.bias !== null && needs[op.bias]);
    else if ("src" in op) needs[node.id] = needs[op.src];
    else if ("inputs" in op) needs[node.id] = op.inputs.some((i) => needs[i]);
  }
  const adj = new Map<number, Sym[]>();
  const push = (id: number, d: Sym) => {
    if (!needs[id]) return;
    const want = g.node(id).shape;
    if (!sameShape(d.shape, want)) d = g.sumTo(d, want);
    const l = adj.get(id);
    if (l) l.push(d);
    else adj.set(id, [d]);
  };
  const total = (id: number): Sym | null => {
    let l = adj.get(id);
    if (!l || l.length === 0) return null;
    l = mergePads(g, l);
    // up to 6 terms in one kernel (WebGPU allows 8 storage buffers per stage on small GPUs)
    let acc = l[0];
    for (let i = 1; i < l.length; i += 5) {
      const part = [acc, ...l.slice(i, i + 5)];
      const args: Expr[] = part.map((_, j) => ({ in: j }));
      const expr = args.slice(1).reduce<Expr>((a, b) => ({ op: "add", args: [a, b] }), args[0]);
      acc = g.add(acc.shape, { kind: "ew", inputs: part.map((s) => s.id), expr });
    }
    adj.set(id, [acc]);
    return acc;
  };

  g.tag = "backward";
  const one = g.constant(new Float32Array([1]), loss.shape);
  adj.set(loss.id, [one]);
  const grads = new Map<string, Sym>();
  for (let id = loss.id; id >= 0; id--) {
    if (!needs[id]) continue;
    const dy = total(id);
    const node = g.node(id);
    const op = node.op;
    if (op.kind === "param") {
      grads.set(op.name, dy ?? g.constant(new Float32Array(sizeOf(node.shape)), node.shape));
      continue;
    }
    if (!dy) continue;
    const y = g.sym(id);
    switch (op.kind) {
      case "view":
        push(op.src, g.reshape(dy, g.node(op.src).shape));
        break;
      case "sum_to":
        push(op.src, g.ew("mul", [dy, op.scale], g.node(op.src).shape));
        break;
      case "layer_norm":
        push(op.src, g.add(node.shape, { kind: "layer_norm_grad", x: op.src, dy: dy.id, eps: op.eps }));
        break;
      case "softmax":
        push(op.src, g.add(node.shape, { kind: "softmax_grad", y: id, dy: dy.id }));
        break;
      case "slice":
        push(op.src, g.pad(dy, op.axis, op.start, g.node(op.src).shape[op.axis]));
        break;
      case "pad":
        push(op.src, g.slice(dy, op.axis, op.start, g.node(op.src).shape[op.axis]));
        break;
      case "permute": {
        const inv = new Array<number>(op.perm.length);
        op.perm.forEach((p, i) => (inv[p] = i));
        push(op.src, g.permute(dy, inv));
        break;
      }
      case "concat": {
        let at = 0;
        for (const i of op.inputs) {
          const len = g.node(i).shape[op.axis];
          push(i, g.slice(dy, op.axis, at, len));
          at += len;
        }
        break;
      }
      case "im2col": {
        const [, h, w] = g.node(op.src).shape;
        push(op.src, g.col2im(dy, h, w, op));
        break;
      }
      case "col2im":
        push(op.src, g.im2col(dy, op));
        break;
      case "gemm":
        gemmGrad(g, op.a, op.b, op.bias, op.layout, dy, needs, push);
        break;
      case "ew":
        ewGrad(g, op.inputs, op.expr, y, dy, push);
        break;
      default:
        throw new GraphError(`no gradient for ${op.kind}`);
    }
  }
  g.tag = "optimizer";
  return { grads };
}

function gemmGrad(g: Graph, a: number, b: number, bias: number | null, L: GemmLayout, dy: Sym, needs: boolean[], push: (id: number, d: Sym) => void): void {
  const [b1, b2] = L.batch;
  // a bf16 GEMM's gradients are bf16 GEMMs (as autocast's backward of a bf16 matmul)
  const prec = L.precision ? { precision: L.precision } : {};
  const A = g.node(a);
  const B = g.node(b);
  if (needs[a]) {
    if (!isBijection([b1, b2, L.m, L.k], L.a, sizeOf(A.shape))) throw new GraphError(`gemm gradient: input ${a} is not addressed one-to-one`);
    // dA[m, k] = alpha * sum_n dC[m, n] B[k, n]
    push(a, g.gemm(dy, g.sym(b), A.shape, { batch: [b1, b2], m: L.m, n: L.k, k: L.n, alpha: L.alpha, a: [L.c[0], L.c[1], L.c[2], L.c[3]], b: [L.b[0], L.b[1], L.b[3], L.b[2]], c: L.a, ...prec }));
  }
  if (needs[b]) {
    if (!isBijection([b1, b2, L.k, L.n], L.b, sizeOf(B.shape))) throw new GraphError(`gemm gradient: input ${b} is not addressed one-to-one`);
    // dB[k, n] = alpha * sum_m A[m, k] dC[m, n]
    push(b, g.gemm(g.sym(a), dy, B.shape, { batch: [b1, b2], m: L.k, n: L.n, k: L.m, alpha: L.alpha, a: [L.a[0], L.a[1], L.a[3], L.a[2]], b: [L.c[0], L.c[1], L.c[2], L.c[3]], c: L.b, ...prec }));
  }
  if (bias !== null && needs[bias]) {
    if (L.c[3] !== 1 || L.batch[0] * L.batch[1] !== 1) throw new GraphError("gemm gradient: a bias needs a plain row-major product");
    push(bias, g.sumTo(dy, [L.n]));
  }
}

function ewGrad(g: Graph, inputs: number[], expr: Expr, y: Sym, dy: Sym, push: (id: number, d: Sym) => void): void {
  if ("c" in expr || "in" in expr) throw new GraphError("ew node without an operator");
  const args = expr.args.map((a) => {
    if ("c" in a) return a.c;
    if ("in" in a) return g.sym(inputs[a.in]);
    throw new GraphError("autodiff runs before fusion: one operator per ew node");
  });
  const at = (i: number, d: Sym) => {
    const a = args[i];
    if (typeof a !== "number") push(a.id, d);
  };
  const rule = EW[expr.op].grad;
  if (!rule) throw new GraphError(`no gradient for the elementwise ${expr.op}`);
  rule({ g, a: args, y, dy, at });
}

/**
 * Gradients of slices of one tensor (chunk, split) arrive as zero-padded pieces; when they do not
 * overlap, one concat of the pieces (zeros in the gaps) replaces the pads and their sum.
 */
function mergePads(g: Graph, l: Sym[]): Sym[] {
  if (l.length < 2) return l;
  const pads: { s: Sym; axis: number; start: number; src: number }[] = [];
  const rest: Sym[] = [];
  for (const d of l) {
    const op = g.node(d.id).op;
    if (op.kind === "pad") pads.push({ s: d, axis: op.axis, start: op.start, src: op.src });
    else rest.push(d);
  }
  if (pads.length < 2) return l;
  const axis = pads[0].axis;
  if (pads.some((p) => p.axis !== axis)) return l;
  pads.sort((a, b) => a.start - b.start);
  const shape = pads[0].s.shape;
  const pieces: Sym[] = [];
  let at = 0;
  for (const p of pads) {
    const len = g.node(p.src).shape[axis];
    if (p.start < at) return l; // overlapping pieces: keep the sum
    if (p.start > at) pieces.push(zerosAlong(g, shape, axis, p.start - at));
    pieces.push(g.sym(p.src));
    at = p.start + len;
  }
  if (at < shape[axis]) pieces.push(zerosAlong(g, shape, axis, shape[axis] - at));
  return [g.concat(pieces, axis), ...rest];
}

function zerosAlong(g: Graph, shape: readonly number[], axis: number, len: number): Sym {
  const s = shape.map((d, i) => (i === axis ? len : d));
  return g.constant(new Float32Array(sizeOf(s)), s);
}
