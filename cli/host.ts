/** The compiler's file access, provided by the CLI (the only place that touches the file system). */
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, resolve, relative, isAbsolute } from "node:path";
import type { SourceHost } from "../compiler/index.ts";

export const fsHost: SourceHost = {
  read(path) {
    try {
      if (!existsSync(path) || !statSync(path).isFile()) return undefined;
      return readFileSync(path);
    } catch {
      return undefined;
    }
  },
  resolve(from, spec) {
    const abs = resolve(dirname(from), spec);
    const rel = relative(process.cwd(), abs);
    return rel && !rel.startsWith("..") && !isAbsolute(rel) ? rel : abs;
  },
};
