import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { assertRiscvImage, ensureDefaultImage, findKernel } from "./build_default_image.js";
import { withBuildLock } from "./build_lock.js";
import { readNewcArchive } from "./cpio_read.js";
import { readManifest } from "./guest_image.js";

function riscvImageHeader(): Buffer {
  const h = Buffer.alloc(0x40);
  h.write("RISCV\0\0\0", 0x30, "latin1");
  h.write("RSC\x05", 0x38, "latin1");
  return h;
}

test("a RISC-V Image is recognised by its magic at 0x38, anything else is refused", () => {
  assertRiscvImage(riscvImageHeader(), "vmlinux");
  const elf = Buffer.alloc(0x40);
  elf.write("\x7fELF", 0, "latin1");
  assert.throws(() => assertRiscvImage(elf, "vmlinux-x"), /Cannot use vmlinux-x as the guest kernel: it has no RISC-V Image magic/);
});

test("findKernel takes the one /boot/vmlinux-* and its version", () => {
  const root = mkdtempSync(join(tmpdir(), "nodevisor-kern-"));
  try {
    assert.throws(() => findKernel(root), /found none/);
    mkdirSync(join(root, "boot"));
    writeFileSync(join(root, "boot", "vmlinux-6.12.9+deb13-riscv64"), riscvImageHeader());
    writeFileSync(join(root, "boot", "config-6.12.9+deb13-riscv64"), "");
    assert.deepEqual(findKernel(root), { path: join(root, "boot", "vmlinux-6.12.9+deb13-riscv64"), version: "6.12.9+deb13-riscv64" });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("the build lock is exclusive, and a dead builder's lock is taken over", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-lock-"));
  const lock = join(dir, ".default.lock");
  try {
    const order: string[] = [];
    let release!: () => void;
    const first = withBuildLock(lock, undefined, async (waited) => {
      order.push(`first start waited=${waited}`);
      await new Promise<void>((r) => (release = r));
      order.push("first end");
    });
    await new Promise((r) => setTimeout(r, 20));
    const logs: string[] = [];
    const second = withBuildLock(lock, (l) => logs.push(l), async (waited) => {
      order.push(`second start waited=${waited}`);
    });
    await new Promise((r) => setTimeout(r, 100));
    release();
    await Promise.all([first, second]);
    assert.deepEqual(order, ["first start waited=false", "first end", "second start waited=true"]);
    assert.match(logs[0]!, /another nodevisor process \(pid \d+\) is building this image/);

    writeFileSync(lock, "999999999\n"); // no such process
    let ran = false;
    await withBuildLock(lock, undefined, async (waited) => {
      ran = !waited;
    });
    assert.ok(ran, "a stale lock does not make the build wait");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a real build from the Debian mirror (NODEVISOR_NET_TESTS=1)", { timeout: 600_000 }, async (t) => {
  if (process.env.NODEVISOR_NET_TESTS !== "1") {
    t.skip("set NODEVISOR_NET_TESTS=1 to download ~110 MB from the Debian mirror");
    return;
  }
  const cacheDir = mkdtempSync(join(tmpdir(), "nodevisor-build-"));
  try {
    const phases = new Set<string>();
    const image = await ensureDefaultImage({ cacheDir, onProgress: (p) => phases.add(p.phase) });
    assert.deepEqual([...phases], ["download", "unpack", "modules", "initramfs"]);
    assertRiscvImage(readFileSync(image.kernel).subarray(0, 0x40), image.kernel);
    assert.match(image.kernelVersion, /^6\.\d+\.\d+.*-riscv64$/);
    assert.ok(image.firmware !== null && statSync(image.firmware).size > 100_000);
    const manifest = readManifest(image.dir);
    for (const m of ["virtio_mmio", "virtio_blk", "virtio_rng", "virtio_net", "net_failover", "failover", "virtio_balloon", "ext4", "jbd2", "vsock", "vmw_vsock_virtio_transport"]) {
      assert.ok(manifest.modules.includes(m), `${m} is loaded`);
    }
    const paths = new Set(readNewcArchive(readFileSync(image.initrd)).map((e) => e.path));
    assert.ok(paths.has("init") && paths.has("bin/busybox") && paths.has("bin/sh") && paths.has("bin/base64"));

    const logs: string[] = [];
    const again = await ensureDefaultImage({ cacheDir, log: (l) => logs.push(l) });
    assert.deepEqual(again, image);
    assert.deepEqual(logs, [], "a complete image is reused without building");
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }
});
