/**
 * Parameters by state-dict name. Every layer asks the store for its tensors by full name
 * (`transformer_blocks.0.attn.to_q.weight`), so checkpoints, the reference's PyTorch weights and
 * the IR's parameter table all share one naming.
 */
import * as tf from "@tensorflow/tfjs";
import { Rng } from "../util/rng.ts";
import type { Init } from "../../ir/ir.ts";
export type { Init };


/** A spec's linear `init` string (compiler/primitives.ts linearInit checked it) as the weight's and bias's Init. */
export function linearInits(s: string | undefined): { weight: Init; bias: Init } {
  if (s === undefined || s === "torch") return { weight: "torch_linear", bias: "torch_linear" };
  if (s === "zeros") return { weight: "zeros", bias: "zeros" };
  if (s === "xavier_uniform") return { weight: "xavier_uniform", bias: "zeros" };
  const m = /^(normal|trunc_normal)\(\s*([0-9.eE+-]+)\s*\)$/.exec(s);
  const std = m ? Number(m[2]) : NaN;
  if (!m || !(std > 0) || !Number.isFinite(std)) throw new ParamError(`unknown init ${JSON.stringify(s)}: "torch", "zeros", "xavier_uniform", "normal(STD)" or "trunc_normal(STD)"`);
  return { weight: `${m[1] as "normal" | "trunc_normal"}:${std}`, bias: "zeros" };
}

export class ParamError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ParamError";
  }
}

export interface TensorData {
  shape: number[];
  data: Float32Array | Int32Array | Uint8Array | Float64Array;
}

export class ParamStore {
  /** trainable parameters, in creation order (= the IR's order) */
  readonly vars = new Map<string, tf.Variable>();
  /** fixed tensors saved with the weights (position tables) */
  readonly buffers = new Map<string, tf.Tensor>();
  private rng: Rng;

  constructor(seed = 0) {
    this.rng = new Rng(seed);
  }

  /** true on a view from shared(): parameters are looked up, never created */
  private sharing = false;

  /**
   * A view of this store that hands out the parameters already created (by name, with the same
   * shape) instead of creating them: a layer built on it shares another layer's weights (weight
   * tying, `share:` in a spec). Its parameters are counted, saved and updated once.
   */
  shared(): ParamStore {
    const view = Object.create(this) as ParamStore;
    view.sharing = true;
    return view;
  }

  /** Create a parameter. `fanIn` sets the PyTorch default uniform bound 1/sqrt(fanIn). */
  param(name: string, shape: number[], init: Init, fanIn?: number): tf.Variable {
    if (this.sharing) {
      const v = this.vars.get(name);
      if (!v) throw new ParamError(`shared parameter '${name}' does not exist (the layer whose weights are shared is built first)`);
      if (v.shape.length !== shape.length || v.shape.some((d, i) => d !== shape[i])) throw new ParamError(`shared parameter '${name}' has shape [${v.shape}], the layer sharing it needs [${shape}]`);
      return v;
    }
    if (this.vars.has(name) || this.buffers.has(name)) throw new ParamError(`parameter '${name}' is created twice`);
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    switch (init) {
      case "torch_linear": {
        const bound = 1 / Math.sqrt(fanIn ?? shape[shape.length - 1]);
        for (let i = 0; i < n; i++) data[i] = (this.rng.uniform() * 2 - 1) * bound;
        break;
      }
      case "ones":
        data.fill(1);
        break;
      case "normal_0.02":
        for (let i = 0; i < n; i++) data[i] = this.rng.normal() * 0.02;
        break;
      case "xavier_uniform": {
        // fan_in, fan_out as torch.nn.init: dims 1 and 0, times the receptive field of the rest
        const field = shape.slice(2).reduce((a, b) => a * b, 1);
        const bound = Math.sqrt(6 / ((shape[1] ?? 1) * field + shape[0] * field));
        for (let i = 0; i < n; i++) data[i] = (this.rng.uniform() * 2 - 1) * bound;
        break;
      }
      default:
        if (init.startsWith("constant:")) data.fill(Number(init.slice("constant:".length)));
        else if (init.startsWith("normal:") || init.startsWith("trunc_normal:")) {
          const std = Number(init.slice(init.indexOf(":") + 1));
          const trunc = init.startsWith("trunc");
          for (let i = 0; i < n; i++) {
            let z = this.rng.normal();
            while (trunc && Math.abs(z) > 2) z = this.rng.normal(); // redrawn outside +-2 std
            data[i] = z * std;
          }
        }
        break;
    }
    const v = tf.variable(tf.tensor(data, shape, "float32"), true, name.replace(/[^A-Za-z0-9_.\-/]/g, "_") + "_" + this.vars.size);
    this.vars.set(name, v);
    return v;
  }

