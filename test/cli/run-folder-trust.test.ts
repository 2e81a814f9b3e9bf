/**
 * A run folder does not trust what is on disk (issue 24): config.json is validated against its
 * schema (every setting's type and range, unknown keys refused) and its own checksum, and must be
 * of the package being trained; checkpoint files must be regular files inside the run folder, of
 * the size their header says; interrupted writes' temp files are removed at the next start.
 * One row per edit the hostile round found accepted or crashing; each is refused through the CLI
 * (in process, `main`) with exit 1 and one line naming the field.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../../cli/main.ts";
import { readRunConfig, runConfigProblems } from "../../cli/run-config.ts";
import { readCheckpoint } from "../../runtime/train/checkpoint.ts";

const GEN = "generated/sd3-tiny";
const tmp = mkdtempSync(join(tmpdir(), "sdc-run-trust-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const good = join(tmp, "good");
const COMMON = ["--backend", "cpu", "--sample-every", "0", "--samples", "4", "--sample-steps", "2", "--no-progress"];

/** `sdc ARGV` in process: exit code and stderr. */
async function sdc(argv: string[]): Promise<{ code: number; err: string }> {
  let err = "";
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((s: string | Uint8Array) => ((err += String(s)), true)) as typeof process.stderr.write;
  try {
    return { code: await main(argv), err };
  } finally {
    process.stderr.write = write;
  }
}

beforeAll(async () => {
  const r = await sdc(["train", GEN, "--steps", "2", "--batch-size", "4", "--checkpoint-every", "1", "--out", good, ...COMMON]);
  expect(r.code, r.err).toBe(0);
}, 120_000);

type Config = Record<string, unknown> & { settings: Record<string, unknown>; recipe: Record<string, unknown> & { optimizer: Record<string, unknown> }; history: Record<string, unknown>[] };
const text = (o: unknown) => JSON.stringify(o, null, 2) + "\n";
let n = 0;

/** A copy of the good run with config.json edited; `resum`: its checksum recomputed (a consistent edit), `keep`: the old one left, `drop`: none (an older run). */
function edited(edit: (c: Config) => void, checksum: "keep" | "resum" | "drop"): string {
  const dir = join(tmp, `run-${n++}`);
  cpSync(good, dir, { recursive: true });
  const c = JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as Config;
  const orig = c.checksum;
  delete c.checksum;
  edit(c);
  const out = checksum === "drop" ? c : { ...c, checksum: checksum === "keep" ? orig : createHash("sha256").update(text(c)).digest("hex") };
  writeFileSync(join(dir, "config.json"), text(out));
  return dir;
}

/** A key named `__proto__` as JSON.parse makes it: an own property, not the prototype. */
const protoKey = (o: Record<string, unknown>) => Object.defineProperty(o, "__proto__", { value: { polluted: true }, enumerable: true, configurable: true, writable: true });

