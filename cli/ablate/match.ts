/**
 * `sdc ablate --match-params NAME`: set one integer spec parameter of each unit to the value whose
 * exact compiled parameter count is closest to a target (the first arm's count, or
 * --target-params N). Found by compiling only (the checker, no code generation, no training: about
 * 10-40 ms a value): a bounded search over the integer range, where a value that does not compile
 * (a `require`, a divisibility rule of a primitive) is skipped.
 *
 * The search (searchClosest, pure: the count is a function it is given) assumes the count moves
 * one way as the parameter grows, as width, depth or head_dim do: from the arm's own value it
 * gallops (1, 2, 4, ... away) in the direction that brings the count toward the target until the
 * count crosses it or the range ends, bisects the crossing, compiles a few values on each side of
 * it, and returns the closest of every value it compiled (ties: the one nearer the arm's own
 * value, then the smaller).
 */
import { existsSync } from "node:fs";
import { compile, formatAll } from "../../compiler/index.ts";
import { loadProgram } from "../../compiler/program.ts";
import { findSpec } from "../../compiler/spec.ts";
import type { IR } from "../../ir/ir.ts";
import type { UnitInputs, UnitMatch } from "../../runtime/eval/sweep.ts";
import { InputError, UsageError } from "../errors.ts";
import { makeFsHost } from "../host.ts";

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** --match-params "head_dim" or "-,hidden,head_dim" (one per arm; '-' = not matched). */
export function parseMatchParams(s: string): (string | null)[] {
  const names = s.split(",").map((x) => x.trim());
  for (const n of names) if (n !== "-" && !NAME.test(n)) throw new UsageError(`--match-params '${s}': '${n}' is not a spec parameter name (give NAME, or NAME1,NAME2,... one per arm, '-' for an arm kept as it is)`);
  if (names.every((n) => n === "-")) throw new UsageError(`--match-params '${s}' matches no arm`);
  return names.map((n) => (n === "-" ? null : n));
}

/** --match-range "8..256". */
export function parseMatchRange(s: string): [number, number] {
  const m = /^\s*(\d+)\s*\.\.\s*(\d+)\s*$/.exec(s);
  if (!m) throw new UsageError(`--match-range must look like LO..HI (e.g. 8..256), got '${s}'`);
  const lo = Number(m[1]);
  const hi = Number(m[2]);
  if (!Number.isSafeInteger(hi) || lo < 1 || hi < lo) throw new UsageError(`--match-range ${s}: need 1 <= LO <= HI`);
  return [lo, hi];
}

export interface SearchOptions {
  lo: number;
  hi: number;
  /** where the search starts (the parameter's value before matching) */
  start: number;
  target: number;
  /** values compiled on each side of the crossing (default 4) */
  window?: number;
  /** how far a value that does not compile is replaced by its nearest one that does (default 64) */
  scan?: number;
}

export type SearchOutcome =
  | { value: number; count: number; compiled: number; atBound: boolean }
  | { value: null; compiled: number };

/** The integer in [lo, hi] whose count(v) (null: does not compile) is closest to the target. Pure given `count`. */
export function searchClosest(count: (v: number) => number | null, o: SearchOptions): SearchOutcome {
  const scan = o.scan ?? 64;
  const W = o.window ?? 4;
  const t = o.target;
  const memo = new Map<number, number | null>();
  const f = (v: number): number | null => {
    if (!memo.has(v)) memo.set(v, count(v));
    return memo.get(v)!;
  };
  /** the compiling value nearest to v within [min(a,b), max(a,b)], at most `scan` away (lower first) */
  const near = (v: number, a = o.lo, b = o.hi): number | null => {
    const lo = Math.min(a, b);
    const hi = Math.max(a, b);
    for (let d = 0; d <= scan; d++) for (const c of d ? [v - d, v + d] : [v]) if (c >= lo && c <= hi && f(c) !== null) return c;
    return null;
  };
  const clamp = (v: number) => Math.min(o.hi, Math.max(o.lo, v));
  const s = near(clamp(o.start)) ?? near(o.lo) ?? near(o.hi) ?? near(Math.floor((o.lo + o.hi) / 2));
  if (s === null) return { value: null, compiled: memo.size };
  const side = (v: number) => Math.sign(f(v)! - t);

  if (side(s) !== 0) {
    // which way brings the count toward the target: the nearest compiling value above, else below
    let dir = 0;
    for (const d of [1, -1]) {
      const c = near(s + d, s + d, d > 0 ? o.hi : o.lo);
      if (c !== null && Math.abs(f(c)! - t) < Math.abs(f(s)! - t)) {
        dir = d;
        break;
      }
    }
    if (dir !== 0) {
      // gallop from s until the count crosses the target or the range ends
      let a = s;
      let b: number | null = null;
      for (let step = 1; ; step *= 2) {
        const v = clamp(s + dir * step);
        const c = near(v, a + dir, dir > 0 ? o.hi : o.lo);
        if (c === null || c === a) break;
        if (side(c) !== side(a)) {
          b = c;
          break;
        }
        a = c;
        if (v === o.hi || v === o.lo) break;
      }
      // bisect the crossing between a and b
      while (b !== null && side(b) !== 0 && Math.abs(b - a) > 1) {
        const m = Math.floor((a + b) / 2);
        const c = near(m, a + Math.sign(b - a), b - Math.sign(b - a));
        if (c === null) break;
        if (side(c) === side(a)) a = c;
        else b = c;
      }
      // a few values on each side of where it ended
      for (const e of [a, b ?? a]) for (let v = e - W; v <= e + W; v++) if (v >= o.lo && v <= o.hi) f(v);
    }
  }
  let best: number | null = null;
  for (const [v, c] of memo) {
    if (c === null) continue;
    if (best === null) {
      best = v;
      continue;
    }
    const d = Math.abs(c - t) - Math.abs(f(best)! - t);
    const closer = Math.abs(v - o.start) - Math.abs(best - o.start);
    if (d < 0 || (d === 0 && (closer < 0 || (closer === 0 && v < best)))) best = v;
  }
  return { value: best!, count: f(best!)!, compiled: memo.size, atBound: best === o.lo || best === o.hi };
}

