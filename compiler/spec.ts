/**
 * Phase 5: a spec (with a variant and --set overrides) -> IR. Evaluates the spec's parameters,
 * its sections (data, text, flow, train), elaborates the text encoder and the network
 * concretely, and checks that they fit together.
 */
import type * as A from "./ast.ts";
import { Abort, Checker, exprText, listParam, suggest, type ValueObserver } from "./check/index.ts";
import { type Diagnostic, DiagnosticError, diag, fail, type Span } from "./diagnostics.ts";
import type { ArgValue, DataIR, Density, FlowIR, InputSource, IR, ModuleNode, OptimizerIR, ParamValue, TextIR, TrainIR } from "../ir/ir.ts";
import { DEFAULT_INPUT_SOURCES, INPUT_SOURCES, IR_VERSION } from "../ir/ir.ts";
import type { Program } from "./program.ts";
import { type Dim, dimToString, listType, shapeToString, typeName, type Value, valueToString } from "./values.ts";

export interface SpecOptions {
  variant?: string;
  /** `--set name=value`: parsed expressions by parameter name or `section.key` */
  sets?: { name: string; value: A.Expr }[];
  /** sees every expression the elaboration evaluates (the language server's hover) */
  observe?: ValueObserver;
}

export interface SpecResult {
  ir?: IR;
  diagnostics: Diagnostic[];
  checker: Checker;
}

/** Prompt words of the embedded MNIST data: numerals and English number words. */
export const DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];
export const DIGIT_PROMPT_WORDS = [...Array.from({ length: 10 }, (_, i) => String(i)), ...DIGIT_WORDS];

type SettingKind = "int" | "float" | "bool" | "string" | "enum" | "raw";
export interface SettingSpec {
  kind: SettingKind;
  values?: string[];
  min?: number;
  max?: number;
  doc: string;
  /** the default, for settings whose default is not in DEFAULT_FLOW / DEFAULT_TRAIN (docs/settings.md) */
  dflt?: string;
}

export const SECTIONS: Record<string, Record<string, SettingSpec>> = {
  task: {
    kind: { kind: "enum", values: ["diffusion", "classifier"], doc: "a diffusion model (default) or an image classifier", dflt: "diffusion" },
    classes: { kind: "int", min: 2, max: 100000, doc: "classifier: number of classes", dflt: "10" },
  },
  data: {
    source: { kind: "enum", values: ["mnist", "folder", "latents"], doc: "embedded MNIST, a folder of PNGs with captions.jsonl, or a latent tensor dataset (.safetensors: `latents` [N, H, W, C], `labels` [N])", dflt: "mnist" },
    path: { kind: "string", doc: "folder source: its directory; latents: the .safetensors file (relative to the working directory)", dflt: "(none)" },
    image: { kind: "raw", doc: "[height, width, channels] (MNIST and folders: 1 or 3 channels; latents: any)", dflt: "[32, 32, 1]" },
    prompts: { kind: "enum", values: ["digits", "captions"], doc: "MNIST labels as numerals or words, or the folder's captions", dflt: "digits (mnist), captions (folder)" },
  },
  text: {
    encoder: { kind: "raw", doc: "a block call (learned, trained jointly) or sd3_pretrained(clip_l:, clip_g:, t5:)", dflt: "(required)" },
    tokens: { kind: "int", min: 1, max: 4096, doc: "tokens per prompt", dflt: "8" },
    vocab: { kind: "int", min: 3, max: 1 << 20, doc: "tokenizer vocabulary size (learned encoder; an encoder called with `vocab:` must have the same)", dflt: "32" },
    width: { kind: "int", min: 1, doc: "context width (pretrained encoders)", dflt: "2048" },
    pooled: { kind: "int", min: 1, doc: "pooled width (pretrained encoders)", dflt: "2048" },
  },
  flow: {
    path: { kind: "enum", values: ["linear"], doc: "interpolation between data and noise" },
    noise_at: { kind: "int", min: 0, max: 1, doc: "which end of t is noise: 0 (reference: t=1 data) or 1 (SD3 paper)" },
    predict: { kind: "enum", values: ["velocity", "data"], doc: "what the network returns: the velocity, or the clean image (x-prediction, JiT), turned into the velocity (x0_hat - x_t) / max(sigma, sigma_floor) for the loss and the samplers", dflt: "velocity" },
    sigma_floor: { kind: "float", min: 1e-6, max: 1, doc: "predict data: the least noise level the velocity divides by", dflt: "0.05" },
    density: { kind: "raw", doc: "training t density: uniform, uniform_clipped(eps), logit_normal(m, s), mode(s), cosmap", dflt: "uniform_clipped(1e-3)" },
    loss: { kind: "enum", values: ["mse"], doc: "loss" },
    weighting: { kind: "enum", values: ["none", "x0", "eps", "snr_clip"], doc: "loss weighting" },
    cfg_drop: { kind: "float", min: 0, max: 1, doc: "probability of training with the empty prompt" },
    sampler: { kind: "enum", values: ["euler", "heun"], doc: "ODE sampler" },
    steps: { kind: "int", min: 1, max: 100000, doc: "sampling steps" },
    shift: { kind: "float", min: 1e-6, max: 1e6, doc: "timestep shift (1 = none)" },
    guidance: { kind: "float", min: 0, max: 1000, doc: "classifier-free guidance scale for samples" },
    guidance_interval: { kind: "raw", doc: "[lo, hi]: the noise levels sigma (1 = noise, 0 = data) where guidance applies; outside, the conditional velocity alone (Kynkäänniemi et al. 2024)", dflt: "[0, 1] (every step)" },
    output: { kind: "enum", values: ["velocity", "velocity_variance"], doc: "what the network returns: the velocity, or the velocity and as many learned-variance channels (DiT's learn_sigma: twice the image channels; the loss and samplers use the first half)", dflt: "velocity" },
  },
  train: {
    optimizer: { kind: "raw", doc: "adam(lr: ...) or adamw(lr: ..., weight_decay: ...); lr in (0, 10], beta1 and beta2 in [0, 1), eps in (0, 1], weight_decay >= 0" },
    clip: { kind: "float", min: 0, doc: "global gradient-norm clip (0 = off)" },
    batch: { kind: "int", min: 1, max: 1 << 16, doc: "batch size" },
    steps: { kind: "int", min: 1, max: 1e9, doc: "training steps" },
    ema: { kind: "float", min: 0, max: 0.999999, doc: "EMA decay (0 = off)" },
    sample_every: { kind: "int", min: 0, doc: "steps between sample grids (0 = only at the end)" },
    checkpoint_every: { kind: "int", min: 0, doc: "steps between checkpoints (0 = only at the end)" },
    log_every: { kind: "int", min: 1, doc: "steps between metric lines" },
    samples: { kind: "int", min: 1, max: 1024, doc: "images per sample grid" },
    seed: { kind: "int", min: 0, doc: "random seed" },
    warmup: { kind: "int", min: 0, doc: "learning-rate warmup steps" },
    lr_schedule: { kind: "enum", values: ["constant", "linear", "cosine"], doc: "learning rate after the warmup: constant, or linear or cosine decay to 0 at the last step" },
    accumulate: { kind: "int", min: 1, max: 1024, doc: "gradient accumulation: each step's batch runs as this many micro-batches, their gradients summed before one optimizer step (the same update, less memory; must divide batch)" },
    keep_checkpoints: { kind: "int", min: 0, doc: "checkpoints to keep: the last N (0 = all)" },
    keep_best: { kind: "bool", doc: "also keep the checkpoint with the lowest validation loss (checkpoints/best)" },
    precision: { kind: "enum", values: ["fp32", "fp16", "bf16"], doc: "training precision: fp32, or bf16 mixed precision (GEMM operands rounded to bf16, fp32 accumulation, as torch.autocast; the static engine on native CPU kernels only); fp16 is refused" },
  },
};

