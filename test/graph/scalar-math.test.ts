/**
 * Scalar `sqrt`, `sin`, `cos`, `exp`, `log` of numbers (evaluated by the checker, `Math.*` in the
 * generated code) and `arange(n, start:, step:)` over floats, together building HDiT's
 * log-spaced RoPE frequencies and Fourier features: the table against PyTorch's values
 * (torch.linspace(log(pi), log(10 pi), 9)[:-1].exp() and sin(2 pi arange(0.1, 2.45, 0.3)) sqrt(2),
 * printed by /usr/bin/python3, torch 1.13) on tfjs, the graph interpreter and the native executor;
 * the positioned errors of a number out of a function's domain.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { initBackend } from "../../runtime/backend.ts";
import { compileSource, expectError, lines, net, spec } from "../compiler/helpers.ts";
import { maxAbs, specForward } from "./spec-forward.ts";

beforeAll(async () => {
  await initBackend("cpu", { log: () => {} });
});

const PI = "3.141592653589793";
/** the table [16] tiled over the 32 x 32 image: frequencies, then Fourier features */
const source = lines(
  "block net(ch: int, ctx: int) {",
  "  let s = sqrt(2.0 * ch)",
  "  forward(x: [B, H, W, ch], t: [B], c: [B, T, ctx], p: [B, P]) -> [B, H, W, ch] {",
  `    fr = exp(arange(8, start: log(${PI}), step: (log(10 * ${PI}) - log(${PI})) / 8))`,
  `    four = sin(arange(8, start: 0.1, step: 0.3) * (2 * ${PI})) * s`,
  "    x = x * 0 + reshape(repeat(concat(fr, four), 64), [1, 32, 32, 1])",
  "    return x + unsqueeze(unsqueeze(unsqueeze(t + mean(mean(c, axis: 2), axis: 1) + mean(p, axis: 1), 1), 2), 3)",
  "  }",
  "}",
  spec(),
);

// PyTorch (float32 linspace, float64 arange then float32)
const FREQS = [3.1415925, 4.1893811, 5.5866294, 7.4498897, 9.9345884, 13.2479868, 17.6664753, 23.5586205];
const FOURIER = [0.8312539, 0.8312539, -1.344997, -0.0, 1.344997, -0.8312539, -0.8312539, 1.344997];

describe("scalar math and float arange", () => {
  it("the generated code computes the let with Math.sqrt", () => {
    const r = compileSource(source);
    expect(r.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
    const model = r.files!.find(([path]) => path.endsWith("model.ts"))![1];
    expect(model).toContain("const s = Math.sqrt(2.0 * ch);");
    expect(model).toMatch(/F\.exp\(F\.arange\(8, Math\.log\(3\.141592653589793\), \(Math\.log\(10 \* 3\.141592653589793\) - Math\.log\(3\.141592653589793\)\) \/ 8\)\)/);
  });

  it("builds HDiT's frequency table and Fourier features as PyTorch does, on tfjs, the graph interpreter and the native executor", async () => {
    const r = await specForward(source, { tokens: 5, width: 24, pooled: 20 });
    const [b, h, w] = r.shape;
    const table = [...FREQS, ...FOURIER];
    const want = new Float32Array(b * h * w);
    for (let i = 0; i < b; i++) {
      let mc = 0;
      for (let k = 0; k < 120; k++) mc += r.inputs.context[i * 120 + k];
      let mp = 0;
      for (let k = 0; k < 20; k++) mp += r.inputs.pooled[i * 20 + k];
      for (let k = 0; k < h * w; k++) want[i * h * w + k] = table[k % 16] + r.inputs.t[i] + mc / 120 + mp / 20;
    }
    for (const [engine, got] of Object.entries({ tfjs: r.tfjs, graph: r.graph, native: r.native })) expect(maxAbs(got, want), engine).toBeLessThan(2e-6 * 24);
    r.store.dispose();
  });

  it.each([
    ["sqrt(-1.0)", "sqrt(-1) is not a number"],
    ["log(0.0)", "log(0) is -Infinity"],
    ["exp(1000.0)", "exp(1000) is Infinity"],
  ])("%s is a positioned SDC601", (call, msg) => {
    const r = compileSource(lines(net(`    x = x * ${call}`), spec()));
    expectError(r, { code: "SDC601", line: 3, col: 13, msg });
  });

  it("a scalar call takes no name (SDC406), a tensor call stays elementwise", () => {
    expectError(compileSource(lines(net("    x = x * sqrt(4.0) as r"), spec())), { code: "SDC406", line: 3, col: 26, msg: "has no parameters" });
    const r = compileSource(lines(net("    x = sqrt(x * x + 1.0) * cos(0.0)"), spec()));
    expect(r.diagnostics.filter((d) => d.severity === "error")).toEqual([]);
  });

});
