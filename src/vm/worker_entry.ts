// Where a worker thread's entry module is: under tsx the TypeScript source, started through the
// loader in testing/ts_worker.mjs (a worker's --import does not apply to its entry in Node 20);
// from the esbuild bundle, the entry's own bundle in dist/.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/**
 * The URL to give `new Worker` for the entry module `name` (a path under src/ without extension,
 * such as "vm/vcpu_worker"), and under tsx the source's URL to pass as workerData.entry.
 */
export function workerEntry(name: string): { url: URL; entry?: string } {
  const here = import.meta.url;
  if (here.endsWith(".ts")) {
    return { url: new URL("./testing/ts_worker.mjs", here), entry: new URL(`../${name}.ts`, here).href };
  }
  // esbuild puts this code in dist/cli/main.js or in a shared chunk in dist/.
  for (const rel of [`../${name}.js`, `./${name}.js`]) {
    const url = new URL(rel, here);
    if (existsSync(fileURLToPath(url))) return { url };
  }
  throw new Error(`The worker bundle ${name}.js is missing next to ${here}; run \`npm run build\`.`);
}
