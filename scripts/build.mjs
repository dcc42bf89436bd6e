// Bundles the TypeScript sources into dist/ with esbuild (fast; type checking is `npm run typecheck`).
import { build } from "esbuild";
import { existsSync } from "node:fs";

const entryPoints = ["src/cli/main.ts", "src/cli/vmm_node_flags.ts", "src/vm/vcpu_worker.ts", "src/cpu/jit/compile_worker.ts"].filter((f) => existsSync(f));
await build({
  entryPoints,
  outdir: "dist",
  outbase: "src",
  bundle: true,
  // Dynamic imports become chunks: `run` does not load the daemon's modules.
  splitting: true,
  platform: "node",
  format: "esm",
  target: "node20",
  sourcemap: true,
  packages: "external",
  logLevel: "warning",
});
