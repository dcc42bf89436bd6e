import { test } from "node:test";
import assert from "node:assert/strict";
import { modulesAlias, modulesBuiltin, modulesDep } from "./module_db.js";

// The guest's real set, as the builder selects it from Debian's 6.12 kernel.
const modules = [
  { name: "virtio_blk", depends: [], aliases: ["virtio:d00000002v*"] },
  { name: "crc32c_generic", depends: [], aliases: ["crypto-crc32c", "crc32c"] },
  { name: "jbd2", depends: ["crc32c_generic"], aliases: [] },
  { name: "mbcache", depends: [], aliases: [] },
  { name: "crc16", depends: [], aliases: [] },
  { name: "ext4", depends: ["crc32c_generic", "jbd2", "mbcache", "crc16"], aliases: ["fs-ext4", "ext3"] },
  { name: "vsock", depends: [], aliases: [] },
  { name: "vmw_vsock_virtio_transport_common", depends: ["vsock"], aliases: [] },
  { name: "vmw_vsock_virtio_transport", depends: ["vmw_vsock_virtio_transport_common", "vsock"], aliases: ["virtio:d00000013v*"] },
];

test("modules.dep lists every dependency, the one to load first last (depmod's order, which modprobe reverses)", () => {
  const lines = modulesDep(modules).split("\n");
  assert.ok(lines.includes("virtio_blk.ko:"));
  assert.ok(lines.includes("jbd2.ko: crc32c_generic.ko"));
  assert.ok(lines.includes("ext4.ko: crc16.ko mbcache.ko jbd2.ko crc32c_generic.ko"));
  assert.ok(lines.includes("vmw_vsock_virtio_transport.ko: vmw_vsock_virtio_transport_common.ko vsock.ko"));
  assert.equal(lines.pop(), "", "ends with a newline");
});

test("modules.alias carries each module's aliases, and net-pf-40 for vsock, which declares none", () => {
  const text = modulesAlias(modules);
  assert.match(text, /^alias virtio:d00000002v\* virtio_blk$/m);
  assert.match(text, /^alias fs-ext4 ext4$/m);
  assert.match(text, /^alias crypto-crc32c crc32c_generic$/m);
  assert.match(text, /^alias net-pf-40 vsock$/m);
  assert.doesNotMatch(modulesAlias(modules.filter((m) => !m.name.includes("vsock"))), /net-pf-40/, "only for a shipped module");
});

test("modules.builtin names one module file per line", () => {
  assert.equal(modulesBuiltin(["virtio_console", "virtio"]), "virtio.ko\nvirtio_console.ko\n");
});
