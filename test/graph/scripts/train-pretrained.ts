/**
 * Train the tiny sd3_pretrained spec (tiny CLIP-L/CLIP-G/T5 stand-ins, test/text/make-tiny-encoders.ts)
 * for 10 steps: argv engine backend out root. Used by test/graph/webgpu.test.ts under lavapipe.
 */
import { writeFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { compileSpecFile } from "../../../cli/commands/compile.ts";
import { runTrain } from "../../../cli/commands/train.ts";
import { writeDirAtomic } from "../../../runtime/io/atomic.ts";
import { makeTinyEncoders } from "../../text/make-tiny-encoders.ts";
const [engine, backend, out, root] = process.argv.slice(2);
if (!existsSync(join(root, "generated"))) {
  mkdirSync(root, { recursive: true });
  makeTinyEncoders(join(root, "encoders"));
  const { result, dir } = compileSpecFile("test/specs/sd3-tiny-pretrained.mdl", { outDir: join(root, "generated") });
  writeDirAtomic(dir!, Object.fromEntries(result.files!));
  writeFileSync(join(root, "generated", "package.json"), '{ "type": "module" }\n');
}
const enc = makeTinyEncoders(join(root, "encoders"));
const gen = join(root, "generated", "sd3-tiny-pretrained");
const code = await runTrain(gen, { backend: backend as any, engine: engine as any, steps: 10, batch: 8, samples: 4, sampleSteps: 2, out, progress: false, sampleEvery: 0, checkpointEvery: 5, textEncoders: `${enc.arg},cache=off`, log: (s) => console.error(s) });
console.log(JSON.stringify({ exit: code, metrics: readFileSync(join(out, "metrics.jsonl"), "utf8") }));
process.exit(0);
