/**
 * vitest global setup: make a software WebGPU adapter available (Mesa lavapipe from Debian,
 * scripts/lavapipe.sh, cached after the first run) so test/graph/webgpu.test.ts can run the
 * static engine's WGSL kernels on a machine without a GPU. Failing to set it up is not an error
 * here: that test file then reports that it could not run. SDC_NO_LAVAPIPE=1 skips the setup.
 */
import { spawnSync } from "node:child_process";

export default function setup(): void {
  if (process.env.SDC_NO_LAVAPIPE === "1" || process.platform !== "linux" || process.arch !== "x64") return;
  if (spawnSync("sh", ["-c", "command -v apt-get && command -v dpkg"], { stdio: "ignore" }).status !== 0) return;
  const r = spawnSync("bash", ["scripts/lavapipe.sh", "setup"], { encoding: "utf8", timeout: 600_000 });
  if (r.status !== 0) console.warn(`lavapipe setup failed (the WebGPU kernel tests will not run): ${(r.stderr || r.error?.message || "").trim().split("\n").pop()}`);
}
