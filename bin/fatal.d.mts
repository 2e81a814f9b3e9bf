// Types of bin/fatal.mjs (plain JavaScript: it runs before the TypeScript loader).
export function isOutOfMemoryError(e: unknown): boolean;
export function addressSpaceLimit(): number | null;
export function outOfMemoryLine(e: unknown): string;
export function installFatalHandlers(): void;
export function wasmAddressSpaceProblem(memories?: number): string | null;
