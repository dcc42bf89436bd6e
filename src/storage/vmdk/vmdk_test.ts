import { test } from "node:test";
import assert from "node:assert/strict";
import { open, readFile, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { BlockRequestError } from "../block_backend.js";
import { openVmdk } from "./open_vmdk.js";
import { assertReadsAs, qemuImg, qemuReadsAsRaw, withTempDir, writePatternRaw } from "./test_images.js";

// Not a multiple of the 64 KiB grain nor of a grain table's 32 MiB, to exercise partial grains.
const DISK_SIZE = 5 * 1024 * 1024 + 7 * 512;

for (const subformat of ["monolithicSparse", "streamOptimized", "monolithicFlat", "twoGbMaxExtentSparse", "twoGbMaxExtentFlat"]) {
  test(`reads a ${subformat} VMDK made by qemu-img byte for byte`, () =>
    withTempDir(async (dir) => {
      const source = await writePatternRaw(dir, DISK_SIZE);
      const image = join(dir, "disk.vmdk");
      qemuImg("convert", "-f", "raw", "-O", "vmdk", "-o", `subformat=${subformat}`, source.path, image);
      const judged = await qemuReadsAsRaw(dir, image, "vmdk");
      assert.ok(Buffer.from(judged).equals(Buffer.from(source.data)), "qemu-img itself reads the source back");
      const disk = await openVmdk(image);
      assert.equal(disk.readOnly, true);
      await assertReadsAs(disk, source.data);
      await assert.rejects(disk.write(0, new Uint8Array(512)), BlockRequestError);
      await assert.rejects(disk.read(DISK_SIZE, new Uint8Array(512)), BlockRequestError);
      assert.ok(disk.stats().readRequests > 0);
      await disk.close();
    }));
}

async function sparseImage(dir: string, subformat = "monolithicSparse"): Promise<string> {
  const source = await writePatternRaw(dir, DISK_SIZE);
  const image = join(dir, "disk.vmdk");
  qemuImg("convert", "-f", "raw", "-O", "vmdk", "-o", `subformat=${subformat}`, source.path, image);
  return image;
}

async function patch(path: string, offset: number, bytes: Uint8Array): Promise<void> {
  const fh = await open(path, "r+");
  await fh.write(bytes, 0, bytes.length, offset);
  await fh.close();
}

function u32le(value: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, value, true);
  return b;
}

async function headerField(path: string, offset: number): Promise<number> {
  const head = await readFile(path);
  return Number(head.readBigUInt64LE(offset));
}

/** Reads the whole disk, so corruption anywhere surfaces. */
async function readAll(path: string): Promise<void> {
  const disk = await openVmdk(path);
  try {
    await disk.read(0, new Uint8Array(disk.size));
  } finally {
    await disk.close();
  }
}

test("bad magic and a foreign file are refused with the file's name", () =>
  withTempDir(async (dir) => {
    const junk = join(dir, "junk.vmdk");
    await writeFile(junk, new Uint8Array(4096).fill(0x41));
    await assert.rejects(openVmdk(junk), /Cannot open disk ".*junk\.vmdk": it is not a VMDK image/);
    const image = await sparseImage(dir);
    await patch(image, 0, new TextEncoder().encode("KDMX"));
    await assert.rejects(openVmdk(image), /Cannot open disk ".*disk\.vmdk": it is not a VMDK image/);
  }));

test("a grain directory entry past the end of the file is refused at open", () =>
  withTempDir(async (dir) => {
    const image = await sparseImage(dir);
    const gdOffset = (await headerField(image, 56)) * 512;
    await patch(image, gdOffset, u32le(0x7fffffff));
    await assert.rejects(openVmdk(image), /Cannot open disk ".*disk\.vmdk": grain directory entry 0 points past the end of the file/);
  }));

test("a grain table entry past the end of the file fails the read, not the process", () =>
  withTempDir(async (dir) => {
    const image = await sparseImage(dir);
    const gdOffset = (await headerField(image, 56)) * 512;
    const gtSector = (await readFile(image)).readUInt32LE(gdOffset);
    await patch(image, gtSector * 512 + 4 * 3, u32le(0x7fffffff));
    const disk = await openVmdk(image);
    await assert.rejects(disk.read(0, new Uint8Array(4096)), /Cannot read disk ".*disk\.vmdk": grain table 0 entry 3 points past the end of the file/);
    await disk.close();
  }));

test("a truncated sparse file is refused or fails reads with a clear error", () =>
  withTempDir(async (dir) => {
    const image = await sparseImage(dir);
    const full = (await readFile(image)).length;
    await truncate(image, full - 64 * 1024);
    await assert.rejects(readAll(image), /disk ".*disk\.vmdk": .*points past the end of the file/);
    await truncate(image, 300);
    await assert.rejects(openVmdk(image), /Cannot open disk ".*disk\.vmdk"/);
  }));