const rows: [what: string, edit: (c: Config) => void, field: RegExp][] = [
  ["settings null", (c) => (c.settings = null as never), /\/settings must be object/],
  ["batch 0", (c) => (c.settings.batch = 0), /\/settings\/batch must be >= 1, found 0/],
  ["batch -4", (c) => (c.settings.batch = -4), /\/settings\/batch must be >= 1, found -4/],
  ["batch \"4\"", (c) => (c.settings.batch = "4"), /\/settings\/batch must be integer, found "4"/],
  ["batch 2.5", (c) => (c.settings.batch = 2.5), /\/settings\/batch must be integer/],
  ["samples 0", (c) => (c.settings.samples = 0), /\/settings\/samples must be >= 1/],
  ["sampleSteps 1e9", (c) => (c.settings.sampleSteps = 1e9), /\/settings\/sampleSteps must be <= 100000, found 1000000000/],
  ["lr -1", (c) => ((c.settings.lr = -1), (c.recipe.optimizer.lr = -1)), /\/settings\/lr must be > 0, found -1/],
  ["lr 0", (c) => ((c.settings.lr = 0), (c.recipe.optimizer.lr = 0)), /\/settings\/lr must be > 0/],
  ["steps -3", (c) => (c.settings.steps = -3), /\/settings\/steps must be >= 1/],
  ["steps 1e300", (c) => (c.settings.steps = 1e300), /\/settings\/steps must be <= 1000000000/],
  ["seed -1", (c) => ((c.settings.seed = -1), (c.seed = -1)), /\/settings\/seed must be >= 0/],
  ["warmup -1", (c) => (c.settings.warmup = -1), /\/settings\/warmup must be >= 0/],
  ["keepCheckpoints -2", (c) => (c.settings.keepCheckpoints = -2), /\/settings\/keepCheckpoints must be >= 0/],
  ["accumulate 3 (does not divide the batch)", (c) => (c.settings.accumulate = 3), /\/settings\/accumulate 3 does not divide \/settings\/batch 4/],
  ["lrSchedule \"bogus\"", (c) => (c.settings.lrSchedule = "bogus"), /\/settings\/lrSchedule must be equal to one of the allowed values \(constant, linear, cosine\), found "bogus"/],
  ["precision \"fp16\"", (c) => (c.settings.precision = "fp16"), /\/settings\/precision must be equal to one of the allowed values \(fp32, bf16\), found "fp16"/],
  ["keepBest \"yes\"", (c) => (c.settings.keepBest = "yes"), /\/settings\/keepBest must be boolean/],
  ["an unknown setting", (c) => (c.settings.turbo = 1), /\/settings\/turbo is not a known key/],
  ["a __proto__ key in settings", (c) => protoKey(c.settings), /\/settings\/__proto__ is not a known key/],
  ["a __proto__ key at the top", (c) => protoKey(c), /\/__proto__ is not a known key/],
  ["an unknown key", (c) => (c.extra = 1), /\/extra is not a known key/],
  ["version 99", (c) => (c.version = 99), /\/version must be equal to constant 1, found 99/],
  ["irHash not a hash", (c) => (c.irHash = "xyz"), /\/irHash must match pattern/],
  ["irHash of another IR", (c) => (c.irHash = "0".repeat(64)), /\/irHash 000000000000 is not the IR of the package being trained/],
  ["spec of another name", (c) => (c.spec = "sd3-other"), /\/spec "sd3-other" is not the spec being trained \(sd3-tiny\)/],
  ["recipe.ema 1.5", (c) => (c.recipe.ema = 1.5), /\/recipe\/ema must be < 1, found 1.5/],
  ["recipe.clip -1", (c) => (c.recipe.clip = -1), /\/recipe\/clip must be >= 0, found -1/],
  ["recipe lr other than the settings'", (c) => (c.recipe.optimizer.lr = 0.5), /\/recipe\/optimizer\/lr 0.5 differs from \/settings\/lr/],
  ["seed other than the settings'", (c) => (c.seed = 7), /\/seed 7 differs from \/settings\/seed 0/],
  ["history fromStep -1", (c) => (c.history[0].fromStep = -1), /\/history\/0\/fromStep must be >= 0/],
  ["command not a list", (c) => (c.command = "sdc train"), /\/command must be array/],
  ["backend unknown", (c) => (c.backend = "quantum"), /\/backend must be equal to one of the allowed values/],
  ["settings.steps missing", (c) => delete c.settings.steps, /\/settings\/steps is missing/],
];

