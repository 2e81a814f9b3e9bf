/**
 * IR validation (ajv against ir/ir.schema.json) and its content hash. Kept apart from the
 * code generator so that the runtime can check an ir.json without loading ts-morph.
 */
import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import type AjvModule from "ajv";
import schema from "./ir.schema.json" with { type: "json" };
import { AJV_OPTIONS, precompiled } from "./precompiled.ts";

type Validator = ReturnType<InstanceType<typeof AjvModule>["compile"]>;
let validator: Validator | undefined;

/** ajv, loaded only to compile the schema (dist/ has it precompiled); a literal require for bundlers. */
function compileSchema(): Validator {
  const mod = (typeof require === "function" ? require("ajv") : createRequire(import.meta.url)("ajv")) as { default?: typeof AjvModule } & typeof AjvModule;
  const Ajv = mod.default ?? mod;
  return new Ajv({ ...AJV_OPTIONS }).compile(schema);
}

/** Validate an IR against ir/ir.schema.json; returns error lines (empty = valid). */
export function validateIr(ir: unknown): string[] {
  validator ??= (precompiled as Validator | undefined) ?? compileSchema();
  if (validator(ir)) return [];
  return (validator.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message ?? "is invalid"}`);
}

/** sha-256 of an ir.json's text: generated code and checkpoints carry it. */
export function irHash(json: string): string {
  return createHash("sha256").update(json).digest("hex");
}
