/**
 * WGSL for every graph op: pure functions from a node (shapes known, constants inlined) to a
 * compute shader, its bindings and its dispatch size. Shaders with identical text share one
 * pipeline (the 12 blocks of an MMDiT differ only in their buffers).
 *
 * Every binding is declared read_write: WebGPU forbids a buffer in one dispatch as both
 * read-only and writable storage, and the flat parameter/gradient buffers hold many nodes.
 */
import { type GemmLayout, type Graph, GraphError, type Node, broadcastStridesOf, operandLayout, sizeOf, stridesOf } from "../../graph/graph.ts";
import { WGSL_EW_PRELUDE, exprToWgsl } from "../../graph/ops.ts";

export interface Kernel {
  code: string;
  /** node ids bound at bindings 0..n-1 (inputs), the output last */
  inputs: number[];
  output: number;
  /** workgroups (x, y, z) */
  groups: [number, number, number];
  /** short label for profiles */
  label: string;
  /** floats of the shared scratch buffer this kernel needs (split-K partial products) */
  scratchFloats?: number;
}

export const MAX_GROUPS = 65535;

/** Spread `n` workgroups over x and y (each at most 65535). */
export function grid(n: number): [number, number, number] {
  if (n <= MAX_GROUPS) return [Math.max(1, n), 1, 1];
  const y = Math.ceil(n / MAX_GROUPS);
  return [Math.ceil(n / y), y, 1];
}

const u = (x: number): string => `${x >>> 0}u`;

function header(count: number, extra = ""): string {
  let s = "";
  for (let i = 0; i < count; i++) s += `@group(0) @binding(${i}) var<storage, read_write> b${i}: array<f32>;\n`;
  return s + extra;
}

/** WGSL lines that split linear index `idx` into coordinates c0..c{r-1} of `shape`. */
function coords(shape: readonly number[], idx = "i"): string {
  if (shape.length === 0) return "";
  let s = `  var r_ = ${idx};\n`;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (d === 0) s += `  let c0 = r_;\n`;
    else s += `  let c${d} = r_ % ${u(shape[d])}; r_ = r_ / ${u(shape[d])};\n`;
  }
  return s;
}

/** Σ c_d * strides_d as WGSL (terms with stride 0 dropped). */
function offset(strides: readonly number[], base = 0): string {
  const terms = strides.map((st, d) => (st === 0 ? "" : st === 1 ? `c${d}` : `c${d} * ${u(st)}`)).filter(Boolean);
  if (base) terms.unshift(u(base));
  return terms.length ? terms.join(" + ") : "0u";
}

const LINEAR_256 = `@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = (wid.y * nwg.x + wid.x) * 256u + lid;`;

/** Per-output-element kernels: out[i] = <body using coords>. */
function pointwise(n: number, inputs: number[], output: number, label: string, needCoords: readonly number[] | null, body: string, prelude = ""): Kernel {
  const code = `${header(inputs.length + 1)}${prelude}
${LINEAR_256}
  if (i >= ${u(n)}) { return; }
${needCoords ? coords(needCoords) : ""}${body}
}
`;
  return { code, inputs, output, groups: grid(Math.ceil(n / 256)), label };
}

function ewKernel(g: Graph, node: Node): Kernel {
  const op = node.op;
  if (op.kind !== "ew") throw new GraphError("not ew");
  const n = sizeOf(node.shape);
  // one binding per distinct node: an operand may read the same buffer through another window
  const bindings = [...new Set(op.inputs)];
  const outB = `b${bindings.length}`;
  let needCoords = false;
  const loads = op.inputs.map((id, j) => {
    const b = `b${bindings.indexOf(id)}`;
    const L = operandLayout(g, op, j);
    const plain = !op.access?.[j];
    if (plain && sizeOf(L.shape) === n) return `  let v${j} = ${b}[i];\n`;
    if (sizeOf(L.shape) === 1) return `  let v${j} = ${b}[${u(L.base)}];\n`;
    needCoords = true;
    return `  let v${j} = ${b}[${offset(broadcastStridesOf(L.shape, L.strides, node.shape), L.base)}];\n`;
  });
  const expr = exprToWgsl(op.expr, (j) => `v${j}`);
  return pointwise(n, bindings, node.id, "ew", needCoords ? node.shape : null, `${loads.join("")}  ${outB}[i] = ${expr};`, WGSL_EW_PRELUDE);
}

