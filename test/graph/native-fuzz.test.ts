/**
 * The native addon never kills the process (issue 24): the decoder fuzz (malformed programs in
 * child processes: test/graph/native-fuzz-cases.ts) with zero signals, hangs and wrong
 * acceptances, the harness's own check that a signal is caught and named, and the regressions
 * of the hostile round one by one (each refused with an Error naming the kernel and field).
 * bench/native-fuzz.ts runs the same fuzz at 100,000 cases.
 */
import { describe, expect, it } from "vitest";
import { Code } from "../../runtime/executors/native/lower.ts";
import { nativeAddon } from "../../runtime/executors/native/native.ts";
import { bases, fieldMap, resizableBuffer, runNativeFuzz } from "./native-fuzz-cases.ts";

const SEED = 24;

describe("the native decoder fuzz", () => {
  it("maps every word of the real lowered programs (the fuzz's model of the encoding)", () => {
    const all = bases();
    expect(all.length).toBeGreaterThan(10);
    for (const b of all) {
      const m = fieldMap(b.words);
      expect(m.tags.length, b.name).toBe(b.words.length);
      expect(new Set(b.words.filter((_, i) => m.starts.includes(i))).size).toBeGreaterThan(0);
    }
    // every instruction of the addon appears in some base
    const ops = new Set(all.flatMap((b) => fieldMap(b.words).starts.map((i) => b.words[i])));
    expect([...ops].sort((a, b) => a - b)).toEqual(Object.values(Code).sort((a, b) => a - b));
  });

  it(`runs 3,000 malformed programs (seed ${SEED}) in child processes: no signal, hang or wrong acceptance`, async () => {
    const c = await runNativeFuzz({ seed: SEED, cases: 3000, perChild: 1500, parallel: 2 });
    expect(c.failures).toEqual([]);
    expect({ signals: c.signals, hangs: c.hangs, wrong: c.wrongAcceptances, errors: c.errors, cases: c.cases }).toEqual({ signals: 0, hangs: 0, wrong: 0, errors: 0, cases: 3000 });
    // the cases reach both sides of the decoder: programs that run, and malformed ones refused
    expect(c.ran).toBeGreaterThan(200);
    expect(c.mustRefuse).toBeGreaterThan(1000);
    expect(c.refused).toBeGreaterThanOrEqual(c.mustRefuse);
    for (const [kind, n] of Object.entries(c.byKind)) expect(n, kind).toBeGreaterThan(0);
  });

  it("names the case and seed of a child killed by a signal, and goes on after it", async () => {
    const c = await runNativeFuzz({ seed: SEED, cases: 30, perChild: 30, parallel: 1, selfTestSignal: 11 });
    expect(c.signals).toBe(1);
    expect(c.failures).toEqual([expect.stringMatching(/^signal SIGSEGV: case 11 \(seed 24\) killed the child/)]);
    expect(c.cases).toBe(30);
  });
});

