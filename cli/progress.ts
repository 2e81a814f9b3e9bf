/** A one-line progress bar with loss, steps/s and ETA (a log line every so often when not a TTY). */
export class Progress {
  private t0 = performance.now();
  private lastPrint = 0;
  private ema = NaN;
  private startStep: number;

  constructor(
    private readonly total: number,
    start: number,
    private readonly tty: boolean,
    private readonly log: (s: string) => void,
  ) {
    this.startStep = start;
  }

  /** Record a step; returns steps/s so far in this run. */
  update(step: number, loss: number): number {
    const now = performance.now();
    const secs = (now - this.t0) / 1000;
    const sps = (step - this.startStep) / Math.max(secs, 1e-9);
    this.ema = Number.isNaN(this.ema) ? loss : 0.9 * this.ema + 0.1 * loss;
    // the first step always prints (the run has started), then every 200 ms (TTY) or 10 s (a log)
    const due = this.lastPrint === 0 || (this.tty ? now - this.lastPrint > 200 : now - this.lastPrint > 10_000);
    if (due || step === this.total) {
      this.lastPrint = now;
      const eta = (this.total - step) / Math.max(sps, 1e-9);
      const width = 24;
      const filled = Math.round((width * step) / this.total);
      const line = `step ${step}/${this.total} [${"=".repeat(filled)}${" ".repeat(width - filled)}] loss ${this.ema.toFixed(4)} | ${sps.toFixed(2)} steps/s | ETA ${fmtTime(eta)}`;
      if (this.tty) process.stderr.write(`\r${line}\x1b[K`);
      else this.log(line);
    }
    return sps;
  }

  note(s: string): void {
    if (this.tty) process.stderr.write(`\r\x1b[K${s}\n`);
    else this.log(s);
  }

  done(): void {
    if (this.tty) process.stderr.write("\n");
  }
}

export function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return "?";
  if (s < 60) return `${Math.round(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}
