/**
 * Checkpoints do not trust state.json (issue 12): it is under its own checksum and validated
 * against a schema before anything in it is used. One row per corruption: each is refused with
 * what is wrong (CheckpointError, exit 1 from the CLI). Checkpoints written before state.json had
 * its own checksum are accepted when they validate, and refused like the rest when they do not.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type CheckpointContents, checkpointStateProblems, readCheckpoint, saveCheckpoint } from "../../runtime/train/checkpoint.ts";

const tmp = mkdtempSync(join(tmpdir(), "sdc-ck-trust-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const irText = '{"sdc": 1}\n';
const contents: CheckpointContents = {
  network: new Map([["w", { shape: [2], data: Float32Array.from([1, 2]) }]]),
  text: new Map(),
  ema: new Map([["w", { shape: [2], data: Float32Array.from([1, 2]) }]]),
  optimizer: new Map([["exp_avg.w", { shape: [2], data: new Float32Array(2) }], ["exp_avg_sq.w", { shape: [2], data: new Float32Array(2) }]]),
  state: {
    format: "sdc-checkpoint",
    version: 1,
    spec: "tiny",
    irHash: createHash("sha256").update(irText).digest("hex"),
    step: 3,
    seed: 0,
    rng: [1, 2, 3, 4, 0, 0],
    sampler: { version: 1, dataset: "mnist-train", datasetSize: 60000, batchSize: 4, epoch: 0, cursor: 12, epochRng: [5, 6, 7, 8, 0, 0], itemRng: [9, 10, 11, 12, 1, 0.5] },
    words: ["<pad>", "<unk>", "seven"],
    optimizerSteps: 3,
    emaUpdates: 3,
    lastLoss: 0.5,
    elapsedSeconds: 1.5,
  },
  irText,
};
const good = join(tmp, "good");
saveCheckpoint(good, contents);

type State = Record<string, unknown> & { sampler: Record<string, unknown>; files: Record<string, string> };
/** A copy of the good checkpoint with state.json edited; `resum`: recompute its checksum (a consistent edit), `drop`: remove it (an old checkpoint). */
function edited(name: string, edit: (s: State) => void, checksum: "keep" | "resum" | "drop"): string {
  const dir = join(tmp, name);
  cpSync(good, dir, { recursive: true });
  const s = JSON.parse(readFileSync(join(dir, "state.json"), "utf8")) as State;
  delete s.checksum;
  edit(s);
  const text = (o: unknown) => JSON.stringify(o, null, 2) + "\n";
  if (checksum === "drop") writeFileSync(join(dir, "state.json"), text(s));
  else {
    const orig = JSON.parse(readFileSync(join(good, "state.json"), "utf8")).checksum as string;
    writeFileSync(join(dir, "state.json"), text({ ...s, checksum: checksum === "keep" ? orig : createHash("sha256").update(text(s)).digest("hex") }));
  }
  return dir;
}

const corruptions: [name: string, edit: (s: State) => void, msg: RegExp][] = [
  ["step -5", (s) => (s.step = -5), /\/step must be >= 0/],
  ["step 2.5", (s) => (s.step = 2.5), /\/step must be integer/],
  ["step \"abc\"", (s) => (s.step = "abc"), /\/step must be integer/],
  ["step 1e300", (s) => (s.step = 1e300), /\/step must be <= 9007199254740991/],
  ["step missing", (s) => delete s.step, /must have required property 'step'/],
  ["rng all zero", (s) => (s.rng = [0, 0, 0, 0, 0, 0]), /\/rng is all zero/],
  ["rng too short", (s) => (s.rng = [1, 2]), /\/rng must NOT have fewer than 5 items/],
  ["rng word too large", (s) => (s.rng = [2 ** 32, 2, 3, 4, 0, 0]), /\/rng\/0 must be <= 4294967295/],
  ["rng word fractional", (s) => (s.rng = [1.5, 2, 3, 4, 0, 0]), /\/rng\/0 must be integer/],
  ["sampler epochRng all zero", (s) => (s.sampler.epochRng = [0, 0, 0, 0, 0, 0]), /\/sampler\/epochRng is all zero/],
  ["sampler itemRng all zero", (s) => (s.sampler.itemRng = [0, 0, 0, 0, 1, 0]), /\/sampler\/itemRng is all zero/],
  ["sampler cursor negative", (s) => (s.sampler.cursor = -1), /\/sampler/],
  ["sampler cursor past the data", (s) => (s.sampler.cursor = 70000), /\/sampler\/cursor 70000 is past/],
  ["sampler batch 0", (s) => (s.sampler.batchSize = 0), /\/sampler/],
  ["emaUpdates -1", (s) => (s.emaUpdates = -1), /\/emaUpdates must be >= 0/],
  ["emaUpdates beyond the steps", (s) => (s.emaUpdates = 99), /\/emaUpdates 99 is more than the 3 optimizer steps/],
  ["optimizerSteps 1.5", (s) => (s.optimizerSteps = 1.5), /\/optimizerSteps must be integer/],
  ["seed -1", (s) => (s.seed = -1), /\/seed must be >= 0/],
  ["words not strings", (s) => (s.words = [1, 2]), /\/words\/0 must be string/],
  ["lastLoss a string", (s) => (s.lastLoss = "low"), /\/lastLoss must be number,null/],
  ["elapsedSeconds negative", (s) => (s.elapsedSeconds = -1), /\/elapsedSeconds must be >= 0/],
  ["irHash not a hash", (s) => (s.irHash = "xyz"), /\/irHash must match pattern/],
  ["version 2", (s) => (s.version = 2), /\/version must be equal to constant/],
  ["a file outside the folder", (s) => (s.files["../../etc/passwd"] = "0".repeat(64)), /\/files must match exactly one|property name must be valid|must be equal to one of the allowed values/],
  ["a bad file checksum", (s) => (s.files["model.safetensors"] = "zz"), /\/files\/model.safetensors must match pattern/],
  ["no model listed", (s) => delete s.files["model.safetensors"], /\/files must have required property 'model.safetensors'/],
  ["state an array", (s) => Object.assign(s, { sampler: [] }), /\/sampler/],
];

