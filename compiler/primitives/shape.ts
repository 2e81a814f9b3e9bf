/** Layout ops (chunk ... unpatchify), reductions and constant tensors. */
import { type Dim, dimOp, dimToString, isSym, shapeToString, type Value } from "../values.ts";
import { int, flt, tensor, num, normAxis, minRank, rank, floatTensor, positive, X, intList, product, factors, cancel } from "./rules.ts";
import { type PrimArg, type Primitive } from "./types.ts";

/** zeros, ones, full: a constant float32 tensor of a shape (sizes may be symbolic, e.g. the batch B). */
function constantPrim(name: "zeros" | "ones" | "full", doc: string): Primitive {
  const args: PrimArg[] = [{ name: "shape", type: "ints", doc: "shape" }];
  if (name === "full") args.push({ name: "value", type: "float", doc: "the value of every element" });
  return {
    name,
    doc,
    args,
    runtime: name,
    example: name === "full" ? { shape: "[B, N, 1]", value: "0.5" } : { shape: "[B, N, 1]" },
    infer(a, c) {
      const dims = intList(a, "shape");
      for (const d of dims) positive(c, "shape", d, `${name}: a size`);
      return floatTensor(dims);
    },
  };
}


/** Most parts `chunk` makes (each is a value the checker and the generated code hold). */
export const MAX_CHUNKS = 4096;

