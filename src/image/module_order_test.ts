import { test } from "node:test";
import assert from "node:assert/strict";
import { orderModules, type ModuleNode } from "./module_order.js";

const graph: Record<string, ModuleNode> = {
  ext4: { name: "ext4", depends: ["jbd2", "mbcache", "crc16"], softPre: ["crc32c_generic"] },
  jbd2: { name: "jbd2", depends: [] },
  mbcache: { name: "mbcache", depends: [] },
  crc16: { name: "crc16", depends: [] },
  crc32c_generic: { name: "crc32c_generic", depends: [] },
  virtio_net: { name: "virtio_net", depends: ["net_failover"] },
  net_failover: { name: "net_failover", depends: ["failover"] },
  failover: { name: "failover", depends: [] },
  virtio_rng: { name: "virtio_rng", depends: [] },
  vsock: { name: "vsock", depends: [] },
  vmw_vsock_virtio_transport: { name: "vmw_vsock_virtio_transport", depends: ["vmw_vsock_virtio_transport_common", "vsock"] },
  vmw_vsock_virtio_transport_common: { name: "vmw_vsock_virtio_transport_common", depends: ["vsock"] },
};
const lookup = (n: string): ModuleNode | null => graph[n] ?? null;

function assertDepsFirst(order: string[]): void {
  for (const name of order) {
    const node = graph[name]!;
    for (const dep of [...node.depends, ...(node.softPre ?? [])]) {
      assert.ok(order.indexOf(dep) < order.indexOf(name), `${dep} loads before ${name}`);
    }
  }
}

test("dependencies come first, each module once, wanted order kept otherwise", () => {
  const order = orderModules(["virtio_net", "ext4", "vmw_vsock_virtio_transport", "vsock", "virtio-rng"], lookup);
  assert.deepEqual(order, [
    "failover",
    "net_failover",
    "virtio_net",
    "crc32c_generic",
    "jbd2",
    "mbcache",
    "crc16",
    "ext4",
    "vsock",
    "vmw_vsock_virtio_transport_common",
    "vmw_vsock_virtio_transport",
    "virtio_rng",
  ]);
  assertDepsFirst(order);
});

test("built-in modules are skipped, together with nothing they would pull in", () => {
  const order = orderModules(["virtio_console", "ext4"], lookup, new Set(["virtio_console", "crc16"]));
  assert.deepEqual(order, ["crc32c_generic", "jbd2", "mbcache", "ext4"]);
});

test("a missing module is named with the chain that needed it", () => {
  const g = { a: { name: "a", depends: ["b"] }, b: { name: "b", depends: ["gone"] } } as Record<string, ModuleNode>;
  assert.throws(
    () => orderModules(["a"], (n) => g[n] ?? null),
    /Cannot find kernel module "gone" \(needed by a -> b\): it is neither in the kernel package nor built in/,
  );
});

test("a dependency cycle is reported instead of looping", () => {
  const g = { a: { name: "a", depends: ["b"] }, b: { name: "b", depends: ["a"] } } as Record<string, ModuleNode>;
  assert.throws(() => orderModules(["a"], (n) => g[n] ?? null), /cycle \(a -> b -> a\)/);
});
