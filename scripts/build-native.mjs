// Builds the native CPU executor (runtime/executors/native/src -> build/Release/sdc_cpu.node) with node-gyp, as
// `npm install` / `npm ci` run it. Without a C++ compiler the build is skipped with a warning:
// sdc then trains with the tfjs engine on the CPU (slower), and says so.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const strict = process.argv.includes("--strict");
if (process.env.SDC_NATIVE === "0") {
  console.error("sdc: SDC_NATIVE=0, not building the native CPU executor");
  process.exit(0);
}
function nodeGyp() {
  if (process.env.npm_config_node_gyp && existsSync(process.env.npm_config_node_gyp)) return process.env.npm_config_node_gyp;
  const npmDir = dirname(dirname(process.execPath));
  for (const p of [join(npmDir, "lib", "node_modules", "npm", "node_modules", "node-gyp", "bin", "node-gyp.js")]) if (existsSync(p)) return p;
  try {
    return createRequire(import.meta.url).resolve("node-gyp/bin/node-gyp.js");
  } catch {
    return null;
  }
}
const gyp = nodeGyp();
if (!gyp) {
  console.error("sdc: node-gyp not found; the native CPU executor is not built (sdc will train with tfjs on the CPU)");
  process.exit(strict ? 1 : 0);
}
const args = [gyp, "rebuild"];
if (!process.env.npm_config_nodedir && existsSync("/usr/include/node/node_api.h")) args.push("--nodedir=/usr");
const r = spawnSync(process.execPath, args, { cwd: root, stdio: ["ignore", "inherit", "inherit"] });
if (r.status !== 0) {
  console.error("sdc: building the native CPU executor failed (see above); sdc will train with tfjs on the CPU");
  process.exit(strict ? 1 : 0);
}
