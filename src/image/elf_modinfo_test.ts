import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { findSection, parseModinfo, readModinfo } from "./elf_modinfo.js";
import { readNewcArchive } from "./cpio_read.js";
import { defaultCacheDir } from "./guest_image.js";
import { makeElf } from "./testing_elf.js";

const modinfoText =
  "license=GPL\0description=demo\0\0\0alias=virtio:d00000002v*\0depends=virtio_ring,mbcache,\0" +
  "softdep=pre: crc32c post: zz\0name=demo_mod\0vermagic=6.12 SMP mod_unload riscv\0";

test("reads depends, softdep and name from a constructed little-endian ELF", () => {
  const elf = makeElf([
    { name: ".text", data: new Uint8Array(12) },
    { name: ".modinfo", data: Buffer.from(modinfoText, "latin1") },
  ]);
  const info = readModinfo(elf, "demo.ko");
  assert.equal(info.name, "demo_mod");
  assert.deepEqual(info.depends, ["virtio_ring", "mbcache"]);
  assert.deepEqual(info.softdepPre, ["crc32c"]);
  assert.deepEqual(info.softdepPost, ["zz"]);
  assert.deepEqual(info.entries[2], ["alias", "virtio:d00000002v*"]);
});

test("reads a big-endian ELF too, and an empty depends= gives no dependencies", () => {
  const elf = makeElf([{ name: ".modinfo", data: Buffer.from("depends=\0name=solo\0", "latin1") }], false);
  const info = readModinfo(elf);
  assert.equal(info.name, "solo");
  assert.deepEqual(info.depends, []);
});

test("a section of type NOBITS is never returned as data", () => {
  const elf = makeElf([{ name: ".modinfo", data: new Uint8Array(0), type: 8 }]);
  assert.equal(findSection(elf, ".modinfo"), null);
  assert.throws(() => readModinfo(elf, "x.ko"), /Cannot read module info from x\.ko: it has no \.modinfo section/);
});

test("malformed and hostile files fail with a sentence, not a crash", () => {
  assert.throws(() => readModinfo(new Uint8Array(10), "a.ko"), /shorter than an ELF64 header/);
  assert.throws(() => readModinfo(new Uint8Array(64), "a.ko"), /no ELF magic/);
  const elf = makeElf([{ name: ".modinfo", data: Buffer.from("name=x\0") }]);
  const bad = elf.slice();
  new DataView(bad.buffer).setBigUint64(0x28, 1n << 40n, true);
  assert.throws(() => readModinfo(bad, "a.ko"), /points past its end/);
  const truncated = elf.subarray(0, elf.length - 10);
  assert.throws(() => readModinfo(truncated, "a.ko"), /section header table runs past its end/);
});

test("parseModinfo ignores padding and items without '='", () => {
  const info = parseModinfo(Buffer.from("\0\0junk\0name=a\0depends=b, c\0", "latin1"));
  assert.deepEqual(info.entries, [["name", "a"], ["depends", "b, c"]]);
  assert.deepEqual(info.depends, ["b", "c"]);
});

test("reads ext4's real .modinfo from the built default image, when this machine has one", (t) => {
  const image = join(process.env.NODEVISOR_CACHE_DIR ?? defaultCacheDir(), "images", "default");
  if (!existsSync(join(image, "manifest.json"))) {
    t.skip("no default image has been built on this machine (nodevisor image build)");
    return;
  }
  const entries = readNewcArchive(readFileSync(join(image, "initrd.cpio")));
  const ext4 = entries.find((e) => /(^|\/)ext4\.ko$/.test(e.path));
  assert.ok(ext4, "the initramfs carries ext4.ko");
  const info = readModinfo(ext4.data, ext4.path);
  assert.equal(info.name, "ext4");
  for (const dep of ["jbd2", "mbcache", "crc16"]) assert.ok(info.depends.includes(dep), `ext4 depends on ${dep}`);
});
