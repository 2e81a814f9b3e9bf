/**
 * `sdc ablate --executor slurm` on a real Slurm: a one-node cluster on localhost started by
 * scripts/slurm-local.sh (Debian's slurm-wlm and munge; .ci/run installs them). If the cluster
 * cannot start, these tests fail; they never skip.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AblationRecord, runAblationJobs, slurmQueue, unitStatuses } from "../../cli/ablate/jobs.ts";
import type { AblateOptions } from "../../cli/ablate/plan.ts";
import { parseSweep } from "../../runtime/eval/sweep.ts";

// under the repository (ignored output/), as the other ablation tests
const root = join("output", `test-ablate-slurm-${process.pid}`);
let cluster = "";

beforeAll(() => {
  const r = spawnSync("bash", ["scripts/slurm-local.sh", "start"], { encoding: "utf8", timeout: 90_000 });
  const conf = r.stdout.match(/^SLURM_CONF=(.+)$/m)?.[1];
  if (r.status !== 0 || !conf) throw new Error(`the local Slurm cluster did not start (exit ${r.status}): ${(r.stderr || r.error?.message || "").trim()}`);
  process.env.SLURM_CONF = conf;
  cluster = conf.replace(/\/slurm\.conf$/, "");
}, 100_000);

afterAll(() => {
  if (cluster) spawnSync("bash", ["scripts/slurm-local.sh", "stop", cluster], { stdio: "ignore", timeout: 60_000 });
  rmSync(root, { recursive: true, force: true });
}, 70_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitFor<T>(what: string, f: () => T | null | undefined | false, timeoutMs = 180_000, everyMs = 200): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}
const record = (out: string) => JSON.parse(readFileSync(join(out, "ablation.json"), "utf8")) as AblationRecord;
const idle = (out: string) => waitFor(`the jobs of ${out} to leave the queue`, () => slurmQueue(record(out).jobName)?.size === 0, 240_000);
/** The table without its timing column (step_s is seconds per step, measured). */
const table = (out: string) => {
  const rows = readFileSync(join(out, "results.md"), "utf8").split("\n").filter((l) => l.startsWith("|"));
  const col = rows[0].split("|").map((c) => c.trim()).indexOf("step_s");
  return rows.map((l) => l.split("|").filter((_, i) => i !== col).join("|"));
};

const A = "tiny+train.log_every=2+depth=1";
const B = "tiny+train.log_every=2+depth=2";
/** long enough that the poll (every 50 ms) catches the deeper unit mid-run on a fast idle machine (40 was not) */
const STEPS = 200;
const units: AblateOptions = {
  base: "tiny", sweeps: [parseSweep("depth=1,2")], set: ["train.log_every=2"], steps: STEPS, batch: 4, seed: 0, backend: "wasm",
  perDigit: 1, cfg: [1], sampleSteps: 2, reference: 200, checkpointEvery: 1000, log: () => {},
};