/** What each source of `inputs { NAME: SOURCE }` feeds a network input with (docs/settings.md). */
export const INPUT_SOURCE_DOCS: Record<InputSource, { shape: string; doc: string }> = {
  image: { shape: "float32 [B, H, W, C]", doc: "the noisy image (or latent) x_t, as data.image" },
  timestep: { shape: "float32 [B]", doc: "the network time t (flow.noise_at says which end is noise)" },
  context: { shape: "float32 [B, T, D]", doc: "the text encoder's token features" },
  context_mask: { shape: "float32 [B, T]", doc: "1 for each prompt token, 0 for padding (the learned encoder's tokenizer); for attention(..., mask:)" },
  pooled: { shape: "float32 [B, P]", doc: "the text encoder's pooled vector" },
  label: { shape: "int32 [B]", doc: "the class of a digit prompt (data.prompts digits: 0..9); the null class 10 for the empty prompt (flow.cfg_drop and the unconditional half of CFG): embed it with `embedding(y, classes + 1, width)`" },
};

/** A section's settings by name, own entries only (`constructor` is not a section). */
function sectionSpec(name: string): Record<string, SettingSpec> | undefined {
  return Object.hasOwn(SECTIONS, name) ? SECTIONS[name] : undefined;
}

/** One setting of a section, own entries only. */
function settingSpec(sec: string, key: string): SettingSpec | undefined {
  const s = sectionSpec(sec);
  return s && Object.hasOwn(s, key) ? s[key] : undefined;
}

/** A record for names from a spec: no prototype, so `__proto__` or `constructor` are plain keys. */
function nameRecord<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}

export const DEFAULT_FLOW: FlowIR = { noiseAt: 0, path: "linear", predict: "velocity", density: { kind: "uniform_clipped", eps: 1e-3 }, loss: "mse", weighting: "none", cfgDrop: 0.2, sampler: "euler", steps: 50, shift: 1, guidance: 4 };
/** Defaults of the train settings that the IR holds only when a spec sets them. */
export const TRAIN_OPTIONAL_DEFAULTS = { lrSchedule: "constant", accumulate: 1, keepCheckpoints: 0, keepBest: false, precision: "fp32" } as const;
export const DEFAULT_TRAIN: TrainIR = { optimizer: { kind: "adam", lr: 2e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 }, clip: 1, batch: 64, steps: 20000, ema: 0, sampleEvery: 1000, checkpointEvery: 1000, logEvery: 10, samples: 64, seed: 0, warmup: 0 };

export function findSpec(prog: Program, name?: string): A.SpecDecl | Diagnostic {
  const main = prog.files.get(prog.entry);
  const specs = main?.specs ?? [];
  const at: Span = { file: prog.entry, start: { offset: 0, line: 1, column: 1 }, end: { offset: 1, line: 1, column: 2 } };
  if (!specs.length) return diag("SDC305", at, `no \`spec\` in ${prog.entry}: declare \`spec NAME { network: ... }\``);
  if (name) return specs.find((s) => s.name === name) ?? diag("SDC305", at, `no spec '${name}' in ${prog.entry}${suggest(name, specs.map((s) => s.name))}`);
  return specs[0];
}

/** What the phases of evaluateSpec share: the spec, its evaluated constants, its sections and the diagnostics so far. */
interface SpecContext {
  prog: Program;
  spec: A.SpecDecl;
  checker: Checker;
  diagnostics: Diagnostic[];
  /** the spec's parameters and lets, evaluated */
  values: Map<string, Value>;
  /** settings set outside their section: the variant's `section.key = value`, then `--set section.key=value` */
  settingSets: Map<string, A.Expr>;
  /** the spec's settings by section and key (`inputs` apart) */
  sections: Map<string, Map<string, A.Setting>>;
}

/** The spec's parameters after the variant and --set: their values and which were overridden. */
interface SpecParams {
  variant?: A.VariantDecl;
  overrides: Record<string, ParamValue>;
}

/** The text encoder as the network sees it: its IR, its outputs (context, pooled) and its module. */
interface TextPart {
  text: TextIR;
  textOut: [Value, Value];
  modules: ModuleNode[];
}

/** `inputs { NAME: SOURCE }`: which source feeds each of the network's forward inputs. */
type Bindings = Map<string, { source: InputSource; span: Span; keySpan: Span }>;

/** The sections' settings as the network is checked against them. */
interface Settled {
  params: SpecParams;
  data: DataIR;
  flow: FlowIR;
  train: TrainIR;
  taskKind: "diffusion" | "classifier";
  classes: number;
  inputsDecl?: A.Section;
  bound: Bindings;
}

export function evaluateSpec(prog: Program, spec: A.SpecDecl, opts: SpecOptions = {}): SpecResult {
  const checker = new Checker(prog.blocks);
  checker.observe = opts.observe;
  const ctx: SpecContext = { prog, spec, checker, diagnostics: checker.diagnostics, values: new Map(), settingSets: new Map(), sections: new Map() };
  const refused: SpecResult = { diagnostics: ctx.diagnostics, checker };
  const params = specParams(ctx, opts);
  if (!params || ctx.diagnostics.length) return refused;
  const inputsDecl = readSections(ctx);
  const settings = new Settings(ctx);
  const data = dataSection(ctx, settings);
  const flow = flowSection(ctx, settings);
  const train = trainSection(ctx, settings);
  const taskKind = settings.word("task", "kind", "diffusion") as "diffusion" | "classifier";
  const classes = taskKind === "classifier" ? settings.num("task", "classes", 10) : 0;
  const bound = inputBindings(ctx, taskKind, inputsDecl);
  const text = textSection(ctx, settings, { params, data, flow, train, taskKind, classes, inputsDecl, bound });
  if (!text) return refused;
  const ir = networkPhase(ctx, { params, data, flow, train, taskKind, classes, inputsDecl, bound }, text);
  return ir ? { ir, diagnostics: ctx.diagnostics, checker } : refused;
}

/** Run a phase, collecting its diagnostic (an Abort inside an elaboration is already reported). */
function attempt<T>(ctx: SpecContext, f: () => T): T | undefined {
  try {
    return f();
  } catch (e) {
    if (e instanceof Abort) return undefined;
    ctx.checker.collect(e);
    return undefined;
  }
}

// ------------------------------------------------------------ parameters, variant, --set

/** The spec's parameters, lets and requires, after the variant and --set. Undefined: no such variant. */
function specParams(ctx: SpecContext, opts: SpecOptions): SpecParams | undefined {
  const { spec, checker, diagnostics, values } = ctx;
  const paramDecl = new Map(spec.params.map((p) => [p.name, p]));
  const seen = new Set<string>();
  for (const p of [...spec.params, ...spec.lets.map((l) => ({ name: l.name, nameSpan: l.nameSpan }))]) {
    if (seen.has(p.name)) diagnostics.push(diag("SDC301", p.nameSpan, `'${p.name}' is defined twice in spec ${spec.name}`));
    seen.add(p.name);
  }
  const overrideExpr = new Map<string, A.Expr>();
  const variant = opts.variant ? variantOverrides(ctx, opts.variant, paramDecl, overrideExpr) : undefined;
  if (opts.variant && !variant) return undefined;
  setOverrides(ctx, opts.sets ?? [], paramDecl, overrideExpr);
  const overrides = nameRecord<ParamValue>();
  for (const p of spec.params) attempt(ctx, () => evalParam(ctx, p, overrideExpr.get(p.name), overrides));
  for (const l of spec.lets) attempt(ctx, () => values.set(l.name, checker.evalConst(l.value, values)));
  for (const r of spec.requires) {
    attempt(ctx, () => {
      const c = checker.evalConst(r.cond, values);
      if (c.t !== "bool") fail("SDC401", r.cond.span, "`require` needs a bool condition");
      if (c.v === false) fail("SDC600", r.span, `constraint failed: ${r.message ?? exprText(r.cond)} (${exprText(r.cond)})`);
    });
  }
  return { variant, overrides };
}

