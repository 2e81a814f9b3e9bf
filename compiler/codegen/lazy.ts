/**
 * Packages that only code generation needs, loaded on first use: ts-morph pulls in the
 * TypeScript compiler (a third of a second), handlebars a tenth; checking a spec, the language
 * server and the other commands never load them. The types come from type-only imports.
 * `require("...")` stays a literal so that bundlers see the dependency (the GPU pack bundles it;
 * dist/ defines `require` for its external packages); from source it is createRequire's.
 */
import { createRequire } from "node:module";
import type * as TsMorph from "ts-morph";
import type HandlebarsNs from "handlebars";

const req = (): NodeJS.Require => (typeof require === "function" ? require : createRequire(import.meta.url));

let tsm: typeof TsMorph | undefined;
let hbs: typeof HandlebarsNs | undefined;

export function tsMorph(): typeof TsMorph {
  return (tsm ??= typeof require === "function" ? require("ts-morph") : req()("ts-morph"));
}

export function handlebars(): typeof HandlebarsNs {
  return (hbs ??= typeof require === "function" ? require("handlebars") : req()("handlebars"));
}
