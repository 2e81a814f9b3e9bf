/**
 * `sdc ablate --executor local|slurm`: each unit is a job of its own, a shell script that runs
 * `sdc train` then `sdc eval` in the unit's folder (OUT/<unit>/task.sh, generated here), so the
 * units can run as child processes (`local`, `--jobs N` at once) or as one Slurm job array
 * (`slurm`, `sbatch --array`). The folder layout is the in-process executor's, plus:
 *   OUT/ablation.json       the units and every submission (executor, Slurm job id, array task -> unit)
 *   OUT/slurm/array.sh      the batch script (slurm), OUT/slurm/<job>_<task>.out Slurm's own output
 *   OUT/<unit>/task.sh      the unit's commands; task.log (its output, appended per attempt);
 *   OUT/<unit>/task.exit    {"code", "start", "end", "host"} of the last attempt, written when it ends;
 *   OUT/<unit>/task.pid     the task's pid (local)
 * unit.json is assembled here from run/, eval.json and task.exit once a task has ended with 0
 * (the in-process executor writes the same file). A task resumes from run/checkpoints/latest when
 * there is one (a unit stopped by SIGTERM checkpoints first), so resubmitting never starts over.
 */
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { availableCpus } from "../../runtime/executors/native/native.ts";
import { writeFileAtomic } from "../../runtime/io/atomic.ts";
import { type PlannedUnit, resultsMarkdown, type UnitResult } from "../../runtime/eval/sweep.ts";
import { analyzeSeeds, hasSeeds, seedsMarkdown } from "../../runtime/eval/seeds.ts";
import { EXIT, InputError, UsageError } from "../errors.ts";
import { type AblateOptions, clearStaleUnit, compileUnit, finishedUnit, planAblation, unitResult, type UnitModel, writeResults } from "./plan.ts";

export type ExecutorName = "inprocess" | "local" | "slurm";

export interface JobOptions {
  executor: "local" | "slurm";
  /** local: units at once (default 1) */
  jobs?: number;
  /** slurm: sbatch --partition */
  partition?: string;
  /** slurm: GPUs per unit (--gres=gpu:N) */
  gpusPerUnit?: number;
  /** CPUs per unit: each unit's thread count (SDC_THREADS); slurm: --cpus-per-task (default 1); local: default the CPUs this process may use / jobs */
  cpusPerUnit?: number;
  /** slurm: --time */
  time?: string;
  /** slurm: more sbatch arguments, as given */
  sbatchArgs?: string[];
  /** slurm: false = prepare the unit folders and the batch script, print the sbatch command, submit nothing */
  submit?: boolean;
  /** how a task starts sdc (default: node <this package>/bin/sdc.mjs); e.g. `bash /shared/sdc-gpu/run.sh` */
  sdcCommand?: string;
}

export interface Submission {
  /** Slurm job id, or "local" */
  job: string;
  submitted: string;
  /** array task index -> unit id */
  tasks: Record<string, string>;
  script?: string;
}

/** OUT/ablation.json */
export interface AblationRecord {
  format: "sdc-ablation";
  version: 1;
  /** the spec, or the arms as given (space-separated) */
  spec: string;
  executor: "local" | "slurm";
  /** the Slurm job name of this ablation's arrays (squeue --name) */
  jobName: string;
  units: { id: string; steps: number }[];
  submissions: Submission[];
}

export type UnitState = "done" | "pending" | "running" | "failed" | "interrupted" | "not started" | "not submitted";

export interface UnitStatus {
  id: string;
  state: UnitState;
  /** trained steps (the last metrics line or checkpoint), and the unit's steps */
  step: number;
  steps: number;
  /** "123_0" (Slurm) or "local" */
  job: string | null;
  /** the val loss when done, Slurm's reason when pending, the last log line when failed */
  detail: string;
}

