// The whole-VM snapshot file (format 2). Guest RAM is stored as a sparse image at a fixed place,
// page p at RAM_AT + p * 4 KiB, so a live save rewrites a page the guest dirtied in place, zero
// pages cost nothing (holes), and a restore can read any page on its own. The trailer holds the
// versioned JSON header with every component's named state, the pages stored and a checksum of
// each; a SHA-256 covers the prologue and the trailer, so a truncated or damaged file is refused
// before anything is restored, and a damaged page when it is read.
//
//   0: "NVSNAPSH" | u32 version | u32 0 | u64 trailer offset | u64 RAM bytes | zeros up to RAM_AT
//   RAM_AT: the RAM image (sparse; pages not listed are zero)
//   trailer: u32 header bytes | header JSON | u32 page count | u32 page numbers[] (ascending)
//            | u32 page checksums[] | "NVSNAPEN" | sha256(prologue[0, 32) + trailer up to here)

import { createHash } from "node:crypto";
import { open, rename, rm, type FileHandle } from "node:fs/promises";
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import type { GuestRam } from "../../seams/guest_ram.js";

export const SNAPSHOT_VERSION = 2;
const MAGIC = Buffer.from("NVSNAPSH", "latin1");
const END_MAGIC = Buffer.from("NVSNAPEN", "latin1");
export const PAGE_SIZE = 4096;
const PROLOGUE_BYTES = 32;
/** Where the RAM image starts: page-aligned, so page reads and writes stay aligned on disk. */
export const RAM_AT = PAGE_SIZE;
/** Pages copied out of the shared memory per write. */
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
  /** pageChecksum() of each stored page, in `pages` order. */
  checksums: Uint32Array;
  ramBytes: number;
  bytes: number;
}

/** A 32-bit FNV-1a over a page's words: cheap enough to check every page as it is loaded. */
export function pageChecksum(words: Int32Array, at: number): number {
  let h = 0x811c9dc5 | 0;
  for (let i = at, end = at + PAGE_SIZE / 4; i < end; i++) h = Math.imul(h ^ words[i]!, 16777619);
  return h >>> 0;
}

/** Page numbers of the RAM pages that hold anything but zeros. */
export function nonZeroPages(ram: GuestRam): Uint32Array {
  const words = ram.i32;
  const out: number[] = [];
  const perPage = PAGE_SIZE / 4;
  const n = ram.size / PAGE_SIZE;
  for (let p = 0; p < n; p++) {
    for (let i = p * perPage, end = i + perPage; i < end; i++) {
      if (words[i] !== 0) {
        out.push(p);
        break;
      }
    }
  }
  return Uint32Array.from(out);
}

/**
 * Writes a snapshot in steps: pages (any number of times, while the guest runs), then the
 * header. The file is written under a temporary name and renamed into place by finish(), so a
 * failed save leaves no half-written snapshot.
 */
export class SnapshotWriter {
  private readonly stored: Uint8Array;
  private readonly sums: Uint32Array;
  private readonly batch = Buffer.allocUnsafe(PAGES_PER_WRITE * PAGE_SIZE);
  bytesWritten = 0;

  private constructor(
    readonly path: string,
    private readonly tmp: string,
    private readonly file: FileHandle,
    private readonly ram: GuestRam,
  ) {
    this.stored = new Uint8Array(ram.size / PAGE_SIZE);
    this.sums = new Uint32Array(ram.size / PAGE_SIZE);
  }

  static async create(path: string, ram: GuestRam): Promise<SnapshotWriter> {
    const tmp = `${path}.partial-${process.pid}`;
    const file = await open(tmp, "w", 0o600);
    return new SnapshotWriter(path, tmp, file, ram);
  }

