/**
 * A seedable, serialisable pseudo-random generator (xoshiro128**, seeded by splitmix32).
 * Every random choice the runtime makes on the CPU (shuffles, prompts, timesteps, noise,
 * condition dropout) goes through one of these, so a run is reproducible for a seed and a
 * resumed run continues the same stream (`state()` / `Rng.fromState`).
 */
export class Rng {
  private s: Uint32Array;
  /** A cached second normal deviate from Box-Muller (kept in the state for exact resume). */
  private spare: number | null = null;

  constructor(seed: number) {
    if (!Number.isFinite(seed)) throw new RangeError(`Rng: seed must be a finite number, got ${seed}`);
    let x = seed >>> 0;
    const next = () => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s = new Uint32Array([next(), next(), next(), next()]);
    if (this.s.every((v) => v === 0)) this.s[0] = 1;
  }

  static fromState(state: readonly number[]): Rng {
    if (state.length !== 5 && state.length !== 6) throw new RangeError(`Rng.fromState: expected 5 or 6 numbers, got ${state.length}`);
    const r = new Rng(0);
    r.s = Uint32Array.from(state.slice(0, 4));
    r.spare = state[4] === 1 ? state[5] : null;
    return r;
  }

  /** The full state: four words, a flag and the cached normal deviate. */
  state(): number[] {
    return [...this.s, this.spare === null ? 0 : 1, this.spare ?? 0];
  }

  /** A uniform 32-bit unsigned integer. */
  nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform on [0, 1) with 32 bits of resolution. */
  uniform(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0) throw new RangeError(`Rng.int: n must be a positive integer, got ${n}`);
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal deviate (Box-Muller). */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    let u = this.uniform();
    while (u <= 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Fill an array with standard normal deviates. */
  normals(n: number): Float32Array {
    // normal() n times, unrolled: the same stream to the bit (tested), without a call and
    // typed-array traffic per value (this makes a training batch's noise)
    const out = new Float32Array(n);
    let i = 0;
    if (n > 0 && this.spare !== null) {
      out[i++] = this.spare;
      this.spare = null;
    }
    const sp = boxMullerFill(out, i, this.s);
    if (!Number.isNaN(sp)) this.spare = sp; // an odd count: the last pair's second deviate
    return out;
  }

  /** In-place Fisher-Yates shuffle. */
  shuffle<T>(xs: T[] | Int32Array | Uint32Array): typeof xs {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = xs[i];
      xs[i] = xs[j];
      xs[j] = t as never;
    }
    return xs;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/**
 * Box-Muller pairs into out[i ..] from the xoshiro128** state `st` (advanced in place, as
 * normal() would): the second deviate of the last pair when it does not fit (an odd count), else
 * NaN. A leaf whose hot loop is last (the state is kept in `st` itself, not written back after the
 * loop): V8 optimizes it once and keeps it, where code after the loop, seen only after the loop's
 * on-stack replacement, bailed out of the optimized code every call and the method was recompiled
 * on a background thread during training steps.
 */
function boxMullerFill(out: Float32Array, i: number, st: Uint32Array): number {
  const n = out.length;
  const TWO_PI = 2 * Math.PI;
  let spare = NaN;
  while (i < n) {
    let u = 0;
    let v = 0;
    for (let draw = 0; draw < 2; ) {
      const s0 = st[0] | 0;
      const s1 = st[1] | 0;
      const x = (Math.imul(rotl(Math.imul(s1, 5) >>> 0, 7), 9) >>> 0) / 4294967296;
      const s2 = (st[2] | 0) ^ s0;
      const s3 = (st[3] | 0) ^ s1;
      st[1] = s1 ^ s2;
      st[0] = s0 ^ s3;
      st[2] = s2 ^ (s1 << 9);
      st[3] = rotl(s3, 11);
      if (draw === 0) {
        if (x <= 0) continue; // as normal(): redraw u until it is positive
        u = x;
      } else v = x;
      draw++;
    }
    const r = Math.sqrt(-2 * Math.log(u));
    out[i++] = r * Math.cos(TWO_PI * v);
    const sp = r * Math.sin(TWO_PI * v);
    if (i < n) out[i++] = sp;
    else spare = sp;
  }
  return spare;
}