/** The variant's parameter values, added to `overrideExpr`; undefined (and SDC306) when the spec has no such variant. */
function variantOverrides(ctx: SpecContext, name: string, paramDecl: Map<string, A.ParamDecl>, overrideExpr: Map<string, A.Expr>): A.VariantDecl | undefined {
  const { spec, diagnostics } = ctx;
  const variant = spec.variants.find((v) => v.name === name);
  if (!variant) {
    const names = spec.variants.map((v) => v.name);
    diagnostics.push(diag("SDC306", spec.nameSpan, `spec ${spec.name} has no variant '${name}'${suggest(name, names)}; variants: ${names.join(", ") || "(none)"}`));
    return undefined;
  }
  for (const o of variant.overrides) {
    if (o.name.includes(".")) variantSetting(ctx, variant.name, o);
    else if (!paramDecl.has(o.name)) diagnostics.push(diag("SDC308", o.nameSpan, `variant ${variant.name} sets '${o.name}', which is not a \`param\` of spec ${spec.name}${suggest(o.name, paramDecl.keys())}`));
    else overrideExpr.set(o.name, o.value);
  }
  return variant;
}

/** A variant's `section.key = value`: the setting as `--set section.key=value` would set it (--set, applied after, wins). */
function variantSetting(ctx: SpecContext, variant: string, o: A.Override) {
  const [sec, key] = o.name.split(".", 2);
  if (settingSpec(sec, key)) ctx.settingSets.set(o.name, o.value);
  else ctx.diagnostics.push(diag("SDC700", o.nameSpan, `variant ${variant} sets '${o.name}': no setting '${key}' in section '${sec}'${suggest(o.name, allSettingNames())}`));
}

/** Every `section.key` a spec may set. */
function allSettingNames(): string[] {
  return Object.entries(SECTIONS).flatMap(([n, ks]) => Object.keys(ks).map((k) => `${n}.${k}`));
}

/** `--set name=value` (a parameter) and `--set section.key=value` (a setting). */
function setOverrides(ctx: SpecContext, sets: { name: string; value: A.Expr }[], paramDecl: Map<string, A.ParamDecl>, overrideExpr: Map<string, A.Expr>) {
  const { spec, diagnostics } = ctx;
  for (const s of sets) {
    if (s.name.includes(".")) {
      const [sec, key] = s.name.split(".", 2);
      if (!settingSpec(sec, key)) diagnostics.push(diag("SDC700", s.value.span, `--set ${s.name}: no setting '${key}' in section '${sec}'${suggest(s.name, allSettingNames())}`));
      else ctx.settingSets.set(s.name, s.value);
    } else if (!paramDecl.has(s.name)) diagnostics.push(diag("SDC308", s.value.span, `--set ${s.name}: spec ${spec.name} has no parameter '${s.name}'${suggest(s.name, paramDecl.keys())}; parameters: ${[...paramDecl.keys()].join(", ")}`));
    else overrideExpr.set(s.name, s.value);
  }
}

/** One spec parameter: its override or default, of its declared (or default's) type. */
function evalParam(ctx: SpecContext, p: A.ParamDecl, o: A.Expr | undefined, overrides: Record<string, ParamValue>) {
  const { checker, values } = ctx;
  const expr = o ?? p.default;
  if (!expr) fail("SDC402", p.span, `spec parameter '${p.name}' needs a value: \`param ${p.name} = ...\``);
  let v = checker.evalConst(expr, values);
  const want = p.type ?? (p.default ? (listType(checker.evalConst(p.default, values)) ?? checker.evalConst(p.default, values).t) : (listType(v) ?? v.t));
  if (want === "int[]" || want === "float[]") v = listParam(want, v, `parameter '${p.name}'`, expr.span);
  if (want === "float" && v.t === "int") v = { t: "float", v: v.v };
  if (v.t !== want && listType(v) !== want) fail("SDC401", expr.span, `parameter '${p.name}' is ${want}, got ${typeName(v)} ${valueToString(v)}`);
  values.set(p.name, v);
  if (o) overrides[p.name] = plain(v);
}

// ------------------------------------------------------------ sections

/** The spec's sections by name and key, unknown and repeated ones refused. Returns the `inputs` section. */
function readSections(ctx: SpecContext): A.Section | undefined {
  const { spec, diagnostics, sections } = ctx;
  const inputsSection = spec.sections.filter((s) => s.name === "inputs");
  if (inputsSection.length > 1) diagnostics.push(diag("SDC301", inputsSection[1].nameSpan, "section 'inputs' appears twice"));
  for (const s of spec.sections) {
    if (s.name === "inputs") continue;
    if (!sectionSpec(s.name)) {
      diagnostics.push(diag("SDC700", s.nameSpan, `unknown section '${s.name}'${suggest(s.name, [...Object.keys(SECTIONS), "inputs"])}; sections: ${[...Object.keys(SECTIONS), "inputs"].join(", ")}`));
      continue;
    }
    if (sections.has(s.name)) diagnostics.push(diag("SDC301", s.nameSpan, `section '${s.name}' appears twice`));
    const m = new Map<string, A.Setting>();
    for (const st of s.settings) {
      if (!settingSpec(s.name, st.key)) diagnostics.push(diag("SDC700", st.keySpan, `unknown setting '${st.key}' in ${s.name}${suggest(st.key, Object.keys(SECTIONS[s.name]))}; settings: ${Object.keys(SECTIONS[s.name]).join(", ")}`));
      else if (m.has(st.key)) diagnostics.push(diag("SDC301", st.keySpan, `setting '${st.key}' appears twice in ${s.name}`));
      else m.set(st.key, st);
    }
    sections.set(s.name, m);
  }
  return inputsSection[0];
}

/** The settings' values: --set first, then the spec's sections; each checked against its SettingSpec. */
class Settings {
  constructor(private ctx: SpecContext) {}

  get(sec: string, key: string): A.Expr | undefined {
    return this.ctx.settingSets.get(`${sec}.${key}`) ?? this.ctx.sections.get(sec)?.get(key)?.value;
  }

  scalar(sec: string, key: string): Value | undefined {
    const e = this.get(sec, key);
    if (!e) return undefined;
    const spec = settingSpec(sec, key)!;
    const v = this.ctx.checker.evalConst(e, this.ctx.values, spec.kind === "enum");
    checkSettingKind(sec, key, spec, v, e.span);
    if ((spec.min !== undefined || spec.max !== undefined) && typeof (v as { v: unknown }).v === "number") {
      const n = (v as { v: number }).v;
      if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)) fail("SDC702", e.span, `${sec}.${key} = ${n} is out of range [${spec.min ?? "-inf"}, ${spec.max ?? "inf"}]`);
    }
    return v;
  }

  num(sec: string, key: string, dflt: number): number {
    return attempt(this.ctx, () => (this.scalar(sec, key) as { v: number } | undefined)?.v) ?? dflt;
  }

  word(sec: string, key: string, dflt: string): string {
    return attempt(this.ctx, () => (this.scalar(sec, key) as { v: string } | undefined)?.v) ?? dflt;
  }
}

