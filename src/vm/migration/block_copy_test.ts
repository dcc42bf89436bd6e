import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { openDisk } from "../../storage/open.js";
import { createQcow2 } from "../../storage/qcow2/create.js";
import type { BlockBackend } from "../../storage/block_backend.js";
import { BlockCopySource, BlockCopyTarget, blockFrame, DiskDirtyLog } from "./block_copy.js";

const KiB = 1024;
const MiB = 1024 * KiB;

test("the dirty log marks every 64 KiB chunk a write touches, and take() empties it", () => {
  const log = new DiskDirtyLog(1 * MiB);
  log.mark(0, 512);
  log.mark(64 * KiB - 512, 1024); // straddles chunks 0 and 1
  log.mark(1 * MiB - 512, 512);
  log.mark(5 * MiB, 512); // beyond the disk: ignored
  assert.equal(log.count, 3);
  assert.deepEqual(log.take(), [0, 1, 15]);
  assert.equal(log.count, 0);
  assert.deepEqual(log.take(), []);
});

async function disk(dir: string, name: string, size: number): Promise<BlockBackend> {
  const path = join(dir, name);
  await createQcow2(path, { size });
  return openDisk(path, { format: "qcow2" });
}

const pattern = (byte: number, n: number): Uint8Array => new Uint8Array(n).fill(byte);

test("a disk copied live, with writes during and after the first pass, arrives exactly as the source has it", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "nv-blkcopy-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const size = 4 * MiB;
  const src = await disk(dir, "src.qcow2", size);
  await src.write(0, pattern(0x11, 4096));
  await src.write(3 * MiB, pattern(0x22, 128 * KiB));
  let watcher: DiskDirtyLog | null = null;
  // The guest's writes, as the VM reports them: after they complete.
  const guestWrite = async (offset: number, data: Uint8Array): Promise<void> => {
    await src.write(offset, data);
    watcher?.mark(offset, data.length);
  };
  const target = await BlockCopyTarget.create([{ index: 0, size }], { paths: [join(dir, "dst.qcow2")], diskCount: 1, peer: "test source" });
  let frames = 0;
  const source = new BlockCopySource([{ index: 0, backend: src, watchWrites: (l) => (watcher = l) }], async (payload) => {
    frames++;
    // The guest writes while the copy runs: the chunk it rewrote after the copy read it must go again.
    if (frames === 1) await guestWrite(0, pattern(0x33, 512));
    await target.write(payload);
  });
  await source.copyLive(() => false);
  await guestWrite(2 * MiB, pattern(0x44, 512)); // while "paused", after the live rounds
  await source.sendDirty();
  source.stop();
  assert.equal(watcher, null, "stop() ends the watching");
  const paths = await target.finish();
  const dst = await openDisk(paths.get(0)!, { format: "qcow2" });
  const a = new Uint8Array(size);
  const b = new Uint8Array(size);
  await src.read(0, a);
  await dst.read(0, b);
  assert.ok(Buffer.from(a).equals(Buffer.from(b)), "the copy equals the source");
  assert.equal(b[0], 0x33);
  assert.equal(b[2 * MiB], 0x44);
  // Zero chunks were skipped in the first pass: 1 chunk at 0, 2 at 3 MiB, then the dirty ones.
  assert.ok(source.bytesSent < 8 * 64 * KiB, `sent ${source.bytesSent} bytes of a 4 MiB disk that holds 132 KiB`);
  await src.close();
  await dst.close();
});

test("the destination refuses to overwrite a file, a copy without a --disk, and frames outside the disk", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "nv-blkcopy-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const existing = join(dir, "exists.qcow2");
  writeFileSync(existing, "precious");
  await assert.rejects(BlockCopyTarget.create([{ index: 0, size: MiB }], { paths: [existing], diskCount: 1, peer: "peer" }), /would overwrite ".*exists.qcow2", which exists/);
  await assert.rejects(BlockCopyTarget.create([{ index: 1, size: MiB }], { paths: [join(dir, "a.qcow2")], diskCount: 2, peer: "peer" }), /one --disk PATH for each of the source's 2 disk/);
  await assert.rejects(BlockCopyTarget.create([{ index: 5, size: MiB }], { paths: [], diskCount: 1, peer: "peer" }), /does not fit its VM/);
  const path = join(dir, "copy.qcow2");
  const target = await BlockCopyTarget.create([{ index: 0, size: MiB }], { paths: [path], diskCount: 1, peer: "peer" });
  await assert.rejects(target.write(blockFrame(0, MiB - 512, pattern(1, 1024))), /do not fit the 1048576-byte disk/);
  await assert.rejects(target.write(blockFrame(3, 0, pattern(1, 512))), /disk 3 is not being copied/);
  await assert.rejects(target.write(Buffer.alloc(12)), /bad BLOCKS frame \(12 bytes\)/);
  await target.abandon();
  assert.equal(existsSync(path), false, "a failed migration removes the half-made copy");
});

test("a copy that was created but cannot be opened is removed, with the ones before it, and a file that existed is kept", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "nv-blkcopy-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const first = join(dir, "first.qcow2");
  const second = join(dir, "second.qcow2");
  const opened: string[] = [];
  const openCopy = async (path: string): Promise<BlockBackend> => {
    if (path === second) throw new Error(`Cannot open disk "${path}": injected failure`);
    opened.push(path);
    return openDisk(path, { format: "qcow2" });
  };
  await assert.rejects(
    BlockCopyTarget.create([{ index: 0, size: MiB }, { index: 1, size: MiB }], { paths: [first, second], diskCount: 2, peer: "peer", openCopy }),
    /injected failure/,
  );
  assert.deepEqual(opened, [first]);
  assert.equal(existsSync(first), false, "the copy opened before the failure is removed");
  assert.equal(existsSync(second), false, "the copy created but not opened is removed");
  // A file that was there before is never removed, even when a later disk fails.
  const existing = join(dir, "exists.qcow2");
  writeFileSync(existing, "precious");
  await assert.rejects(BlockCopyTarget.create([{ index: 0, size: MiB }, { index: 1, size: MiB }], { paths: [second, existing], diskCount: 2, peer: "peer" }), /would overwrite/);
  assert.equal(readFileSync(existing, "utf8"), "precious");
  assert.equal(existsSync(second), false);
});
