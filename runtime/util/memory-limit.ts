/**
 * The memory this process may really use (issue 24), not only the machine's (`os.totalmem()`):
 *   - the cgroup's limit: v2 `memory.max`, v1 `memory.limit_in_bytes`, of the process's cgroup
 *     (from /proc/self/cgroup) and every ancestor (the smallest applies: Slurm's `--mem`, a
 *     container's `--memory`);
 *   - the address-space limit `RLIMIT_AS` (`ulimit -v`, the soft limit in /proc/self/limits),
 *     less what the process has already mapped (VmSize in /proc/self/status).
 * The parsers are pure; `memoryBudget` reads the files through `read` (tests pass fake ones).
 * On systems without these files (macOS, Windows) only the machine's memory counts.
 */
import { readFileSync } from "node:fs";
import { freemem, totalmem } from "node:os";

export type ReadText = (path: string) => string | null;

/** cgroup v1 writes "no limit" as a page-rounded 2^63 - 1; anything from 2^62 up is no limit. */
const UNLIMITED = 2 ** 62;

/** A cgroup limit file (v2 memory.max: "max" or bytes; v1 memory.limit_in_bytes: bytes); null: no limit or unreadable. Pure. */
export function parseCgroupLimit(text: string | null): number | null {
  const t = text?.trim();
  if (!t || t === "max" || !/^\d+$/.test(t)) return null;
  const n = Number(t);
  return n >= UNLIMITED ? null : n;
}

/** The soft "Max address space" limit of /proc/self/limits in bytes; null when unlimited or absent. Pure. */
export function parseAddressSpaceLimit(limits: string | null): number | null {
  const m = /^Max address space\s+(\S+)\s+(\S+)\s+bytes/m.exec(limits ?? "");
  if (!m || m[1] === "unlimited" || !/^\d+$/.test(m[1])) return null;
  const n = Number(m[1]);
  return n >= UNLIMITED ? null : n;
}

/** VmSize of /proc/self/status in bytes (what the process has mapped); null when absent. Pure. */
export function parseVmSize(status: string | null): number | null {
  const m = /^VmSize:\s+(\d+)\s+kB/m.exec(status ?? "");
  return m ? Number(m[1]) * 1024 : null;
}

/** The process's cgroup paths from /proc/self/cgroup: the v2 one ("0::/path") and the v1 memory controller's. Pure. */
export function parseProcCgroup(text: string | null): { v2?: string; v1?: string } {
  const out: { v2?: string; v1?: string } = {};
  for (const line of (text ?? "").split("\n")) {
    const m = /^(\d+):([^:]*):(\/.*)$/.exec(line.trim());
    if (!m) continue;
    if (m[1] === "0" && m[2] === "") out.v2 = m[3];
    else if (m[2].split(",").includes("memory")) out.v1 = m[3];
  }
  return out;
}

/** `/a/b` -> ["/a/b", "/a", "/"]. */
function selfAndAncestors(path: string): string[] {
  const parts = path.split("/").filter(Boolean);
  return Array.from({ length: parts.length + 1 }, (_, i) => "/" + parts.slice(0, parts.length - i).join("/"));
}

export interface FoundLimit {
  bytes: number;
  /** where it was found, for messages: a file name */
  source: string;
}

/** The smallest memory limit of the process's cgroup and its ancestors (v2 and v1), or null. */
export function cgroupMemoryLimit(read: ReadText, cgroupRoot = "/sys/fs/cgroup"): FoundLimit | null {
  const { v2, v1 } = parseProcCgroup(read("/proc/self/cgroup"));
  const files: string[] = [];
  const join = (...p: string[]) => p.join("/").replace(/\/+/g, "/").replace(/\/$/, "");
  if (v2 !== undefined) for (const p of selfAndAncestors(v2)) files.push(join(cgroupRoot, p, "memory.max"));
  if (v1 !== undefined) for (const p of selfAndAncestors(v1)) files.push(join(cgroupRoot, "memory", p, "memory.limit_in_bytes"));
  let best: FoundLimit | null = null;
  for (const f of files) {
    const n = parseCgroupLimit(read(f));
    if (n !== null && (!best || n < best.bytes)) best = { bytes: n, source: f };
  }
  return best;
}

export interface MemoryBudget {
  /** the most a new allocation may take, in bytes */
  bytes: number;
  /** what limits it, in words (for "needs X GiB; <why>") */
  why: string;
}

export const gib = (b: number): string => `${(b / 2 ** 30).toFixed(2)} GiB`;

export interface MachineMemory {
  total: number;
  free: number;
}

/**
 * How much more memory this process may take: the smallest of 90% of the machine's memory, 90% of
 * its cgroup's limit, and the address-space limit less what is already mapped.
 */
export function memoryBudget(read: ReadText = readText, machine: MachineMemory = { total: totalmem(), free: freemem() }): MemoryBudget {
  const options: MemoryBudget[] = [{ bytes: 0.9 * machine.total, why: `this machine has ${gib(machine.total)} (${gib(machine.free)} free)` }];
  const cg = cgroupMemoryLimit(read);
  if (cg) options.push({ bytes: 0.9 * cg.bytes, why: `the process's cgroup limit is ${gib(cg.bytes)} (${cg.source})` });
  const as = parseAddressSpaceLimit(read("/proc/self/limits"));
  if (as !== null) {
    const used = parseVmSize(read("/proc/self/status")) ?? 0;
    options.push({ bytes: Math.max(0, as - used), why: `the address-space limit (ulimit -v) is ${gib(as)}, ${gib(used)} of it already mapped` });
  }
  return options.reduce((a, b) => (b.bytes < a.bytes ? b : a));
}

/** A file's text, or null when it cannot be read. */
export function readText(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}
