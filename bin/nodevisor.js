#!/bin/sh
":" /*
# This file is a shell script and an ES module. Started as a program (`npx nodevisor`, a PATH
# lookup: the shebang), the shell runs these lines and starts Node once, with the flags a VMM
# process needs (src/cli/vmm_node_flags.ts): a second Node start costs ~0.1 s before the guest runs.
# Node reads the lines as a string and a comment, and runs the module below.
# A VMM makes no TLS connection, and Node parses NODE_EXTRA_CA_CERTS whole at start (~75 ms here).
[ "$1" = run ] && unset NODE_EXTRA_CA_CERTS
if [ "$1" = run ] && [ "${NODEVISOR_V8_POOL_SIZE:-}" != default ]; then
  size=${NODEVISOR_V8_POOL_SIZE:-}
  case "$size" in
    [1-9] | [1-9][0-9]) ;;
    *) # vmm_node_flags.ts v8PoolSize: one thread fewer than the cores we may use, 1 to 4
      cores=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc 2>/dev/null || echo 2)
      size=$((cores - 1)); [ "$size" -lt 1 ] && size=1; [ "$size" -gt 4 ] && size=4 ;;
  esac
  exec node "--v8-pool-size=$size" "$0" "$@"
fi
exec node "$0" "$@"
exit 127
*/
// Entry point installed as `nodevisor`; the bundle is built by `npm ci` (the prepare script).
import { fileURLToPath } from "node:url";
import { existsSync } from "node:fs";
import { spawn } from "node:child_process";
const bundle = fileURLToPath(new URL("../dist/cli/main.js", import.meta.url));
if (!existsSync(bundle)) {
  console.error("nodevisor: the build output dist/cli/main.js is missing; run `npm run build` in the nodevisor folder.");
  process.exit(2);
}
// Started as `node bin/nodevisor.js run ...` (no shell above), `run` starts itself again with its
// Node flags, once, and is only a parent that mirrors the child's exit. A terminal's Ctrl-C
// reaches both (one process group), so SIGINT is left to the child; SIGTERM and SIGHUP, sent to
// this pid, are passed on.
const { vmmNodeFlags, vmmEnv } = process.argv[2] === "run" ? await import("../dist/cli/vmm_node_flags.js") : { vmmNodeFlags: () => [], vmmEnv: () => process.env };
const flags = vmmNodeFlags(process.execArgv);
if (flags.length === 0) {
  await import(bundle);
} else {
  const child = spawn(process.execPath, [...process.execArgv, ...flags, bundle, ...process.argv.slice(2)], { stdio: "inherit", env: vmmEnv() });
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
