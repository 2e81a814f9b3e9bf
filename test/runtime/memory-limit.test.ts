/**
 * Memory limits (issue 24): the limit the process really has (cgroup v2 memory.max and its
 * ancestors, cgroup v1 memory.limit_in_bytes, RLIMIT_AS less what is mapped) read from fake
 * /proc and /sys files, and `sdc train` under `ulimit -v` in a child shell: it runs, or exits 1
 * with one line saying why (never silently, never a trace).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cgroupMemoryLimit, memoryBudget, parseAddressSpaceLimit, parseCgroupLimit, parseProcCgroup, parseVmSize, type ReadText } from "../../runtime/util/memory-limit.ts";

const GiB = 2 ** 30;
const tmp = mkdtempSync(join(tmpdir(), "sdc-memlimit-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const LIMITS = (soft: string, hard = "unlimited") => `Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max data size             unlimited            unlimited            bytes     
Max address space         ${soft.padEnd(20)} ${hard.padEnd(20)} bytes     
Max open files            1048576              1048576              files     
`;
const STATUS = (kb: number) => `Name:\tnode\nUmask:\t0022\nVmPeak:\t ${kb + 10} kB\nVmSize:\t ${kb} kB\nVmRSS:\t 50000 kB\n`;
/** A fake file system: path -> text; anything else cannot be read. */
const fake = (files: Record<string, string>): ReadText => (p) => (Object.hasOwn(files, p) ? files[p] : null);

describe("parsers", () => {
  it.each([
    ["max\n", null],
    ["4294967296\n", 4 * GiB],
    ["9223372036854771712\n", null], // v1's "no limit"
    ["", null],
    ["garbage", null],
    [null, null],
  ] as const)("cgroup limit %j -> %j", (text, want) => expect(parseCgroupLimit(text)).toBe(want));

  it("RLIMIT_AS from /proc/self/limits: the soft limit", () => {
    expect(parseAddressSpaceLimit(LIMITS("unlimited"))).toBeNull();
    expect(parseAddressSpaceLimit(LIMITS(String(8 * GiB), String(16 * GiB)))).toBe(8 * GiB);
    expect(parseAddressSpaceLimit(null)).toBeNull();
  });

  it("VmSize from /proc/self/status", () => {
    expect(parseVmSize(STATUS(728236))).toBe(728236 * 1024);
    expect(parseVmSize("Name: x\n")).toBeNull();
  });

  it("/proc/self/cgroup: the v2 path and the v1 memory controller's", () => {
    expect(parseProcCgroup("0::/user.slice/job_42\n")).toEqual({ v2: "/user.slice/job_42" });
    expect(parseProcCgroup("9:name=systemd:/\n4:memory:/slurm/uid_0/job_7\n1:cpu,cpuacct:/\n0::/\n")).toEqual({ v1: "/slurm/uid_0/job_7", v2: "/" });
    expect(parseProcCgroup("5:cpuacct,memory:/docker/abc\n")).toEqual({ v1: "/docker/abc" });
  });
});

describe("cgroupMemoryLimit", () => {
  it("cgroup v2: the smallest memory.max of the cgroup and its ancestors", () => {
    const read = fake({
      "/proc/self/cgroup": "0::/system.slice/slurm/job_9/step_0\n",
      "/sys/fs/cgroup/system.slice/slurm/job_9/step_0/memory.max": "max\n",
      "/sys/fs/cgroup/system.slice/slurm/job_9/memory.max": `${6 * GiB}\n`,
      "/sys/fs/cgroup/system.slice/slurm/memory.max": `${64 * GiB}\n`,
      "/sys/fs/cgroup/system.slice/memory.max": "max\n",
    });
    expect(cgroupMemoryLimit(read)).toEqual({ bytes: 6 * GiB, source: "/sys/fs/cgroup/system.slice/slurm/job_9/memory.max" });
  });

  it("cgroup v2 in a container (namespace root): /sys/fs/cgroup/memory.max", () => {
    expect(cgroupMemoryLimit(fake({ "/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/memory.max": `${2 * GiB}\n` }))).toEqual({ bytes: 2 * GiB, source: "/sys/fs/cgroup/memory.max" });
  });

  it("cgroup v1: memory.limit_in_bytes under the memory hierarchy; 'no limit' is none", () => {
    const read = fake({
      "/proc/self/cgroup": "4:memory:/process_api/abc\n0::/\n",
      "/sys/fs/cgroup/memory/process_api/abc/memory.limit_in_bytes": "3221225472\n",
      "/sys/fs/cgroup/memory/process_api/memory.limit_in_bytes": "9223372036854771712\n",
      "/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
    });
    expect(cgroupMemoryLimit(read)).toEqual({ bytes: 3 * GiB, source: "/sys/fs/cgroup/memory/process_api/abc/memory.limit_in_bytes" });
    expect(cgroupMemoryLimit(fake({ "/proc/self/cgroup": "4:memory:/\n", "/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n" }))).toBeNull();
  });

  it("no cgroup files (macOS, Windows, /proc not mounted): none", () => {
    expect(cgroupMemoryLimit(fake({}))).toBeNull();
  });
});

