/** Helpers the shape and parameter rules of every family share. */
import { type Dim, dimEq, dimOp, dimToString, isSym, shapeToString, type Value } from "../values.ts";
import type { Args, PrimArg, PrimContext } from "./types.ts";

export const int = (v: number): Value => ({ t: "int", v });
export const flt = (v: number): Value => ({ t: "float", v });
export const bool = (v: boolean): Value => ({ t: "bool", v });
export const str = (v: string): Value => ({ t: "string", v });

export function tensor(a: Args, name: string): { dtype: "float32" | "int32"; shape: Dim[] } {
  const v = a[name];
  if (v?.t !== "tensor") throw new Error(`internal: ${name} is not a tensor`);
  return v;
}
export function num(a: Args, name: string): Dim {
  const v = a[name];
  if (v?.t === "int" || v?.t === "float") return v.v;
  throw new Error(`internal: ${name} is not a number`);
}
export function flag(a: Args, name: string): boolean | undefined {
  const v = a[name];
  return v?.t === "bool" && typeof v.v === "boolean" ? v.v : undefined;
}
export function last(shape: Dim[]): Dim {
  return shape[shape.length - 1];
}
export function normAxis(axis: Dim, rank: number, c: PrimContext, arg = "axis"): number {
  if (typeof axis !== "number") c.fail(arg, "SDC401", "axis must be a constant integer");
  const ax = axis < 0 ? axis + rank : axis;
  if (ax < 0 || ax >= rank) c.fail(arg, "SDC407", `axis ${axis} is out of range for a rank-${rank} tensor`);
  return ax;
}
export function minRank(c: PrimContext, arg: string, shape: Dim[], r: number, what: string) {
  if (shape.length < r) c.fail(arg, "SDC501", `${what} needs a tensor of rank >= ${r}, got rank ${shape.length} ${shapeToString(shape)}`);
}
export function rank(c: PrimContext, arg: string, shape: Dim[], r: number, what: string) {
  if (shape.length !== r) c.fail(arg, "SDC501", `${what} needs a rank-${r} tensor, got rank ${shape.length} ${shapeToString(shape)}`);
}
export function floatTensor(shape: Dim[]): Value {
  return { t: "tensor", dtype: "float32", shape };
}
export function positive(c: PrimContext, arg: string, d: Dim, what: string) {
  if (typeof d === "number" && (!Number.isInteger(d) || d <= 0)) c.fail(arg, "SDC407", `${what} must be a positive integer, got ${d}`);
}

export const X: PrimArg = { name: "x", type: "tensor", doc: "input tensor" };

/** A list argument's sizes. */
export function intList(a: Args, name: string): Dim[] {
  return (a[name] as { items: Value[] }).items.map((v) => (v as { v: Dim }).v);
}
export function product(shape: Dim[]): Dim {
  return shape.reduce((p: Dim, q) => dimOp("*", p, q), 1);
}
/** A shape's element count as a number times symbolic factors (products split, each factor by its text). */
export function factors(shape: Dim[]): { num: number; syms: Dim[] } {
  let n = 1;
  const syms: Dim[] = [];
  const walk = (d: Dim) => {
    if (typeof d === "number") n *= d;
    else if (d.op === "*") {
      walk(d.a);
      walk(d.b);
    } else syms.push(d);
  };
  shape.forEach(walk);
  // a / k next to a factor k is a (heads * (width / heads) is width)
  for (let i = 0; i < syms.length; i++) {
    const q = syms[i];
    if (typeof q === "number" || q.op !== "/") continue;
    const j = syms.findIndex((k, at) => at !== i && dimEq(k, q.b));
    if (j < 0) continue;
    syms.splice(Math.max(i, j), 1);
    syms.splice(Math.min(i, j), 1);
    walk(q.a);
    i = -1;
  }
  return { num: n, syms };
}
/** have / want: the numeric ratio, the symbolic factors of `have` left over and those of `want` not in `have`. */
export function cancel(have: { num: number; syms: Dim[] }, want: { num: number; syms: Dim[] }): { num: number; left: Dim[]; extra: Dim[] } {
  const left = [...have.syms];
  const extra: Dim[] = [];
  for (const w of want.syms) {
    const i = left.findIndex((h) => dimEq(h, w));
    if (i >= 0) left.splice(i, 1);
    else extra.push(w);
  }
  return { num: have.num / want.num, left, extra };
}

/** A tensor-or-number argument's shape ([] for a number). */
export function operandShape(a: Args, name: string): Dim[] {
  const v = a[name];
  return v?.t === "tensor" ? v.shape : [];
}

/** Broadcast two shapes numpy-style; returns null and a reason when they cannot be. */
export function broadcastShapes(a: Dim[], b: Dim[], symbolic: boolean): { shape: Dim[] } | { error: string } {
  const n = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < n; i++) {
    const da = i < n - a.length ? 1 : a[i - (n - a.length)];
    const db = i < n - b.length ? 1 : b[i - (n - b.length)];
    if (dimEq(da, db) || db === 1) out.push(da);
    else if (da === 1) out.push(db);
    else if (symbolic && (isSym(da) || isSym(db))) out.push(isSym(da) ? db : da);
    else return { error: `cannot broadcast ${shapeToString(a)} with ${shapeToString(b)}: axis ${i} is ${dimToString(da)} vs ${dimToString(db)}` };
  }
  return { shape: out };
}
