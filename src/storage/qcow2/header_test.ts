// Header round trips: unknown extensions survive our rewrites; resize moves the L1 table safely.

import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { createQcow2 } from "./create.js";
import { parseHeader } from "./header.js";
import { Qcow2Image } from "./image.js";
import { createSnapshot } from "./snapshots.js";
import { pattern, qemuCheck, qemuCompare, qemuImg, withTmp } from "./test_util.js";

const MiB = 1 << 20;

test("unknown header extensions are kept when the header is rewritten", async () => {
  await withTmp(async (dir) => {
    const p = join(dir, "a.qcow2");
    qemuImg("create", "-f", "qcow2", p, "8M");
    const b = await readFile(p);
    const h = parseHeader(b, p, b.length);
    // Insert an unknown extension first in the list, and set an autoclear bit we do not know,
    // which forces a header rewrite when the image is opened for writing.
    const extStart = h.headerLength;
    const tail = Buffer.from(b.subarray(extStart, 4096 - 16));
    const ext = Buffer.alloc(16);
    ext.writeUInt32BE(0x12345678, 0);
    ext.writeUInt32BE(5, 4);
    ext.write("hello", 8);
    ext.copy(b, extStart);
    tail.copy(b, extStart + 16);
    b.writeUInt32BE(0x80, 92); // autoclear bit 7
    await writeFile(p, b);
    const before = (await readFile(p)).subarray(extStart, extStart + 16);
    const img = await Qcow2Image.open(p);
    assert.equal(img.header.extensions[0].type, 0x12345678);
    assert.equal(Buffer.from(img.header.extensions[0].data).toString(), "hello");
    await img.write(0, pattern(65536, 1));
    await img.close();
    const after = await readFile(p);
    assert.ok(after.subarray(extStart, extStart + 16).equals(before), "the unknown extension changed");
    assert.equal(after.readUInt32BE(92), 0, "unknown autoclear bits must be cleared by a writer");
    assert.equal(qemuCheck(p).status, 0);
  });
});

test("resize grows the disk, moving the L1 table, with a snapshot present", async () => {
  await withTmp(async (dir) => {
    const p = join(dir, "r.qcow2");
    await createQcow2(p, { size: 8 * MiB, clusterSize: 4096 });
    const img = await Qcow2Image.open(p);
    await img.write(0, pattern(MiB, 1));
    await createSnapshot(img, "small");
    const l1Before = img.header.l1TableOffset;
    await img.resize(3 * 1024 * MiB);
    assert.notEqual(img.header.l1TableOffset, l1Before);
    await img.write(3 * 1024 * MiB - MiB, pattern(MiB, 2));
    await img.close();
    const c = qemuCheck(p);
    assert.equal(c.status, 0, c.text);
    const info = JSON.parse(qemuImg("info", "--output=json", p));
    assert.equal(info["virtual-size"], 3 * 1024 * MiB);
    const expect = join(dir, "expect.raw");
    const raw = Buffer.alloc(0);
    await writeFile(expect, raw);
    const { truncate } = await import("node:fs/promises");
    await truncate(expect, 3 * 1024 * MiB);
    const fh = await (await import("node:fs/promises")).open(expect, "r+");
    await fh.write(pattern(MiB, 1), 0, MiB, 0);
    await fh.write(pattern(MiB, 2), 0, MiB, 3 * 1024 * MiB - MiB);
    await fh.close();
    assert.ok(qemuCompare(p, expect, "qcow2", "raw").same);
  });
});
