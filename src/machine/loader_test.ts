import { test } from "node:test";
import assert from "node:assert/strict";
import { GuestRam } from "../seams/guest_ram.js";
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadKernel, loadFirmware, BootImageError, bytesSource, fileSource, prefault } from "./loader.js";
import { payloadRanges } from "./boot.js";

function fakeImage(size: number, imageSize: number): Uint8Array {
  const img = new Uint8Array(size);
  const dv = new DataView(img.buffer);
  dv.setBigUint64(8, 0x200000n, true);
  dv.setBigUint64(16, BigInt(imageSize), true);
  img.set([0x52, 0x49, 0x53, 0x43, 0x56, 0, 0, 0], 0x30);
  img.set([0x52, 0x53, 0x43, 0x05], 0x38);
  img[64] = 0xaa;
  return img;
}

function fakeElf(paddr: number, payload: number[], memsz: number): Uint8Array {
  const elf = new Uint8Array(0x100 + payload.length);
  const dv = new DataView(elf.buffer);
  elf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  dv.setUint16(18, 243, true);
  dv.setBigUint64(24, BigInt(paddr), true);
  dv.setBigUint64(32, 64n, true);
  dv.setUint16(54, 56, true);
  dv.setUint16(56, 1, true);
  dv.setUint32(64, 1, true);
  dv.setBigUint64(64 + 8, 0x100n, true);
  dv.setBigUint64(64 + 24, BigInt(paddr), true);
  dv.setBigUint64(64 + 32, BigInt(payload.length), true);
  dv.setBigUint64(64 + 40, BigInt(memsz), true);
  elf.set(payload, 0x100);
  return elf;
}

test("an Image loads 2 MiB into RAM and reserves its BSS", () => {
  const ram = new GuestRam(0x8000_0000, 8 << 20);
  const p = loadKernel(ram, bytesSource(fakeImage(4096, 1 << 20), "k"));
  assert.equal(p.entry, 0x8020_0000);
  assert.equal(p.end, 0x8020_0000 + (1 << 20));
  assert.equal(ram.u8[0x200000 + 64], 0xaa);
});

test("an Image larger than RAM is refused with advice", () => {
  const ram = new GuestRam(0x8000_0000, 4 << 20);
  assert.throws(() => loadKernel(ram, bytesSource(fakeImage(4096, 8 << 20), "big")), /needs 10 MiB of RAM.*--memory/);
});

test("a file that is neither Image nor ELF is refused", () => {
  const ram = new GuestRam(0x8000_0000, 4 << 20);
  assert.throws(() => loadKernel(ram, bytesSource(new Uint8Array(4096), "junk")), BootImageError);
});

test("an ELF loads its segments at their physical addresses and zeroes BSS", () => {
  const ram = new GuestRam(0x8000_0000, 4 << 20);
  ram.u8[0x1000 + 5] = 0x77;
  const p = loadFirmware(ram, bytesSource(fakeElf(0x8000_1000, [1, 2, 3, 4], 16), "fw.elf"));
  assert.equal(p.entry, 0x8000_1000);
  assert.deepEqual([...ram.read(0x8000_1000, 6)], [1, 2, 3, 4, 0, 0]);
});

test("an ELF segment outside RAM is refused", () => {
  const ram = new GuestRam(0x8000_0000, 4 << 20);
  assert.throws(() => loadFirmware(ram, bytesSource(fakeElf(0x1000, [1], 4), "low.elf")), /does not fit in guest RAM/);
});

test("a raw firmware binary loads at the start of RAM", () => {
  const ram = new GuestRam(0x8000_0000, 4 << 20);
  const p = loadFirmware(ram, bytesSource(Uint8Array.of(0x13, 0, 0, 0), "fw.bin"));
  assert.equal(p.entry, 0x8000_0000);
  assert.equal(ram.u8[0], 0x13);
});

test("boot files are read from disk straight into RAM, and one that shrinks while loading is refused with its size", () => {
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-loader-"));
  try {
    const path = join(dir, "fw.elf");
    writeFileSync(path, fakeElf(0x8000_2000, [9, 8, 7], 8));
    const ram = new GuestRam(0x8000_0000, 4 << 20);
    const file = fileSource(path);
    const p = loadFirmware(ram, file);
    assert.equal(p.entry, 0x8000_2000);
    assert.deepEqual([...ram.read(0x8000_2000, 4)], [9, 8, 7, 0]);
    truncateSync(path, 0x80); // the program headers survive, the segment's bytes do not
    assert.throws(() => loadFirmware(ram, file), (e: Error) => e instanceof BootImageError && /fw\.elf" has no byte 256 to load: it was 259 bytes when opened and has shrunk/.test(e.message));
    file.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a boot's payload pages are touched ahead where the loader puts them, and read as zeros", async () => {
  const ram = new GuestRam(0x8000_0000, 8 << 20);
  const image = fakeImage(4096, 1 << 20);
  const ranges = payloadRanges(ram.base, ram.end, image.length, 300_000);
  assert.equal(ranges.length, 2);
  assert.equal(ranges[0]!.gpa, loadKernel(new GuestRam(0x8000_0000, 8 << 20), bytesSource(image, "k")).entry, "the kernel's range starts where an Image loads");
  assert.equal(ranges[0]!.length, image.length);
  const initrd = ranges[1]!;
  assert.equal(initrd.gpa % 4096, 0);
  assert.ok(initrd.gpa + initrd.length <= ram.end - 64 * 1024 && initrd.gpa + initrd.length > ram.end - 64 * 1024 - 4096, "the initrd sits just below the device tree's area");
  ram.u8[ram.size - 1] = 7; // outside both ranges: kept
  await prefault(ram, ranges);
  for (const r of ranges) assert.ok(ram.read(r.gpa, r.length).every((b) => b === 0));
  assert.equal(ram.u8[ram.size - 1], 7);
  assert.deepEqual(payloadRanges(ram.base, ram.end, 0, 0), [], "nothing to load, nothing touched");
});
