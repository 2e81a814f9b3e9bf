/**
 * The generated package's README: a model card with the parameter table (handlebars).
 */
import type Handlebars from "handlebars";
import { handlebars } from "./lazy.ts";
import { fmtCount } from "../check/index.ts";
import type { IR } from "../../ir/ir.ts";
import { htmlCommentText, markdownCode, markdownText } from "./names.ts";

const TEMPLATE = `<!-- {{header}} -->
# {{name}}: {{title}}

Compiled by sdc from \`{{file}}\`{{#if ir.spec.variant}} (variant \`{{ir.spec.variant}}\`){{/if}}.

| | |
|---|---|
| parameters | **{{count ir.stats.params}}** ({{comma ir.stats.params}}): network {{comma ir.stats.networkParams}}, text encoder {{comma ir.stats.textParams}} |
| fixed buffers | {{comma ir.stats.buffers}} values (position tables) |
| image | {{ir.data.height}} x {{ir.data.width}} x {{ir.data.channels}} ({{ir.data.source}}, prompts: {{ir.data.prompts}}) |
| text | {{textLine}} |
| flow | noise at t = {{ir.flow.noiseAt}}, predict {{ir.flow.predict}}, t ~ {{density}}, loss {{ir.flow.loss}} (weighting {{ir.flow.weighting}}), CFG drop {{ir.flow.cfgDrop}} |
| sampling | {{ir.flow.sampler}}, {{ir.flow.steps}} steps, shift {{ir.flow.shift}}, guidance {{ir.flow.guidance}} |
| training | {{ir.train.optimizer.kind}} lr {{ir.train.optimizer.lr}}, clip {{ir.train.clip}}, batch {{ir.train.batch}}, {{comma ir.train.steps}} steps, EMA {{ir.train.ema}}, seed {{ir.train.seed}} |

## Spec parameters

| name | value |
|---|---|
{{#each params}}| {{@key}} | {{this}} |
{{/each}}

## Modules

| module | kind | parameters |
|---|---|---:|
{{#each modules}}| \`{{path}}\` | {{kind}} | {{comma params}} |
{{/each}}

## Inputs

{{#each ir.network.inputs}}- \`{{name}}\`: {{dtype}} [{{join shape}}]
{{/each}}

## Use

\`\`\`sh
npx sdc train generated/{{name}}
npx sdc sample generated/{{name}} --checkpoint output/{{name}}/checkpoints/latest --prompt "seven" --prompt 2
\`\`\`

Parameter names follow the reference PyTorch state dict (\`ir.json\` lists every tensor with its shape).
`;

let compiled: Handlebars.TemplateDelegate | undefined;

export function renderModelCard(ir: IR, header: string): string {
  if (!compiled) {
    const hb = handlebars().create();
    hb.registerHelper("count", (n: number) => fmtCount(n));
    hb.registerHelper("comma", (n: number) => n.toLocaleString("en-US"));
    hb.registerHelper("join", (xs: unknown[]) => xs.join(", "));
    compiled = hb.compile(TEMPLATE, { noEscape: true });
  }
  const d = ir.flow.density;
  const density = d.kind === "logit_normal" ? `logit_normal(${d.m}, ${d.s})` : d.kind === "uniform_clipped" ? `uniform_clipped(${d.eps})` : d.kind === "mode" ? `mode(${d.s})` : d.kind;
  const t = ir.text;
  const textLine =
    t.kind === "learned"
      ? `learned \`${t.block}\` over ${t.vocab} word tokens, ${t.tokens} tokens -> context ${t.tokens} x ${t.width}, pooled ${t.pooled}`
      : t.kind === "none"
        ? "none (classifier)"
        : t.kind === "external"
        ? `external embeddings: context ${t.tokens} x ${t.width}, pooled ${t.pooled}`
        : `frozen CLIP-L + CLIP-G + T5 (${t.tokens} tokens x ${t.width}, pooled ${t.pooled})`;
  const modules: { path: string; kind: string; params: number }[] = [];
  for (const root of ir.modules) {
    modules.push({ path: root.path || "(network)", kind: root.kind, params: root.params });
    for (const c of root.children) modules.push({ path: c.path, kind: c.kind, params: c.params });
  }
  // spec text is escaped where it is copied (noEscape is for our own text, such as "->")
  const params = Object.fromEntries(Object.entries(ir.spec.params).map(([k, v]) => [k, typeof v === "string" ? markdownText(v) : v]));
  return compiled({ header: htmlCommentText(header.trim().split("\n")[0].replace(/^\/\/ /, "")), ir, name: /^[A-Za-z0-9_.-]*$/.test(ir.spec.name) ? ir.spec.name : markdownText(ir.spec.name), title: markdownText(ir.spec.title), file: markdownCode(ir.spec.file), density, textLine, params, modules });
}
