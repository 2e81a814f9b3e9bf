import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { runAblation, type UnitRunner } from "../../cli/ablate/inprocess.ts";
import { parseSweep, type UnitResult } from "../../runtime/eval/sweep.ts";

// under the repository (ignored output/), because compiled units import "sdc/runtime"
const root = join("output", `test-ablate-${process.pid}`);
afterAll(() => rmSync(root, { recursive: true, force: true }));

const fake = (calls: string[], failOn?: string): UnitRunner => async (unit, dir) => {
  calls.push(unit.id);
  mkdirSync(dir, { recursive: true });
  if (unit.id === failOn) throw new Error(`interrupted in ${unit.id}`);
  const depth = Number(unit.inputs.set.find((s) => s.startsWith("depth="))!.split("=")[1]);
  const hd = Number(unit.inputs.set.find((s) => s.startsWith("head_dim="))!.split("=")[1]);
  return { id: unit.id, inputs: unit.inputs, name: "x", params: depth * hd * 1000, networkParams: 0, stepSeconds: 0.1, trainSeconds: 1, finalTrainLoss: 1 / depth, valLoss: 1 / hd, cfg: [{ cfg: 4, accuracy: depth / 10, frechet: hd, sampleSeconds: 0.1 }], wallSeconds: 1 } satisfies UnitResult;
};

describe("sdc ablate", () => {
  const opts = (out: string) => ({ base: "tiny", sweeps: [parseSweep("depth=2,4"), parseSweep("head_dim=16,32")], steps: 2, batch: 4, seed: 0, out, backend: "cpu" as const, perDigit: 1, cfg: [4], log: () => {} });

  it("runs the cartesian product, and a rerun after an interruption redoes only unfinished units", async () => {
    const out = join(root, "fake");
    const calls: string[] = [];
    await expect(runAblation("specs/sd3.mdl", opts(out), fake(calls, "tiny+depth=4+head_dim=16"))).rejects.toThrow(/interrupted/);
    expect(calls).toEqual(["tiny+depth=2+head_dim=16", "tiny+depth=2+head_dim=32", "tiny+depth=4+head_dim=16"]);
    const first = join(out, "tiny+depth=2+head_dim=16", "unit.json");
    const mtime = statSync(first).mtimeMs;
    expect(existsSync(join(out, "tiny+depth=4+head_dim=16", "unit.json"))).toBe(false);

    const again: string[] = [];
    const logs: string[] = [];
    const s = await runAblation("specs/sd3.mdl", { ...opts(out), log: (l) => logs.push(l) }, fake(again));
    // from the second unit run on, each start says how long the rest will take
    expect(logs.filter((l) => /: running/.test(l))).toEqual([expect.stringMatching(/\[3\/4\] tiny\+depth=4\+head_dim=16: running$/), expect.stringMatching(/\[4\/4\] tiny\+depth=4\+head_dim=32: running \(ETA \d+s for 1 unit at \d+s each\)/)]);
    expect(again).toEqual(["tiny+depth=4+head_dim=16", "tiny+depth=4+head_dim=32"]);
    expect(s.skipped).toEqual(["tiny+depth=2+head_dim=16", "tiny+depth=2+head_dim=32"]);
    expect(statSync(first).mtimeMs).toBe(mtime);
    expect(s.results.map((r) => r.params)).toEqual([32000, 64000, 64000, 128000]);

    const third: string[] = [];
    await runAblation("specs/sd3.mdl", opts(out), fake(third));
    expect(third).toEqual([]);
    const csv = readFileSync(join(out, "results.csv"), "utf8").trim().split("\n");
    expect(csv).toHaveLength(5);
    expect(readFileSync(join(out, "results.md"), "utf8")).toContain("| tiny+depth=4+head_dim=32 | specs/sd3.mdl |  | tiny | depth=4 head_dim=32 | 128000 | 0 |");
    expect(JSON.parse(readFileSync(join(out, "results.json"), "utf8"))).toHaveLength(4);
    expect(readFileSync(join(out, "plot.svg"), "utf8")).toContain("<svg");
    expect(s.plot.svg).toBe(join(out, "plot.svg"));

    // a finished unit made with other inputs is not silently reused
    await expect(runAblation("specs/sd3.mdl", { ...opts(out), steps: 3 }, fake([]))).rejects.toThrow(/other inputs \(steps: 2 then, 3 now\)/);
  });

  it("refuses unclear requests", async () => {
    await expect(runAblation("specs/sd3.mdl", { ...opts(join(root, "x")), variants: ["tiny"] }, fake([]))).rejects.toThrow(/either --variants/);
    await expect(runAblation("specs/sd3.mdl", { ...opts(join(root, "x")), sweeps: [] , base: undefined }, fake([]))).rejects.toThrow(/nothing to ablate/);
    await expect(runAblation("specs/nope.mdl", opts(join(root, "x")), fake([]))).rejects.toThrow(/not found/);
  });
});

