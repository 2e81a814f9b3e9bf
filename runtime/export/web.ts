/**
 * The static page of `sdc export --web`: index.html (prompt, CFG, steps, seed and image count,
 * a generate button, the grid on a canvas with its time, the model card beside it) and model.js
 * (the exported ONNX graph's nodes and initializers, as onnx.ts lowers them, for the page's
 * TensorFlow.js interpreter). Plain <script> tags only, so the page works from file:// as from
 * any static host. The CLI adds page.js (web/page.ts bundled) and TensorFlow.js itself.
 */
import type { OnnxModel, OnnxTensor } from "./onnx-proto.ts";
import type { WebGraph } from "./web/interpret.ts";

/** The scripts index.html loads, in order (TensorFlow.js first; a missing optional backend is skipped by the browser). */
export const PAGE_SCRIPTS = ["tf.min.js", "tf-backend-webgpu.min.js", "tf-backend-wasm.min.js", "model.js", "page.js"] as const;

export interface ModelCard {
  title: string;
  rows: [string, string][];
}

function base64(t: OnnxTensor): string {
  return Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString("base64");
}

/** model.js: the graph, the flow settings and tokenizer (the ONNX metadata) and the card. */
export function webModelScript(m: Pick<OnnxModel, "nodes" | "initializers" | "inputs" | "outputs">, meta: Record<string, string>, card: ModelCard): string {
  const graph: WebGraph = {
    nodes: m.nodes,
    initializers: m.initializers.map((t) => ({ name: t.name, dtype: t.dtype === "bool" ? "int32" : t.dtype, dims: t.dims, base64: base64(t) })),
    inputs: m.inputs,
    outputs: m.outputs,
  };
  return `// the exported network (sdc export --web): ONNX nodes and initializers for page.js\nglobalThis.SDC_MODEL = ${JSON.stringify({ graph, meta, card })};\n`;
}

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);

/** index.html; `prompt`: the prompt box's initial text. */
export function webIndexHtml(card: ModelCard, prompt: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(card.title)}</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 24px; color: #222; background: #fafafa; }
  h1 { font-size: 20px; margin: 0 0 16px; }
  main { display: flex; gap: 32px; flex-wrap: wrap; align-items: flex-start; }
  #card-side { flex: 1 1 320px; max-width: 480px; }
  form { display: grid; grid-template-columns: auto 14em; max-width: 24em; gap: 8px 12px; align-items: center; margin-bottom: 16px; }
  input { font: inherit; padding: 3px 6px; }
  button { font: inherit; padding: 6px 18px; grid-column: 1 / 3; }
  canvas { image-rendering: pixelated; background: #000; display: block; min-width: 128px; min-height: 128px; }
  #status { margin-top: 8px; color: #555; min-height: 1.4em; }
  #backend { color: #888; font-size: 13px; }
  table { border-collapse: collapse; }
  td { padding: 3px 12px 3px 0; vertical-align: top; }
  td:first-child { color: #666; }
</style>
</head>
<body>
<h1 id="title">${esc(card.title)}</h1>
<main>
<section>
<form onsubmit="return false">
  <label for="prompt">prompt</label><input id="prompt" value="${esc(prompt)}">
  <label for="cfg">CFG</label><input id="cfg" type="number" min="0" step="0.5">
  <label for="steps">steps</label><input id="steps" type="number" min="1" step="1">
  <label for="seed">seed</label><input id="seed" type="number" min="0" step="1" value="0">
  <label for="count">images</label><input id="count" type="number" min="1" step="1" value="16">
  <button id="generate" type="button" disabled>generate</button>
</form>
<canvas id="grid" width="0" height="0"></canvas>
<div id="status">loading</div>
<div id="backend"></div>
</section>
<section id="card-side">
<h2 style="font-size: 16px; margin-top: 0">model card</h2>
<table id="card"></table>
</section>
</main>
${PAGE_SCRIPTS.map((s) => `<script src="${s}"></script>`).join("\n")}
</body>
</html>
`;
}
