/**
 * How spec text enters generated code: one injective mangling per kind of name, and escaping for
 * comments and the model card. Spec identifiers are `[A-Za-z_][A-Za-z0-9_]*` (the lexer's rule);
 * every mangled form that differs from the spec's name contains a `$`, which no spec name can, so
 * a mangled name can never equal another spec name, an import, a global or a generated helper.
 *
 *   local(n)   = n + "$" if n is reserved (keywords, strict-mode names, helpers, globals the code
 *                uses, class names of this file; and for names the constructor sees -- parameters,
 *                lets, loop variables -- also its own store, path, args, _ and k), else n
 *                                                                              -- `delete` -> `delete$`
 *   prop(n)    = n + "$" for Object.prototype's names (`__proto__` would set the prototype in an
 *                object literal, `args.constructor` would read Object), else n
 *   class(b)   = PascalCase(b) when it is a valid, unreserved name that no other block's class or
 *                Args interface shares, else "Block$" + b (interface "Args$" + b)
 *   field(m)   = the label path with "." -> "_" when that is unique in the block and not a reserved
 *                member (p, forward, constructor, Object.prototype names), else "m$" + path with
 *                "." -> "$" (and "$k" for the k-th module of one path in exclusive branches)
 *
 * Committed specs use none of the reserved names, so their generated code is unchanged.
 */
import { PRIMITIVES } from "../primitives.ts";

/** Names a local binding must not take: keywords, strict-mode restrictions, TypeScript's contextual words. */
const KEYWORDS = (
  "break case catch class const continue debugger default delete do else enum export extends false finally for function if import in instanceof new null return super switch this throw true try typeof var void while with " +
  "let static yield await implements interface package private protected public eval arguments " +
  "any boolean number string symbol bigint object never unknown undefined of as is type keyof infer asserts unique readonly declare namespace module abstract async get set from global override satisfies accessor require constructor"
).split(" ");

/** The layer classes in the order the committed packages import them (the table's order before it was split by family). */
const IMPORT_ORDER = ["Linear", "LayerNorm", "RmsNorm", "PatchConv", "Conv2d", "ConvTranspose2d", "GroupNorm", "SinCos2d", "Embedding", "Parameter"];

/** What the generated code itself refers to by name: imports, helpers, parameters, globals. */
export const HELPERS = ["tf", "F", "ParamStore", "joinName", "need", "check", ...layerClasses()];

/** The runtime class of every primitive with parameters: those above in their order, then any other in table order. */
function layerClasses(): string[] {
  const rank = (n: string) => (IMPORT_ORDER.includes(n) ? IMPORT_ORDER.indexOf(n) : IMPORT_ORDER.length);
  return Object.values(PRIMITIVES)
    .flatMap((p) => (p.layer ? [p.runtime] : []))
    .sort((a, b) => rank(a) - rank(b));
}

const GENERATED_LOCALS = ["store", "path", "args", "k", "_"];
const GLOBALS = ["Array", "ReadonlyArray", "Readonly", "Object", "Math", "JSON", "Number", "String", "Boolean", "Symbol", "Promise", "Error", "Map", "Set", "NaN", "Infinity", "globalThis", "Function", "Reflect", "Proxy", "Date", "RegExp"];
/** Names in index.ts (imports and declarations) that a class exported from model.ts must not take. */
const INDEX_NAMES = ["DiffusionSpec", "ClassifierSpec", "NetworkModule", "ClassifierModule", "TextEncoderModule", "createNetwork", "createTextEncoder", "spec"];

// `__proto__`: legal as a binding, but `{ __proto__ }` and `{ __proto__ } = this.p` are one typo from setting a prototype
const RESERVED_LOCALS = new Set([...KEYWORDS, ...HELPERS, ...GLOBALS, "__proto__"]);
/** The constructor's own bindings (`store`, `path`, `args`, and `_`, `k` of its `Array.from` callbacks). */
const CTOR_LOCALS = new Set(GENERATED_LOCALS);
const RESERVED_CLASSES = new Set([...KEYWORDS, ...HELPERS, ...GLOBALS, ...INDEX_NAMES]);
/** Instance members a module field must not take: the class's own and Object.prototype's. */
const RESERVED_FIELDS = new Set(["p", "forward", "apply", "constructor", "prototype", "__proto__", "toString", "toLocaleString", "valueOf", "hasOwnProperty", "isPrototypeOf", "propertyIsEnumerable", "__defineGetter__", "__defineSetter__", "__lookupGetter__", "__lookupSetter__"]);

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** PascalCase of a block name, as the generated code has always named classes (mmdit_block -> MmditBlock). */
export function pascalCase(block: string): string {
  return block
    .split(/_+/)
    .filter(Boolean)
    .map((s) => s[0].toUpperCase() + s.slice(1))
    .join("");
}

/** The names of one generated package: classes for every block in it, and locals that avoid them. */
export class Names {
  private readonly classes = new Map<string, { cls: string; args: string }>();
  private readonly reservedLocals: Set<string>;