describe("sdc ablate, real units", () => {
  it("compiles, trains and evaluates a tiny unit into its folder; a rerun skips it", async () => {
    const out = join(root, "real");
    const o = { variants: ["tiny"], sweeps: [], set: ["depth=1"], steps: 2, batch: 4, seed: 0, out, backend: "wasm" as const, perDigit: 1, cfg: [1], sampleSteps: 2, reference: 200, checkpointEvery: 1, log: () => {} };
    const s = await runAblation("specs/sd3.mdl", o);
    expect(s.ran).toEqual(["tiny+depth=1"]);
    const dir = join(out, "tiny+depth=1");
    for (const f of ["inputs.json", "generated/sd3-tiny-depth1/ir.json", "run/checkpoints/latest", "eval.json", "unit.json"]) expect(existsSync(join(dir, f)), f).toBe(true);
    const u = JSON.parse(readFileSync(join(dir, "unit.json"), "utf8")) as UnitResult;
    expect(u.params).toBeGreaterThan(0);
    expect(u.inputs.set).toEqual(["depth=1"]);
    expect(Number.isFinite(u.valLoss) && Number.isFinite(u.finalTrainLoss) && u.stepSeconds > 0).toBe(true);
    expect(u.cfg[0].cfg).toBe(1);
    const mtime = statSync(join(dir, "unit.json")).mtimeMs;
    const again = await runAblation("specs/sd3.mdl", o);
    expect(again.ran).toEqual([]);
    expect(statSync(join(dir, "unit.json")).mtimeMs).toBe(mtime);
  });
});

describe("sdc ablate --seeds", () => {
  it("trains each arm with seeds 0 and 1 in their own folders; the table, arms.json and plot give each arm's mean and interval, and the tests between arms", async () => {
    const out = join(root, "seeds");
    const o = { variants: ["tiny"], sweeps: [parseSweep("depth=1,2")], steps: 2, batch: 4, seed: 0, seeds: 2, out, backend: "wasm" as const, perDigit: 1, cfg: [1], sampleSteps: 2, reference: 200, checkpointEvery: 1, log: () => {} };
    const s = await runAblation("specs/sd3.mdl", o);
    const ids = ["tiny+depth=1+seed=0", "tiny+depth=1+seed=1", "tiny+depth=2+seed=0", "tiny+depth=2+seed=1"];
    expect(s.ran).toEqual(ids);
    for (const id of ids) expect(existsSync(join(out, id, "unit.json")), id).toBe(true);
    const units = s.results;
    expect(units.map((u) => u.inputs.seed)).toEqual([0, 1, 0, 1]);
    expect(units.map((u) => u.group)).toEqual(["tiny+depth=1", "tiny+depth=1", "tiny+depth=2", "tiny+depth=2"]);
    // another seed, another training run
    expect(units[1].finalTrainLoss).not.toBe(units[0].finalTrainLoss);
    const arms = JSON.parse(readFileSync(join(out, "arms.json"), "utf8"));
    expect(arms.arms.map((a: { arm: string }) => a.arm)).toEqual(["tiny+depth=1", "tiny+depth=2"]);
    const v = arms.arms[0].metrics.val_loss;
    expect(v.values).toEqual([units[0].valLoss, units[1].valLoss]);
    expect(v.lo).toBeLessThan(v.mean);
    expect(v.hi).toBeGreaterThan(v.mean);
    expect(arms.comparisons.map((c: { metric: string }) => c.metric)).toEqual(["val_loss", "final_loss", "acc_cfg1", "fd_cfg1"]);
    const md = readFileSync(join(out, "results.md"), "utf8");
    expect(md).toContain("## Per arm: mean [95% interval] over seeds");
    expect(md).toMatch(/\| tiny\+depth=2 \| 0,1 \|/);
    expect(JSON.parse(readFileSync(join(out, "plot.vl.json"), "utf8")).title).toMatch(/mean over seeds/);
  });

  it("the job executors plan the same seeded units (slurm, prepared without submitting)", async () => {
    const { runAblationJobs } = await import("../../cli/ablate/jobs.ts");
    const out = join(root, "seeds-slurm");
    const s = await runAblationJobs("specs/sd3.mdl", { variants: ["tiny"], sweeps: [], set: ["depth=1"], steps: 2, batch: 4, seed: 4, seeds: 2, out, backend: "wasm", perDigit: 1, cfg: [1], log: () => {} }, { executor: "slurm", submit: false });
    expect(s.prepared).toEqual(["tiny+depth=1+seed=4", "tiny+depth=1+seed=5"]);
    expect(readFileSync(join(out, "tiny+depth=1+seed=5", "task.sh"), "utf8")).toContain("--seed 5 ");
  });
});

