/**
 * An ablation's arms over seeds, pure: each arm (a unit group: one arm and sweep combination,
 * trained with seeds seed, seed + 1, ...) gets the mean and 95% Student-t interval over its seeds
 * of every metric (validation loss, final training loss, and per CFG scale prompt accuracy and
 * judge-feature FD), and every pair of arms is compared per metric with Welch's two-sided t-test
 * over the seeds, the p-values Holm-adjusted across the pairs of that metric; a difference is
 * significant when its adjusted p is below alpha (0.05). Accuracy is treated like the others:
 * one value per seed (its eval's accuracy), so the interval is over training seeds.
 */
import { holm, type MeanInterval, meanInterval, welchTest } from "./stats.ts";
import type { UnitResult } from "./sweep.ts";

export const SEED_CONFIDENCE = 0.95;
export const SEED_ALPHA = 0.05;

export interface ArmMetric extends MeanInterval {
  /** one value per seed, in the units' order */
  values: number[];
}

export interface ArmSummary {
  /** the group id (the unit id without "+seed=K") */
  arm: string;
  units: string[];
  seeds: number[];
  params: number;
  /** metric name -> mean and interval over the seeds: val_loss, final_loss, acc_cfg<s>, fd_cfg<s> */
  metrics: Record<string, ArmMetric>;
}

export interface ArmComparison {
  metric: string;
  a: string;
  b: string;
  /** mean(a) - mean(b) */
  diff: number;
  t: number;
  df: number;
  p: number;
  /** Holm-adjusted across the pairs of this metric */
  pHolm: number;
  significant: boolean;
}

export interface SeedAnalysis {
  confidence: number;
  interval: "student-t over seeds";
  test: "welch-t, two-sided, holm across the pairs of each metric";
  alpha: number;
  arms: ArmSummary[];
  /** empty when no two arms have 2+ seeds each */
  comparisons: ArmComparison[];
}

/** The metrics of a unit, by name (a scale missing from a unit is absent). */
export function unitMetrics(r: UnitResult): Record<string, number> {
  const m: Record<string, number> = { val_loss: r.valLoss, final_loss: r.finalTrainLoss };
  for (const c of r.cfg) {
    m[`acc_cfg${c.cfg}`] = c.accuracy;
    m[`fd_cfg${c.cfg}`] = c.frechet;
  }
  return m;
}

/** Arms in the order of their first unit, with the mean and interval of every metric over their seeds (non-finite values left out). */
export function summarizeArms(results: UnitResult[]): ArmSummary[] {
  const groups = new Map<string, UnitResult[]>();
  for (const r of results) {
    const g = r.group ?? r.id;
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g)!.push(r);
  }
  return [...groups].map(([arm, rs]) => {
    const per = rs.map(unitMetrics);
    const names = [...new Set(per.flatMap((m) => Object.keys(m)))];
    const metrics: Record<string, ArmMetric> = {};
    for (const n of names) {
      const values = per.map((m) => m[n]).filter((v) => v !== undefined && Number.isFinite(v));
      metrics[n] = { ...meanInterval(values, SEED_CONFIDENCE), values };
    }
    return { arm, units: rs.map((r) => r.id), seeds: rs.map((r) => r.inputs.seed), params: rs[0].params, metrics };
  });
}

/** Welch's t-test of every pair of arms for every metric both have with 2+ seeds; Holm across the pairs of a metric. */
export function compareArms(arms: ArmSummary[], alpha = SEED_ALPHA): ArmComparison[] {
  const names = [...new Set(arms.flatMap((a) => Object.keys(a.metrics)))];
  const out: ArmComparison[] = [];
  for (const metric of names) {
    const raw: Omit<ArmComparison, "pHolm" | "significant">[] = [];
    for (let i = 0; i < arms.length; i++) {
      for (let j = i + 1; j < arms.length; j++) {
        const a = arms[i].metrics[metric];
        const b = arms[j].metrics[metric];
        if (!a || !b || a.values.length < 2 || b.values.length < 2) continue;
        const w = welchTest(a.values, b.values);
        raw.push({ metric, a: arms[i].arm, b: arms[j].arm, diff: a.mean - b.mean, t: w.stat, df: w.df, p: w.p });
      }
    }
    const adj = holm(raw.map((r) => r.p));
    raw.forEach((r, k) => out.push({ ...r, pHolm: adj[k], significant: adj[k] < alpha }));
  }
  return out;
}

export function analyzeSeeds(results: UnitResult[]): SeedAnalysis {
  const arms = summarizeArms(results);
  return { confidence: SEED_CONFIDENCE, interval: "student-t over seeds", test: "welch-t, two-sided, holm across the pairs of each metric", alpha: SEED_ALPHA, arms, comparisons: compareArms(arms) };
}

/** True when some arm has several seeds (the per-arm tables are then worth showing). */
export function hasSeeds(results: UnitResult[]): boolean {
  return summarizeArms(results).some((a) => a.units.length > 1);
}

