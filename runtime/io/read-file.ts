/**
 * Reading a file that came from disk without trusting what it is (issue 24): a checkpoint or
 * run-folder file may be a symbolic link to `/dev/zero`, a FIFO, a folder or a huge file. Before
 * any byte is read:
 *   - `lstat`: a symbolic link must resolve inside `root` (the run or checkpoint folder);
 *   - `stat`, then `open(O_RDONLY | O_NONBLOCK | O_NOCTTY)` and `fstat` of the opened descriptor
 *     (race-free; O_NONBLOCK so a FIFO without a writer cannot block the open): it must be a
 *     regular file;
 *   - its size must be at most `maxBytes`, and `check(head, size)` (the first bytes, e.g. a
 *     safetensors header) may refuse a size its contents contradict;
 * then exactly `size` bytes are read. Errors are InputFileError (a user's file: exit 1), one line.
 */
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync, realpathSync, type Stats, statSync } from "node:fs";
import { relative, isAbsolute } from "node:path";

export class InputFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InputFileError";
  }
}

export interface ReadFileOptions {
  /** largest size accepted (bytes) */
  maxBytes: number;
  /** a symbolic link must resolve inside this folder (absent: links are refused) */
  root?: string;
  /** how the file is named in messages (default: its path) */
  what?: string;
  /** refuse (throw) a file whose contents contradict its size (a header saying otherwise): called before the file is read, with a reader of byte ranges */
  check?: (read: (offset: number, length: number) => Uint8Array, size: number) => void;
  /** say why `maxBytes` is what it is, in the too-large message */
  limitWhy?: string;
}

/** What a file system entry is, in words. */
export function kindWords(st: Stats): string {
  if (st.isFile()) return "a regular file";
  if (st.isDirectory()) return "a folder";
  if (st.isSymbolicLink()) return "a symbolic link";
  if (st.isFIFO()) return "a FIFO (named pipe)";
  if (st.isSocket()) return "a socket";
  if (st.isCharacterDevice()) return "a character device";
  if (st.isBlockDevice()) return "a block device";
  return "not a regular file";
}

/** Is `path` inside `dir` (both real paths)? */
export function isInside(dir: string, path: string): boolean {
  const r = relative(dir, path);
  return r !== "" && !r.startsWith("..") && !isAbsolute(r);
}

const errno = (e: unknown) => (e as NodeJS.ErrnoException)?.code;

/** The entry at `path` checked as above (missing; a symbolic link out of `root`), without opening it. */
function checkEntry(path: string, what: string, root: string | undefined): void {
  let lst: Stats;
  try {
    lst = lstatSync(path);
  } catch (e) {
    if (errno(e) === "ENOENT" || errno(e) === "ENOTDIR") throw new InputFileError(`${what} is missing`);
    throw new InputFileError(`${what} cannot be read (${errno(e) ?? (e as Error).message})`);
  }
  if (!lst.isSymbolicLink()) return;
  let real: string;
  try {
    real = realpathSync(path);
  } catch (e) {
    throw new InputFileError(`${what} is a symbolic link that does not resolve (${errno(e) ?? (e as Error).message})`);
  }
  if (root === undefined) throw new InputFileError(`${what} is a symbolic link (to ${real}); refusing to follow it`);
  let realRoot: string;
  try {
    realRoot = realpathSync(root);
  } catch {
    realRoot = root;
  }
  if (!isInside(realRoot, real)) throw new InputFileError(`${what} is a symbolic link to ${real}, outside ${root}; refusing to follow it`);
}

/** Read a regular file, checked before any byte is read (see the module comment). */
export function readRegularFile(path: string, o: ReadFileOptions): Buffer {
  const what = o.what ?? path;
  checkEntry(path, what, o.root);
  // stat before opening: opening some devices has effects of its own (a tape rewinds)
  let st: Stats;
  try {
    st = statSync(path);
  } catch (e) {
    throw new InputFileError(`${what} cannot be read (${errno(e) ?? (e as Error).message})`);
  }
  if (!st.isFile()) throw new InputFileError(`${what} is ${kindWords(st)}, not a regular file; refusing to read it`);
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0) | (constants.O_NOCTTY ?? 0));
  } catch (e) {
    throw new InputFileError(`${what} cannot be opened (${errno(e) ?? (e as Error).message})`);
  }
  try {
    // the descriptor's own kind: the entry may have been swapped between stat and open
    const fst = fstatSync(fd);
    if (!fst.isFile()) throw new InputFileError(`${what} is ${kindWords(fst)}, not a regular file; refusing to read it`);
    const size = fst.size;
    if (size > o.maxBytes) throw new InputFileError(`${what} is ${size.toLocaleString("en-US")} bytes, more than the ${o.maxBytes.toLocaleString("en-US")} accepted${o.limitWhy ? ` (${o.limitWhy})` : ""}; refusing to read it`);
    o.check?.((offset, length) => {
      const part = Buffer.alloc(Math.max(0, Math.min(length, size - offset)));
      readFully(fd, part, what, offset);
      return part;
    }, size);
    const buf = Buffer.allocUnsafe(size);
    readFully(fd, buf, what, 0);
    return buf;
  } finally {
    closeSync(fd);
  }
}

/** Fill `buf` from `fd` at `at`; a file that ends early changed while it was read. */
function readFully(fd: number, buf: Uint8Array, what: string, at: number): void {
  let off = 0;
  while (off < buf.byteLength) {
    let n: number;
    try {
      n = readSync(fd, buf, off, buf.byteLength - off, at + off);
    } catch (e) {
      if (errno(e) === "EAGAIN") throw new InputFileError(`${what} would block on reading; refusing to wait for it`);
      throw new InputFileError(`${what} cannot be read (${errno(e) ?? (e as Error).message})`);
    }
    if (n === 0) throw new InputFileError(`${what} ended at byte ${at + off} of ${at + buf.byteLength} while it was read (it changed; try again)`);
    off += n;
  }
}