  /**
   * Copies these pages (ascending) into the file, each run of neighbours in one write: from RAM, or
   * from `frozen` (page `pages[i]` at `frozen[i * PAGE_SIZE]`, precopy.ts freezePages).
   */
  async writePages(pages: Uint32Array, frozen?: Uint8Array): Promise<void> {
    const ram = this.ram;
    for (let i = 0; i < pages.length;) {
      const first = pages[i]!;
      let n = 1;
      while (i + n < pages.length && n < PAGES_PER_WRITE && pages[i + n] === first + n) n++;
      for (let k = 0; k < n; k++) {
        const p = first + k;
        const from = frozen === undefined ? ram.u8.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE) : frozen.subarray((i + k) * PAGE_SIZE, (i + k + 1) * PAGE_SIZE);
        this.batch.set(from, k * PAGE_SIZE);
        // The checksum of what was copied, not of RAM (the guest may write it meanwhile).
        this.sums[p] = pageChecksum(new Int32Array(this.batch.buffer, this.batch.byteOffset + k * PAGE_SIZE, PAGE_SIZE / 4), 0);
        this.stored[p] = 1;
      }
      await this.file.write(this.batch, 0, n * PAGE_SIZE, RAM_AT + first * PAGE_SIZE);
      this.bytesWritten += n * PAGE_SIZE;
      i += n;
    }
  }

  /** Writes the trailer with `header`, syncs and renames the file into place. */
  async finish(header: unknown): Promise<{ bytes: number; pages: number }> {
    const pages: number[] = [];
    for (let p = 0; p < this.stored.length; p++) if (this.stored[p] !== 0) pages.push(p);
    const json = Buffer.from(JSON.stringify(header), "utf8");
    const trailerAt = RAM_AT + this.ram.size;
    const prologue = Buffer.alloc(PROLOGUE_BYTES);
    MAGIC.copy(prologue, 0);
    prologue.writeUInt32LE(SNAPSHOT_VERSION, 8);
    prologue.writeBigUInt64LE(BigInt(trailerAt), 16);
    prologue.writeBigUInt64LE(BigInt(this.ram.size), 24);
    const u32 = (v: number): Buffer => {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(v >>> 0);
      return b;
    };
    const index = Buffer.from(Uint32Array.from(pages).buffer);
    const sums = Buffer.from(Uint32Array.from(pages, (p) => this.sums[p]!).buffer);
    const trailer = Buffer.concat([u32(json.length), json, u32(pages.length), index, sums, END_MAGIC]);
    const digest = createHash("sha256").update(prologue).update(trailer).digest();
    await this.file.write(Buffer.concat([trailer, digest]), 0, trailer.length + digest.length, trailerAt);
    await this.file.write(prologue, 0, PROLOGUE_BYTES, 0);
    await this.file.sync();
    await this.file.close();
    await rename(this.tmp, this.path);
    return { bytes: trailerAt + trailer.length + digest.length, pages: pages.length };
  }

  /** Gives up: the temporary file goes. */
  async abandon(): Promise<void> {
    await this.file.close().catch(() => {});
    await rm(this.tmp, { force: true });
  }
}

/** Writes a snapshot of RAM as it is now (the guest must not run meanwhile). */
export async function writeSnapshotFile(path: string, header: unknown, ram: GuestRam): Promise<{ bytes: number; pages: number }> {
  const w = await SnapshotWriter.create(path, ram);
  try {
    await w.writePages(nonZeroPages(ram));
    return await w.finish(header);
  } catch (e) {
    await w.abandon();
    throw e;
  }
}

