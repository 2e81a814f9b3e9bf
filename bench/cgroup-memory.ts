/**
 * `sdc train` in a cgroup v2 with a memory limit below the step's need (issue 24): `npx tsx
 * bench/cgroup-memory.ts [--limit-mib M]` (as root, where the cgroup v2 hierarchy has the memory
 * controller) creates a child cgroup at the hierarchy's root with `memory.max` M MiB (default
 * 1024), runs `sdc train generated/sd3-tiny --batch-size 65536` in it (a step of many GiB) and
 * checks that it exits 1 with one line naming the cgroup limit, before allocating; then removes
 * the cgroup. A bench script, not a test: CI and sandboxes often cannot create cgroups. Where it
 * cannot, it says exactly why and exits 1. Exit 0: refused as it must be; 1: not run or wrong.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const limitMib = arg("--limit-mib", 1024);
if (!Number.isSafeInteger(limitMib) || limitMib < 64) {
  console.error("error: --limit-mib takes an integer of at least 64");
  process.exit(2);
}

/** The cgroup v2 mount point from /proc/self/mountinfo, or why there is none to use. */
function cgroup2Mount(mountinfo: string): string | null {
  for (const line of mountinfo.split("\n")) {
    const [pre, post] = line.split(" - ");
    if (post?.split(" ")[0] === "cgroup2") return pre.split(" ")[4];
  }
  return null;
}

function notRun(why: string): never {
  console.log(`not run: ${why}`);
  process.exit(1);
}

const mount = cgroup2Mount(readFileSync("/proc/self/mountinfo", "utf8"));
if (!mount) notRun("no cgroup v2 hierarchy is mounted (/proc/self/mountinfo has no cgroup2 file system)");
const controllers = readFileSync(join(mount, "cgroup.controllers"), "utf8").trim();
if (!controllers.split(" ").includes("memory")) notRun(`the cgroup v2 hierarchy at ${mount} has no memory controller (cgroup.controllers: "${controllers}"; the memory controller is bound to a cgroup v1 hierarchy${existsSync("/sys/fs/cgroup/memory/memory.limit_in_bytes") ? " at /sys/fs/cgroup/memory" : ""}), so no child of it can have memory.max`);
const cg = join(mount, `sdc-memory-${process.pid}`);
try {
  if (!readFileSync(join(mount, "cgroup.subtree_control"), "utf8").split(" ").map((s) => s.trim()).includes("memory")) writeFileSync(join(mount, "cgroup.subtree_control"), "+memory");
  mkdirSync(cg);
  writeFileSync(join(cg, "memory.max"), String(limitMib * 2 ** 20));
} catch (e) {
  rmdirIfThere(cg);
  notRun(`cannot create ${cg} with memory.max ${limitMib} MiB: ${(e as Error).message}`);
}

function rmdirIfThere(path: string): void {
  if (existsSync(path)) rmdirSync(path);
}

// the child moves itself into the cgroup, then becomes sdc: everything sdc allocates is under the limit
const out = mkdtempSync(join(tmpdir(), "sdc-cgroup-"));
const argv = ["bin/sdc.mjs", "train", "generated/sd3-tiny", "--steps", "2", "--batch-size", "65536", "--backend", "cpu", "--engine", "static", "--sample-every", "0", "--no-progress", "--out", join(out, "run")];
const r = spawnSync("sh", ["-c", `echo $$ > "${cg}/cgroup.procs" && exec "$0" "$@"`, process.execPath, ...argv], { encoding: "utf8", timeout: 600_000 });
const peak = readText(join(cg, "memory.peak")) ?? readText(join(cg, "memory.max_usage_in_bytes"));
rmSync(out, { recursive: true, force: true });
rmdirIfThere(cg);

function readText(path: string): string | null {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return null;
  }
}

const lines = r.stderr.trim().split("\n");
console.log(`sdc ${argv.slice(1).join(" ")}`);
console.log(`  in ${cg} with memory.max ${limitMib} MiB: exit ${r.status}${r.signal ? ` (${r.signal})` : ""}, ${lines.length} line(s) on stderr${peak ? `, peak ${(Number(peak) / 2 ** 20).toFixed(0)} MiB` : ""}`);
for (const l of lines.slice(0, 5)) console.log(`  | ${l}`);
const ok = r.status === 1 && lines.length === 1 && /^error: .*needs \d+\.\d\d GiB of memory; the process's cgroup limit is \d+\.\d\d GiB/.test(lines[0]);
console.log(ok ? "refused with one line naming the cgroup limit, as it must be" : "WRONG: sdc did not refuse with one line naming the cgroup limit");
process.exit(ok ? 0 : 1);
