// The last resort of the `sdc` process (issue 24): an error that no command caught (a module
// loader's worker thread that could not start, a rejection nobody awaited) still ends with one
// line and an exit code, never silently and never with a trace for the user's machine's limits.
// Installed first by bin/sdc.mjs and cli/entry.ts, before any loader hook or WebAssembly module.
//   - out of memory (a WebAssembly memory that cannot be reserved, an ArrayBuffer the heap will
//     not give): `error: out of memory: ...` with the address-space limit (ulimit -v) if one is
//     set, exit 1;
//   - anything else is a bug in sdc: the trace, exit 70.
// Plain JavaScript: it must work before tsx (the TypeScript loader) is registered.
import { spawnSync } from "node:child_process";
import { readFileSync, writeSync } from "node:fs";

/** An allocation that failed (the same test as isOutOfMemory in cli/main.ts). */
export function isOutOfMemoryError(e) {
  if (!e || typeof e.message !== "string") return false;
  if (e.name === "RuntimeError" && /^Aborted\(/.test(e.message) && /tfjs-backend-wasm/.test(e.stack ?? "")) return true;
  return e.name === "RangeError" && /Array buffer allocation failed|could not allocate memory|Maximum memory size exceeded|Out of memory|Invalid typed array length|Array buffer allocation/i.test(e.message);
}

/** The soft address-space limit (ulimit -v) in bytes, or null when there is none (or no /proc). */
export function addressSpaceLimit() {
  try {
    const m = /^Max address space\s+(\d+)\s/m.exec(readFileSync("/proc/self/limits", "utf8"));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

const gib = (b) => `${(b / 2 ** 30).toFixed(2)} GiB`;

/** The one line printed for an out-of-memory error (without "error: "). */
export function outOfMemoryLine(e) {
  const what = String(e.message).split("\n")[0].replace(/^Aborted\(.*/, "the wasm backend aborted");
  const as = addressSpaceLimit();
  const wasm = /WebAssembly|Wasm/.test(what);
  if (as !== null) {
    return `out of memory: ${what}, under the address-space limit (ulimit -v) of ${gib(as)}${wasm ? "; Node reserves about 10 GiB of address space for each WebAssembly memory (the TypeScript loader of generated packages and the wasm backend each need one)" : ""}: raise the limit (ulimit -v unlimited) or try a smaller --batch-size`;
  }
  return `out of memory: ${what}; the run needs more memory than the machine or the backend can give (the wasm backend has at most 4 GiB); try a smaller --batch-size, --n or --samples, or --backend cpu`;
}

/**
 * Under an address-space limit (ulimit -v), can this Node reserve `memories` WebAssembly memories?
 * The TypeScript loader (tsx) parses modules with a WebAssembly lexer in its loader thread and in
 * the main thread, two memories of about 10 GiB of address space each on 64-bit Node; when they
 * cannot be reserved the loader thread dies and Node exits 1 without a word. So it is tried first,
 * in a child process (same limits; nothing reserved here): null when it fits or there is no
 * limit, else the line to print (without "error: ").
 */
export function wasmAddressSpaceProblem(memories = 2) {
  const as = addressSpaceLimit();
  if (as === null) return null;
  const probe = spawnSync(process.execPath, ["-e", `const m = []; for (let i = 0; i < ${memories}; i++) m.push(new WebAssembly.Memory({ initial: 1 }));`], { stdio: "ignore", timeout: 30_000 });
  if (probe.status === 0) return null;
  return `the address-space limit (ulimit -v) of ${gib(as)} is too small to start: Node reserves about 10 GiB of address space for each WebAssembly memory, and loading TypeScript (tsx) needs ${memories}; raise the limit (ulimit -v unlimited, or about ${memories * 10 + 4} GiB)`;
}

function onFatal(e) {
  try {
    if (isOutOfMemoryError(e)) {
      writeSync(2, `error: ${outOfMemoryLine(e)}\n`);
      process.exit(1);
    }
    writeSync(2, `internal error (a bug in sdc; please report it with this trace):\n${e?.stack ?? String(e)}\n`);
  } catch {
    // stderr closed: the exit code still says it
  }
  process.exit(70);
}

let installed = false;

/** Route uncaught exceptions and unhandled rejections to one line (out of memory: exit 1) or a bug report (exit 70). */
export function installFatalHandlers() {
  if (installed) return;
  installed = true;
  process.on("uncaughtException", onFatal);
  process.on("unhandledRejection", onFatal);
}
