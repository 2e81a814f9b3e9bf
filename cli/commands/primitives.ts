/** `sdc primitives`: the primitive reference, from the compiler's own table (compiler/primitives.ts). */
import { describePrimitives, primitivesMarkdown, primitivesText } from "../../compiler/primdoc.ts";
import { suggest } from "../../compiler/check/index.ts";
import { EXIT, UsageError } from "../errors.ts";

export interface PrimitivesCliOptions {
  markdown?: boolean;
  json?: boolean;
}

export function runPrimitives(names: string[], opts: PrimitivesCliOptions, out: { write(s: string): unknown } = process.stdout): number {
  if (opts.markdown && opts.json) throw new UsageError("--markdown and --json exclude each other");
  const all = describePrimitives();
  for (const n of names) {
    if (!all.some((d) => d.name === n)) throw new UsageError(`no primitive '${n}'${suggest(n, all.map((d) => d.name))}; primitives: ${all.map((d) => d.name).join(", ")}`);
  }
  const docs = names.length ? all.filter((d) => names.includes(d.name)) : all;
  if (opts.json) out.write(JSON.stringify(docs, null, 2) + "\n");
  else if (opts.markdown) out.write(primitivesMarkdown(docs));
  else out.write(primitivesText(docs) + "\n");
  return EXIT.ok;
}
