// openDisk probes the format by magic and hands each image to its backend.

import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { openDisk, probeFormat } from "../../src/storage/open.js";
import { createQcow2 } from "../../src/storage/qcow2/create.js";
import { pattern, qemuImg, withTmp } from "../../src/storage/qcow2/test_util.js";

const MiB = 1 << 20;

test("formats are probed by magic and read back the same bytes", async () => {
  await withTmp(async (dir) => {
    const raw = join(dir, "disk.raw");
    const content = pattern(2 * MiB, 5);
    await writeFile(raw, content);
    const files: Array<[string, string]> = [["disk.raw", "raw"]];
    for (const fmt of ["qcow2", "vmdk", "vpc"]) {
      qemuImg("convert", "-f", "raw", "-O", fmt, raw, join(dir, `disk.${fmt}`));
      files.push([`disk.${fmt}`, fmt]);
    }
    for (const [name, fmt] of files) {
      const p = join(dir, name);
      assert.equal(await probeFormat(p), fmt, name);
      const d = await openDisk(p, { readOnly: true });
      assert.ok(d.size >= content.length, `${name}: size ${d.size}`);
      const buf = new Uint8Array(content.length);
      await d.read(0, buf);
      assert.ok(Buffer.from(buf).equals(Buffer.from(content)), `${name}: content`);
      await d.close();
    }
  });
});

test("an explicit format wins over probing, and unknown names are refused", async () => {
  await withTmp(async (dir) => {
    const p = join(dir, "a.qcow2");
    await createQcow2(p, { size: MiB });
    const asRaw = await openDisk(p, { format: "raw", readOnly: true });
    assert.equal(asRaw.size % 512, 0);
    await asRaw.close();
    await assert.rejects(openDisk(p, { format: "vhdx" as "raw" }), /unknown format "vhdx"/);
    await assert.rejects(openDisk(join(dir, "missing.img")), /Cannot open disk ".*missing.img"/);
  });
});

test("a qcow2 overlay on a vmdk template reads through the chain", async () => {
  await withTmp(async (dir) => {
    const raw = join(dir, "t.raw");
    const content = pattern(MiB, 9);
    await writeFile(raw, content);
    qemuImg("convert", "-f", "raw", "-O", "vmdk", raw, join(dir, "t.vmdk"));
    await createQcow2(join(dir, "o.qcow2"), { size: MiB, backingFile: "t.vmdk", backingFormat: "vmdk" });
    const d = await openDisk(join(dir, "o.qcow2"));
    await d.write(4096, pattern(512, 1));
    content.set(pattern(512, 1), 4096);
    const buf = new Uint8Array(MiB);
    await d.read(0, buf);
    await d.close();
    assert.ok(Buffer.from(buf).equals(Buffer.from(content)));
  });
});
