// Images we create and write must pass qemu-img check and compare equal to what we wrote.

import assert from "node:assert/strict";
import { stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { openDisk } from "../open.js";
import { createQcow2 } from "./create.js";
import { checkImage } from "./check.js";
import { Qcow2Image } from "./image.js";
import { applySnapshot, createSnapshot, deleteSnapshot } from "./snapshots.js";
import { pattern, qemuCheck, qemuCompare, qemuImg, rng, withTmp } from "./test_util.js";

const MiB = 1 << 20;

/** Random writes (batches of non-overlapping requests in flight at once), mirrored into `expect`. */
async function randomWrites(disk: Qcow2Image, expect: Uint8Array, count: number, seed: number, maxLen = 192 * 1024): Promise<void> {
  const r = rng(seed);
  for (let done = 0; done < count; ) {
    const batch: Array<[number, Uint8Array]> = [];
    for (let k = 0; k < 8 && done < count; k++, done++) {
      const len = (1 + Math.floor(r() * (maxLen / 512))) * 512;
      const off = Math.floor(r() * ((disk.size - len) / 512)) * 512;
      if (batch.some(([o, d]) => off < o + d.length && o < off + len)) continue;
      batch.push([off, pattern(len, seed * 1000 + done)]);
    }
    await Promise.all(batch.map(([o, d]) => disk.write(o, d)));
    for (const [o, d] of batch) expect.set(d, o);
  }
}

async function assertReads(disk: Qcow2Image | Awaited<ReturnType<typeof openDisk>>, expect: Uint8Array): Promise<void> {
  const buf = new Uint8Array(expect.length);
  const step = 3 * 64 * 1024 + 512; // unaligned to clusters on purpose
  await Promise.all(
    Array.from({ length: Math.ceil(expect.length / step) }, (_, i) =>
      disk.read(i * step, buf.subarray(i * step, Math.min(expect.length, (i + 1) * step))),
    ),
  );
  assert.ok(Buffer.from(buf).equals(Buffer.from(expect)), "disk content differs from what was written");
}

async function judge(dir: string, image: string, expect: Uint8Array): Promise<void> {
  const c = qemuCheck(image);
  assert.equal(c.corruptions, 0, c.text);
  assert.equal(c.leaks, 0, c.text);
  assert.equal(c.status, 0, c.text);
  const raw = join(dir, "expect.raw");
  await writeFile(raw, expect);
  const cmp = qemuCompare(image, raw, "qcow2", "raw");
  assert.ok(cmp.same, cmp.text);
}

for (const clusterSize of [65536, 4096, 2 * MiB]) {
  test(`random writes with ${clusterSize}-byte clusters pass qemu-img check and compare`, async () => {
    await withTmp(async (dir) => {
      const p = join(dir, "a.qcow2");
      const size = 24 * MiB;
      await createQcow2(p, { size, clusterSize });
      const expect = new Uint8Array(size);
      const disk = await Qcow2Image.open(p);
      await randomWrites(disk, expect, 120, clusterSize);
      await assertReads(disk, expect);
      await disk.flush();
      await disk.close();
      await judge(dir, p, expect);
      const again = await Qcow2Image.open(p, { readOnly: true });
      await assertReads(again, expect);
      await again.close();
    });
  });
}

test("refcount table grows (512-byte clusters) and qemu-img agrees", async () => {
  await withTmp(async (dir) => {
    const p = join(dir, "small.qcow2");
    const size = 12 * MiB;
    await createQcow2(p, { size, clusterSize: 512 });
    const disk = await Qcow2Image.open(p);
    const before = disk.refcounts.tableClusters;
    const expect = pattern(size, 7);
    for (let off = 0; off < size; off += MiB) await disk.write(off, expect.subarray(off, off + MiB));
    assert.ok(disk.refcounts.tableClusters > before, "refcount table should have been reallocated");
    await disk.close();
    await judge(dir, p, expect);
  });
});

test("version 2 images and 8-bit refcounts are written correctly", async () => {
  await withTmp(async (dir) => {
    for (const [name, opts] of [["v2.qcow2", { version: 2 as const }], ["r8.qcow2", { refcountBits: 8 as const }]] as const) {
      const p = join(dir, name);
      await createQcow2(p, { size: 8 * MiB, ...opts });
      const expect = new Uint8Array(8 * MiB);
      const disk = await Qcow2Image.open(p);
      await randomWrites(disk, expect, 30, 3);
      await disk.close();
      await judge(dir, p, expect);
    }
  });
});

test("snapshots: create, write, revert, delete keep refcounts exact", async () => {
  await withTmp(async (dir) => {
    const p = join(dir, "s.qcow2");
    const size = 16 * MiB;
    await createQcow2(p, { size });
    const disk = await Qcow2Image.open(p);
    const v0 = new Uint8Array(size);
    await randomWrites(disk, v0, 40, 11);
    await createSnapshot(disk, "one");
    const v1 = Uint8Array.from(v0);
    await randomWrites(disk, v1, 40, 12);
    await disk.discard(4 * MiB, 2 * MiB);
    v1.fill(0, 4 * MiB, 6 * MiB);
    await createSnapshot(disk, "two");
    const v2 = Uint8Array.from(v1);
    await randomWrites(disk, v2, 40, 13);
    await assertReads(disk, v2);
    assert.deepEqual((await checkImage(disk, { repair: false })).corruptions, 0);
    await disk.close();
    await judge(dir, p, v2);

    // qemu-img sees both snapshots with the content they had.
    assert.match(qemuImg("snapshot", "-l", p), /one[\s\S]*two/);
    for (const [name, content] of [["one", v0], ["two", v1]] as const) {
      const out = join(dir, `${name}.raw`);
      qemuImg("convert", "-l", `snapshot.name=${name}`, "-O", "raw", p, out);
      await writeFile(join(dir, "cmp.raw"), content);
      assert.ok(qemuCompare(out, join(dir, "cmp.raw"), "raw", "raw").same, `snapshot ${name} content`);
    }

    const d2 = await Qcow2Image.open(p);
    await applySnapshot(d2, "one");
    await assertReads(d2, v0);
    const v3 = Uint8Array.from(v0);
    await randomWrites(d2, v3, 20, 14);
    await deleteSnapshot(d2, "two");
    await d2.close();
    await judge(dir, p, v3);
    const d3 = await Qcow2Image.open(p);
    await deleteSnapshot(d3, "one");
    assert.equal(d3.snapshots.length, 0);
    await d3.close();
    await judge(dir, p, v3);
  });
});

test("discard frees clusters for reuse: the file stops growing", async () => {
  await withTmp(async (dir) => {
    const p = join(dir, "d.qcow2");
    await createQcow2(p, { size: 8 * MiB });
    const disk = await Qcow2Image.open(p);
    const sizes: number[] = [];
    for (let round = 0; round < 6; round++) {
      await disk.write(0, pattern(4 * MiB, round));
      await disk.discard(0, 4 * MiB);
      await disk.flush(); // freed clusters become reusable once the discard is durable
      sizes.push((await stat(p)).size);
    }
    assert.equal(sizes[5], sizes[1], `file kept growing: ${sizes.join(", ")}`);
    // Without flushes, frees are still applied once 16 MiB is pending: growth stays bounded.
    for (let round = 0; round < 20; round++) {
      await disk.write(0, pattern(4 * MiB, round));
      await disk.discard(0, 4 * MiB);
    }
    const grown = (await stat(p)).size - sizes[5];
    assert.ok(grown <= 24 * MiB, `file grew ${grown} bytes in 80 MiB of write+discard without flush`);
    await disk.write(MiB, pattern(MiB, 99));
    await disk.writeZeroes(MiB + 4096, 65536 * 3, true);
    const expect = new Uint8Array(8 * MiB);
    expect.set(pattern(MiB, 99), MiB);
    expect.fill(0, MiB + 4096, MiB + 4096 + 65536 * 3);
    await assertReads(disk, expect);
    await disk.close();
    await judge(dir, p, expect);
  });
});

test("backing chain: raw base, qcow2 middle, qcow2 top with partial-cluster copy-on-write", async () => {
  await withTmp(async (dir) => {
    const size = 6 * MiB;
    const base = join(dir, "base.raw");
    const expect = pattern(size, 21);
    await writeFile(base, expect);
    await createQcow2(join(dir, "mid.qcow2"), { size, backingFile: "base.raw", backingFormat: "raw" });
    const mid = await openDisk(join(dir, "mid.qcow2"));
    await mid.write(512, pattern(1024, 22));
    expect.set(pattern(1024, 22), 512);
    await mid.close();
    await createQcow2(join(dir, "top.qcow2"), { size: size + MiB, backingFile: "mid.qcow2", backingFormat: "qcow2" });
    const top = await openDisk(join(dir, "top.qcow2"));
    const full = new Uint8Array(size + MiB);
    full.set(expect);
    for (const off of [0, 70000 & ~511, 3 * MiB + 512, size - 512, size + 4096]) {
      await top.write(off, pattern(1536, off));
      full.set(pattern(1536, off), off);
    }
    await top.discard(2 * MiB, 65536); // discarded clusters must not show the backing data
    full.fill(0, 2 * MiB, 2 * MiB + 65536);
    await assertReads(top as Qcow2Image, full);
    await top.close();
    const c = qemuCheck(join(dir, "top.qcow2"));
    assert.equal(c.status, 0, c.text);
    await writeFile(join(dir, "full.raw"), full);
    const cmp = qemuCompare(join(dir, "top.qcow2"), join(dir, "full.raw"), "qcow2", "raw");
    assert.ok(cmp.same, cmp.text);
  });
});

test("dirty bit: refcounts are rebuilt on open", async () => {
  await withTmp(async (dir) => {
    const p = join(dir, "dirty.qcow2");
    await createQcow2(p, { size: 4 * MiB });
    const disk = await Qcow2Image.open(p);
    const expect = new Uint8Array(4 * MiB);
    await randomWrites(disk, expect, 10, 5);
    const leaked = await disk.refcounts.alloc(3); // leak three clusters
    await disk.file.write(leaked, new Uint8Array(3 * 65536));
    disk.header.incompatible |= 1n;
    await disk.writeHeader();
    await disk.close();
    assert.equal(qemuCheck(p).leaks, 3);
    const again = await Qcow2Image.open(p);
    assert.equal(again.header.incompatible & 1n, 0n);
    await again.close();
    await judge(dir, p, expect);
  });
});

test("a cluster whose tail lies past the end of the file reads as zero there", async () => {
  await withTmp(async (dir) => {
    const p = join(dir, "tail.qcow2");
    await createQcow2(p, { size: 4 * MiB });
    const disk = await Qcow2Image.open(p);
    await disk.write(MiB, pattern(4096, 1)); // only 4 KiB of a fresh 64 KiB cluster reach the file
    const buf = new Uint8Array(8192).fill(7);
    await disk.read(MiB + 8192, buf);
    assert.ok(buf.every((x) => x === 0));
    await disk.close();
    const expect = new Uint8Array(4 * MiB);
    expect.set(pattern(4096, 1), MiB);
    await judge(dir, p, expect);
  });
});

test("a tiny L2 cache (constant eviction) under concurrent reads and writes keeps every write", async () => {
  await withTmp(async (dir) => {
    const p = join(dir, "evict.qcow2");
    const size = 48 * MiB;
    await createQcow2(p, { size, clusterSize: 4096 }); // one L2 table maps 2 MiB: 24 tables
    const disk = await Qcow2Image.open(p, { l2CacheBytes: 4 * 4096 });
    const expect = new Uint8Array(size);
    const reads = (async () => {
      const buf = new Uint8Array(65536);
      for (let i = 0; i < 200; i++) await disk.read(((i * 7919) % 700) * 65536, buf);
    })();
    await randomWrites(disk, expect, 160, 31, 64 * 1024);
    await reads;
    await assertReads(disk, expect);
    await disk.close();
    await judge(dir, p, expect);
  });
});

test("between requests the file is always a consistent image (what kill -9 would leave)", async () => {
  await withTmp(async (dir) => {
    const p = join(dir, "live.qcow2");
    await createQcow2(p, { size: 16 * MiB });
    const disk = await Qcow2Image.open(p);
    const expect = new Uint8Array(16 * MiB);
    await randomWrites(disk, expect, 20, 41);
    await createSnapshot(disk, "base"); // later writes copy shared clusters
    const r = rng(42);
    const { copyFile } = await import("node:fs/promises");
    for (let i = 0; i < 24; i++) {
      if (r() < 0.7) await randomWrites(disk, expect, 4, 100 + i);
      else await disk.discard(Math.floor(r() * 200) * 65536, 65536 * (1 + Math.floor(r() * 8)));
      if (i % 3 === 2) {
        const copy = join(dir, `crash${i}.qcow2`);
        await copyFile(p, copy);
        const c = qemuCheck(copy);
        assert.equal(c.corruptions, 0, `after step ${i}: ${c.text}`);
      }
    }
    await disk.close();
    const c = qemuCheck(p);
    assert.equal(c.status, 0, c.text);
  });
});

test("sequential 4 KiB writes at depth 16 into fresh clusters (shared allocations), with a snapshot and discards mid-stream", async () => {
  await withTmp(async (dir) => {
    const p = join(dir, "q.qcow2");
    const size = 8 * MiB;
    const req = 4096;
    await createQcow2(p, { size });
    const disk = await Qcow2Image.open(p);
    const expect = new Uint8Array(size);
    let next = 0;
    const side: Array<Promise<unknown>> = [];
    const worker = async (): Promise<void> => {
      const back = new Uint8Array(req);
      while (next < size / req) {
        const i = next++;
        const d = pattern(req, i);
        await disk.write(i * req, d);
        expect.set(d, i * req);
        // A completed write reads back at once, even while its cluster's allocation may still be linking.
        await disk.read(i * req, back);
        assert.ok(Buffer.from(back).equals(Buffer.from(d)), `write ${i} did not read back`);
        if (i === 700) side.push(createSnapshot(disk, "mid"));
        if (i === 1200) {
          // Discard clusters already written (the stream has moved on), racing the writers.
          side.push(disk.discard(MiB, MiB).then(() => expect.fill(0, MiB, 2 * MiB)));
        }
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    await Promise.all(side);
    await assertReads(disk, expect);
    await disk.flush();
    await disk.close();
    await judge(dir, p, expect);
  });
});
