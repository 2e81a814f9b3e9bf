/**
 * The training step of a diffusion spec as one static graph: trace the network (and the learned
 * text encoder, trained jointly) at a fixed batch size, append the flow-matching loss and its
 * gradient. The host prepares the inputs (xt, t, target, loss weights, token one-hots) from the
 * same FlowBatch the tfjs trainer uses, so both engines train on identical numbers.
 */
import * as tf from "@tensorflow/tfjs";
import type { ParamStore } from "../../nn/params.ts";
import { DEFAULT_SIGMA_FLOOR, lossWeight, networkTime, type FlowConfig } from "../../flow/schedule.ts";
import type { FlowBatch, ModelBundle } from "../../bundle.ts";
import { LearnedPromptEncoder } from "../../text/learned.ts";
import { type CondArrays, networkSources, nullClass, promptLabels, tokenMask, usesTextFeatures } from "../../train/conditioning.ts";
import { differentiate } from "../../graph/autodiff.ts";
import { Graph, GraphError, rootOf, type Sym, isSym } from "../../graph/graph.ts";
import type { StepGraph, VelocityGraph } from "../../graph/step-graph.ts";
import { type DropoutInput, TraceContext, withTrace } from "../../graph/trace.ts";
import { Rng } from "../../util/rng.ts";

/** The training precision of a step graph: fp32, or bf16 mixed precision (autocast's). */
export type StepPrecision = "fp32" | "bf16";

/** Names of the store's variables, for the trace. */
function paramTable(store: ParamStore): Map<object, { name: string; shape: number[] }> {
  const t = new Map<object, { name: string; shape: number[] }>();
  for (const [name, v] of store.vars) t.set(v, { name, shape: [...v.shape] });
  return t;
}

/**
 * Trace the velocity v(xt, t, conditioning) of the network (and a learned text encoder) into `g`.
 * The graph's inputs: xt, t, and per the network's input sources ids (learned text) or context +
 * pooled (frozen encoders), mask [B, T] (context_mask), labels [B] (label).
 */
function traceVelocity(g: Graph, m: Pick<ModelBundle, "network" | "text" | "ir">, batch: number, dims: [number, number, number], context?: { tokens: number; width: number; pooled: number }): { v: Sym; text: StepGraph["text"] } {
  const [h, w, c] = dims;
  const sources = networkSources(m.ir);
  const xt = g.input("xt", [batch, h, w, c]);
  const t = g.input("t", [batch]);
  const cond: Partial<Record<string, Sym>> = {};
  let text: StepGraph["text"] = "none";
  // the tokens' padding mask: an input of the network (context_mask), of a masked text encoder, or both
  const maskInput = () => (cond.context_mask ??= g.input("mask", [batch, (m.text as LearnedPromptEncoder).tokenizer.length]));
  if (usesTextFeatures(m.ir)) {
    if (m.text instanceof LearnedPromptEncoder) {
      const ids = g.input("ids", [batch, m.text.tokenizer.length]);
      const encoder = m.text.module as unknown as { forward(...a: Sym[]): Sym[] };
      [cond.context, cond.pooled] = m.text.masked ? encoder.forward(ids, maskInput()) : encoder.forward(ids);
      text = "learned";
    } else {
      if (!context) throw new GraphError("the text encoder is frozen: give the context shape");
      cond.context = g.input("context", [batch, context.tokens, context.width]);
      cond.pooled = g.input("pooled", [batch, context.pooled]);
      text = "external";
    }
  }
  if (sources.includes("context_mask")) {
    // a learned encoder's tokens; frozen encoders: the caller feeds the mask with the context (its token count)
    if (m.text instanceof LearnedPromptEncoder) maskInput();
    else {
      if (!context) throw new GraphError("context_mask needs the learned text encoder or the context shape");
      cond.context_mask = g.input("mask", [batch, context.tokens]);
    }
  }
  if (sources.includes("label")) cond.label = g.input("labels", [batch]);
  const args = sources.map((s) => (s === "image" ? xt : s === "timestep" ? t : cond[s]!));
  const out = m.network.forward(...(args as unknown as tf.Tensor[])) as unknown as Sym;
  if (!isSym(out)) throw new GraphError("the network did not return a traced tensor");
  // flow.output velocity_variance: the first half of the channels is the velocity
  const part = m.ir.flow.output === "velocity_variance" ? g.slice(out, 3, 0, c) : out; // [B, H, W, C]
  return { v: m.ir.flow.predict === "data" ? dataVelocityGraph(g, m.ir.flow, part, xt, t) : part, text };
}

