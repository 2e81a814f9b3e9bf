import { PNG } from "pngjs";
import { describe, expect, it } from "vitest";
import { decodePng, encodeGridPng, encodeImagePng, gridLayout, ImageError, promptsGridText, toByte } from "../../runtime/image/png.ts";

function header(bytes: Uint8Array) {
  const png = PNG.sync.read(Buffer.from(bytes));
  return { width: png.width, height: png.height, colorType: (png as unknown as { colorType: number }).colorType, rgba: png.data };
}

describe("PNG encoding", () => {
  it("maps [-1, 1] to bytes as save_image does, clamping", () => {
    expect([-1, 1, 0, -2, 3, NaN].map(toByte)).toEqual([0, 255, 128, 0, 255, 0]);
  });

  it("writes a 1-channel image as grayscale and a 3-channel one as RGB", () => {
    const g = encodeImagePng(Float32Array.from([-1, 1, 0, 0.5, -0.5, 2]), 2, 3, 1);
    const hg = header(g);
    expect([hg.width, hg.height, hg.colorType]).toEqual([3, 2, 0]);
    expect([0, 1, 2, 3, 4, 5].map((p) => hg.rgba[4 * p])).toEqual([0, 255, 128, 191, 64, 255]);
    const c = encodeImagePng(Float32Array.from([1, -1, -1, -1, 1, -1]), 1, 2, 3);
    const hc = header(c);
    expect([hc.width, hc.height, hc.colorType]).toEqual([2, 1, 2]);
    expect(Array.from(hc.rgba)).toEqual([255, 0, 0, 255, 0, 255, 0, 255]);
  });

  it("round-trips through decodePng (to 8-bit precision)", () => {
    for (const c of [1, 3] as const) {
      const h = 5;
      const w = 7;
      const data = Float32Array.from({ length: h * w * c }, (_, i) => Math.sin(i * 0.37));
      const back = decodePng(encodeImagePng(data, h, w, c));
      expect([back.h, back.w, back.c]).toEqual([h, w, c]);
      for (let i = 0; i < data.length; i++) expect(Math.abs(back.data[i] - data[i])).toBeLessThanOrEqual(1 / 255 + 1e-6);
      // exactly representable values survive exactly
      const exact = Float32Array.from({ length: h * w * c }, (_, i) => ((i * 37) % 256) / 255 * 2 - 1);
      expect(Array.from(decodePng(encodeImagePng(exact, h, w, c)).data)).toEqual(Array.from(exact));
    }
  });

  it("refuses bad arguments and bad bytes with ImageError", () => {
    expect(() => encodeImagePng(new Float32Array(5), 2, 3, 1)).toThrow(/encodeImagePng: data has 5 values, expected 1x2x3x1 = 6/);
    expect(() => encodeImagePng(new Float32Array(8), 2, 2, 2)).toThrow(/channels must be 1 or 3, got 2/);
    expect(() => decodePng(new Uint8Array([1, 2, 3]), "x.png")).toThrow(ImageError);
    expect(() => decodePng(new Uint8Array([1, 2, 3]), "x.png")).toThrow(/x\.png: not a readable PNG/);
  });
});

describe("image grid", () => {
  it("lays 64 images of 32x32 out as 8x8 with padding 2", () => {
    const n = 64;
    const images = new Float32Array(n * 32 * 32);
    for (let k = 0; k < n; k++) images.fill(k % 2 === 0 ? 1 : 0, k * 1024, (k + 1) * 1024);
    const bytes = encodeGridPng(images, n, 32, 32, 1);
    const side = 2 + 8 * (32 + 2);
    const h = header(bytes);
    expect([h.width, h.height, h.colorType]).toEqual([side, side, 0]);
    const px = (x: number, y: number) => h.rgba[4 * (y * side + x)];
    expect(px(0, 0)).toBe(0); // padding black
    expect(px(2, 2)).toBe(255); // image 0 top-left
    expect(px(33, 33)).toBe(255); // image 0 bottom-right
    expect(px(34, 10)).toBe(0); // padding between columns
    expect(px(36, 2)).toBe(128); // image 1 (value 0)
    expect(px(2, 36)).toBe(255); // image 8: second row, first column (even)
    expect(px(side - 3, side - 3)).toBe(128); // image 63 (odd)
  });

  it("follows make_grid for partial rows, nrow and padValue, in RGB", () => {
    expect(gridLayout(5, 4, 6, { nrow: 2, padding: 1 })).toEqual({ cols: 2, rows: 3, height: 3 * 5 + 1, width: 2 * 7 + 1, padding: 1 });
    expect(gridLayout(3, 4, 4, { nrow: 8 })).toMatchObject({ cols: 3, rows: 1 });
    expect(gridLayout(10, 4, 4)).toMatchObject({ cols: 4, rows: 3 });
    const images = new Float32Array(3 * 2 * 2 * 3).fill(-1);
    const bytes = encodeGridPng(images, 3, 2, 2, 3, { nrow: 2, padding: 1, padValue: 1 });
    const h = header(bytes);
    expect([h.width, h.height, h.colorType]).toEqual([7, 7, 2]);
    const px = (x: number, y: number) => Array.from(h.rgba.subarray(4 * (y * 7 + x), 4 * (y * 7 + x) + 3));
    expect(px(0, 0)).toEqual([255, 255, 255]);
    expect(px(1, 1)).toEqual([0, 0, 0]);
    expect(px(4, 4)).toEqual([255, 255, 255]); // the empty fourth cell stays padding
    expect(px(1, 4)).toEqual([0, 0, 0]); // image 2
  });

  it("prints prompts one grid row per line", () => {
    expect(promptsGridText(["1", "two", "3", "four", "5"], 2)).toBe("1 two\n3 four\n5");
    expect(promptsGridText([], 3)).toBe("");
    expect(() => promptsGridText(["a"], 0)).toThrow(ImageError);
  });
});
