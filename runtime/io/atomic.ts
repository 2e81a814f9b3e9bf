/**
 * Crash-safe file and directory writes for checkpoints and samples.
 *
 * - `writeFileAtomic`: write `<path>.tmp-<pid>-<n>` in the same directory, fsync, rename over `path`.
 *   Readers see the old file or the new one, never a half-written one.
 * - `writeDirAtomic`: write every file into `<dir>.tmp-<pid>`, fsync, then swap it in: an existing
 *   `<dir>` is first renamed to `<dir>.old-<pid>`, the new one renamed to `<dir>`, then the old one
 *   removed. At every instant either `<dir>` or `<dir>.old-<pid>` holds a complete version.
 * - `removeStaleTemps`: clean up after a crash: drop left-over temps and, where a crash fell between
 *   the two renames, put the old directory back.
 *
 * Neither replaces what is not its kind: a file is written only over a regular file (never a
 * device, FIFO, socket, directory or symlink: `lstat` first), a directory only over a directory.
 * Errors say what and where in plain words (AtomicWriteError: exit 1 from the CLI).
 *
 * All functions are synchronous, so no temp of this process is ever "in progress" between calls.
 */
import { accessSync, closeSync, constants, existsSync, fsyncSync, lstatSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";

export class AtomicWriteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AtomicWriteError";
  }
}

let counter = 0;

function toBytes(data: Uint8Array | string): Uint8Array {
  return typeof data === "string" ? new TextEncoder().encode(data) : data;
}