function checkSettingKind(sec: string, key: string, spec: SettingSpec, v: Value, span: Span) {
  const bad = (what: string) => fail("SDC702", span, `${sec}.${key} must be ${what}, got ${typeName(v)} ${valueToString(v)}`);
  switch (spec.kind) {
    case "int":
      if (v.t !== "int" || typeof v.v !== "number") bad("an integer");
      break;
    case "float":
      if ((v.t !== "int" && v.t !== "float") || typeof v.v !== "number") bad("a number");
      break;
    case "bool":
      if (v.t !== "bool") bad("true or false");
      break;
    case "string":
      if (v.t !== "string") bad("a string");
      break;
    case "enum":
      if ((v.t !== "symbol" && v.t !== "string") || !spec.values!.includes(v.v)) bad(`one of ${spec.values!.join(", ")}`);
      break;
  }
}

function dataSection(ctx: SpecContext, s: Settings): DataIR {
  const data: DataIR = { source: s.word("data", "source", "mnist") as DataIR["source"], path: null, height: 32, width: 32, channels: 1, prompts: "digits" };
  attempt(ctx, () => {
    const p = s.scalar("data", "path");
    if (p) data.path = (p as { v: string }).v;
    if (data.source === "folder" && !data.path) fail("SDC701", ctx.spec.nameSpan, "data.source folder needs data.path: the directory with the PNGs and captions.jsonl");
    if (data.source === "latents" && !data.path) fail("SDC701", ctx.spec.nameSpan, "data.source latents needs data.path: a .safetensors file with `latents` [N, H, W, C] and `labels` [N]");
    data.prompts = s.word("data", "prompts", data.source === "folder" ? "captions" : "digits") as DataIR["prompts"];
    if (data.source === "latents" && data.prompts !== "digits") fail("SDC702", s.get("data", "prompts")!.span, "latent datasets are prompted by their digit labels: `prompts: digits`");
    if (data.prompts === "digits" && s.word("task", "kind", "diffusion") === "diffusion") data.classes = 10;
    if (data.source === "mnist" && data.prompts !== "digits") fail("SDC702", s.get("data", "prompts")!.span, "MNIST prompts are `digits`");
    const img = s.get("data", "image");
    if (img) dataImage(ctx, data, img);
  });
  return data;
}

/** data.image: [height, width, channels], within the sources' and the engines' limits. */
function dataImage(ctx: SpecContext, data: DataIR, img: A.Expr) {
  const v = ctx.checker.evalConst(img, ctx.values);
  if (v.t !== "list" || v.items.length !== 3 || !v.items.every((x) => x.t === "int" && typeof x.v === "number" && x.v > 0)) fail("SDC702", img.span, `data.image must be [height, width, channels] with positive integers, got ${valueToString(v)}`);
  [data.height, data.width, data.channels] = v.items.map((x) => (x as { v: number }).v);
  if (data.source !== "latents" && data.channels !== 1 && data.channels !== 3) fail("SDC702", img.span, `data.image: ${data.source} images have 1 or 3 channels, got ${data.channels} (a latent dataset, data.source: latents, may have any number)`);
  if (data.channels > 1024) fail("SDC702", img.span, `data.image: at most 1024 channels, got ${data.channels}`);
  if (data.height > 4096 || data.width > 4096) fail("SDC602", img.span, `data.image ${data.height}x${data.width} is larger than 4096x4096`);
}

function flowSection(ctx: SpecContext, s: Settings): FlowIR {
  const flow: FlowIR = { ...DEFAULT_FLOW };
  flow.noiseAt = s.num("flow", "noise_at", flow.noiseAt) as 0 | 1;
  flow.path = s.word("flow", "path", flow.path) as "linear";
  flow.predict = s.word("flow", "predict", flow.predict) as FlowIR["predict"];
  attempt(ctx, () => {
    const e = s.get("flow", "sigma_floor");
    if (!e) return;
    flow.sigmaFloor = s.num("flow", "sigma_floor", 0.05);
    if (flow.predict !== "data") fail("SDC702", e.span, `flow.sigma_floor applies only with predict: data (the network predicts ${flow.predict})`);
  });
  flow.loss = s.word("flow", "loss", flow.loss) as "mse";
  flow.weighting = s.word("flow", "weighting", flow.weighting) as FlowIR["weighting"];
  flow.cfgDrop = s.num("flow", "cfg_drop", flow.cfgDrop);
  flow.sampler = s.word("flow", "sampler", flow.sampler) as FlowIR["sampler"];
  flow.steps = s.num("flow", "steps", flow.steps);
  flow.shift = s.num("flow", "shift", flow.shift);
  flow.guidance = s.num("flow", "guidance", flow.guidance);
  attempt(ctx, () => guidanceInterval(ctx, s, flow));
  if (s.get("flow", "output")) flow.output = s.word("flow", "output", "velocity") as FlowIR["output"];
  attempt(ctx, () => {
    const d = s.get("flow", "density");
    if (d) flow.density = density(ctx.checker, d, ctx.values);
  });
  return flow;
}

/** flow.guidance_interval: [lo, hi] within [0, 1], the noise levels where guidance applies. */
function guidanceInterval(ctx: SpecContext, s: Settings, flow: FlowIR) {
  const e = s.get("flow", "guidance_interval");
  if (!e) return;
  const v = ctx.checker.evalConst(e, ctx.values);
  const ok = v.t === "list" && v.items.length === 2 && v.items.every((x) => (x.t === "int" || x.t === "float") && typeof x.v === "number" && x.v >= 0 && x.v <= 1);
  const iv = ok ? (v.items.map((x) => (x as { v: number }).v) as [number, number]) : null;
  if (!iv || iv[0] > iv[1]) fail("SDC702", e.span, `flow.guidance_interval must be [lo, hi] with 0 <= lo <= hi <= 1 (noise levels sigma: 1 = noise, 0 = data), got ${valueToString(v)}`);
  flow.guidanceInterval = iv!;
}

function trainSection(ctx: SpecContext, s: Settings): TrainIR {
  const train: TrainIR = { ...DEFAULT_TRAIN, optimizer: { ...DEFAULT_TRAIN.optimizer } };
  train.clip = s.num("train", "clip", train.clip);
  train.batch = s.num("train", "batch", train.batch);
  train.steps = s.num("train", "steps", train.steps);
  train.ema = s.num("train", "ema", train.ema);
  train.sampleEvery = s.num("train", "sample_every", train.sampleEvery);
  train.checkpointEvery = s.num("train", "checkpoint_every", train.checkpointEvery);
  train.logEvery = s.num("train", "log_every", train.logEvery);
  train.samples = s.num("train", "samples", train.samples);
  train.seed = s.num("train", "seed", train.seed);
  train.warmup = s.num("train", "warmup", train.warmup);
  attempt(ctx, () => trainOptional(s, train));
  attempt(ctx, () => {
    const o = s.get("train", "optimizer");
    if (o) train.optimizer = optimizer(ctx.checker, o, ctx.values);
  });
  return train;
}

/** Optional settings: in the IR only when the spec sets them (the defaults are in TRAIN_OPTIONAL_DEFAULTS). */
function trainOptional(s: Settings, train: TrainIR) {
  if (s.get("train", "lr_schedule")) train.lrSchedule = s.word("train", "lr_schedule", "constant") as TrainIR["lrSchedule"];
  if (s.get("train", "keep_checkpoints")) train.keepCheckpoints = s.num("train", "keep_checkpoints", 0);
  if (s.get("train", "keep_best")) train.keepBest = (s.scalar("train", "keep_best") as { v: boolean } | undefined)?.v ?? false;
  const acc = s.get("train", "accumulate");
  if (acc) {
    train.accumulate = s.num("train", "accumulate", 1);
    if (train.batch % train.accumulate !== 0) fail("SDC702", acc.span, `train.accumulate = ${train.accumulate} does not divide train.batch = ${train.batch}: each step's batch is split into that many equal micro-batches`);
  }
  const prec = s.get("train", "precision");
  if (prec) {
    const p = s.word("train", "precision", "fp32");
    if (p !== "fp32" && p !== "bf16") fail("SDC702", prec.span, `train.precision ${p} is not supported: sdc trains in fp32, or in bf16 mixed precision on the static engine's native CPU kernels; use precision: fp32 or bf16, or leave it out`);
    train.precision = p;
  }
}

