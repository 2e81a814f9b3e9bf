import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { PNG } from "pngjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BatchSampler, DataError, resizeBilinear, type BatchSamplerState, type ImageTextDataset } from "../../runtime/data/dataset.ts";
import { loadImageFolder, parseCaptions } from "../../runtime/data/folder.ts";
import { parseIdx } from "../../runtime/data/idx.ts";
import { DIGIT_WORDS, digitPrompt, loadMnist, locateMnistFile, promptVocabulary, readMnistFile, type MnistDataset } from "../../runtime/data/mnist.ts";
import { Rng } from "../../runtime/util/rng.ts";

function idx(magic: number, dims: number[], data: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, magic, false);
  dims.forEach((d, k) => dv.setUint32(4 + 4 * k, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}

const tmpDirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "sdc-data-"));
  tmpDirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
});

describe("IDX", () => {
  it("parses images and labels", () => {
    const img = parseIdx(idx(0x803, [2, 2, 3], Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])), "img");
    expect(img.dims).toEqual([2, 2, 3]);
    expect(Array.from(img.data)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    const lab = parseIdx(idx(0x801, [3], Uint8Array.from([7, 0, 9])), "lab");
    expect(lab.dims).toEqual([3]);
    expect(Array.from(lab.data)).toEqual([7, 0, 9]);
  });

  it("refuses a bad magic number, naming the file", () => {
    const bad = idx(0x804, [1, 1, 1, 1], new Uint8Array(1));
    expect(() => parseIdx(bad, "foo-idx3-ubyte")).toThrow(DataError);
    expect(() => parseIdx(bad, "foo-idx3-ubyte")).toThrow(/foo-idx3-ubyte: bad IDX magic number 0x00000804/);
    // a gzipped file has magic 1f8b....
    expect(() => parseIdx(gzipSync(idx(0x801, [1], new Uint8Array(1))), "g.gz")).toThrow(/g\.gz: bad IDX magic/);
    expect(() => parseIdx(new Uint8Array(2), "short")).toThrow(/short: not an IDX file/);
  });

  it("refuses truncated and padded files", () => {
    const good = idx(0x803, [2, 2, 2], new Uint8Array(8));
    expect(() => parseIdx(good.subarray(0, good.length - 1), "cut")).toThrow(/cut: IDX file truncated: 23 bytes, but dims \[2, 2, 2\] need exactly 24/);
    const padded = new Uint8Array(good.length + 3);
    padded.set(good);
    expect(() => parseIdx(padded, "pad")).toThrow(/pad: IDX file has trailing bytes/);
    expect(() => parseIdx(good.subarray(0, 10), "hdr")).toThrow(/hdr: truncated IDX header/);
  });
});

describe("bilinear resize (PyTorch align_corners=False)", () => {
  it("matches the hand-computed 2x2 -> 4x4 case", () => {
    // F.interpolate(torch.tensor([[[[0., 1.], [2., 3.]]]]), size=4, mode="bilinear", align_corners=False)
    const out = resizeBilinear(Float32Array.from([0, 1, 2, 3]), 2, 2, 1, 4, 4);
    expect(Array.from(out)).toEqual([0, 0.25, 0.75, 1, 0.5, 0.75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2, 2.25, 2.75, 3]);
  });

  it("downsamples 4 -> 2 by averaging pixel pairs, per channel", () => {
    // 1x4 image with 2 channels: channel 0 = 0,1,2,3 ; channel 1 = 10,20,30,40
    const out = resizeBilinear(Float32Array.from([0, 10, 1, 20, 2, 30, 3, 40]), 1, 4, 2, 1, 2);
    expect(Array.from(out)).toEqual([0.5, 15, 2.5, 35]);
  });

  it("is the identity at the same size", () => {
    const src = Float32Array.from({ length: 12 }, (_, i) => i * 0.1);
    expect(Array.from(resizeBilinear(src, 3, 4, 1, 3, 4))).toEqual(Array.from(src));
  });
});

