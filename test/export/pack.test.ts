/**
 * sdc as a dependency: the repository packed (`npm pack`) and installed into an empty folder with
 * no network (`npm ci --offline` from the npm cache that this repository's `npm ci` filled: the
 * folder's lockfile is this repository's, less its devDependencies, plus the tarball). There a
 * spec importing `sdc/lib/...` compiles, trains 3 steps, samples and exports; and the exported
 * ONNX file, run by onnxruntime in the rectified-flow Euler loop of docs/export.md, draws the
 * grid `sdc sample` drew (within 2 of 255 levels).
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import * as ort from "onnxruntime-node";
import { PNG } from "pngjs";
import { afterAll, describe, expect, it } from "vitest";
import { Rng } from "../../runtime/util/rng.ts";
import { WordTokenizer } from "../../runtime/text/words.ts";

const tmp = mkdtempSync(join(tmpdir(), "sdc-pack-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function run(cmd: string, args: string[], cwd: string, timeout = 240_000): string {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8", timeout, env: { ...process.env, npm_config_update_notifier: "false" } });
  expect(r.status, `${cmd} ${args.join(" ")} in ${cwd}:\n${r.stdout}\n${r.stderr}`).toBe(0);
  return r.stdout;
}

/** The app's lockfile: sdc from the tarball, its dependencies as this repository's lockfile pins them. */
function appLock(tarball: string): object {
  const lock = JSON.parse(readFileSync("package-lock.json", "utf8"));
  const pkg = JSON.parse(readFileSync("package.json", "utf8"));
  const packages: Record<string, object> = {
    "": { name: "app", version: "1.0.0", dependencies: { sdc: `file:${tarball}` } },
    "node_modules/sdc": { version: pkg.version, resolved: `file:${tarball}`, hasInstallScript: true, license: pkg.license, dependencies: pkg.dependencies, optionalDependencies: pkg.optionalDependencies, bin: pkg.bin, engines: pkg.engines },
  };
  for (const [path, entry] of Object.entries(lock.packages as Record<string, { dev?: boolean }>)) if (path !== "" && !entry.dev) packages[path] = entry;
  return { name: "app", version: "1.0.0", lockfileVersion: 3, requires: true, packages };
}

describe("sdc packed and installed into an empty folder", () => {
  it("compiles a spec importing sdc/lib, trains 3 steps, samples and exports; the ONNX file samples the same grid", async () => {
    const out = run("npm", ["pack", "--ignore-scripts", "--pack-destination", tmp], process.cwd());
    const tarball = out.trim().split("\n").at(-1)!;
    expect(tarball).toMatch(/^sdc-.*\.tgz$/);
    const app = join(tmp, "app");
    mkdirSync(app);
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", version: "1.0.0", private: true, dependencies: { sdc: `file:../${tarball}` } }, null, 2));
    writeFileSync(join(app, "package-lock.json"), JSON.stringify(appLock(`../${tarball}`), null, 2));
    run("npm", ["ci", "--offline", "--no-audit", "--no-fund"], app);
    expect(existsSync(join(app, "node_modules/sdc/specs/lib/mmdit.mdl")), "the block library (sdc/lib/...) ships in the package").toBe(true);

    writeFileSync(join(app, "digits.mdl"), readFileSync("specs/sd3.mdl", "utf8").replaceAll('import "lib/', 'import "sdc/lib/'));
    const sdc = (...args: string[]) => run("npx", ["--no-install", "sdc", ...args], app);
    sdc("compile", "digits.mdl", "--variant", "tiny");
    sdc("train", "generated/digits-tiny", "--steps", "3", "--batch-size", "8", "--out", "out/run", "--no-progress");
    const [prompt, cfg, steps, seed, n] = ["seven", 3, 4, 2, 4];
    sdc("sample", "generated/digits-tiny", "--checkpoint", "out/run", "--prompt", prompt, "--n", String(n), "--cfg", String(cfg), "--steps", String(steps), "--seed", String(seed), "--out", "out/sample.png");
    sdc("export", "out/run", "--onnx", "out/digits.onnx", "--web", "out/web");
    expect(existsSync(join(app, "out/web/index.html"))).toBe(true);

    // docs/export.md's loop, with onnxruntime-node instead of Python's onnxruntime
    const session = await ort.InferenceSession.create(resolve(app, "out/digits.onnx"));
    const ir = JSON.parse(readFileSync(join(app, "generated/digits-tiny/ir.json"), "utf8"));
    const [H, W, C] = [ir.data.height, ir.data.width, ir.data.channels];
    const ck = JSON.parse(readFileSync(join(app, "out/run/checkpoints", readFileSync(join(app, "out/run/checkpoints/latest"), "utf8").trim(), "state.json"), "utf8"));
    const tok = new WordTokenizer(ck.words, ck.words.length + 2, ir.text.tokens);
    const ids = tok.encodeBatch([...new Array(n).fill(prompt), ...new Array(n).fill("")]); // conditional, then unconditional
    const per = H * W * C;
    let x = new Rng(seed).normals(n * per); // noise at sigma = 1 (network time t = 0)
    for (let i = 0; i < steps; i++) {
      const [t0, t1] = [i / steps, (i + 1) / steps]; // t = 1 - sigma: 0 is noise, 1 is data
      const xx = new Float32Array(2 * n * per);
      xx.set(x);
      xx.set(x, n * per);
      const r = await session.run({ x: new ort.Tensor("float32", xx, [2 * n, H, W, C]), t: new ort.Tensor("float32", new Float32Array(2 * n).fill(t0), [2 * n]), ids: new ort.Tensor("int32", ids, [2 * n, ir.text.tokens]) });
      const v = r.velocity.data as Float32Array;
      x = x.map((xv, j) => xv + (v[n * per + j] + cfg * (v[j] - v[n * per + j])) * (t1 - t0));
    }
    const want = PNG.sync.read(readFileSync(join(app, "out/sample.png")));
    const cols = Math.ceil(Math.sqrt(n));
    let worst = 0;
    for (let k = 0; k < n; k++) {
      for (let y = 0; y < H; y++) {
        for (let z = 0; z < W; z++) {
          const px = (Math.floor(k / cols) * (H + 2) + 2 + y) * want.width + (k % cols) * (W + 2) + 2 + z;
          const byte = Math.min(255, Math.max(0, Math.floor(((x[(k * H + y) * W + z] + 1) / 2) * 255 + 0.5)));
          worst = Math.max(worst, Math.abs(byte - want.data[px * 4]));
        }
      }
    }
    console.log(`packed install: sdc ${tarball}; the ONNX Euler loop vs sdc sample: max ${worst} of 255 levels`);
    expect(worst).toBeLessThanOrEqual(2);
    await session.release();
  }, 480_000);
});
