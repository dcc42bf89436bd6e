import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { indexModuleFiles, readBuiltinModules, selectModules } from "./kernel_modules.js";
import { makeModule } from "./testing_elf.js";

const hasXz = !spawnSync("xz", ["--version"]).error;

/** A fake /usr/lib/modules/<ver> tree: ext4 (.ko.xz when xz exists), its deps, and a built-in console. */
function fakeModuleRoot(): string {
  const root = mkdtempSync(join(tmpdir(), "nodevisor-mods-"));
  const put = (rel: string, data: Uint8Array): void => {
    mkdirSync(join(root, "kernel", rel, ".."), { recursive: true });
    writeFileSync(join(root, "kernel", rel), data);
  };
  const ext4 = makeModule("ext4", ["jbd2", "mbcache"], "softdep=pre: crc32c crc16\0");
  if (hasXz) put("fs/ext4/ext4.ko.xz", spawnSync("xz", ["-c"], { input: ext4 }).stdout);
  else put("fs/ext4/ext4.ko", ext4);
  put("fs/jbd2/jbd2.ko.gz", gzipSync(makeModule("jbd2", [])));
  put("fs/mbcache.ko", makeModule("mbcache", []));
  put("lib/crc16.ko", makeModule("crc16", []));
  put("crypto/crc32c_generic.ko", makeModule("crc32c_generic", [], "alias=crypto-crc32c\0alias=crc32c\0"));
  put("drivers/char/hw_random/virtio-rng.ko", makeModule("virtio_rng", []));
  put("drivers/net/virtio_net.ko", makeModule("virtio_net", ["net_failover"]));
  writeFileSync(join(root, "modules.builtin"), "kernel/drivers/char/virtio_console.ko\nkernel/drivers/virtio/virtio.ko\n");
  return root;
}

test("module files are indexed by name with '-' read as '_', and built-ins are read from modules.builtin", () => {
  const root = fakeModuleRoot();
  try {
    const index = indexModuleFiles(root);
    assert.ok(index.get("virtio_rng")?.endsWith("virtio-rng.ko"));
    assert.ok(index.has("ext4") && index.has("jbd2"));
    assert.deepEqual([...readBuiltinModules(root)].sort(), ["virtio", "virtio_console"]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("selectModules decompresses, follows depends and resolvable softdeps, and skips built-ins", async () => {
  const root = fakeModuleRoot();
  const logs: string[] = [];
  try {
    const sel = await selectModules(root, ["virtio_console", "virtio-rng", "ext4"], { log: (l) => logs.push(l) });
    assert.deepEqual(sel.builtin, ["virtio_console"]);
    assert.deepEqual(sel.kernelBuiltin.sort(), ["virtio", "virtio_console"]);
    assert.deepEqual(sel.modules.map((m) => m.name), ["virtio_rng", "crc16", "jbd2", "mbcache", "ext4"]);
    for (const m of sel.modules) assert.deepEqual([...m.data.subarray(0, 4)], [0x7f, 0x45, 0x4c, 0x46], `${m.name} is plain ELF`);
    assert.ok(logs.some((l) => /soft dependency "crc32c" is an alias no selected module provides/.test(l)));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("a soft dependency naming an alias is followed to the selected module carrying it, and aliases are kept", async () => {
  const root = fakeModuleRoot();
  try {
    const sel = await selectModules(root, ["crc32c_generic", "ext4"]);
    assert.deepEqual(sel.modules.map((m) => m.name), ["crc32c_generic", "crc16", "jbd2", "mbcache", "ext4"]);
    const ext4 = sel.modules.find((m) => m.name === "ext4")!;
    assert.deepEqual(ext4.depends, ["crc16", "crc32c_generic", "jbd2", "mbcache"]);
    assert.deepEqual(sel.modules[0]!.aliases, ["crypto-crc32c", "crc32c"]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("a missing dependency names the module that needed it", async () => {
  const root = fakeModuleRoot();
  try {
    await assert.rejects(selectModules(root, ["virtio_net"]), /Cannot find kernel module "net_failover" \(needed by virtio_net\)/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
