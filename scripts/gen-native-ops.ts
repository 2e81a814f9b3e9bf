/**
 * Writes runtime/executors/native/src/ew_ops.inc (the C forms of the elementwise operators) from the one table in
 * runtime/graph/ops.ts. `npm run gen:native`; test/graph/native.test.ts fails when it is stale.
 */
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ewOpsInc } from "../runtime/executors/native/lower.ts";

const out = fileURLToPath(new URL("../runtime/executors/native/src/ew_ops.inc", import.meta.url));
writeFileSync(out, ewOpsInc());
console.log(`wrote ${out}`);
