/**
 * A trained model as an ONNX file: the velocity network and its learned text encoder, traced at
 * two batch sizes and lowered together (onnx.ts, a dynamic batch axis), the parameters as
 * initializers, and what a sampler outside sdc needs in the model's metadata (the flow's time
 * convention and defaults, the tokenizer's words, the null class).
 */
import { buildVelocityGraph, frozenContext } from "../engines/static/step.ts";
import type { ModelBundle } from "../bundle.ts";
import { LearnedPromptEncoder } from "../text/learned.ts";
import { nullClass } from "../train/conditioning.ts";
import { type OnnxModel, encodeOnnx } from "./onnx-proto.ts";
import { LOCKSTEP_BATCHES, lowerVelocity } from "./onnx.ts";

export interface OnnxExportInfo {
  /** training step of the checkpoint */
  step: number;
  weights: "ema" | "raw";
  producerVersion: string;
}

/** The flow settings and tokenizer a sampler needs, as ONNX metadata (strings; JSON for lists). */
export function exportMetadata(m: Pick<ModelBundle, "ir" | "text" | "flow">, info: OnnxExportInfo): Record<string, string> {
  const { ir, flow } = m;
  const meta: Record<string, string> = {
    "sdc.spec": ir.spec.name,
    "sdc.step": String(info.step),
    "sdc.weights": info.weights,
    "sdc.image": JSON.stringify([ir.data.height, ir.data.width, ir.data.channels]),
    // the network's time: with noise_at 0, t = 1 is data and x_t = t x0 + (1 - t) eps
    "flow.noise_at": String(flow.noiseAt),
    "flow.sampler": flow.sampler,
    "flow.steps": String(flow.steps),
    "flow.shift": String(flow.shift),
    "flow.guidance": String(flow.guidance),
  };
  // guidance only where the noise level sigma is in [lo, hi] (elsewhere the conditional velocity)
  if (flow.guidanceInterval) meta["flow.guidance_interval"] = JSON.stringify(flow.guidanceInterval);
  if (m.text instanceof LearnedPromptEncoder) {
    // ids: word i of this list is id i + 2; 0 pads (the empty prompt is the unconditional input), 1 is an unknown word
    meta["text.words"] = JSON.stringify(m.text.tokenizer.words);
    meta["text.tokens"] = String(m.text.tokenizer.length);
  }
  if (ir.network.inputs.some((i) => i.source === "label")) meta["label.null"] = String(nullClass(ir));
  return meta;
}

/** The model's forward pass lowered to ONNX nodes (its current parameters: the ParamStore's values), with its metadata. */
export async function lowerModel(m: ModelBundle, info: OnnxExportInfo): Promise<OnnxModel> {
  const dims: [number, number, number] = [m.ir.data.height, m.ir.data.width, m.ir.data.channels];
  const ctx = frozenContext(m);
  const vgs = [buildVelocityGraph(m, LOCKSTEP_BATCHES[0], dims, ctx), buildVelocityGraph(m, LOCKSTEP_BATCHES[1], dims, ctx)] as const;
  const params = new Map<string, Float32Array>();
  for (const [name, v] of m.store.vars) params.set(name, (await v.data()) as Float32Array);
  const tokens = m.text instanceof LearnedPromptEncoder ? m.text.tokenizer.length : undefined;
  const lowered = lowerVelocity([vgs[0], vgs[1]], params, { inputs: m.ir.network.inputs, output: m.ir.network.output, tokens });
  return {
    graphName: m.ir.spec.name,
    ...lowered,
    producer: { name: "sdc", version: info.producerVersion },
    docString: `${m.ir.spec.title}: the velocity of the trained network (${info.weights} weights, step ${info.step}), exported by sdc`,
    metadata: exportMetadata(m, info),
  };
}

/** The ONNX ModelProto of the model's current parameters. */
export async function exportOnnx(m: ModelBundle, info: OnnxExportInfo): Promise<Uint8Array> {
  return encodeOnnx(await lowerModel(m, info));
}
