/**
 * The fuzz harnesses' line reader (test/fuzz/lines.ts): lines split across chunks, several in one
 * chunk, empty lines, a final line without its newline (never a line), "\r" kept, and UTF-8
 * characters split across a pipe's chunks.
 */
import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { LineSplitter, onLines } from "./lines.ts";

/** Every line the splitter gives for `chunks`, chunk by chunk, and what is left pending. */
function split(chunks: string[]): { lines: string[][]; pending: string } {
  const s = new LineSplitter();
  const lines = chunks.map((c) => s.push(c));
  return { lines, pending: s.pending };
}

describe("LineSplitter", () => {
  const cases: [name: string, chunks: string[], lines: string[][], pending: string][] = [
    ["one line in one chunk", ["case 3\n"], [["case 3"]], ""],
    ["several lines in one chunk", ["a\nb\nc\n"], [["a", "b", "c"]], ""],
    ["a line split across chunks comes once, when its newline does", ["ca", "se 1", "2\nd"], [[], [], ["case 12"]], "d"],
    ["a newline alone completes the pending line", ["done {}", "\n"], [[], ["done {}"]], ""],
    ["empty lines are lines", ["\n\na\n", "\n"], [["", "", "a"], [""]], ""],
    ["a final line without a newline is no line", ["1\tran\n2\tref"], [["1\tran"]], "2\tref"],
    ["an empty chunk changes nothing", ["x", "", "\n"], [[], [], ["x"]], ""],
    ["\\r is kept: lines end at \\n only", ["a\r\nb\r", "\n"], [["a\r"], ["b\r"]], ""],
  ];
  for (const [name, chunks, lines, pending] of cases) {
    it(name, () => {
      expect(split(chunks)).toEqual({ lines, pending });
    });
  }
});

describe("onLines", () => {
  it("reads a stream's lines as they come, joining a UTF-8 character split between chunks, dropping an unfinished last line", async () => {
    const stream = new PassThrough();
    const got: string[] = [];
    onLines(stream, (l) => got.push(l));
    const bytes = Buffer.from("case 1 — ok\ndone {\"π\":1}\ncut", "utf8");
    const dash = bytes.indexOf(Buffer.from("—", "utf8"));
    stream.write(bytes.subarray(0, dash + 1)); // the first byte of the 3-byte "—"
    stream.write(bytes.subarray(dash + 1, dash + 2));
    stream.end(bytes.subarray(dash + 2));
    await new Promise((resolve) => stream.on("end", resolve));
    expect(got).toEqual(["case 1 — ok", 'done {"π":1}']);
  });
});
