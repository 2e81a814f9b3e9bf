/** Write docs/settings.md from the compiler's tables: npx tsx scripts/gen-settings-doc.ts */
import { writeFileSync } from "node:fs";
import { settingsMarkdown } from "../compiler/settings-doc.ts";

writeFileSync(new URL("../docs/settings.md", import.meta.url), settingsMarkdown());
console.error("wrote docs/settings.md");
