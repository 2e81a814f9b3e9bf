import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { readSafetensors, SafetensorsError, writeSafetensors } from "../../runtime/io/safetensors.ts";

const FIXTURE = new URL("../fixtures/mmdit-fixtures/mmdit-tiny-a.io.safetensors", import.meta.url);

describe("safetensors", () => {
  it("round-trips F32, I32 and U8 tensors with metadata", () => {
    const f = new Float32Array([1.5, -2.25, 3e-8, 1e30, -0, 7]);
    const i = new Int32Array([-2147483648, -1, 0, 2147483647]);
    const u = new Uint8Array([0, 1, 128, 255, 9]);
    const bytes = writeSafetensors(
      { weights: { shape: [2, 3], data: f }, counts: { shape: [4], data: i }, mask: { shape: [5, 1], data: u } },
      { step: "42", note: "hello" },
    );
    const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect((8 + headerLen) % 8).toBe(0);
    const back = readSafetensors(bytes, "roundtrip");
    expect(back.metadata).toEqual({ step: "42", note: "hello" });
    expect([...back.tensors.keys()].sort()).toEqual(["counts", "mask", "weights"]);
    const w = back.tensors.get("weights")!;
    expect(w.dtype).toBe("F32");
    expect(w.shape).toEqual([2, 3]);
    expect(Array.from(w.data)).toEqual(Array.from(f));
    const c = back.tensors.get("counts")!;
    expect(c.dtype).toBe("I32");
    expect(c.data).toBeInstanceOf(Int32Array);
    expect(Array.from(c.data)).toEqual(Array.from(i));
    const m = back.tensors.get("mask")!;
    expect(m.dtype).toBe("U8");
    expect(m.shape).toEqual([5, 1]);
    expect(Array.from(m.data)).toEqual([0, 1, 128, 255, 9]);
  });

  it("reads the reference fixture mmdit-tiny-a.io.safetensors", () => {
    const file = readSafetensors(readFileSync(FIXTURE), "mmdit-tiny-a.io.safetensors");
    const names = [...file.tensors.keys()].sort();
    expect(names).toEqual(["output", "pooled_text_embeddings", "text_embeddings", "timestep", "x"]);
    expect(file.tensors.get("x")!.shape).toEqual([2, 1, 32, 32]);
    expect(file.tensors.get("output")!.shape).toEqual([2, 1, 32, 32]);
    expect(file.tensors.get("timestep")!.shape).toEqual([2]);
    expect(file.tensors.get("text_embeddings")!.shape).toEqual([2, 5, 24]);
    expect(file.tensors.get("pooled_text_embeddings")!.shape).toEqual([2, 20]);
    const x = file.tensors.get("x")!;
    expect(x.dtype).toBe("F32");
    expect(x.data.length).toBe(2 * 32 * 32);
    expect(Array.from(x.data).every(Number.isFinite)).toBe(true);
    // random normal inputs: not all equal, roughly zero-mean
    const mean = Array.from(x.data).reduce((a, b) => a + b, 0) / x.data.length;
    expect(Math.abs(mean)).toBeLessThan(0.5);
    expect(new Set(Array.from(x.data)).size).toBeGreaterThan(100);
  });

  it("refuses a truncated file", () => {
    const bytes = readFileSync(FIXTURE);
    expect(() => readSafetensors(bytes.subarray(0, bytes.byteLength - 10), "cut.safetensors")).toThrow(SafetensorsError);
    expect(() => readSafetensors(bytes.subarray(0, 5), "tiny.safetensors")).toThrow(/tiny\.safetensors: truncated/);
    expect(() => readSafetensors(bytes.subarray(0, 40), "head.safetensors")).toThrow(SafetensorsError);
  });

  it("refuses a corrupt header", () => {
    const good = writeSafetensors({ a: { shape: [2], data: new Float32Array([1, 2]) } });
    const bad = new Uint8Array(good);
    bad[8] = "!".charCodeAt(0); // the header's opening brace
    expect(() => readSafetensors(bad, "corrupt.safetensors")).toThrow(SafetensorsError);
    expect(() => readSafetensors(bad, "corrupt.safetensors")).toThrow(/corrupt\.safetensors: header is not valid UTF-8 JSON/);
    // a header length pointing past the end
    const long = new Uint8Array(good);
    new DataView(long.buffer).setBigUint64(0, BigInt(1_000_000), true);
    expect(() => readSafetensors(long, "long.safetensors")).toThrow(/exceeds the file size/);
    // offsets that disagree with the shape
    const hdr = new TextEncoder().encode(JSON.stringify({ a: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }));
    const mis = new Uint8Array(8 + hdr.byteLength + 8);
    new DataView(mis.buffer).setBigUint64(0, BigInt(hdr.byteLength), true);
    mis.set(hdr, 8);
    expect(() => readSafetensors(mis, "mismatch.safetensors")).toThrow(SafetensorsError);
  });
});
