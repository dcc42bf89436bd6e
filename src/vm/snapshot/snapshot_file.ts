// The whole-VM snapshot file: a versioned JSON header with every component's named state, then
// guest RAM as the non-zero 4 KiB pages only (zero pages cost nothing), then a SHA-256 of all
// that came before, so a truncated or corrupted file is refused before anything is restored.
//
//   "NVSNAPSH" | u32 version | u32 header bytes | header JSON | u32 page count | u32 page numbers[]
//   | page data (4 KiB each, in page-number order) | "NVSNAPEN" | sha256 (32 bytes)

import { createHash } from "node:crypto";
import { open, rename, rm } from "node:fs/promises";
import type { GuestRam } from "../../seams/guest_ram.js";

export const SNAPSHOT_VERSION = 1;
const MAGIC = Buffer.from("NVSNAPSH", "latin1");
const END_MAGIC = Buffer.from("NVSNAPEN", "latin1");
export const PAGE_SIZE = 4096;
const PAGES_PER_WRITE = 256;
/** A header is a few KiB of JSON; anything this large is not one of ours. */
const MAX_HEADER_BYTES = 64 << 20;

/** Raised for a file that is not a usable snapshot; the message says why and what to do. */
export class SnapshotError extends Error {
  override name = "SnapshotError";
}

export interface SnapshotFileInfo<H> {
  header: H;
  /** Page numbers (from the RAM base) of the pages stored, ascending. */
  pages: Uint32Array;
  bytes: number;
}

/** Page numbers of the RAM pages that hold anything but zeros. */
export function nonZeroPages(ram: GuestRam): Uint32Array {
  const words = new BigUint64Array(ram.buffer, 0, ram.size / 8);
  const out: number[] = [];
  const perPage = PAGE_SIZE / 8;
  for (let p = 0, w = 0; w < words.length; p++, w += perPage) {
    for (let i = w, end = w + perPage; i < end; i++) {
      if (words[i] !== 0n) {
        out.push(p);
        break;
      }
    }
  }
  return Uint32Array.from(out);
}

/** Writes the snapshot to `path` atomically (a temporary file renamed into place). */
export async function writeSnapshotFile(path: string, header: unknown, ram: GuestRam): Promise<{ bytes: number; pages: number }> {
  const pages = nonZeroPages(ram);
  const json = Buffer.from(JSON.stringify(header), "utf8");
  const head = Buffer.alloc(16);
  MAGIC.copy(head, 0);
  head.writeUInt32LE(SNAPSHOT_VERSION, 8);
  head.writeUInt32LE(json.length, 12);
  const count = Buffer.alloc(4);
  count.writeUInt32LE(pages.length, 0);
  const tmp = `${path}.partial-${process.pid}`;
  const hash = createHash("sha256");
  const file = await open(tmp, "w", 0o600);
  let bytes = 0;
  const put = async (b: Uint8Array): Promise<void> => {
    hash.update(b);
    await file.write(b);
    bytes += b.length;
  };
  try {
    await put(head);
    await put(json);
    await put(count);
    await put(new Uint8Array(pages.buffer, pages.byteOffset, pages.byteLength));
    for (let i = 0; i < pages.length; i += PAGES_PER_WRITE) {
      // Copy a batch out of the shared memory, then write it.
      const n = Math.min(PAGES_PER_WRITE, pages.length - i);
      const batch = Buffer.allocUnsafe(n * PAGE_SIZE);
      for (let k = 0; k < n; k++) batch.set(ram.u8.subarray(pages[i + k]! * PAGE_SIZE, (pages[i + k]! + 1) * PAGE_SIZE), k * PAGE_SIZE);
      await put(batch);
    }
    await put(END_MAGIC);
    const digest = hash.digest();
    await file.write(digest);
    bytes += digest.length;
    await file.sync();
    await file.close();
    await rename(tmp, path);
  } catch (e) {
    await file.close().catch(() => {});
    await rm(tmp, { force: true });
    throw e;
  }
  return { bytes, pages: pages.length };
}

