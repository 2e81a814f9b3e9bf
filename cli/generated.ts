/** Loading a compiled spec folder (generated/<name>): its ir.json, checked, and its code. */
import { existsSync, readFileSync, statSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { register } from "node:module";
import { pathToFileURL } from "node:url";
import { irHash, validateIr } from "../ir/validate.ts";
import type { IR } from "../ir/ir.ts";
import type { CompiledSpec } from "../runtime/model.ts";
import { wasmAddressSpaceProblem } from "../bin/fatal.mjs";
import { CheckpointError, type CheckpointContents } from "../runtime/train/checkpoint.ts";
import { InputError } from "./errors.ts";

export interface LoadedSpec {
  dir: string;
  ir: IR;
  irText: string;
  spec: CompiledSpec;
}

let hookRegistered = false;
/** Map `sdc/runtime` to this package for generated code (a no-op inside bundles, which alias it). */
async function registerRuntimeResolver(): Promise<void> {
  if (hookRegistered) return;
  hookRegistered = true;
  const flags = globalThis as { [k: symbol]: unknown };
  // bin/sdc.mjs says where the hook is (this file may be a chunk of dist/)
  const given = flags[Symbol.for("sdc.resolveHook")];
  const hook = typeof given === "string" ? new URL(given) : new URL("../bin/resolve-hook.mjs", import.meta.url);
  // the precompiled CLI (dist/) runs without a TypeScript loader, and generated packages are .ts:
  // register tsx, then the resolve hook again (hooks registered later run first), or tsx would
  // resolve `sdc/runtime` to the TypeScript sources, a second runtime beside the CLI's
  if (flags[Symbol.for("sdc.tsLoader")] === "missing") {
    // under `ulimit -v`, tsx's loader thread may not start and Node would exit without a word
    const problem = wasmAddressSpaceProblem();
    if (problem) throw new InputError(problem);
    const tsxApi = "tsx/esm/api"; // not a literal: bundles (the GPU pack) never include tsx
    const { register: registerTsx } = (await import(tsxApi)) as { register: () => void };
    registerTsx();
    flags[Symbol.for("sdc.tsLoader")] = "tsx";
    register(hook.href, { data: { dist: true } });
    return;
  }
  // bin/sdc.mjs registered it already
  if (flags[Symbol.for("sdc.resolveHook")]) return;
  if (hook.protocol === "file:" && existsSync(hook)) register(hook.href);
}

export async function loadCompiled(dir: string): Promise<LoadedSpec> {
  await registerRuntimeResolver();
  // inside the GPU pack, generated folders are bundled to index.mjs under SDC_GENERATED_DIR
  const packed = process.env.SDC_GENERATED_DIR ? join(process.env.SDC_GENERATED_DIR, basename(dir)) : undefined;
  if (packed && existsSync(packed) && !existsSync(join(dir, "index.mjs")) && resolve(packed) !== resolve(dir)) {
    // the pack's copy must be this very package (an ablation unit compiled with other overrides is another one)
    if (existsSync(join(dir, "ir.json")) && existsSync(join(packed, "ir.json")) && readFileSync(join(dir, "ir.json"), "utf8") !== readFileSync(join(packed, "ir.json"), "utf8")) {
      throw new InputError(`${dir} has TypeScript only, and the GPU pack's ${packed} is another build of it (its ir.json differs); rebuild the pack with this package (node scripts/pack-gpu.mjs --units <ablation folder>)`);
    }
    dir = packed;
  }
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    const hint = dir.endsWith(".mdl") ? ` (that is a spec; compile it first: npx sdc compile ${dir})` : "; compile a spec first, e.g. npx sdc compile specs/sd3.mdl";
    throw new InputError(`not a generated folder: ${dir}${hint}`);
  }
  const irPath = join(dir, "ir.json");
  const indexPath = existsSync(join(dir, "index.ts")) || !existsSync(join(dir, "index.mjs")) ? join(dir, "index.ts") : join(dir, "index.mjs");
  for (const f of [irPath, indexPath]) if (!existsSync(f)) throw new InputError(`${dir} is not a compiled spec: ${f} is missing (recompile with npx sdc compile SPEC)`);
  if (packed && indexPath.endsWith(".ts")) throw new InputError(`${dir} has TypeScript only, and the GPU pack (SDC_GENERATED_DIR=${process.env.SDC_GENERATED_DIR}) has no build of ${basename(dir)}; rebuild the pack with it (node scripts/pack-gpu.mjs --units <ablation folder>)`);
  const irText = readFileSync(irPath, "utf8");
  let ir: IR;
  try {
    ir = JSON.parse(irText);
  } catch (e) {
    throw new InputError(`${irPath} is not valid JSON: ${(e as Error).message}`);
  }
  const errors = validateIr(ir);
  if (errors.length) throw new InputError(`${irPath} does not match the IR schema: ${errors.slice(0, 3).join("; ")}`);
  const mod = (await import(pathToFileURL(resolve(indexPath)).href)) as { spec?: CompiledSpec };
  if (!mod.spec) throw new InputError(`${indexPath} does not export \`spec\`; recompile it`);
  if (mod.spec.irHash !== irHash(irText)) throw new InputError(`${irPath} does not match the code in ${dir} (edited by hand or stale); recompile the spec`);
  return { dir, ir, irText, spec: mod.spec };
}

/** The compiled spec of a checkpoint: --generated, else generated/<its spec name>; refused when its IR differs. */
export async function checkpointSpec(ckDir: string, ck: CheckpointContents, generated?: string): Promise<{ loaded: LoadedSpec; genDir: string }> {
  let genDir = generated;
  if (!genDir) {
    let name: string;
    try {
      name = JSON.parse(ck.irText).spec.name;
    } catch {
      throw new CheckpointError(`${ckDir}/ir.json is not valid JSON`);
    }
    genDir = join("generated", name);
    if (!existsSync(genDir)) throw new InputError(`the checkpoint is from spec ${name} but ${genDir} does not exist; compile it or pass --generated DIR`);
  }
  const loaded = await loadCompiled(genDir);
  if (ck.state.irHash !== irHash(loaded.irText)) throw new CheckpointError(`checkpoint ${ckDir} is from another spec (${ck.state.spec}, IR ${ck.state.irHash.slice(0, 12)}) than ${genDir} (${loaded.ir.spec.name}); pass the matching --generated DIR`);
  return { loaded, genDir };
}
