// Builds the native CPU executor (runtime/executors/native/src -> build/Release/sdc_cpu.node) with node-gyp, as
// `npm install` / `npm ci` run it. Without a C++ compiler the build is skipped with a warning:
// sdc then trains with the tfjs engine on the CPU (slower), and says so.
// `--asan`: the same targets with AddressSanitizer and UndefinedBehaviorSanitizer into
// build-asan/build/Release/sdc_cpu.node (for .ci/run: load it with SDC_NATIVE_ADDON and the sanitizer
// runtimes in LD_PRELOAD; see scripts/test-native-asan.sh). Always strict.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const asan = process.argv.includes("--asan");
const strict = asan || process.argv.includes("--strict");
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
const SANITIZE = ["-fsanitize=address,undefined,float-cast-overflow", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g"];

/** binding.gyp with every target's paths one folder up and the sanitizers on (-O1: readable reports). */
function asanGyp() {
  const gypText = readFileSync(join(root, "binding.gyp"), "utf8");
  let g;
  try {
    g = JSON.parse(gypText.replace(/^\s*#.*$/gm, ""));
  } catch (e) {
    console.error(`sdc: --asan reads binding.gyp as JSON (with # comment lines): ${e.message}`);
    process.exit(1);
  }
  const up = (p) => (p.startsWith("/") || p.startsWith("<") ? p : join("..", p));
  for (const t of g.targets) {
    for (const k of ["sources", "include_dirs"]) if (t[k]) t[k] = t[k].map(up);
    for (const k of ["cflags", "cflags_cc"]) t[k] = [...(t[k] ?? []).filter((f) => !/^-O/.test(f)), ...SANITIZE, "-O1"];
    t["cflags!"] = [...(t["cflags!"] ?? []), "-O3", "-O2"];
    t.ldflags = [...(t.ldflags ?? []), "-fsanitize=address,undefined,float-cast-overflow"];
  }
  return JSON.stringify(g, null, 2);
}
const cwd = asan ? join(root, "build-asan") : root;
if (asan) {
  mkdirSync(cwd, { recursive: true });
  writeFileSync(join(cwd, "binding.gyp"), asanGyp());
}
const args = [gyp, "rebuild"];
if (!process.env.npm_config_nodedir && existsSync("/usr/include/node/node_api.h")) args.push("--nodedir=/usr");
const r = spawnSync(process.execPath, args, { cwd, stdio: ["ignore", "inherit", "inherit"] });
if (r.status !== 0) {
  console.error("sdc: building the native CPU executor failed (see above); sdc will train with tfjs on the CPU");
  process.exit(strict ? 1 : 0);
}
