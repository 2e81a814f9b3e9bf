/**
 * The traced graph computes the PyTorch reference's function: both fixture networks, compiled
 * into a temp dir, traced with symbolic tensors and run by the CPU interpreter on the reference
 * weights and inputs, match the reference outputs (the same check `sdc forward` makes on tfjs).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCompile } from "../../cli/commands/compile.ts";
import { loadCompiled } from "../../cli/generated.ts";
import { initBackend } from "../../runtime/backend.ts";
import { evaluate } from "../../runtime/executors/interp/interp.ts";
import { buildVelocityGraph } from "../../runtime/engines/static/step.ts";
import { readSafetensors } from "../../runtime/io/safetensors.ts";
import { ParamStore } from "../../runtime/nn/params.ts";

const FX = "test/fixtures/mmdit-fixtures";
const tmp = mkdtempSync(join(tmpdir(), "sdc-graph-fx-"));
beforeAll(async () => {
  await initBackend("cpu", { log: () => {} });
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("static graph of the fixture networks vs the PyTorch reference", () => {
  it.each(["mmdit-tiny-a", "mmdit-tiny-b"])("%s: output within 1e-4", async (name) => {
    const sink = { write: () => true, isTTY: false } as unknown as NodeJS.WriteStream;
    expect(runCompile(`test/specs/${name}.mdl`, { outDir: tmp, quiet: true }, sink, sink)).toBe(0);
    const loaded = await loadCompiled(join(tmp, name));
    if (loaded.spec.task !== "diffusion") throw new Error("fixture is a diffusion spec");
    const weights = readSafetensors(readFileSync(join(FX, `${name}.weights.safetensors`)));
    const io = readSafetensors(readFileSync(join(FX, `${name}.io.safetensors`)));
    const store = new ParamStore(0);
    const network = loaded.spec.createNetwork(store);
    store.load(weights.tensors, { strict: false, what: name });
    const t = (n: string) => io.tensors.get(n)!;
    const [b, c, h, w] = t("x").shape;
    const xs = new Float32Array(b * h * w * c); // NCHW -> NHWC
    const x = t("x").data as Float32Array;
    for (let i = 0; i < b; i++) for (let ch = 0; ch < c; ch++) for (let y = 0; y < h; y++) for (let z = 0; z < w; z++) xs[((i * h + y) * w + z) * c + ch] = x[((i * c + ch) * h + y) * w + z];
    const [, tokens, width] = t("text_embeddings").shape;
    const frozen = { words: [], encode: () => { throw new Error("unused"); } };
    const { graph, v: output } = buildVelocityGraph({ store, network, text: frozen, ir: JSON.parse(readFileSync(join(tmp, name, "ir.json"), "utf8")) }, b, [h, w, c], { tokens, width, pooled: t("pooled_text_embeddings").shape[1] });
    const params = new Map([...store.vars].map(([n, v]) => [n, v.dataSync() as Float32Array]));
    const feeds = new Map<string, Float32Array>([["xt", xs], ["t", t("timestep").data as Float32Array], ["context", t("text_embeddings").data as Float32Array], ["pooled", t("pooled_text_embeddings").data as Float32Array]]);
    const y = evaluate(graph, feeds, params, output.id + 1)[output.id]; // [B, H, W, C]
    const ref = t("output").data as Float32Array; // [B, C, H, W]
    let worst = 0;
    for (let i = 0; i < b; i++) for (let ch = 0; ch < c; ch++) for (let r = 0; r < h; r++) for (let z = 0; z < w; z++) worst = Math.max(worst, Math.abs(y[((i * h + r) * w + z) * c + ch] - ref[((i * c + ch) * h + r) * w + z]));
    expect(worst).toBeLessThan(1e-4);
    store.dispose();
  });
});
