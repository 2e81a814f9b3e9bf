/**
 * The command line of a bench script: node:util's parseArgs, with `--help` (or `-h`) printing the
 * script's header comment (its usage) and a bad option printing what was wrong and where to read
 * the usage, exit code 2, no stack trace.
 *
 *   const { values } = benchArgs(import.meta.url, { options: { ... } });
 */
import { readFileSync } from "node:fs";
import { relative } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs, type ParseArgsConfig } from "node:util";

/** The script's first block comment, its ` * ` margins removed. */
export function headerOf(path: string): string {
  const m = /\/\*\*([\s\S]*?)\*\//.exec(readFileSync(path, "utf8"));
  return m ? m[1].split("\n").map((l) => l.replace(/^\s*\* ?/, "")).join("\n").trim() : "";
}

export function benchArgs<T extends ParseArgsConfig>(scriptUrl: string, config: T, argv = process.argv.slice(2)): ReturnType<typeof parseArgs<T>> {
  const path = fileURLToPath(scriptUrl);
  const name = relative(process.cwd(), path) || path;
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(headerOf(path));
    process.exit(0);
  }
  try {
    return parseArgs({ ...config, args: argv }) as ReturnType<typeof parseArgs<T>>;
  } catch (e) {
    console.error(`${name}: ${e instanceof Error ? e.message : String(e)} (${name} --help for its options)`);
    process.exit(2);
  }
}