describe("config.json is validated before use", () => {
  it("the run's own config.json reads back, with its checksum, and validates", () => {
    const c = JSON.parse(readFileSync(join(good, "config.json"), "utf8"));
    expect(c.checksum).toMatch(/^[0-9a-f]{64}$/);
    expect(runConfigProblems(c)).toEqual([]);
    expect(readRunConfig(good)?.settings.batch).toBe(4);
  });

  it.each(rows)("refused with exit 1 and one line naming the field, checksum recomputed: %s", async (_, edit, field) => {
    const dir = edited(edit, "resum");
    const r = await sdc(["train", GEN, "--resume", dir, "--steps", "3", ...COMMON]);
    expect(r.code, r.err).toBe(1);
    expect(r.err.trim().split("\n")).toHaveLength(1);
    expect(r.err).toMatch(/^error: \S+config.json/);
    expect(r.err).toMatch(field);
  });

  it.each(rows)("refused, checksum left as it was: %s", (_, edit, field) => {
    // the field is named first (the schema), the checksum catches what the schema cannot
    expect(() => readRunConfig(edited(edit, "keep"), { spec: "sd3-tiny", irHash: JSON.parse(readFileSync(join(good, "config.json"), "utf8")).irHash })).toThrow(field);
  });

  it.each(rows)("refused, an older config.json without a checksum: %s", (_, edit, field) => {
    expect(() => readRunConfig(edited(edit, "drop"), { spec: "sd3-tiny", irHash: JSON.parse(readFileSync(join(good, "config.json"), "utf8")).irHash })).toThrow(field);
  });

  it("an edit to a valid value is refused by the checksum; an older config.json without one that validates is accepted", () => {
    const dir = edited((c) => ((c.settings.lr = 0.004), (c.recipe.optimizer.lr = 0.004)), "keep");
    expect(() => readRunConfig(dir)).toThrow(/config.json does not match its checksum \(edited by hand or damaged\)/);
    expect(readRunConfig(edited(() => {}, "drop"))?.settings.steps).toBe(2);
  });

  it.each([
    ["50 MB of padding", (p: string) => writeFileSync(p, readFileSync(p, "utf8").replace(/\n}\n$/, "\n" + " ".repeat(50 << 20) + "}\n")), /config.json is 52,4\d\d,\d\d\d bytes, more than the 1,048,576 accepted/],
    ["not JSON", (p: string) => writeFileSync(p, "{ settings: "), /config.json is not valid JSON/],
    ["an array", (p: string) => writeFileSync(p, "[]"), /config.json is not an sdc run config/],
    ["another format", (p: string) => writeFileSync(p, '{"format": "x"}'), /config.json is not an sdc run config \(format "x"\)/],
    ["a FIFO", (p: string) => (rmSync(p), execFileSync("mkfifo", [p])), /config.json is a FIFO \(named pipe\), not a regular file/],
    ["a link to /dev/zero", (p: string) => (rmSync(p), symlinkSync("/dev/zero", p)), /config.json is a symbolic link to \/dev\/zero, outside/],
    ["a link out of the run folder", (p: string) => (cpSync(p, join(tmp, "elsewhere.json")), rmSync(p), symlinkSync(join(tmp, "elsewhere.json"), p)), /config.json is a symbolic link to .*elsewhere.json, outside/],
    ["a folder", (p: string) => (rmSync(p), mkdirSync(p)), /config.json is a folder, not a regular file/],
  ])("config.json %s: exit 1, one line, before anything else is read", async (_, damage, msg) => {
    const dir = edited(() => {}, "keep");
    damage(join(dir, "config.json"));
    const r = await sdc(["train", GEN, "--resume", dir, "--steps", "3", ...COMMON]);
    expect(r.code, r.err).toBe(1);
    expect(r.err.trim().split("\n")).toHaveLength(1);
    expect(r.err).toMatch(msg);
  });

  it("a link inside the run folder is followed, and the untouched run resumes", async () => {
    const dir = edited(() => {}, "keep");
    cpSync(join(dir, "config.json"), join(dir, "config.real.json"));
    rmSync(join(dir, "config.json"));
    symlinkSync("config.real.json", join(dir, "config.json"));
    expect(readRunConfig(dir)?.settings.steps).toBe(2);
    // the untouched copy resumes: config accepted, one more step trained
    const ok = edited(() => {}, "keep");
    const r = await sdc(["train", GEN, "--resume", ok, "--steps", "3", ...COMMON]);
    expect(r.code, r.err).toBe(0);
    expect(readCheckpoint(join(ok, "checkpoints", "step-000003")).state.step).toBe(3);
  }, 60_000);
});

