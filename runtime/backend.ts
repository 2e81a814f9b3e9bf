/**
 * TensorFlow.js backend selection for the sdc runtime.
 *
 *   auto        tensorflow (tfjs-node-gpu, then tfjs-node) -> webgpu (Dawn) -> wasm -> cpu
 *   tensorflow  @tensorflow/tfjs-node-gpu or @tensorflow/tfjs-node (OPTIONAL, never a dependency)
 *   webgpu      @tensorflow/tfjs-backend-webgpu on Dawn's dawn.node (npm package `webgpu`)
 *   wasm        @tensorflow/tfjs-backend-wasm (XNNPACK, SIMD); the CPU default
 *   cpu         pure-JS reference backend (~20x slower than wasm)
 *
 * Every optional package is loaded with a dynamic import, so a missing one never breaks
 * loading this module. A NAMED backend that cannot start throws {@link BackendError} saying
 * why; `auto` logs one line per skipped backend and picks the first one that starts (the caller
 * prints the one chosen). `auto` skips webgpu without loading Dawn where Linux has no Vulkan loader.
 *
 * Environment:
 *   SDC_WASM_DIR        directory holding tfjs-backend-wasm*.wasm (the GPU pack sets it)
 *   SDC_WEBGPU_MODULE   path to the `webgpu` package's index.js (the GPU pack sets it)
 *   SDC_DAWN_TOGGLES    extra dawn.node options, comma/space separated list of
 *                       "enable-dawn-features=a,b" / "disable-dawn-features=..." / "backend=vulkan"
 *                       entries separated by ';'
 *   SDC_WEBGPU_ALLOW_SOFTWARE=1  let `auto` use a software (fallback) WebGPU adapter
 */
import { createRequire } from "node:module";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve as resolvePath } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as tf from "@tensorflow/tfjs";
import { gib, parseAddressSpaceLimit, readText } from "./util/memory-limit.ts";

export type BackendName = "auto" | "tensorflow" | "webgpu" | "wasm" | "cpu";
export const BACKEND_NAMES: readonly BackendName[] = ["auto", "tensorflow", "webgpu", "wasm", "cpu"];

export interface BackendOptions {
  /** Where `auto` reports its choice and the reasons earlier candidates were skipped (default: stderr). */
  log?: (msg: string) => void;
  /** WASM thread count (only honoured by a threaded WASM build; tfjs-backend-wasm 4.22 runs single-threaded in Node). */
  threads?: number;
  /** For `auto`: the backends to try, in this order (default: all four); e.g. bf16 training, which runs on the CPU only. */
  candidates?: readonly Exclude<BackendName, "auto">[];
}

export interface BackendInit {
  /** The tfjs backend name now active: "tensorflow" | "webgpu" | "wasm" | "cpu". */
  name: string;
  /** One line describing it (package, adapter, wasm flavour...). */
  detail: string;
  /** For `auto`: one line per backend that was tried and skipped, in order. */
  skipped: string[];
}

export class BackendError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BackendError";
  }
}

const WASM_FILES = ["tfjs-backend-wasm.wasm", "tfjs-backend-wasm-simd.wasm", "tfjs-backend-wasm-threaded-simd.wasm"] as const;

interface State {
  name: string;
  detail: string;
  gpu?: { ownsNavigator: boolean; device?: { destroy(): void } };
  wasmDir?: string;
  wasmThreads?: number;
}
let state: State | null = null;
let wasmPathsSet = false;

const here = (() => {
  try {
    return dirname(fileURLToPath(import.meta.url));
  } catch {
    return process.cwd();
  }
})();
const req = createRequire(import.meta.url);

function firstLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : typeof e === "object" && e && "message" in e ? String((e as { message: unknown }).message) : String(e);
  return msg.split("\n")[0]!.trim();
}

/**
 * A CommonJS package imported dynamically from an esbuild ESM bundle with code splitting comes
 * back as `{ default: module.exports }` only; Node's own import also exposes named exports.
 */
function cjsInterop<T extends object>(mod: T, probe: string): T {
  if (probe in mod) return mod;
  const d = (mod as { default?: unknown }).default;
  return d && typeof d === "object" && probe in d ? (d as T) : mod;
}

