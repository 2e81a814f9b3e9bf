/**
 * Writes runtime/executors/native/src/ew_ops.inc (the C forms of the elementwise operators, from
 * the one table in runtime/graph/ops.ts) and runtime/executors/native/src/op_codes.inc (the
 * instruction codes of runtime/executors/native/lower.ts). `npm run gen:native`;
 * test/graph/native.test.ts fails when either is stale.
 */
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ewOpsInc, opCodesInc } from "../runtime/executors/native/lower.ts";

for (const [file, text] of [
  ["ew_ops.inc", ewOpsInc()],
  ["op_codes.inc", opCodesInc()],
] as const) {
  const out = fileURLToPath(new URL(`../runtime/executors/native/src/${file}`, import.meta.url));
  writeFileSync(out, text);
  console.log(`wrote ${out}`);
}
