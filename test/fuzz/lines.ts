/**
 * The lines a child process writes to a pipe, as they arrive, for the fuzz harnesses that follow
 * their children's progress (bench/fuzz.ts, test/graph/native-fuzz-cases.ts). A pipe's chunks
 * split lines (and UTF-8 characters) anywhere; a line counts only once its "\n" has come, so a
 * child killed in the middle of a line never yields half a record.
 */
import type { Readable } from "node:stream";

/** Text in chunks to complete lines: split at "\n" only (a "\r" stays in the line: the children write "\n"). */
export class LineSplitter {
  private rest = "";

  /** The lines that `chunk` completes, in order, without their "\n" (an empty line is ""). */
  push(chunk: string): string[] {
    const parts = (this.rest + chunk).split("\n");
    this.rest = parts.pop()!;
    return parts;
  }

  /** What came after the last "\n": a line not (yet) finished. */
  get pending(): string {
    return this.rest;
  }
}

/** Calls `onLine` with each complete line of `stream` as it arrives (decoded as UTF-8); text after the last "\n" is never a line. */
export function onLines(stream: Readable, onLine: (line: string) => void): void {
  const split = new LineSplitter();
  stream.setEncoding("utf8");
  stream.on("data", (d: string) => {
    for (const line of split.push(d)) onLine(line);
  });
}
