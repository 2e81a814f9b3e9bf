/**
 * What changed between two compiled specs (`sdc diff A B`): parameters per module, the totals,
 * and every setting that differs. Pure: two IRs in, rows out; the CLI adds the training-step
 * cost (runtime/engines/static/plan.ts) and prints.
 */
import type { IR } from "../ir/ir.ts";

type ModuleNode = IR["modules"][number];

/** One module row: a module, or a run of indexed siblings (transformer_blocks.0..11) as one group. */
export interface ModuleSide {
  kind: string;
  params: number;
  /** instances in the group (1 for a plain module) */
  count: number;
  /** the group's instance sizes, largest run first: [[11, 5319936], [1, 3399168]] */
  each: [count: number, params: number][];
}

export interface ModuleRow {
  /** display path: "(network)", "pos_embed", "transformer_blocks.*", "text_encoder", "layers.*" */
  path: string;
  depth: number;
  a?: ModuleSide;
  b?: ModuleSide;
}

export interface SettingRow {
  /** dotted path in the IR: train.optimizer.lr, spec.params.depth, flow.steps */
  path: string;
  a: unknown;
  b: unknown;
}

export interface IrDiff {
  a: { name: string; variant: string | null };
  b: { name: string; variant: string | null };
  modules: ModuleRow[];
  totals: { name: string; a: number; b: number }[];
  settings: SettingRow[];
}

/** Children grouped: `x.N` siblings of one base become `x.*`. */
function groups(m: ModuleNode): Map<string, ModuleNode[]> {
  const out = new Map<string, ModuleNode[]>();
  const strip = (p: string) => (m.path && p.startsWith(m.path + ".") ? p.slice(m.path.length + 1) : p);
  for (const k of m.children) {
    const rel = strip(k.path);
    const key = /\.\d+$/.test(rel) ? rel.replace(/\.\d+$/, ".*") : rel;
    out.set(key, [...(out.get(key) ?? []), k]);
  }
  return out;
}

function side(ms: ModuleNode[]): ModuleSide {
  const runs = new Map<number, number>();
  for (const m of ms) runs.set(m.params, (runs.get(m.params) ?? 0) + 1);
  const kinds = [...new Set(ms.map((m) => m.kind))];
  return {
    kind: kinds.join("|"),
    params: ms.reduce((s, m) => s + m.params, 0),
    count: ms.length,
    each: [...runs].map(([p, c]) => [c, p] as [number, number]).sort((x, y) => y[0] - x[0] || y[1] - x[1]),
  };
}

const topName = (m: ModuleNode) => m.path || "(network)";

/** Module rows to `depth` levels below the top modules (network, text encoder). */
export function diffModules(a: IR, b: IR, depth = 1): ModuleRow[] {
  const rows: ModuleRow[] = [];
  const walk = (ma: ModuleNode[] | undefined, mb: ModuleNode[] | undefined, path: string, level: number) => {
    rows.push({ path, depth: level, a: ma && side(ma), b: mb && side(mb) });
    if (level >= depth) return;
    // children of single modules only (a group's members may differ inside)
    const ga = ma?.length === 1 ? groups(ma[0]) : new Map<string, ModuleNode[]>();
    const gb = mb?.length === 1 ? groups(mb[0]) : new Map<string, ModuleNode[]>();
    for (const key of union([...ga.keys()], [...gb.keys()])) walk(ga.get(key), gb.get(key), key, level + 1);
  };
  const ta = new Map(a.modules.map((m) => [topName(m), m]));
  const tb = new Map(b.modules.map((m) => [topName(m), m]));
  for (const key of union([...ta.keys()], [...tb.keys()])) {
    const x = ta.get(key);
    const y = tb.get(key);
    walk(x && [x], y && [y], key, 0);
  }
  return rows;
}

/** Keys of `a` in order, then those only in `b`. */
function union(a: string[], b: string[]): string[] {
  return [...a, ...b.filter((k) => !a.includes(k))];
}

/** The IR's settings as dotted paths (spec parameters, data, text, network arguments, flow, train). */
export function flattenSettings(ir: IR): Map<string, unknown> {
  const out = new Map<string, unknown>();
  const put = (prefix: string, v: unknown) => {
    if (v !== null && typeof v === "object" && !Array.isArray(v)) {
      for (const [k, x] of Object.entries(v)) put(prefix ? `${prefix}.${k}` : k, x);
    } else out.set(prefix, v);
  };
  put("spec.params", ir.spec.params);
  put("task", ir.task);
  put("data", ir.data);
  const { words, ...text } = ir.text as { words?: string[] } & Record<string, unknown>;
  put("text", text);
  if (words) out.set("text.words", words.length);
  put("network.block", ir.network.block);
  put("network.args", ir.network.args);
  ir.network.inputs.forEach((s) => out.set(`network.inputs.${s.name}`, `${s.dtype === "int32" ? "int32" : ""}[${s.shape.join(", ")}]`));
  put("flow", ir.flow);
  put("train", ir.train);
  return out;
}

const same = (x: unknown, y: unknown) => JSON.stringify(x) === JSON.stringify(y);

export function diffSettings(a: IR, b: IR): SettingRow[] {
  const fa = flattenSettings(a);
  const fb = flattenSettings(b);
  return union([...fa.keys()], [...fb.keys()])
    .filter((k) => !same(fa.get(k), fb.get(k)))
    .map((path) => ({ path, a: fa.get(path), b: fb.get(path) }));
}

export function diffIr(a: IR, b: IR, opts: { depth?: number } = {}): IrDiff {
  const s = (ir: IR) => ir.stats;
  return {
    a: { name: a.spec.name, variant: a.spec.variant },
    b: { name: b.spec.name, variant: b.spec.variant },
    modules: diffModules(a, b, opts.depth ?? 1),
    totals: [
      { name: "parameters", a: s(a).params, b: s(b).params },
      { name: "network", a: s(a).networkParams, b: s(b).networkParams },
      { name: "text encoder", a: s(a).textParams, b: s(b).textParams },
      { name: "fixed buffers", a: s(a).buffers, b: s(b).buffers },
      { name: "largest activation (values per sample)", a: s(a).maxActivation, b: s(b).maxActivation },
    ],
    settings: diffSettings(a, b),
  };
}
