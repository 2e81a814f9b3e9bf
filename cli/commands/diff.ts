/**
 * `sdc diff A B`: what changed between two specs, two variants of one, or two compiled folders:
 * parameters per module (total and per block), the training step's GEMM work and GPU memory
 * (runtime/engines/static/plan.ts, traced on the CPU), and every schedule and training setting that
 * differs, as a table or JSON.
 *   sdc diff specs/sd3.mdl --variant tiny specs/sd3.mdl
 *   sdc diff generated/sd3 generated/sd3-seed --json
 * `--variant` and `--set` belong to the spec before them; the other options to both sides.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatAll } from "../../compiler/index.ts";
import { diffIr, type IrDiff, type ModuleSide } from "../../compiler/diff.ts";
import type { IR } from "../../ir/ir.ts";
import type { StepPlan } from "../../runtime/engines/static/plan.ts";
import { writeDirAtomic } from "../../runtime/io/atomic.ts";
import { EXIT, InputError, UsageError, parseIntArg } from "../errors.ts";
import { compileSpecFile } from "./compile.ts";

export interface DiffSide {
  /** a .mdl spec or a compiled folder */
  path: string;
  variant?: string;
  set: string[];
}

export interface DiffArgs {
  a: DiffSide;
  b: DiffSide;
  json: boolean;
  plan: boolean;
  batch?: number;
  contextTokens?: number;
  depth: number;
}

export const DIFF_USAGE = "usage: sdc diff A [--variant V] [--set k=v ...] B [--variant V] [--set k=v ...] [--batch-size N] [--context-tokens T] [--depth D] [--no-plan] [--json]";

