/**
 * What a compiled spec (generated/<name>/index.ts) gives the runtime: the typed configuration
 * from the IR and factories for the network and the learned text encoder.
 */
import type * as tf from "@tensorflow/tfjs";
import type { DataIR, FlowIR, IR, TextIR, TrainIR } from "../ir/ir.ts";
import type { ParamStore } from "./nn/params.ts";

export interface NetworkModule {
  /**
   * The velocity [B, H, W, C] (with flow.output velocity_variance, also the variance channels)
   * from the inputs in the forward's order, each fed by its source (ir.network.inputs[i].source;
   * without an `inputs` section: x [B, H, W, C], t [B], context [B, T, D], pooled [B, P]).
   */
  forward(...inputs: tf.Tensor[]): tf.Tensor4D;
}

export interface TextEncoderModule {
  /** token ids [B, T] (and, when ir.text.mask, their padding mask [B, T]: 1 = token) -> (context [B, T, D], pooled [B, P]) */
  forward(ids: tf.Tensor2D, mask?: tf.Tensor2D): [tf.Tensor3D, tf.Tensor2D];
}

export interface ClassifierModule {
  /** class logits for images x [B, H, W, C] */
  forward(x: tf.Tensor4D): tf.Tensor2D;
}

interface SpecBase {
  name: string;
  /** sha-256 of the ir.json this code was generated with */
  irHash: string;
  data: DataIR;
  text: TextIR;
  flow: FlowIR;
  train: TrainIR;
  /** parameter count the compiler proved (network + text encoder) */
  params: number;
}

export interface DiffusionSpec extends SpecBase {
  task: "diffusion";
  createNetwork(store: ParamStore): NetworkModule;
  createTextEncoder?(store: ParamStore): TextEncoderModule;
}

export interface ClassifierSpec extends SpecBase {
  task: "classifier";
  classes: number;
  createNetwork(store: ParamStore): ClassifierModule;
}

export type CompiledSpec = DiffusionSpec | ClassifierSpec;

export type { IR };