/** flow.predict data: the traced `dataVelocity` rule, -velocitySign * (x0_hat - xt) / max(sigma, floor). */
function dataVelocityGraph(g: Graph, flow: ModelBundle["ir"]["flow"], x0hat: Sym, xt: Sym, t: Sym): Sym {
  const sigma = flow.noiseAt === 1 ? t : g.ew("sub", [1, t]); // [B]
  const s = g.reshape(g.ew("max", [sigma, flow.sigmaFloor ?? DEFAULT_SIGMA_FLOOR]), [t.shape[0], 1, 1, 1]); // [B, 1, 1, 1]
  const d = flow.noiseAt === 1 ? g.ew("sub", [xt, x0hat]) : g.ew("sub", [x0hat, xt]); // [B, H, W, C]
  return g.ew("div", [d, s]);
}

export function buildVelocityGraph(m: Pick<ModelBundle, "store" | "network" | "text" | "ir">, batch: number, dims: [number, number, number], context?: { tokens: number; width: number; pooled: number }): VelocityGraph {
  const g = new Graph();
  const tc = new TraceContext(g, paramTable(m.store));
  const { v, text } = withTrace(tc, () => traceVelocity(g, m, batch, dims, context));
  return { graph: g, v, oneHots: tc.oneHots, batch, dims, text };
}

/**
 * Build the step graph. `context` gives [tokens, width] and the pooled width when the text is
 * external (frozen encoders: the caller feeds their features); a learned encoder is traced.
 * `precision` "bf16": the GEMMs of linear layers and attention and their gradients round their
 * operands to bf16 (Graph.autocast); everything else (norms, softmax, loss, optimizer) is fp32.
 */
export function buildStepGraph(m: Pick<ModelBundle, "store" | "network" | "text" | "ir">, batch: number, dims: [number, number, number], context?: { tokens: number; width: number; pooled: number }, precision: StepPrecision = "fp32"): StepGraph {
  const g = new Graph();
  g.autocast = precision === "bf16" ? "bf16" : null;
  const tc = new TraceContext(g, paramTable(m.store));
  tc.training = true;
  const [h, w, c] = dims;
  const out = withTrace(tc, () => {
    const { v, text } = traceVelocity(g, m, batch, dims, context); // [B, H, W, C]
    const target = g.input("target", [batch, h, w, c]);
    const weight = g.input("weight", [batch]);
    g.tag = "loss";
    const diff = g.ew("sub", [v, target]);
    const sq = g.ew("square", [diff]);
    const weighted = g.ew("mul", [sq, g.reshape(weight, [batch, 1, 1, 1])]);
    const loss = g.sumTo(weighted, [1]);
    return { loss, text };
  });
  const { grads } = differentiate(g, out.loss);
  // every parameter's gradient gets a node of its own (the executor writes it into the flat
  // gradient buffer): two gradients can be the same node, e.g. the biases of two linears whose
  // outputs are added, at batch 1, where summing over the batch is the identity
  const owner = new Map<number, string>();
  for (const [name, s] of grads) {
    const r = rootOf(g, s.id);
    const kind = g.node(r).op.kind;
    if (kind === "const" && r === s.id) continue; // an unused parameter's zero gradient
    if (owner.has(r) || kind === "input" || kind === "param" || kind === "const") grads.set(name, g.ew("id", [s]));
    else owner.set(r, name);
  }
  const params = [...m.store.vars].map(([name, v]) => ({ name, shape: [...v.shape] }));
  return {
    graph: g,
    loss: out.loss,
    grads,
    params,
    oneHots: tc.oneHots,
    dropouts: tc.dropouts,
    batch,
    dims,
    text: out.text,
  };
}

