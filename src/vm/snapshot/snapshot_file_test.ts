import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GuestRam } from "../../seams/guest_ram.js";
import { loadSnapshotPages, nonZeroPages, RAM_AT, readSnapshotInfo, SnapshotError, SnapshotWriter, writeSnapshotFile } from "./snapshot_file.js";

const BASE = 0x8000_0000;

function ramWithData(): GuestRam {
  const ram = new GuestRam(BASE, 1 << 20);
  ram.u8[0] = 1; // page 0
  ram.u8[5 * 4096 + 4095] = 0xaa; // page 5, last byte
  ram.u8.fill(0x5c, 200 * 4096, 201 * 4096); // page 200
  return ram;
}

test("only non-zero pages are stored, and they come back where they were", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nv-snapfile-"));
  try {
    const ram = ramWithData();
    assert.deepEqual([...nonZeroPages(ram)], [0, 5, 200]);
    const path = join(dir, "s.snap");
    const w = await writeSnapshotFile(path, { hello: "vm" }, ram);
    assert.equal(w.pages, 3);
    const { blocks } = await import("node:fs").then((fs) => fs.statSync(path));
    assert.ok(blocks * 512 < 8 * 4096, `a 1 MiB RAM with 3 pages in use took ${blocks * 512} bytes on disk`);
    assert.deepEqual(readdirSync(dir), ["s.snap"], "no temporary file is left");
    const info = await readSnapshotInfo<{ hello: string }>(path);
    assert.deepEqual(info.header, { hello: "vm" });
    const back = new GuestRam(BASE, 1 << 20);
    await loadSnapshotPages(path, info, back);
    assert.deepEqual(back.u8, ram.u8);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a truncated, damaged, foreign or other-version file is refused with a sentence", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nv-snapfile-"));
  try {
    const path = join(dir, "s.snap");
    await writeSnapshotFile(path, { hello: "vm" }, ramWithData());
    const good = readFileSync(path);
    const cases: Array<[string, Buffer, RegExp]> = [
      ["truncated", good.subarray(0, good.length - 5000), /checksum|ends early/],
      ["one flipped byte in the trailer", Buffer.from(good).fill(0x77, good.length - 40, good.length - 39), /checksum/],
      ["cut inside the RAM image", good.subarray(0, RAM_AT + 100 * 4096), /ends early/],
      ["another format", Buffer.concat([Buffer.from("NOTASNAP"), good.subarray(8)]), /magic/],
      ["another version", (() => { const b = Buffer.from(good); b.writeUInt32LE(99, 8); return b; })(), /version 99/],
      ["version 1", (() => { const b = Buffer.from(good); b.writeUInt32LE(1, 8); return b; })(), /version 1, and this nodevisor reads version 2/],
      ["an impossible prologue", (() => { const b = Buffer.from(good); b.writeBigUInt64LE(1n << 60n, 24); return b; })(), /prologue/],
      ["empty", Buffer.alloc(0), /only 0 bytes/],
    ];
    for (const [what, bytes, why] of cases) {
      const bad = join(dir, "bad.snap");
      writeFileSync(bad, bytes);
      await assert.rejects(readSnapshotInfo(bad), (e: Error) => e instanceof SnapshotError && why.test(e.message) && e.message.includes(bad), what);
    }
    await assert.rejects(readSnapshotInfo(join(dir, "missing.snap")), /no such file/);
    assert.ok(existsSync(path));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a damaged RAM page or another RAM size is refused when the pages load", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nv-snapfile-"));
  try {
    const path = join(dir, "s.snap");
    await writeSnapshotFile(path, {}, ramWithData());
    const info = await readSnapshotInfo(path);
    const small = new GuestRam(BASE, 64 * 4096);
    await assert.rejects(loadSnapshotPages(path, info, small), /holds 1 MiB of RAM for a VM of 0 MiB/);
    const b = readFileSync(path);
    b[RAM_AT + 5 * 4096 + 7] ^= 1;
    writeFileSync(path, b);
    await assert.rejects(loadSnapshotPages(path, await readSnapshotInfo(path), new GuestRam(BASE, 1 << 20)), /RAM page 5 is damaged/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a page rewritten in a later round is stored once, as last written", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nv-snapfile-"));
  try {
    const path = join(dir, "s.snap");
    const ram = ramWithData();
    const w = await SnapshotWriter.create(path, ram);
    await w.writePages(nonZeroPages(ram));
    ram.u8[5 * 4096] = 9; // the guest wrote page 5 and page 7 meanwhile
    ram.u8[7 * 4096] = 3;
    await w.writePages(Uint32Array.of(5, 7));
    const done = await w.finish({ round: 2 });
    assert.equal(done.pages, 4);
    const back = new GuestRam(BASE, 1 << 20);
    await loadSnapshotPages(path, await readSnapshotInfo(path), back);
    assert.deepEqual(back.u8, ram.u8);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
