import { test } from "node:test";
import assert from "node:assert/strict";
import { v8PoolSize, vmmEnv, vmmNodeFlags } from "./vmm_node_flags.js";

test("V8's pool for a VM process leaves a core to the vCPU thread, between 1 and Node's 4", () => {
  assert.deepEqual([1, 2, 3, 4, 8, 64].map((c) => v8PoolSize(c)), [1, 1, 2, 3, 4, 4]);
});

test("the pool flag is added once, and NODEVISOR_V8_POOL_SIZE sets it or keeps Node's default", () => {
  assert.deepEqual(vmmNodeFlags([], { NODEVISOR_V8_POOL_SIZE: "3" }), ["--v8-pool-size=3"]);
  assert.deepEqual(vmmNodeFlags(["--v8-pool-size=2"], {}), []);
  assert.deepEqual(vmmNodeFlags([], { NODEVISOR_V8_POOL_SIZE: "default" }), []);
  assert.deepEqual(vmmNodeFlags(["--import", "tsx"], { NODEVISOR_V8_POOL_SIZE: "junk" }), [`--v8-pool-size=${v8PoolSize()}`]);
});

test("a VMM process starts without NODE_EXTRA_CA_CERTS (Node parses the bundle at start; a VMM makes no TLS connection)", () => {
  assert.deepEqual(vmmEnv({ PATH: "/bin", NODE_EXTRA_CA_CERTS: "/etc/ssl/certs/ca-certificates.crt" }), { PATH: "/bin" });
  const env = { PATH: "/bin" };
  assert.equal(vmmEnv(env), env);
});