/** A GEMM tiling: BM x BN outputs per 256-thread workgroup (16 x 16 threads), BK-deep K slices. */
export interface GemmTile {
  name: string;
  bm: number;
  bn: number;
  bk: number;
  /** issue the next K slice's loads before the arithmetic on this one */
  prefetch?: boolean;
  /** only bench/gemm-tune picks it (not yet timed on a GPU: never a default) */
  tunedOnly?: boolean;
}
export const GEMM_TILES: readonly GemmTile[] = [
  { name: "128", bm: 128, bn: 128, bk: 8 },
  { name: "64", bm: 64, bn: 64, bk: 16 },
  { name: "32x64", bm: 32, bn: 64, bk: 16 },
  { name: "32", bm: 32, bn: 32, bk: 16 },
  { name: "128p", bm: 128, bn: 128, bk: 8, prefetch: true, tunedOnly: true },
  { name: "64p", bm: 64, bn: 64, bk: 16, prefetch: true, tunedOnly: true },
];

/** Workgroups a tiling launches for a product. */
const gemmGroups = (L: GemmLayout, t: GemmTile) => Math.ceil(L.n / t.bn) * Math.ceil(L.m / t.bm) * L.batch[0] * L.batch[1];

/**
 * The tiling for a product: the largest tile that pads M and N by at most a quarter and still
 * launches `target` workgroups (enough to fill a large GPU); failing that, the smallest tile.
 * The 128 tile is only used when pinned: on an H200 it ran the sd3-seed step at 147 ms against
 * 59 ms for this choice (bench/results/static-h200). `force` (SDC_GEMM_TILE) pins one tile.
 */
export function chooseTile(L: GemmLayout, force?: string, target = 256): GemmTile {
  if (force && force !== "auto") {
    const t = GEMM_TILES.find((x) => x.name === force);
    if (!t) throw new GraphError(`unknown GEMM tile "${force}" (one of ${GEMM_TILES.map((x) => x.name).join(", ")}, auto)`);
    return t;
  }
  const auto = GEMM_TILES.filter((t) => t.bm <= 64 && !t.tunedOnly);
  const padded = (n: number, b: number) => Math.ceil(n / b) * b;
  for (const t of auto) {
    if (padded(L.m, t.bm) > 1.25 * L.m || padded(L.n, t.bn) > 1.25 * L.n) continue;
    if (gemmGroups(L, t) >= target) return t;
  }
  return auto[auto.length - 1];
}

/** A GEMM configuration: a tiling and a split of K into `split` partial products. */
export interface GemmConfig {
  tile: string;
  split: number;
}

/** The key of a product in a tuning table: batch, sizes and which operands are contiguous. */
export function gemmKey(L: GemmLayout): string {
  return `${L.batch[0] * L.batch[1]}:${L.m}x${L.n}x${L.k}:${L.a[3] === 1 ? "k" : "m"}${L.b[3] === 1 ? "n" : "k"}`;
}

/** Special binding id of the shared split-K scratch buffer (the executor resolves it). */
export const SCRATCH = -(2 ** 30);

/** What the GEMM kernel's pieces share: the layout, the tiling, the split and the operands' directions. */
interface GemmShape {
  L: GemmLayout;
  tile: GemmTile;
  split: number;
  /** A contiguous along k: neighbouring threads load neighbouring k */
  aK1: boolean;
  /** B contiguous along n */
  bN1: boolean;
  /** loads per thread of one K slice of A, of B */
  la: number;
  lb: number;
}

/**
 * The loads of one K slice starting at `k0`: straight into shared memory (the measured H200
 * kernels), or into registers ra_e / rb_e that gemmStash then writes to shared memory
 * (prefetching tilings).
 */