/** `inputs { NAME: SOURCE }`: forward parameter name -> source. */
function inputBindings(ctx: SpecContext, taskKind: string, inputsDecl: A.Section | undefined): Bindings {
  const bound: Bindings = new Map();
  if (!inputsDecl) return bound;
  if (taskKind === "classifier") ctx.diagnostics.push(diag("SDC700", inputsDecl.nameSpan, "a classifier spec takes the image only: remove the `inputs` section"));
  for (const st of inputsDecl.settings) {
    attempt(ctx, () => {
      if (bound.has(st.key)) fail("SDC301", st.keySpan, `input '${st.key}' is bound twice in inputs`);
      const v = ctx.checker.evalConst(st.value, ctx.values, true);
      const name = v.t === "symbol" || v.t === "string" ? v.v : undefined;
      if (!name || !(INPUT_SOURCES as readonly string[]).includes(name)) fail("SDC702", st.value.span, `inputs.${st.key} must be one of ${INPUT_SOURCES.join(", ")}, got ${valueToString(v)}${name ? suggest(name, INPUT_SOURCES) : ""}`);
      bound.set(st.key, { source: name as InputSource, span: st.value.span, keySpan: st.keySpan });
    });
  }
  return bound;
}

// ------------------------------------------------------------ text encoder

const TEXT_SOURCES: InputSource[] = ["context", "context_mask", "pooled"];
const NO_TEXT_OUT: () => [Value, Value] = () => [
  { t: "tensor", dtype: "float32", shape: [] },
  { t: "tensor", dtype: "float32", shape: [] },
];

/** The text encoder: none (a classifier, or no text input bound), external, pretrained, or a learned block elaborated. */
function textSection(ctx: SpecContext, s: Settings, st: Settled): TextPart | undefined {
  const usesText = st.taskKind === "diffusion" && (!st.inputsDecl || [...st.bound.values()].some((b) => TEXT_SOURCES.includes(b.source)));
  if (st.taskKind === "diffusion" && !usesText) {
    const enc = s.get("text", "encoder");
    if (enc) ctx.diagnostics.push(diag("SDC704", enc.span, "the text encoder feeds no network input: `inputs` binds no context, context_mask or pooled", "bind a text source in `inputs`, or remove the `text` section"));
    return { text: { kind: "none" }, textOut: NO_TEXT_OUT(), modules: [] };
  }
  if (st.taskKind === "classifier") return { text: { kind: "none" }, textOut: NO_TEXT_OUT(), modules: [] };
  return attempt(ctx, () => {
    const enc = s.get("text", "encoder");
    const textSpan = ctx.spec.sections.find((x) => x.name === "text")?.nameSpan ?? ctx.spec.nameSpan;
    if (!enc) fail("SDC701", textSpan, "spec needs `text { encoder: ... }`: a learned encoder block, e.g. `encoder: text_encoder(vocab: 32, tokens: 8, width: 256, depth: 2, heads: 4)`, or `sd3_pretrained(...)`");
    if (enc.kind !== "call") fail("SDC702", enc.span, "text.encoder must be a call: a block, or sd3_pretrained(...)");
    const tokens = s.num("text", "tokens", 8);
    if (enc.callee === "external") return externalText(ctx, enc);
    if (enc.callee === "sd3_pretrained") return pretrainedText(ctx, s, enc);
    return learnedText(ctx, s, enc, tokens, st.data);
  });
}

const B_DIM = (): Dim => ({ op: "var", name: "B" });

function externalText(ctx: SpecContext, enc: A.Call): TextPart {
  const a = namedArgs(ctx.checker, enc, ctx.values, { tokens: "int", width: "int", pooled: "int" });
  for (const k of ["tokens", "width", "pooled"]) if (!(a[k] as number > 0)) fail("SDC402", enc.span, `external(...) needs a positive '${k}'`);
  const text: TextIR = { kind: "external", tokens: a.tokens as number, width: a.width as number, pooled: a.pooled as number };
  const textOut: [Value, Value] = [
    { t: "tensor", dtype: "float32", shape: [B_DIM(), text.tokens, text.width] },
    { t: "tensor", dtype: "float32", shape: [B_DIM(), text.pooled] },
  ];
  return { text, textOut, modules: [] };
}

function pretrainedText(ctx: SpecContext, s: Settings, enc: A.Call): TextPart {
  const a = namedArgs(ctx.checker, enc, ctx.values, { clip_l: "string", clip_g: "string", t5: "string", t5_tokens: "int" });
  const t5Tokens = (a.t5_tokens as number | undefined) ?? 128;
  const width = s.num("text", "width", 2048);
  const pooled = s.num("text", "pooled", 2048);
  const text: TextIR = { kind: "sd3_pretrained", clipL: (a.clip_l as string) ?? null, clipG: (a.clip_g as string) ?? null, t5: (a.t5 as string) ?? null, t5Tokens, tokens: 77 + t5Tokens, width, pooled };
  const textOut: [Value, Value] = [
    { t: "tensor", dtype: "float32", shape: [B_DIM(), text.tokens, width] },
    { t: "tensor", dtype: "float32", shape: [B_DIM(), pooled] },
  ];
  return { text, textOut, modules: [] };
}

/** A learned encoder block, elaborated at `text_encoder` on the token ids [B, T] (and their mask). */
function learnedText(ctx: SpecContext, s: Settings, enc: A.Call, tokens: number, data: DataIR): TextPart {
  const { prog, checker, values } = ctx;
  const block = prog.blocks.get(enc.callee);
  if (!block) fail("SDC304", enc.calleeSpan, `unknown text encoder '${enc.callee}'${suggest(enc.callee, [...prog.blocks.keys(), "sd3_pretrained"])}`);
  const vocab = s.num("text", "vocab", 32);
  const words = data.prompts === "digits" ? DIGIT_PROMPT_WORDS : [];
  if (vocab < words.length + 2) fail("SDC702", s.get("text", "vocab")?.span ?? enc.span, `text.vocab = ${vocab} is too small for the ${words.length} prompt words plus the padding and unknown tokens (need >= ${words.length + 2})`);
  encoderVocab(ctx, s, enc, vocab);
  const root: ModuleNode = { path: "text_encoder", kind: block.name, params: 0, children: [] };
  const ids: Value = { t: "tensor", dtype: "int32", shape: [B_DIM(), tokens] };
  // an encoder whose forward takes two inputs gets the tokens' padding mask [B, T] (1 = token) second
  const withMask = block.forward?.inputs.length === 2;
  const mask: Value = { t: "tensor", dtype: "float32", shape: [B_DIM(), tokens] };
  const out = checker.elaborate({ ...enc, label: undefined }, withMask ? [ids, mask] : [ids], values, "text_encoder", root);
  if (out.t !== "tuple" || out.items.length !== 2 || out.items.some((x) => x.t !== "tensor")) {
    fail("SDC703", enc.span, `text encoder ${block.name} must return (tokens [B, T, D], pooled [B, P]), got ${typeName(out)}`);
  }
  const [seq, pooled] = out.items as Extract<Value, { t: "tensor" }>[];
  if (seq.shape.length !== 3 || pooled.shape.length !== 2) fail("SDC703", enc.span, `text encoder ${block.name} must return (tokens [B, T, D], pooled [B, P]), got (${shapeToString(seq.shape)}, ${shapeToString(pooled.shape)})`);
  root.params = checker.params.filter((p) => !p.buffer && p.name.startsWith("text_encoder.")).reduce((n, p) => n + p.count, 0);
  const text: TextIR = { kind: "learned", block: block.name, args: callArgs(checker, enc, values), tokens, vocab, width: seq.shape[2] as number, pooled: pooled.shape[1] as number, words, ...(withMask ? { mask: true } : {}) };
  return { text, textOut: [seq, pooled], modules: [root] };
}

