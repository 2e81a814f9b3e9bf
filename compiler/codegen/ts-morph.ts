/**
 * ts-morph, loaded on first use: it pulls in the TypeScript compiler (a third of a second), which
 * only code generation needs; checking a spec, the language server and the other commands never
 * load it. The types come from a type-only import.
 */
import { createRequire } from "node:module";
import type * as TsMorph from "ts-morph";

let mod: typeof TsMorph | undefined;

export function tsMorph(): typeof TsMorph {
  return (mod ??= createRequire(import.meta.url)("ts-morph") as typeof TsMorph);
}