function gemmLoads({ L, tile, aK1, bN1, la, lb }: GemmShape, k0: string, into: "shared" | "registers"): string {
  const { bm, bn, bk } = tile;
  const shared = into === "shared";
  let f = "";
  for (let e = 0; e < la; e++) {
    const r = shared ? "va" : `ra${e}`;
    f += `    {
      let idx = lid + ${u(e * 256)};
      let am = ${aK1 ? `idx / ${u(bk)}` : `idx % ${u(bm)}`};
      let ak = ${aK1 ? `idx % ${u(bk)}` : `idx / ${u(bm)}`};
      ${shared ? "var va" : r} = 0.0;
      if (m0 + am < ${u(L.m)} && ${k0} + ak < kEnd) { ${r} = b0[aBase + (m0 + am) * ${u(L.a[2])} + (${k0} + ak) * ${u(L.a[3])}]; }
${shared ? `      As[ak * ${u(bm)} + am] = va;\n` : ""}    }
`;
  }
  for (let e = 0; e < lb; e++) {
    const r = shared ? "vb" : `rb${e}`;
    f += `    {
      let idx = lid + ${u(e * 256)};
      let bk_ = ${bN1 ? `idx / ${u(bn)}` : `idx % ${u(bk)}`};
      let bn_ = ${bN1 ? `idx % ${u(bn)}` : `idx / ${u(bk)}`};
      ${shared ? "var vb" : r} = 0.0;
      if (n0 + bn_ < ${u(L.n)} && ${k0} + bk_ < kEnd) { ${r} = b1[bBase + (${k0} + bk_) * ${u(L.b[2])} + (n0 + bn_) * ${u(L.b[3])}]; }
${shared ? `      Bs[bk_ * ${u(bn)} + bn_] = vb;\n` : ""}    }
`;
  }
  return f;
}

/**
 * The K loop's head: without prefetch, load slice k0 and compute; with prefetch (tile.prefetch),
 * the registers declared, the loads of slice k0 + BK issued before the arithmetic on slice k0,
 * hiding their latency.
 */
function gemmLoopHead(g: GemmShape): string {
  const { tile, aK1, bN1, la, lb } = g;
  const { bm, bn, bk } = tile;
  if (!tile.prefetch) {
    return `  for (var k0 = kBegin; k0 < kEnd; k0 = k0 + ${u(bk)}) {
${gemmLoads(g, "k0", "shared")}    workgroupBarrier();
`;
  }
  let stash = "";
  for (let e = 0; e < la; e++) stash += `    { let idx = lid + ${u(e * 256)}; As[${aK1 ? `(idx % ${u(bk)}) * ${u(bm)} + idx / ${u(bk)}` : `(idx / ${u(bm)}) * ${u(bm)} + idx % ${u(bm)}`}] = ra${e}; }
`;
  for (let e = 0; e < lb; e++) stash += `    { let idx = lid + ${u(e * 256)}; Bs[${bN1 ? `(idx / ${u(bn)}) * ${u(bn)} + idx % ${u(bn)}` : `(idx % ${u(bk)}) * ${u(bn)} + idx / ${u(bk)}`}] = rb${e}; }
`;
  return `${gemmLoads(g, "kBegin", "registers")}  for (var k0 = kBegin; k0 < kEnd; k0 = k0 + ${u(bk)}) {
${stash}    workgroupBarrier();
    let kn = k0 + ${u(bk)};
${gemmLoads(g, "kn", "registers")}`;
}

/** The accumulators c{i}_{j} (and, prefetching, the load registers), and the unrolled multiply-adds of one k. */
function gemmArithmetic({ tile, la, lb }: GemmShape): { decl: string; inner: string } {
  const { bm, bn } = tile;
  const tm = bm / 16;
  const tn = bn / 16;
  let decl = "";
  for (let i = 0; i < tm; i++) for (let j = 0; j < tn; j++) decl += `  var c${i}_${j} = 0.0;\n`;
  if (tile.prefetch) {
    for (let e = 0; e < la; e++) decl += `  var ra${e} = 0.0;
`;
    for (let e = 0; e < lb; e++) decl += `  var rb${e} = 0.0;
`;
  }
  let inner = "";
  for (let i = 0; i < tm; i++) inner += `      let a${i} = As[kk * ${u(bm)} + ty + ${u(16 * i)}];\n`;
  for (let j = 0; j < tn; j++) inner += `      let w${j} = Bs[kk * ${u(bn)} + tx + ${u(16 * j)}];\n`;
  for (let i = 0; i < tm; i++) for (let j = 0; j < tn; j++) inner += `      c${i}_${j} = fma(a${i}, w${j}, c${i}_${j});\n`;
  return { decl, inner };
}

