/**
 * The long fuzz run of issues 12 and 24: `npx tsx bench/fuzz.ts [--cases N] [--seed S] [--kinds
 * a,b] [--chunk C] [--workers W] [--log FILE] [--limit-ms L] [--backstop-s B]` runs N cases split
 * over mutated specs, command lines, safetensors files, checkpoints and run folders (in the
 * proportions below; --kinds: only those, N split evenly) and prints the counts.
 *
 * Each kind's cases run in chunks of C cases (chunk k of a kind has seed S + k), each chunk in a
 * child process (bench/fuzz-chunk.ts), W at a time. A hang is a case that uses more than L ms of
 * CPU time (measured in the child for a case that ends, read from /proc by this parent for one
 * that does not), so a loaded machine does not fake hangs; a case that makes no progress in B
 * seconds of wall-clock time is killed as a hang too (the backstop). A child that dies is a crash
 * at the case it was running; the chunk goes on in a new child after it. With --log, each finished
 * chunk is appended to FILE (JSON lines) and a rerun skips the chunks already there, so a long run
 * resumes where it stopped; --summary prints the counts of the chunks the log holds and runs nothing.
 * Scratch folders go to the system's temporary folder: on a disk, checkpoint and run-folder cases
 * spend most of their time in unlink and copy (2.6x faster with TMPDIR=/dev/shm, a tmpfs).
 * Exit 1 if any crash, hang, unpositioned diagnostic or wrong acceptance.
 */
import { execFileSync, spawn } from "node:child_process";
import { appendFileSync, existsSync, readFileSync } from "node:fs";
import { cpus, getPriority } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type FuzzCounts, type Kind, KINDS } from "../test/fuzz/fuzz-cases.ts";
import { onLines } from "../test/fuzz/lines.ts";

const CHUNK = join(dirname(fileURLToPath(import.meta.url)), "fuzz-chunk.ts");

/** The commit of this checkout, with "+changes" when its tracked files differ from it. */
function commitOf(dir: string): string {
  try {
    const head = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: dir, encoding: "utf8" }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--untracked-files=no"], { cwd: dir, encoding: "utf8" }).trim();
    return dirty ? `${head}+changes` : head;
  } catch {
    return "unknown (not a git checkout)";
  }
}
const COMMIT = commitOf(dirname(CHUNK));

/** One finished chunk: a line of the log. */
export interface ChunkResult {
  kind: Kind;
  seed: number;
  cases: number;
  accepted: number;
  refused: number;
  crashes: number;
  hangs: number;
  unpositioned: number;
  wrongAcceptances: number;
  failures: string[];
  /** wall seconds from the first child's start to the last one's end */
  wallSeconds: number;
  /** CPU seconds of the children since their start (module loading and the run folder's training included) */
  cpuSeconds: number;
  /** children started after one died or was killed */
  restarts: number;
  cpu: string;
  nice: number;
  finished: string;
  /** the commit the chunk ran (git rev-parse HEAD beside this script) */
  commit: string;
}

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};

/** utime + stime of a process in ms, or null once it is gone. */
function procCpuMs(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // fields 14 and 15, in clock ticks (USER_HZ 100)
  } catch {
    return null;
  }
}

interface RangeEnd {
  counts: (FuzzCounts & { processCpuSeconds: number }) | null;
  /** the case in progress when the child ended without finishing */
  at: number;
  why: string;
  cpuSeconds: number;
}

