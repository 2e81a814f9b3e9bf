/** The compiler's file access, provided by the CLI (the only place that touches the file system). */
import { closeSync, existsSync, openSync, readSync, statSync } from "node:fs";
import { dirname, resolve, relative, isAbsolute } from "node:path";
import type { SourceHost } from "../compiler/index.ts";
import { MAX_SOURCE_BYTES } from "../compiler/lexer.ts";

export const fsHost: SourceHost = {
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
    const abs = resolve(dirname(from), spec);
    const rel = relative(process.cwd(), abs);
    return rel && !rel.startsWith("..") && !isAbsolute(rel) ? rel : abs;
  },
};
