/** `sdc export`'s mistakes: a clear one-line message and exit 2 (usage) or 1 (input), no stack. */
import { describe, expect, it, vi } from "vitest";
import { main } from "../../cli/main.ts";

async function inProcess(argv: string[]): Promise<{ code: number; stderr: string }> {
  let stderr = "";
  const spy = vi.spyOn(process.stderr, "write").mockImplementation((s: string | Uint8Array) => {
    stderr += String(s);
    return true;
  });
  try {
    return { code: await main(argv), stderr };
  } finally {
    spy.mockRestore();
  }
}

describe("sdc export exit codes", () => {
  it.each([
    [["export", "output/x"], 2, /say what to export: --onnx FILE.onnx and\/or --web DIR/],
    [["export", "output/x", "--onnx", "model.txt"], 2, /--onnx must name a .onnx file, got 'model.txt'/],
    [["export", "output/x", "--onnx", "m.onnx", "--weights", "best"], 2, /--weights.*best.*(ema|raw)/],
    [["export", "package.json", "--web", "page"], 1, /package.json is not a checkpoint folder/],
    [["export", "output/no-such-run", "--onnx", "m.onnx"], 1, /checkpoint not found: output\/no-such-run/],
  ])("sdc %j exits %i", async (argv, code, message) => {
    const r = await inProcess(argv);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.code).toBe(code);
  });
});
