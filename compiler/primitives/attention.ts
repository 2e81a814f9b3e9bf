/** Attention and rotary position embedding. */
import { type Dim, dimOp, shapeToString, type Value } from "../values.ts";
import { flt, bool, tensor, num, rank, floatTensor, positive, X } from "./rules.ts";
import { type PrimContext, type Primitive } from "./types.ts";

export const ATTENTION: Record<string, Primitive> = {
  attention: {
    name: "attention",
    doc: "multi-head scaled dot-product attention; q [B, S, H*d], k and v [B, S', H*d] (or [B, S', G*d] with kv_heads: G)",
    args: [
      { name: "q", type: "tensor", doc: "queries" },
      { name: "k", type: "tensor", doc: "keys" },
      { name: "v", type: "tensor", doc: "values" },
      { name: "heads", type: "int", doc: "number of heads" },
      { name: "causal", type: "bool", default: bool(false), doc: "causal mask: query i attends to keys j <= i + S' - S (the last queries see every key)" },
      { name: "mask", type: "tensor", optional: true, doc: "float32, 1 = attend, 0 = not: a key padding mask [B, S'], or a mask per query [B, S, S'] or [1, S, S'] (e.g. neighbourhood_mask); masked scores become -1e9: a row with every key masked is the plain average of v, not NaN; combines with causal" },
      { name: "kv_heads", type: "int", optional: true, doc: "grouped-query attention: k and v have G heads (G divides heads); query head h reads kv head floor(h / (heads / G))" },
      { name: "scale", type: "float", optional: true, doc: "the factor of the scores q k^T (default 1 / sqrt(d), d the head width); e.g. a larger constant for cosine-similarity attention of normalised q and k" },
    ],
    runtime: "attention",
    example: { q: "[B, N, D]", k: "[B, M, D]", v: "[B, M, D]", heads: "heads" },
    infer(a, c) {
      const q = tensor(a, "q");
      const k = tensor(a, "k");
      const v = tensor(a, "v");
      rank(c, "q", q.shape, 3, "attention");
      rank(c, "k", k.shape, 3, "attention");
      rank(c, "v", v.shape, 3, "attention");
      c.expectEq("k", k.shape[0], q.shape[0], "attention: batch of k must match q");
      const heads = num(a, "heads");
      positive(c, "heads", heads, "heads");
      const d = c.div("heads", q.shape[2], heads, "attention: heads must divide the width");
      if (a.kv_heads) {
        const g = num(a, "kv_heads");
        positive(c, "kv_heads", g, "kv_heads");
        c.div("kv_heads", heads, g, "attention: kv_heads must divide heads");
        c.expectEq("k", k.shape[2], dimOp("*", g, d), "attention: width of k must be kv_heads * the head width (q's width / heads)");
      } else c.expectEq("k", k.shape[2], q.shape[2], "attention: width of k must match q");
      c.expectEq("v", v.shape[1], k.shape[1], "attention: sequence length of v must match k");
      c.expectEq("v", v.shape[0], q.shape[0], "attention: batch of v must match q");
      c.expectEq("v", v.shape[2], k.shape[2], "attention: width of v must match k");
      if (a.scale) {
        const scale = num(a, "scale");
        if (typeof scale === "number" && !(scale > 0 && Number.isFinite(scale))) c.fail("scale", "SDC407", `attention: scale must be a positive number, got ${scale}`);
      }
      if (a.mask) checkMask(c, tensor(a, "mask"), q.shape, k.shape);
      return floatTensor([q.shape[0], q.shape[1], q.shape[2]]);
    },
  },
  neighbourhood_mask: {
    name: "neighbourhood_mask",
    doc: "the k x k neighbourhood attention mask of an h x w token grid (tokens row-major), as NATTEN's windows: query (i, j) attends to rows clamp(i - k // 2, 0, h - k) .. + k - 1 and the columns likewise (shifted inside the grid at the borders, always k x k keys); float32 [1, h*w, h*w], 1 = attend, for attention's mask",
    args: [
      { name: "h", type: "int", doc: "grid rows" },
      { name: "w", type: "int", doc: "grid columns" },
      { name: "kernel", type: "int", doc: "window side k (odd, at most h and w)" },
    ],
    runtime: "neighbourhoodMask",
    example: { h: "H", w: "W", kernel: "7" },
    infer(a, c) {
      const [h, w, k] = [num(a, "h"), num(a, "w"), num(a, "kernel")];
      positive(c, "h", h, "neighbourhood_mask: h");
      positive(c, "w", w, "neighbourhood_mask: w");
      positive(c, "kernel", k, "neighbourhood_mask: kernel");
      if (typeof k === "number" && k % 2 === 0) c.fail("kernel", "SDC407", `neighbourhood_mask: kernel must be odd (a window centred on its query), got ${k}`);
      for (const [arg, side] of [["h", h], ["w", w]] as const) {
        if (typeof k === "number" && typeof side === "number" && k > side) c.fail("kernel", "SDC407", `neighbourhood_mask: kernel ${k} is larger than the grid's ${arg} = ${side}`);
      }
      const n = dimOp("*", h, w);
      return floatTensor([1, n, n]);
    },
  },
  rope: {
    name: "rope",
    doc: "rotary position embedding of x [B, N, H*d] (each head alike) at positions pos [N, A] or [B, N, A]: axis a rotates axes_dim[a] channels with frequencies theta^(-2j/axes_dim[a]) (Flux's EmbedND + apply_rope)",
    args: [
      X,
      { name: "pos", type: "tensor", doc: "float32 position ids [N, A] or [B, N, A], one column per axis" },
      { name: "heads", type: "int", doc: "number of heads (RoPE acts on each head's d = width / heads channels)" },
      { name: "axes_dim", type: "ints", doc: "channels per axis (even, adding up to d)" },
      { name: "theta", type: "float", default: flt(10000), doc: "frequency base" },
      { name: "interleaved", type: "bool", default: bool(true), doc: "rotate pairs (2i, 2i+1) as Flux; false: the rotate-half pairs (i, i + d/2) of GPT-NeoX and HF Llama" },
    ],
    runtime: "rope",
    example: { x: "[B, N, D]", pos: "[N, 3]", heads: "H", axes_dim: "[16, 56, 56]" },
    infer(a, c) {
      const x = tensor(a, "x");
      const pos = tensor(a, "pos");
      rank(c, "x", x.shape, 3, "rope");
      if (pos.dtype !== "float32") c.fail("pos", "SDC401", `rope: positions must be float32, got ${pos.dtype} ${shapeToString(pos.shape)}`);
      if (pos.shape.length !== 2 && pos.shape.length !== 3) c.fail("pos", "SDC501", `rope needs positions [N, A] or [B, N, A], got rank ${pos.shape.length} ${shapeToString(pos.shape)}`);
      const heads = num(a, "heads");
      positive(c, "heads", heads, "heads");
      const d = c.div("heads", x.shape[2], heads, "rope: heads must divide the width");
      const axes = (a.axes_dim as { items: Value[] }).items.map((v) => (v as { v: Dim }).v);
      if (axes.length === 0) c.fail("axes_dim", "SDC407", "rope: axes_dim needs at least one axis");
      // a block parameter is symbolic here (checked once per block): numbers are checked now
      for (const ad of axes) {
        if (typeof ad === "number" && (!Number.isInteger(ad) || ad <= 0 || ad % 2)) c.fail("axes_dim", "SDC407", `rope: each axis needs a positive even number of channels, got ${ad}`);
      }
      const total = axes.reduce((p: Dim, q) => dimOp("+", p, q), 0);
      c.expectEq("axes_dim", total, d, "rope: axes_dim must add up to the head width (width / heads)");
      const lead = pos.shape.length - 2;
      if (lead) c.expectEq("pos", pos.shape[0], x.shape[0], "rope: batch of pos must match x");
      c.expectEq("pos", pos.shape[lead], x.shape[1], "rope: positions must have one row per token of x");
      c.expectEq("pos", pos.shape[lead + 1], axes.length, "rope: positions need one column per entry of axes_dim");
      const theta = num(a, "theta");
      if (typeof theta === "number" && !(theta > 0 && Number.isFinite(theta))) c.fail("theta", "SDC407", `rope: theta must be positive, got ${theta}`);
      return floatTensor(x.shape);
    },
  },
};

/** attention's mask: float32, [B, S'] (key padding) or [B or 1, S, S'] (per query). */
function checkMask(c: PrimContext, m: { dtype: string; shape: Dim[] }, q: Dim[], k: Dim[]) {
  if (m.dtype !== "float32") c.fail("mask", "SDC401", `attention: the mask must be float32 (1 = attend, 0 = not), got ${m.dtype} ${shapeToString(m.shape)}`);
  if (m.shape.length !== 2 && m.shape.length !== 3) c.fail("mask", "SDC501", `attention's mask needs [B, S'] (key padding) or [B, S, S'] (per query), got rank ${m.shape.length} ${shapeToString(m.shape)}`);
  if (m.shape.length === 3) {
    if (m.shape[0] !== 1) c.expectEq("mask", m.shape[0], k[0], "attention: batch of the mask must be 1 or match k");
    c.expectEq("mask", m.shape[1], q[1], "attention: the mask's rows must match the query length");
  } else c.expectEq("mask", m.shape[0], k[0], "attention: batch of the mask must match k");
  c.expectEq("mask", m.shape[m.shape.length - 1], k[1], "attention: length of the mask must match the key length");
}