/** The stores of a thread's outputs: alpha and bias applied, or (split) the partial sums to scratch[(s * batches + b) * M * N + m * N + n]. */
function gemmStore({ L, tile, split }: GemmShape, out: string, hasBias: boolean): string {
  const tm = tile.bm / 16;
  const tn = tile.bn / 16;
  const dst = split > 1 ? `${out}[pBase + gm * ${u(L.n)} + gn]` : `${out}[cBase + gm * ${u(L.c[2])} + gn * ${u(L.c[3])}]`;
  const val = (i: number, j: number) => (split > 1 ? `c${i}_${j}` : `c${i}_${j} * f32(${L.alpha})${hasBias ? " + b2[gn]" : ""}`);
  let store = "";
  for (let i = 0; i < tm; i++) {
    store += `  {
    let gm = m0 + ty + ${u(16 * i)};
    if (gm < ${u(L.m)}) {
`;
    for (let j = 0; j < tn; j++) store += `      { let gn = n0 + tx + ${u(16 * j)}; if (gn < ${u(L.n)}) { ${dst} = ${val(i, j)}; } }\n`;
    store += "    }\n  }\n";
  }
  return store;
}

/** The tiled kernel's WGSL: indices of the workgroup's batch, K range and tile, the K loop, the stores. */
function gemmCode(g: GemmShape, nInputs: number, hasBias: boolean): string {
  const { L, tile, split } = g;
  const { bm, bn, bk } = tile;
  const nb = L.batch[0] * L.batch[1];
  const kChunk = split > 1 ? Math.ceil(L.k / split / bk) * bk : L.k;
  const { decl, inner } = gemmArithmetic(g);
  return `${header(nInputs + 1)}
var<workgroup> As: array<f32, ${bm * bk}>;
var<workgroup> Bs: array<f32, ${bn * bk}>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let bz = wid.z / ${u(split)};
  let sp = wid.z % ${u(split)};
  let bb1 = bz / ${u(L.batch[1])};
  let bb2 = bz % ${u(L.batch[1])};
  let aBase = bb1 * ${u(L.a[0])} + bb2 * ${u(L.a[1])};
  let bBase = bb1 * ${u(L.b[0])} + bb2 * ${u(L.b[1])};
  let cBase = bb1 * ${u(L.c[0])} + bb2 * ${u(L.c[1])};
  let pBase = (sp * ${u(nb)} + bz) * ${u(L.m * L.n)};
  let kBegin = sp * ${u(kChunk)};
  let kEnd = min(kBegin + ${u(kChunk)}, ${u(L.k)});
  let m0 = wid.y * ${u(bm)};
  let n0 = wid.x * ${u(bn)};
  let ty = lid / 16u;
  let tx = lid % 16u;
${decl}${gemmLoopHead(g)}    for (var kk = 0u; kk < ${u(bk)}; kk = kk + 1u) {
${inner}    }
    workgroupBarrier();
  }
${gemmStore(g, `b${nInputs}`, hasBias)}}
`;
}

/** The split-K reduction: out[c-layout(b, m, n)] = alpha * sum_s scratch[s][b][m][n] (+ bias[n]). */
function gemmReduceKernel(node: Node, L: GemmLayout, split: number, bias: number | null): Kernel {
  const total = L.batch[0] * L.batch[1] * L.m * L.n;
  const rin = bias !== null ? [SCRATCH, bias] : [SCRATCH];
  const ro = `b${rin.length}`;
  let sum = "";
  for (let t = 0; t < split; t++) sum += `${t ? " + " : ""}b0[i + ${u(t * total)}]`;
  const reduce = `${header(rin.length + 1)}
${LINEAR_256}
  if (i >= ${u(total)}) { return; }
  let n = i % ${u(L.n)};
  let m = (i / ${u(L.n)}) % ${u(L.m)};
  let bz = i / ${u(L.m * L.n)};
  let c = (bz / ${u(L.batch[1])}) * ${u(L.c[0])} + (bz % ${u(L.batch[1])}) * ${u(L.c[1])} + m * ${u(L.c[2])} + n * ${u(L.c[3])};
  ${ro}[c] = (${sum}) * f32(${L.alpha})${bias !== null ? " + b1[n]" : ""};
}
`;
  return { code: reduce, inputs: rin, output: node.id, groups: grid(Math.ceil(total / 256)), label: "gemm_reduce" };
}

/**
 * Tiled strided batched GEMM, fully unrolled: each thread owns TM x TN outputs at rows
 * ty + 16 i and columns tx + 16 j (interleaved, so shared-memory reads and global writes are
 * contiguous across a warp). With split > 1, workgroup z also selects a K range and the
 * partial products go to the scratch buffer, summed (with alpha and bias) by a second kernel.
 */
