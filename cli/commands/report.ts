/**
 * `sdc report RUN|ABLATION_DIR`: one self-contained HTML page (inline SVG charts, images as
 * data: URIs, no script from anywhere else, no network) to look at a run or an ablation:
 *   a run       loss and validation-loss curves, the learning rate, the sample grids over the
 *               steps with their prompts, the eval table per CFG scale (eval.json), its settings
 *   an ablation the results table, validation-loss curves of all units on one chart, the
 *               ablation's own plot, and each unit's last grid side by side
 * A small inline script checks, once the page has loaded, that every image decoded and every
 * chart has its lines, and records it on <body data-rendered> (the browser test reads it).
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { writeFileAtomic } from "../../runtime/io/atomic.ts";
import { readRegularFile } from "../../runtime/io/read-file.ts";
import { matchError, type UnitMatch } from "../../runtime/eval/sweep.ts";
import { meanText, metricOrder, type SeedAnalysis } from "../../runtime/eval/seeds.ts";
import { EXIT, InputError } from "../errors.ts";

export interface ReportOptions {
  out?: string;
  log?: (s: string) => void;
}

interface MetricLine {
  step: number;
  loss?: number;
  val_loss?: number;
  lr?: number;
  /** a checkpoint's eval (sdc eval RUN --checkpoints all; CheckpointEval in eval.ts) */
  eval?: { settings: unknown; trainSeconds: number; trainFlops: number; images: number; cfg: { cfg: number; accuracy: number; frechet: number }[] };
}

interface Grid {
  step: number;
  png: Buffer;
  prompts: string | null;
}

interface RunData {
  dir: string;
  name: string;
  metrics: MetricLine[];
  grids: Grid[];
  config: Record<string, unknown> | null;
  summary: Record<string, unknown> | null;
  evalReport: EvalLike | null;
}

interface EvalLike {
  step?: number;
  weights?: string;
  valLoss?: number;
  referenceSplitFrechet?: number;
  cfg: { cfg: number; accuracy: number; frechet: number; sampleSeconds?: number; perDigit?: number[]; images?: number; accuracyInterval?: { lo: number; hi: number }; frechetInterval?: { lo: number; hi: number } | null }[];
}

/** " [lo, hi]" of an interval when there is one (older eval.json files have none). */
const ivText = (i: { lo: number; hi: number } | null | undefined, f: (x: number) => string) => (i && Number.isFinite(i.lo) && Number.isFinite(i.hi) ? ` [${f(i.lo)}, ${f(i.hi)}]` : "");

const esc = (s: unknown) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
/** A run's file, only if it is a regular file (never a FIFO or device that would block or never end: InputFileError). */
const readRunFile = (p: string, maxBytes = 1 << 30): Buffer => readRegularFile(p, { maxBytes, root: "/" });
const readJson = (p: string): Record<string, unknown> | null => {
  if (!existsSync(p)) return null;
  const b = readRunFile(p, 64 << 20);
  try {
    return JSON.parse(b.toString("utf8")) as Record<string, unknown>;
  } catch {
    return null;
  }
};

function readMetrics(p: string): MetricLine[] {
  if (!existsSync(p)) return [];
  const out: MetricLine[] = [];
  for (const l of readRunFile(p).toString("utf8").split("\n")) {
    try {
      const r = JSON.parse(l) as MetricLine;
      if (typeof r.step === "number") out.push(r);
    } catch {
      // blank or torn line
    }
  }
  return out;
}

/** The grids of a run: RUN/samples/step-N.png (+ .txt), or an ablation unit's samples-step-N.png. */
function readGrids(dir: string): Grid[] {
  const found: { step: number; png: string; txt: string }[] = [];
  const samples = join(dir, "samples");
  if (existsSync(samples)) {
    for (const f of readdirSync(samples)) {
      const m = /^step-(\d+)\.png$/.exec(f);
      if (m) found.push({ step: Number(m[1]), png: join(samples, f), txt: join(samples, f.replace(/\.png$/, ".txt")) });
    }
  }
  for (const f of existsSync(dir) ? readdirSync(dir) : []) {
    const m = /^samples-step-(\d+)\.png$/.exec(f);
    if (m) found.push({ step: Number(m[1]), png: join(dir, f), txt: join(dir, f.replace(/\.png$/, ".txt")) });
  }
  return found.sort((a, b) => a.step - b.step).map((g) => ({ step: g.step, png: readRunFile(g.png), prompts: existsSync(g.txt) ? readRunFile(g.txt).toString("utf8") : null }));
}

