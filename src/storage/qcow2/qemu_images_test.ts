// Images qemu-img creates (compressed clusters, snapshots, backing chains, other cluster sizes,
// version 2, odd refcount widths) read back exactly, and stay clean after we write to them.

import assert from "node:assert/strict";
import { copyFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { openDisk } from "../open.js";
import { Qcow2Image } from "./image.js";
import { applySnapshot, listSnapshots } from "./snapshots.js";
import { pattern, qemuCheck, qemuCompare, qemuImg, withTmp } from "./test_util.js";

const MiB = 1 << 20;

/** Compressible content: text-like runs, random runs and zero runs. */
function mixedContent(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  const text = Buffer.from(`nodevisor qcow2 block ${seed} `.repeat(200));
  for (let off = 0, i = 0; off < size; off += 64 * 1024, i++) {
    const kind = (i + seed) % 4;
    const len = Math.min(64 * 1024, size - off);
    if (kind === 0 || kind === 3) for (let j = 0; j < len; j += text.length) out.set(text.subarray(0, Math.min(text.length, len - j)), off + j);
    else if (kind === 1) out.set(pattern(len, seed + i), off);
  }
  return out;
}

async function readAll(disk: { size: number; read(o: number, b: Uint8Array): Promise<void> }): Promise<Uint8Array> {
  const buf = new Uint8Array(disk.size);
  for (let off = 0; off < disk.size; off += MiB) await disk.read(off, buf.subarray(off, Math.min(disk.size, off + MiB)));
  return buf;
}

function same(a: Uint8Array, b: Uint8Array, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  assert.ok(Buffer.from(a).equals(Buffer.from(b)), `${what}: content differs`);
}

const variants: Array<[string, string[]]> = [
  ["compressed 64K", ["-c"]],
  ["compressed 4K", ["-c", "-o", "cluster_size=4096"]],
  ["4K clusters", ["-o", "cluster_size=4096"]],
  ["2M clusters", ["-o", "cluster_size=2M"]],
  ["version 2", ["-o", "compat=0.10"]],
  ["refcount_bits=1", ["-o", "refcount_bits=1"]],
  ["refcount_bits=64", ["-o", "refcount_bits=64"]],
];

for (const [name, args] of variants) {
  test(`qemu-img convert ${name}: reads back exactly, then takes writes cleanly`, async () => {
    await withTmp(async (dir) => {
      const size = 5 * MiB + 512 * 7;
      const content = mixedContent(size, 3);
      const raw = join(dir, "src.raw");
      await writeFile(raw, content);
      const img = join(dir, "img.qcow2");
      qemuImg("convert", "-f", "raw", "-O", "qcow2", ...args, raw, img);
      const disk = await Qcow2Image.open(img);
      same(await readAll(disk), content, name);
      // Partial writes over compressed / allocated / zero clusters.
      for (const off of [0, 70 * 1024, 2 * MiB + 512, size - 1024]) {
        const d = pattern(1024, off);
        await disk.write(off, d);
        content.set(d, off);
      }
      await disk.writeZeroes(3 * MiB, MiB, true);
      content.fill(0, 3 * MiB, 4 * MiB);
      same(await readAll(disk), content, `${name} after writes`);
      await disk.close();
      const c = qemuCheck(img);
      assert.equal(c.status, 0, c.text);
      await writeFile(raw, content);
      assert.ok(qemuCompare(img, raw, "qcow2", "raw").same);
    });
  });
}

test("qemu-img internal snapshots and backing chains read back; snapshots apply", async () => {
  await withTmp(async (dir) => {
    const size = 4 * MiB;
    const v0 = mixedContent(size, 1);
    await writeFile(join(dir, "v0.raw"), v0);
    const img = join(dir, "snap.qcow2");
    qemuImg("convert", "-f", "raw", "-O", "qcow2", join(dir, "v0.raw"), img);
    qemuImg("snapshot", "-c", "first", img);
    const v1 = Uint8Array.from(v0);
    // qemu-io writes after the snapshot, so clusters become unshared.
    const { execFileSync } = await import("node:child_process");
    execFileSync("qemu-io", ["-f", "qcow2", "-c", "write -P 0x5a 65536 131072", "-c", "write -P 0x33 1000448 4096", img]);
    v1.fill(0x5a, 65536, 65536 + 131072);
    v1.fill(0x33, 1000448, 1000448 + 4096);
    const disk = await Qcow2Image.open(img);
    assert.deepEqual(listSnapshots(disk).map((s) => s.name), ["first"]);
    same(await readAll(disk), v1, "active");
    await applySnapshot(disk, "first");
    same(await readAll(disk), v0, "after revert");
    await disk.close();
    assert.equal(qemuCheck(img).status, 0, qemuCheck(img).text);

    // A chain made by qemu-img: base (qcow2) <- overlay, with overlay writes by qemu-io.
    const base = join(dir, "base.qcow2");
    await copyFile(img, base);
    const top = join(dir, "top.qcow2");
    qemuImg("create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", top);
    execFileSync("qemu-io", ["-f", "qcow2", "-c", "write -P 0x77 4096 8192", top]);
    const expect = Uint8Array.from(v0);
    expect.fill(0x77, 4096, 4096 + 8192);
    const chained = await openDisk(top, { readOnly: true });
    same(await readAll(chained), expect, "chain");
    await chained.close();
  });
});