describe("memoryBudget: the smallest of the machine, the cgroup and the address space", () => {
  const machine = { total: 32 * GiB, free: 20 * GiB };
  it("no limits: 90% of the machine", () => {
    const b = memoryBudget(fake({ "/proc/self/limits": LIMITS("unlimited") }), machine);
    expect(b.bytes).toBe(0.9 * 32 * GiB);
    expect(b.why).toBe("this machine has 32.00 GiB (20.00 GiB free)");
  });

  it("a cgroup limit below the machine's memory", () => {
    const b = memoryBudget(fake({ "/proc/self/cgroup": "0::/job\n", "/sys/fs/cgroup/job/memory.max": `${4 * GiB}\n`, "/proc/self/limits": LIMITS("unlimited") }), machine);
    expect(b.bytes).toBe(0.9 * 4 * GiB);
    expect(b.why).toBe("the process's cgroup limit is 4.00 GiB (/sys/fs/cgroup/job/memory.max)");
  });

  it("ulimit -v: the limit less what is already mapped", () => {
    const b = memoryBudget(fake({ "/proc/self/cgroup": "0::/job\n", "/sys/fs/cgroup/job/memory.max": `${16 * GiB}\n`, "/proc/self/limits": LIMITS(String(8 * GiB)), "/proc/self/status": STATUS(3 * 1024 * 1024) }), machine);
    expect(b.bytes).toBe(5 * GiB);
    expect(b.why).toBe("the address-space limit (ulimit -v) is 8.00 GiB, 3.00 GiB of it already mapped");
  });

  it("this process's own files give a finite budget no larger than the machine's", () => {
    const b = memoryBudget();
    expect(b.bytes).toBeGreaterThan(0);
    expect(b.why).toMatch(/GiB/);
  });
});

describe("sdc train under ulimit -v (a child shell)", () => {
  const train = (kib: number, extra: string[] = []) => {
    const out = join(tmp, `run-${kib}-${extra.length}`);
    const args = ["bin/sdc.mjs", "train", "generated/sd3-tiny", "--steps", "2", "--batch-size", "4", "--sample-every", "0", "--samples", "4", "--sample-steps", "2", "--no-progress", "--out", out, ...extra];
    return spawnSync("bash", ["-c", `ulimit -v ${kib} && exec "$0" "$@"`, process.execPath, ...args], { encoding: "utf8", timeout: 180_000 });
  };

  it.each([[4 * 1024 * 1024], [8 * 1024 * 1024]])("ulimit -v %d: runs, or exits 1 with one line saying why", (kib) => {
    const r = train(kib);
    expect(r.signal, r.stderr).toBeNull();
    if (r.status === 0) {
      expect(r.stderr).toMatch(/done at step 2/);
      return;
    }
    expect(r.status, r.stderr).toBe(1);
    const lines = r.stderr.trim().split("\n");
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^error: .*address-space limit \(ulimit -v\) of \d+\.\d\d GiB/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it("a step that does not fit the address space left is refused with the GiB needed and the limit found, before allocating", () => {
    // 24 GiB: enough for Node's WebAssembly reservations, not for the step at batch 65536
    const r = train(24 * 1024 * 1024, ["--batch-size", "65536", "--backend", "cpu", "--engine", "static"]);
    expect(r.status, r.stderr).toBe(1);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.stderr.trim().split("\n").at(-1)).toMatch(/^error: the training step at batch 65536 needs \d+\.\d\d GiB of memory; the address-space limit \(ulimit -v\) is 24\.00 GiB, \d+\.\d\d GiB of it already mapped: try a smaller --batch-size$/);
  });
});