/** One child over cases [from, to) of a chunk; resolves with its counts, or where and why it ended early. */
function runRange(kind: Kind, seed: number, from: number, to: number, limitMs: number, backstopMs: number): Promise<RangeEnd> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", CHUNK, kind, String(seed), String(from), String(to), String(limitMs)], { stdio: ["ignore", "pipe", "pipe"] });
    let at = from;
    let caseCpu0 = Infinity; // the child's start (loading, the run folder's training) is no case: only the backstop times it
    let caseWall0 = performance.now();
    let lastCpu = 0;
    let counts: RangeEnd["counts"] = null;
    let killed = "";
    let stderr = "";
    const kill = (why: string) => ((killed = why), child.kill("SIGKILL"));
    const poll = setInterval(() => {
      const cpu = procCpuMs(child.pid!);
      if (cpu === null) return;
      lastCpu = cpu;
      if (cpu - caseCpu0 > limitMs + 2000) kill(`case ${at} used ${Math.round(cpu - caseCpu0)} ms of CPU without ending`);
      else if (performance.now() - caseWall0 > backstopMs) kill(`case ${at} made no progress in ${backstopMs / 1000} s of wall-clock time (${Math.round(cpu - Math.min(cpu, caseCpu0))} ms of CPU)`);
    }, 1000);
    onLines(child.stdout, (line) => {
      if (line.startsWith("done ")) counts = JSON.parse(line.slice(5));
      else if (line.startsWith("case ")) {
        at = Number(line.slice(5));
        caseCpu0 = procCpuMs(child.pid!) ?? lastCpu;
        caseWall0 = performance.now();
      }
    });
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (d: string) => {
      stderr = (stderr + d).slice(-65536);
      if (/^failure: /m.test(d)) process.stderr.write(d);
    });
    child.on("close", (code, signal) => {
      clearInterval(poll);
      const tail = stderr.trim().split("\n").slice(-3).join(" | ");
      const why = killed ? `hang: ${killed}` : `crash: the child ended (${signal ?? `exit ${code}`}) at case ${at}: ${tail.slice(0, 300)}`;
      resolve({ counts: code === 0 && counts ? counts : null, at, why, cpuSeconds: counts?.processCpuSeconds ?? lastCpu / 1000 });
    });
  });
}

/** A chunk in as many children as it takes: after a child that dies or hangs, the cases before it rerun and the chunk goes on after it. */
async function runChunk(kind: Kind, seed: number, cases: number, limitMs: number, backstopMs: number): Promise<ChunkResult> {
  const t0 = performance.now();
  const r: ChunkResult = { kind, seed, cases: 0, accepted: 0, refused: 0, crashes: 0, hangs: 0, unpositioned: 0, wrongAcceptances: 0, failures: [], wallSeconds: 0, cpuSeconds: 0, restarts: 0, cpu: cpus()[0].model, nice: getPriority(), finished: "", commit: COMMIT };
  const ranges: [number, number][] = [[0, cases]];
  while (ranges.length) {
    const [from, to] = ranges.shift()!;
    const end = await runRange(kind, seed, from, to, limitMs, backstopMs);
    r.cpuSeconds += end.cpuSeconds;
    if (end.counts) {
      const c = end.counts;
      r.cases += c.cases[kind];
      r.accepted += c.accepted[kind];
      r.refused += c.refused[kind];
      r.crashes += c.crashes;
      r.hangs += c.hangs;
      r.unpositioned += c.unpositioned;
      r.wrongAcceptances += c.wrongAcceptances;
      r.failures.push(...c.failures);
      continue;
    }
    // the case that never ended or killed the child counts once; the cases before it run again, then the rest
    r.restarts++;
    r.cases++;
    if (end.why.startsWith("hang")) r.hangs++;
    else r.crashes++;
    r.failures.push(`${kind} seed ${seed}: ${end.why}`);
    process.stderr.write(`failure: ${r.failures.at(-1)}\n`);
    if (end.at > from) ranges.push([from, end.at]);
    if (end.at + 1 < to) ranges.push([end.at + 1, to]);
  }
  r.wallSeconds = (performance.now() - t0) / 1000;
  r.finished = new Date().toISOString();
  return r;
}

const total = arg("--cases", 100_000);
const seed = arg("--seed", 1);
const chunk = arg("--chunk", 2000);
const workers = arg("--workers", 1);
const limitMs = arg("--limit-ms", 20_000);
const backstopMs = arg("--backstop-s", 1800) * 1000;
const logAt = process.argv.indexOf("--log");
const logFile = logAt >= 0 ? process.argv[logAt + 1] : null;
const kindsArg = process.argv.indexOf("--kinds");
const only = kindsArg >= 0 ? process.argv[kindsArg + 1].split(",") : null;
const bad = only?.find((k) => !KINDS.includes(k as Kind));
if (bad !== undefined || ![total, seed, chunk, workers, limitMs, backstopMs].every((v) => Number.isSafeInteger(v) && v >= 0) || chunk < 1 || workers < 1 || (logAt >= 0 && !logFile)) {
  console.error(bad !== undefined ? `error: unknown kind '${bad}' (kinds: ${KINDS.join(", ")})` : "error: --cases, --seed, --chunk, --workers, --limit-ms and --backstop-s take non-negative integers; --log a file");
  process.exit(2);
}
const share: Record<string, number> = only ? Object.fromEntries(only.map((k) => [k, 1 / only.length])) : { spec: 0.2, cli: 0.1, safetensors: 0.4, checkpoint: 0.15, runfolder: 0.15 };