describe("MNIST", () => {
  let train: MnistDataset;
  let test: MnistDataset;
  beforeAll(() => {
    train = loadMnist({ split: "train" });
    test = loadMnist({ split: "test", size: 28 });
  });

  it("has 60000 train and 10000 test items of the requested size", () => {
    expect(train.size).toBe(60000);
    expect(test.size).toBe(10000);
    expect([train.height, train.width, train.channels]).toEqual([32, 32, 1]);
    expect([test.height, test.width, test.channels]).toEqual([28, 28, 1]);
    expect(train.name).toBe("mnist-train");
  });

  it("scales pixels to [-1, 1] with background at -1", () => {
    let min = Infinity;
    let max = -Infinity;
    for (const v of train.pixels) {
      if (v < min) min = v;
      if (v > max) max = v;
    }
    expect(min).toBe(-1);
    expect(max).toBe(1);
    const img = new Float32Array(32 * 32);
    train.image(0, img, 0);
    expect(img[0]).toBe(-1); // corner is background
    const ink = img.filter((v) => v > 0).length;
    expect(ink).toBeGreaterThan(50);
    expect(ink).toBeLessThan(600);
  });

  it("at size 28 reproduces the raw bytes exactly", () => {
    const path = locateMnistFile("t10k-images-idx3-ubyte");
    const raw = parseIdx(readMnistFile(path), path);
    expect(raw.dims).toEqual([10000, 28, 28]);
    const out = new Float32Array(28 * 28);
    for (const i of [0, 1, 9999]) {
      test.image(i, out, 0);
      const want = Array.from(raw.data.subarray(i * 784, (i + 1) * 784), (b) => Math.fround((b / 255) * 2 - 1));
      expect(Array.from(out)).toEqual(want);
    }
  });

  it("size 28 is x/255*2-1 of the raw bytes, and size 32 resizes it", () => {
    const out28 = new Float32Array(28 * 28);
    test.image(5, out28, 0);
    // every value is k/255*2-1 for an integer k
    for (const v of out28) {
      const k = ((v + 1) / 2) * 255;
      expect(Math.abs(k - Math.round(k))).toBeLessThan(1e-3);
    }
    const test32 = loadMnist({ split: "test" });
    const out32 = new Float32Array(32 * 32);
    test32.image(5, out32, 0);
    const expected = resizeBilinear(out28, 28, 28, 1, 32, 32);
    for (let k = 0; k < expected.length; k++) expect(out32[k]).toBeCloseTo(expected[k], 5);
    expect(test32.label(5)).toBe(test.label(5));
  });

  it("has a plausible label distribution", () => {
    const counts = new Array(10).fill(0);
    for (const l of train.labels) counts[l]++;
    for (const c of counts) {
      expect(c / train.size).toBeGreaterThan(0.08);
      expect(c / train.size).toBeLessThan(0.12);
    }
    // the well-known first training labels
    expect([0, 1, 2, 3, 4].map((i) => train.label(i))).toEqual([5, 0, 4, 1, 9]);
    expect(test.label(0)).toBe(7);
  });

  it("prompts a digit as its numeral or its word, both at random", () => {
    const rng = new Rng(3);
    const seen = new Set<string>();
    for (let i = 0; i < 400; i++) {
      const p = train.caption(i, rng);
      const l = train.label(i);
      expect([String(l), DIGIT_WORDS[l]]).toContain(p);
      seen.add(/^\d$/.test(p) ? "numeral" : "word");
    }
    expect(seen).toEqual(new Set(["numeral", "word"]));
    const words = Array.from({ length: 1000 }, () => digitPrompt(7, rng));
    const nNumeral = words.filter((w) => w === "7").length;
    expect(nNumeral).toBeGreaterThan(400);
    expect(nNumeral).toBeLessThan(600);
    expect(words.every((w) => w === "7" || w === "seven")).toBe(true);
    expect(() => digitPrompt(10, rng)).toThrow(DataError);
    const vocab = promptVocabulary();
    expect(vocab).toHaveLength(20);
    expect(new Set(vocab).size).toBe(20);
    expect(vocab).toContain("nine");
    expect(vocab).toContain("0");
  });

  it("reads gzipped files from a directory, and names the missing path", () => {
    const dir = tmp();
    const images = new Uint8Array(3 * 28 * 28);
    images[28 * 14 + 14] = 255; // one bright pixel in image 0
    writeFileSync(join(dir, "t10k-images-idx3-ubyte.gz"), gzipSync(idx(0x803, [3, 28, 28], images)));
    writeFileSync(join(dir, "t10k-labels-idx1-ubyte.gz"), gzipSync(idx(0x801, [3], Uint8Array.from([4, 2, 8]))));
    const ds = loadMnist({ split: "test", size: 14, dir });
    expect(ds.size).toBe(3);
    expect(ds.label(2)).toBe(8);
    const img = new Float32Array(14 * 14);
    ds.image(0, img, 0);
    // 28 -> 14 averages 2x2 blocks: the bright pixel (28-grid 14,14) falls in output (7,7) with weight 1/4
    expect(img[7 * 14 + 7]).toBeCloseTo(-1 + 2 * 0.25, 6);
    expect(img[0]).toBe(-1);

    expect(() => loadMnist({ split: "train", dir })).toThrow(DataError);
    expect(() => loadMnist({ split: "train", dir })).toThrow(new RegExp(`file not found: ${join(dir, "train-images-idx3-ubyte").replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}.*npm install.*SDC_MNIST_DIR`));
    const prev = process.env.SDC_MNIST_DIR;
    process.env.SDC_MNIST_DIR = join(dir, "nowhere");
    try {
      expect(() => loadMnist({ split: "test" })).toThrow(/nowhere.*SDC_MNIST_DIR/);
    } finally {
      if (prev === undefined) delete process.env.SDC_MNIST_DIR;
      else process.env.SDC_MNIST_DIR = prev;
    }
    expect(() => loadMnist({ split: "test", size: 0, dir })).toThrow(/size must be an integer/);
  });
});