describe("sdc ablate executors: usage errors", () => {
  const cases: [string[], RegExp, number][] = [
    [["--jobs", "2", "--executor", "slurm"], /--jobs is for --executor local/, 2],
    [["--partition", "gpu"], /--partition is for --executor slurm/, 2],
    [["--executor", "local", "--gpus-per-unit", "1"], /--gpus-per-unit is for --executor slurm/, 2],
    [["--sdc-command", "bash run.sh"], /--sdc-command is for --executor local or slurm/, 2],
    [["--executor", "local", "--jobs", "0"], /--jobs must be at least 1/, 2],
  ];
  it.each(cases)("sdc ablate specs/sd3.mdl --variants tiny %j", async (args, msg, code) => {
    const { main } = await import("../../cli/main.ts");
    const err: string[] = [];
    const spy = vi.spyOn(process.stderr, "write").mockImplementation((s) => (err.push(String(s)), true));
    try {
      expect(await main(["ablate", "specs/sd3.mdl", "--variants", "tiny", ...args])).toBe(code);
    } finally {
      spy.mockRestore();
    }
    expect(err.join("")).toMatch(msg);
  });
  it("evaluates every unit on as many images per digit as sdc eval does by default", async () => {
    const { main } = await import("../../cli/main.ts");
    const { DEFAULT_PER_DIGIT } = await import("../../runtime/eval/evaluate.ts");
    const out = join(root, "default-per-digit");
    const spies = [vi.spyOn(process.stdout, "write").mockImplementation(() => true), vi.spyOn(process.stderr, "write").mockImplementation(() => true)];
    try {
      expect(await main(["ablate", "specs/sd3.mdl", "--variants", "tiny", "--set", "depth=1", "--executor", "slurm", "--no-submit", "--out", out])).toBe(0);
    } finally {
      for (const s of spies) s.mockRestore();
    }
    const inputs = JSON.parse(readFileSync(join(out, "tiny+depth=1", "inputs.json"), "utf8"));
    expect(inputs.eval.perDigit).toBe(DEFAULT_PER_DIGIT);
    expect(readFileSync(join(out, "tiny+depth=1", "task.sh"), "utf8")).toContain(`--per-digit ${DEFAULT_PER_DIGIT} `);
  });
  it("--status needs an ablation folder of the local or slurm executor; a spec needs no --status", async () => {
    const { main } = await import("../../cli/main.ts");
    const err: string[] = [];
    const spy = vi.spyOn(process.stderr, "write").mockImplementation((s) => (err.push(String(s)), true));
    try {
      expect(await main(["ablate", "--status", join(root, "nope")])).toBe(2);
      mkdirSync(join(root, "plain"), { recursive: true });
      expect(await main(["ablate", "--status", join(root, "plain")])).toBe(1);
      expect(await main(["ablate"])).toBe(2);
    } finally {
      spy.mockRestore();
    }
    expect(err.join("")).toMatch(/no such folder[\s\S]*has no ablation\.json[\s\S]*needs a spec/);
  });
});

describe("sdc ablate --status, local executor", () => {
  it("a unit waiting for a --jobs slot is not started, one whose task died without an exit failed", async () => {
    const { unitStatuses } = await import("../../cli/ablate/jobs.ts");
    const out = join(root, "status-local");
    for (const id of ["a", "b"]) mkdirSync(join(out, id), { recursive: true });
    writeFileSync(join(out, "b", "task.pid"), "2147483647\n");
    const rec = { format: "sdc-ablation" as const, version: 1 as const, spec: "x.mdl", executor: "local" as const, jobName: "j", units: [{ id: "a", steps: 5 }, { id: "b", steps: 5 }], submissions: [{ job: "local", submitted: "", tasks: { "0": "a", "1": "b" } }] };
    expect(unitStatuses(out, rec).map((u) => [u.id, u.state])).toEqual([["a", "not started"], ["b", "failed"]]);
  });
});

