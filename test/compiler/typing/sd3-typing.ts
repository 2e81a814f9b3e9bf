/**
 * Type-level tests of the generated sd3 package (checked by tsc --strict in generated.test.ts,
 * never run). Correct uses must compile; each `@ts-expect-error` line must really be an error
 * (an unused directive fails tsc), which proves the generated types are strict: tensor ranks,
 * constructor argument types and presence, and forward arity.
 */
import { ParamStore, tf } from "sdc/runtime";
import { createNetwork, createTextEncoder, JointAttention, Mmdit, type MmditArgs, spec } from "../../../generated/sd3/index.ts";

const x = tf.zeros([2, 32, 32, 1]) as tf.Tensor4D;
const t = tf.zeros([2]) as tf.Tensor1D;
const context = tf.zeros([2, 8, 256]) as tf.Tensor3D;
const pooled = tf.zeros([2, 256]) as tf.Tensor2D;
const ids = tf.zeros([2, 8], "int32") as tf.Tensor2D;

const ARGS: MmditArgs = { heads: 6, head_dim: 64, depth: 12, patch: 8, channels: 1, max_grid: 4, context_dim: 256, pooled_dim: 256 };

/** What a user writes: all of it must type-check. */
export function correctUses(): tf.Tensor4D {
  const store: ParamStore = new ParamStore(0);
  const net = createNetwork(store);
  const v: tf.Tensor4D = net.forward(x, t, context, pooled);
  const enc = createTextEncoder(store);
  const [c, p]: [tf.Tensor3D, tf.Tensor2D] = enc.forward(ids);
  const again: tf.Tensor4D = net.forward(x, t, c, p);
  // blocks are classes with typed argument interfaces; optional parameters may be left out
  const mm = new Mmdit(new ParamStore(1), "", { ...ARGS, mlp_ratio: 4 });
  const attn = new JointAttention(store, "attn", { width: 384, heads: 6 });
  const [ah, ac]: [tf.Tensor3D, tf.Tensor3D] = attn.forward(context, context);
  const widths: number = mm.p.width + ah.rank + ac.rank + spec.params;
  void widths;
  return again ?? v;
}

/** Mistakes the types must catch. */
export function wrongUses(): void {
  const store = new ParamStore(0);
  const net = createNetwork(store);

  // @ts-expect-error a Tensor3D where the image Tensor4D is expected
  net.forward(context, t, context, pooled);
  // @ts-expect-error a Tensor2D where the Tensor1D timesteps are expected
  net.forward(x, pooled, context, pooled);
  // @ts-expect-error the output is a Tensor4D, not a Tensor3D
  const out3: tf.Tensor3D = net.forward(x, t, context, pooled);
  void out3;

  // @ts-expect-error wrong number of forward arguments: too few
  net.forward(x, t, context);
  // @ts-expect-error wrong number of forward arguments: too many
  net.forward(x, t, context, pooled, pooled);

  // @ts-expect-error a string for a number constructor argument
  new Mmdit(store, "", { ...ARGS, heads: "6" });
  // @ts-expect-error a number for a bool constructor argument
  new JointAttention(store, "attn", { width: 384, heads: 6, pre_only: 1 });
  // @ts-expect-error missing constructor arguments (no heads)
  new JointAttention(store, "attn", { width: 384 });
  // @ts-expect-error missing constructor arguments (no args object)
  new Mmdit(store, "");
  // @ts-expect-error an unknown constructor argument
  new JointAttention(store, "attn", { width: 384, heads: 6, head: 6 });
  // @ts-expect-error not a ParamStore
  createNetwork({});

  const enc = createTextEncoder(store);
  // @ts-expect-error the encoder returns a (Tensor3D, Tensor2D) pair, not one tensor
  const one: tf.Tensor3D = enc.forward(ids);
  void one;
}
