#!/usr/bin/env node
// Entry point installed as `nodevisor`; the bundle is built by `npm ci` (the prepare script).
import { fileURLToPath } from "node:url";
import { existsSync } from "node:fs";
import { spawn } from "node:child_process";
const bundle = fileURLToPath(new URL("../dist/cli/main.js", import.meta.url));
if (!existsSync(bundle)) {
  console.error("nodevisor: the build output dist/cli/main.js is missing; run `npm run build` in the nodevisor folder.");
  process.exit(2);
}
// A VMM process needs Node flags that only a new process can take (src/cli/vmm_node_flags.ts
// says which and why): `run` starts itself again with them, once, and is only a parent that
// mirrors the child's exit. A terminal's Ctrl-C reaches both (one process group), so SIGINT is
// left to the child; SIGTERM and SIGHUP, sent to this pid, are passed on.
const { vmmNodeFlags } = process.argv[2] === "run" ? await import("../dist/cli/vmm_node_flags.js") : { vmmNodeFlags: () => [] };
const flags = vmmNodeFlags(process.execArgv);
if (flags.length === 0) {
  await import(bundle);
} else {
  const child = spawn(process.execPath, [...process.execArgv, ...flags, bundle, ...process.argv.slice(2)], { stdio: "inherit" });
  process.on("SIGINT", () => {});
  for (const signal of ["SIGTERM", "SIGHUP"]) process.on(signal, () => child.kill(signal));
  child.on("error", (e) => {
    console.error(`nodevisor: could not start the VM process (${e.message}); NODEVISOR_V8_POOL_SIZE=default runs it in this process.`);
    process.exit(1);
  });
  child.on("exit", (code, signal) => {
    if (signal === null) process.exit(code ?? 1);
    process.removeAllListeners(signal);
    process.kill(process.pid, signal); // die of the same signal, as a shell expects
  });
}