/** Reads and checks a snapshot's prologue, header and page index (not the pages: see readPages). */
export async function readSnapshotInfo<H>(path: string): Promise<SnapshotFileInfo<H>> {
  // Synchronous: a few small reads before anything runs, and every thread-pool hop is a restore's latency.
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new SnapshotError(`Cannot open the snapshot "${path}": ${err.code === "ENOENT" ? "no such file" : err.message}.`);
  }
  const file = {
    stat: () => fstatSync(fd),
    read: (buf: Buffer, at: number, length: number, position: number) => readSync(fd, buf, at, length, position),
    close: () => closeSync(fd),
  };
  try {
    const size = file.stat().size;
    const bad = (why: string) => new SnapshotError(`"${path}" is not a usable nodevisor snapshot: ${why}.`);
    if (size < PROLOGUE_BYTES) throw bad(`it is only ${size} bytes long`);
    const prologue = Buffer.alloc(PROLOGUE_BYTES);
    file.read(prologue, 0, PROLOGUE_BYTES, 0);
    if (!prologue.subarray(0, 8).equals(MAGIC)) throw bad("it does not start with the snapshot magic");
    const version = prologue.readUInt32LE(8);
    if (version !== SNAPSHOT_VERSION) {
      throw bad(`it is format version ${version}, and this nodevisor reads version ${SNAPSHOT_VERSION}; restore it with the nodevisor that saved it`);
    }
    const trailerAt = Number(prologue.readBigUInt64LE(16));
    const ramBytes = Number(prologue.readBigUInt64LE(24));
    if (ramBytes <= 0 || ramBytes % PAGE_SIZE !== 0 || trailerAt !== RAM_AT + ramBytes) throw bad("its prologue is damaged (or the save did not finish)");
    const trailerBytes = size - trailerAt;
    if (trailerBytes < 4 + 4 + END_MAGIC.length + 32) throw bad(`it ends early (${size} bytes, its RAM image alone takes ${trailerAt})`);
    if (trailerBytes > MAX_HEADER_BYTES + 8 * (ramBytes / PAGE_SIZE) + 64) throw bad("its trailer is impossibly long");
    const trailer = Buffer.alloc(trailerBytes);
    file.read(trailer, 0, trailerBytes, trailerAt);
    const body = trailer.subarray(0, trailerBytes - 32);
    const digest = createHash("sha256").update(prologue).update(body).digest();
    if (!digest.equals(trailer.subarray(trailerBytes - 32))) throw bad("its checksum does not match (the file is truncated or damaged)");
    if (!body.subarray(body.length - END_MAGIC.length).equals(END_MAGIC)) throw bad("its end marker is missing");
    const headerBytes = body.readUInt32LE(0);
    if (4 + headerBytes + 4 > body.length) throw bad(`its header length ${headerBytes} is impossible`);
    let header: H;
    try {
      header = JSON.parse(body.subarray(4, 4 + headerBytes).toString("utf8")) as H;
    } catch {
      throw bad("its header is not JSON");
    }
    const count = body.readUInt32LE(4 + headerBytes);
    const indexAt = 8 + headerBytes;
    if (indexAt + count * 8 + END_MAGIC.length !== body.length) throw bad(`its page count ${count} does not match its size`);
    const pages = new Uint32Array(count);
    const checksums = new Uint32Array(count);
    for (let i = 0; i < count; i++) {
      pages[i] = body.readUInt32LE(indexAt + i * 4);
      checksums[i] = body.readUInt32LE(indexAt + count * 4 + i * 4);
      if (pages[i]! >= ramBytes / PAGE_SIZE || (i > 0 && pages[i]! <= pages[i - 1]!)) {
        throw bad(`page ${pages[i]} lies outside its ${ramBytes >> 20} MiB of RAM or out of order`);
      }
    }
    return { header, pages, checksums, ramBytes, bytes: size };
  } finally {
    file.close();
  }
}

/**
 * Copies the stored pages into RAM (which must be all zeros: a fresh VM's), checking each
 * page's checksum before any is used.
 */
export async function loadSnapshotPages(path: string, info: SnapshotFileInfo<unknown>, ram: GuestRam): Promise<void> {
  if (info.ramBytes !== ram.size) {
    throw new SnapshotError(`"${path}" is not a usable nodevisor snapshot: it holds ${info.ramBytes >> 20} MiB of RAM for a VM of ${ram.size >> 20} MiB.`);
  }
  const file = await open(path, "r");
  try {
    const batch = Buffer.allocUnsafe(PAGES_PER_WRITE * PAGE_SIZE);
    const words = new Int32Array(batch.buffer, batch.byteOffset, batch.length / 4);
    const pages = info.pages;
    for (let i = 0; i < pages.length;) {
      const first = pages[i]!;
      let n = 1;
      while (i + n < pages.length && n < PAGES_PER_WRITE && pages[i + n] === first + n) n++;
      const { bytesRead } = await file.read(batch, 0, n * PAGE_SIZE, RAM_AT + first * PAGE_SIZE);
      if (bytesRead !== n * PAGE_SIZE) throw new SnapshotError(`"${path}" is not a usable nodevisor snapshot: it ends inside its RAM image.`);
      for (let k = 0; k < n; k++) {
        if (pageChecksum(words, k * (PAGE_SIZE / 4)) !== info.checksums[i + k]) {
          throw new SnapshotError(`"${path}" is not a usable nodevisor snapshot: RAM page ${first + k} is damaged (its checksum does not match).`);
        }
      }
      ram.u8.set(batch.subarray(0, n * PAGE_SIZE), first * PAGE_SIZE);
      i += n;
    }
  } finally {
    await file.close();
  }
}
