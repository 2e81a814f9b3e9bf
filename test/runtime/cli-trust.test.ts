/**
 * Issue 12 at run time: outputs that are not ours are never replaced, unwritable outputs and bad
 * flags are refused before any work with one line, `sdc forward` inputs are checked against the
 * compiled network's declared shapes and dtypes, and what the machine refuses (memory, disk)
 * exits 1 with what to do. Each row is one bad input; most run in-process, a few through the CLI.
 */
import { spawnSync, execFileSync } from "node:child_process";
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as tf from "@tensorflow/tfjs";
import { runCompile } from "../../cli/commands/compile.ts";
import { runForward } from "../../cli/commands/forward.ts";
import { parseIntArg, parsePositiveArg } from "../../cli/errors.ts";
import { handleError, isOutOfMemory } from "../../cli/main.ts";
import { AtomicWriteError, checkOutputDir, checkOutputFile, writeDirAtomic, writeFileAtomic } from "../../runtime/io/atomic.ts";
import { readSafetensors, writeSafetensors } from "../../runtime/io/safetensors.ts";

const tmp = mkdtempSync(join(tmpdir(), "sdc-cli-trust-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const FX = "test/fixtures/mmdit-fixtures";

describe("atomic writes replace only what is theirs", () => {
  const fifo = join(tmp, "fifo");
  const dir = join(tmp, "a-dir");
  const link = join(tmp, "link");
  const file = join(tmp, "plain.txt");
  beforeAll(() => {
    execFileSync("mkfifo", [fifo]);
    mkdirSync(dir);
    writeFileSync(file, "mine");
    symlinkSync(file, link);
  });

  it.each([
    ["a device", "/dev/full", /it is a device, not a regular file; refusing to replace it/],
    ["a FIFO", fifo, /it is a FIFO \(named pipe\), not a regular file/],
    ["a folder", dir, /it is a folder, not a regular file/],
    ["a symlink", link, /it is a symbolic link, not a regular file/],
    ["in a missing folder", join(tmp, "nope", "x.bin"), /the folder .*nope does not exist/],
    ["under a file", join(file, "x.bin"), /plain.txt is not a folder/],
  ])("writeFileAtomic over %s is refused, and it is left as it was", (_, path, msg) => {
    const before = (() => {
      try {
        return lstatSync(path);
      } catch {
        return undefined;
      }
    })();
    expect(() => writeFileAtomic(path, "x")).toThrow(msg);
    expect(() => checkOutputFile(path)).toThrow(AtomicWriteError);
    if (before) {
      const after = lstatSync(path);
      expect([after.mode, after.ino, after.size]).toEqual([before.mode, before.ino, before.size]);
    }
    expect(readFileSync(file, "utf8")).toBe("mine");
  });

  it.each([
    ["a file", file, /it is a file, not a folder/],
    ["a symlink", link, /it is a symbolic link, not a folder/],
    ["a device", "/dev/null", /it is a device, not a folder/],
  ])("writeDirAtomic over %s is refused", (_, path, msg) => {
    expect(() => writeDirAtomic(path, { "a.txt": "x" })).toThrow(msg);
    expect(readFileSync(file, "utf8")).toBe("mine");
  });

  it.each([
    ["a file", file, /cannot use .* as the output folder: it is a file/],
    ["below a file", join(file, "run"), /cannot create the output folder .*: .*plain.txt is a file, not a folder/],
    ["a device", "/dev/null", /it is a device/],
  ])("an output folder that is %s is refused before any work", (_, path, msg) => {
    expect(() => checkOutputDir(path)).toThrow(msg);
  });

  it("a regular file is still replaced, and a new one written", () => {
    const p = join(tmp, "new.txt");
    writeFileAtomic(p, "1");
    writeFileAtomic(p, "2");
    expect(readFileSync(p, "utf8")).toBe("2");
    checkOutputFile(p);
    checkOutputDir(join(tmp, "fresh", "run"));
  });
});

describe("flags out of range are usage errors", () => {
  it.each([
    [() => parseIntArg("--steps", "99999999999999999999", 1, 1e9), /--steps 99999999999999999999 is too large/],
    [() => parseIntArg("--batch-size", "100000", 1, 65536), /--batch-size must be at most 65,536, got 100,000/],
    [() => parseIntArg("--n", "0", 1), /--n must be at least 1/],
    [() => parsePositiveArg("--lr", "0", 10), /--lr must be positive, got 0/],
    [() => parsePositiveArg("--lr", "-1e-3", 10), /--lr must be positive/],
    [() => parsePositiveArg("--x", "1e6", 10), /--x must be at most 10/],
    [() => parsePositiveArg("--lr", "abc", 10), /--lr must be a number, got 'abc'/],
    [() => parseIntArg("--seed", "x".repeat(10000)), /--seed must be an integer, got 'x{39}…'$/],
  ])("%#", (f, msg) => {
    expect(f).toThrow(msg);
  });
});

describe("what the machine refuses is exit 1 with one line", () => {
  const quiet = <T>(f: () => T): [T, string] => {
    const write = process.stderr.write;
    let text = "";
    process.stderr.write = ((s: string) => ((text += s), true)) as typeof process.stderr.write;
    try {
      return [f(), text];
    } finally {
      process.stderr.write = write;
    }
  };
  const wasmAbort = Object.assign(new Error("Aborted(). Build with -sASSERTIONS for more info."), { name: "RuntimeError", stack: "RuntimeError: Aborted()\n    at abort (node_modules/@tensorflow/tfjs-backend-wasm/dist/wasm-out/tfjs-backend-wasm.js:9:7829)" });
  it.each([
    ["a wasm abort (out of memory)", wasmAbort, 1, /^error: out of memory: .*try a smaller --batch-size, --n or --samples/],
    ["an ArrayBuffer the heap would not give", new RangeError("Array buffer allocation failed"), 1, /^error: out of memory/],
    ["a full disk", Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC", syscall: "write", path: "/x/y" }), 1, /^error: cannot write \/x\/y: no space left on the device$/],
    ["a read-only place", Object.assign(new Error("EROFS: read-only file system, open '/ro/x'"), { code: "EROFS", syscall: "open", path: "/ro/x" }), 1, /^error: cannot open \/ro\/x: the file system is read-only$/],
    ["a bug stays a bug", new TypeError("x is not a function"), 70, /^internal error/],
  ])("%s", (_, e, code, msg) => {
    const [rc, text] = quiet(() => handleError(e));
    expect(rc).toBe(code);
    expect(text.trim()).toMatch(msg);
    if (code === 1) expect(text.trim().split("\n")).toHaveLength(1);
  });

  it("isOutOfMemory does not take other RangeErrors", () => {
    expect(isOutOfMemory(new RangeError("Maximum call stack size exceeded"))).toBe(false);
    expect(isOutOfMemory(Object.assign(new Error("Aborted()"), { name: "RuntimeError", stack: "elsewhere" }))).toBe(false);
  });
});

describe("sdc forward checks its inputs against the compiled network", () => {
  const gen = join(tmp, "gen");
  let io: ReturnType<typeof readSafetensors>;
  beforeAll(async () => {
    await tf.setBackend("cpu");
    const sink = { write: () => true, isTTY: false } as unknown as NodeJS.WriteStream;
    expect(runCompile("test/specs/mmdit-tiny-a.mdl", { outDir: gen, quiet: true }, sink, sink)).toBe(0);
    io = readSafetensors(readFileSync(join(FX, "mmdit-tiny-a.io.safetensors")));
  });

  /** The fixture inputs with one tensor replaced. */
  const inputs = (name: string, replace: (t: { shape: number[]; data: Float32Array }) => { shape: number[]; data: Float32Array | Int32Array | Uint8Array; dtype?: "F32" | "I32" | "U8" }) => {
    const ts = new Map([...io.tensors].filter(([k]) => k !== "output").map(([k, t]) => [k, { shape: t.shape, data: t.data as Float32Array }] as const));
    const out = new Map<string, { shape: number[]; data: Float32Array | Int32Array | Uint8Array; dtype?: "F32" | "I32" | "U8" }>(ts);
    out.set(name, replace(ts.get(name)!));
    const p = join(tmp, `in-${name}-${Math.random().toString(36).slice(2)}.safetensors`);
    writeFileSync(p, writeSafetensors(out));
    return p;
  };
  const u8 = (t: { shape: number[] }) => ({ shape: t.shape, data: new Uint8Array(t.shape.reduce((a, b) => a * b, 1)), dtype: "U8" as const });

  it.each([
    ["x of the wrong width", "x", (t: { shape: number[] }) => ({ shape: [t.shape[0], t.shape[1], t.shape[2], 16], data: new Float32Array(t.shape[0] * t.shape[1] * t.shape[2] * 16) }), /'x' must be \[B=\d+, 1, 32, 32\] for mmdit-tiny-a, got \[\d+, 1, 32, 16\]/],
    ["a 16x16 image", "x", (t: { shape: number[] }) => ({ shape: [t.shape[0], 1, 16, 16], data: new Float32Array(t.shape[0] * 256) }), /'x' must be \[B=\d+, 1, 32, 32\]/],
    ["batch 0", "x", () => ({ shape: [0, 1, 32, 32], data: new Float32Array(0) }), /'x' has batch size 0/],
    ["context length 500", "text_embeddings", (t: { shape: number[] }) => ({ shape: [t.shape[0], 500, t.shape[2]], data: new Float32Array(t.shape[0] * 500 * t.shape[2]) }), /'text_embeddings' must be \[B=\d+, \d+, \d+\] for mmdit-tiny-a, got \[\d+, 500, \d+\]/],
    ["another batch size for the timestep", "timestep", () => ({ shape: [7], data: new Float32Array(7) }), /'timestep' must be \[B=\d+\]/],
    ["int32 timesteps", "timestep", (t: { shape: number[] }) => ({ shape: t.shape, data: new Int32Array(t.shape[0]) }), /'timestep' is I32; mmdit-tiny-a takes float32 \(F32\) inputs/],
    ["U8 pooled embeddings", "pooled_text_embeddings", u8, /'pooled_text_embeddings' is U8/],
  ])("%s is refused", async (_, name, replace, msg) => {
    const p = inputs(name, replace as never);
    await expect(runForward(join(gen, "mmdit-tiny-a"), { weights: join(FX, "mmdit-tiny-a.weights.safetensors"), inputs: p }, () => {})).rejects.toThrow(msg);
  });

  it("F16 and I64 inputs are refused too (files written byte by byte)", async () => {
    for (const dtype of ["F16", "I64"]) {
      const ts = [...io.tensors].filter(([k]) => k !== "output");
      const header: Record<string, unknown> = {};
      const chunks: Uint8Array[] = [];
      let off = 0;
      for (const [k, t] of ts) {
        const n = t.shape.reduce((a, b) => a * b, 1);
        const dt = k === "timestep" ? dtype : "F32";
        const bytes = dt === "F32" ? new Uint8Array((t.data as Float32Array).buffer.slice(0)) : new Uint8Array(n * (dt === "F16" ? 2 : 8));
        header[k] = { dtype: dt, shape: t.shape, data_offsets: [off, off + bytes.length] };
        chunks.push(bytes);
        off += bytes.length;
      }
      const h = new TextEncoder().encode(JSON.stringify(header));
      const file = new Uint8Array(8 + h.length + off);
      new DataView(file.buffer).setBigUint64(0, BigInt(h.length), true);
      file.set(h, 8);
      let at = 8 + h.length;
      for (const c of chunks) {
        file.set(c, at);
        at += c.length;
      }
      const p = join(tmp, `in-${dtype}.safetensors`);
      writeFileSync(p, file);
      await expect(runForward(join(gen, "mmdit-tiny-a"), { weights: join(FX, "mmdit-tiny-a.weights.safetensors"), inputs: p }, () => {})).rejects.toThrow(new RegExp(`'timestep' is ${dtype}`));
    }
  });

  it("the CLI: --weights DIR, --out /dev/full, train --out FILE, --lr 0: one line each, nothing replaced", () => {
    const sdc = (args: string[]) => spawnSync(process.execPath, ["bin/sdc.mjs", ...args], { encoding: "utf8", timeout: 120_000 });
    const file = join(tmp, "a-file");
    writeFileSync(file, "x");
    const rows: [string[], number, RegExp][] = [
      [["forward", join(gen, "mmdit-tiny-a"), "--weights", tmp, "--inputs", join(FX, "mmdit-tiny-a.io.safetensors")], 2, /^error: weights file .* is a folder; give a .safetensors file$/],
      [["forward", join(gen, "mmdit-tiny-a"), "--weights", join(FX, "mmdit-tiny-a.weights.safetensors"), "--inputs", join(FX, "mmdit-tiny-a.io.safetensors"), "--out", "/dev/full"], 1, /^error: cannot write \/dev\/full: it is a device/],
      [["train", "generated/sd3-tiny", "--out", file, "--steps", "1", "--backend", "cpu"], 1, /^error: cannot use .*a-file as the output folder: it is a file$/],
      [["train", "generated/sd3-tiny", "--lr", "0"], 2, /^error: --lr must be positive, got 0$/],
      [["train", "generated/sd3-tiny", "--steps", "99999999999999999999"], 2, /^error: --steps 99999999999999999999 is too large/],
      [["train", "generated/sd3-tiny", "--batch-size", "100000"], 2, /^error: --batch-size must be at most 65,536/],
    ];
    for (const [args, code, msg] of rows) {
      const r = sdc(args);
      expect(r.status, `${args.join(" ")}\n${r.stderr}`).toBe(code);
      expect(r.stderr.trim().split("\n"), r.stderr).toHaveLength(1);
      expect(r.stderr.trim()).toMatch(msg);
    }
    expect(lstatSync("/dev/full").isCharacterDevice()).toBe(true);
    expect(readFileSync(file, "utf8")).toBe("x");
  });
});
