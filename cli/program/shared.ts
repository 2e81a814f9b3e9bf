/** What every command definition of the sdc program shares. */

/** How a command's action hands back its exit code, and the whole command line (`sdc diff` reads it in order itself; `sdc train` records it). */
export interface CommandContext {
  onResult: (code: number) => void;
  argv: string[];
}

/** The spec's own ranges (compiler/spec.ts SECTIONS), so a flag cannot ask for what a spec may not. */
export const MAX_STEPS = 1e9;
export const MAX_BATCH = 1 << 16;

/** A repeatable option's values, in order. */
export const collect = (v: string, prev: string[] = []) => [...prev, v];

/** `sdc eval`'s and `sdc ablate`'s images per digit: runtime/eval/evaluate.ts DEFAULT_PER_DIGIT (not imported: it loads tfjs). */
export const EVAL_PER_DIGIT = "100";
