#!/usr/bin/env node
// Entry point installed as `nodevisor`; the bundle is built by `npm ci` (the prepare script).
import { fileURLToPath } from "node:url";
import { existsSync } from "node:fs";
const bundle = fileURLToPath(new URL("../dist/cli/main.js", import.meta.url));
if (!existsSync(bundle)) {
  console.error("nodevisor: the build output dist/cli/main.js is missing; run `npm run build` in the nodevisor folder.");
  process.exit(2);
}
await import(bundle);
