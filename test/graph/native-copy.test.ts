/**
 * A second copy of the addon beside the default one (addonAt: bench/step.ts --against times two
 * builds' steps alternately in one process). Its own file: the copy's thread team stays for the
 * process's life, which native.test.ts's count of the team's threads must not see.
 */
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { loadCompiled, type LoadedSpec } from "../../cli/generated.ts";
import { initBackend } from "../../runtime/backend.ts";
import { addonAt, nativeAddon, nativeAddonPath } from "../../runtime/executors/native/native.ts";
import { differingBuffers, tinyTwoSteps } from "./helpers.ts";

let tiny: LoadedSpec;
beforeAll(async () => {
  await initBackend("cpu", { log: () => {} });
  tiny = await loadCompiled("generated/sd3-tiny");
});

describe("a second copy of the native addon", () => {
  it("runs the training step (addonAt) to the default build's bits, the copy with its own state", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sdc-addon-"));
    try {
      const path = join(dir, "copy.node");
      copyFileSync(nativeAddonPath(), path);
      const main = nativeAddon().addon!;
      const other = addonAt(path);
      expect(other).not.toBe(main);
      // its own thread count (and team): set on the copy, the default build's is unchanged
      const before = main.threads();
      const otherBefore = other.threads();
      expect(other.threads(before === 1 ? 2 : 1)).toBe(before === 1 ? 2 : 1);
      expect(main.threads()).toBe(before);
      other.threads(otherBefore);
      const a = await tinyTwoSteps(tiny);
      const b = await tinyTwoSteps(tiny, "fp32", undefined, other);
      expect(b.losses).toEqual(a.losses);
      expect(differingBuffers(a.state, b.state)).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