/** A unit to compile: its spec file, variant and overrides (name=value). */
type Compilable = Pick<UnitInputs, "spec" | "variant" | "set">;

/** The unit's exact parameter count (`on`: all parameters, or the network's), or its errors. */
export function compiledCount(u: Compilable, on: UnitMatch["on"]): { count: number; params: IR["spec"]["params"] } | { error: string } {
  const r = compile(u.spec, makeFsHost(), { variant: u.variant ?? undefined, sets: u.set, specPath: u.spec, generate: false });
  if (!r.ir) return { error: formatAll(r.diagnostics.filter((d) => d.severity === "error"), r.program.sources, false) };
  return { count: on === "network" ? r.ir.stats.networkParams : r.ir.stats.params, params: r.ir.spec.params };
}

export interface MatchRequest {
  param: string;
  target: number;
  on: UnitMatch["on"];
  /** the searched range; default 1..max(64, 16 x the parameter's value) */
  range?: [number, number];
}

/**
 * Match one unit: check that `param` is an integer `param` of its spec, search, and return the match.
 * Refuses (UsageError, exit 2) a parameter the spec does not have or that is not an integer, and
 * (InputError, exit 1) a unit that does not compile or a range where no value compiles.
 */
export function matchUnit(u: Compilable, req: MatchRequest, where: string): { match: UnitMatch; range: [number, number]; atBound: boolean } {
  if (!existsSync(u.spec)) throw new InputError(`spec file not found: ${u.spec}`);
  const prog = loadProgram(u.spec, makeFsHost());
  const spec = findSpec(prog);
  if ("code" in spec) throw new InputError(`${where}: ${spec.message}`);
  const decl = spec.params.find((p) => p.name === req.param);
  if (!decl) {
    throw new UsageError(`--match-params ${req.param}: ${where}: spec ${spec.name} (${u.spec}:${spec.nameSpan.start.line}) has no parameter '${req.param}'; its parameters: ${spec.params.map((p) => p.name).join(", ") || "(none)"}`);
  }
  const here = compiledCount(u, req.on);
  if ("error" in here) throw new InputError(`${where}: the spec does not compile before matching:\n${here.error}`);
  const from = here.params[req.param];
  if (decl.type === "float" || typeof from !== "number" || !Number.isInteger(from)) {
    throw new UsageError(`--match-params ${req.param}: ${where}: '${req.param}' (${u.spec}:${decl.nameSpan.start.line}) is not an integer parameter (it is ${JSON.stringify(from)}); matching searches integer values`);
  }
  const [lo, hi] = req.range ?? [1, Math.max(64, 16 * from)];
  const errors = new Map<number, string>();
  const count = (v: number): number | null => {
    const r = compiledCount({ ...u, set: [...u.set, `${req.param}=${v}`] }, req.on);
    if ("error" in r) {
      errors.set(v, r.error.split("\n")[0]);
      return null;
    }
    return r.count;
  };
  const s = searchClosest(count, { lo, hi, start: from, target: req.target });
  if (s.value === null) {
    const v = Math.min(...errors.keys());
    throw new InputError(`--match-params ${req.param}: ${where}: no value of '${req.param}' in ${lo}..${hi} compiles (${s.compiled} tried; the error at ${req.param}=${v}: ${errors.get(v)})`);
  }
  return { match: { param: req.param, value: s.value, from, on: req.on, target: req.target, achieved: s.count, compiled: s.compiled }, range: [lo, hi], atBound: s.atBound };
}