describe("state.json is validated before use", () => {
  it("the good checkpoint reads back, state.json carrying its own checksum", () => {
    const c = readCheckpoint(good);
    expect(c.state.step).toBe(3);
    expect(c.state).not.toHaveProperty("checksum");
    expect(JSON.parse(readFileSync(join(good, "state.json"), "utf8")).checksum).toMatch(/^[0-9a-f]{64}$/);
  });

  it.each(corruptions)("refused, checksum recomputed: %s", (name, edit, msg) => {
    const dir = edited(`resum-${name}`, edit, "resum");
    expect(() => readCheckpoint(dir)).toThrow(msg);
    expect(() => readCheckpoint(dir)).toThrow(/is invalid: state.json: /);
  });

  it.each(corruptions)("refused, checksum left as it was: %s", (name, edit) => {
    const dir = edited(`keep-${name}`, edit, "keep");
    expect(() => readCheckpoint(dir)).toThrow(/is corrupt: state.json does not match its checksum/);
  });

  it.each(corruptions)("refused, an old checkpoint without the checksum: %s", (name, edit, msg) => {
    const dir = edited(`old-${name}`, edit, "drop");
    expect(() => readCheckpoint(dir)).toThrow(msg);
  });

  it("an old checkpoint without state.json's checksum that validates is accepted", () => {
    const dir = edited("old-good", () => {}, "drop");
    expect(readCheckpoint(dir).state.step).toBe(3);
  });

  it("a checksum that is not a string, and a state that is not an object, are refused", () => {
    const dir = edited("checksum-number", () => {}, "resum");
    const s = JSON.parse(readFileSync(join(dir, "state.json"), "utf8"));
    writeFileSync(join(dir, "state.json"), JSON.stringify({ ...s, checksum: 5 }, null, 2) + "\n");
    expect(() => readCheckpoint(dir)).toThrow(/does not match its checksum/);
    writeFileSync(join(dir, "state.json"), "[1, 2]");
    expect(() => readCheckpoint(dir)).toThrow(/is not an sdc checkpoint/);
    writeFileSync(join(dir, "state.json"), "null");
    expect(() => readCheckpoint(dir)).toThrow(/is not an sdc checkpoint/);
  });

  it("checkpointStateProblems is empty for the writer's state", () => {
    expect(checkpointStateProblems(JSON.parse(readFileSync(join(good, "state.json"), "utf8")))).toEqual([]);
  });

  it("the CLI refuses a bad checkpoint with exit 1 and one line", () => {
    const dir = edited("cli-step", (s) => (s.step = -5), "resum");
    const r = spawnSync(process.execPath, ["bin/sdc.mjs", "sample", "generated/sd3-tiny", "--checkpoint", dir, "--prompt", "7", "--backend", "cpu", "--out", join(tmp, "x.png")], { encoding: "utf8", timeout: 120_000 });
    expect(r.status, r.stderr).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/^error: checkpoint .* is invalid: state.json: \/step must be >= 0/);
  });
});