/** A small synthetic dataset: image i is filled with the value i. */
function tinyDataset(n: number): ImageTextDataset {
  return {
    name: "tiny",
    size: n,
    height: 2,
    width: 2,
    channels: 1,
    image(i, out, offset) {
      out.fill(i, offset, offset + 4);
    },
    caption(i, rng) {
      return `${i}-${rng.int(1000)}`;
    },
    label(i) {
      return i % 10;
    },
  };
}

describe("Rng", () => {
  it.each([[0, 1], [0, 2], [1, 3], [12345, 4097]])("normals(n) is n calls of normal(), to the bit, state included (seed %i, n %i)", (seed, n) => {
    const [a, b] = [new Rng(seed), new Rng(seed)];
    if (n % 2 === 1) [a.normal(), b.normal()]; // start with a cached spare deviate
    const x = a.normals(n);
    const y = Float32Array.from({ length: n }, () => b.normal());
    expect(Buffer.from(x.buffer).equals(Buffer.from(y.buffer))).toBe(true);
    expect(a.state()).toEqual(b.state());
    expect(a.normal()).toBe(b.normal());
  });
});

describe("BatchSampler", () => {
  it("covers every item once per epoch, reshuffles each epoch and wraps without dropping", () => {
    const ds = tinyDataset(10);
    const s = new BatchSampler(ds, 4, new Rng(1));
    const seen: number[] = [];
    for (let b = 0; b < 5; b++) {
      const batch = s.next();
      expect(batch.images.length).toBe(4 * 4);
      expect(batch.prompts).toHaveLength(4);
      for (let k = 0; k < 4; k++) {
        expect(batch.images[k * 4]).toBe(batch.indices[k]);
        expect(batch.labels![k]).toBe(batch.indices[k] % 10);
        expect(batch.prompts[k].startsWith(`${batch.indices[k]}-`)).toBe(true);
      }
      seen.push(...batch.indices);
    }
    // 20 items = exactly two epochs
    const e0 = seen.slice(0, 10);
    const e1 = seen.slice(10, 20);
    expect([...e0].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect([...e1].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(e0).not.toEqual(e1);
    expect(e0).not.toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(s.epoch).toBe(1);
  });

  it("is reproducible for a seed and differs across seeds", () => {
    const ds = tinyDataset(50);
    const run = (seed: number) => {
      const s = new BatchSampler(ds, 7, new Rng(seed));
      return Array.from({ length: 10 }, () => s.next()).map((b) => [Array.from(b.indices), b.prompts]);
    };
    expect(run(5)).toEqual(run(5));
    expect(run(5)).not.toEqual(run(6));
  });

  it("restores from a saved state (through JSON) and continues identically", () => {
    const ds = tinyDataset(23);
    for (const k of [0, 3, 4, 9]) {
      const a = new BatchSampler(ds, 6, new Rng(11));
      for (let i = 0; i < k; i++) a.next();
      const saved = JSON.parse(JSON.stringify(a.state())) as BatchSamplerState;
      const b = BatchSampler.restore(ds, saved);
      for (let i = 0; i < 8; i++) {
        const x = a.next();
        const y = b.next();
        expect(Array.from(y.indices)).toEqual(Array.from(x.indices));
        expect(y.prompts).toEqual(x.prompts);
        expect(Array.from(y.images)).toEqual(Array.from(x.images));
      }
      expect(b.state()).toEqual(a.state());
    }
  });

  it("refuses a state for another dataset and a bad batch size", () => {
    const a = new BatchSampler(tinyDataset(5), 2, new Rng(1));
    expect(() => BatchSampler.restore(tinyDataset(6), a.state())).toThrow(/state is for dataset 'tiny' \(5 items\), not 'tiny' \(6 items\)/);
    expect(() => new BatchSampler(tinyDataset(5), 0, new Rng(1))).toThrow(/batchSize must be a positive integer, got 0/);
  });

  it("samples MNIST-shaped batches with labels matching prompts", () => {
    const dir = tmp();
    const n = 12;
    writeFileSync(join(dir, "t10k-images-idx3-ubyte"), idx(0x803, [n, 28, 28], new Uint8Array(n * 784).fill(128)));
    writeFileSync(join(dir, "t10k-labels-idx1-ubyte"), idx(0x801, [n], Uint8Array.from({ length: n }, (_, i) => i % 10)));
    const ds = loadMnist({ split: "test", dir });
    const s = new BatchSampler(ds, 5, new Rng(2));
    const b = s.next();
    expect(b.images.length).toBe(5 * 32 * 32);
    expect(b.images[0]).toBeCloseTo((128 / 255) * 2 - 1, 6);
    for (let k = 0; k < 5; k++) expect([String(b.labels![k]), DIGIT_WORDS[b.labels![k]]]).toContain(b.prompts[k]);
  });
});

function writePng(path: string, w: number, h: number, colorType: 0 | 2 | 6, pixel: (x: number, y: number) => number[]): void {
  const c = colorType === 0 ? 1 : colorType === 2 ? 3 : 4;
  const data = Buffer.alloc(w * h * c);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data.set(pixel(x, y), (y * w + x) * c);
  const png = { width: w, height: h, data } as unknown as PNG;
  writeFileSync(path, PNG.sync.write(png, { colorType, inputColorType: colorType, inputHasAlpha: colorType === 6 }));
}

describe("image folder", () => {
  it("parses captions.jsonl and reports bad lines by number", () => {
    const text = '{"file": "a.png", "caption": "a red circle"}\n\n{"file":"b.png","caption":"two"}\r\n';
    expect(parseCaptions(text, "captions.jsonl")).toEqual([
      { file: "a.png", caption: "a red circle", line: 1 },
      { file: "b.png", caption: "two", line: 3 },
    ]);
    expect(() => parseCaptions('{"file": "a.png", "caption": "x"}\n{"file": "b.png", caption: "y"}\n', "caps.jsonl")).toThrow(/^caps\.jsonl:2: not valid JSON/);
    expect(() => parseCaptions('{"file": "a.png"}', "caps.jsonl")).toThrow(/caps\.jsonl:1: "caption" must be a string/);
    expect(() => parseCaptions('["a.png"]', "caps.jsonl")).toThrow(/caps\.jsonl:1: expected a JSON object/);
    expect(() => parseCaptions('{"file": "../x.png", "caption": "c"}', "caps.jsonl")).toThrow(/caps\.jsonl:1: "file" must be a path inside the folder/);
  });

  it("loads gray and RGB PNGs as 1 or 3 channels, resized to the spec's size", () => {
    const dir = tmp();
    writePng(join(dir, "gray.png"), 4, 4, 0, (x) => [x < 2 ? 0 : 255]); // left half black, right white
    writePng(join(dir, "rgb.png"), 2, 2, 2, () => [255, 0, 0]); // pure red, 2x2 -> upsampled
    writePng(join(dir, "rgba.png"), 4, 4, 6, () => [0, 0, 255, 10]); // blue, alpha ignored
    writeFileSync(
      join(dir, "captions.jsonl"),
      ['{"file": "gray.png", "caption": "half"}', '{"file": "rgb.png", "caption": "a red square"}', '{"file": "rgba.png", "caption": "blue"}'].join("\n") + "\n",
    );
    const g = loadImageFolder(dir, { size: 4, channels: 1 });
    expect(g.size).toBe(3);
    expect([g.height, g.width, g.channels]).toEqual([4, 4, 1]);
    expect(g.caption(1, new Rng(0))).toBe("a red square");
    const img = new Float32Array(16);
    g.image(0, img, 0);
    expect(Array.from(img.slice(0, 4))).toEqual([-1, -1, 1, 1]);
    g.image(1, img, 0);
    for (const v of img) expect(v).toBeCloseTo(0.299 * 2 - 1, 5); // luma of red
    g.image(2, img, 0);
    for (const v of img) expect(v).toBeCloseTo(0.114 * 2 - 1, 5);

    const c = loadImageFolder(dir, { size: 2, channels: 3 });
    const rgb = new Float32Array(2 * 2 * 3);
    c.image(0, rgb, 0); // 4 -> 2: each output averages a black and a white column... left px = black pair, right = white pair
    expect(Array.from(rgb)).toEqual([-1, -1, -1, 1, 1, 1, -1, -1, -1, 1, 1, 1]);
    c.image(1, rgb, 0);
    expect(Array.from(rgb)).toEqual([1, -1, -1, 1, -1, -1, 1, -1, -1, 1, -1, -1]);
    c.image(2, rgb, 0);
    expect(Array.from(rgb.slice(0, 3))).toEqual([-1, -1, 1]);
  });

  it("names the captions line of a missing file, a bad JSON line, and an empty folder", () => {
    const dir = tmp();
    writePng(join(dir, "a.png"), 2, 2, 0, () => [0]);
    writeFileSync(join(dir, "captions.jsonl"), '{"file": "a.png", "caption": "ok"}\n{"file": "missing.png", "caption": "gone"}\n');
    expect(() => loadImageFolder(dir, { size: 2, channels: 1 })).toThrow(DataError);
    expect(() => loadImageFolder(dir, { size: 2, channels: 1 })).toThrow(/captions\.jsonl:2: file "missing\.png" does not exist/);

    writeFileSync(join(dir, "captions.jsonl"), '{"file": "a.png", "caption": "ok"}\n{"file": "a.png" "caption": "x"}\n');
    expect(() => loadImageFolder(dir, { size: 2, channels: 1 })).toThrow(/captions\.jsonl:2: not valid JSON/);

    writeFileSync(join(dir, "captions.jsonl"), "\n\n");
    expect(() => loadImageFolder(dir, { size: 2, channels: 1 })).toThrow(/no entries; the image folder .* is empty/);

    const empty = tmp();
    expect(() => loadImageFolder(empty, { size: 2, channels: 1 })).toThrow(/is empty/);
    expect(() => loadImageFolder(join(empty, "nope"), { size: 2, channels: 1 })).toThrow(/no such directory/);

    writeFileSync(join(dir, "bad.png"), "not a png");
    writeFileSync(join(dir, "captions.jsonl"), '{"file": "bad.png", "caption": "x"}\n');
    expect(() => loadImageFolder(dir, { size: 2, channels: 1 })).toThrow(/bad\.png .*captions\.jsonl:1\).*not a readable PNG/);
    expect(() => loadImageFolder(dir, { size: 2, channels: 2 as 1 })).toThrow(/channels must be 1 or 3, got 2/);
  });
});
