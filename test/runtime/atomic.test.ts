import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { AtomicWriteError, removeStaleTemps, writeDirAtomic, writeFileAtomic } from "../../runtime/io/atomic.ts";

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "sdc-atomic-"));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A pid that is surely not running. */
const DEAD_PID = 2 ** 22 + 12345;

describe("writeFileAtomic", () => {
  it("writes and replaces a file, leaving no temp behind", () => {
    const d = tmp();
    const p = join(d, "state.json");
    writeFileAtomic(p, '{"a":1}');
    expect(readFileSync(p, "utf8")).toBe('{"a":1}');
    writeFileAtomic(p, Uint8Array.from([1, 2, 3]));
    expect(Array.from(readFileSync(p))).toEqual([1, 2, 3]);
    expect(readdirSync(d)).toEqual(["state.json"]);
  });

  it("fails with AtomicWriteError and keeps the old file when the directory is missing", () => {
    const d = tmp();
    expect(() => writeFileAtomic(join(d, "no", "x.txt"), "x")).toThrow(AtomicWriteError);
    expect(() => writeFileAtomic(join(d, "no", "x.txt"), "x")).toThrow(/cannot write .*no\/x\.txt/);
    // renaming over a directory fails: the directory stays, no temp is left
    mkdirSync(join(d, "isdir"));
    writeFileSync(join(d, "isdir", "keep"), "k");
    expect(() => writeFileAtomic(join(d, "isdir"), "x")).toThrow(AtomicWriteError);
    expect(readFileSync(join(d, "isdir", "keep"), "utf8")).toBe("k");
    expect(readdirSync(d).sort()).toEqual(["isdir"]);
  });
});

describe("writeDirAtomic", () => {
  it("creates and then replaces a directory as a whole", () => {
    const d = tmp();
    const ck = join(d, "ckpt-100");
    writeDirAtomic(ck, { "weights.safetensors": Uint8Array.from([9, 8]), "state.json": "{}", "sub/extra.txt": "e" });
    expect(readdirSync(ck).sort()).toEqual(["state.json", "sub", "weights.safetensors"]);
    expect(readFileSync(join(ck, "sub", "extra.txt"), "utf8")).toBe("e");
    writeDirAtomic(ck, { "state.json": '{"v":2}' });
    expect(readdirSync(ck)).toEqual(["state.json"]); // old files are gone: a replacement, not a merge
    expect(readFileSync(join(ck, "state.json"), "utf8")).toBe('{"v":2}');
    expect(readdirSync(d)).toEqual(["ckpt-100"]);
  });

  it("refuses file names that escape the directory, without touching it", () => {
    const d = tmp();
    const ck = join(d, "c");
    writeDirAtomic(ck, { a: "1" });
    expect(() => writeDirAtomic(ck, { "../evil": "x" })).toThrow(/bad file name "\.\.\/evil"/);
    expect(() => writeDirAtomic(ck, { "/abs": "x" })).toThrow(AtomicWriteError);
    expect(readFileSync(join(ck, "a"), "utf8")).toBe("1");
    expect(readdirSync(d)).toEqual(["c"]);
  });
});

describe("removeStaleTemps", () => {
  it("removes temps of dead writers and of this process, keeps real files", () => {
    const d = tmp();
    writeFileSync(join(d, "model.safetensors"), "real");
    writeFileSync(join(d, `model.safetensors.tmp-${DEAD_PID}-3`), "half");
    writeFileSync(join(d, `x.json.tmp-${process.pid}-0`), "half");
    mkdirSync(join(d, `ckpt-5.tmp-${DEAD_PID}`));
    writeFileSync(join(d, `ckpt-5.tmp-${DEAD_PID}`, "w"), "partial");
    writeFileSync(join(d, "notes.tmp-draft"), "keep: not our pattern");
    const actions = removeStaleTemps(d);
    expect(actions).toHaveLength(3);
    expect(readdirSync(d).sort()).toEqual(["model.safetensors", "notes.tmp-draft"]);
    expect(removeStaleTemps(d)).toEqual([]);
    expect(removeStaleTemps(join(d, "missing"))).toEqual([]);
  });

  it("keeps temps of a live writer (the parent process)", () => {
    const d = tmp();
    const name = `f.tmp-${process.ppid}-0`;
    writeFileSync(join(d, name), "in flight");
    expect(removeStaleTemps(d)).toEqual([]);
    expect(existsSync(join(d, name))).toBe(true);
  });

  it("puts the old directory back after a crash between the two renames", () => {
    const d = tmp();
    // crash state: ckpt renamed aside, new version complete in .tmp, not yet renamed in
    mkdirSync(join(d, `ckpt.old-${DEAD_PID}`));
    writeFileSync(join(d, `ckpt.old-${DEAD_PID}`, "v"), "old");
    mkdirSync(join(d, `ckpt.tmp-${DEAD_PID}`));
    writeFileSync(join(d, `ckpt.tmp-${DEAD_PID}`, "v"), "new");
    const actions = removeStaleTemps(d);
    expect(actions[0]).toMatch(/^restored .*ckpt from .*ckpt\.old-/);
    expect(readdirSync(d)).toEqual(["ckpt"]);
    expect(readFileSync(join(d, "ckpt", "v"), "utf8")).toBe("old");
    // crash after the second rename: the old copy is just removed
    mkdirSync(join(d, `ckpt.old-${DEAD_PID}`));
    expect(removeStaleTemps(d)).toEqual([`removed ${join(d, `ckpt.old-${DEAD_PID}`)}`]);
    expect(readdirSync(d)).toEqual(["ckpt"]);
  });
});
