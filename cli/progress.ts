/**
 * A one-line progress bar with loss, rate and ETA (a log line every so often when not a TTY).
 * The last line shows the last step's own loss and the rate over the run, the figures the
 * command's summary line prints (`lastLoss`, `rate`), so the two agree.
 */
export class Progress {
  private t0 = performance.now();
  private lastPrint = 0;
  private printedStep = -1;
  private ema = NaN;
  private startStep: number;
  private step = -1;
  private loss = NaN;
  private sps = 0;

  constructor(
    private readonly total: number,
    start: number,
    private readonly tty: boolean,
    private readonly log: (s: string) => void,
    /** what is counted: "step" (training), "image", "unit", ... */
    private readonly unit = "step",
  ) {
    this.startStep = start;
  }

  /** Start the clock now (the rate counts from here). */
  restart(): void {
    this.t0 = performance.now();
  }

  /** Record a step; returns steps/s so far in this run. `loss` is optional (eval, sample). */
  update(step: number, loss = NaN): number {
    const now = performance.now();
    const secs = (now - this.t0) / 1000;
    const sps = (step - this.startStep) / Math.max(secs, 1e-9);
    this.ema = Number.isNaN(this.ema) ? loss : 0.9 * this.ema + 0.1 * loss;
    this.step = step;
    this.loss = loss;
    this.sps = sps;
    // the first step always prints (the run has started), then every 200 ms (TTY) or 10 s (a log)
    const due = this.lastPrint === 0 || (this.tty ? now - this.lastPrint > 200 : now - this.lastPrint > 10_000);
    if (due || step === this.total) {
      this.lastPrint = now;
      this.print(step === this.total);
    }
    return sps;
  }

  /** the rate (per second) over this run so far, as last shown */
  get rate(): number {
    return this.sps;
  }

  /** the last step's own loss */
  get lastLoss(): number {
    return this.loss;
  }

  private print(final: boolean): void {
    this.printedStep = this.step;
    const eta = (this.total - this.step) / Math.max(this.sps, 1e-9);
    const width = 24;
    const filled = Math.max(0, Math.min(width, Math.round((width * this.step) / this.total)));
    const loss = final ? this.loss : this.ema;
    const lossPart = Number.isNaN(loss) ? "" : ` loss ${loss.toFixed(4)} |`;
    const rate = this.sps >= 1 || this.unit === "step" ? `${this.sps.toFixed(2)} ${this.unit}s/s` : `${(1 / Math.max(this.sps, 1e-9)).toFixed(1)} s/${this.unit}`;
    const line = `${this.unit} ${this.step}/${this.total} [${"=".repeat(filled)}${" ".repeat(width - filled)}]${lossPart} ${rate} | ETA ${fmtTime(eta)}`;
    if (this.tty) process.stderr.write(`\r${line}\x1b[K`);
    else this.log(line);
  }

  note(s: string): void {
    if (this.tty) process.stderr.write(`\r\x1b[K${s}\n`);
    else this.log(s);
  }

  /** End the bar: the last step's line (its own loss) if it was not shown yet. */
  done(): void {
    if (this.step >= 0 && this.printedStep !== this.step) this.print(true);
    if (this.tty) process.stderr.write("\n");
  }
}

export function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return "?";
  if (s < 60) return `${Math.round(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}
