// Hostile images: unknown features, corrupt marks, backing loops and fuzzed metadata give
// clear errors — never a crash, a hang, or an access outside the file.

import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { openDisk } from "../open.js";
import { checkImage } from "./check.js";
import { createQcow2 } from "./create.js";
import { Qcow2Image } from "./image.js";
import { createSnapshot } from "./snapshots.js";
import { pattern, rng, withTmp } from "./test_util.js";

const MiB = 1 << 20;

test("unknown incompatible feature bits are refused by number", async () => {
  await withTmp(async (dir) => {
    const p = join(dir, "a.qcow2");
    await createQcow2(p, { size: MiB });
    const b = await readFile(p);
    b.writeUInt32BE(1 << 5, 76);
    await writeFile(p, b);
    await assert.rejects(openDisk(p), { message: `Cannot open disk "${p}": unknown incompatible feature bit 5` });
  });
});

test("the corrupt bit allows read-only opens only", async () => {
  await withTmp(async (dir) => {
    const p = join(dir, "a.qcow2");
    await createQcow2(p, { size: MiB });
    const b = await readFile(p);
    b.writeUInt32BE(2, 76);
    await writeFile(p, b);
    await assert.rejects(openDisk(p), /marked corrupt/);
    const ro = await openDisk(p, { readOnly: true });
    assert.equal(ro.readOnly, true);
    await ro.close();
  });
});

test("a backing chain that loops is refused", async () => {
  await withTmp(async (dir) => {
    await createQcow2(join(dir, "a.qcow2"), { size: MiB, backingFile: "b.qcow2", backingFormat: "qcow2" });
    await createQcow2(join(dir, "b.qcow2"), { size: MiB, backingFile: "a.qcow2", backingFormat: "qcow2" });
    await assert.rejects(openDisk(join(dir, "a.qcow2")), /loops back/);
  });
});

test("requests outside the disk or unaligned are refused", async () => {
  await withTmp(async (dir) => {
    const p = join(dir, "a.qcow2");
    await createQcow2(p, { size: MiB });
    const d = await openDisk(p);
    await assert.rejects(d.read(MiB, new Uint8Array(512)), /past the end/);
    await assert.rejects(d.write(100, new Uint8Array(512)), /aligned/);
    await d.close();
    const ro = await openDisk(p, { readOnly: true });
    await assert.rejects(ro.write(0, new Uint8Array(512)), /read-only/);
    await ro.close();
  });
});

/** Runs fn, failing the test if it neither settles nor throws within ms. */
async function bounded(fn: () => Promise<void>, ms: number, what: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`hung: ${what}`)), ms)));
  try {
    await Promise.race([fn().catch((e: unknown) => {
      assert.ok(e instanceof Error, `threw a non-Error: ${String(e)}`);
      assert.ok(!(e instanceof TypeError) || /Cannot|Disk/.test(e.message), `TypeError escaped: ${e.stack}`);
    }), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

test("fuzzed headers and tables give errors, not crashes or hangs", async () => {
  await withTmp(async (dir) => {
    const good = join(dir, "good.qcow2");
    await createQcow2(good, { size: 4 * MiB, clusterSize: 4096 });
    const d = await Qcow2Image.open(good);
    await d.write(0, pattern(MiB, 1));
    await createSnapshot(d, "s");
    await d.write(512 * 1024, pattern(65536, 2));
    const h = { l1: d.header.l1TableOffset, rt: d.refcounts.tableOffset, sn: d.header.snapshotsOffset, l2: d.l1.readUInt32BE(4) };
    await d.close();
    const original = await readFile(good);
    const regions = [0, 0, h.l1, h.rt, h.sn, h.l2 & ~4095, 2 * 4096];
    const r = rng(77);
    const victim = join(dir, "fuzz.qcow2");
    let opened = 0;
    for (let i = 0; i < 150; i++) {
      const b = Buffer.from(original);
      const base = regions[i % regions.length];
      const span = base === 0 ? 128 : 4096;
      for (let k = 0; k < 1 + Math.floor(r() * 4); k++) b[base + Math.floor(r() * span)] = Math.floor(r() * 256);
      await writeFile(victim, b);
      await bounded(async () => {
        const img = await Qcow2Image.open(victim);
        opened++;
        try {
          const buf = new Uint8Array(64 * 1024);
          for (const off of [0, 512 * 1024, Math.max(0, img.size - 65536)]) await img.read(off, buf).catch(() => {});
          await img.write(4096, pattern(8192, i)).catch(() => {});
          await img.discard(0, 65536).catch(() => {});
          await checkImage(img, { repair: false });
        } finally {
          await img.close();
        }
      }, 10000, `iteration ${i}`);
    }
    assert.ok(opened > 20, `only ${opened} fuzzed images opened; the fuzzing is too coarse to exercise reads`);
  });
});
