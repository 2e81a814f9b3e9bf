/**
 * Exit codes and the errors the CLI prints without a stack trace.
 *   0 ok, 1 spec or input error (a diagnostic, bad data, bad checkpoint), 2 usage error,
 *   3 training stopped (non-finite loss), 130 interrupted (SIGINT, Ctrl-C), 143 terminated (SIGTERM;
 *   both after a checkpoint, see cli/signals.ts), 70 internal error (a bug: stack shown).
 */
export const EXIT = { ok: 0, spec: 1, usage: 2, stopped: 3, interrupted: 130, terminated: 143, internal: 70 } as const;

/** A mistake in the command line: says what and how to fix it; exit 2. */
export class UsageError extends Error {
  readonly exitCode = EXIT.usage;
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** A problem with the user's files or data (not a bug): exit 1. */
export class InputError extends Error {
  readonly exitCode: number = EXIT.spec;
  constructor(message: string) {
    super(message);
    this.name = "InputError";
  }
}

/** Error classes from the runtime that describe user input, printed as plain messages. */
export const USER_ERROR_NAMES = new Set([
  "UsageError", "InputError", "DataError", "SafetensorsError", "ParamError", "ArgumentError", "BackendError", "CheckpointError",
  "TokenizerError", "TextEncoderError", "HfFolderError", "ImageError", "AtomicWriteError", "ShapeError", "TrainingStopped", "EngineError", "GpuMemoryError", "CpuMemoryError", "NativeSetupError", "UnsupportedOpError", "Interrupted", "InputFileError",
]);

/** Longest text of a value echoed back in a message. */
const shown = (v: string) => (v.length > 40 ? `${v.slice(0, 39)}…` : v);

export function parseIntArg(name: string, v: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^-?\d+$/.test(v.trim())) throw new UsageError(`${name} must be an integer, got '${shown(v)}'`);
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new UsageError(`${name} ${shown(v.trim())} is too large (at most ${max.toLocaleString("en-US")})`);
  if (n < min) throw new UsageError(`${name} must be at least ${min}, got ${n}`);
  if (n > max) throw new UsageError(`${name} must be at most ${max.toLocaleString("en-US")}, got ${n.toLocaleString("en-US")}`);
  return n;
}

/** A number in (0, max]: learning rates and the like. */
export function parsePositiveArg(name: string, v: string, max = Infinity): number {
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n)) throw new UsageError(`${name} must be a number, got '${shown(v)}'`);
  if (n <= 0) throw new UsageError(`${name} must be positive, got ${n}`);
  if (n > max) throw new UsageError(`${name} must be at most ${max}, got ${n}`);
  return n;
}

export function parseFloatArg(name: string, v: string, min = -Infinity): number {
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n)) throw new UsageError(`${name} must be a number, got '${shown(v)}'`);
  if (n < min) throw new UsageError(`${name} must be at least ${min}, got ${n}`);
  return n;
}
