/** `sdc compile SPEC`: check a spec and write its generated TypeScript package. */
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { basename, join } from "node:path";
import { compile, type CompileResult, formatAll, summarizeDiagnostics, summaryTable } from "../../compiler/index.ts";
import { findSpec } from "../../compiler/spec.ts";
import { loadProgram } from "../../compiler/program.ts";
import { writeDirAtomic } from "../../runtime/io/atomic.ts";
import { EXIT, InputError, UsageError } from "../errors.ts";
import { makeFsHost } from "../host.ts";

export interface CompileCliOptions {
  variant?: string;
  allVariants?: boolean;
  set?: string[];
  outDir: string;
  json?: boolean;
  check?: boolean;
  /** check the spec and print its summary; generate and write nothing */
  noWrite?: boolean;
  quiet?: boolean;
  /** folders searched for imports (before SDC_PATH) */
  libPath?: string[];
}

export interface CompiledOutput {
  result: CompileResult;
  dir?: string;
}

/**
 * The package name (and folder) of a compiled (spec, variant, --set overrides): the spec file's
 * name, then `-variant`, then one `-namevalue` per override, so an override never writes over
 * another package: sd3 --set depth=4 is sd3-depth4; --variant tiny --set train.lr=1e-3 is
 * sd3-tiny-train_lr1e-3 ('.' in a name becomes '_', in a value 'p'; other characters '_').
 */
export function packageName(specPath: string, variant?: string, sets: readonly string[] = []): string {
  const base = basename(specPath).replace(/\.mdl$/, "").replace(/[^A-Za-z0-9_-]/g, "_");
  const parts = sets.map((s) => {
    const eq = s.indexOf("=");
    const key = (eq < 0 ? s : s.slice(0, eq)).trim().replace(/\./g, "_");
    const value = eq < 0 ? "" : s.slice(eq + 1).trim().replace(/\./g, "p").replace(/[^A-Za-z0-9_-]+/g, "_");
    return (key + value).replace(/[^A-Za-z0-9_-]/g, "_");
  });
  return [/^[A-Za-z_]/.test(base) ? base : `_${base}`, ...(variant ? [variant] : []), ...parts].join("-");
}

/** Compile (spec, variant) and return the result with the folder it belongs in. Pure but for reading specs. */
export function compileSpecFile(specPath: string, opts: { variant?: string; set?: string[]; outDir: string; generate?: boolean; libPath?: string[] }): CompiledOutput {
  const name = packageName(specPath, opts.variant, opts.set);
  const result = compile(specPath, makeFsHost({ libPath: opts.libPath }), { variant: opts.variant, sets: opts.set, specPath, name, generate: opts.generate });
  return { result, dir: result.ir ? join(opts.outDir, name) : undefined };
}

/** Colour only on a terminal, and never with NO_COLOR set (https://no-color.org). */
export function useColor(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  return stream.isTTY === true && !env.NO_COLOR;
}

/** Where runCompile writes: process.stdout/stderr, or a test's collector. */
export interface OutStream {
  write(s: string): unknown;
  isTTY?: boolean;
}

