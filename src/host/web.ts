// The web console: a page listing the VMs with live figures and start/stop/pause/resume buttons,
// which opens a VM's serial console in xterm.js (served from node_modules, never a CDN).

import type { FastifyInstance } from "fastify";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { existsSync } from "node:fs";

/** The folder of the page's own files: beside this module in src/, or src/host/web from dist/. */
function webDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    for (const candidate of [join(dir, "web"), join(dir, "src/host/web")]) if (existsSync(join(candidate, "index.html"))) return candidate;
    dir = dirname(dir);
  }
  throw new Error("The web console's files (src/host/web) are missing from this installation.");
}

export function registerWebConsole(app: FastifyInstance): void {
  const require = createRequire(import.meta.url);
  const dir = webDir();
  const files: Record<string, { path: string; type: string }> = {
    "/": { path: join(dir, "index.html"), type: "text/html; charset=utf-8" },
    "/ui/app.js": { path: join(dir, "app.js"), type: "text/javascript; charset=utf-8" },
    "/ui/xterm.js": { path: require.resolve("@xterm/xterm/lib/xterm.js"), type: "text/javascript; charset=utf-8" },
    "/ui/xterm.css": { path: join(dirname(require.resolve("@xterm/xterm/package.json")), "css/xterm.css"), type: "text/css; charset=utf-8" },
  };
  for (const [url, f] of Object.entries(files)) {
    app.get(url, { schema: { hide: true } }, async (_req, reply) => reply.type(f.type).header("cache-control", "no-cache").send(readFileSync(f.path)));
  }
}