/** A run folder, or an ablation unit folder (its run/ and eval.json beside it). */
function readRun(dir: string, name = basename(dir)): RunData {
  const runDir = existsSync(join(dir, "run", "metrics.jsonl")) ? join(dir, "run") : dir;
  const evalPath = [join(runDir, "eval.json"), join(dir, "eval.json")].find(existsSync);
  return {
    dir, name,
    metrics: readMetrics(join(runDir, "metrics.jsonl")),
    grids: readGrids(runDir).length ? readGrids(runDir) : readGrids(dir),
    config: readJson(join(runDir, "config.json")),
    summary: readJson(join(runDir, "summary.json")) ?? readJson(join(dir, "summary.json")),
    evalReport: evalPath ? (readJson(evalPath) as unknown as EvalLike) : null,
  };
}

// ---------------------------------------------------------------- charts (inline SVG)

export interface Series {
  name: string;
  points: [number, number][];
  dots?: boolean;
}

const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

/** Round tick values over [lo, hi], each with its label (as many decimals as the tick step needs). */
function ticks(lo: number, hi: number, n = 5): { v: number; label: string }[] {
  const label = (v: number, step: number) => {
    if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString("en-US");
    if (step < 1e-3 && v !== 0) return v.toExponential(Math.max(0, Math.ceil(-Math.log10(step)) - Math.ceil(-Math.log10(Math.abs(v))) ));
    return v.toFixed(Math.max(0, Math.ceil(-Math.log10(step) - 1e-9)));
  };
  if (!(hi > lo)) return [{ v: lo, label: label(lo, Math.abs(lo) || 1) }];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((k) => k * mag).find((s) => s >= raw) ?? raw;
  const out: { v: number; label: string }[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push({ v: Number(v.toPrecision(12)), label: label(Number(v.toPrecision(12)), step) });
  return out;
}

/** A line chart as an SVG element: one polyline per series (dots for sparse ones), axes, legend. */
export function lineChart(title: string, series: Series[], o: { xLabel?: string; yLabel?: string; logY?: boolean; width?: number; height?: number } = {}): string {
  const W = o.width ?? 560;
  const H = o.height ?? 300;
  const m = { l: 56, r: 12, t: 28, b: 40 };
  const pts = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!o.logY || y > 0));
  if (!pts.length) return `<p class="empty">${esc(title)}: no data</p>`;
  const ty = (y: number) => (o.logY ? Math.log10(y) : y);
  const [x0, x1] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]))];
  const [y0, y1] = [Math.min(...pts.map((p) => ty(p[1]))), Math.max(...pts.map((p) => ty(p[1])))];
  const pad = (y1 - y0) * 0.05 || Math.abs(y0) * 0.1 || 0.5;
  const [ya, yb] = [y0 - pad, y1 + pad];
  const span = x1 > x0 ? 0 : Math.max(1, Math.abs(x0) * 0.1); // a single step: a window around it
  const xa = x0 - span, xb = x1 > x0 ? x1 : x0 + span;
  const X = (x: number) => m.l + ((x - xa) / (xb - xa)) * (W - m.l - m.r);
  const Y = (y: number) => H - m.b - ((ty(y) - ya) / (yb - ya)) * (H - m.t - m.b);
  const parts: string[] = [];
  parts.push(`<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${esc(title)}">`);
  parts.push(`<text x="${W / 2}" y="16" text-anchor="middle" class="title">${esc(title)}</text>`);
  for (const { v, label } of ticks(xa, xb)) parts.push(`<line x1="${X(v)}" x2="${X(v)}" y1="${m.t}" y2="${H - m.b}" class="grid"/><text x="${X(v)}" y="${H - m.b + 14}" text-anchor="middle">${label}</text>`);
  const yt = o.logY ? ticks(ya, yb).map((t) => ({ v: 10 ** t.v, label: (10 ** t.v).toPrecision(2) })) : ticks(ya, yb);
  for (const { v, label } of yt) parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${Y(v)}" y2="${Y(v)}" class="grid"/><text x="${m.l - 6}" y="${Y(v) + 4}" text-anchor="end">${label}</text>`);
  parts.push(`<rect x="${m.l}" y="${m.t}" width="${W - m.l - m.r}" height="${H - m.t - m.b}" class="frame"/>`);
  if (o.xLabel) parts.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - 6}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  if (o.yLabel) parts.push(`<text x="14" y="${(m.t + H - m.b) / 2}" text-anchor="middle" transform="rotate(-90 14 ${(m.t + H - m.b) / 2})">${esc(o.yLabel)}</text>`);
  series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length];
    const p = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!o.logY || y > 0));
    if (!p.length) return;
    parts.push(`<polyline class="series" data-series="${esc(s.name)}" fill="none" stroke="${c}" stroke-width="1.6" points="${p.map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(" ")}"/>`);
    if (s.dots || p.length < 30) for (const [x, y] of p) parts.push(`<circle cx="${X(x).toFixed(1)}" cy="${Y(y).toFixed(1)}" r="2.5" fill="${c}"><title>${esc(s.name)} at ${x}: ${y}</title></circle>`);
    const lx = W - m.r - 8 - Math.min(150, 7 * Math.max(...series.map((t) => t.name.length)) + 16); // legend: top right
    parts.push(`<rect x="${lx}" y="${m.t + 6 + i * 15}" width="10" height="10" fill="${c}"/><text x="${lx + 14}" y="${m.t + 15 + i * 15}">${esc(s.name)}</text>`);
  });
  parts.push("</svg>");
  return parts.join("");
}