/** Reads and checks a snapshot's header and page index (the whole file is hashed first). */
export async function readSnapshotInfo<H>(path: string): Promise<SnapshotFileInfo<H>> {
  const file = await open(path, "r").catch((e: NodeJS.ErrnoException) => {
    throw new SnapshotError(`Cannot open the snapshot "${path}": ${e.code === "ENOENT" ? "no such file" : e.message}.`);
  });
  try {
    const size = (await file.stat()).size;
    const bad = (why: string) => new SnapshotError(`"${path}" is not a usable nodevisor snapshot: ${why}.`);
    if (size < 16 + 4 + END_MAGIC.length + 32) throw bad(`it is only ${size} bytes long`);
    const head = Buffer.alloc(16);
    await file.read(head, 0, 16, 0);
    if (!head.subarray(0, 8).equals(MAGIC)) throw bad("it does not start with the snapshot magic");
    const version = head.readUInt32LE(8);
    if (version !== SNAPSHOT_VERSION) {
      throw bad(`it is format version ${version}, and this nodevisor reads version ${SNAPSHOT_VERSION}; restore it with the nodevisor that saved it`);
    }
    // Hash everything before the digest and compare: a truncated or damaged file stops here.
    const hash = createHash("sha256");
    const chunk = Buffer.allocUnsafe(4 << 20);
    const bodyEnd = size - 32;
    for (let at = 0; at < bodyEnd;) {
      const { bytesRead } = await file.read(chunk, 0, Math.min(chunk.length, bodyEnd - at), at);
      if (bytesRead === 0) throw bad("it ended early");
      hash.update(chunk.subarray(0, bytesRead));
      at += bytesRead;
    }
    const digest = Buffer.alloc(32);
    await file.read(digest, 0, 32, bodyEnd);
    if (!hash.digest().equals(digest)) throw bad("its checksum does not match (the file is truncated or damaged)");
    const end = Buffer.alloc(END_MAGIC.length);
    await file.read(end, 0, end.length, bodyEnd - END_MAGIC.length);
    if (!end.equals(END_MAGIC)) throw bad("its end marker is missing");

    const headerBytes = head.readUInt32LE(12);
    if (headerBytes > MAX_HEADER_BYTES || 16 + headerBytes + 4 > bodyEnd) throw bad(`its header length ${headerBytes} is impossible`);
    const json = Buffer.alloc(headerBytes);
    await file.read(json, 0, headerBytes, 16);
    let header: H;
    try {
      header = JSON.parse(json.toString("utf8")) as H;
    } catch {
      throw bad("its header is not JSON");
    }
    const countBuf = Buffer.alloc(4);
    await file.read(countBuf, 0, 4, 16 + headerBytes);
    const count = countBuf.readUInt32LE(0);
    const indexAt = 16 + headerBytes + 4;
    if (indexAt + count * 4 + count * PAGE_SIZE + END_MAGIC.length !== bodyEnd) throw bad(`its page count ${count} does not match its size`);
    const index = Buffer.alloc(count * 4);
    await file.read(index, 0, index.length, indexAt);
    const pages = new Uint32Array(count);
    for (let i = 0; i < count; i++) pages[i] = index.readUInt32LE(i * 4);
    return { header, pages, bytes: size };
  } finally {
    await file.close();
  }
}

/** Copies the stored pages into RAM (which must be all zeros: a fresh VM's). */
export async function loadSnapshotPages(path: string, info: SnapshotFileInfo<unknown>, ram: GuestRam): Promise<void> {
  const pageLimit = ram.size / PAGE_SIZE;
  for (let i = 0; i < info.pages.length; i++) {
    if (info.pages[i]! >= pageLimit || (i > 0 && info.pages[i]! <= info.pages[i - 1]!)) {
      throw new SnapshotError(`"${path}" is not a usable nodevisor snapshot: page ${info.pages[i]} lies outside the VM's ${ram.size >> 20} MiB of RAM or out of order.`);
    }
  }
  const headerBytes = (await readU32(path, 12))!;
  const dataAt = 16 + headerBytes + 4 + info.pages.length * 4;
  const file = await open(path, "r");
  try {
    const batch = Buffer.allocUnsafe(PAGES_PER_WRITE * PAGE_SIZE);
    for (let i = 0; i < info.pages.length; i += PAGES_PER_WRITE) {
      const n = Math.min(PAGES_PER_WRITE, info.pages.length - i);
      await file.read(batch, 0, n * PAGE_SIZE, dataAt + i * PAGE_SIZE);
      for (let k = 0; k < n; k++) ram.u8.set(batch.subarray(k * PAGE_SIZE, (k + 1) * PAGE_SIZE), info.pages[i + k]! * PAGE_SIZE);
    }
  } finally {
    await file.close();
  }
}

async function readU32(path: string, at: number): Promise<number> {
  const file = await open(path, "r");
  try {
    const b = Buffer.alloc(4);
    await file.read(b, 0, 4, at);
    return b.readUInt32LE(0);
  } finally {
    await file.close();
  }
}
