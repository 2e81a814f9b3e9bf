/**
 * The sdc command line. Only this layer touches the file system and the process; compiler
 * phases are pure and the runtime takes data in and gives data out.
 */
import { Command, CommanderError } from "commander";
import { fsReason } from "../runtime/io/atomic.ts";
import { outOfMemoryLine } from "../bin/fatal.mjs";
import { EXIT, USER_ERROR_NAMES, UsageError } from "./errors.ts";
import { COMMANDS } from "./program/commands.ts";
import { SDC_VERSION } from "./version.ts";

function build(onResult: (code: number) => void, argv: string[] = []): Command {
  const program = new Command();
  program
    .name("sdc")
    .description("sdc: a declarative model-spec compiler for diffusion transformers (SD3 MMDiT, rectified flow) that emits typed TensorFlow.js code")
    .version(SDC_VERSION)
    .exitOverride()
    .showHelpAfterError("(run with --help for usage)");
  for (const define of COMMANDS) define(program, { onResult, argv });
  return program;
}

/** The command-line program (for completion scripts and tests). */
export function cliProgram(): Command {
  return build(() => {});
}

/** Run the CLI; returns the exit code. Never lets a user mistake surface as a stack trace. */
export async function main(argv: string[]): Promise<number> {
  let code: number = EXIT.ok;
  const program = build((c) => (code = c), argv);
  if (argv.length === 0) {
    // a bare `sdc` is a usage error: say so and what there is, exit 2
    process.stderr.write(`error: no command given; the commands are:\n\n${program.helpInformation()}`);
    return EXIT.usage;
  }
  try {
    await program.parseAsync(argv, { from: "user" });
    return code;
  } catch (e) {
    return handleError(e);
  } finally {
    // only commands that started a tensor backend load tfjs; `sdc compile` never does
    if ((globalThis as { [k: symbol]: unknown })[Symbol.for("sdc.backend")]) {
      const { shutdownBackend } = await import("../runtime/backend.ts");
      await shutdownBackend();
    }
  }
}

/** File-system errors that describe the user's files or machine (errno codes). */
const FS_CODES = new Set(["EACCES", "EPERM", "EROFS", "ENOSPC", "EDQUOT", "ENOENT", "ENOTDIR", "EISDIR", "EEXIST", "ENAMETOOLONG", "EMFILE", "ENFILE", "EIO", "ELOOP", "ENXIO", "ETXTBSY"]);

/** An allocation that failed: a wasm abort in the tfjs backend, or an ArrayBuffer the JS heap would not give. */
export function isOutOfMemory(e: unknown): boolean {
  const err = e as { name?: string; message?: string; stack?: string } | undefined;
  if (!err || typeof err.message !== "string") return false;
  if (err.name === "RuntimeError" && /^Aborted\(/.test(err.message) && /tfjs-backend-wasm/.test(err.stack ?? "")) return true;
  return err.name === "RangeError" && /Array buffer allocation failed|could not allocate memory|Maximum memory size exceeded|Out of memory|Invalid typed array length|Array buffer allocation/i.test(err.message);
}

/** A message printed as one line (a user error is one line: `error: ...`). */
function oneLine(s: string): string {
  return s.replace(/\s*[\r\n]+\s*/g, " ").trim();
}

export function handleError(e: unknown): number {
  if (e instanceof CommanderError) {
    if (e.code === "commander.helpDisplayed" || e.code === "commander.version" || e.code === "commander.help") return EXIT.ok;
    return EXIT.usage;
  }
  const err = e as { name?: string; message?: string; exitCode?: number; stack?: string; code?: string; syscall?: string; path?: string };
  if (err && typeof err.name === "string" && USER_ERROR_NAMES.has(err.name)) {
    process.stderr.write(`error: ${oneLine(err.message ?? "")}\n`);
    return err.exitCode ?? (e instanceof UsageError ? EXIT.usage : EXIT.spec);
  }
  // the machine said no (memory, disk, permissions): the user's to fix, not a bug in sdc
  if (isOutOfMemory(e)) {
    process.stderr.write(`error: ${outOfMemoryLine(e)}\n`);
    return EXIT.spec;
  }
  if (err && typeof err.code === "string" && FS_CODES.has(err.code) && typeof err.syscall === "string") {
    process.stderr.write(`error: cannot ${err.syscall}${err.path ? ` ${err.path}` : ""}: ${fsReason(e)}\n`);
    return EXIT.spec;
  }
  process.stderr.write(`internal error (a bug in sdc; please report it with this trace):\n${err?.stack ?? String(e)}\n`);
  return EXIT.internal;
}