const fmt = (x: number, d: number) => (Number.isFinite(x) ? x.toFixed(d) : "-");
/** "0.412 [0.398, 0.426]" */
export function meanText(m: ArmMetric | undefined, d: number): string {
  if (!m || !m.values.length) return "";
  return Number.isFinite(m.lo) ? `${fmt(m.mean, d)} [${fmt(m.lo, d)}, ${fmt(m.hi, d)}]` : fmt(m.mean, d);
}

/** The metrics shown, in order: val_loss, final_loss, then acc and FD per scale (ascending). */
export function metricOrder(arms: ArmSummary[]): string[] {
  const names = new Set(arms.flatMap((a) => Object.keys(a.metrics)));
  const scales = [...new Set([...names].filter((n) => n.startsWith("acc_cfg")).map((n) => Number(n.slice(7))))].sort((a, b) => a - b);
  return ["val_loss", "final_loss", ...scales.flatMap((s) => [`acc_cfg${s}`, `fd_cfg${s}`])].filter((n) => names.has(n));
}

const digits = (metric: string) => (metric.startsWith("fd_") ? 2 : metric.startsWith("acc_") ? 3 : 4);

/** Markdown: the per-arm table (mean [95% t-interval] over seeds) and the significant differences. */
export function seedsMarkdown(s: SeedAnalysis): string {
  const metrics = metricOrder(s.arms);
  const head = ["arm", "seeds", "params", ...metrics];
  const rows = s.arms.map((a) => [a.arm, a.seeds.join(","), String(a.params), ...metrics.map((m) => meanText(a.metrics[m], digits(m)))]);
  const esc = (x: string) => x.replace(/\|/g, "\\|");
  const lines = [
    `## Per arm: mean [${Math.round(s.confidence * 100)}% interval] over seeds`,
    "",
    `Interval: Student-t over the seeds (t_{0.975, n-1} · sd / √n). Test: Welch's two-sided t-test over the seeds for every pair of arms, p Holm-adjusted across the pairs of each metric; significant when the adjusted p < ${s.alpha}.`,
    "",
    `| ${head.join(" | ")} |`,
    `|${head.map(() => "---").join("|")}|`,
    ...rows.map((r) => `| ${r.map(esc).join(" | ")} |`),
    "",
  ];
  if (!s.comparisons.length) {
    lines.push("No comparisons: they need 2 or more seeds in each arm (--seeds 2 or more).", "");
    return lines.join("\n");
  }
  const sig = s.comparisons.filter((c) => c.significant);
  lines.push(`### Differences (${sig.length} of ${s.comparisons.length} significant)`, "", "| metric | arm a | arm b | mean a - b | t | df | p | p (Holm) | significant |", "|---|---|---|---|---|---|---|---|---|");
  for (const c of s.comparisons) lines.push(`| ${c.metric} | ${esc(c.a)} | ${esc(c.b)} | ${fmt(c.diff, digits(c.metric))} | ${fmt(c.t, 2)} | ${fmt(c.df, 1)} | ${c.p.toPrecision(2)} | ${c.pHolm.toPrecision(2)} | ${c.significant ? "yes" : "no"} |`);
  lines.push("");
  return lines.join("\n");
}

/**
 * Vega-Lite: per arm, the mean over seeds with its 95% interval as a vertical bar, against the
 * parameter count: validation loss, prompt accuracy and FD at `cfg`.
 */
export function armsPlotSpec(s: SeedAnalysis, cfg: number, title: string): Record<string, unknown> {
  const values = s.arms.flatMap((a) => (["val_loss", `acc_cfg${cfg}`, `fd_cfg${cfg}`] as const).map((metric) => {
    const m = a.metrics[metric];
    return { arm: a.arm, params: a.params, metric, seeds: a.units.length, mean: m?.mean ?? null, lo: m && Number.isFinite(m.lo) ? m.lo : null, hi: m && Number.isFinite(m.hi) ? m.hi : null };
  }));
  const panel = (metric: string, label: string) => ({
    width: 240,
    height: 220,
    transform: [{ filter: { field: "metric", equal: metric } }],
    layer: [
      { mark: { type: "rule", strokeWidth: 2 }, encoding: { x: { field: "params", type: "quantitative" }, y: { field: "lo", type: "quantitative" }, y2: { field: "hi" }, color: { field: "arm", type: "nominal" } } },
      {
        mark: { type: "point", filled: true, size: 70 },
        encoding: {
          x: { field: "params", type: "quantitative", title: "parameters", scale: { zero: false } }, y: { field: "mean", type: "quantitative", title: label, scale: { zero: false } },
          color: { field: "arm", type: "nominal", title: "arm", legend: { labelLimit: 360 } }, tooltip: ["arm", "seeds", "mean", "lo", "hi"].map((field) => ({ field })),
        },
      },
    ],
  });
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    title: `${title} (mean over seeds, bars: ${Math.round(s.confidence * 100)}% t-interval)`,
    background: "white",
    data: { values },
    hconcat: [panel("val_loss", "validation loss"), panel(`acc_cfg${cfg}`, `prompt accuracy (cfg ${cfg})`), panel(`fd_cfg${cfg}`, `judge-feature FD (cfg ${cfg})`)],
  };
}