/** The dropout mask of a step: keep with probability 1 - p, scaled by 1 / (1 - p); drawn from (step, mask index) alone, so a resumed run draws the same. */
export function dropoutMask(d: DropoutInput, step: number, index: number): Float32Array {
  const rng = new Rng((Math.imul(step + 1, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0);
  const n = d.shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  const scale = 1 / (1 - d.p);
  for (let i = 0; i < n; i++) out[i] = rng.uniform() >= d.p ? scale : 0;
  return out;
}

/** The names of a graph's inputs, found once per graph (stepFeeds runs every step; fusion never adds or removes inputs). */
const inputNameCache = new WeakMap<Graph, Set<string>>();
function inputNames(g: Graph): Set<string> {
  let names = inputNameCache.get(g);
  if (!names) {
    names = new Set(g.nodes.flatMap((nd) => (nd.op.kind === "input" ? [nd.op.name] : [])));
    inputNameCache.set(g, names);
  }
  return names;
}

/**
 * x_t = (1 - sigma) x0 + sigma eps and the velocity target (eps - x0 when noise is at t = 1, else
 * x0 - eps), image by image. A leaf with typed-array arguments and nothing after its loop: V8
 * optimizes its hot loop once and keeps it (inside stepFeeds, the loop's on-stack-replaced code
 * bailed out after the loop every step and the function was recompiled on a background thread
 * well after the warm-up steps, a third thread beside the two of a native step).
 */
function mixBatch(xt: Float32Array, target: Float32Array, x0: Float32Array, eps: Float32Array, sigma: Float32Array, per: number, noiseAt1: boolean): void {
  for (let i = 0; i < sigma.length; i++) {
    const s = sigma[i];
    for (let j = i * per; j < (i + 1) * per; j++) {
      xt[j] = (1 - s) * x0[j] + s * eps[j];
      target[j] = noiseAt1 ? eps[j] - x0[j] : x0[j] - eps[j];
    }
  }
}

/**
 * The host-side inputs of one step from a FlowBatch: the same arithmetic as flowLoss
 * (xt = (1 - sigma) x0 + sigma eps, target, network time, loss weights / (B * pixels)), and the
 * step's dropout masks (`step`: the optimizer step it is for).
 */
export function stepFeeds(sg: Pick<StepGraph, "graph" | "batch" | "dims" | "text" | "oneHots"> & { dropouts?: DropoutInput[] }, flow: FlowConfig, b: FlowBatch, text: TextInputs, step = 0): Map<string, Float32Array> {
  const n = sg.batch;
  const per = sg.dims[0] * sg.dims[1] * sg.dims[2];
  if (b.sigma.length !== n || b.x0.length !== n * per || b.eps.length !== n * per) throw new GraphError(`the batch does not match the step graph (batch ${n}, ${per} values per image)`);
  const xt = new Float32Array(n * per);
  const target = new Float32Array(n * per);
  mixBatch(xt, target, b.x0, b.eps, b.sigma, per, flow.noiseAt === 1);
  const wts = lossWeight(flow, b.sigma).map((x) => x / (n * per));
  const feeds = new Map<string, Float32Array>([
    ["xt", xt],
    ["t", networkTime(flow, b.sigma)],
    ["target", target],
    ["weight", wts],
  ]);
  (sg.dropouts ?? []).forEach((d, k) => feeds.set(d.name, dropoutMask(d, step, k)));
  if (sg.text === "learned") {
    if (!text.ids) throw new GraphError("the step needs token ids");
    feeds.set("ids", Float32Array.from(text.ids));
  } else if (sg.text === "external") {
    if (!text.context || !text.pooled) throw new GraphError("the step needs context and pooled text features");
    feeds.set("context", text.context);
    feeds.set("pooled", text.pooled);
  }
  const inputs = inputNames(sg.graph);
  if (inputs.has("mask")) {
    if (!text.mask) throw new GraphError("the step needs the context's padding mask");
    feeds.set("mask", text.mask);
  }
  if (inputs.has("labels")) {
    if (!text.labels) throw new GraphError("the step needs class labels");
    feeds.set("labels", Float32Array.from(text.labels));
  }
  // one-hot rows of integer inputs (token ids, labels) for the embeddings that read them
  for (const oh of sg.oneHots) {
    const ids = oh.from === "labels" ? text.labels : oh.from === "ids" ? text.ids : undefined;
    if (!ids) throw new GraphError(`the step needs the integer input ${oh.from}`);
    const rows = new Float32Array(ids.length * oh.vocab);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!(id >= 0 && id < oh.vocab)) throw new GraphError(`${oh.from === "labels" ? "class label" : "token id"} ${id} outside the embedding's ${oh.vocab} rows`);
      rows[i * oh.vocab + id] = 1;
    }
    feeds.set(oh.name, rows);
  }
  return feeds;
}

/** The context shape fed to a frozen text encoder's network; undefined when the encoder is learned (it is traced). */
export function frozenContext(m: Pick<ModelBundle, "text" | "ir">): { tokens: number; width: number; pooled: number } | undefined {
  const text = m.ir.text;
  if (m.text instanceof LearnedPromptEncoder || text.kind === "learned" || text.kind === "none") return undefined;
  return { tokens: text.tokens, width: text.width, pooled: text.pooled };
}

/** The conditioning inputs of a step or forward pass (token ids or frozen features, mask, labels). */
export type TextInputs = CondArrays;

/** The conditioning inputs of a step or forward pass for prompts: token ids or a frozen encoder's features, the padding mask, the labels. */
export async function textInputs(m: Pick<ModelBundle, "text" | "ir">, prompts: readonly string[]): Promise<TextInputs> {
  const sources = networkSources(m.ir);
  const out: TextInputs = {};
  const text = m.text;
  if (text instanceof LearnedPromptEncoder) {
    const ids = text.tokenizer.encodeBatch(prompts);
    if (usesTextFeatures(m.ir)) out.ids = ids;
    if (sources.includes("context_mask") || (text.masked && usesTextFeatures(m.ir))) out.mask = tokenMask(ids);
  } else if (usesTextFeatures(m.ir)) {
    await text.prepare?.(prompts);
    const [c, p] = text.encode(prompts);
    out.context = (await c.data()) as Float32Array;
    out.pooled = (await p.data()) as Float32Array;
    tf.dispose([c, p]);
  }
  if (sources.includes("label")) out.labels = promptLabels(prompts, nullClass(m.ir));
  return out;
}
