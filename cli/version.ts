/** sdc's version (package.json's; a test checks they agree). */
export const SDC_VERSION = "0.1.0";