/**
 * The tokenizer's ids (below text.vocab) index the encoder's embedding: an encoder called with
 * `vocab:` must have the same vocabulary (SDC702 at text.vocab, or at the argument if text.vocab
 * is left at its default).
 */
function encoderVocab(ctx: SpecContext, s: Settings, enc: A.Call, vocab: number) {
  const arg = enc.args.find((a) => a.name === "vocab");
  if (!arg) return;
  const v = ctx.checker.evalConst(arg.value, ctx.values);
  if (v.t !== "int" || v.v === vocab) return;
  const setting = s.get("text", "vocab");
  const where = `${arg.value.span.file}:${arg.value.span.start.line}:${arg.value.span.start.column}`;
  if (setting) fail("SDC702", setting.span, `text.vocab = ${vocab} disagrees with the encoder's vocab: ${valueToString(v)} (at ${where}): the tokenizer's ids index the encoder's embedding`, "give both the same vocabulary size");
  fail("SDC702", arg.value.span, `${enc.callee}(vocab: ${valueToString(v)}) disagrees with text.vocab, ${vocab} by default: the tokenizer's ids index the encoder's embedding`, `set \`vocab: ${valueToString(v)}\` in the text section`);
}

// ------------------------------------------------------------ network

type Tensor = Extract<Value, { t: "tensor" }>;

/** The network block elaborated on what the data and the text encoder feed it, then the IR. */
function networkPhase(ctx: SpecContext, st: Settled, text: TextPart): IR | undefined {
  const decl = networkDecl(ctx);
  if (!decl) return undefined;
  const { net, block, fwd } = decl;
  const before = ctx.diagnostics.length;
  const sources = networkSources(ctx, decl, st);
  if (!sources || ctx.diagnostics.length > before) return undefined;
  if (fwd.inputs.length !== sources.length) {
    const want = st.taskKind === "classifier" ? "1 tensor (x [B, H, W, C])" : "4 tensors (x [B, H, W, C], t [B], context [B, T, D], pooled [B, P])";
    ctx.diagnostics.push(diag("SDC703", net.span, `network ${block.name} must take ${want}; its forward takes ${fwd.inputs.length}`, st.taskKind === "diffusion" ? "or declare what feeds each input: `inputs { x: image, t: timestep, y: label }`" : undefined));
    return undefined;
  }
  const inputs: Value[] = [];
  sources.forEach((src, i) => {
    const v = sourceValue(ctx, src, st.bound.get(fwd.inputs[i].name)?.span ?? net.span, st, text);
    if (v) inputs.push(v);
  });
  if (ctx.diagnostics.length > before) return undefined;
  const { out, root, tagged } = elaborateNetwork(ctx, decl, inputs, text);
  text.modules.unshift(root);
  const wantOut = networkOutput(ctx, decl, st, out);
  if (out && !ctx.diagnostics.length) ctx.diagnostics.push(...unreached(ctx.checker, out, tagged, fwd.inputs, sources, text.text, block.name));
  if (ctx.diagnostics.length) return undefined;
  // the network's arguments must be named constants (a positional one is an error here, not a crash)
  const netArgs = attempt(ctx, () => callArgs(ctx.checker, net, ctx.values));
  if (!netArgs) return undefined;
  return buildIR(ctx, st, text, { block, fwd, netArgs, inputs, sources, wantOut, netParams: root.params });
}

function networkDecl(ctx: SpecContext): { net: A.Call; block: A.BlockDecl; fwd: A.Forward } | undefined {
  const { spec, prog, diagnostics } = ctx;
  const net = spec.network;
  if (!net) {
    diagnostics.push(diag("SDC701", spec.nameSpan, `spec ${spec.name} needs \`network: BLOCK(...)\``));
    return undefined;
  }
  const block = prog.blocks.get(net.callee);
  if (!block) {
    diagnostics.push(diag("SDC304", net.calleeSpan, `unknown block '${net.callee}'${suggest(net.callee, prog.blocks.keys())}`));
    return undefined;
  }
  const fwd = block.forward;
  if (!fwd) {
    diagnostics.push(diag("SDC703", net.span, `network ${block.name} has no forward`));
    return undefined;
  }
  return { net, block, fwd };
}

/** The source of each forward input, in order: the image (classifier), the `inputs` section, or the default four. */
function networkSources(ctx: SpecContext, { block, fwd }: { block: A.BlockDecl; fwd: A.Forward }, st: Settled): InputSource[] | undefined {
  if (st.taskKind === "classifier") return ["image"];
  if (!st.inputsDecl) return [...DEFAULT_INPUT_SOURCES];
  const { diagnostics } = ctx;
  const names = fwd.inputs.map((p) => p.name);
  for (const [key, b] of st.bound) if (!names.includes(key)) diagnostics.push(diag("SDC700", b.keySpan, `network ${block.name}'s forward has no input '${key}'${suggest(key, names)}; its inputs: ${names.join(", ")}`));
  const missing = names.filter((n) => !st.bound.has(n));
  if (missing.length) diagnostics.push(diag("SDC703", st.inputsDecl.nameSpan, `inputs binds no source to ${missing.map((n) => `'${n}'`).join(", ")} of network ${block.name}'s forward`, `add \`${missing[0]}: SOURCE\` with SOURCE one of ${INPUT_SOURCES.join(", ")}`));
  return names.map((n) => st.bound.get(n)?.source as InputSource);
}

/** What one source feeds the network with; undefined (with a diagnostic) where the spec cannot feed it. */
function sourceValue(ctx: SpecContext, src: InputSource, at: Span, st: Settled, text: TextPart): Value | undefined {
  const [ctxOut, pooledOut] = text.textOut;
  switch (src) {
    case "image":
      return { t: "tensor", dtype: "float32", shape: [B_DIM(), st.data.height, st.data.width, st.data.channels] };
    case "timestep":
      return { t: "tensor", dtype: "float32", shape: [B_DIM()] };
    case "context":
      return ctxOut;
    case "pooled":
      return pooledOut;
    case "context_mask": {
      if (text.text.kind !== "learned") {
        ctx.diagnostics.push(diag("SDC702", at, `context_mask needs the learned text encoder (its tokenizer pads the prompts); text.encoder is ${text.text.kind}`));
        return undefined;
      }
      return { t: "tensor", dtype: "float32", shape: [B_DIM(), (ctxOut as Tensor).shape[1]] };
    }
    case "label":
      if (!st.data.classes) {
        ctx.diagnostics.push(diag("SDC702", at, `a label input needs labelled data: data.prompts digits (MNIST or latents), not ${st.data.source} captions`));
        return undefined;
      }
      return { t: "tensor", dtype: "int32", shape: [B_DIM()] };
  }
}

