/** The compiler's file access, provided by the CLI (the only place that touches the file system). */
import { existsSync, readFileSync, statSync } from "node:fs";
import { delimiter, dirname, resolve, relative, isAbsolute } from "node:path";
import { fileURLToPath } from "node:url";
import type { SourceHost } from "../compiler/index.ts";

/** The block library shipped with this sdc (`import "sdc/lib/mmdit.mdl"` from any folder). */
export const SDC_LIBRARY = fileURLToPath(new URL("../specs/", import.meta.url));

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
 */
export function makeFsHost(opts: HostOptions = {}): SourceHost {
  return {
    read(path) {
      try {
        if (!existsSync(path) || !statSync(path).isFile()) return undefined;
        return readFileSync(path);
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
