import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GuestRam } from "../../seams/guest_ram.js";
import { loadSnapshotPages, nonZeroPages, readSnapshotInfo, SnapshotError, writeSnapshotFile } from "./snapshot_file.js";

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
    assert.ok(w.bytes < 4 * 4096, `a 1 MiB RAM with 3 pages in use took ${w.bytes} bytes`);
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
      ["truncated", good.subarray(0, good.length - 5000), /checksum|ended early/],
      ["one flipped byte", Buffer.from(good).fill(0x77, 9000, 9001), /checksum/],
      ["another format", Buffer.concat([Buffer.from("NOTASNAP"), good.subarray(8)]), /magic/],
      ["another version", (() => { const b = Buffer.from(good); b.writeUInt32LE(99, 8); return b; })(), /version 99/],
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

test("pages beyond the VM's RAM are refused before any is loaded", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nv-snapfile-"));
  try {
    const path = join(dir, "s.snap");
    await writeSnapshotFile(path, {}, ramWithData());
    const info = await readSnapshotInfo(path);
    const small = new GuestRam(BASE, 64 * 4096); // page 200 does not fit
    await assert.rejects(loadSnapshotPages(path, info, small), /outside the VM's/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
