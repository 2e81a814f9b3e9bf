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
 * All functions are synchronous, so no temp of this process is ever "in progress" between calls.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
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

function fail(what: string, path: string, e: unknown): never {
  throw new AtomicWriteError(`${what} ${path}: ${(e as Error).message}`);
}

/** Write a file atomically (temp file in the same directory, fsync, rename). The directory must exist. */
export function writeFileAtomic(path: string, data: Uint8Array | string): void {
  const dir = dirname(path);
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
