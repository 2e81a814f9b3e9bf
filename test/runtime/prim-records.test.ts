/**
 * One record per primitive: the compiler's table (compiler/primitives/) and the runtime's
 * (FUNCTIONS in runtime/nn/functional.ts, LAYERS in runtime/nn/layers.ts) name the same
 * primitives, and the name each compiler entry gives the generated code (`F.<runtime>`, the
 * layer class `<runtime>`, or `F.<fn.name>` without parameters) is that record's.
 */
import { describe, expect, it } from "vitest";
import { PRIMITIVES } from "../../compiler/primitives.ts";
import * as F from "../../runtime/nn/functional.ts";
import * as layers from "../../runtime/nn/layers.ts";

const compilerKeys = Object.keys(PRIMITIVES).sort();
const functions = F.FUNCTIONS as Record<string, { call: unknown; tf: unknown; graph: unknown }>;
const layerTable = layers.LAYERS as Record<string, unknown>;

describe("primitive records", () => {
  it("the compiler's and the runtime's tables have the same keys", () => {
    expect([...new Set([...Object.keys(functions), ...Object.keys(layerTable)])].sort()).toEqual(compilerKeys);
  });

  it("a primitive with parameters is its layer class; one without is its F function", () => {
    for (const [name, p] of Object.entries(PRIMITIVES)) {
      if (p.layer) {
        expect(layerTable[name], name).toBe((layers as Record<string, unknown>)[p.runtime]);
        if (p.fn) expect((F as Record<string, unknown>)[p.fn.name], name).toBe(functions[name].call);
      } else {
        expect(layerTable[name], name).toBeUndefined();
        expect((F as Record<string, unknown>)[p.runtime], name).toBe(functions[name].call);
      }
    }
  });

  it("every runtime record has both lowerings", () => {
    for (const [name, r] of Object.entries(functions)) {
      expect(typeof r.tf, name).toBe("function");
      expect(typeof r.graph, name).toBe("function");
    }
  });
});
