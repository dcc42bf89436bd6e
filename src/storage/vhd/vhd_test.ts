import { test } from "node:test";
import assert from "node:assert/strict";
import { open, readFile, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { BlockRequestError } from "../block_backend.js";
import { assertReadsAs, qemuImg, qemuReadsAsRaw, qemuVirtualSize, withTempDir, writePatternRaw } from "../vmdk/test_images.js";
import { openVhd } from "./open_vhd.js";
import { vhdChecksum } from "./structures.js";

// Not a CHS-exact size, so qemu rounds it up and the CHS rule decides the disk size.
const DISK_SIZE = 5 * 1024 * 1024 + 7 * 512;

async function makeVpc(dir: string, subformat: string, extra = ""): Promise<{ image: string; source: Uint8Array }> {
  const source = await writePatternRaw(dir, DISK_SIZE);
  const image = join(dir, "disk.vhd");
  qemuImg("convert", "-f", "raw", "-O", "vpc", "-o", `subformat=${subformat}${extra}`, source.path, image);
  return { image, source: source.data };
}

for (const [subformat, extra] of [["fixed", ""], ["dynamic", ""], ["fixed", ",force_size=on"], ["dynamic", ",force_size=on"]]) {
  test(`reads a ${subformat}${extra} VHD made by qemu-img byte for byte, with qemu's size`, () =>
    withTempDir(async (dir) => {
      const { image, source } = await makeVpc(dir, subformat, extra);
      const judged = await qemuReadsAsRaw(dir, image, "vpc");
      assert.equal(judged.length, qemuVirtualSize(image, "vpc"));
      assert.ok(Buffer.from(judged.subarray(0, DISK_SIZE)).equals(Buffer.from(source)), "qemu-img reads the source back");
      const disk = await openVhd(image);
      assert.equal(disk.size, judged.length);
      await assertReadsAs(disk, judged);
      await assert.rejects(disk.write(0, new Uint8Array(512)), BlockRequestError);
      await assert.rejects(disk.read(disk.size, new Uint8Array(512)), BlockRequestError);
      await disk.close();
    }));
}

async function patch(path: string, offset: number, bytes: Uint8Array): Promise<void> {
  const fh = await open(path, "r+");
  await fh.write(bytes, 0, bytes.length, offset);
  await fh.close();
}

/** Edits the footer at `footerAt` and stores a correct checksum, as a real (if foreign) writer would. */
async function editFooter(path: string, footerAt: number, edit: (footer: Buffer) => void): Promise<void> {
  const footer = Buffer.from((await readFile(path)).subarray(footerAt, footerAt + 512));
  edit(footer);
  footer.writeUInt32BE(vhdChecksum(footer, 64), 64);
  await patch(path, footerAt, footer);
}

test("a Hyper-V footer (creator \"win \") sizes the disk by current_size, as qemu does", () =>
  withTempDir(async (dir) => {
    const { image, source } = await makeVpc(dir, "fixed");
    const footerAt = (await readFile(image)).length - 512;
    await editFooter(image, footerAt, (f) => {
      f.write("win ", 28, "latin1");
      f.writeBigUInt64BE(BigInt(DISK_SIZE), 48);
    });
    assert.equal(qemuVirtualSize(image, "vpc"), DISK_SIZE);
    const disk = await openVhd(image);
    await assertReadsAs(disk, source);
    await disk.close();
  }));

test("bad cookies, bad checksums and truncation are refused with the file's name", () =>
  withTempDir(async (dir) => {
    const junk = join(dir, "junk.vhd");
    await writeFile(junk, new Uint8Array(8192).fill(0x41));
    await assert.rejects(openVhd(junk), /Cannot open disk ".*junk\.vhd": it is not a VHD image/);
    await writeFile(junk, new Uint8Array(10));
    await assert.rejects(openVhd(junk), /Cannot open disk ".*junk\.vhd": it is too short/);

    const { image } = await makeVpc(dir, "fixed");
    const length = (await readFile(image)).length;
    await patch(image, length - 512 + 100, new Uint8Array([0xee]));
    await assert.rejects(openVhd(image), /Cannot open disk ".*disk\.vhd": the footer checksum is 0x[0-9a-f]{8} but its bytes sum to/);
    await truncate(image, length - 4096);
    await assert.rejects(openVhd(image), /Cannot open disk ".*disk\.vhd": it is not a VHD image/);
  }));

test("a dynamic disk with a damaged end footer opens from the copy at the start", () =>
  withTempDir(async (dir) => {
    const { image } = await makeVpc(dir, "dynamic");
    const judged = await qemuReadsAsRaw(dir, image, "vpc");
    const length = (await readFile(image)).length;
    await patch(image, length - 512 + 100, new Uint8Array([0xee]));
    const disk = await openVhd(image);
    await assertReadsAs(disk, judged);
    await disk.close();
  }));

test("a damaged dynamic header and BAT entries past the end are refused", () =>
  withTempDir(async (dir) => {
    const { image } = await makeVpc(dir, "dynamic");
    const bytes = await readFile(image);
    const headerAt = Number(bytes.readBigUInt64BE(16));
    const batAt = Number(bytes.readBigUInt64BE(headerAt + 16));
    const original = bytes.subarray(headerAt, headerAt + 1024);

    await patch(image, headerAt + 300, new Uint8Array([0x99]));
    await assert.rejects(openVhd(image), /Cannot open disk ".*disk\.vhd": the dynamic disk header checksum is/);
    await patch(image, headerAt, original);
    await patch(image, headerAt, new TextEncoder().encode("cxsparsX"));
    await assert.rejects(openVhd(image), /"cxsparse" cookie/);
    await patch(image, headerAt, original);

    await patch(image, batAt + 4, new Uint8Array([0x7f, 0xff, 0xff, 0x00]));
    await assert.rejects(openVhd(image), /Cannot open disk ".*disk\.vhd": block allocation table entry 1 points past the end of the file/);
  }));

test("a truncated dynamic disk is refused, not read out of bounds", () =>
  withTempDir(async (dir) => {
    const { image } = await makeVpc(dir, "dynamic");
    const length = (await readFile(image)).length;
    await truncate(image, Math.floor(length / 2));
    await assert.rejects(openVhd(image), /Cannot open disk ".*disk\.vhd": block allocation table entry \d+ points past the end of the file/);
  }));

test("differencing disks and impossible sizes are refused with a reason", () =>
  withTempDir(async (dir) => {
    const { image } = await makeVpc(dir, "fixed");
    const footerAt = (await readFile(image)).length - 512;
    await editFooter(image, footerAt, (f) => f.writeUInt32BE(4, 60));
    await assert.rejects(openVhd(image), /it is a differencing VHD/);
    await editFooter(image, footerAt, (f) => {
      f.writeUInt32BE(2, 60);
      f.write("win ", 28, "latin1");
      f.writeBigUInt64BE(1n << 40n, 48);
    });
    await assert.rejects(openVhd(image), /describes a 1099511627776-byte disk but the file holds only/);
  }));

test("sectors whose bitmap bit is clear read as zeroes", () =>
  withTempDir(async (dir) => {
    const { image } = await makeVpc(dir, "dynamic");
    const judged = await qemuReadsAsRaw(dir, image, "vpc");
    const bytes = await readFile(image);
    const headerAt = Number(bytes.readBigUInt64BE(16));
    const batAt = Number(bytes.readBigUInt64BE(headerAt + 16));
    const block0 = bytes.readUInt32BE(batAt) * 512;
    // Clear the bits of sectors 1..7 of block 0 (the first bitmap byte's low seven bits).
    await patch(image, block0, new Uint8Array([0x80]));
    const disk = await openVhd(image);
    const buf = new Uint8Array(8 * 512);
    await disk.read(0, buf);
    assert.deepEqual(buf.subarray(0, 512), judged.subarray(0, 512));
    assert.deepEqual(buf.subarray(512), new Uint8Array(7 * 512));
    assert.ok(judged.subarray(512, 4096).some((b) => b !== 0), "the test needs data there to hide");
    await disk.close();
  }));