function gemmKernels(node: Node, tile: GemmTile, split: number): Kernel[] {
  const op = node.op;
  if (op.kind !== "gemm") throw new GraphError("not gemm");
  const L = op.layout;
  const nb = L.batch[0] * L.batch[1];
  const hasBias = op.bias !== null;
  const inputs = hasBias && split === 1 ? [op.a, op.b, op.bias!] : [op.a, op.b];
  const g: GemmShape = { L, tile, split, aK1: L.a[3] === 1, bN1: L.b[3] === 1, la: (tile.bm * tile.bk) / 256, lb: (tile.bn * tile.bk) / 256 };
  const code = gemmCode(g, inputs.length, hasBias);
  const groups: [number, number, number] = [Math.ceil(L.n / tile.bn), Math.ceil(L.m / tile.bm), nb * split];
  if (split === 1) return [{ code, inputs, output: node.id, groups, label: "gemm" }];
  const partial: Kernel = { code, inputs, output: SCRATCH, groups, label: "gemm", scratchFloats: split * nb * L.m * L.n };
  return [partial, gemmReduceKernel(node, L, split, op.bias)];
}

function sumToKernel(g: Graph, node: Node): Kernel {
  const op = node.op;
  if (op.kind !== "sum_to") throw new GraphError("not sum_to");
  const src = g.node(op.src).shape;
  const outR = [...new Array<number>(src.length - node.shape.length).fill(1), ...node.shape];
  const sst = stridesOf(src);
  const kept = src.map((_, d) => d).filter((d) => outR[d] === src[d] && src[d] > 1);
  const red = src.map((_, d) => d).filter((d) => outR[d] === 1 && src[d] > 1);
  const nOut = sizeOf(node.shape);
  const nRed = red.reduce((a, d) => a * src[d], 1);
  // coordinates of the output over the kept axes, and of the reduced index over the reduced axes
  const split = (axes: number[], v: string, pre: string) => {
    let s = `    var ${pre}_r = ${v};\n    var ${pre}_off = 0u;\n`;
    for (let j = axes.length - 1; j >= 0; j--) {
      const d = axes[j];
      s += `    ${pre}_off = ${pre}_off + (${pre}_r % ${u(src[d])}) * ${u(sst[d])}; ${pre}_r = ${pre}_r / ${u(src[d])};\n`;
    }
    return s;
  };
  const scale = `f32(${op.scale})`;
  if (nRed <= 32) {
    const code = `${header(2)}
${LINEAR_256}
  if (i >= ${u(nOut)}) { return; }
${split(kept, "i", "o")}
  var s = 0.0;
  for (var j = 0u; j < ${u(nRed)}; j = j + 1u) {
${split(red, "j", "q")}
    s = s + b0[o_off + q_off];
  }
  b1[i] = s * ${scale};
}
`;
    return { code, inputs: [op.src], output: node.id, groups: grid(Math.ceil(nOut / 256)), label: "sum_to" };
  }
  const code = `${header(2)}
var<workgroup> red: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = wid.y * nwg.x + wid.x;
  if (o >= ${u(nOut)}) { return; }
${split(kept, "o", "o")}
  var s = 0.0;
  for (var j = lid; j < ${u(nRed)}; j = j + 256u) {
${split(red, "j", "q")}
    s = s + b0[o_off + q_off];
  }
  red[lid] = s;
  workgroupBarrier();
  for (var w = 128u; w > 0u; w = w >> 1u) {
    if (lid < w) { red[lid] = red[lid] + red[lid + w]; }
    workgroupBarrier();
  }
  if (lid == 0u) { b1[o] = red[0] * ${scale}; }
}
`;
  return { code, inputs: [op.src], output: node.id, groups: grid(nOut), label: "sum_to" };
}

const ROW_PRELUDE = `
var<workgroup> red: array<f32, 64>;
fn wsum(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var w = 32u; w > 0u; w = w >> 1u) {
    if (lid < w) { red[lid] = red[lid] + red[lid + w]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
fn wmax(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var w = 32u; w > 0u; w = w >> 1u) {
    if (lid < w) { red[lid] = max(red[lid], red[lid + w]); }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
`;