/** Elaborate the network at the state-dict root; each input tagged to find the ones it ignores. */
function elaborateNetwork(ctx: SpecContext, { net, block }: { net: A.Call; block: A.BlockDecl }, inputs: Value[], text: TextPart): { out?: Value; root: ModuleNode; tagged: Value[] } {
  const { checker, diagnostics } = ctx;
  const root: ModuleNode = { path: "", kind: block.name, params: 0, children: [] };
  const before = checker.params.length;
  let out: Value | undefined;
  const tagged = inputs.map((v, i) => checker.withDeps(v, { tag: inputTag(i) }));
  try {
    out = checker.elaborate({ ...net, label: undefined }, tagged, ctx.values, "", root);
  } catch (e) {
    if (!(e instanceof Abort)) {
      // point interface mismatches at the network line, with what the data and text give
      if (e instanceof DiagnosticError && e.diagnostic.span.start.offset === net.span.start.offset && e.diagnostic.code === "SDC500") {
        const d = e.diagnostic;
        diagnostics.push({ ...d, code: "SDC703", hint: `the network receives x ${shapeToString(inputs[0].t === "tensor" ? inputs[0].shape : [])} from data.image, context ${valueToString(text.textOut[0])} and pooled ${valueToString(text.textOut[1])} from the text encoder` });
      } else checker.collect(e);
    }
  }
  root.params = checker.params.slice(before).filter((p) => !p.buffer).reduce((s, p) => s + p.count, 0);
  return { out, root, tagged };
}

/** The output the task needs (class logits, or the velocity with variance channels if asked), checked against `out`. */
function networkOutput(ctx: SpecContext, { net, block }: { net: A.Call; block: A.BlockDecl }, st: Settled, out: Value | undefined): Tensor {
  const { data, taskKind, classes } = st;
  const variance = st.flow.output === "velocity_variance";
  const wantOut: Tensor = taskKind === "classifier" ? { t: "tensor", dtype: "float32", shape: [B_DIM(), classes] } : { t: "tensor", dtype: "float32", shape: [B_DIM(), data.height, data.width, variance ? 2 * data.channels : data.channels] };
  if (out && (out.t !== "tensor" || !sameShape(out, wantOut))) {
    const what = taskKind === "classifier" ? `class logits ${valueToString(wantOut)}` : variance ? `the velocity and the variance channels ${valueToString(wantOut)} (flow.output: velocity_variance)` : `the image shape ${valueToString(wantOut)} (a velocity)`;
    ctx.diagnostics.push(diag("SDC703", net.span, `network ${block.name} must return ${what}, but returns ${valueToString(out)}`));
  }
  return wantOut;
}

interface NetworkPart {
  block: A.BlockDecl;
  fwd: A.Forward;
  netArgs: Record<string, ArgValue>;
  inputs: Value[];
  sources: InputSource[];
  wantOut: Tensor;
  netParams: number;
}

/** The IR: network params in reference order first, then the text encoder's. */
function buildIR(ctx: SpecContext, st: Settled, text: TextPart, n: NetworkPart): IR {
  const { spec, checker, values } = ctx;
  const { variant, overrides } = st.params;
  const dims = (shape: Dim[]) => shape.map((d) => (typeof d === "number" ? d : dimToString(d)));
  const parameters = [...checker.params.filter((p) => !p.name.startsWith("text_encoder.")), ...checker.params.filter((p) => p.name.startsWith("text_encoder."))];
  const textParams = parameters.filter((p) => p.name.startsWith("text_encoder.") && !p.buffer).reduce((s, p) => s + p.count, 0);
  return {
    sdc: IR_VERSION,
    spec: { name: spec.name + (variant ? `-${variant.name}` : ""), title: spec.title ?? spec.name, file: spec.file, variant: variant?.name ?? null, params: Object.fromEntries([...values].map(([k, v]) => [k, plain(v)])), overrides },
    task: { kind: st.taskKind, classes: st.classes },
    data: st.data,
    text: text.text,
    network: {
      block: n.block.name,
      args: n.netArgs,
      inputs: n.fwd.inputs.map((inp, i) => ({ name: inp.name, dtype: inp.shape.dtype, shape: dims((n.inputs[i] as Tensor).shape), ...(st.taskKind === "diffusion" ? { source: n.sources[i] } : {}) })),
      output: { name: st.taskKind === "classifier" ? "logits" : "velocity", dtype: "float32", shape: dims(n.wantOut.shape) },
    },
    flow: st.flow,
    train: st.train,
    parameters,
    modules: text.modules,
    stats: { params: n.netParams + textParams, networkParams: n.netParams, textParams, buffers: parameters.filter((p) => p.buffer).reduce((s, p) => s + p.count, 0), maxActivation: checker.maxActivation },
  };
}

function inputTag(i: number): string {
  // no state-dict name contains a space
  return `input ${i}`;
}

/**
 * SDC704: a network input that never reaches the output (the data or text it is fed with would
 * be ignored; a learned text encoder would get no gradient). SDC311: weights that never reach
 * the output (counted, saved, never trained), one error per call in the source, unless an
 * ignored input already explains them.
 */
function unreached(checker: Checker, out: Value, inputs: Value[], decls: A.TensorParam[], sources: InputSource[], text: TextIR, net: string): Diagnostic[] {
  const reach = checker.depsOf(out);
  const ds: Diagnostic[] = [];
  const explained = new Set<string>();
  const enc = text.kind === "learned" ? `${text.block}, trained with the network` : text.kind;
  const what: Record<InputSource, string> = {
    image: "data.image (the noisy image)",
    timestep: "the flow (the timestep)",
    context: `the text encoder (${enc}: context tokens)`,
    context_mask: "the tokenizer (the context's padding mask)",
    pooled: "the text encoder (pooled text)",
    label: "the data's class labels",
  };
  decls.forEach((d, i) => {
    if (reach.has(inputTag(i))) return;
    for (const tag of checker.depsOf(inputs[i])) explained.add(tag);
    const grad = (sources[i] === "context" || sources[i] === "pooled") && text.kind === "learned" ? "; the text encoder's weights would get no gradient and training would fail" : "";
    ds.push(diag("SDC704", d.nameSpan, `network ${net} never uses its input '${d.name}' ${valueToString(inputs[i])}, fed by ${what[sources[i]] ?? "the spec"}: its output does not depend on it${grad}`, `use '${d.name}' in the forward of ${net} (conditioning that is ignored is a bug)`));
  });
  const bySite = new Map<A.Call, string[]>();
  for (const [path, o] of checker.owners) {
    if (reach.has(path) || explained.has(path)) continue;
    const list = bySite.get(o.call) ?? [];
    list.push(path);
    bySite.set(o.call, list);
  }
  for (const [call, paths] of bySite) {
    const o = checker.owners.get(paths[0])!;
    const total = paths.reduce((s, p) => s + checker.owners.get(p)!.params, 0);
    const where = paths.length === 1 ? `'${paths[0]}'` : `'${paths[0]}' and ${paths.length - 1} more (${paths.slice(1, 3).join(", ")}${paths.length > 3 ? ", ..." : ""})`;
    ds.push(diag("SDC311", call.span, `the weights of ${where} (${o.op}, ${total.toLocaleString("en-US")} parameters) never reach the network's output: they would be counted and saved but never trained`, "use the value this call computes, or remove the call"));
  }
  return ds;
}

function sameShape(a: Value, b: Value): boolean {
  return a.t === "tensor" && b.t === "tensor" && a.shape.length === b.shape.length && a.shape.every((d, i) => dimToString(d) === dimToString(b.shape[i]));
}

function plain(v: Value): ParamValue {
  if (v.t === "int" || v.t === "float" || v.t === "bool") return typeof v.v === "object" ? dimToString(v.v) : v.v;
  const numbers = numberList(v);
  if (numbers) return numbers;
  if (v.t === "string" || v.t === "symbol") return v.v;
  return valueToString(v);
}

