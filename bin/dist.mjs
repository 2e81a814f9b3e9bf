// Is dist/ (scripts/build.mjs) built from the sources as they are now? bin/sdc.mjs runs dist/
// only then. Every source file that went into the bundles is listed in dist/manifest.json with
// its size, mtime and content hash: a file whose size or mtime changed is hashed again (a
// checkout that only touched it stays fresh); a missing file, a different hash or a missing or
// unreadable manifest is stale. A new file can only enter the bundles through an edit of a
// listed one, which that edit's hash catches.
import { createHash } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";

/** { fresh: true } or { fresh: false, reason }. `root` is the package folder, `dist` the bundles. */
export function distState(root, dist = join(root, "dist")) {
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(join(dist, "manifest.json"), "utf8"));
  } catch {
    return { fresh: false, reason: `${dist}/manifest.json is missing (run: node scripts/build.mjs)` };
  }
  const inputs = manifest?.inputs;
  if (!inputs || typeof inputs !== "object" || !Object.keys(inputs).length) return { fresh: false, reason: "dist/manifest.json lists no sources" };
  for (const [rel, want] of Object.entries(inputs)) {
    const abs = join(root, rel);
    let st;
    try {
      st = statSync(abs);
    } catch {
      return { fresh: false, reason: `${rel} is gone` };
    }
    if (st.size === want.size && st.mtimeMs === want.mtimeMs) continue;
    const sha256 = createHash("sha256").update(readFileSync(abs)).digest("hex");
    if (sha256 !== want.sha256) return { fresh: false, reason: `${rel} changed since dist/ was built` };
  }
  return { fresh: true };
}
