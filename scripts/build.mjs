#!/usr/bin/env node
// Precompiles the CLI, the runtime and the compiler to dist/ (run by `npm install` through the
// `prepare` script, and by hand: `node scripts/build.mjs`). bin/sdc.mjs runs dist/ only while it
// is fresh (bin/dist.mjs compares every bundled source file with dist/manifest.json) and falls
// back to the TypeScript sources through tsx otherwise, so an edited source never runs stale.
//
// Every package stays external (node_modules are loaded by Node as usual: native `.node` addons,
// tfjs, chevrotain, ts-morph), and the three entry points share chunks, so the runtime that
// generated code imports as `sdc/runtime` (mapped to dist/runtime.mjs) is the CLI's own instance.
//   node scripts/build.mjs [--outdir DIR] [--quiet]
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const outArg = args.includes("--outdir") ? args[args.indexOf("--outdir") + 1] : undefined;
const OUT = resolve(ROOT, outArg ?? "dist");
const quiet = args.includes("--quiet");

let esbuild;
try {
  esbuild = await import("esbuild");
} catch {
  // a production install without devDependencies: bin/sdc.mjs runs the sources through tsx
  console.warn("sdc build: esbuild is not installed; skipping dist/ (the CLI runs from source)");
  process.exit(0);
}

export const ENTRIES = { main: "cli/main.ts", runtime: "runtime/index.ts", compiler: "compiler/index.ts" };

// Packages stay external, but for pure-JavaScript ones made of many small modules that a start
// loads: chevrotain (with lodash-es) costs ~0.3 s to load file by file and ~0.05 s bundled, the
// language server's vscode-languageserver ~0.2 s. Nothing native is ever bundled.
export const BUNDLED = /^(chevrotain|@chevrotain\/[^/]+|lodash-es|regexp-to-ast|vscode-languageserver(-protocol|-types|-textdocument)?|vscode-jsonrpc)(\/|$)/;
const externals = {
  name: "sdc-externals",
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (a) => (BUNDLED.test(a.path) || a.path.startsWith("node:") ? undefined : { path: a.path, external: true }));
  },
};

// ir/precompiled.ts in dist/: ajv's standalone code for the IR schema, compiled here once
// instead of at every start (same options as ir/precompiled.ts's AJV_OPTIONS)
const irValidator = {
  name: "sdc-ir-validator",
  setup(b) {
    b.onLoad({ filter: /[\\/]ir[\\/]precompiled\.ts$/ }, async () => {
      const { default: Ajv } = await import("ajv");
      const { default: standaloneCode } = await import("ajv/dist/standalone/index.js");
      const schema = JSON.parse(readFileSync(join(ROOT, "ir", "ir.schema.json"), "utf8"));
      const ajv = new Ajv({ allErrors: true, strict: false, code: { source: true, esm: true } });
      const code = standaloneCode(ajv, ajv.compile(schema));
      return { contents: `${code}\nexport { validate as precompiled };\nexport const AJV_OPTIONS = { allErrors: true, strict: false };\n`, loader: "js", resolveDir: join(ROOT, "ir") };
    });
  },
};

const tmp = `${OUT}.tmp-${process.pid}`;
rmSync(tmp, { recursive: true, force: true });
const t0 = performance.now();
const result = await esbuild.build({
  absWorkingDir: ROOT,
  entryPoints: Object.fromEntries(Object.entries(ENTRIES).map(([k, v]) => [k, join(ROOT, v)])),
  bundle: true,
  plugins: [externals, irValidator],
  platform: "node",
  format: "esm",
  target: "node20",
  splitting: true,
  outdir: tmp,
  chunkNames: "chunks/[name]-[hash]",
  outExtension: { ".js": ".mjs" },
  sourcemap: "linked",
  // the bundled CommonJS (vscode-languageserver) requires Node's built-in modules
  banner: { js: 'import { createRequire as __sdcCreateRequire } from "node:module"; const require = __sdcCreateRequire(import.meta.url);' },
  metafile: true,
  logLevel: "warning",
});
// the manifest: every source file that went into the bundles, with its content hash (and the
// size and mtime, so the start-up check only hashes files whose stat changed)
// (package-lock.json stands for the bundled packages: an upgrade changes it)
const inputs = {};
for (const p of [...Object.keys(result.metafile.inputs), "package-lock.json"].sort()) {
  if (p.includes("node_modules/")) continue;
  const abs = join(ROOT, p);
  const st = statSync(abs);
  inputs[relative(ROOT, abs)] = { sha256: createHash("sha256").update(readFileSync(abs)).digest("hex"), size: st.size, mtimeMs: st.mtimeMs };
}
writeFileSync(join(tmp, "manifest.json"), JSON.stringify({ builtAt: new Date().toISOString(), entries: ENTRIES, inputs }, null, 1) + "\n");
writeFileSync(join(tmp, "package.json"), JSON.stringify({ type: "module", private: true }) + "\n");
rmSync(OUT, { recursive: true, force: true });
mkdirSync(dirname(OUT), { recursive: true });
renameSync(tmp, OUT);
if (!quiet) console.log(`sdc build: ${Object.keys(inputs).length} sources -> ${relative(ROOT, OUT) || OUT}/ in ${(performance.now() - t0).toFixed(0)} ms`);
