// Node module resolve hook: `sdc/runtime` and `sdc/compiler` always resolve to this package,
// also from generated code written outside the repository (registered by bin/sdc.mjs and by
// cli/generated.ts before it imports a compiled spec). Registered with `{ dist: true }` (the
// precompiled CLI), they resolve to dist/, the CLI's own module instances.
const root = new URL("../", import.meta.url);
let MAP = { "sdc/runtime": "runtime/index.ts", "sdc/compiler": "compiler/index.ts" };

export function initialize(data) {
  if (data?.dist) MAP = { "sdc/runtime": "dist/runtime.mjs", "sdc/compiler": "dist/compiler.mjs" };
}

export async function resolve(specifier, context, next) {
  const target = MAP[specifier];
  if (target) return next(new URL(target, root).href, context);
  return next(specifier, context);
}