/** Row-wise kernels (one 64-thread workgroup per row of the last axis). */
function rowKernel(node: Node, inputs: number[], label: string, body: (d: string) => string): Kernel {
  const d = node.shape[node.shape.length - 1];
  const rows = sizeOf(node.shape) / d;
  const code = `${header(inputs.length + 1)}${ROW_PRELUDE}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = wid.y * nwg.x + wid.x;
  if (row >= ${u(rows)}) { return; }
  let base = row * ${u(d)};
${body(u(d))}
}
`;
  return { code, inputs, output: node.id, groups: grid(rows), label };
}

function layerNormKernel(node: Node): Kernel {
  const op = node.op;
  if (op.kind === "layer_norm") {
    return rowKernel(node, [op.src], "layer_norm", (d) => `  var s = 0.0;
  for (var j = lid; j < ${d}; j = j + 64u) { s = s + b0[base + j]; }
  let mean = wsum(s, lid) / f32(${d});
  var q = 0.0;
  for (var j = lid; j < ${d}; j = j + 64u) { let c = b0[base + j] - mean; q = q + c * c; }
  let rstd = inverseSqrt(wsum(q, lid) / f32(${d}) + f32(${op.eps}));
  for (var j = lid; j < ${d}; j = j + 64u) { b1[base + j] = (b0[base + j] - mean) * rstd; }`);
  }
  if (op.kind !== "layer_norm_grad") throw new GraphError("not layer_norm");
  return rowKernel(node, [op.x, op.dy], "layer_norm_grad", (d) => `  var s = 0.0;
  for (var j = lid; j < ${d}; j = j + 64u) { s = s + b0[base + j]; }
  let mean = wsum(s, lid) / f32(${d});
  var q = 0.0;
  for (var j = lid; j < ${d}; j = j + 64u) { let c = b0[base + j] - mean; q = q + c * c; }
  let rstd = inverseSqrt(wsum(q, lid) / f32(${d}) + f32(${op.eps}));
  var sd = 0.0;
  var sdx = 0.0;
  for (var j = lid; j < ${d}; j = j + 64u) { let dy = b1[base + j]; sd = sd + dy; sdx = sdx + dy * (b0[base + j] - mean) * rstd; }
  let mdy = wsum(sd, lid) / f32(${d});
  let mdyx = wsum(sdx, lid) / f32(${d});
  for (var j = lid; j < ${d}; j = j + 64u) { b2[base + j] = rstd * (b1[base + j] - mdy - (b0[base + j] - mean) * rstd * mdyx); }`);
}

function softmaxKernel(node: Node): Kernel {
  const op = node.op;
  if (op.kind === "softmax") {
    return rowKernel(node, [op.src], "softmax", (d) => `  var mx = -3.0e38;
  for (var j = lid; j < ${d}; j = j + 64u) { mx = max(mx, b0[base + j]); }
  let m = wmax(mx, lid);
  var s = 0.0;
  for (var j = lid; j < ${d}; j = j + 64u) { s = s + exp(b0[base + j] - m); }
  let inv = 1.0 / wsum(s, lid);
  for (var j = lid; j < ${d}; j = j + 64u) { b1[base + j] = exp(b0[base + j] - m) * inv; }`);
  }
  if (op.kind !== "softmax_grad") throw new GraphError("not softmax");
  return rowKernel(node, [op.y, op.dy], "softmax_grad", (d) => `  var s = 0.0;
  for (var j = lid; j < ${d}; j = j + 64u) { s = s + b0[base + j] * b1[base + j]; }
  let t = wsum(s, lid);
  for (var j = lid; j < ${d}; j = j + 64u) { b2[base + j] = b0[base + j] * (b1[base + j] - t); }`);
}