/** Parse `diff`'s arguments: side options (`--variant`, `--set`) go to the path before them. */
export function parseDiffArgs(argv: string[]): DiffArgs {
  const sides: DiffSide[] = [];
  const out: Omit<DiffArgs, "a" | "b"> = { json: false, plan: true, depth: 1 };
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    let value: string | undefined;
    const eq = arg.startsWith("--") ? arg.indexOf("=") : -1;
    if (eq > 0) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    const next = () => {
      if (value !== undefined) return value;
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${arg} needs a value\n${DIFF_USAGE}`);
      return v;
    };
    switch (arg) {
      case "--variant":
      case "--set": {
        const s = sides[sides.length - 1];
        if (!s) throw new UsageError(`${arg} must follow the spec it applies to\n${DIFF_USAGE}`);
        if (!s.path.endsWith(".mdl")) throw new UsageError(`${arg} applies to a spec (.mdl), but ${s.path} is a compiled folder`);
        const v = next();
        if (arg === "--variant") s.variant = v;
        else s.set.push(v);
        break;
      }
      case "--json":
        out.json = true;
        break;
      case "--no-plan":
        out.plan = false;
        break;
      case "--batch-size":
        out.batch = parseIntArg("--batch-size", next(), 1);
        break;
      case "--context-tokens":
        out.contextTokens = parseIntArg("--context-tokens", next(), 1);
        break;
      case "--depth":
        out.depth = parseIntArg("--depth", next(), 0);
        break;
      default:
        if (arg.startsWith("-")) throw new UsageError(`unknown option '${arg}' for sdc diff\n${DIFF_USAGE}`);
        sides.push({ path: arg, set: [] });
    }
  }
  if (sides.length !== 2) throw new UsageError(`sdc diff compares two things, got ${sides.length}\n${DIFF_USAGE}`);
  return { ...out, a: sides[0], b: sides[1] };
}

export interface LoadedSide {
  label: string;
  ir: IR;
  plan?: StepPlan & { contextTokens: number | null };
}

const label = (s: DiffSide) => [s.path, ...(s.variant ? [`--variant ${s.variant}`] : []), ...s.set.map((x) => `--set ${x}`)].join(" ");

/** The side's IR, and its step plan (a spec is compiled into a temporary folder for tracing). */
async function loadSide(s: DiffSide, o: DiffArgs, err: (s: string) => void): Promise<LoadedSide> {
  const { planRun } = o.plan ? await import("./plan.ts") : { planRun: undefined };
  const planOpts = { batch: o.batch, contextTokens: o.contextTokens };
  if (s.path.endsWith(".mdl")) {
    if (!existsSync(s.path)) throw new UsageError(`spec file not found: ${s.path}`);
    const tmp = o.plan ? mkdtempSync(join(tmpdir(), "sdc-diff-")) : undefined;
    try {
      const { result } = compileSpecFile(s.path, { variant: s.variant, set: s.set, outDir: tmp ?? "", generate: o.plan });
      if (!result.ir) {
        err(formatAll(result.diagnostics, result.program.sources) + "\n");
        throw new InputError(`${label(s)} does not compile (${result.diagnostics.length} error${result.diagnostics.length === 1 ? "" : "s"} above)`);
      }
      const ir = result.ir;
      if (!planRun || !tmp || !result.files || ir.task.kind !== "diffusion") return { label: label(s), ir };
      const dir = join(tmp, ir.spec.name);
      writeDirAtomic(dir, Object.fromEntries(result.files));
      return { label: label(s), ir, plan: await planRun(dir, planOpts) };
    } finally {
      if (tmp) rmSync(tmp, { recursive: true, force: true });
    }
  }
  if (!existsSync(s.path) || !statSync(s.path).isDirectory()) throw new UsageError(`not a spec (.mdl) or a compiled folder: ${s.path}`);
  const irPath = join(s.path, "ir.json");
  if (!existsSync(irPath)) throw new InputError(`${s.path} is not a compiled spec: ${irPath} is missing`);
  let ir: IR;
  try {
    ir = JSON.parse(readFileSync(irPath, "utf8"));
  } catch (e) {
    throw new InputError(`${irPath} is not valid JSON: ${(e as Error).message}`);
  }
  if (!planRun || ir.task?.kind !== "diffusion") {
    const { validateIr } = await import("../../ir/validate.ts");
    const errors = validateIr(ir);
    if (errors.length) throw new InputError(`${irPath} does not match the IR schema: ${errors.slice(0, 3).join("; ")}`);
    return { label: label(s), ir };
  }
  return { label: label(s), ir, plan: await planRun(s.path, planOpts) };
}

export interface DiffReport extends IrDiff {
  labels: { a: string; b: string };
  plan?: { name: string; a: number | string; b: number | string }[];
}

const PLAN_ROWS: [keyof StepPlan, string][] = [
  ["batch", "batch"],
  ["gemmGflop", "GEMM work per step (GFLOP)"],
  ["dispatches", "dispatches per step"],
  ["optimizerMiB", "parameters + gradients + Adam (MiB)"],
  ["activationMiB", "activations with buffer reuse (MiB)"],
  ["activationMiBNoReuse", "activations, one buffer per node (MiB)"],
  ["largestTensorMiB", "largest tensor (MiB)"],
];

export async function diffRun(o: DiffArgs, err: (s: string) => void = (s) => process.stderr.write(s)): Promise<DiffReport> {
  const a = await loadSide(o.a, o, err);
  const b = await loadSide(o.b, o, err);
  const report: DiffReport = { labels: { a: a.label, b: b.label }, ...diffIr(a.ir, b.ir, { depth: o.depth }) };
  if (a.plan && b.plan) {
    report.plan = PLAN_ROWS.map(([k, name]) => ({ name, a: a.plan![k] as number, b: b.plan![k] as number }));
    if (a.plan.contextTokens !== null || b.plan.contextTokens !== null) report.plan.splice(1, 0, { name: "context tokens", a: a.plan.contextTokens ?? "learned", b: b.plan.contextTokens ?? "learned" });
  }
  return report;
}

const n = (x: number) => x.toLocaleString("en-US", { maximumFractionDigits: 1 });

/** `+12,345 (x2.1)`, `-3 (x0.50)`, `=` */
function change(a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined) return a === undefined ? "added" : "removed";
  if (a === b) return "=";
  const d = b - a;
  const ratio = a !== 0 ? ` (x${(b / a).toFixed(b / a >= 10 ? 0 : 2)})` : "";
  return `${d > 0 ? "+" : "-"}${n(Math.abs(Number(d.toFixed(1))))}${ratio}`;
}

const kindOf = (s: ModuleSide | undefined) => (s ? `${s.kind}${s.count > 1 ? ` x${s.count}` : ""}` : "-");
const each = (s: ModuleSide | undefined) => (s ? s.each.map(([c, p]) => `${c} x ${n(p)}`).join(" + ") : "-");

/** "mmdit_block x2 -> x12", "linear", "text_layer -> text_layer x2" */
function kinds(a: ModuleSide | undefined, b: ModuleSide | undefined): string {
  const ka = kindOf(a);
  const kb = kindOf(b);
  if (ka === kb) return ka;
  if (a && b && a.kind === b.kind) return `${ka} -> x${b.count}`;
  return `${ka} -> ${kb}`;
}

function fmtSetting(v: unknown): string {
  if (v === undefined) return "-";
  if (typeof v === "string") return v;
  return JSON.stringify(v);
}

function table(head: string[], rows: string[][], right: boolean[]): string[] {
  const w = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (r: string[]) => r.map((x, c) => (right[c] ? x.padStart(w[c]) : x.padEnd(w[c]))).join("  ").trimEnd();
  return [line(head), "-".repeat(w.reduce((s, x) => s + x + 2, -2)), ...rows.map(line)];
}

export function formatDiff(r: DiffReport): string {
  const out: string[] = [`A: ${r.labels.a} (${r.a.name})`, `B: ${r.labels.b} (${r.b.name})`, ""];
  const mrows = r.modules.map((m) => [`${"  ".repeat(m.depth)}${m.path}`, kinds(m.a, m.b), m.a ? n(m.a.params) : "-", m.b ? n(m.b.params) : "-", change(m.a?.params, m.b?.params)]);
  out.push(...table(["module", "kind (A -> B)", "params A", "params B", "B - A"], mrows, [false, false, true, true, true]), "");
  // groups of repeated blocks: the size of each block (they differ where a flag changes one)
  const reps = r.modules.filter((m) => (m.a?.count ?? 1) > 1 || (m.b?.count ?? 1) > 1 || m.path.endsWith(".*"));
  if (reps.length) out.push(...table(["per block", "A", "B"], reps.map((m) => [m.path, each(m.a), each(m.b)]), [false, true, true]), "");
  out.push(...table(["total", "A", "B", "B - A"], r.totals.map((t) => [t.name, n(t.a), n(t.b), change(t.a, t.b)]), [false, true, true, true]), "");
  if (r.plan) {
    const rows = r.plan.map((p) => [p.name, typeof p.a === "number" ? n(p.a) : p.a, typeof p.b === "number" ? n(p.b) : p.b, typeof p.a === "number" && typeof p.b === "number" ? change(p.a, p.b) : ""]);
    out.push(...table(["training step (sdc plan)", "A", "B", "B - A"], rows, [false, true, true, true]), "");
  }
  if (r.settings.length) out.push(...table([`settings that differ (${r.settings.length})`, "A", "B"], r.settings.map((s) => [s.path, fmtSetting(s.a), fmtSetting(s.b)]), [false, true, true]));
  else out.push("settings: all the same");
  return out.join("\n");
}

export async function runDiff(argv: string[], out: (s: string) => void = (s) => process.stdout.write(s + "\n")): Promise<number> {
  const o = parseDiffArgs(argv);
  const r = await diffRun(o);
  out(o.json ? JSON.stringify(r, null, 2) : formatDiff(r));
  return EXIT.ok;
}
