#!/usr/bin/env node
// sdc command-line entry: runs the TypeScript CLI through tsx, and maps the `sdc/runtime`
// import of generated code to this package's runtime, so a generated folder works anywhere.
import { register } from "node:module";
import { register as registerTsx } from "tsx/esm/api";

registerTsx();
register("./resolve-hook.mjs", import.meta.url);
const { main } = await import("../cli/main.ts");
process.exitCode = await main(process.argv.slice(2));