  buffer(name: string, t: tf.Tensor): tf.Tensor {
    if (this.sharing) {
      const b = this.buffers.get(name);
      if (!b) throw new ParamError(`shared buffer '${name}' does not exist`);
      t.dispose();
      return b;
    }
    if (this.vars.has(name) || this.buffers.has(name)) throw new ParamError(`buffer '${name}' is created twice`);
    const kept = tf.keep(t);
    this.buffers.set(name, kept);
    return kept;
  }

  get numParams(): number {
    let n = 0;
    for (const v of this.vars.values()) n += v.size;
    return n;
  }

  /**
   * Assign weights by name. `strict`: every parameter must be present and no unknown names
   * (buffers may be present; they are checked against the computed table within 1e-5).
   */
  load(tensors: Map<string, TensorData>, opts: { strict?: boolean; what?: string; prefix?: string } = {}): { loaded: number; unknown: string[]; missing: string[] } {
    const what = opts.what ?? "weights";
    const prefix = opts.prefix ?? "";
    const missing: string[] = [];
    const unknown: string[] = [];
    let loaded = 0;
    for (const [name, v] of this.vars) {
      const t = tensors.get(prefix + name);
      if (!t) {
        missing.push(name);
        continue;
      }
      if (t.shape.length !== v.shape.length || t.shape.some((d, i) => d !== v.shape[i])) {
        throw new ParamError(`${what}: '${name}' has shape [${t.shape}] but the model expects [${v.shape}]`);
      }
      const value = tf.tensor(Float32Array.from(t.data as ArrayLike<number>), v.shape, "float32");
      v.assign(value);
      value.dispose();
      loaded++;
    }
    for (const name of tensors.keys()) {
      const n = name.startsWith(prefix) ? name.slice(prefix.length) : undefined;
      if (n === undefined || (!this.vars.has(n) && !this.buffers.has(n))) unknown.push(name);
    }
    if (opts.strict && (missing.length || unknown.length)) {
      const parts = [];
      if (missing.length) parts.push(`missing ${missing.length} (${missing.slice(0, 3).join(", ")}${missing.length > 3 ? ", ..." : ""})`);
      if (unknown.length) parts.push(`unexpected ${unknown.length} (${unknown.slice(0, 3).join(", ")}${unknown.length > 3 ? ", ..." : ""})`);
      throw new ParamError(`${what} do not match the model: ${parts.join("; ")}`);
    }
    return { loaded, unknown, missing };
  }

  /** Snapshot of every parameter and buffer as host arrays (for checkpoints). */
  async snapshot(opts: { buffers?: boolean } = {}): Promise<Map<string, { shape: number[]; data: Float32Array }>> {
    const out = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [name, v] of this.vars) out.set(name, { shape: [...v.shape], data: (await v.data()) as Float32Array });
    if (opts.buffers !== false) for (const [name, b] of this.buffers) out.set(name, { shape: [...b.shape], data: (await b.data()) as Float32Array });
    return out;
  }

  dispose(): void {
    for (const v of this.vars.values()) v.dispose();
    for (const b of this.buffers.values()) b.dispose();
    this.vars.clear();
    this.buffers.clear();
  }
}

export function joinName(path: string, name: string): string {
  return path ? `${path}.${name}` : name;
}