describe("sdc ablate --executor slurm", () => {
  it("runs a two-unit ablation through sbatch; a unit stopped by SIGTERM checkpoints and the resubmitted task resumes it; the table equals the local executor's", async () => {
    const local = join(root, "local");
    const l = await runAblationJobs("specs/sd3.mdl", { ...units, out: local }, { executor: "local", jobs: 2 });
    expect(l.results?.map((r) => r.id)).toEqual([A, B]);

    const out = join(root, "slurm");
    const s = await runAblationJobs("specs/sd3.mdl", { ...units, out }, { executor: "slurm" });
    expect(s.results).toBeNull();
    expect(s.job).toMatch(/^\d+$/);
    expect(s.ran).toEqual([A, B]);
    const rec = record(out);
    expect(rec.submissions).toEqual([expect.objectContaining({ job: s.job, tasks: { 0: A, 1: B } })]);
    expect(readFileSync(join(out, "slurm", "array.sh"), "utf8")).toContain("#SBATCH --requeue");

    // the deeper (slower) unit, mid-run: SIGTERM to every process of its task, as Slurm does at a time limit or on preemption
    const victim = B;
    const running = await waitFor("unit 1 running past step 4", () => unitStatuses(out, record(out)).find((u) => u.id === victim && u.state === "running" && u.step >= 4), 180_000, 50);
    expect(running.step).toBeLessThan(STEPS);
    const c = spawnSync("scancel", ["--full", "--signal=TERM", `${s.job}_1`], { encoding: "utf8" });
    expect(c.status, c.stderr).toBe(0);
    await idle(out);
    const st = unitStatuses(out, record(out));
    expect(st.map((u) => [u.id, u.state])).toEqual([[A, "done"], [victim, "interrupted"]]);
    expect(st[1].detail).toMatch(/^exit 143/);
    const stopped = Number(readFileSync(join(out, victim, "run", "checkpoints", "latest"), "utf8").trim().replace("step-", ""));
    // no periodic checkpoints (every 1000 steps): this one was written on SIGTERM
    expect(stopped).toBeGreaterThanOrEqual(running.step);
    expect(stopped).toBeLessThan(STEPS);

    // the rerun gathers the finished unit and resubmits only the interrupted one, which resumes
    const again = await runAblationJobs("specs/sd3.mdl", { ...units, out }, { executor: "slurm" });
    expect(again.ran).toEqual([victim]);
    expect(again.done).toEqual([A]);
    expect(record(out).submissions[1]).toEqual(expect.objectContaining({ job: again.job, tasks: { 1: victim } }));
    await idle(out);
    const log = readFileSync(join(out, victim, "task.log"), "utf8");
    expect(log).toContain(`task: resuming from step ${stopped}`);
    expect(log).toMatch(new RegExp(`resumed from .*step-0*${stopped} at step ${stopped}`));

    const done = await runAblationJobs("specs/sd3.mdl", { ...units, out }, { executor: "slurm" });
    expect(done.ran).toEqual([]);
    expect(done.results?.map((r) => r.id)).toEqual([A, B]);
    expect(existsSync(join(out, "plot.svg"))).toBe(true);
    // same seeds, same numbers: the resumed unit too (exact resume)
    expect(table(out)).toEqual(table(local));
    expect(table(out)).toHaveLength(4);
  }, 600_000);

  it("arms from two spec files, the second matched to the first's parameter count: each compiled into its own package, run as array tasks, gathered into one table", async () => {
    const out = join(root, "specs");
    const o: AblateOptions = {
      sweeps: [], set: ["train.log_every=1"], steps: 2, batch: 4, seed: 0, backend: "wasm", perDigit: 1, cfg: [1], sampleSteps: 2, reference: 200, checkpointEvery: 1, out,
      match: { params: [null, "width"], on: "network" }, log: () => {},
    };
    const arms = ["specs/sd3.mdl:tiny+depth=1", "test/specs/ablate-ew.mdl"];
    const s = await runAblationJobs(arms, o, { executor: "slurm" });
    expect(s.ran).toHaveLength(2);
    const [A, B] = s.ran;
    expect(A).toBe("sd3.tiny+train.log_every=1+depth=1");
    expect(B).toMatch(/^ablate-ew\.base\+train\.log_every=1\+width=\d+$/);
    expect(record(out).spec).toBe(arms.join(" "));
    for (const u of [A, B]) expect(readFileSync(join(out, u, "task.sh"), "utf8")).toContain(resolve(out, u, "generated"));
    await idle(out);
    const done = await runAblationJobs(arms, o, { executor: "slurm" });
    expect(done.results?.map((r) => [r.id, r.network])).toEqual([[A, "mmdit"], [B, "ew_net"]]);
    const [ra, rb] = done.results!;
    expect(rb.match).toMatchObject({ param: "width", on: "network", target: ra.networkParams, achieved: rb.networkParams });
    const md = readFileSync(join(out, "results.md"), "utf8");
    expect(md).toContain(`| ${B} | test/specs/ablate-ew.mdl | ew_net |  | train.log_every=1 width=${rb.match!.value} | ${rb.params} | ${rb.networkParams} | width=${rb.match!.value} | ${ra.networkParams} | ${rb.networkParams} |`);
  }, 300_000);

  it("a failed unit shows its error in --status and the rerun resubmits it", async () => {
    const out = join(root, "fail");
    const o: AblateOptions = { variants: ["tiny"], sweeps: [], set: ["depth=1"], steps: 2, batch: 4, seed: 0, backend: "wasm", perDigit: 1, cfg: [1], sampleSteps: 2, reference: 200, checkpointEvery: 1, out, log: () => {} };
    const s = await runAblationJobs("specs/sd3.mdl", { ...o, judgeWeights: "weights/no-such-judge.safetensors" }, { executor: "slurm" });
    expect(s.ran).toEqual(["tiny+depth=1"]);
    await idle(out);
    const cli = spawnSync("node", ["bin/sdc.mjs", "ablate", "--status", out], { encoding: "utf8", env: process.env });
    expect(cli.status, cli.stderr).toBe(0);
    const row = cli.stdout.split("\n").find((l) => l.startsWith("tiny+depth=1"))!;
    expect(row).toMatch(/failed\s+2\/2\s+\d+_0\s+exit 1: error: .*no-such-judge\.safetensors/);

    const again = await runAblationJobs("specs/sd3.mdl", o, { executor: "slurm" });
    expect(again.ran).toEqual(["tiny+depth=1"]);
    expect(again.job).not.toBe(s.job);
    await idle(out);
    expect(readFileSync(join(out, "tiny+depth=1", "task.log"), "utf8")).toContain("task: already trained (2 steps)");
    const done = await runAblationJobs("specs/sd3.mdl", o, { executor: "slurm" });
    expect(done.results?.[0].id).toBe("tiny+depth=1");
    expect(unitStatuses(out, record(out))[0].state).toBe("done");
  }, 400_000);
});
