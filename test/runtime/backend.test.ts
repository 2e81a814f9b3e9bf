import { afterAll, beforeEach, describe, expect, it } from "vitest";
import * as tf from "@tensorflow/tfjs";
import { BACKEND_NAMES, BackendError, backendInfo, initBackend, shutdownBackend, type BackendName, vulkanLoaderPresent } from "../../runtime/backend.ts";

const isInstalled = async (pkg: string) => {
  const { createRequire } = await import("node:module");
  try {
    createRequire(import.meta.url).resolve(pkg);
    return true;
  } catch {
    return false;
  }
};

describe("runtime/backend", () => {
  beforeEach(async () => {
    await shutdownBackend();
  });
  afterAll(async () => {
    await shutdownBackend();
  });

  it("rejects an unknown backend name with BackendError listing the valid names", async () => {
    const err = await initBackend("cuda" as BackendName).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    const msg = (err as Error).message;
    expect(msg).toContain("cuda");
    for (const n of BACKEND_NAMES) expect(msg).toContain(n);
  });

  it("named tensorflow fails with BackendError mentioning tfjs-node when it is not installed", async () => {
    if ((await isInstalled("@tensorflow/tfjs-node-gpu")) || (await isInstalled("@tensorflow/tfjs-node"))) return;
    const err = await initBackend("tensorflow").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/^tensorflow: /);
    expect(msg).toContain("@tensorflow/tfjs-node-gpu is not installed");
    expect(msg).toContain("@tensorflow/tfjs-node");
  });

  it("auto with candidates tries only those, in their order (bf16 training: the CPU backends)", async () => {
    const lines: string[] = [];
    const r = await initBackend("auto", { log: (m) => lines.push(m), candidates: ["cpu", "wasm"] });
    expect(r.name).toBe("cpu");
    expect(r.skipped).toEqual([]);
    expect(lines).toEqual([]);
    await shutdownBackend();
    const w = await initBackend("auto", { candidates: ["wasm", "cpu"] });
    expect(w.name).toBe("wasm");
  });

  it("auto picks the first backend that starts and says why the earlier ones were skipped", async () => {
    const lines: string[] = [];
    const r = await initBackend("auto", { log: (m) => lines.push(m) });
    expect(["tensorflow", "webgpu", "wasm"]).toContain(r.name);
    expect(tf.getBackend()).toBe(r.name);
    const order = ["tensorflow", "webgpu", "wasm", "cpu"];
    // Every backend before the chosen one is reported as skipped, one line each, in order.
    expect(r.skipped.map((s) => s.split(":")[0])).toEqual(order.slice(0, order.indexOf(r.name)));
    expect(lines.filter((l) => l.includes("skipped"))).toHaveLength(r.skipped.length);
    // the choice itself is the caller's to print, once: only skipped lines come from here
    expect(lines.every((l) => l.startsWith("backend: skipped "))).toBe(true);
    if (r.name === "wasm") {
      // This machine: no tfjs-node, no WebGPU adapter.
      expect(r.skipped[0]).toContain("tfjs-node");
      expect(r.skipped[1]).toMatch(/^webgpu: /);
      // without a Vulkan loader, Dawn is not even loaded (it would print a warning with its build paths)
      if (!vulkanLoaderPresent()) expect(r.skipped[1]).toMatch(/no Vulkan loader \(libvulkan.so.1\)/);
      expect(r.detail).toMatch(/^wasm \(/);
    }
    expect(backendInfo().name).toBe(r.name);
  });

  it("wasm initialises and computes a small matmul correctly", async () => {
    const r = await initBackend("wasm", { log: () => {} });
    expect(r.name).toBe("wasm");
    expect(tf.getBackend()).toBe("wasm");
    expect(r.detail).toContain(".wasm");
    const a = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]);
    const b = tf.tensor2d([7, 8, 9, 10, 11, 12], [3, 2]);
    const c = tf.matMul(a, b);
    expect(c.shape).toEqual([2, 2]);
    expect(Array.from(await c.data())).toEqual([58, 64, 139, 154]);
    tf.dispose([a, b, c]);
    // A larger one against a JS reference.
    const n = 37, k = 53, m = 29;
    const A = Float32Array.from({ length: n * k }, (_, i) => Math.sin(i));
    const B = Float32Array.from({ length: k * m }, (_, i) => Math.cos(i));
    const got = tf.tidy(() => tf.matMul(tf.tensor2d(A, [n, k]), tf.tensor2d(B, [k, m])).dataSync());
    let maxErr = 0;
    for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) {
      let s = 0;
      for (let t = 0; t < k; t++) s += A[i * k + t]! * B[t * m + j]!;
      maxErr = Math.max(maxErr, Math.abs(s - got[i * m + j]!));
    }
    expect(maxErr).toBeLessThan(1e-4);
    expect(backendInfo()).toMatchObject({ name: "wasm" });
  });

  it("named webgpu either starts or throws BackendError saying why", async () => {
    try {
      const r = await initBackend("webgpu", { log: () => {} });
      expect(r.name).toBe("webgpu");
      const x = tf.tensor1d([1, 2, 3]);
      expect(Array.from(await tf.mul(x, 2).data())).toEqual([2, 4, 6]);
    } catch (e) {
      expect(e).toBeInstanceOf(BackendError);
      expect((e as Error).message).toMatch(/^webgpu: /);
    }
  });

  it("cpu initialises", async () => {
    const r = await initBackend("cpu");
    expect(r.name).toBe("cpu");
    expect(Array.from(tf.tidy(() => tf.add(tf.tensor1d([1, 2]), 1).dataSync()))).toEqual([2, 3]);
  });
});
