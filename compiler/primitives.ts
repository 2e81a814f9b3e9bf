/**
 * The primitive operations a .mdl network is composed from: their signatures, shape rules and
 * parameter tensors. One table drives the checker (shapes, parameter counts), the generated code
 * (which runtime function or layer class to call, with which arguments) and the docs. Each
 * family's entries live in compiler/primitives/; the runtime's records of the same names are in
 * runtime/nn/functional.ts (FUNCTIONS) and runtime/nn/layers.ts (LAYERS).
 */
import { ATTENTION } from "./primitives/attention.ts";
import { CONV } from "./primitives/conv.ts";
import { DENSE } from "./primitives/dense.ts";
import { ELEMENTWISE } from "./primitives/elementwise.ts";
import { NORM } from "./primitives/norm.ts";
import { POSITION } from "./primitives/position.ts";
import { SHAPE } from "./primitives/shape.ts";
import type { Primitive } from "./primitives/types.ts";

export { broadcastShapes } from "./primitives/rules.ts";
export { MAX_CHUNKS } from "./primitives/shape.ts";
export * from "./primitives/types.ts";

/** Every primitive, by family (the order of `sdc primitives` and docs/primitives.md). */
export const PRIMITIVES: Record<string, Primitive> = { ...DENSE, ...NORM, ...ELEMENTWISE, ...SHAPE, ...ATTENTION, ...POSITION, ...CONV };

/** The primitive called `name`, if any (own entries only: `toString` is not a primitive). */
export function primitive(name: string): Primitive | undefined {
  return Object.hasOwn(PRIMITIVES, name) ? PRIMITIVES[name] : undefined;
}
