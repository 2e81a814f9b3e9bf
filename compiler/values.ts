/**
 * Values of the checker: numbers that may be symbolic (a block checked on its own has symbolic
 * parameters), tensor types with per-dimension sizes, tuples, lists. One engine evaluates a
 * block both ways: symbolically (for the generated code's shape comments and constructor
 * arguments) and concretely (for the spec's exact shapes and parameter counts).
 */

/** A symbolic integer expression over block parameters and named dimensions. */
export type Sym =
  | { op: "var"; name: string }
  | { op: ArithOp; a: Dim; b: Dim }
  /** `widths[i]`, `len(widths)`: an element and the length of a list-typed block parameter */
  | { op: "at"; list: string; a: Dim }
  | { op: "len"; list: string }
  /** a size at the start of loop iteration `loop`: `a` at the first (`from`), `b` at the others */
  | { op: "first"; loop: string; from: Dim; a: Dim; b: Dim };

/** Integer arithmetic on dimensions: `/` exact, `div` floor division, `%` the remainder. */
export type ArithOp = "+" | "-" | "*" | "/" | "div" | "%";

export type Dim = number | Sym;

export function isSym(d: Dim | boolean | string | undefined): d is Sym {
  return typeof d === "object" && d !== null;
}

export function symVar(name: string): Sym {
  return { op: "var", name };
}

/** Build an arithmetic dimension, folding constants and the identities x*1, x+0, x/1, x div 1. */
export function dimOp(op: ArithOp, a: Dim, b: Dim): Dim {
  if (typeof a === "number" && typeof b === "number") {
    switch (op) {
      case "+": return a + b;
      case "-": return a - b;
      case "*": return a * b;
      case "/": return a / b;
      case "div": return Math.floor(a / b);
      case "%": return a % b;
    }
  }
  if (op === "*" && (a === 1 || b === 1)) return a === 1 ? b : a;
  // (k * x) / k and (x * k) / k -> x (also floored: k * x is a multiple of k)
  if ((op === "/" || op === "div") && typeof b === "number" && typeof a === "object" && a.op === "*") {
    if (a.a === b) return a.b;
    if (a.b === b) return a.a;
  }
  if (op === "+" && (a === 0 || b === 0)) return a === 0 ? b : a;
  if ((op === "-" || op === "/" || op === "div") && b === (op === "-" ? 0 : 1)) return a;
  return { op, a, b };
}

/** `d` with the variable `name` replaced by `by`, constants folded again. */
export function substDim(d: Dim, name: string, by: Dim): Dim {
  if (typeof d === "number") return d;
  const s = (x: Dim) => substDim(x, name, by);
  switch (d.op) {
    case "var":
      return d.name === name ? by : d;
    case "len":
      return d;
    case "at":
      return { op: "at", list: d.list, a: s(d.a) };
    case "first":
      return { op: "first", loop: d.loop, from: s(d.from), a: s(d.a), b: s(d.b) };
    default:
      return dimOp(d.op, s(d.a), s(d.b));
  }
}

const PREC: Record<string, number> = { "+": 1, "-": 1, "*": 2, "/": 2, div: 2, "%": 2 };

export function dimToString(d: Dim, parentPrec = 0, right = false): string {
  if (typeof d === "number") return String(d);
  if (d.op === "var") return d.name;
  if (d.op === "at") return `${d.list}[${dimToString(d.a)}]`;
  if (d.op === "len") return `len(${d.list})`;
  if (d.op === "first") return `(${d.loop} == ${dimToString(d.from)} ? ${dimToString(d.a)} : ${dimToString(d.b)})`;
  const p = PREC[d.op];
  const s = `${dimToString(d.a, p)} ${d.op} ${dimToString(d.b, p, true)}`;
  return p < parentPrec || (right && p === parentPrec) ? `(${s})` : s;
}

export function dimEq(a: Dim, b: Dim): boolean {
  if (typeof a === "number" || typeof b === "number") return a === b;
  return dimToString(a) === dimToString(b);
}

export function shapeToString(shape: readonly Dim[]): string {
  return `[${shape.map((d) => dimToString(d)).join(", ")}]`;
}

export type Value =
  | { t: "int"; v: Dim }
  | { t: "float"; v: number | Sym }
  | { t: "bool"; v: boolean | Sym }
  | { t: "string"; v: string }
  | { t: "symbol"; v: string }
  | { t: "tensor"; dtype: "float32" | "int32"; shape: Dim[] }
  | { t: "tuple"; items: Value[] }
  | { t: "list"; items: Value[]; sym?: ListSym };

/** A list-typed block parameter seen symbolically: its name and element type, its items unknown. */
export type ListSym = { name: string; elem: "int" | "float" } | { name: string; elem: "tensor"; tensor: Extract<Value, { t: "tensor" }> };

/** The element type of a list of numbers (`int[]` when every item is an int), or undefined. */
export function listType(v: Value): "int[]" | "float[]" | undefined {
  if (v.t !== "list") return undefined;
  if (v.sym) return v.sym.elem === "tensor" ? undefined : `${v.sym.elem}[]`;
  if (v.items.every((x) => x.t === "int")) return "int[]";
  return v.items.every((x) => x.t === "int" || x.t === "float") ? "float[]" : undefined;
}

export function typeName(v: Value): string {
  switch (v.t) {
    case "tensor":
      return `tensor ${v.dtype === "int32" ? "int32" : ""}${shapeToString(v.shape)}`;
    case "tuple":
      return `tuple of ${v.items.length}`;
    case "list":
      return listType(v) ?? (v.sym || (v.items.length && v.items.every((x) => x.t === "tensor")) ? "list of tensors" : "list");
    case "symbol":
      return `name '${v.v}'`;
    default:
      return v.t;
  }
}

export function valueToString(v: Value): string {
  switch (v.t) {
    case "int":
    case "float":
      return typeof v.v === "number" ? String(v.v) : dimToString(v.v);
    case "bool":
      return typeof v.v === "boolean" ? String(v.v) : dimToString(v.v);
    case "string":
      return JSON.stringify(v.v);
    case "symbol":
      return v.v;
    case "tensor":
      return shapeToString(v.shape);
    case "tuple":
      return `(${v.items.map(valueToString).join(", ")})`;
    case "list":
      return v.sym ? v.sym.name : `[${v.items.map(valueToString).join(", ")}]`;
  }
}

/** Plain JSON for the IR (symbolic parts as strings). */
export function valueToJson(v: Value): unknown {
  switch (v.t) {
    case "int":
    case "float":
    case "bool":
      return typeof v.v === "object" ? dimToString(v.v) : v.v;
    case "string":
    case "symbol":
      return v.v;
    case "tensor":
      return { dtype: v.dtype, shape: v.shape.map((d) => (typeof d === "number" ? d : dimToString(d))) };
    case "tuple":
    case "list":
      return v.items.map(valueToJson);
  }
}