export function runCompile(specPath: string, opts: CompileCliOptions, out: OutStream = process.stdout, err: OutStream = process.stderr): number {
  if (!specPath.endsWith(".mdl")) throw new UsageError(`expected a .mdl spec file, got '${specPath}'`);
  if (!existsSync(specPath)) throw new InputError(`spec file not found: ${specPath}`);
  let variants: (string | undefined)[] = [opts.variant];
  if (opts.allVariants) {
    const prog = loadProgram(specPath, makeFsHost({ libPath: opts.libPath }));
    const spec = findSpec(prog);
    variants = [undefined, ...("code" in spec ? [] : spec.variants.map((v) => v.name))];
  }
  let status: number = EXIT.ok;
  const jsonOut: unknown[] = [];
  for (const variant of variants) {
    const t0 = performance.now();
    const { result, dir } = compileSpecFile(specPath, { variant, set: opts.set, outDir: opts.outDir, generate: !opts.noWrite, libPath: opts.libPath });
    const ms = performance.now() - t0;
    // warnings do not stop compilation; --quiet leaves them out when it succeeds
    const failed = !result.ir || (!result.files && !opts.noWrite) || !dir;
    const shown = failed || !opts.quiet ? result.diagnostics : [];
    if (shown.length) err.write(formatAll(shown, result.program.sources, useColor(err)) + "\n");
    const warnings = result.diagnostics.filter((d) => d.severity === "warning").length;
    if (!failed && warnings && !opts.quiet) err.write(`\n${warnings} warning${warnings === 1 ? "" : "s"} in ${specPath}${variant ? ` (variant ${variant})` : ""}\n\n`);
    if (failed || !result.ir || !dir) {
      const n = result.diagnostics.length - warnings;
      err.write(`\n${n} error${n === 1 ? "" : "s"}${warnings ? ` and ${warnings} warning${warnings === 1 ? "" : "s"}` : ""} in ${specPath}${variant ? ` (variant ${variant})` : ""}; nothing written\n`);
      status = EXIT.spec;
      if (opts.json) jsonOut.push({ spec: specPath, variant: variant ?? null, ok: false, diagnostics: summarizeDiagnostics(result.diagnostics) });
      continue;
    }
    if (opts.noWrite) {
      const ir = result.ir;
      if (opts.json) jsonOut.push({ spec: specPath, variant: variant ?? null, ok: true, compileMs: Math.round(ms), stats: ir.stats, modules: ir.modules, parameters: ir.parameters.map((p) => ({ name: p.name, shape: p.shape, count: p.count, buffer: p.buffer })) });
      else if (!opts.quiet) out.write(`${ir.spec.name}: ${ir.spec.title}\n\n${summaryTable(ir)}\n\nchecked in ${ms.toFixed(0)} ms; nothing written (--no-write)\n\n`);
      continue;
    }
    if (!result.files) continue;
    if (opts.check) {
      const stale = result.files.filter(([p, c]) => !existsSync(join(dir, p)) || readFileSync(join(dir, p), "utf8") !== c).map(([p]) => p);
      const extra = existsSync(dir) ? readdirSync(dir).filter((f) => !result.files!.some(([p]) => p === f)) : [];
      if (stale.length || extra.length) {
        err.write(`${dir} is out of date: ${[...stale, ...extra.map((e) => `${e} (not generated)`)].join(", ")}; run: npx sdc compile ${specPath}${variant ? ` --variant ${variant}` : ""}\n`);
        status = EXIT.spec;
      } else if (!opts.quiet && !opts.json) out.write(`${dir} is up to date\n`);
      if (opts.json) jsonOut.push({ spec: specPath, variant: variant ?? null, ok: status === EXIT.ok, upToDate: !(stale.length || extra.length), out: dir });
      continue;
    }
    writeDirAtomic(dir, Object.fromEntries(result.files));
    if (opts.json) {
      const ir = result.ir;
      jsonOut.push({ spec: specPath, variant: variant ?? null, ok: true, out: dir, compileMs: Math.round(ms), warnings: summarizeDiagnostics(result.diagnostics), stats: ir.stats, modules: ir.modules, parameters: ir.parameters.map((p) => ({ name: p.name, shape: p.shape, count: p.count, buffer: p.buffer })) });
    } else if (!opts.quiet) {
      out.write(`${result.ir.spec.name}: ${result.ir.spec.title}\n\n${summaryTable(result.ir)}\n\nwrote ${dir}/ (${result.files.map(([p]) => p).join(", ")}) in ${ms.toFixed(0)} ms\n\n`);
    }
  }
  if (opts.json) out.write(JSON.stringify(jsonOut.length === 1 ? jsonOut[0] : jsonOut, null, 2) + "\n");
  return status;
}
