/**
 * The IR validator compiled ahead of time. From source this is empty and ir-check.ts compiles
 * ir/ir.schema.json with ajv on first use (~0.1-0.2 s); scripts/build.mjs replaces this
 * module in dist/ with ajv's standalone code for the same schema and options, so the
 * precompiled CLI starts without compiling it (test/cli/dist.test.ts checks both agree).
 */
export type PrecompiledValidator = ((ir: unknown) => boolean) & { errors?: { instancePath: string; message?: string }[] | null };

export const precompiled: PrecompiledValidator | undefined = undefined;

/** The ajv options of the validator (the build compiles with exactly these). */
export const AJV_OPTIONS = { allErrors: true, strict: false } as const;