export interface JobsSummary {
  out: string;
  /** units submitted (slurm) or run (local) by this call */
  ran: string[];
  /** units gathered or done before */
  done: string[];
  /** slurm: units still queued or running (not resubmitted) */
  active: string[];
  failed: UnitStatus[];
  /** slurm --no-submit: units made ready, not submitted */
  prepared?: string[];
  job: string | null;
  results: UnitResult[] | null;
  plot: { svg: string | null; png: string | null; note?: string } | null;
}

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
const readJson = <T>(p: string): T | null => {
  try {
    return JSON.parse(readFileSync(p, "utf8")) as T;
  } catch {
    return null;
  }
};

export function defaultSdcCommand(): string {
  return `node ${q(join(REPO, "bin", "sdc.mjs"))}`;
}

/** The unit's task script: train (resuming from its latest checkpoint), then eval. Pure. */
export function taskScript(unit: PlannedUnit, o: { unitDir: string; cwd: string; genDir: string; sdcCommand: string; checkpointEvery: number; judge: string; judgeWeights: string }): string {
  const inp = unit.inputs;
  const U = o.unitDir;
  const train = [
    `"\${SDC[@]}" train`, q(o.genDir), `--out "$U/run"`, `--steps ${inp.steps}`, `--batch-size ${inp.batch}`, `--seed ${inp.seed}`, `--backend ${inp.backend}`,
    "--sample-every 0", `--checkpoint-every ${o.checkpointEvery}`, "--samples 16", ...(inp.eval.sampleSteps !== null ? [`--sample-steps ${inp.eval.sampleSteps}`] : []), "--no-progress", `"\${resume[@]}"`,
  ].join(" ");
  const ev = [
    `"\${SDC[@]}" eval`, `"$U/run"`, `--generated ${q(o.genDir)}`, `--judge ${q(o.judge)}`, `--judge-weights ${q(o.judgeWeights)}`, `--per-digit ${inp.eval.perDigit}`, `--cfg ${inp.eval.cfg.join(",")}`,
    ...(inp.eval.sampleSteps !== null ? [`--steps ${inp.eval.sampleSteps}`] : []), `--seed ${inp.eval.seed}`, ...(inp.eval.reference !== null ? [`--reference ${inp.eval.reference}`] : []),
    `--backend ${inp.backend}`, `--out "$U/eval.json"`,
  ].join(" ");
  return `#!/usr/bin/env bash
# sdc ablate, unit ${unit.id}: train, then eval, in this folder. Written by \`sdc ablate\`
# (rewritten when the unit is resubmitted); run it by hand with: bash ${q(join(U, "task.sh"))}
# SDC_COMMAND overrides how sdc starts (e.g. "bash /shared/sdc-gpu/run.sh", the offline GPU pack).
# A SIGTERM (Slurm's time limit, preemption, scancel --full --signal=TERM) reaches sdc train,
# which checkpoints and stops; the next attempt resumes from run/checkpoints/latest.
set -uo pipefail
U=${q(U)}
exec >>"$U/task.log" 2>&1
eval "SDC=(\${SDC_COMMAND:-${o.sdcCommand.replace(/[\\"$`]/g, "\\$&")}})"
start=$(date +%s)
rm -f "$U/task.exit" "$U/eval.json"
echo $$ > "$U/task.pid"
echo "task: start $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)\${SLURM_ARRAY_JOB_ID:+, job \${SLURM_ARRAY_JOB_ID}_\${SLURM_ARRAY_TASK_ID}}, pid $$"
finish() {
  printf '{"code":%d,"start":%d,"end":%d,"host":"%s"}\\n' "$1" "$start" "$(date +%s)" "$(hostname)" > "$U/task.exit.tmp" && mv "$U/task.exit.tmp" "$U/task.exit"
  echo "task: end $(date -u +%Y-%m-%dT%H:%M:%SZ), exit $1"
  exit "$1"
}
# the signal goes to every process of the job; sdc handles it, this shell only waits for it
trap 'echo "task: SIGTERM: waiting for sdc to checkpoint and stop"' TERM
run() {
  "$@" &
  local child=$! rc
  wait "$child"; rc=$?
  while kill -0 "$child" 2>/dev/null; do wait "$child"; rc=$?; done
  return "$rc"
}
cd ${q(o.cwd)} || finish 1

