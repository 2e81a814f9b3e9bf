/**
 * `parameter(..., init: ...)`: the compiler records each initializer in the IR (the default
 * N(0, 0.02) unchanged) and refuses a bad one with a positioned SDC407; the runtime fills exact
 * constants and draws the distributions; a constant-initialized gain reaches the network's output
 * exactly on tfjs, the graph interpreter and the native executor.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { initBackend } from "../../runtime/backend.ts";
import { Parameter } from "../../runtime/nn/layers.ts";
import { ParamStore } from "../../runtime/nn/params.ts";
import { compileSource, expectError, lines, net, spec } from "../compiler/helpers.ts";
import { maxAbs, specForward } from "../graph/spec-forward.ts";

beforeAll(async () => {
  await initBackend("cpu", { log: () => {} });
});

const withInit = (init: string | undefined) => compileSource(lines(net(`    x = x * parameter(shape: [1, 1, 1, 1]${init === undefined ? "" : `, init: ${JSON.stringify(init)}`}) as gain`), spec()));

describe("parameter init in a spec", () => {
  it.each([
    [undefined, "normal_0.02"],
    ["zeros", "zeros"],
    ["ones", "ones"],
    ["constant(10)", "constant:10"],
    ["constant(-0.5)", "constant:-0.5"],
    ["constant(1e-3)", "constant:0.001"],
    ["normal(0.5)", "normal:0.5"],
    ["trunc_normal(0.02)", "trunc_normal:0.02"],
    ["xavier_uniform", "xavier_uniform"],
  ])("%s: %s in the IR, counted as before", (init, want) => {
    const r = withInit(init);
    expect(r.diagnostics.filter((d) => d.severity !== "warning")).toEqual([]);
    const p = r.ir!.parameters.find((x) => x.name === "gain")!;
    expect(p).toMatchObject({ init: want, shape: [1, 1, 1, 1], count: 1, buffer: false });
  });
  it.each(["torch", "constant()", "constant(x)", "normal(0)", "normal(-1)", "uniform(1)", "constant(1e999)"])("refuses %s with a positioned SDC407", (init) => {
    expectError(withInit(init), { code: "SDC407", line: 3, col: 50, msg: /parameter: init must be "zeros", "ones", "constant\(V\)"/ });
  });
  it("refuses an init that is not a string (SDC401)", () => {
    const r = compileSource(lines(net("    x = x * parameter(shape: [1, 1, 1, 1], init: 0.5) as gain"), spec()));
    expectError(r, { code: "SDC401", line: 3, col: 50, msg: "parameter: argument 'init' must be string" });
  });
});

describe("parameter init at run time", () => {
  const values = (init: string | undefined, shape = [64, 96]) => {
    const store = new ParamStore(7);
    const p = new Parameter(store, "p", { shape, init });
    const v = p.value.dataSync() as Float32Array;
    store.dispose();
    return v;
  };
  const std = (x: Float32Array) => Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length);
  it("constants are exact", () => {
    expect(values("constant(10)").every((v) => v === 10)).toBe(true);
    expect(values("constant(-0.25)").every((v) => v === -0.25)).toBe(true);
    expect(values("ones").every((v) => v === 1)).toBe(true);
    expect(values("zeros").every((v) => v === 0)).toBe(true);
  });
  it("the default is N(0, 0.02), the same draws as before (normal(0.02) draws the same values)", () => {
    const d = values(undefined);
    expect(Math.abs(std(d) - 0.02) / 0.02).toBeLessThan(0.03);
    expect([...values("normal(0.02)")]).toEqual([...d]);
  });
  it("normal(0.5), trunc_normal(0.5) and xavier_uniform have their spreads", () => {
    expect(Math.abs(std(values("normal(0.5)")) - 0.5) / 0.5).toBeLessThan(0.03);
    const t = values("trunc_normal(0.5)");
    expect(t.every((v) => Math.abs(v) <= 1 + 1e-6)).toBe(true);
    expect(Math.abs(std(t) - 0.5 * 0.8796) / (0.5 * 0.8796)).toBeLessThan(0.03);
    const a = Math.sqrt(6 / (64 + 96));
    const x = values("xavier_uniform");
    expect(x.every((v) => Math.abs(v) <= a)).toBe(true);
    expect(std(x)).toBeCloseTo(a / Math.sqrt(3), 2);
  });
  it("refuses an unknown init with the layer's argument error", () => {
    expect(() => values("kaiming")).toThrow(/Parameter: argument 'init' must be "zeros", "ones", "constant\(V\)"/);
  });
});

describe("a constant-initialized gain on both engines", () => {
  it("the output is 0.5 x + the conditioning mix exactly, on tfjs, the graph interpreter and the native executor", async () => {
    const src = lines(net('    x = x * parameter(shape: [1, 1, 1, 1], init: "constant(0.5)") as gain'), spec());
    const r = await specForward(src, { tokens: 5, width: 24, pooled: 20 });
    const [b, h, w, c] = r.shape;
    const want = new Float32Array(b * h * w * c);
    for (let i = 0; i < b; i++) {
      let mc = 0;
      for (let k = 0; k < 5 * 24; k++) mc += r.inputs.context[i * 120 + k];
      let mp = 0;
      for (let k = 0; k < 20; k++) mp += r.inputs.pooled[i * 20 + k];
      const mix = r.inputs.t[i] + mc / 120 + mp / 20;
      for (let k = 0; k < h * w * c; k++) want[i * h * w * c + k] = 0.5 * r.inputs.x[i * h * w * c + k] + mix;
    }
    expect(r.store.vars.get("gain")!.dataSync()[0]).toBe(0.5);
    expect(maxAbs(r.tfjs, want)).toBeLessThan(1e-5);
    expect(maxAbs(r.graph, want)).toBeLessThan(1e-5);
    expect(maxAbs(r.native, want)).toBeLessThan(1e-5);
    r.store.dispose();
  });
});
