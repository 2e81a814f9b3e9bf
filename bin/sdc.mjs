#!/usr/bin/env node
// sdc command-line entry. Runs the precompiled CLI in dist/ (scripts/build.mjs, run at install)
// when it is built from the current sources, else the TypeScript sources through tsx, so an
// edited source never runs stale (SDC_FROM_SOURCE=1 forces the sources; SDC_DEBUG_START=1 says
// which ran and why). Either way `sdc/runtime` and `sdc/compiler` in generated code resolve to
// this package (bin/resolve-hook.mjs): to dist/ when the CLI runs from dist/, so generated
// code and the CLI share one runtime (registered there only when a generated package is loaded).
import { fileURLToPath } from "node:url";
import { distState } from "./dist.mjs";
import { installFatalHandlers, wasmAddressSpaceProblem } from "./fatal.mjs";

// first: an error no command catches (a loader worker that cannot start) still gets one line
installFatalHandlers();

const root = fileURLToPath(new URL("../", import.meta.url));
const state = process.env.SDC_FROM_SOURCE === "1" ? { fresh: false, reason: "SDC_FROM_SOURCE=1" } : distState(root);
if (process.env.SDC_DEBUG_START === "1") process.stderr.write(`sdc: running ${state.fresh ? "dist/" : `the sources through tsx (${state.reason})`}\n`);
const flags = globalThis;
let main;
if (state.fresh) {
  // no loader hooks at start (they cost a loader thread and a round trip per import):
  // cli/generated.ts registers tsx and the resolve hook before it imports a generated package
  flags[Symbol.for("sdc.tsLoader")] = "missing";
  flags[Symbol.for("sdc.resolveHook")] = new URL("./resolve-hook.mjs", import.meta.url).href;
  ({ main } = await import("../dist/main.mjs"));
} else {
  const problem = wasmAddressSpaceProblem();
  if (problem) {
    process.stderr.write(`error: ${problem}\n`);
    process.exit(1);
  }
  const { register: registerTsx } = await import("tsx/esm/api");
  registerTsx();
  const { register } = await import("node:module");
  register("./resolve-hook.mjs", import.meta.url);
  flags[Symbol.for("sdc.resolveHook")] = new URL("./resolve-hook.mjs", import.meta.url).href;
  ({ main } = await import("../cli/main.ts"));
}
process.exitCode = await main(process.argv.slice(2));