steps=${inp.steps}
trained=0
if [ -f "$U/run/checkpoints/latest" ]; then
  latest=$(cat "$U/run/checkpoints/latest"); latest=\${latest#step-}
  if [[ "$latest" =~ ^[0-9]+$ ]]; then trained=$((10#$latest)); fi
fi
resume=()
if [ "$trained" -ge "$steps" ]; then
  echo "task: already trained ($trained steps)"
else
  if [ "$trained" -gt 0 ]; then resume=(--resume "$U/run"); echo "task: resuming from step $trained"; else rm -rf "$U/run"; fi
  run ${train} || finish $?
fi
run ${ev} || finish $?
finish 0
`;
}

/** The Slurm batch script of an ablation: array task i runs unit i's task.sh. Pure. */
export function arrayScript(out: string, units: string[], o: JobOptions & { jobName: string }): string {
  const lines = [
    "#!/usr/bin/env bash",
    `# sdc ablate: ${units.length} units of ${out}, one Slurm array task each (written by sdc ablate; submitted with sbatch --array=...)`,
    `#SBATCH --job-name=${o.jobName}`,
    `#SBATCH --output=${join(out, "slurm", "%A_%a.out")}`,
    "#SBATCH --open-mode=append",
    "#SBATCH --requeue",
    "#SBATCH --ntasks=1",
    `#SBATCH --cpus-per-task=${o.cpusPerUnit ?? 1}`,
    ...(o.partition ? [`#SBATCH --partition=${o.partition}`] : []),
    ...(o.gpusPerUnit ? [`#SBATCH --gres=gpu:${o.gpusPerUnit}`] : []),
    ...(o.time ? [`#SBATCH --time=${o.time}`] : []),
    `UNITS=(${units.map(q).join(" ")})`,
    // the native CPU kernels' threads: the unit's CPUs, not the node's
    `export SDC_THREADS=\${SLURM_CPUS_PER_TASK:-${o.cpusPerUnit ?? 1}}`,
    `exec bash ${q(out)}/"\${UNITS[$SLURM_ARRAY_TASK_ID]}"/task.sh`,
    "",
  ];
  return lines.join("\n");
}

function readRecord(out: string): AblationRecord | null {
  const r = readJson<AblationRecord>(join(out, "ablation.json"));
  return r && r.format === "sdc-ablation" ? r : null;
}

interface TaskExit {
  code: number;
  start: number;
  end: number;
  host: string;
}

/** The last non-empty line of a file that sdc wrote (not the task's own start/end lines). */
function lastLogLine(path: string): string {
  if (!existsSync(path)) return "";
  const lines = readFileSync(path, "utf8").split("\n").map((l) => l.trim()).filter(Boolean);
  const own = /^task: (start|end|SIGTERM)/;
  return [...lines].reverse().find((l) => !own.test(l)) ?? lines[lines.length - 1] ?? "";
}

/** Trained steps: the last metrics line, else the latest checkpoint's name. */
function trainedSteps(dir: string): number {
  const m = join(dir, "run", "metrics.jsonl");
  let step = 0;
  if (existsSync(m)) {
    for (const l of readFileSync(m, "utf8").split("\n")) {
      const s = l.trim() && readJsonLine(l);
      if (s && typeof s.step === "number") step = Math.max(step, s.step);
    }
  }
  const latest = join(dir, "run", "checkpoints", "latest");
  if (existsSync(latest)) {
    const n = Number(readFileSync(latest, "utf8").trim().replace(/^step-/, ""));
    if (Number.isFinite(n)) step = Math.max(step, n);
  }
  return step;
}
function readJsonLine(l: string): { step?: number } | null {
  try {
    return JSON.parse(l);
  } catch {
    return null;
  }
}

/** Array tasks of this ablation that Slurm still holds: "job_task" -> state and reason. Null when squeue is not there. */
export function slurmQueue(jobName: string): Map<string, { state: string; reason: string }> | null {
  const r = spawnSync("squeue", ["-h", "-r", "--name", jobName, "-o", "%i|%T|%r"], { encoding: "utf8" });
  if (r.error || r.status !== 0) return null;
  const m = new Map<string, { state: string; reason: string }>();
  for (const line of r.stdout.split("\n")) {
    const [id, state, reason] = line.trim().split("|");
    if (id) m.set(id, { state, reason: reason ?? "" });
  }
  return m;
}

/** Slurm's accounting for a task (sacct), when the cluster keeps it; else null. */
function sacctState(task: string): string | null {
  const r = spawnSync("sacct", ["-n", "-P", "-X", "-j", task, "-o", "State,ExitCode"], { encoding: "utf8" });
  if (r.error || r.status !== 0) return null;
  const line = r.stdout.trim().split("\n")[0];
  return line ? line.replace("|", ", exit ") : null;
}

const pidAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Each unit's state, from its folder's files and (slurm) squeue / sacct. */
export function unitStatuses(out: string, rec: AblationRecord, queue: Map<string, { state: string; reason: string }> | null = rec.executor === "slurm" ? slurmQueue(rec.jobName) : null): UnitStatus[] {
  const lastJob = new Map<string, string>();
  for (const s of rec.submissions) for (const [i, id] of Object.entries(s.tasks)) lastJob.set(id, s.job === "local" ? "local" : `${s.job}_${i}`);
  return rec.units.map(({ id, steps }) => {
    const dir = join(out, id);
    const job = lastJob.get(id) ?? null;
    const st = (state: UnitState, detail = "", step = trainedSteps(dir)): UnitStatus => ({ id, state, step, steps, job, detail });
    const res = readJson<UnitResult>(join(dir, "unit.json"));
    if (res) return st("done", `val_loss ${res.valLoss.toFixed(4)}`, steps);
    const exit = readJson<TaskExit>(join(dir, "task.exit"));
    const q = job && queue ? queue.get(job) : undefined;
    if (q) {
      const state = q.state.toLowerCase();
      if (state === "pending") return st("pending", q.reason && q.reason !== "None" ? q.reason : "");
      if (state === "running" || state === "completing" || state === "configuring") return st("running", exit ? "" : lastLogLine(join(dir, "task.log")).slice(0, 160));
      return st("pending", state); // requeued, suspended, ...
    }
    if (exit && exit.code === 0 && existsSync(join(dir, "eval.json"))) return st("done", "finished; the next run gathers it", steps);
    if (exit) {
      const line = lastLogLine(join(dir, "task.log"));
      return st(exit.code === 130 || exit.code === 143 ? "interrupted" : "failed", `exit ${exit.code}: ${line}`.slice(0, 240));
    }
    if (job === "local") {
      // prepare() removes an old task.pid: without one the unit waits for a free --jobs slot (or its sdc ablate was stopped first)
      if (!existsSync(join(dir, "task.pid"))) return st("not started");
      const pid = Number(readFileSync(join(dir, "task.pid"), "utf8"));
      if (Number.isFinite(pid) && pidAlive(pid)) return st("running");
      return st("failed", `no exit recorded (killed?): ${lastLogLine(join(dir, "task.log"))}`.slice(0, 240));
    }
    if (job) {
      // Slurm no longer holds it and the task left no exit: killed, or it never started
      const acct = sacctState(job);
      const slurmOut = join(out, "slurm", `${job}.out`);
      const line = lastLogLine(join(dir, "task.log")) || lastLogLine(slurmOut);
      if (queue === null) return st("pending", "squeue unavailable; no exit recorded yet");
      return st("failed", `${acct ? `sacct: ${acct}; ` : ""}no exit recorded: ${line || "(no output)"}`.slice(0, 240));
    }
    return st("not submitted");
  });
}

export function formatStatus(rows: UnitStatus[]): string {
  const head = ["unit", "state", "step", "job", "detail"];
  const cells = rows.map((r) => [r.id, r.state, `${r.step}/${r.steps}`, r.job ?? "-", r.detail]);
  const w = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const fmt = (c: string[]) => c.map((x, i) => (i === c.length - 1 ? x : x.padEnd(w[i]))).join("  ").trimEnd();
  const counts = new Map<string, number>();
  for (const r of rows) counts.set(r.state, (counts.get(r.state) ?? 0) + 1);
  return [fmt(head), ...cells.map(fmt), "", [...counts].map(([k, n]) => `${n} ${k}`).join(", ")].join("\n") + "\n";
}

/** `sdc ablate --status DIR` */
export function ablationStatus(out: string): UnitStatus[] {
  if (!existsSync(out)) throw new UsageError(`--status: no such folder: ${out}`);
  const rec = readRecord(out);
  if (!rec) throw new InputError(`${out} has no ablation.json: --status reads the folders of \`sdc ablate --executor local|slurm\` runs (an in-process ablation is done when its command returns)`);
  return unitStatuses(out, rec);
}

/** Gather a unit whose task ended well: assemble unit.json from its files. Null if it has not. */
function gather(unit: PlannedUnit, dir: string): UnitResult | null {
  const exit = readJson<TaskExit>(join(dir, "task.exit"));
  const ev = readJson<{ valLoss: number; cfg: UnitResult["cfg"] }>(join(dir, "eval.json"));
  if (!exit || exit.code !== 0 || !ev) return null;
  const gen = join(dir, "generated");
  const name = existsSync(gen) ? readdirSync(gen).find((d) => existsSync(join(gen, d, "ir.json"))) : undefined;
  if (!name) return null;
  const ir = JSON.parse(readFileSync(join(gen, name, "ir.json"), "utf8")) as { spec: { name: string }; network?: { block: string }; stats: { params: number; networkParams: number }; train?: { precision?: "fp32" | "bf16" } };
  const model: UnitModel = { name: ir.spec.name, network: ir.network?.block, params: ir.stats.params, networkParams: ir.stats.networkParams, precision: ir.train?.precision ?? "fp32" };
  const r = unitResult(unit, join(dir, "run"), model, ev, exit.end - exit.start);
  writeFileAtomic(join(dir, "unit.json"), JSON.stringify(r, null, 2) + "\n");
  return r;
}

/** Make the unit folder ready for a task: inputs.json, the compiled spec, task.sh. Returns task.sh's path. */
function prepare(unit: PlannedUnit, dir: string, o: AblateOptions, j: JobOptions, log: (s: string) => void): string {
  if (clearStaleUnit(unit, dir)) log(`${unit.id}: an unfinished run with other inputs was there; starting it over`);
  mkdirSync(dir, { recursive: true });
  writeFileAtomic(join(dir, "inputs.json"), JSON.stringify(unit.inputs, null, 2) + "\n");
  const { genDir } = compileUnit(unit, dir);
  const script = taskScript(unit, {
    unitDir: resolve(dir), cwd: process.cwd(), genDir: resolve(genDir), sdcCommand: j.sdcCommand ?? defaultSdcCommand(),
    checkpointEvery: o.checkpointEvery ?? 50, judge: resolve(o.judge ?? "generated/judge"), judgeWeights: resolve(o.judgeWeights ?? "weights/judge.safetensors"),
  });
  const path = join(dir, "task.sh");
  writeFileAtomic(path, script);
  rmSync(join(dir, "task.exit"), { force: true });
  rmSync(join(dir, "task.pid"), { force: true });
  return path;
}

function jobNameOf(out: string): string {
  return `sdc-${basename(resolve(out)).replace(/[^A-Za-z0-9_.-]/g, "_").slice(0, 40)}-${createHash("sha256").update(resolve(out)).digest("hex").slice(0, 8)}`;
}

/** Run the ablation's units as jobs: gather what finished, (re)start what is missing or failed, write the results when all are done. */
export async function runAblationJobs(specs: string | string[], o: AblateOptions, j: JobOptions): Promise<JobsSummary> {
  const log = o.log ?? ((s: string) => process.stderr.write(s + "\n"));
  const { units, out } = planAblation(specs, o);
  if (j.executor === "slurm" && j.submit !== false && spawnSync("sh", ["-c", "command -v sbatch"], { stdio: "ignore" }).status !== 0) {
    throw new InputError("--executor slurm needs Slurm's sbatch on PATH; run sdc ablate on a login node of the cluster (or prepare the units with --no-submit)");
  }
  mkdirSync(out, { recursive: true });
  const prev = readRecord(out);
  const rec: AblationRecord = {
    format: "sdc-ablation", version: 1, spec: typeof specs === "string" ? specs : specs.join(" "), executor: j.executor, jobName: prev?.jobName ?? jobNameOf(out),
    units: units.map((u) => ({ id: u.id, steps: u.inputs.steps })), submissions: prev?.submissions ?? [],
  };
  writeFileAtomic(join(out, "ablation.json"), JSON.stringify(rec, null, 2) + "\n");
  log(`${units.length} unit${units.length === 1 ? "" : "s"} in ${out}: ${units.map((u) => u.id).join(", ")}`);

  const statuses = new Map(unitStatuses(out, rec).map((s) => [s.id, s]));
  const results = new Map<string, UnitResult>();
  const active: string[] = [];
  const todo: { index: number; unit: PlannedUnit }[] = [];
  for (const [index, unit] of units.entries()) {
    const dir = join(out, unit.id);
    const r = finishedUnit(unit, dir) ?? gather(unit, dir);
    if (r) {
      results.set(unit.id, r);
      continue;
    }
    const s = statuses.get(unit.id)!;
    if (s.state === "pending" || s.state === "running") {
      log(`${unit.id}: ${s.state}${s.job ? ` (${s.job})` : ""}; left as it is`);
      active.push(unit.id);
      continue;
    }
    if (s.state === "failed" || s.state === "interrupted") log(`${unit.id}: ${s.state} (${s.detail}); resubmitting${s.step > 0 ? `, it resumes from step ${s.step}` : ""}`);
    todo.push({ index, unit });
  }

  const done = [...results.keys()];
  const ran = todo.map((t) => t.unit.id);
  let job: string | null = null;
  if (todo.length) {
    const scripts = todo.map(({ unit }) => prepare(unit, join(out, unit.id), o, j, log));
    const tasks = Object.fromEntries(todo.map(({ index, unit }) => [String(index), unit.id]));
    if (j.executor === "slurm") {
      mkdirSync(join(out, "slurm"), { recursive: true });
      const script = join(out, "slurm", "array.sh");
      writeFileAtomic(script, arrayScript(resolve(out), units.map((u) => u.id), { ...j, jobName: rec.jobName }));
      const args = ["--parsable", `--array=${todo.map((t) => t.index).join(",")}`, ...(j.sbatchArgs ?? []), script];
      if (j.submit === false) {
        log(`--no-submit: ${todo.length} unit${todo.length === 1 ? "" : "s"} prepared; this command without --no-submit runs: sbatch ${args.join(" ")}`);
        return { out, ran: [], done, active, failed: [], prepared: ran, job: null, results: null, plot: null };
      }
      const r = spawnSync("sbatch", args, { encoding: "utf8" });
      if (r.error || r.status !== 0) throw new InputError(`sbatch ${args.join(" ")} failed: ${(r.stderr || r.error?.message || "").trim()}`);
      job = r.stdout.trim().split(";")[0];
      if (!/^\d+$/.test(job)) throw new InputError(`sbatch printed '${r.stdout.trim()}', not a job id`);
      rec.submissions.push({ job, submitted: new Date().toISOString(), tasks, script });
      writeFileAtomic(join(out, "ablation.json"), JSON.stringify(rec, null, 2) + "\n");
      for (const { index, unit } of todo) log(`${unit.id}: submitted as ${job}_${index}`);
    } else {
      rec.submissions.push({ job: "local", submitted: new Date().toISOString(), tasks });
      writeFileAtomic(join(out, "ablation.json"), JSON.stringify(rec, null, 2) + "\n");
      await runLocal(todo.map((t, i) => ({ id: t.unit.id, script: scripts[i] })), j.jobs ?? 1, j.sdcCommand, unitThreads(j), log);
      for (const { unit } of todo) {
        const r = gather(unit, join(out, unit.id));
        if (r) results.set(unit.id, r);
      }
    }
  }

  const failed = j.executor === "local" ? unitStatuses(out, rec).filter((s) => s.state === "failed" || s.state === "interrupted") : [];
  if (results.size < units.length) return { out, ran, done, active, failed, job, results: null, plot: null };
  const ordered = units.map((u) => results.get(u.id)!);
  const plot = await writeResults(out, specs, o, ordered, log);
  return { out, ran, done, active, failed, job, results: ordered, plot };
}

/**
 * A local unit's thread count (its SDC_THREADS): --cpus-per-unit, else this process's
 * SDC_THREADS, else the CPUs this process may use shared among the units that run at once. Pure.
 */
export function unitThreads(j: Pick<JobOptions, "jobs" | "cpusPerUnit">, env: NodeJS.ProcessEnv = process.env, cpus: () => number = availableCpus): number {
  if (j.cpusPerUnit !== undefined) return j.cpusPerUnit;
  const t = Number(env.SDC_THREADS);
  if (Number.isInteger(t) && t > 0) return t;
  return Math.max(1, Math.floor(cpus() / Math.max(1, j.jobs ?? 1)));
}

/** Run task scripts as child processes, `jobs` at once, each with `threads` kernel threads. */
async function runLocal(tasks: { id: string; script: string }[], jobs: number, sdcCommand: string | undefined, threads: number, log: (s: string) => void): Promise<void> {
  let next = 0;
  let finished = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const t = tasks[next++];
      log(`[${next}/${tasks.length}] ${t.id}: started`);
      const code = await new Promise<number>((res) => {
        const env = { ...process.env, SDC_THREADS: String(threads), ...(sdcCommand ? { SDC_COMMAND: sdcCommand } : {}) };
        const child = spawn("bash", [t.script], { stdio: "ignore", env });
        child.on("error", () => res(EXIT.internal));
        child.on("exit", (c, sig) => res(c ?? (sig ? 128 : 1)));
      });
      finished++;
      log(`[${finished}/${tasks.length} finished] ${t.id}: ${code === 0 ? "done" : `exit ${code}`}`);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(jobs, tasks.length)) }, worker));
}