describe("ablate task scripts (local and slurm executors)", () => {
  it("train resumes from the latest checkpoint, is skipped when it has all steps, and quotes odd paths", async () => {
    const { taskScript, arrayScript } = await import("../../cli/ablate/jobs.ts");
    const { planUnits } = await import("../../runtime/eval/sweep.ts");
    const { spawnSync } = await import("node:child_process");
    const [unit] = planUnits({ spec: "specs/sd3.mdl", specHash: "x", variants: ["tiny"], fixed: [], sweeps: [], seed: 3, steps: 5, batch: 4, backend: "wasm", eval: { perDigit: 1, cfg: [1, 4], sampleSteps: null, seed: 0, reference: null } });
    const dir = join(process.cwd(), root, "task it's odd", unit.id);
    mkdirSync(join(dir, "run", "checkpoints"), { recursive: true });
    const script = taskScript(unit, { unitDir: dir, cwd: process.cwd(), genDir: join(dir, "generated", "sd3 tiny"), sdcCommand: "echo sdc", checkpointEvery: 2, judge: "/j/judge", judgeWeights: "/j/w's.safetensors" });
    writeFileSync(join(dir, "task.sh"), script);
    const run = (env: Record<string, string> = {}) => {
      const r = spawnSync("bash", [join(dir, "task.sh")], { encoding: "utf8", env: { ...process.env, ...env } });
      return { code: r.status, log: readFileSync(join(dir, "task.log"), "utf8").split("task: start").pop()!, exit: JSON.parse(readFileSync(join(dir, "task.exit"), "utf8")) };
    };
    let r = run();
    expect(r.code).toBe(0);
    expect(r.exit.code).toBe(0);
    expect(r.log).toContain(`sdc train ${dir}/generated/sd3 tiny --out ${dir}/run --steps 5 --batch-size 4 --seed 3 --backend wasm --sample-every 0 --checkpoint-every 2 --samples 16 --no-progress\n`);
    expect(r.log).toContain(`sdc eval ${dir}/run --generated ${dir}/generated/sd3 tiny --judge /j/judge --judge-weights /j/w's.safetensors --per-digit 1 --cfg 1,4 --seed 0 --backend wasm --out ${dir}/eval.json\n`);
    mkdirSync(join(dir, "run", "checkpoints"), { recursive: true });
    writeFileSync(join(dir, "run", "checkpoints", "latest"), "step-000003\n");
    r = run();
    expect(r.log).toContain("task: resuming from step 3");
    expect(r.log).toContain(`--no-progress --resume ${dir}/run\n`);
    writeFileSync(join(dir, "run", "checkpoints", "latest"), "step-000005\n");
    r = run({ SDC_COMMAND: "false" });
    expect(r.log).toContain("task: already trained (5 steps)");
    expect(r.log).not.toContain("sdc train");
    expect(r.code).toBe(1); // SDC_COMMAND=false: eval fails, and the task says so
    expect(r.exit.code).toBe(1);
    const arr = arrayScript("/abl/o'dd", ["a+x=1", "b"], { executor: "slurm", jobName: "sdc-o", partition: "gpu", gpusPerUnit: 2, time: "1:00:00", cpusPerUnit: 4 });
    expect(arr).toContain("#SBATCH --partition=gpu\n#SBATCH --gres=gpu:2\n#SBATCH --time=1:00:00");
    expect(arr).toContain("#SBATCH --cpus-per-task=4");
    expect(arr).toContain("export SDC_THREADS=${SLURM_CPUS_PER_TASK:-4}\n");
    expect(spawnSync("bash", ["-n"], { input: arr }).status).toBe(0);
  });

  it("gives each local unit its share of the CPUs as SDC_THREADS (--cpus-per-unit, else SDC_THREADS, else CPUs / --jobs)", async () => {
    const { unitThreads } = await import("../../cli/ablate/jobs.ts");
    const eight = () => 8;
    expect(unitThreads({ jobs: 2 }, {}, eight)).toBe(4);
    expect(unitThreads({ jobs: 3 }, {}, eight)).toBe(2);
    expect(unitThreads({ jobs: 16 }, {}, eight)).toBe(1);
    expect(unitThreads({ jobs: 2 }, { SDC_THREADS: "3" }, eight)).toBe(3);
    expect(unitThreads({ jobs: 2, cpusPerUnit: 5 }, { SDC_THREADS: "3" }, eight)).toBe(5);
  });
});