// ---------------------------------------------------------------- page

const STYLE = `body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.charts,.grids{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
figure{margin:0;border:1px solid #ddd;padding:8px;background:#fafafa}figure img{image-rendering:pixelated;width:256px;height:auto;display:block}
figcaption{font-size:12px;margin-top:4px}pre{font-size:11px;margin:4px 0 0;white-space:pre}
svg.chart text{font-size:11px;fill:#333}svg.chart .title{font-size:13px;font-weight:600}svg.chart .grid{stroke:#e5e5e5}svg.chart .frame{fill:none;stroke:#999}
.empty{color:#888}.muted{color:#666;font-size:12px}`;

const CHECK = `window.__errors=[];window.addEventListener("error",function(e){window.__errors.push(String(e.message||e))});
window.addEventListener("load",function(){var imgs=[].slice.call(document.images);var bad=imgs.filter(function(i){return !(i.complete&&i.naturalWidth>0)}).length;
var charts=[].slice.call(document.querySelectorAll("svg.chart"));var empty=charts.filter(function(c){return !c.querySelector("polyline")}).length;
document.body.setAttribute("data-images",String(imgs.length));document.body.setAttribute("data-charts",String(charts.length));
document.body.setAttribute("data-rendered",bad===0&&empty===0&&window.__errors.length===0?"ok":"failed: "+bad+" images, "+empty+" empty charts, errors: "+window.__errors.join("; "))});`;

function page(title: string, body: string): string {
  return `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>${esc(title)}</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<style>${STYLE}</style><script>${CHECK}</script></head>
<body data-rendered="pending">\n${body}\n</body></html>\n`;
}

const dataUri = (png: Buffer, type = "image/png") => `data:${type};base64,${png.toString("base64")}`;

function gridFigure(g: Grid, label: string): string {
  return `<figure><img alt="${esc(label)}" src="${dataUri(g.png)}"><figcaption>${esc(label)}${g.prompts ? `<pre>${esc(g.prompts.trim())}</pre>` : ""}</figcaption></figure>`;
}

function evalTable(e: EvalLike): string {
  const rows = e.cfg.map((c) => `<tr><td>${c.cfg}</td><td>${(c.accuracy * 100).toFixed(1)}%${ivText(c.accuracyInterval, (x) => (x * 100).toFixed(1))}</td><td>${c.frechet.toFixed(1)}${ivText(c.frechetInterval, (x) => x.toFixed(1))}</td><td>${c.sampleSeconds !== undefined ? c.sampleSeconds.toFixed(1) : ""}</td>${c.perDigit ? `<td>${c.perDigit.map((a) => (a * 100).toFixed(0)).join(" ")}</td>` : ""}</tr>`);
  const perDigit = e.cfg.some((c) => c.perDigit);
  return `<table class="eval"><tr><th>CFG</th><th>prompt accuracy</th><th>judge FD</th><th>sampling s</th>${perDigit ? "<th>accuracy per digit 0-9 (%)</th>" : ""}</tr>${rows.join("")}</table>
<p class="muted">${e.step !== undefined ? `step ${e.step}, ` : ""}${e.weights ? `${e.weights} weights, ` : ""}${e.valLoss !== undefined ? `validation loss ${e.valLoss.toFixed(4)}, ` : ""}${e.referenceSplitFrechet !== undefined ? `FD floor (real images) ${e.referenceSplitFrechet.toFixed(1)}; ` : ""}${e.cfg[0]?.images ? `${e.cfg[0].images} images per scale; ` : ""}${e.cfg.some((c) => c.accuracyInterval) ? "[lo, hi]: 95% intervals (accuracy: Wilson score; FD: bootstrap over the generated images); " : ""}FD: judge-feature Fréchet distance, not Inception FID.</p>`;
}