/** The CLI's report of a jobs run. */
export function formatJobsSummary(s: JobsSummary, seconds: number, status: UnitStatus[]): { text: string; code: number } {
  if (s.results) {
    return { text: `${resultsMarkdown(s.results)}${hasSeeds(s.results) ? `\n${seedsMarkdown(analyzeSeeds(s.results))}` : ""}\nran ${s.ran.length}, gathered or done before ${s.done.length}; ${seconds.toFixed(0)} s; results in ${s.out}/results.{md,csv,json}${s.plot?.svg ? `, plot ${s.plot.png ?? s.plot.svg}` : ""}\n`, code: EXIT.ok };
  }
  const head = s.prepared?.length ? `prepared ${s.prepared.length} unit${s.prepared.length === 1 ? "" : "s"} (--no-submit): ${s.prepared.join(", ")}; nothing submitted\n` : s.job ? `submitted ${s.ran.length} unit${s.ran.length === 1 ? "" : "s"} as Slurm job ${s.job} (${s.ran.join(", ")})\n` : s.ran.length ? "" : `nothing submitted: ${s.active.length} unit${s.active.length === 1 ? "" : "s"} still queued or running\n`;
  const tail = s.prepared?.length ? "\nsubmit: the same command without --no-submit\n" : s.failed.length ? `\n${s.failed.length} unit${s.failed.length === 1 ? "" : "s"} did not finish; rerun the same command to resubmit ${s.failed.length === 1 ? "it" : "them"} (a unit resumes from its last checkpoint)\n` : `\nwatch: sdc ablate --status ${s.out}; rerun the same command to gather the results when all are done\n`;
  return { text: head + formatStatus(status) + tail, code: s.failed.length ? EXIT.spec : EXIT.ok };
}