function isInstalled(pkg: string): boolean {
  try {
    req.resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- tensorflow (tfjs-node)

const TF_NODE_GPU = "@tensorflow/tfjs-node-gpu";
const TF_NODE = "@tensorflow/tfjs-node";

async function initTensorflow(): Promise<{ detail: string }> {
  const failures: string[] = [];
  const candidates = [TF_NODE_GPU, TF_NODE];
  const installed = candidates.filter(isInstalled);
  if (installed.length === 0) {
    throw new BackendError(
      `tensorflow: ${TF_NODE_GPU} is not installed (npm i ${TF_NODE_GPU}; needs CUDA 11.2 + cuDNN 8.1) ` +
        `and neither is ${TF_NODE} (npm i ${TF_NODE})`,
    );
  }
  for (const pkg of installed) {
    try {
      // A variable specifier: bundlers leave it alone, and TypeScript does not need its types.
      const spec: string = pkg;
      const mod = cjsInterop((await import(spec)) as { version?: Record<string, string> }, "version");
      if (!tf.findBackend("tensorflow") && !tf.engine().registryFactory["tensorflow"]) {
        throw new Error("it loaded but registered no 'tensorflow' backend (tfjs-core version mismatch?)");
      }
      if (!(await tf.setBackend("tensorflow"))) throw new Error("tf.setBackend('tensorflow') returned false");
      await tf.ready();
      const v = mod.version?.["tfjs-node"] ?? mod.version?.["tfjs-node-gpu"] ?? "?";
      const missing = candidates.filter((c) => !installed.includes(c));
      return {
        detail: `tensorflow via ${pkg} ${v} (libtensorflow, ${pkg === TF_NODE_GPU ? "CUDA" : "CPU"})` +
          (missing.length ? `; ${missing.join(", ")} not installed` : ""),
      };
    } catch (e) {
      failures.push(`${pkg} is installed but failed to load: ${firstLine(e)}`);
    }
  }
  const notInstalled = candidates.filter((c) => !installed.includes(c)).map((c) => `${c} is not installed`);
  throw new BackendError(`tensorflow: ${[...failures, ...notInstalled].join("; ")}`);
}

// ---------------------------------------------------------------- webgpu (Dawn)

type GpuLike = { requestAdapter(opts?: unknown): Promise<AdapterLike | null> };
type AdapterLike = {
  info?: { vendor?: string; architecture?: string; device?: string; description?: string };
  isFallbackAdapter?: boolean;
  features?: { has(f: string): boolean };
};

function dawnOptions(): string[] {
  const raw = process.env.SDC_DAWN_TOGGLES?.trim();
  if (!raw) return [];
  return raw.split(";").map((s) => s.trim()).filter(Boolean);
}

async function loadWebgpuModule(): Promise<{ create: (opts: string[]) => unknown; globals: object }> {
  const override = process.env.SDC_WEBGPU_MODULE;
  try {
    if (override) return (await import(pathToFileURL(resolvePath(override)).href)) as never;
    const spec: string = "webgpu";
    return (await import(spec)) as never;
  } catch (e) {
    const msg = firstLine(e);
    if (!override && /Cannot find (package|module)|ERR_MODULE_NOT_FOUND|Failed to (load|resolve)/i.test(msg) && /webgpu/.test(msg)) {
      throw new BackendError("webgpu: the `webgpu` package (Dawn's dawn.node) is not installed (npm i webgpu)");
    }
    if (/GLIBC|GLIBCXX|\.so/.test(msg)) throw new BackendError(`webgpu: dawn.node cannot be loaded on this system: ${msg}`);
    throw new BackendError(`webgpu: loading dawn.node${override ? ` from ${override}` : ""} failed: ${msg}`);
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((res, rej) => {
    const t = setTimeout(() => rej(new Error(`${what} timed out after ${ms / 1000}s`)), ms);
    t.unref?.();
    p.then((v) => { clearTimeout(t); res(v); }, (e) => { clearTimeout(t); rej(e); });
  });
}

function dropNavigatorGpu(ownsNavigator: boolean): void {
  const g = globalThis as { navigator?: { gpu?: unknown } };
  try {
    if (ownsNavigator) delete (g as Record<string, unknown>).navigator;
    else if (g.navigator) delete g.navigator.gpu;
  } catch {
    /* non-configurable: nothing more we can do */
  }
}

/**
 * Whether Linux can load a Vulkan loader (libvulkan.so.1), which Dawn needs: from
 * LD_LIBRARY_PATH, the usual library folders or the ld.so cache. Without one, loading dawn.node
 * only prints a warning with its build machine's paths and finds no adapter.
 */
export function vulkanLoaderPresent(env: NodeJS.ProcessEnv = process.env): boolean {
  if (process.platform !== "linux") return true;
  const dirs = [...(env.LD_LIBRARY_PATH ?? "").split(":").filter(Boolean), "/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib64", "/lib64", "/usr/lib", "/lib", "/usr/local/lib"];
  if (dirs.some((d) => existsSync(join(d, "libvulkan.so.1")))) return true;
  try {
    return readFileSync("/etc/ld.so.cache").includes("libvulkan.so.1");
  } catch {
    return false;
  }
}

async function initWebgpu(auto: boolean): Promise<{ detail: string }> {
  // `auto` on a machine without Vulkan: skip Dawn without loading it (no foreign warning)
  if (auto && !vulkanLoaderPresent()) throw new BackendError("webgpu: no Vulkan loader (libvulkan.so.1) on this system, which Dawn needs on Linux (apt-get install libvulkan1 and a GPU driver)");
  const { create, globals } = await loadWebgpuModule();
  const gpu = create(dawnOptions()) as GpuLike;
  const adapter = await withTimeout(gpu.requestAdapter({ powerPreference: "high-performance" }), 30_000, "requestAdapter")
    .catch((e) => { throw new BackendError(`webgpu: requestAdapter failed: ${firstLine(e)}`); });
  if (!adapter) {
    throw new BackendError("webgpu: no WebGPU adapter found (Dawn found no Vulkan/Metal/D3D12 GPU)" +
      (process.platform === "linux" ? "; on Linux it needs libvulkan.so.1 and a GPU Vulkan driver (ICD), see VK_DRIVER_FILES" : ""));
  }
  const info = adapter.info ?? {};
  const name = [info.vendor, info.architecture, info.device, info.description].filter((s) => s && String(s).length).join(" / ") || "unknown adapter";
  const software = adapter.isFallbackAdapter === true || /swiftshader|llvmpipe|lavapipe|software/i.test(name);
  if (software && auto && process.env.SDC_WEBGPU_ALLOW_SOFTWARE !== "1") {
    throw new BackendError(`webgpu: only a software adapter was found (${name}); slower than wasm (set SDC_WEBGPU_ALLOW_SOFTWARE=1 to use it)`);
  }

  // tfjs-backend-webgpu registers itself at import time only if navigator.gpu exists.
  Object.assign(globalThis, globals);
  const g = globalThis as { navigator?: { gpu?: unknown } };
  let ownsNavigator = false;
  if (g.navigator === undefined) {
    Object.defineProperty(globalThis, "navigator", { value: { gpu }, configurable: true, writable: true, enumerable: false });
    ownsNavigator = true;
  } else {
    try {
      Object.defineProperty(g.navigator, "gpu", { value: gpu, configurable: true, writable: true });
    } catch (e) {
      throw new BackendError(`webgpu: cannot set navigator.gpu: ${firstLine(e)}`);
    }
  }
  try {
    await import("@tensorflow/tfjs-backend-webgpu");
  } catch (e) {
    dropNavigatorGpu(ownsNavigator);
    throw new BackendError(`webgpu: @tensorflow/tfjs-backend-webgpu is not available (npm i @tensorflow/tfjs-backend-webgpu): ${firstLine(e)}`);
  }
  if (!tf.engine().registryFactory["webgpu"]) {
    dropNavigatorGpu(ownsNavigator);
    throw new BackendError("webgpu: @tensorflow/tfjs-backend-webgpu registered no backend (it was imported before navigator.gpu was set)");
  }
  let ok = false;
  try {
    ok = await tf.setBackend("webgpu");
  } catch (e) {
    dropNavigatorGpu(ownsNavigator);
    throw new BackendError(`webgpu: device creation failed on ${name}: ${firstLine(e)}`);
  }
  if (!ok) {
    dropNavigatorGpu(ownsNavigator);
    throw new BackendError(`webgpu: tfjs could not initialise the webgpu backend on ${name} (see the message above)`);
  }
  await tf.ready();
  const backend = tf.backend() as unknown as { device?: { destroy(): void } };
  state = { name: "webgpu", detail: "", gpu: { ownsNavigator, device: backend.device } };
  const ts = adapter.features?.has("timestamp-query") ? ", timestamp-query" : "";
  const toggles = dawnOptions();
  return { detail: `webgpu via Dawn (dawn.node) on ${name}${software ? " [software adapter]" : ""}${ts}${toggles.length ? `; dawn options: ${toggles.join(" ")}` : ""}` };
}

// ---------------------------------------------------------------- wasm

/** Where the tfjs-backend-wasm .wasm binaries are: SDC_WASM_DIR, a `wasm/` folder beside the bundle, or node_modules. */
export function findWasmDir(): string {
  const has = (d: string) => WASM_FILES.slice(0, 2).every((f) => existsSync(join(d, f)));
  const env = process.env.SDC_WASM_DIR;
  if (env) {
    const d = resolvePath(env);
    if (!has(d)) throw new BackendError(`wasm: SDC_WASM_DIR=${env} does not contain ${WASM_FILES.slice(0, 2).join(" and ")}`);
    return d;
  }
  const candidates: string[] = [join(here, "wasm"), join(here, "..", "wasm")];
  if (process.argv[1]) candidates.push(join(dirname(resolvePath(process.argv[1])), "wasm"));
  try {
    candidates.push(dirname(req.resolve("@tensorflow/tfjs-backend-wasm")));
  } catch {
    /* not resolvable from here (e.g. inside a bundle) */
  }
  for (const d of candidates) if (has(d)) return d;
  throw new BackendError(`wasm: cannot find the tfjs-backend-wasm .wasm files (looked in ${candidates.join(", ")}); set SDC_WASM_DIR`);
}

async function initWasm(threads?: number): Promise<{ detail: string }> {
  let wasm: typeof import("@tensorflow/tfjs-backend-wasm");
  try {
    wasm = cjsInterop(await import("@tensorflow/tfjs-backend-wasm"), "setWasmPaths");
  } catch (e) {
    throw new BackendError(`wasm: @tensorflow/tfjs-backend-wasm cannot be loaded (npm i @tensorflow/tfjs-backend-wasm): ${firstLine(e)}`);
  }
  const dir = findWasmDir();
  if (!wasmPathsSet) {
    try {
      wasm.setWasmPaths(dir.endsWith("/") ? dir : dir + "/");
      wasmPathsSet = true;
    } catch (e) {
      throw new BackendError(`wasm: setWasmPaths failed: ${firstLine(e)}`);
    }
  }
  if (threads !== undefined && threads > 0) wasm.setThreadsCount(Math.floor(threads));
  let ok = false;
  try {
    ok = await tf.setBackend("wasm");
  } catch (e) {
    throw new BackendError(`wasm: initialisation failed: ${firstLine(e)}`);
  }
  if (!ok) {
    // under `ulimit -v` the usual cause: each WebAssembly memory reserves ~10 GiB of address space
    const as = parseAddressSpaceLimit(readText("/proc/self/limits"));
    if (as !== null) throw new BackendError(`wasm: initialisation failed under the address-space limit (ulimit -v) of ${gib(as)}: Node reserves about 10 GiB of address space for each WebAssembly memory; raise the limit (ulimit -v unlimited) or use --backend cpu`);
    throw new BackendError(`wasm: initialisation failed (wasm files in ${dir}; see the message above)`);
  }
  await tf.ready();
  const simd = (await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT")) as boolean;
  const mt = (await tf.env().getAsync("WASM_HAS_MULTITHREAD_SUPPORT")) as boolean;
  let n = 1;
  try {
    n = wasm.getThreadsCount();
  } catch {
    /* not initialised */
  }
  const file = simd && mt ? WASM_FILES[2] : simd ? WASM_FILES[1] : WASM_FILES[0];
  const threadNote = mt ? `${n} threads` : `1 thread${threads && threads > 1 ? ` (threads=${threads} ignored: tfjs-backend-wasm has no threads in Node)` : ""}`;
  return { detail: `wasm (${simd ? "SIMD" : "no SIMD"}, ${threadNote}; ${join(dir, file)})` };
}

// ---------------------------------------------------------------- cpu

async function initCpu(): Promise<{ detail: string }> {
  if (!(await tf.setBackend("cpu"))) throw new BackendError("cpu: tf.setBackend('cpu') failed");
  await tf.ready();
  return { detail: "cpu (pure JavaScript reference backend; slow)" };
}

// ---------------------------------------------------------------- public API

async function initOne(name: Exclude<BackendName, "auto">, threads: number | undefined, auto: boolean): Promise<{ detail: string }> {
  switch (name) {
    case "tensorflow": return initTensorflow();
    case "webgpu": return initWebgpu(auto);
    case "wasm": return initWasm(threads);
    case "cpu": return initCpu();
  }
}

/**
 * Select and initialise a tfjs backend. `auto` tries tensorflow -> webgpu -> wasm -> cpu and
 * logs why each earlier one was skipped; a named backend that cannot start throws BackendError.
 */
export async function initBackend(name: BackendName, opts: BackendOptions = {}): Promise<BackendInit> {
  // production mode: no debug checks, and no "install tfjs-node" banner from the cpu backend
  tf.env().set("PROD", true);
  (globalThis as { [k: symbol]: unknown })[Symbol.for("sdc.backend")] = true;
  const log = opts.log ?? ((m: string) => process.stderr.write(`[sdc] ${m}\n`));
  if (!(BACKEND_NAMES as readonly string[]).includes(name)) {
    throw new BackendError(`unknown backend '${String(name)}'; valid names: ${BACKEND_NAMES.join(", ")}`);
  }
  if (state && (name === "auto" || name === state.name)) {
    return { name: state.name, detail: state.detail, skipped: [] };
  }
  if (state?.gpu && name !== "webgpu") await shutdownBackend();

  if (name !== "auto") {
    const { detail } = await initOne(name, opts.threads, false);
    state = { ...(state?.name === name ? state : {}), name, detail };
    return { name, detail, skipped: [] };
  }

  const skipped: string[] = [];
  for (const cand of opts.candidates ?? (["tensorflow", "webgpu", "wasm", "cpu"] as const)) {
    try {
      const { detail } = await initOne(cand, opts.threads, true);
      state = { ...(state?.name === cand ? state : {}), name: cand, detail };
      // the choice itself is the caller's to print (once, with the command's other lines)
      return { name: cand, detail, skipped };
    } catch (e) {
      const line = e instanceof BackendError ? e.message : `${cand}: ${firstLine(e)}`;
      skipped.push(line);
      log(`backend: skipped ${line}`);
    }
  }
  throw new BackendError(`no backend could start:\n  ${skipped.join("\n  ")}`);
}

/** The active backend as one line, for logs. */
export function backendInfo(): { name: string; detail: string; tfjs: string } {
  const tfjs = tf.version?.["tfjs-core"] ?? "?";
  if (state) return { name: state.name, detail: state.detail, tfjs };
  const current = tf.getBackend() ?? "none";
  return { name: current, detail: `${current} (not selected through initBackend)`, tfjs };
}

/**
 * Release the GPU so the process can exit: dispose the webgpu backend, destroy its device and
 * drop navigator.gpu (dawn.node keeps the event loop alive while it is referenced).
 * Safe to call more than once and with any backend.
 */
export async function shutdownBackend(): Promise<void> {
  const s = state;
  state = null;
  if (!s?.gpu) return;
  try {
    if (tf.engine().registryFactory["webgpu"]) {
      tf.removeBackend("webgpu");
    }
  } catch {
    /* already gone */
  }
  try {
    s.gpu.device?.destroy();
  } catch {
    /* already destroyed */
  }
  dropNavigatorGpu(s.gpu.ownsNavigator);
}
