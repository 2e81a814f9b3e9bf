/**
 * Chains of the native executor (runtime/executors/native/chains.ts, src/kernels.cc run_chain):
 * which runs of batched kernels become one instruction run batch by batch (attention forward and
 * backward in the tiny spec's step; not a run whose reader takes another batch's elements, nor
 * one the memory plan could overlap), and that a chained step gives the same bits as the kernels
 * one by one, fp32 and bf16, on 1, 2 and 3 threads, at every ISA level the CPU has.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { loadCompiled, type LoadedSpec } from "../../cli/generated.ts";
import { initBackend } from "../../runtime/backend.ts";
import { fuse } from "../../runtime/graph/fuse.ts";
import { Graph, inputsOf, liveNodes } from "../../runtime/graph/graph.ts";
import { CHAIN_B_FLOATS, chainHolds, findChains } from "../../runtime/executors/native/chains.ts";
import { compileGraph, nativeAddon, paramArena } from "../../runtime/executors/native/native.ts";
import { planBuffers } from "../../runtime/graph/memory.ts";
import { buildStepGraph } from "../../runtime/engines/static/step.ts";
import { stepOutputs } from "../../runtime/graph/step-graph.ts";
import { buildModel } from "../../runtime/train/trainer.ts";
import { Rng } from "../../runtime/util/rng.ts";
import { differingBuffers, tinyTwoSteps } from "./helpers.ts";

let tiny: LoadedSpec;
beforeAll(async () => {
  await initBackend("cpu", { log: () => {} });
  tiny = await loadCompiled("generated/sd3-tiny");
});

const attn = (B: number, H: number, N: number, D: number) => ({ batch: [B, H] as [number, number], m: N, n: N, k: D, alpha: 1 / Math.sqrt(D), a: [N * H * D, D, H * D, 1] as [number, number, number, number], b: [N * H * D, D, 1, H * D] as [number, number, number, number], c: [H * N * N, N * N, N, 1] as [number, number, number, number] });

describe("findChains", () => {
  it("finds the tiny step's attention: forward [gemm, softmax, gemm] and backward [gemm, gemm, softmax_grad, gemm, gemm], batched over samples x heads", () => {
    const m = buildModel(tiny.spec, tiny.ir, 3);
    const sg = buildStepGraph(m, 4, [32, 32, 1]);
    fuse(sg);
    const g = sg.graph;
    const chains = findChains(g, liveNodes(g, stepOutputs(sg)));
    m.store.dispose();
    const kinds = chains.map((c) => c.nodes.map((id) => g.node(id).op.kind).join(" "));
    expect(kinds.filter((k) => k === "gemm softmax gemm").length).toBeGreaterThan(0);
    expect(kinds.filter((k) => k === "gemm gemm softmax_grad gemm gemm").length).toBe(kinds.filter((k) => k === "gemm softmax gemm").length);
    for (const c of chains) expect(c.nbatch % 4, `${c.nbatch} batches: 4 samples x heads`).toBe(0);
    // local (never stored): the scores S, and in the backward pass dP and dS; P and the products are read after
    const localKinds = chains.map((c) => c.locals.map((l) => g.node(l.node).op.kind).join(" "));
    for (let i = 0; i < chains.length; i++) expect(localKinds[i], kinds[i]).toBe(kinds[i] === "gemm softmax gemm" ? "gemm" : "gemm softmax_grad");
  });

  it("keeps a run apart whose reader takes another batch's elements, and one without a link", () => {
    const [B, H, N, D] = [2, 2, 4, 3];
    const g = new Graph();
    const q = g.param("q", [B, N, H * D]);
    const k = g.param("k", [B, N, H * D]);
    const s = g.gemm(q, k, [B, H, N, N], attn(B, H, N, D));
    // the second GEMM reads S with its two batch axes swapped: batch (b, h) takes (h, b)'s scores
    const swapped = { batch: [B, H] as [number, number], m: N, n: N, k: N, alpha: 1, a: [N * N, H * N * N, N, 1] as [number, number, number, number], b: [H * N * N, N * N, N, 1] as [number, number, number, number], c: [H * N * N, N * N, N, 1] as [number, number, number, number] };
    const y = g.gemm(s, s, [B, H, N, N], swapped);
    expect(findChains(g, liveNodes(g, [y.id]))).toEqual([]);
    // two batched GEMMs that do not read each other: no chain
    const g2 = new Graph();
    const [q2, k2] = [g2.param("q", [B, N, H * D]), g2.param("k", [B, N, H * D])];
    const s1 = g2.gemm(q2, k2, [B, H, N, N], attn(B, H, N, D));
    const s2 = g2.gemm(k2, q2, [B, H, N, N], attn(B, H, N, D));
    const z = g2.ew("add", [s1, s2]);
    expect(findChains(g2, liveNodes(g2, [z.id]))).toEqual([]);
  });

  it("keeps bf16 GEMMs whose one batch's packed B passes the thread buffer out of chains (fp32 ones need no buffer)", () => {
    // scores of 160 tokens over 2 heads of width W: B = k^T is W x 160, (160 + 31) * (W + 1) floats packed
    for (const [W, precision, chained] of [[256, "bf16", true], [512, "bf16", false], [512, "fp32", true]] as const) {
      expect((160 + 31) * (W + 1) <= CHAIN_B_FLOATS || precision === "fp32").toBe(chained);
      const g = new Graph();
      const [q, k] = [g.param("q", [1, 160, 2 * W]), g.param("k", [1, 160, 2 * W])];
      const y = g.softmax(g.gemm(q, k, [1, 2, 160, 160], { ...attn(1, 2, 160, W), ...(precision === "bf16" ? { precision } : {}) }));
      expect(findChains(g, liveNodes(g, [y.id])).length, `width ${W} ${precision}`).toBe(chained ? 1 : 0);
    }
  });

  it("holds every tensor a chain touches until its end: the memory plan gives none of them another's buffer", () => {
    const m = buildModel(tiny.spec, tiny.ir, 3);
    const sg = buildStepGraph(m, 4, [32, 32, 1]);
    fuse(sg);
    const g = sg.graph;
    const live = liveNodes(g, stepOutputs(sg));
    const chains = findChains(g, live);
    m.store.dispose();
    const pooled = (id: number) => !["input", "const", "param", "view"].includes(g.node(id).op.kind);
    const held = planBuffers(g, live, pooled, chainHolds(g, chains));
    for (const c of chains) {
      const touched = [...new Set(c.nodes.flatMap((id) => [id, ...inputsOf(g.node(id).op)]))].filter((id) => held.slot.has(id));
      const slots = touched.map((id) => held.slot.get(id));
      expect(new Set(slots).size, `chain at node ${c.nodes[0]}: ${touched.length} tensors`).toBe(touched.length);
    }
  });
});

describe("a chained step", () => {
  it("gives the bits of the kernels one by one (losses, parameters, gradients, Adam moments, EMA): fp32 and bf16, 1 to 3 threads, every ISA level", async () => {
    const addon = nativeAddon().addon!;
    const [isa, threads] = [addon.isa(), addon.threads()];
    try {
      for (const level of addon.isas())
        for (const precision of ["fp32", "bf16"] as const) {
          addon.isa(level);
          addon.threads(1);
          const plain = await tinyTwoSteps(tiny, precision, { chains: false });
          for (const t of [1, 2, 3]) {
            addon.threads(t);
            const chained = await tinyTwoSteps(tiny, precision, { chains: true });
            const label = `${level}, ${precision}, ${t} threads`;
            expect(chained.kernels, label).toBeLessThan(plain.kernels);
            expect(chained.losses, label).toEqual(plain.losses);
            expect(differingBuffers(plain.state, chained.state), `buffers that differ, ${label}`).toBe(0);
          }
        }
    } finally {
      addon.isa(isa);
      addon.threads(threads);
    }
  }, 120_000);

  it("samples to the same bits (the forward pass's attention chained)", () => {
    const [B, H, N, D] = [3, 2, 9, 5];
    const rng = new Rng(11);
    const build = () => {
      const g = new Graph();
      const [q, k, v] = ["q", "k", "v"].map((n) => g.param(n, [B, N, H * D]));
      const p = g.softmax(g.gemm(q, k, [B, H, N, N], attn(B, H, N, D)));
      const rows: [number, number, number, number] = [N * H * D, D, H * D, 1];
      return { g, y: g.gemm(p, v, [B, N, H * D], { batch: [B, H], m: N, n: D, k: N, alpha: 1, a: [H * N * N, N * N, N, 1], b: rows, c: rows }) };
    };
    const values = new Map(["q", "k", "v"].map((n) => [n, rng.normals(B * N * H * D)] as const));
    const runs = [false, true].map((chains) => {
      const { g, y } = build();
      const c = compileGraph({ graph: g, v: y, batch: B }, paramArena(values), { chains });
      return { out: c.run(new Map()), kernels: c.kernels };
    });
    expect(runs.map((r) => r.kernels)).toEqual([3, 1]);
    expect(Buffer.from(runs[1].out.buffer).equals(Buffer.from(runs[0].out.buffer))).toBe(true);
  });
});

describe("the decoder", () => {
  const addon = () => nativeAddon().addon!;
  const P = (...w: number[]) => Float64Array.from(w);
  // a 2-batch GEMM of 2 x 2 x 2 at arena 0 (a at 0, b at 8, c at 16), fp32
  const gemm = (batch = 2, code = 2) => [code, 0, 0, 0, 8, 0, 16, -1, 0, batch, 1, 2, 2, 2, 1, 4, 0, 2, 1, 4, 0, 2, 1, 4, 0, 2, 1];
  it("runs a chain, and refuses a step of other batches, a step that is not a GEMM or softmax, a chain in a chain, a matrix-vector step", () => {
    const a = [new ArrayBuffer(4 * 64)];
    expect(() => addon().run(addon().build(P(14, 2, 2, 0, ...gemm(), 6, 0, 32, 0, 16, 4, 2), a))).not.toThrow();
    expect(() => addon().build(P(14, 2, 1, 0, ...gemm(3)), a)).toThrow(/kernel 0 \(chain\), field step .*a GEMM step of 3 batches in a chain of 2/);
    expect(() => addon().build(P(14, 2, 1, 0, 9, 0, 0, 4, 0), a)).toThrow(/kernel 0 \(chain\), field step .*must be a GEMM, a softmax or a softmax gradient/);
    expect(() => addon().build(P(14, 2, 1, 0, 14, 2, 1, 0, ...gemm()), a)).toThrow(/a chain inside a chain/);
    expect(() => addon().build(P(14, 2, 1, 0, 6, 0, 32, 0, 16, 3, 2), a)).toThrow(/3 rows are not a whole number of rows for each of 2 batches/);
    const gemv = gemm();
    gemv[12] = 1; // n = 1
    expect(() => addon().build(P(14, 2, 1, 0, ...gemv), a)).toThrow(/n < 2/);
    // a bf16 step whose one batch's B, packed, passes the thread buffer
    const big = [11, 0, 0, 0, 0, 0, 0, -1, 0, 2, 1, 2, 2048, 64, 1, 0, 0, 64, 1, 0, 0, 1, 64, 4096, 0, 2048, 1];
    expect(() => addon().build(P(14, 2, 1, 0, ...big), [new ArrayBuffer(4 * 2048 * 64 * 2)])).toThrow(/passes 65536 floats/);
  });
});
