import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, stat, truncate, writeFile, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BlockRequestError } from "./block_backend.js";
import { RawFileBackend } from "./raw.js";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "nodevisor-raw-"));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}

test("create makes a sparse file of the right size and refuses to overwrite", () =>
  withDir(async (dir) => {
    const path = join(dir, "d.raw");
    await RawFileBackend.create(path, 64 << 20);
    const info = await stat(path);
    assert.equal(info.size, 64 << 20);
    assert.ok(info.blocks * 512 < 1 << 20, "file should be sparse");
    await assert.rejects(RawFileBackend.create(path, 1024), /Cannot create disk .*d\.raw/);
    await assert.rejects(RawFileBackend.create(join(dir, "odd.raw"), 1000), /multiple of 512/);
  }));

test("writes read back, several requests in flight, stats count them", () =>
  withDir(async (dir) => {
    const path = join(dir, "d.raw");
    await RawFileBackend.create(path, 1 << 20);
    const disk = await RawFileBackend.open(path);
    assert.equal(disk.size, 1 << 20);
    assert.equal(disk.readOnly, false);
    assert.equal(disk.id, "d.raw");
    const writes = [0, 1, 2, 3].map((i) => disk.write(i * 8192, pattern(8192, i)));
    await Promise.all(writes);
    await disk.flush();
    const bufs = [0, 1, 2, 3].map(() => new Uint8Array(8192));
    await Promise.all(bufs.map((b, i) => disk.read(i * 8192, b)));
    bufs.forEach((b, i) => assert.deepEqual(b, pattern(8192, i)));
    const hole = new Uint8Array(4096).fill(7);
    await disk.read(512 * 1024, hole);
    assert.deepEqual(hole, new Uint8Array(4096));
    await disk.writeZeroes(8192, 8192, true);
    await disk.discard(0, 512);
    const zeroed = new Uint8Array(8192).fill(1);
    await disk.read(8192, zeroed);
    assert.deepEqual(zeroed, new Uint8Array(8192));
    const s = disk.stats();
    assert.equal(s.readRequests, 6);
    assert.equal(s.writeRequests, 5);
    assert.equal(s.flushRequests, 1);
    assert.equal(s.discardRequests, 1);
    assert.equal(s.bytesRead, 4 * 8192 + 4096 + 8192);
    assert.equal(s.bytesWritten, 4 * 8192 + 8192);
    assert.ok(s.totalLatencyMs >= 0);
    await disk.close();
    const onDisk = await readFile(path);
    assert.deepEqual(new Uint8Array(onDisk.subarray(0, 8192)), pattern(8192, 0));
    await assert.rejects(disk.read(0, new Uint8Array(512)), BlockRequestError);
  }));

test("every request is bounds- and alignment-checked", () =>
  withDir(async (dir) => {
    const path = join(dir, "d.raw");
    await RawFileBackend.create(path, 64 * 1024);
    const disk = await RawFileBackend.open(path);
    const cases: Array<() => Promise<void>> = [
      () => disk.read(64 * 1024, new Uint8Array(512)),
      () => disk.read(63 * 1024, new Uint8Array(2048)),
      () => disk.read(-512, new Uint8Array(512)),
      () => disk.read(100, new Uint8Array(512)),
      () => disk.read(0, new Uint8Array(100)),
      () => disk.write(64 * 1024 - 512, new Uint8Array(1024)),
      () => disk.discard(0, 128 * 1024),
      () => disk.writeZeroes(2 ** 60, 512, false),
      () => disk.read(Number.NaN, new Uint8Array(512)),
    ];
    for (const c of cases) await assert.rejects(c(), BlockRequestError);
    assert.equal(disk.stats().readRequests, 0);
    await disk.close();
  }));

test("read-only disks refuse writes but read and flush", () =>
  withDir(async (dir) => {
    const path = join(dir, "d.raw");
    await writeFile(path, pattern(4096, 9));
    const disk = await RawFileBackend.open(path, { readOnly: true });
    assert.equal(disk.readOnly, true);
    await assert.rejects(disk.write(0, new Uint8Array(512)), /read-only/);
    await assert.rejects(disk.writeZeroes(0, 512, false), BlockRequestError);
    await assert.rejects(disk.discard(0, 512), BlockRequestError);
    const buf = new Uint8Array(4096);
    await disk.read(0, buf);
    assert.deepEqual(buf, pattern(4096, 9));
    await disk.flush();
    await disk.close();
  }));

test("size rounds down to 512 and a file that shrinks reads zeroes past its end", () =>
  withDir(async (dir) => {
    const path = join(dir, "d.raw");
    await writeFile(path, pattern(4096 + 100, 3));
    const disk = await RawFileBackend.open(path);
    assert.equal(disk.size, 4096);
    await truncate(path, 1024);
    const buf = new Uint8Array(2048).fill(0xaa);
    await disk.read(0, buf);
    assert.deepEqual(buf.subarray(0, 1024), pattern(1024, 3));
    assert.deepEqual(buf.subarray(1024), new Uint8Array(1024));
    await disk.close();
    await assert.rejects(RawFileBackend.open(join(dir, "missing.raw")), /Cannot open disk ".*missing\.raw"/);
  }));