// the chunks: a kind's cases in pieces of `chunk`, chunk k with seed + k
const plan: { kind: Kind; seed: number; cases: number }[] = [];
for (const [kind, f] of Object.entries(share) as [Kind, number][]) {
  const n = Math.round(total * f);
  for (let k = 0; k * chunk < n; k++) plan.push({ kind, seed: seed + k, cases: Math.min(chunk, n - k * chunk) });
}
const key = (c: { kind: string; seed: number; cases: number }) => `${c.kind}:${c.seed}:${c.cases}`;
const logged = new Map<string, ChunkResult>();
if (logFile && existsSync(logFile)) for (const line of readFileSync(logFile, "utf8").split("\n").filter(Boolean)) logged.set(key(JSON.parse(line) as ChunkResult), JSON.parse(line));
const summaryOnly = process.argv.includes("--summary");
if (summaryOnly && !logFile) {
  console.error("error: --summary needs --log FILE");
  process.exit(2);
}
const todo = summaryOnly ? [] : plan.filter((c) => !logged.has(key(c)));
console.error(`fuzz: ${plan.length} chunks, ${plan.filter((c) => logged.has(key(c))).length} already in the log; ${workers} at a time; nice ${getPriority()}; ${cpus()[0].model}`);

let next = 0;
const worker = async () => {
  while (next < todo.length) {
    const c = todo[next++];
    const r = await runChunk(c.kind, c.seed, c.cases, limitMs, backstopMs);
    logged.set(key(c), r);
    if (logFile) appendFileSync(logFile, JSON.stringify(r) + "\n");
    console.error(`${c.kind} seed ${c.seed}: ${r.cases} cases in ${r.wallSeconds.toFixed(0)} s wall, ${r.cpuSeconds.toFixed(0)} s CPU; ${r.crashes} crashes, ${r.hangs} hangs, ${r.unpositioned} unpositioned, ${r.wrongAcceptances} wrong acceptances`);
  }
};
await Promise.all(Array.from({ length: workers }, worker));

const results = plan.flatMap((c) => logged.get(key(c)) ?? []);
let bad2 = 0;
console.log(`fuzz from seed ${seed}: ${results.reduce((a, r) => a + r.cases, 0)} cases in ${results.length} of ${plan.length} chunks (commits: ${[...new Set(results.map((r) => r.commit ?? "unrecorded"))].join(", ")})`);
for (const kind of KINDS) {
  const rs = results.filter((r) => r.kind === kind);
  if (!rs.length) continue;
  const sum = (f: (r: ChunkResult) => number) => rs.reduce((a, r) => a + f(r), 0);
  const seeds = `${Math.min(...rs.map((r) => r.seed))}-${Math.max(...rs.map((r) => r.seed))}`;
  console.log(`  ${kind.padEnd(12)} ${String(sum((r) => r.cases)).padStart(7)} cases (seeds ${seeds}): ${sum((r) => r.accepted)} accepted, ${sum((r) => r.refused)} refused; crashes ${sum((r) => r.crashes)}, hangs ${sum((r) => r.hangs)}, unpositioned ${sum((r) => r.unpositioned)}, wrong acceptances ${sum((r) => r.wrongAcceptances)}; ${sum((r) => r.wallSeconds).toFixed(0)} s wall, ${sum((r) => r.cpuSeconds).toFixed(0)} s CPU in chunks`);
  bad2 += sum((r) => r.crashes + r.hangs + r.unpositioned + r.wrongAcceptances);
  for (const f of rs.flatMap((r) => r.failures).slice(0, 20)) console.log(`    ${f}`);
}
process.exit(bad2 ? 1 : 0);