export const SHAPE: Record<string, Primitive> = {
  chunk: {
    name: "chunk",
    doc: "split into n equal parts along an axis (a tuple)",
    args: [X, { name: "n", type: "int", doc: "number of parts" }, { name: "axis", type: "int", default: int(-1), doc: "axis" }],
    runtime: "chunk",
    example: { x: "[B, N, D]", n: "3" },
    infer(a, c) {
      const x = tensor(a, "x");
      const n = num(a, "n");
      if (typeof n !== "number") c.fail("n", "SDC401", "chunk count must be a constant");
      positive(c, "n", n, "n");
      // the parts are a tuple: 2^31 of them would exhaust the memory before any size is known
      if ((n as number) > MAX_CHUNKS) c.fail("n", "SDC407", `chunk: at most ${MAX_CHUNKS} parts, got ${n}`);
      const ax = normAxis(num(a, "axis"), x.shape.length, c);
      const part = c.div("n", x.shape[ax], n, `chunk: axis ${ax} must split into ${n} equal parts`);
      return { t: "tuple", items: Array.from({ length: n as number }, () => floatTensor(x.shape.map((d, i) => (i === ax ? part : d)))) };
    },
  },
  split: {
    name: "split",
    doc: "split along an axis into parts of the given sizes (a tuple)",
    args: [X, { name: "sizes", type: "ints", doc: "part sizes" }, { name: "axis", type: "int", default: int(-1), doc: "axis" }],
    runtime: "split",
    example: { x: "[B, N, D]", sizes: "[a, b]", axis: "1" },
    infer(a, c) {
      const x = tensor(a, "x");
      const sizes = (a.sizes as { items: Value[] }).items.map((v) => (v as { v: Dim }).v);
      const ax = normAxis(num(a, "axis"), x.shape.length, c);
      const total = sizes.reduce((p: Dim, q) => dimOp("+", p, q), 0);
      c.expectEq("sizes", total, x.shape[ax], `split: the sizes must add up to axis ${ax}`);
      return { t: "tuple", items: sizes.map((s) => floatTensor(x.shape.map((d, i) => (i === ax ? s : d)))) };
    },
  },
  concat: {
    name: "concat",
    doc: "concatenate tensors along an axis",
    args: [{ name: "axis", type: "int", default: int(-1), doc: "axis" }],
    variadic: true,
    runtime: "concat",
    example: { xs: ["[B, N, D]", "[B, M, D]"], axis: "1" },
    infer(a, c) {
      const xs = (a.xs as { items: Value[] }).items as { t: "tensor"; shape: Dim[]; dtype: "float32" | "int32" }[];
      if (xs.length < 1) c.fail("xs", "SDC400", "concat needs at least one tensor");
      const r = xs[0].shape.length;
      const ax = normAxis(num(a, "axis"), r, c);
      let total: Dim = 0;
      xs.forEach((x, k) => {
        if (x.shape.length !== r) c.fail(`xs.${k}`, "SDC501", `concat: tensor ${k + 1} has rank ${x.shape.length}, the first has rank ${r}`);
        x.shape.forEach((d, i) => {
          if (i !== ax) c.expectEq(`xs.${k}`, d, xs[0].shape[i], `concat: tensor ${k + 1} must match the first on axis ${i}`);
        });
        total = dimOp("+", total, x.shape[ax]);
      });
      return { t: "tensor", dtype: xs[0].dtype, shape: xs[0].shape.map((d, i) => (i === ax ? total : d)) };
    },
  },
  unsqueeze: {
    name: "unsqueeze",
    doc: "insert an axis of size 1",
    args: [X, { name: "axis", type: "int", doc: "position of the new axis" }],
    runtime: "unsqueeze",
    example: { x: "[B, D]", axis: "1" },
    infer(a, c) {
      const x = tensor(a, "x");
      const ax = normAxis(num(a, "axis"), x.shape.length + 1, c);
      const s = [...x.shape];
      s.splice(ax, 0, 1);
      return { t: "tensor", dtype: x.dtype, shape: s };
    },
  },
  mean: {
    name: "mean",
    doc: "mean over an axis (removed)",
    args: [X, { name: "axis", type: "int", doc: "axis" }],
    runtime: "mean",
    example: { x: "[B, N, D]", axis: "1" },
    infer(a, c) {
      const x = tensor(a, "x");
      const ax = normAxis(num(a, "axis"), x.shape.length, c);
      return floatTensor(x.shape.filter((_, i) => i !== ax));
    },
  },
  reshape: {
    name: "reshape",
    doc: "the same elements in a new shape (row-major); one size may be -1 (inferred); the element counts must agree",
    args: [X, { name: "shape", type: "ints", doc: "the new shape: sizes, symbolic sizes (B), at most one -1" }],
    runtime: "reshape",
    example: { x: "[B, N, D]", shape: "[B, N, h, -1]" },
    infer(a, c) {
      const x = tensor(a, "x");
      const dims = intList(a, "shape");
      const holes = dims.filter((d) => d === -1).length;
      if (holes > 1) c.fail("shape", "SDC407", `reshape: at most one size may be -1, got ${shapeToString(dims)}`);
      for (const d of dims) if (typeof d === "number" && d !== -1 && (!Number.isInteger(d) || d <= 0)) c.fail("shape", "SDC407", `reshape: sizes must be positive (or one -1), got ${shapeToString(dims)}`);
      const have = factors(x.shape);
      const want = factors(dims.filter((d) => d !== -1));
      const rest = cancel(have, want);
      if (holes) {
        if (rest.extra.length || rest.num % 1 !== 0) {
          if (!c.symbolic) c.fail("shape", "SDC502", `reshape: ${shapeToString(x.shape)} (${dimToString(product(x.shape))} elements) does not split into ${shapeToString(dims)}`);
          const whole = Number.isInteger(rest.num);
          const hole = dimOp("/", product([whole ? rest.num : have.num, ...rest.left]), product([whole ? 1 : want.num, ...rest.extra]));
          return { t: "tensor", dtype: x.dtype, shape: dims.map((d) => (d === -1 ? hole : d)) };
        }
        return { t: "tensor", dtype: x.dtype, shape: dims.map((d) => (d === -1 ? rest.left.reduce((p: Dim, q) => dimOp("*", p, q), rest.num) : d)) };
      }
      if (rest.extra.length || rest.left.length || rest.num !== 1) {
        if (!c.symbolic || (!rest.extra.length && !rest.left.length)) c.fail("shape", "SDC500", `reshape: ${shapeToString(x.shape)} has ${dimToString(product(x.shape))} elements, ${shapeToString(dims)} has ${dimToString(product(dims))}`);
      }
      return { t: "tensor", dtype: x.dtype, shape: dims };
    },
  },
  permute: {
    name: "permute",
    doc: "reorder the axes: output axis i is input axis perm[i]",
    args: [X, { name: "perm", type: "ints", doc: "a permutation of 0 .. rank - 1 (negative counts from the end)" }],
    runtime: "permute",
    example: { x: "[B, N, H, d]", perm: "[0, 2, 1, 3]" },
    infer(a, c) {
      const x = tensor(a, "x");
      const perm = intList(a, "perm");
      if (perm.length !== x.shape.length) c.fail("perm", "SDC501", `permute: ${perm.length} axes for a rank-${x.shape.length} tensor ${shapeToString(x.shape)}`);
      const axes = perm.map((p) => normAxis(p, x.shape.length, c, "perm"));
      if (new Set(axes).size !== axes.length) c.fail("perm", "SDC407", `permute: ${shapeToString(perm)} is not a permutation (an axis repeats)`);
      return { t: "tensor", dtype: x.dtype, shape: axes.map((p) => x.shape[p]) };
    },
  },
  transpose: {
    name: "transpose",
    doc: "swap two axes",
    args: [X, { name: "a", type: "int", doc: "first axis" }, { name: "b", type: "int", doc: "second axis" }],
    runtime: "transpose",
    example: { x: "[B, N, D]", a: "1", b: "2" },
    infer(a, c) {
      const x = tensor(a, "x");
      const i = normAxis(num(a, "a"), x.shape.length, c, "a");
      const j = normAxis(num(a, "b"), x.shape.length, c, "b");
      const s = [...x.shape];
      [s[i], s[j]] = [s[j], s[i]];
      return { t: "tensor", dtype: x.dtype, shape: s };
    },
  },
  slice: {
    name: "slice",
    doc: "the elements start .. end - 1 along an axis (negative bounds count from the end, as in Python)",
    args: [X, { name: "start", type: "int", doc: "first index" }, { name: "end", type: "int", doc: "one past the last index" }, { name: "axis", type: "int", default: int(-1), doc: "axis" }],
    runtime: "slice",
    example: { x: "[B, N, D]", start: "1", end: "-1", axis: "1" },
    infer(a, c) {
      const x = tensor(a, "x");
      const ax = normAxis(num(a, "axis"), x.shape.length, c);
      const len = x.shape[ax];
      const bound = (arg: string): Dim => {
        const v = num(a, arg);
        if (typeof v === "number" && v < 0) return typeof len === "number" ? v + len : dimOp("-", len, -v);
        return v;
      };
      const [s, e] = [bound("start"), bound("end")];
      if (typeof len === "number") {
        if (typeof s === "number" && (s < 0 || s >= len)) c.fail("start", "SDC407", `slice: start ${dimToString(num(a, "start"))} is out of range for axis ${ax} of size ${len}`);
        if (typeof e === "number" && (e <= 0 || e > len)) c.fail("end", "SDC407", `slice: end ${dimToString(num(a, "end"))} is out of range for axis ${ax} of size ${len}`);
      }
      if (typeof s === "number" && typeof e === "number" && e <= s) c.fail("end", "SDC407", `slice: end ${dimToString(num(a, "end"))} must be after start ${dimToString(num(a, "start"))} (an empty slice)`);
      // (N - 1) - 1 is N - 2
      const n = typeof s === "number" && isSym(e) && e.op === "-" && typeof e.b === "number" ? dimOp("-", e.a, e.b + s) : dimOp("-", e, s);
      return { t: "tensor", dtype: x.dtype, shape: x.shape.map((d, i) => (i === ax ? n : d)) };
    },
  },
  repeat: {
    name: "repeat",
    doc: "tile n copies along an axis ([a, b] -> [a, b, a, b], as torch's Tensor.repeat)",
    args: [X, { name: "n", type: "int", doc: "number of copies" }, { name: "axis", type: "int", default: int(-1), doc: "axis" }],
    runtime: "repeat",
    example: { x: "[B, N, D]", n: "2", axis: "1" },
    infer(a, c) {
      const x = tensor(a, "x");
      const n = num(a, "n");
      positive(c, "n", n, "n");
      const ax = normAxis(num(a, "axis"), x.shape.length, c);
      return { t: "tensor", dtype: x.dtype, shape: x.shape.map((d, i) => (i === ax ? dimOp("*", n, d) : d)) };
    },
  },
  broadcast_to: {
    name: "broadcast_to",
    doc: "expand to a shape by numpy broadcasting (size-1 axes and missing leading axes are repeated)",
    args: [X, { name: "shape", type: "ints", doc: "the target shape" }],
    runtime: "broadcastTo",
    example: { x: "[B, 1, D]", shape: "[B, N, D]" },
    infer(a, c) {
      const x = tensor(a, "x");
      const dims = intList(a, "shape");
      for (const d of dims) positive(c, "shape", d, "broadcast_to: a size");
      if (dims.length < x.shape.length) c.fail("shape", "SDC501", `broadcast_to: cannot broadcast rank ${x.shape.length} ${shapeToString(x.shape)} to rank ${dims.length} ${shapeToString(dims)}`);
      const off = dims.length - x.shape.length;
      x.shape.forEach((d, i) => {
        if (d !== 1) c.expectEq("shape", dims[i + off], d, `broadcast_to: cannot broadcast ${shapeToString(x.shape)} to ${shapeToString(dims)} (axis ${i + off})`);
      });
      return { t: "tensor", dtype: x.dtype, shape: dims };
    },
  },
  pad: {
    name: "pad",
    doc: "pad an axis with `before` and `after` elements of a constant value",
    args: [X, { name: "before", type: "int", doc: "elements before" }, { name: "after", type: "int", doc: "elements after" }, { name: "axis", type: "int", default: int(-1), doc: "axis" }, { name: "value", type: "float", default: flt(0), doc: "the padding value" }],
    runtime: "pad",
    example: { x: "[B, N, D]", before: "1", after: "0", axis: "1" },
    infer(a, c) {
      const x = tensor(a, "x");
      const ax = normAxis(num(a, "axis"), x.shape.length, c);
      const [b, e] = [num(a, "before"), num(a, "after")];
      for (const [arg, v] of [["before", b], ["after", e]] as const) if (typeof v === "number" && (!Number.isInteger(v) || v < 0)) c.fail(arg, "SDC407", `pad: ${arg} must be a non-negative integer, got ${v}`);
      return floatTensor(x.shape.map((d, i) => (i === ax ? dimOp("+", dimOp("+", b, d), e) : d)));
    },
  },
  squeeze: {
    name: "squeeze",
    doc: "remove an axis of size 1",
    args: [X, { name: "axis", type: "int", doc: "the axis (of size 1)" }],
    runtime: "squeeze",
    example: { x: "[B, 1, D]", axis: "1" },
    infer(a, c) {
      const x = tensor(a, "x");
      const ax = normAxis(num(a, "axis"), x.shape.length, c);
      c.expectEq("axis", x.shape[ax], 1, `squeeze: axis ${ax} of ${shapeToString(x.shape)} must have size 1`);
      return { t: "tensor", dtype: x.dtype, shape: x.shape.filter((_, i) => i !== ax) };
    },
  },
  flatten: {
    name: "flatten",
    doc: "[B, ...] -> [B, product of the rest]",
    args: [X],
    runtime: "flatten",
    example: { x: "[B, H, W, C]" },
    infer(a, c) {
      const x = tensor(a, "x");
      minRank(c, "x", x.shape, 2, "flatten");
      return floatTensor([x.shape[0], x.shape.slice(1).reduce((p: Dim, q) => dimOp("*", p, q), 1)]);
    },
  },
  unpatchify: {
    name: "unpatchify",
    doc: "[B, gh*gw, p*p*C] -> [B, gh*p, gw*p, C] (patch-major, channels last within a patch, as the reference)",
    args: [X, { name: "gh", type: "int", doc: "patch rows" }, { name: "gw", type: "int", doc: "patch columns" }, { name: "patch", type: "int", doc: "patch size" }, { name: "channels", type: "int", doc: "image channels" }],
    runtime: "unpatchify",
    example: { x: "[B, gh * gw, p * p * C]", gh: "gh", gw: "gw", patch: "p", channels: "C" },
    infer(a, c) {
      const x = tensor(a, "x");
      rank(c, "x", x.shape, 3, "unpatchify");
      const [gh, gw, p, ch] = [num(a, "gh"), num(a, "gw"), num(a, "patch"), num(a, "channels")];
      c.expectEq("x", x.shape[1], dimOp("*", gh, gw), "unpatchify: the token count must be gh * gw");
      c.expectEq("x", x.shape[2], dimOp("*", dimOp("*", p, p), ch), "unpatchify: the width must be patch * patch * channels");
      return floatTensor([x.shape[0], dimOp("*", gh, p), dimOp("*", gw, p), ch]);
    },
  },
  zeros: constantPrim("zeros", "a tensor of zeros"),
  ones: constantPrim("ones", "a tensor of ones"),
  full: constantPrim("full", "a tensor filled with one value"),
  arange: {
    name: "arange",
    doc: "n evenly spaced values start, start + step, ..., start + (n - 1) step as a float32 [n] tensor (0, 1, ..., n - 1 by default; computed in float64, then rounded)",
    args: [
      { name: "n", type: "int", doc: "length" },
      { name: "start", type: "float", optional: true, doc: "the first value (default 0)" },
      { name: "step", type: "float", optional: true, doc: "the spacing (default 1; may be negative or fractional)" },
    ],
    runtime: "arange",
    example: { n: "N" },
    infer(a, c) {
      const n = num(a, "n");
      positive(c, "n", n, "n");
      return floatTensor([n]);
    },
  },
};