function copyKernel(g: Graph, node: Node): Kernel {
  const op = node.op;
  const n = sizeOf(node.shape);
  switch (op.kind) {
    case "slice":
    case "pad": {
      const src = g.node(op.src).shape;
      const sst = stridesOf(src);
      const terms = node.shape.map((_, d) => (d === op.axis ? `a * ${u(sst[d])}` : `c${d} * ${u(sst[d])}`)).join(" + ");
      if (op.kind === "slice") return pointwise(n, [op.src], node.id, "slice", node.shape, `  let a = c${op.axis} + ${u(op.start)};\n  b1[i] = b0[${terms}];`);
      return pointwise(n, [op.src], node.id, "pad", node.shape, `  var v = 0.0;\n  if (c${op.axis} >= ${u(op.start)} && c${op.axis} < ${u(op.start + src[op.axis])}) {\n    let a = c${op.axis} - ${u(op.start)};\n    v = b0[${terms}];\n  }\n  b1[i] = v;`);
    }
    case "permute": {
      const sst = stridesOf(g.node(op.src).shape);
      return pointwise(n, [op.src], node.id, "permute", node.shape, `  b1[i] = b0[${offset(op.perm.map((p) => sst[p]))}];`);
    }
    case "concat": {
      let at = 0;
      let body = "";
      op.inputs.forEach((id, k) => {
        const s = g.node(id).shape;
        const sst = stridesOf(s);
        const terms = node.shape.map((_, d) => (d === op.axis ? `(c${d} - ${u(at)}) * ${u(sst[d])}` : `c${d} * ${u(sst[d])}`)).join(" + ");
        body += `  ${k ? "else " : ""}if (c${op.axis} < ${u(at + s[op.axis])}) { b${op.inputs.length}[i] = b${k}[${terms}]; }\n`;
        at += s[op.axis];
      });
      return pointwise(n, op.inputs, node.id, "concat", node.shape, body);
    }
    default:
      throw new GraphError(`not a copy: ${op.kind}`);
  }
}

/**
 * im2col (one thread per column entry: the pixel it copies, or zero) and col2im (one thread per
 * pixel: the sum of the column entries taken from it, in (oh, ow) order, as the CPU kernels).
 */
function windowKernel(g: Graph, node: Node): Kernel {
  const op = node.op;
  if (op.kind !== "im2col" && op.kind !== "col2im") throw new GraphError(`not a window op: ${op.kind}`);
  const [, h, w, c] = op.kind === "im2col" ? g.node(op.src).shape : node.shape;
  const [, ho, wo] = op.kind === "im2col" ? node.shape : g.node(op.src).shape;
  const [k, s, p] = [op.k, op.stride, op.pad];
  const n = sizeOf(node.shape);
  if (op.kind === "im2col") {
    const body = `  let blk = c3 / ${u(c)};
  let y = i32(c1 * ${u(s)} + blk / ${u(k)}) - ${p};
  let x = i32(c2 * ${u(s)} + blk % ${u(k)}) - ${p};
  var v = 0.0;
  if (y >= 0 && y < ${h} && x >= 0 && x < ${w}) { v = b0[((c0 * ${u(h)} + u32(y)) * ${u(w)} + u32(x)) * ${u(c)} + c3 % ${u(c)}]; }
  b1[i] = v;`;
    return pointwise(n, [op.src], node.id, "im2col", node.shape, body);
  }
  const body = `  let t = c1 + ${u(p)};
  let q = c2 + ${u(p)};
  var oh0 = 0u;
  if (t >= ${u(k)}) { oh0 = (t - ${u(k)}) / ${u(s)} + 1u; }
  var ow0 = 0u;
  if (q >= ${u(k)}) { ow0 = (q - ${u(k)}) / ${u(s)} + 1u; }
  let oh1 = min(${u(ho - 1)}, t / ${u(s)});
  let ow1 = min(${u(wo - 1)}, q / ${u(s)});
  var acc = 0.0;
  for (var oh = oh0; oh <= oh1; oh = oh + 1u) {
    for (var ow = ow0; ow <= ow1; ow = ow + 1u) {
      acc = acc + b0[((c0 * ${u(ho)} + oh) * ${u(wo)} + ow) * ${u(k * k * c)} + ((t - oh * ${u(s)}) * ${u(k)} + q - ow * ${u(s)}) * ${u(c)} + c3];
    }
  }
  b1[i] = acc;`;
  return pointwise(n, [op.src], node.id, "col2im", node.shape, body);
}

/** The kernel of a node, or null for nodes that need none (inputs, params, constants, views). */
export interface KernelOptions {
  /** pin one GEMM tiling (GEMM_TILES names) instead of choosing per shape */
  gemmTile?: string;
  /** split every product's K this many ways (tuning and tests) */
  gemmSplit?: number;
  /** tuned configurations by gemmKey (bench/gemm-tune.ts); shapes not in it use chooseTile */
  gemmTable?: Record<string, GemmConfig>;
}

/** The GEMM configuration for a product under `opts`. */
export function gemmConfig(L: GemmLayout, opts: KernelOptions = {}): GemmConfig {
  if ((opts.gemmTile && opts.gemmTile !== "auto") || opts.gemmSplit) return { tile: chooseTile(L, opts.gemmTile).name, split: opts.gemmSplit ?? 1 };
  const tuned = opts.gemmTable?.[gemmKey(L)];
  if (tuned) return tuned;
  return heuristicConfig(L);
}