/** Named constant arguments of a call in a section (all must be named). */
/** A list of known numbers as plain numbers (undefined for anything else). */
function numberList(v: Value): number[] | undefined {
  if (v.t !== "list" || v.sym || !listType(v)) return undefined;
  const out = v.items.map((x) => (x as { v: unknown }).v);
  return out.every((x): x is number => typeof x === "number") ? out : undefined;
}

function callArgs(checker: Checker, call: A.Call, values: Map<string, Value>): Record<string, ArgValue> {
  const out = nameRecord<ArgValue>();
  for (const a of call.args) {
    if (!a.name) fail("SDC401", a.span, `arguments of ${call.callee} here must be named, e.g. \`${call.callee}(width: 256)\``);
    const v = checker.evalConst(a.value, values);
    const numbers = numberList(v);
    if (numbers) out[a.name] = numbers;
    else if ((v.t !== "int" && v.t !== "float" && v.t !== "bool") || typeof v.v === "object") fail("SDC401", a.value.span, `argument '${a.name}' must be a number, a bool or a list of numbers, got ${typeName(v)}`);
    else out[a.name] = v.v;
  }
  return out;
}

function namedArgs(checker: Checker, call: A.Call, values: Map<string, Value>, kinds: Record<string, "string" | "int" | "float">): Record<string, string | number> {
  const out = nameRecord<string | number>();
  for (const a of call.args) {
    if (!a.name) fail("SDC401", a.span, `arguments of ${call.callee} must be named`);
    const kind = Object.hasOwn(kinds, a.name) ? kinds[a.name] : undefined;
    if (!kind) fail("SDC403", a.nameSpan!, `${call.callee} has no argument '${a.name}'${suggest(a.name, Object.keys(kinds))}`);
    const v = checker.evalConst(a.value, values);
    if (kind === "string" ? v.t !== "string" : v.t !== "int" && v.t !== "float") fail("SDC401", a.value.span, `${call.callee}: '${a.name}' must be a ${kind}, got ${typeName(v)}`);
    if (kind === "int" && !(typeof (v as { v: unknown }).v === "number" && Number.isSafeInteger((v as { v: number }).v) && (v as { v: number }).v > 0 && (v as { v: number }).v <= 1 << 20)) {
      fail("SDC702", a.value.span, `${call.callee}: '${a.name}' must be a positive integer (at most ${1 << 20}), got ${valueToString(v)}`);
    }
    out[a.name] = (v as { v: string | number }).v;
  }
  return out;
}

function positionalNums(checker: Checker, call: A.Call, values: Map<string, Value>, names: string[]): Record<string, number> {
  const out = nameRecord<number>();
  call.args.forEach((a, i) => {
    const name = a.name ?? names[i];
    if (!name || !names.includes(name)) fail("SDC400", a.span, `${call.callee} takes ${names.length ? names.join(", ") : "no arguments"}`);
    const v = checker.evalConst(a.value, values);
    if ((v.t !== "int" && v.t !== "float") || typeof v.v !== "number") fail("SDC401", a.value.span, `${call.callee}: '${name}' must be a number, got ${typeName(v)}`);
    out[name] = v.v;
  });
  for (const n of names) if (out[n] === undefined) fail("SDC402", call.span, `${call.callee}: missing '${n}'`);
  return out;
}

function density(checker: Checker, e: A.Expr, values: Map<string, Value>): Density {
  const kinds = ["uniform", "uniform_clipped", "logit_normal", "mode", "cosmap"];
  const name = e.kind === "ident" ? e.name : e.kind === "call" ? e.callee : undefined;
  if (!name || !kinds.includes(name)) fail("SDC702", e.span, `flow.density must be one of uniform, uniform_clipped(eps), logit_normal(m, s), mode(s), cosmap; got ${exprText(e)}`);
  const call: A.Call = e.kind === "call" ? e : { kind: "call", callee: name, calleeSpan: e.span, args: [], span: e.span };
  switch (name) {
    case "uniform":
    case "cosmap":
      positionalNums(checker, call, values, []);
      return { kind: name };
    case "uniform_clipped": {
      const a = positionalNums(checker, call, values, ["eps"]);
      if (a.eps < 0 || a.eps >= 0.5) fail("SDC702", call.span, `uniform_clipped: eps must be in [0, 0.5), got ${a.eps}`);
      return { kind: "uniform_clipped", eps: a.eps };
    }
    case "logit_normal": {
      const a = positionalNums(checker, call, values, ["m", "s"]);
      if (a.s <= 0) fail("SDC702", call.span, `logit_normal: s must be positive, got ${a.s}`);
      return { kind: "logit_normal", m: a.m, s: a.s };
    }
    default: {
      const a = positionalNums(checker, call, values, ["s"]);
      if (a.s < -1 || a.s > 2 / (Math.PI - 2)) fail("SDC702", call.span, `mode: s must be in [-1, ${(2 / (Math.PI - 2)).toFixed(3)}] for the density to be valid, got ${a.s}`);
      return { kind: "mode", s: a.s };
    }
  }
}

/** Each optimizer argument's valid range: [low, high], an end left open where `open` says so. */
const OPTIMIZER_RANGES: Record<string, { low: number; high: number; open: "low" | "high"; what: string }> = {
  lr: { low: 0, high: 10, open: "low", what: "the learning rate must be in (0, 10]" },
  beta1: { low: 0, high: 1, open: "high", what: "beta1 must be in [0, 1)" },
  beta2: { low: 0, high: 1, open: "high", what: "beta2 must be in [0, 1)" },
  eps: { low: 0, high: 1, open: "low", what: "eps must be in (0, 1] (0 divides by zero where a gradient's second moment is 0)" },
  weight_decay: { low: 0, high: Infinity, open: "high", what: "weight_decay must be non-negative" },
};

function inRange(n: number, r: (typeof OPTIMIZER_RANGES)[string]): boolean {
  const aboveLow = r.open === "low" ? n > r.low : n >= r.low;
  const belowHigh = r.open === "high" ? n < r.high : n <= r.high;
  return aboveLow && belowHigh;
}

function optimizer(checker: Checker, e: A.Expr, values: Map<string, Value>): OptimizerIR {
  if (e.kind !== "call" || (e.callee !== "adam" && e.callee !== "adamw")) fail("SDC702", e.span, `train.optimizer must be adam(lr: ...) or adamw(lr: ..., weight_decay: ...), got ${exprText(e)}`);
  const o: OptimizerIR = { kind: e.callee, lr: 2e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: e.callee === "adamw" ? 0.01 : 0 };
  const keys: Record<string, keyof OptimizerIR> = { lr: "lr", beta1: "beta1", beta2: "beta2", eps: "eps", weight_decay: "weightDecay" };
  for (const a of e.args) {
    if (!a.name || !Object.hasOwn(keys, a.name)) fail("SDC403", a.nameSpan ?? a.span, `${e.callee} takes named arguments ${Object.keys(keys).join(", ")}${a.name ? suggest(a.name, Object.keys(keys)) : ""}`);
    const v = checker.evalConst(a.value, values);
    if ((v.t !== "int" && v.t !== "float") || typeof v.v !== "number" || v.v < 0) fail("SDC702", a.value.span, `${e.callee}: ${a.name} must be a non-negative number, got ${valueToString(v)}`);
    if (!inRange(v.v, OPTIMIZER_RANGES[a.name])) fail("SDC702", a.value.span, `${e.callee}: ${OPTIMIZER_RANGES[a.name].what}, got ${v.v}`);
    (o as unknown as Record<string, number>)[keys[a.name]] = v.v;
  }
  return o;
}
