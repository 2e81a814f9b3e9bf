/** Entry point for bundles (the GPU pack): run the CLI with the process's arguments. */
import { main } from "./main.ts";

process.exitCode = await main(process.argv.slice(2));
