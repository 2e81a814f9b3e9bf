/**
 * IR validation (ajv against compiler/ir.schema.json) and its content hash. Kept apart from the
 * code generator so that the runtime can check an ir.json without loading ts-morph.
 */
import { createHash } from "node:crypto";
import AjvModule from "ajv";
import schema from "./ir.schema.json" with { type: "json" };
import { AJV_OPTIONS, precompiled } from "./ir-validator.ts";

const Ajv = (AjvModule as unknown as { default?: typeof AjvModule }).default ?? AjvModule;
let validator: ReturnType<InstanceType<typeof Ajv>["compile"]> | undefined;

/** Validate an IR against compiler/ir.schema.json; returns error lines (empty = valid). */
export function validateIr(ir: unknown): string[] {
  validator ??= (precompiled as typeof validator) ?? new Ajv({ ...AJV_OPTIONS }).compile(schema);
  if (validator(ir)) return [];
  return (validator.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message ?? "is invalid"}`);
}

/** sha-256 of an ir.json's text: generated code and checkpoints carry it. */
export function irHash(json: string): string {
  return createHash("sha256").update(json).digest("hex");
}