/**
 * A configuration for a product that was not tuned, following what tuning chose on the H200
 * (gemm-table.ts): a product that launches fewer than 256 64x64 workgroups and has a deep K is
 * split 8 ways (K >= 256; the partial sums fill the GPU), with 32x32 tiles when M <= 64; other
 * products use chooseTile and no split.
 */
export function heuristicConfig(L: GemmLayout): GemmConfig {
  const g64 = gemmGroups(L, GEMM_TILES.find((t) => t.name === "64")!);
  if (g64 < 256 && L.k >= 256) return { tile: L.m <= 64 ? "32" : "64", split: 8 };
  return { tile: chooseTile(L).name, split: 1 };
}

/** The kernels of a node (none for inputs, parameters, constants and views). */
export function kernelsFor(g: Graph, node: Node, opts: KernelOptions = {}): Kernel[] {
  if (node.op.kind === "gemm") {
    const cfg = gemmConfig(node.op.layout, opts);
    const tile = GEMM_TILES.find((t) => t.name === cfg.tile);
    if (!tile || !(cfg.split >= 1)) throw new GraphError(`bad GEMM configuration ${JSON.stringify(cfg)}`);
    return gemmKernels(node, tile, Math.min(cfg.split, Math.ceil(node.op.layout.k / tile.bk)));
  }
  if (node.op.kind === "concat" && node.op.inputs.length > MAX_CONCAT_INPUTS) return wideConcatKernels(g, node);
  const k = kernelFor(g, node);
  return k ? [k] : [];
}

/** Inputs one concat kernel binds: 8 storage buffers per shader stage (WebGPU's default limit), one the output. */
export const MAX_CONCAT_INPUTS = 7;

/**
 * A concat of more inputs than one kernel may bind (the gradient of a 9-way chunk):
 * one kernel per group of MAX_CONCAT_INPUTS inputs, each writing its own range of the output
 * along the axis (the ranges are disjoint, so the kernels may run in any order).
 */
function wideConcatKernels(g: Graph, node: Node): Kernel[] {
  const op = node.op;
  if (op.kind !== "concat") throw new GraphError("not a concat");
  const outStrides = stridesOf(node.shape);
  const kernels: Kernel[] = [];
  let at = 0;
  for (let first = 0; first < op.inputs.length; first += MAX_CONCAT_INPUTS) {
    const group = op.inputs.slice(first, first + MAX_CONCAT_INPUTS);
    const extent = group.reduce((sum, id) => sum + g.node(id).shape[op.axis], 0);
    const sub = node.shape.map((d, i) => (i === op.axis ? extent : d));
    const out = node.shape.map((_, d) => (d === op.axis ? `(c${d} + ${u(at)}) * ${u(outStrides[d])}` : `c${d} * ${u(outStrides[d])}`)).join(" + ");
    let within = 0;
    let body = `  let o_ = ${out};\n`;
    group.forEach((id, k) => {
      const s = g.node(id).shape;
      const sst = stridesOf(s);
      const terms = sub.map((_, d) => (d === op.axis ? `(c${d} - ${u(within)}) * ${u(sst[d])}` : `c${d} * ${u(sst[d])}`)).join(" + ");
      body += `  ${k ? "else " : ""}if (c${op.axis} < ${u(within + s[op.axis])}) { b${group.length}[o_] = b${k}[${terms}]; }\n`;
      within += s[op.axis];
    });
    kernels.push(pointwise(sizeOf(sub), group, node.id, "concat", sub, body));
    at += extent;
  }
  return kernels;
}

function kernelFor(g: Graph, node: Node): Kernel | null {
  switch (node.op.kind) {
    case "input":
    case "param":
    case "const":
    case "view":
      return null;
    case "ew":
      return ewKernel(g, node);
    case "gemm":
      throw new GraphError("gemm kernels come from kernelsFor");
    case "sum_to":
      return sumToKernel(g, node);
    case "layer_norm":
    case "layer_norm_grad":
      return layerNormKernel(node);
    case "softmax":
    case "softmax_grad":
      return softmaxKernel(node);
    case "slice":
    case "pad":
    case "permute":
    case "concat":
      return copyKernel(g, node);
    case "im2col":
    case "col2im":
      return windowKernel(g, node);
  }
}

