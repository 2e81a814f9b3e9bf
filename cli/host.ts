/** The compiler's file access, provided by the CLI (the only place that touches the file system). */
import { closeSync, existsSync, openSync, readSync, statSync } from "node:fs";
import { delimiter, dirname, resolve, relative, isAbsolute } from "node:path";
import { fileURLToPath } from "node:url";
import type { SourceHost } from "../compiler/index.ts";
import { MAX_SOURCE_BYTES } from "../compiler/lexer.ts";

/** The block library shipped with this sdc (`import "sdc/lib/mmdit.mdl"` from any folder). */
export const SDC_LIBRARY = libraryDir();

/** specs/ of the sdc package: the nearest folder above this module that has specs/lib (from cli/ or a bundle in dist/chunks/) */
function libraryDir(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(resolve(d, "specs", "lib"))) return resolve(d, "specs") + "/";
    d = dirname(d);
  }
  return fileURLToPath(new URL("../specs/", import.meta.url));
}

/** A path as diagnostics show it: relative to the working directory when below it. */
function shown(abs: string): string {
  const rel = relative(process.cwd(), abs);
  return rel && !rel.startsWith("..") && !isAbsolute(rel) ? rel : abs;
}

export interface HostOptions {
  /** folders searched for imports not found beside the importing file (`--lib-path`), before SDC_PATH */
  libPath?: string[];
}

/**
 * Files from disk. An import is looked for relative to the importing file, then in each folder of
 * `libPath`, then of the SDC_PATH environment variable (separated by the platform's path
 * delimiter, `:`), then, for `sdc/...`, in the library shipped with sdc (its specs/ folder).
 * Sizes are checked before reading, and never more than one byte past the limit is read.
 */
export function makeFsHost(opts: HostOptions = {}): SourceHost {
  return {
    size(path) {
      try {
        const st = statSync(path);
        return st.isFile() ? st.size : null;
      } catch {
        return null;
      }
    },
    read(path) {
      try {
        if (!existsSync(path) || !statSync(path).isFile()) return undefined;
        // never more than one byte past the limit, whatever the file has grown to since size()
        const fd = openSync(path, "r");
        try {
          const buf = Buffer.alloc(Math.min(statSync(path).size, MAX_SOURCE_BYTES + 1));
          let n = 0;
          while (n < buf.length) {
            const got = readSync(fd, buf, n, buf.length - n, n);
            if (got === 0) break;
            n += got;
          }
          return buf.subarray(0, n);
        } finally {
          closeSync(fd);
        }
      } catch {
        return undefined;
      }
    },
    resolve(from, spec) {
      return shown(resolve(dirname(from), spec));
    },
    searchPath(spec) {
      const dirs = [...(opts.libPath ?? []), ...(process.env.SDC_PATH ?? "").split(delimiter).filter(Boolean)];
      const out = dirs.map((d) => shown(resolve(d, spec)));
      if (spec.startsWith("sdc/")) out.push(shown(resolve(SDC_LIBRARY, spec.slice(4))));
      return out;
    },
  };
}

export const fsHost: SourceHost = makeFsHost();