describe("the addon refuses what used to kill the process", () => {
  const addon = nativeAddon().addon!;
  const P = (...w: number[]) => Float64Array.from(w);
  const refuses = (words: Float64Array, arenas: ArrayBuffer[], msg: RegExp) => expect(() => addon.build(words, arenas)).toThrow(msg);

  it("an int64 overflow of a shape product or of offset + extent", () => {
    // elementwise: rank 2, shape [2^40, 2^40] (product 2^80), no operands, one constant
    refuses(P(1, 0, 0, 2, 2 ** 40, 2 ** 40, 0, 1, 1, 0, 1), [new ArrayBuffer(64)], /kernel 0 \(elementwise\), field shape .*integer overflow/);
    // fill 4 floats at offset 2^53 - 2 (offset + extent past 2^53)
    refuses(P(9, 0, 2 ** 53 - 2, 4, 0), [new ArrayBuffer(64)], /kernel 0 \(fill\), field dst .*outside its arena/);
    // layer norm rows 2^40 x d 2^40
    refuses(P(4, 0, 0, 0, 0, 2 ** 40, 2 ** 40, 1e-5), [new ArrayBuffer(64)], /field d .*integer overflow/);
  });

  it("negative, fractional, NaN and infinite integers, and floats beyond float32 (or NaN where a parameter is), before any cast", () => {
    const a = [new ArrayBuffer(64)];
    refuses(P(9, 0, 0, -4, 0), a, /kernel 0 \(fill\), field n .*-4 is outside/);
    refuses(P(9, 0, 0, 2.5, 0), a, /field n .*expected an integer, got 2.5/);
    refuses(P(9, 0, NaN, 4, 0), a, /field dst .*expected an integer, got NaN/);
    refuses(P(9, 0, 0, Infinity, 0), a, /field n .*got Infinity/);
    refuses(P(9, 0, 0, 2 ** 63, 0), a, /field n .*expected an integer/);
    refuses(P(9, 0, 0, 4, 1e300), a, /field value .*expected a float32 value, got 1e\+300/);
    // values (constants, fills) may be NaN or infinite (a where fills with -Infinity); parameters may not
    for (const v of [NaN, -Infinity]) expect(() => addon.build(P(9, 0, 0, 4, v), a)).not.toThrow();
    refuses(P(4, 0, 0, 0, 8, 2, 4, NaN), a, /kernel 0 \(layer_norm\), field eps .*expected a finite float32, got NaN/);
    refuses(P(1e300), a, /field op .*expected an integer/);
  });

  it("an arena index of -1 where a buffer is required (it was read as absent, then dereferenced)", () => {
    // layer_norm_grad with dy at arena -1
    refuses(P(5, 0, 0, 0, 0, -1, 0, 2, 4, 1e-5), [new ArrayBuffer(64)], /kernel 0 \(layer_norm_grad\), field dy .*null pointer/);
    refuses(P(9, -2, 0, 4, 0), [new ArrayBuffer(64)], /field dst .*-2 is outside/);
  });

  it("a GEMM whose batch count is 2^52 with stride 0 (it hung): the output may not overlap itself", () => {
    // a, b, c at arena 0, no bias; batch [2^52, 1], m n k 1, alpha 1, all strides 0 but the unit ones
    const w = P(2, 0, 0, 0, 0, 0, 0, -1, 0, 2 ** 52, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1);
    refuses(w, [new ArrayBuffer(64)], /kernel 0 \(gemm\), field c strides .*overlaps itself/);
    const k0 = P(2, 0, 0, 0, 0, 0, 0, -1, 0, 1, 1, 1, 1, 0, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1);
    refuses(k0, [new ArrayBuffer(64)], /field k .*0 is outside/);
  });

  it("a GEMM with no rows and a sum over an axis of 0 (integer divisions by zero: SIGFPE, found by the fuzz's 30,000-case run)", () => {
    const ab = new ArrayBuffer(4 * 64);
    const f = new Float32Array(ab).fill(7);
    // a GEMM of m = 0 (fp32 and bf16): its task split divided by zero row blocks; C untouched
    for (const code of [2, 11]) expect(() => addon.run(addon.build(P(code, 0, 0, 0, 8, 0, 16, -1, 0, 1, 1, 0, 2, 2, 1, 0, 0, 2, 1, 0, 0, 2, 1, 0, 0, 2, 1), [ab]))).not.toThrow();
    expect(f[16]).toBe(7);
    // sum_to of [0, 11, 17] to [11 * 0 + ..., 17] per leading slice: rows / shape[0] divided by zero; the sums of nothing are 0
    addon.run(addon.build(P(3, 0, 0, 0, 0, 3, 0, 11, 17, 17, 0, 1, 51, 0.5), [ab]));
    expect([...f.slice(0, 51)].every((x) => x === 0)).toBe(true);
  });

  it("a copy whose source overlaps its destination (memcpy of overlapping ranges: ASan), also through one buffer passed twice", () => {
    const ab = new ArrayBuffer(64);
    // copy 8 floats from offset 0 to offset 4 of the same arena, contiguous
    refuses(P(8, 0, 4, 0, 0, 1, 8, 1, 1), [ab], /kernel 0 \(copy\), field src .*overlaps the destination/);
    refuses(P(8, 0, 0, 1, 2, 1, 8, 1, 1), [ab, ab], /overlaps the destination/);
    expect(() => addon.run(addon.build(P(8, 0, 8, 0, 0, 1, 8, 1, 1), [ab]))).not.toThrow();
  });

  it("runs layer norm and softmax with d = 0 and zero rows (nothing to do; it divided by d)", () => {
    const ab = new ArrayBuffer(64);
    for (const words of [P(4, 0, 0, 0, 0, 3, 0, 1e-5), P(6, 0, 0, 0, 0, 0, 7), P(7, 0, 0, 0, 0, 0, 0, 5, 0), P(5, 0, 0, 0, 0, 0, 0, 0, 9, 1e-5)]) {
      const p = addon.build(words, [ab]);
      expect(() => addon.run(p)).not.toThrow();
    }
    expect(addon.scratchBytes(addon.build(P(4, 0, 0, 0, 0, 3, 0, 1e-5), [ab]))).toBe(0);
  });

  it("runs exp and softmax over NaN and infinities (exp's float-to-int cast of NaN was undefined: UBSan)", () => {
    const ab = new ArrayBuffer(256);
    const f = new Float32Array(ab);
    f.set([NaN, Infinity, -Infinity, 0]);
    // softmax of the row [NaN, inf, -inf, 0] into floats 32..35; exp (operator 9) of the four into 48..51
    addon.run(addon.build(P(6, 0, 32, 0, 0, 1, 4), [ab]));
    addon.run(addon.build(P(1, 0, 48, 1, 4, 1, 0, 0, 1, 2, 0, 0, 0, 2, 9, 0), [ab]));
    expect([...f.slice(32, 36)].every(Number.isNaN)).toBe(true);
    expect(Number.isNaN(f[48])).toBe(true);
    expect(f[50]).toBeLessThan(1e-37); // exp clamps its argument at -87.3
    expect(f[51]).toBe(1);
  });

  it("arenas detached after build, resizable or shared: refused, never read", () => {
    const fill = P(9, 0, 0, 4, 1.5);
    const ab = new ArrayBuffer(64);
    const p = addon.build(fill, [ab]);
    structuredClone(ab, { transfer: [ab] });
    expect(() => addon.run(p)).toThrow(/arena 0 was detached after build/);
    expect(() => addon.runAsync(p)).toThrow(/arena 0 was detached/); // before a promise is made
    expect(() => addon.build(fill, [resizableBuffer(64, 128)])).toThrow(/arena 0 is a resizable ArrayBuffer/);
    expect(() => addon.build(fill, [new SharedArrayBuffer(64) as unknown as ArrayBuffer])).toThrow(/arena 0 is not an ArrayBuffer/);
    expect(() => addon.build(fill, [ab])).toThrow(/arena 0 is detached/);
  });

  it("one run of a program at a time, and only programs it built", async () => {
    const ab = new ArrayBuffer(64);
    const p = addon.build(P(9, 0, 0, 4, 2), [ab]);
    const running = addon.runAsync(p);
    expect(() => addon.run(p)).toThrow(/already running/);
    await running;
    expect(new Float32Array(ab)[3]).toBe(2);
    expect(() => addon.run({})).toThrow(/not a program from build/);
    expect(() => addon.threads(1e9)).toThrow(/\[0, 1024\]/);
  });
});
