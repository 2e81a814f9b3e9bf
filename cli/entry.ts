/** Entry point for bundles (the GPU pack): run the CLI with the process's arguments. */
import { installFatalHandlers } from "../bin/fatal.mjs";
import { main } from "./main.ts";

installFatalHandlers();

process.exitCode = await main(process.argv.slice(2));