function writeAndSync(path: string, data: Uint8Array | string): void {
  const bytes = toBytes(data);
  const fd = openSync(path, "w");
  try {
    let off = 0;
    while (off < bytes.byteLength) off += writeSync(fd, bytes, off, bytes.byteLength - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** fsync a directory so renames in it are durable (best effort: some platforms refuse). */
function syncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, "r");
    fsyncSync(fd);
  } catch {
    // not supported here (e.g. Windows); the rename itself is still atomic
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** A file system error in plain words (the errno's meaning, not Node's message). */
export function fsReason(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  switch (err?.code) {
    case "EACCES":
    case "EPERM":
      return "permission denied";
    case "EROFS":
      return "the file system is read-only";
    case "ENOSPC":
      return "no space left on the device";
    case "EDQUOT":
      return "disk quota exceeded";
    case "ENOENT":
      return "a folder on the way does not exist";
    case "ENOTDIR":
      return "a part of the path is a file, not a folder";
    case "EISDIR":
      return "it is a folder";
    case "EEXIST":
      return "something else is already there";
    case "ENAMETOOLONG":
      return "the name is too long";
    case "EMFILE":
    case "ENFILE":
      return "too many open files";
    case "EIO":
      return "an I/O error";
    default:
      return err?.message ?? String(e);
  }
}

function fail(what: string, path: string, e: unknown): never {
  if (e instanceof AtomicWriteError) throw e;
  throw new AtomicWriteError(`${what} ${path}: ${fsReason(e)}`);
}

/** What is at `path` without following a symlink: undefined if nothing. */
function kindAt(path: string): "file" | "directory" | "symlink" | "device" | "fifo" | "socket" | undefined {
  let st;
  try {
    st = lstatSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    throw e;
  }
  return st.isFile() ? "file" : st.isDirectory() ? "directory" : st.isSymbolicLink() ? "symlink" : st.isFIFO() ? "fifo" : st.isSocket() ? "socket" : "device";
}

const KIND_WORDS = { directory: "a folder", symlink: "a symbolic link", device: "a device", fifo: "a FIFO (named pipe)", socket: "a socket", file: "a file" } as const;

/** Write a file atomically (temp file in the same directory, fsync, rename). The directory must exist; only a regular file is replaced. */
export function writeFileAtomic(path: string, data: Uint8Array | string): void {
  const dir = dirname(path);
  const kind = (() => {
    try {
      return kindAt(path);
    } catch (e) {
      return fail("cannot write", path, e);
    }
  })();
  if (kind !== undefined && kind !== "file") throw new AtomicWriteError(`cannot write ${path}: it is ${KIND_WORDS[kind]}, not a regular file; refusing to replace it (choose another output path)`);
  const dirKind = existsSync(dir) ? (statSync(dir).isDirectory() ? "directory" : "other") : undefined;
  if (dirKind === undefined) throw new AtomicWriteError(`cannot write ${path}: the folder ${dir} does not exist`);
  if (dirKind !== "directory") throw new AtomicWriteError(`cannot write ${path}: ${dir} is not a folder`);
  const tmp = join(dir, `${basename(path)}.tmp-${process.pid}-${counter++}`);
  try {
    writeAndSync(tmp, data);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    fail("cannot write", path, e);
  }
  syncDir(dir);
}

/** Relative file names of a directory bundle: no absolute paths, no "..". Subdirectories are allowed. */
function checkName(finalDir: string, name: string): void {
  const parts = name.split(/[\\/]/);
  if (name === "" || name.startsWith("/") || parts.some((p) => p === ".." || p === "." || p === "")) {
    throw new AtomicWriteError(`writeDirAtomic ${finalDir}: bad file name ${JSON.stringify(name)} (must be a relative path without '.' or '..')`);
  }
}

/**
 * Write a whole directory atomically: all files go to `<finalDir>.tmp-<pid>` (fsynced), which then
 * replaces `finalDir` (an existing one is renamed aside first and removed last).
 */
export function writeDirAtomic(finalDir: string, files: Record<string, Uint8Array | string>): void {
  const names = Object.keys(files);
  for (const n of names) checkName(finalDir, n);
  const parent = dirname(finalDir);
  let kind;
  try {
    kind = kindAt(finalDir);
  } catch (e) {
    fail("cannot write directory", finalDir, e);
  }
  if (kind !== undefined && kind !== "directory") throw new AtomicWriteError(`cannot write directory ${finalDir}: it is ${KIND_WORDS[kind]}, not a folder; refusing to replace it`);
  const tmp = `${finalDir}.tmp-${process.pid}`;
  const old = `${finalDir}.old-${process.pid}`;
  try {
    mkdirSync(parent, { recursive: true });
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp);
    const dirs = new Set<string>([tmp]);
    for (const n of names) {
      const p = join(tmp, n);
      const d = dirname(p);
      if (!dirs.has(d)) {
        mkdirSync(d, { recursive: true });
        dirs.add(d);
      }
      writeAndSync(p, files[n]);
    }
    for (const d of dirs) syncDir(d);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    fail("cannot write directory", finalDir, e);
  }
  try {
    if (existsSync(finalDir)) {
      rmSync(old, { recursive: true, force: true });
      renameSync(finalDir, old);
    }
    renameSync(tmp, finalDir);
    syncDir(parent);
  } catch (e) {
    // put the old version back if the swap failed half-way
    if (!existsSync(finalDir) && existsSync(old)) renameSync(old, finalDir);
    rmSync(tmp, { recursive: true, force: true });
    fail("cannot replace directory", finalDir, e);
  }
  rmSync(old, { recursive: true, force: true });
}

function pidAlive(pid: number): boolean {
  if (pid === process.pid) return false; // our own writes are synchronous: nothing of ours is in flight
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

const TEMP = /^(.*)\.tmp-(\d+)(?:-\d+)?$/;
const OLD = /^(.*)\.old-(\d+)$/;

/**
 * Clean up after a crashed writer in `parentDir`: remove `*.tmp-<pid>[-n]` files and directories
 * and `*.old-<pid>` directories of processes that are no longer running; where `X.old-<pid>`
 * exists but `X` does not (a crash between the two renames), the old version is renamed back to `X`.
 * Returns a line per action taken. A missing `parentDir` is not an error.
 */
export function removeStaleTemps(parentDir: string): string[] {
  if (!existsSync(parentDir) || !statSync(parentDir).isDirectory()) return [];
  const actions: string[] = [];
  const entries = readdirSync(parentDir);
  // restore first, so a temp is never preferred over a known-good old version
  for (const name of entries) {
    const m = OLD.exec(name);
    if (!m || pidAlive(Number(m[2]))) continue;
    const p = join(parentDir, name);
    const target = join(parentDir, m[1]);
    if (!existsSync(target)) {
      renameSync(p, target);
      actions.push(`restored ${target} from ${p}`);
    } else {
      rmSync(p, { recursive: true, force: true });
      actions.push(`removed ${p}`);
    }
  }
  for (const name of entries) {
    const m = TEMP.exec(name);
    if (!m || pidAlive(Number(m[2]))) continue;
    const p = join(parentDir, name);
    if (!existsSync(p)) continue;
    rmSync(p, { recursive: true, force: true });
    actions.push(`removed ${p}`);
  }
  if (actions.length) syncDir(parentDir);
  return actions;
}

/** The nearest existing ancestor of `path` (itself if it exists), by lstat. */
function nearestExisting(path: string): string {
  let p = path;
  for (;;) {
    if (kindAt(p) !== undefined) return p;
    const up = dirname(p);
    if (up === p) return p;
    p = up;
  }
}

function writableDir(dir: string, forWhat: string): void {
  try {
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch (e) {
    throw new AtomicWriteError(`cannot write ${forWhat}: ${dir} is not writable (${fsReason(e)})`);
  }
}

/**
 * Check before any work that a file can be written at `path` by writeFileAtomic: nothing there
 * or a regular file, in an existing, writable folder. Throws AtomicWriteError saying what is wrong.
 */
export function checkOutputFile(path: string): void {
  const kind = kindAt(path);
  if (kind !== undefined && kind !== "file") throw new AtomicWriteError(`cannot write ${path}: it is ${KIND_WORDS[kind]}, not a regular file; refusing to replace it (choose another output path)`);
  const dir = dirname(path);
  const dirKind = kindAt(dir) === "symlink" ? (existsSync(dir) && statSync(dir).isDirectory() ? "directory" : "other") : kindAt(dir);
  if (dirKind === undefined) throw new AtomicWriteError(`cannot write ${path}: the folder ${dir} does not exist`);
  if (dirKind !== "directory") throw new AtomicWriteError(`cannot write ${path}: ${dir} is not a folder`);
  writableDir(dir, path);
}

/**
 * Check before any work that `dir` can be used as an output folder: a folder (or nothing yet,
 * under a writable folder), not a file, device or anything else.
 */
export function checkOutputDir(dir: string): void {
  const at = nearestExisting(dir);
  const isDir = existsSync(at) && statSync(at).isDirectory();
  if (!isDir) {
    const kind = kindAt(at)!;
    throw new AtomicWriteError(at === dir ? `cannot use ${dir} as the output folder: it is ${KIND_WORDS[kind]}` : `cannot create the output folder ${dir}: ${at} is ${KIND_WORDS[kind]}, not a folder`);
  }
  writableDir(at, at === dir ? `into ${dir}` : `the output folder ${dir}`);
}
