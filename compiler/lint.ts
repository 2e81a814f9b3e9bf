/**
 * Lints on the AST of one block, pure: what is declared but never read. These are warnings
 * (the model still compiles): a block parameter or a forward input that nothing refers to is
 * usually a typo or a leftover. A name starting with `_` says "unused on purpose" and is skipped.
 * (Weights that never reach the output and network inputs that are ignored are errors, found on
 * the elaborated model: see compiler/check/deps.ts.)
 */
import type * as A from "./ast.ts";
import { exprNames, walkStmts } from "./ast.ts";
import { type Diagnostic, warn } from "./diagnostics.ts";

/** SDC310 warnings: parameters and forward inputs of `block` that nothing reads. */
export function unusedInBlock(block: A.BlockDecl): Diagnostic[] {
  const read = new Set<string>();
  for (const p of block.params) if (p.default) exprNames(p.default, read);
  for (const l of block.lets) exprNames(l.value, read);
  for (const r of block.requires) exprNames(r.cond, read);
  const fwd = block.forward;
  if (fwd) {
    for (const i of fwd.inputs) exprNames(i.shape, read);
    for (const o of fwd.outputs) exprNames(o, read);
    walkStmts(fwd.body, (e) => exprNames(e, read));
  }
  const out: Diagnostic[] = [];
  // a `let` reads the parameters it is derived from; an unused `let` is harmless and not reported
  for (const p of block.params) {
    if (read.has(p.name) || p.name.startsWith("_")) continue;
    out.push(warn("SDC310", p.nameSpan, `parameter '${p.name}' of block ${block.name} is never used`, `remove it, or name it \`_${p.name}\` to keep it unused on purpose`));
  }
  for (const i of fwd?.inputs ?? []) {
    if (read.has(i.name) || i.name.startsWith("_")) continue;
    out.push(warn("SDC310", i.nameSpan, `input '${i.name}' of block ${block.name} is never used`, `remove it, or name it \`_${i.name}\` to keep it unused on purpose`));
  }
  return out;
}

/** SDC310 warnings: `param`s of a spec that nothing in it reads (its variants may still set them). */
export function unusedInSpec(spec: A.SpecDecl): Diagnostic[] {
  const read = new Set<string>();
  for (const p of spec.params) if (p.default) exprNames(p.default, read);
  for (const l of spec.lets) exprNames(l.value, read);
  for (const r of spec.requires) exprNames(r.cond, read);
  for (const sec of spec.sections) for (const st of sec.settings) exprNames(st.value, read);
  if (spec.network) exprNames(spec.network, read);
  for (const v of spec.variants) for (const o of v.overrides) exprNames(o.value, read);
  return spec.params
    .filter((p) => !read.has(p.name) && !p.name.startsWith("_"))
    .map((p) => warn("SDC310", p.nameSpan, `parameter '${p.name}' of spec ${spec.name} is never used`, `remove it, or name it \`_${p.name}\` to keep it unused on purpose`));
}