function settingsTable(c: Record<string, unknown>): string {
  const s = (c.settings ?? {}) as Record<string, unknown>;
  const rows = Object.entries(s).map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(v)}</td></tr>`).join("");
  const cmd = Array.isArray(c.command) ? (c.command as string[]).join(" ") : "";
  const v = (c.versions ?? {}) as Record<string, string>;
  return `<table class="settings"><tr><th>setting</th><th>value</th></tr>${rows}</table><p class="muted">${esc(cmd)}<br>backend ${esc(c.backend)}, engine ${esc(c.engine)}; sdc ${esc(v.sdc)}, node ${esc(v.node)}, tfjs ${esc(v.tfjs)}</p>`;
}

/**
 * Quality against compute: FD and accuracy of each evaluated checkpoint (the settings of the
 * newest eval line) against steps, training minutes and training TFLOPs, one series per scale.
 */
function qualitySection(metrics: MetricLine[]): string {
  const evals = metrics.filter((m) => m.eval && Array.isArray(m.eval.cfg));
  if (!evals.length) return "";
  const key = JSON.stringify(evals[evals.length - 1].eval!.settings);
  const lines = evals.filter((m) => JSON.stringify(m.eval!.settings) === key).sort((a, b) => a.step - b.step);
  const scales = [...new Set(lines.flatMap((l) => l.eval!.cfg.map((c) => c.cfg)))].sort((a, b) => a - b);
  const axes: [string, (l: MetricLine) => number][] = [["step", (l) => l.step], ["training minutes", (l) => l.eval!.trainSeconds / 60], ["training TFLOPs", (l) => l.eval!.trainFlops / 1e12]];
  const series = (x: (l: MetricLine) => number, y: (c: { accuracy: number; frechet: number }) => number) => scales.map((s) => ({ name: `cfg ${s}`, dots: true, points: lines.map((l) => [x(l), (() => { const c = l.eval!.cfg.find((v) => v.cfg === s); return c ? y(c) : NaN; })()] as [number, number]) }));
  const charts = axes.flatMap(([label, x]) => [lineChart(`judge-feature FD against ${label}`, series(x, (c) => c.frechet), { xLabel: label, yLabel: "FD" }), lineChart(`prompt accuracy against ${label}`, series(x, (c) => c.accuracy), { xLabel: label, yLabel: "accuracy" })]);
  return `<h2>Quality against compute</h2><p class="muted">${lines.length} checkpoints evaluated (sdc eval RUN --checkpoints all), ${lines[0].eval!.images} images per scale; training FLOPs: the GEMM work of one step (sdc plan) x steps; minutes: training wall-clock.</p><div class="charts">${charts.join("")}</div>`;
}

export function runReport(r: RunData): string {
  const loss = r.metrics.filter((m) => m.loss !== undefined).map((m) => [m.step, m.loss!] as [number, number]);
  const val = r.metrics.filter((m) => m.val_loss !== undefined).map((m) => [m.step, m.val_loss!] as [number, number]);
  const lr = r.metrics.filter((m) => m.lr !== undefined).map((m) => [m.step, m.lr!] as [number, number]);
  const parts: string[] = [`<h1>${esc(r.name)}</h1><p class="muted">${esc(r.dir)}</p>`];
  parts.push(`<h2>Loss</h2><div class="charts">${lineChart("training and validation loss", [{ name: "loss", points: loss }, { name: "val_loss", points: val, dots: true }], { xLabel: "step", yLabel: "loss" })}${lr.length ? lineChart("learning rate", [{ name: "lr", points: lr }], { xLabel: "step" }) : ""}</div>`);
  parts.push(`<h2>Samples over the steps</h2><div class="grids">${r.grids.length ? r.grids.map((g) => gridFigure(g, `step ${g.step}`)).join("") : '<p class="empty">no sample grids</p>'}</div>`);
  const q = qualitySection(r.metrics);
  if (q) parts.push(q);
  if (r.evalReport?.cfg?.length) parts.push(`<h2>Eval per CFG scale</h2>${evalTable(r.evalReport)}`);
  if (r.config) parts.push(`<h2>Settings</h2>${settingsTable(r.config)}`);
  return page(`sdc report: ${r.name}`, parts.join("\n"));
}

interface UnitRow {
  id: string;
  /** older results.json files lack these */
  inputs?: { spec: string };
  network?: string;
  match?: UnitMatch;
  params: number;
  stepSeconds: number;
  finalTrainLoss: number;
  valLoss: number;
  cfg: { cfg: number; accuracy: number; frechet: number }[];
}

/** The arms over seeds (arms.json): mean [interval] per metric, and the tests between arms. */
function armsSection(s: SeedAnalysis): string {
  const metrics = metricOrder(s.arms);
  const d = (m: string) => (m.startsWith("fd_") ? 2 : m.startsWith("acc_") ? 3 : 4);
  const head = `<tr><th>arm</th><th>seeds</th><th>params</th>${metrics.map((m) => `<th>${esc(m)}</th>`).join("")}</tr>`;
  const rows = s.arms.map((a) => `<tr><td>${esc(a.arm)}</td><td>${esc(a.seeds.join(", "))}</td><td>${a.params.toLocaleString("en-US")}</td>${metrics.map((m) => `<td>${esc(meanText(a.metrics[m], d(m)))}</td>`).join("")}</tr>`).join("");
  const sig = s.comparisons.filter((c) => c.significant);
  const tests = s.comparisons.length
    ? `<table class="tests"><tr><th>metric</th><th>arm a</th><th>arm b</th><th>mean a - b</th><th>t</th><th>df</th><th>p</th><th>p (Holm)</th><th>significant</th></tr>${s.comparisons.map((c) => `<tr><td>${esc(c.metric)}</td><td>${esc(c.a)}</td><td>${esc(c.b)}</td><td>${c.diff.toFixed(d(c.metric))}</td><td>${c.t.toFixed(2)}</td><td>${c.df.toFixed(1)}</td><td>${c.p.toPrecision(2)}</td><td>${c.pHolm.toPrecision(2)}</td><td>${c.significant ? "<b>yes</b>" : "no"}</td></tr>`).join("")}</table>`
    : `<p class="empty">no tests: they need 2 or more seeds in each arm</p>`;
  return `<h2>Per arm: mean [${Math.round(s.confidence * 100)}% interval] over seeds</h2><table class="arms">${head}${rows}</table>
