/**
 * The runtime surface that generated code imports as `sdc/runtime`: tfjs itself, the stateless
 * primitives (F), the layers with parameters, the parameter store and the compiled-spec types.
 */
import * as tf from "@tensorflow/tfjs";
import * as F from "./nn/functional.ts";

export { tf, F };
export { Linear, LayerNorm, RmsNorm, PatchConv, Conv2d, ConvTranspose2d, GroupNorm, SinCos2d, Embedding, Parameter, ArgumentError } from "./nn/layers.ts";
export type { LinearArgs, LayerNormArgs, RmsNormArgs, PatchConvArgs, Conv2dArgs, ConvTranspose2dArgs, GroupNormArgs, SinCos2dArgs, EmbeddingArgs, ParameterArgs, StateNames } from "./nn/layers.ts";
export { ParamStore, ParamError, joinName } from "./nn/params.ts";
export type { CompiledSpec, DiffusionSpec, ClassifierSpec, NetworkModule, TextEncoderModule, ClassifierModule } from "./model.ts";

/** A module that exists only for some constructor arguments (e.g. a pre-only block's context MLP). */
export function need<T>(m: T | null | undefined, name: string): T {
  if (m === null || m === undefined) throw new Error(`module '${name}' is not built for these arguments`);
  return m;
}

/** A constraint declared with `require` in the spec, checked again when a block is built. */
export function check(cond: boolean, block: string, message: string): void {
  if (!cond) throw new RangeError(`${block}: ${message}`);
}
