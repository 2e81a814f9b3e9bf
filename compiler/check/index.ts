/** The static checker (phase 4): see checker.ts for the two modes and the files by concern. */
export { listParam } from "./calls.ts";
export { Checker } from "./checker.ts";
export { type DepNode, flattenDeps, joinDeps } from "./deps.ts";
export { exprLabel, exprText, fmtCount, joinPath, suggest } from "./text.ts";
export { Abort, type BlockAnalysis, MAX_ACTIVATION, MAX_PARAMS, MAX_UNROLL, type ModuleDecl, type ValueObserver } from "./types.ts";
