// Node module resolve hook: `sdc/runtime` and `sdc/compiler` always resolve to this package,
// also from generated code written outside the repository (registered by bin/sdc.mjs and by
// cli/generated.ts before it imports a compiled spec).
const root = new URL("../", import.meta.url);
const MAP = { "sdc/runtime": "runtime/index.ts", "sdc/compiler": "compiler/index.ts" };

export async function resolve(specifier, context, next) {
  const target = MAP[specifier];
  if (target) return next(new URL(target, root).href, context);
  return next(specifier, context);
}
