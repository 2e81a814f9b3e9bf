/**
 * Interrupting a long command (train, ablate; sample and eval stop at once): the first SIGINT
 * (Ctrl-C) or SIGTERM (what a cluster scheduler sends before it kills) asks the command to stop at
 * its next safe point — for `sdc train` after the current step, with a checkpoint — and the
 * process then exits 128 + the signal's number (130 for SIGINT, 143 for SIGTERM, the shell's
 * convention for a process a signal ended). A second signal exits at once, with that signal's
 * code. Long loops must call `yieldToEventLoop()` now and then: Node delivers signals through
 * the event loop, and a loop that only awaits resolved promises (tfjs reads on the CPU backends)
 * never lets it run.
 */

/** Exit code for a process ended by a signal: 128 + its number. */
export const SIGNAL_EXIT: Readonly<Record<string, number>> = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129, SIGUSR1: 138, SIGUSR2: 140 };

export type StopSignal = "SIGINT" | "SIGTERM" | "SIGHUP" | "SIGUSR1" | "SIGUSR2";

/** Let pending I/O and signal handlers run (one turn of the event loop). */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

/** The command stopped early because of a signal (printed as a message, exit 130/143). */
export class Interrupted extends Error {
  readonly exitCode: number;
  constructor(message: string, signal: StopSignal = "SIGINT") {
    super(message);
    this.name = "Interrupted";
    this.exitCode = SIGNAL_EXIT[signal] ?? 130;
  }
}

export interface InterruptWatch {
  /** the first signal received (or requested), else null */
  readonly signal: StopSignal | null;
  readonly requested: boolean;
  /** 130 / 143 / ... for the first signal; 0 when none came */
  readonly exitCode: number;
  /** act as if `signal` had arrived (tests, `--interrupt-after`) */
  request(signal?: StopSignal): void;
  /** remove the handlers (the process's default behaviour comes back) */
  dispose(): void;
}

export interface WatchOptions {
  log: (s: string) => void;
  /** what the command does on the first signal, e.g. "finishing this step and writing a checkpoint" */
  then: string;
  /** default: SIGINT and SIGTERM */
  signals?: StopSignal[];
  /** default: process.exit (tests inject their own) */
  exit?: (code: number) => void;
}

/**
 * Watch for stop signals until `dispose()`. The first one sets `requested` and logs what happens
 * next; the caller polls `requested` at its safe points. A second one exits at once.
 */
export function watchInterrupts(o: WatchOptions): InterruptWatch {
  const signals = o.signals ?? ["SIGINT", "SIGTERM"];
  const exit = o.exit ?? ((code: number) => process.exit(code));
  let first: StopSignal | null = null;
  const handler = (sig: NodeJS.Signals) => {
    const s = sig as StopSignal;
    if (first) {
      o.log(`\n${s} again: exiting now`);
      exit(SIGNAL_EXIT[s] ?? 130);
      return;
    }
    first = s;
    const again = s === "SIGINT" ? "Ctrl-C again" : `another ${s} or Ctrl-C`;
    o.log(`\n${s === "SIGINT" ? "interrupted (Ctrl-C)" : `${s} received`}: ${o.then} (${again} to quit at once)`);
  };
  for (const s of signals) process.on(s, handler);
  return {
    get signal() {
      return first;
    },
    get requested() {
      return first !== null;
    },
    get exitCode() {
      return first ? (SIGNAL_EXIT[first] ?? 130) : 0;
    },
    request(signal: StopSignal = "SIGINT") {
      first ??= signal;
    },
    dispose() {
      for (const s of signals) process.off(s, handler);
    },
  };
}