describe("checkpoint files are checked before they are read", () => {
  const ck = (dir: string) => join(dir, "checkpoints", "step-000002");
  it.each([
    ["a link to /dev/zero", (p: string) => symlinkSync("/dev/zero", p), /model.safetensors is a symbolic link to \/dev\/zero, outside/],
    ["a FIFO", (p: string) => execFileSync("mkfifo", [p]), /model.safetensors is a FIFO \(named pipe\), not a regular file/],
    ["a folder", (p: string) => mkdirSync(p), /model.safetensors is a folder, not a regular file/],
    ["a link out of the run folder (to a good copy)", (p: string) => symlinkSync(join(good, "checkpoints", "step-000002", "model.safetensors"), p), /model.safetensors is a symbolic link to .*good.*, outside/],
    ["a dangling link", (p: string) => symlinkSync(join(tmp, "nothing-here"), p), /model.safetensors is a symbolic link that does not resolve/],
  ])("model.safetensors %s: refused by readCheckpoint and by `sdc train --resume` and `sdc sample` (exit 1, one line)", async (_, make, msg) => {
    const dir = edited(() => {}, "keep");
    const p = join(ck(dir), "model.safetensors");
    rmSync(p);
    make(p);
    expect(() => readCheckpoint(ck(dir))).toThrow(msg);
    for (const argv of [["train", GEN, "--resume", dir, "--steps", "3", ...COMMON], ["sample", GEN, "--checkpoint", dir, "--prompt", "7", "--backend", "cpu", "--out", join(tmp, "s.png")]]) {
      const r = await sdc(argv);
      expect(r.code, r.err).toBe(1);
      expect(r.err.trim().split("\n")).toHaveLength(1);
      expect(r.err).toMatch(msg);
    }
  });

  it("a link inside the run folder is followed", () => {
    const dir = edited(() => {}, "keep");
    const p = join(ck(dir), "model.safetensors");
    cpSync(p, join(dir, "model-copy.safetensors"));
    rmSync(p);
    symlinkSync(join(dir, "model-copy.safetensors"), p);
    expect(readCheckpoint(ck(dir)).state.step).toBe(2);
  });

  it("a safetensors file padded or cut, its checksum recomputed, is refused by its header before it is read", () => {
    for (const [how, change] of [["trailing bytes", (b: Buffer) => Buffer.concat([b, Buffer.alloc(4096)])], ["truncated", (b: Buffer) => b.subarray(0, b.length - 4)]] as const) {
      const dir = edited(() => {}, "keep");
      const p = join(ck(dir), "optimizer.safetensors");
      const b = change(readFileSync(p));
      writeFileSync(p, b);
      const s = JSON.parse(readFileSync(join(ck(dir), "state.json"), "utf8"));
      delete s.checksum;
      s.files["optimizer.safetensors"] = createHash("sha256").update(b).digest("hex");
      writeFileSync(join(ck(dir), "state.json"), text({ ...s, checksum: createHash("sha256").update(text(s)).digest("hex") }));
      expect(() => readCheckpoint(ck(dir))).toThrow(new RegExp(`optimizer.safetensors: the header describes [\\d,]+ bytes but the file has [\\d,]+ \\(${how}\\)`));
    }
  });

  it.each([["../../../etc"], ["a/b"], [".."], [""]])("checkpoints/latest naming %j is refused", async (name) => {
    const dir = edited(() => {}, "keep");
    writeFileSync(join(dir, "checkpoints", "latest"), name + "\n");
    const r = await sdc(["train", GEN, "--resume", dir, "--steps", "3", ...COMMON]);
    expect(r.code, r.err).toBe(1);
    expect(r.err).toMatch(/latest does not name a checkpoint folder|not a complete checkpoint/);
  });

  it("checkpoints/latest as a FIFO is refused, not waited on", async () => {
    const dir = edited(() => {}, "keep");
    rmSync(join(dir, "checkpoints", "latest"));
    execFileSync("mkfifo", [join(dir, "checkpoints", "latest")]);
    const r = await sdc(["train", GEN, "--resume", dir, "--steps", "3", ...COMMON]);
    expect(r.code, r.err).toBe(1);
    expect(r.err).toMatch(/latest is a FIFO \(named pipe\), not a regular file/);
  });
});

describe("`sdc report` reads only regular files of the run", () => {
  it.each([
    ["metrics.jsonl a FIFO", (d: string) => (rmSync(join(d, "metrics.jsonl")), execFileSync("mkfifo", [join(d, "metrics.jsonl")])), /metrics.jsonl is a FIFO \(named pipe\), not a regular file/],
    ["config.json a link to /dev/zero", (d: string) => (rmSync(join(d, "config.json")), symlinkSync("/dev/zero", join(d, "config.json"))), /config.json is a character device, not a regular file/],
  ])("%s: exit 1, one line, not a hang", async (_, damage, msg) => {
    const dir = edited(() => {}, "keep");
    damage(dir);
    const r = await sdc(["report", dir, "--out", join(dir, "r.html")]);
    expect(r.code, r.err).toBe(1);
    expect(r.err.trim().split("\n")).toHaveLength(1);
    expect(r.err).toMatch(msg);
  });

  it("the untouched run's report is written", async () => {
    const dir = edited(() => {}, "keep");
    const r = await sdc(["report", dir, "--out", join(dir, "r.html")]);
    expect(r.code, r.err).toBe(0);
    expect(existsSync(join(dir, "r.html"))).toBe(true);
  });
});

describe("interrupted writes are cleaned up at the next start", () => {
  it("temp files and folders of a dead writer in the run folder, samples and checkpoints are removed by the resume", async () => {
    const dir = edited(() => {}, "keep");
    // a pid above any pid_max: no process has it
    const dead = 99_999_999;
    const temps = [join(dir, `config.json.tmp-${dead}-0`), join(dir, `metrics.jsonl.tmp-${dead}-3`), join(dir, "samples", `step-000002.png.tmp-${dead}-1`), join(dir, "checkpoints", `latest.tmp-${dead}-2`)];
    mkdirSync(join(dir, "samples"), { recursive: true });
    for (const t of temps) writeFileSync(t, "half");
    mkdirSync(join(dir, "checkpoints", `step-000004.tmp-${dead}`));
    writeFileSync(join(dir, "checkpoints", `step-000004.tmp-${dead}`, "model.safetensors"), "half");
    const r = await sdc(["train", GEN, "--resume", dir, "--steps", "3", ...COMMON]);
    expect(r.code, r.err).toBe(0);
    for (const t of [...temps, join(dir, "checkpoints", `step-000004.tmp-${dead}`)]) expect(existsSync(t), t).toBe(false);
  }, 60_000);
});