  constructor(blocks: Iterable<string>) {
    const list = [...new Set(blocks)];
    const base = new Map(list.map((b) => [b, pascalCase(b)]));
    // every plain name some block would take (its class and its Args interface), with how many want it
    const wanted = new Map<string, number>();
    for (const b of list) for (const n of [base.get(b)!, `${base.get(b)!}Args`]) wanted.set(n, (wanted.get(n) ?? 0) + 1);
    for (const b of list) {
      const c = base.get(b)!;
      const ok = /^[A-Z][A-Za-z0-9]*$/.test(c) && !RESERVED_CLASSES.has(c) && !RESERVED_CLASSES.has(`${c}Args`) && wanted.get(c) === 1 && wanted.get(`${c}Args`) === 1;
      this.classes.set(b, ok ? { cls: c, args: `${c}Args` } : { cls: `Block$${b}`, args: `Args$${b}` });
    }
    this.reservedLocals = new Set([...RESERVED_LOCALS, ...[...this.classes.values()].flatMap((c) => [c.cls, c.args])]);
  }

  /** Class name of a block of this package. */
  className(block: string): string {
    return (this.classes.get(block) ?? { cls: `Block$${block}` }).cls;
  }

  /** Name of a block's constructor-arguments interface. */
  argsName(block: string): string {
    return (this.classes.get(block) ?? { args: `Args$${block}` }).args;
  }

  /**
   * A spec name used as a TypeScript local (parameter, let, input, assigned name, loop or dim
   * variable). `inCtor`: the name is bound in the constructor too (a parameter, let or loop variable),
   * where the constructor's own bindings are in scope. One block must pass the same `inCtor` for a
   * name everywhere (its code generator decides per name), so each name has one TypeScript name.
   */
  local(name: string, inCtor: boolean): string {
    return this.reservedLocals.has(name) || (inCtor && CTOR_LOCALS.has(name)) ? `${name}$` : name;
  }
}

/** Object.prototype's names: an argument object without its own `constructor` would still have one. */
const OBJECT_PROTOTYPE = new Set(["__proto__", "constructor", "toString", "toLocaleString", "valueOf", "hasOwnProperty", "isPrototypeOf", "propertyIsEnumerable", "__defineGetter__", "__defineSetter__", "__lookupGetter__", "__lookupSetter__"]);

/**
 * A spec name used as a property name (block arguments in interfaces and object literals):
 * Object.prototype's names get a `$`, so `args.constructor` never reads Object's constructor and
 * `{ __proto__: 1 }` never sets a prototype.
 */
export function propName(name: string): string {
  return OBJECT_PROTOTYPE.has(name) ? `${name}$` : name;
}

/** An object with its keys passed through propName (for JSON literals of block arguments). */
export function propKeys<T>(o: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [propName(k), v]));
}

/**
 * Fields for the modules of one block, by label path (`to_out.0` -> `to_out_0`); modules that share
 * a path (exclusive branches) get `_1`, `_2`, ... as before. Any field that would collide with
 * another path's, with a reserved member, or that is not an identifier, takes the `m$` form.
 */
export function moduleFields(paths: readonly string[]): string[] {
  const count = new Map<string, number>();
  for (const p of paths) count.set(p, (count.get(p) ?? 0) + 1);
  const seen = new Map<string, number>();
  const plain = paths.map((p) => {
    const f = p.replace(/[^A-Za-z0-9_]/g, "_").replace(/^(\d)/, "_$1");
    if (count.get(p)! === 1) return { p, f, k: 0 };
    const k = (seen.get(p) ?? 0) + 1;
    seen.set(p, k);
    return { p, f: `${f}_${k}`, k };
  });
  // a plain field is kept only if every module that produces it has the same path
  const owners = new Map<string, Set<string>>();
  for (const { p, f } of plain) owners.set(f, (owners.get(f) ?? new Set()).add(p));
  return plain.map(({ p, f, k }) => {
    if (owners.get(f)!.size === 1 && !RESERVED_FIELDS.has(f) && IDENT.test(f)) return f;
    return `m$${p.replace(/\./g, "$")}${k ? `$${k}` : ""}`;
  });
}

const LINE_BREAKS = /[\r\n\u2028\u2029]/;

/**
 * Text from a spec (a file path, an expression) made safe inside a `//` or `/* *\/` comment:
 * printable ASCII without `*\/` is kept as is; anything else is written as a JSON string with every
 * non-ASCII character and `*\/` escaped, so it can neither end the comment nor the line.
 */
export function commentText(s: string): string {
  if (/^[\x20-\x7e]*$/.test(s) && !s.includes("*/")) return s;
  return JSON.stringify(s)
    .replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)
    .replace(/\*\//g, "*\\/");
}

/** True when a string would end a comment or a line if copied raw (used by tests). */
export function breaksComment(s: string): boolean {
  return s.includes("*/") || LINE_BREAKS.test(s);
}

/**
 * Spec text copied into the model card (markdown, in table cells and paragraphs): HTML is escaped
 * and markdown's active characters are backslash-escaped, line breaks become spaces.
 */
export function markdownText(s: string): string {
  return s
    .replace(/[\r\n\u2028\u2029\t]+/g, " ")
    .replace(/[\x00-\x1f\x7f]/g, "")
    .replace(/[\\`*_[\]|#~!]/g, (c) => `\\${c}`)
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;");
}

/** Spec text inside a markdown code span: kept when plain, else a JSON string without backticks or line breaks. */
export function markdownCode(s: string): string {
  if (/^[A-Za-z0-9_./ +,:=@-]*$/.test(s)) return s;
  return JSON.stringify(s).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`).replace(/`/g, "\\u0060").replace(/\|/g, "\\u007c");
}

/** Text inside an HTML comment (`<!-- ... -->`): no `--`, which could end it. */
export function htmlCommentText(s: string): string {
  return s.replace(/-(?=-)/g, "- ").replace(/>/g, "&gt;");
}