<p class="muted">Interval: Student-t over the seeds. Test: Welch's two-sided t-test over the seeds for every pair of arms, p Holm-adjusted across the pairs of each metric; significant when the adjusted p &lt; ${s.alpha} (${sig.length} of ${s.comparisons.length}).</p>${tests}`;
}

export function ablationReport(dir: string, results: UnitRow[], seeds: SeedAnalysis | null = null): string {
  const units = results.map((u) => ({ u, run: readRun(join(dir, u.id), u.id) }));
  const cfgs = [...new Set(results.flatMap((r) => r.cfg.map((c) => c.cfg)))].sort((a, b) => a - b);
  const matched = results.some((r) => r.match);
  const matchHead = matched ? `<th>matched</th><th>target params</th><th>achieved</th><th>error</th>` : "";
  const matchCells = (m: UnitMatch | undefined) => (!matched ? "" : m ? `<td>${esc(`${m.param}=${m.value}`)} (was ${m.from})</td><td>${m.target.toLocaleString("en-US")}${m.on === "network" ? " (network)" : ""}</td><td>${m.achieved.toLocaleString("en-US")}</td><td>${matchError(m)}</td>` : "<td></td><td></td><td></td><td></td>");
  const head = `<tr><th>unit</th><th>spec</th><th>network</th><th>params</th>${matchHead}<th>s/step</th><th>final loss</th><th>val loss</th>${cfgs.map((c) => `<th>acc cfg ${c}</th><th>FD cfg ${c}</th>`).join("")}</tr>`;
  const rows = results.map((r) => `<tr><td>${esc(r.id)}</td><td>${esc(r.inputs?.spec ?? "")}</td><td>${esc(r.network ?? "")}</td><td>${r.params.toLocaleString("en-US")}</td>${matchCells(r.match)}<td>${r.stepSeconds.toFixed(3)}</td><td>${r.finalTrainLoss.toFixed(3)}</td><td>${r.valLoss.toFixed(3)}</td>${cfgs.map((c) => { const x = r.cfg.find((y) => y.cfg === c); return x ? `<td>${x.accuracy.toFixed(2)}</td><td>${x.frechet.toFixed(1)}</td>` : "<td></td><td></td>"; }).join("")}</tr>`);
  const parts: string[] = [`<h1>Ablation: ${esc(basename(dir))}</h1><p class="muted">${esc(dir)}; ${results.length} units</p>`];
  if (seeds) parts.push(armsSection(seeds));
  parts.push(`<h2>Results${seeds ? ", per unit" : ""}</h2><table class="results">${head}${rows.join("")}</table><p class="muted">acc: prompt accuracy judged by the MNIST classifier; FD: judge-feature Fréchet distance (not Inception FID).</p>`);
  const lossSeries = units.map(({ u, run }) => ({ name: u.id, points: run.metrics.filter((m) => m.loss !== undefined).map((m) => [m.step, m.loss!] as [number, number]) }));
  const valSeries = units.map(({ u, run }) => ({ name: u.id, points: run.metrics.filter((m) => m.val_loss !== undefined).map((m) => [m.step, m.val_loss!] as [number, number]), dots: true }));
  const accSeries = cfgs.map((c) => ({ name: `cfg ${c}`, points: results.map((r) => [r.params, r.cfg.find((x) => x.cfg === c)?.accuracy ?? NaN] as [number, number]).sort((a, b) => a[0] - b[0]), dots: true }));
  parts.push(`<h2>Curves, all units</h2><div class="charts">${lineChart("training loss", lossSeries, { xLabel: "step", yLabel: "loss" })}${valSeries.some((s) => s.points.length) ? lineChart("validation loss", valSeries, { xLabel: "step", yLabel: "val loss" }) : ""}${lineChart("prompt accuracy against parameters", accSeries, { xLabel: "parameters", yLabel: "accuracy" })}</div>`);
  const plot = join(dir, "plot.svg");
  if (existsSync(plot)) parts.push(`<h2>The ablation's plot</h2><img alt="plot" style="max-width:900px" src="${dataUri(readRunFile(plot), "image/svg+xml")}">`);
  parts.push(`<h2>Last sample grid of each unit</h2><div class="grids">${units.map(({ u, run }) => { const g = run.grids.at(-1); return g ? gridFigure(g, `${u.id}, step ${g.step}`) : `<p class="empty">${esc(u.id)}: no grid</p>`; }).join("")}</div>`);
  const evals = units.filter(({ run }) => run.evalReport?.cfg?.length);
  if (evals.length) parts.push(`<h2>Eval per unit</h2>${evals.map(({ u, run }) => `<h3>${esc(u.id)}</h3>${evalTable(run.evalReport!)}`).join("")}`);
  return page(`sdc report: ablation ${basename(dir)}`, parts.join("\n"));
}

/** Write the report of a run or ablation folder; returns the HTML file written. */
export function writeReport(dir: string, o: ReportOptions = {}): string {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new InputError(`not a folder: ${dir} (give a run folder, e.g. output/sd3-tiny, or an ablation folder)`);
  const out = o.out ?? join(dir, "report.html");
  const results = readJson(join(dir, "results.json")) as unknown as UnitRow[] | null;
  let html: string;
  if (Array.isArray(results)) html = ablationReport(dir, results, readJson(join(dir, "arms.json")) as unknown as SeedAnalysis | null);
  else if (existsSync(join(dir, "metrics.jsonl")) || existsSync(join(dir, "run", "metrics.jsonl"))) html = runReport(readRun(dir));
  else throw new InputError(`${dir} is neither a run (no metrics.jsonl) nor an ablation (no results.json)`);
  writeFileAtomic(out, html);
  return out;
}

export function runReportCli(dir: string, o: ReportOptions): number {
  const log = o.log ?? ((s: string) => process.stderr.write(s + "\n"));
  const out = writeReport(dir, o);
  log(`wrote ${out} (${(statSync(out).size / 1024).toFixed(0)} KiB, self-contained)`);
  return EXIT.ok;
}