/** Rewrites a qemu streamOptimized image the way VMware streams it: header says GD_AT_END, real header in a footer. */
async function moveHeaderToFooter(image: string): Promise<void> {
  const bytes = await readFile(image);
  const header = Buffer.from(bytes.subarray(0, 512));
  const tail = Buffer.alloc(3 * 512);
  tail.writeBigUInt64LE(1n, 0);
  tail.writeUInt32LE(3, 12); // footer marker
  header.copy(tail, 512);
  await writeFile(image, Buffer.concat([bytes, tail]));
  const atEnd = new Uint8Array(8).fill(0xff);
  await patch(image, 56, atEnd);
}

test("a streamOptimized VMDK whose header lives in the footer reads back", () =>
  withTempDir(async (dir) => {
    const source = await writePatternRaw(dir, DISK_SIZE);
    const image = join(dir, "disk.vmdk");
    qemuImg("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", source.path, image);
    await moveHeaderToFooter(image);
    assert.ok(Buffer.from(await qemuReadsAsRaw(dir, image, "vmdk")).equals(Buffer.from(source.data)), "qemu-img agrees");
    const disk = await openVmdk(image);
    await assertReadsAs(disk, source.data);
    await disk.close();
  }));

test("a truncated streamOptimized file is refused or fails reads with a clear error", () =>
  withTempDir(async (dir) => {
    const image = await sparseImage(dir, "streamOptimized");
    const full = (await readFile(image)).length;
    await truncate(image, full - 64 * 1024);
    await assert.rejects(readAll(image), /disk ".*disk\.vmdk": .*points past the end of the file/);
    await truncate(image, 2048);
    await assert.rejects(readAll(image), /Cannot open disk ".*disk\.vmdk": .*points past the end of the file/);
  }));

test("a footer-style streamOptimized file cut short has no footer and is refused", () =>
  withTempDir(async (dir) => {
    const image = await sparseImage(dir, "streamOptimized");
    await moveHeaderToFooter(image);
    const full = (await readFile(image)).length;
    await truncate(image, full - 512);
    await assert.rejects(openVmdk(image), /Cannot open disk ".*disk\.vmdk": .*does not end with a footer/);
  }));

test("a corrupt compressed grain fails the read with a clear error", () =>
  withTempDir(async (dir) => {
    const image = await sparseImage(dir, "streamOptimized");
    const bytes = await readFile(image);
    const gdOffset = Number(bytes.readBigUInt64LE(56)) * 512;
    const gtSector = bytes.readUInt32LE(gdOffset);
    const grainSector = bytes.readUInt32LE(gtSector * 512);
    await patch(image, grainSector * 512 + 12, new Uint8Array(64).fill(0x55));
    const disk = await openVmdk(image);
    await assert.rejects(disk.read(0, new Uint8Array(512)), /Cannot read disk ".*disk\.vmdk": the compressed grain of grain table 0 entry 0 is corrupt/);
    // A marker claiming a huge compressed size is refused before anything is allocated.
    await patch(image, grainSector * 512 + 8, u32le(0xffffffff));
    const again = await openVmdk(image);
    await assert.rejects(again.read(0, new Uint8Array(512)), /invalid compressed size/);
    await disk.close();
    await again.close();
  }));

test("a huge capacity in a small file is refused, not allocated", () =>
  withTempDir(async (dir) => {
    const image = await sparseImage(dir);
    const big = new Uint8Array(8);
    new DataView(big.buffer).setBigUint64(0, 1n << 44n, true);
    await patch(image, 12, big);
    await assert.rejects(openVmdk(image), /Cannot open disk ".*disk\.vmdk": .*(grain directory|too large)/);
  }));

test("descriptors may not reach outside their directory, and delta disks are refused", () =>
  withTempDir(async (dir) => {
    const escape = join(dir, "escape.vmdk");
    await writeFile(escape, '# Disk DescriptorFile\nversion=1\nparentCID=ffffffff\ncreateType="monolithicFlat"\nRW 8 FLAT "../../etc/passwd" 0\n');
    await assert.rejects(openVmdk(escape), /same directory as the descriptor/);
    const delta = join(dir, "delta.vmdk");
    await writeFile(delta, '# Disk DescriptorFile\nversion=1\nparentCID=12345678\nparentFileNameHint="base.vmdk"\ncreateType="monolithicSparse"\nRW 8 SPARSE "x.vmdk"\n');
    await assert.rejects(openVmdk(delta), /delta disk whose parent is "base\.vmdk"/);
  }));
