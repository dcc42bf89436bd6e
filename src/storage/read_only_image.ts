// Shared by the read-only image formats (VMDK, VHD): bounded file reads and the BlockBackend shell.
// It belongs in src/storage/ beside raw.ts; it lives here only because of who may edit what today.

import { open, type FileHandle } from "node:fs/promises";
import { performance } from "node:perf_hooks";
import { BlockRequestError, emptyBlockStats, type BlockBackend, type BlockStats } from "./block_backend.js";
import { checkRequestRange, diskIdFor } from "./raw.js";

/** A disk image that is malformed, truncated or uses a feature we do not support. */
export class DiskImageError extends Error {
  override name = "DiskImageError";
}

/** An image file opened read-only whose reads never leave the file. */
export class ImageFile {
  /** Cleared once the format has parsed its metadata, so later errors say "Cannot read" rather than "Cannot open". */
  opening = true;

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    readonly size: number,
  ) {}

  static async open(path: string): Promise<ImageFile> {
    let handle: FileHandle;
    try {
      handle = await open(path, "r");
    } catch (e) {
      throw new DiskImageError(`Cannot open disk "${path}": ${(e as Error).message}`, { cause: e });
    }
    const info = await handle.stat().catch(async (e: Error) => {
      await handle.close();
      throw new DiskImageError(`Cannot open disk "${path}": ${e.message}`, { cause: e });
    });
    if (!info.isFile()) {
      await handle.close();
      throw new DiskImageError(`Cannot open disk "${path}": it is not a regular file`);
    }
    return new ImageFile(path, handle, info.size);
  }

  /** An error that names the file and the phase: `Cannot open disk "a.vmdk": <detail>`. */
  error(detail: string): DiskImageError {
    return new DiskImageError(`Cannot ${this.opening ? "open" : "read"} disk "${this.path}": ${detail}`);
  }

  /** Fills buf from file offset pos; `what` names the structure for the error if it lies outside the file. */
  async readExact(pos: number, buf: Uint8Array, what: string): Promise<void> {
    this.checkInside(pos, buf.length, what);
    let done = 0;
    while (done < buf.length) {
      const { bytesRead } = await this.handle.read(buf, done, buf.length - done, pos + done);
      if (bytesRead === 0) throw this.error(`the file shrank while reading ${what}`);
      done += bytesRead;
    }
  }

  /** Throws unless [pos, pos + length) lies inside the file; call before allocating for untrusted lengths. */
  checkInside(pos: number, length: number, what: string): void {
    if (!Number.isSafeInteger(pos) || !Number.isSafeInteger(length) || pos < 0 || length < 0 || pos + length > this.size) {
      throw this.error(`${what} points past the end of the file`);
    }
  }

  async bytes(pos: number, length: number, what: string): Promise<Uint8Array> {
    this.checkInside(pos, length, what);
    const buf = new Uint8Array(length);
    await this.readExact(pos, buf, what);
    return buf;
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

/** What a format supplies: how to read its virtual disk, and what to release on close. */
export interface VirtualDiskReader {
  readonly size: number;
  /** Reads a range that is already checked to lie inside the disk. */
  read(offset: number, buf: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

// Reads fan out into a few file reads each; more than this in flight only queues in libuv.
const IMAGE_QUEUE_DEPTH = 16;

/** The BlockBackend every read-only format returns: checks requests, counts them, refuses writes. */
export class ReadOnlyImageBackend implements BlockBackend {
  readonly readOnly = true;
  readonly supportsDiscard = false;
  readonly queueDepth = IMAGE_QUEUE_DEPTH;
  readonly id: string;
  readonly size: number;
  private readonly counters: BlockStats = emptyBlockStats();
  private closed = false;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    readonly path: string,
    private readonly reader: VirtualDiskReader,
  ) {
    this.id = diskIdFor(path);
    this.size = reader.size;
  }

  read(offset: number, buf: Uint8Array): Promise<void> {
    const p = this.readChecked(offset, buf);
    this.inFlight.add(p);
    const forget = (): void => void this.inFlight.delete(p);
    p.then(forget, forget);
    return p;
  }

  private async readChecked(offset: number, buf: Uint8Array): Promise<void> {
    this.checkOpen();
    checkRequestRange(this.path, this.size, offset, buf.length);
    const start = performance.now();
    await this.reader.read(offset, buf);
    this.counters.readRequests++;
    this.counters.bytesRead += buf.length;
    this.counters.totalLatencyMs += performance.now() - start;
  }

  async write(_offset: number, _data: Uint8Array): Promise<void> {
    this.refuseWrite();
  }

  async flush(): Promise<void> {
    this.checkOpen();
    this.counters.flushRequests++;
  }

  async discard(_offset: number, _length: number): Promise<void> {
    this.refuseWrite();
  }

  async writeZeroes(_offset: number, _length: number, _mayUnmap: boolean): Promise<void> {
    this.refuseWrite();
  }

  stats(): BlockStats {
    return { ...this.counters };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.inFlight]);
    await this.reader.close();
  }

  private checkOpen(): void {
    if (this.closed) throw new BlockRequestError(`Disk "${this.path}" is closed`);
  }

  private refuseWrite(): never {
    this.checkOpen();
    throw new BlockRequestError(`Disk "${this.path}" is read-only: this format is opened for reading only`);
  }
}
