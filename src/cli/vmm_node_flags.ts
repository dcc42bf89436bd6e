// Node flags for a VMM process (`nodevisor run`), which bin/nodevisor.js starts it with and the
// daemon passes to the VMs it starts. Its own entry point in dist/, so the bin loads only this.
import { availableParallelism } from "node:os";

const POOL_FLAG = "--v8-pool-size";

/**
 * V8's background thread pool for a VM process: one thread fewer than the host has cores, at most
 * Node's default of 4. The pool runs TurboFan for the interpreter, wasm tier-up for the JIT's
 * blocks and parallel GC; with Node's 4 beside the vCPU and compile threads a 2-core host ran six
 * busy threads at a boot, and the vCPU thread waited for a core: with 1, the boot to the shell took
 * ~8% less time and the shell loop ~5-10% less (docs/performance.md). A host running many VMs wants
 * few background threads per VM process anyway.
 */
export function v8PoolSize(cores = availableParallelism()): number {
  return Math.max(1, Math.min(4, cores - 1));
}

/**
 * The flags to add to `execArgv` for a VMM process: none when it sets the pool already, or when
 * NODEVISOR_V8_POOL_SIZE says "default" (Node's own); a number there is taken as the size.
 */
export function vmmNodeFlags(execArgv: readonly string[], env: NodeJS.ProcessEnv = process.env): string[] {
  if (execArgv.some((a) => a.startsWith(POOL_FLAG))) return [];
  const asked = env.NODEVISOR_V8_POOL_SIZE;
  if (asked === "default") return [];
  const size = asked !== undefined && /^[1-9][0-9]?$/.test(asked) ? Number(asked) : v8PoolSize();
  return [`${POOL_FLAG}=${size}`];
}

/**
 * The environment for a VMM process: the caller's without NODE_EXTRA_CA_CERTS. Node 20 parses that
 * whole bundle when it starts (~75 ms for Debian's ca-certificates.crt on these hosts, against ~45
 * ms for the rest of Node's start), and a VMM makes no TLS connection (an image build's downloads
 * are apt-get's).
 */
export function vmmEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  if (env.NODE_EXTRA_CA_CERTS === undefined) return env;
  const { NODE_EXTRA_CA_CERTS: _unused, ...rest } = env;
  return rest;
}
