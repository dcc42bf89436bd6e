// A raw disk image: the file's bytes are the disk's bytes.

import { open, type FileHandle } from "node:fs/promises";
import { basename } from "node:path";
import { performance } from "node:perf_hooks";
import { BlockRequestError, emptyBlockStats, type BlockBackend, type BlockStats } from "./block_backend.js";

export const SECTOR_SIZE = 512;
// libuv runs file I/O on a small thread pool; more requests than this only queue there.
const RAW_QUEUE_DEPTH = 16;
const ZERO_CHUNK = new Uint8Array(1 << 20);

/** A stable GET_ID for a disk: its file name, cut to the 20 bytes virtio-blk allows. */
export function diskIdFor(path: string): string {
  let id = basename(path);
  while (Buffer.byteLength(id, "utf8") > 20) id = id.slice(0, -1);
  return id;
}

/** Refuses a request that is unaligned or leaves the disk; every backend checks this before touching a file. */
export function checkRequestRange(path: string, diskSize: number, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new BlockRequestError(`Disk "${path}": request at offset ${offset} with length ${length} is not a valid byte range`);
  }
  if (offset % SECTOR_SIZE !== 0 || length % SECTOR_SIZE !== 0) {
    throw new BlockRequestError(`Disk "${path}": request at offset ${offset} with length ${length} is not aligned to 512-byte sectors`);
  }
  if (offset + length > diskSize) {
    throw new BlockRequestError(
      `Disk "${path}": request for bytes ${offset}..${offset + length} goes past the end of the ${diskSize}-byte disk`,
    );
  }
}

export interface RawOpenOptions {
  readOnly?: boolean;
}

export class RawFileBackend implements BlockBackend {
  readonly queueDepth = RAW_QUEUE_DEPTH;
  // Node has no fallocate(PUNCH_HOLE), so discard is a no-op and write-zeroes writes zeroes: nothing useful to advertise.
  readonly supportsDiscard = false;
  readonly id: string;
  private readonly counters: BlockStats = emptyBlockStats();
  private readonly inFlight = new Set<Promise<unknown>>();
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly file: FileHandle,
    readonly size: number,
    readonly readOnly: boolean,
  ) {
    this.id = diskIdFor(path);
  }

  /** Opens an existing raw image. A trailing partial sector is ignored with a process warning (the disk size is rounded down to 512). */
  static async open(path: string, opts: RawOpenOptions = {}): Promise<RawFileBackend> {
    const readOnly = opts.readOnly ?? false;
    let file: FileHandle;
    try {
      file = await open(path, readOnly ? "r" : "r+");
    } catch (e) {
      throw new Error(`Cannot open disk "${path}": ${(e as Error).message}`, { cause: e });
    }
    try {
      const info = await file.stat();
      if (!info.isFile()) throw new Error(`Cannot open disk "${path}": it is not a regular file`);
      const size = info.size - (info.size % SECTOR_SIZE);
      if (size !== info.size) {
        process.emitWarning(
          `Disk "${path}" is ${info.size} bytes, not a multiple of 512; its last ${info.size - size} bytes are not part of the disk`,
        );
      }
      return new RawFileBackend(path, file, size, readOnly);
    } catch (e) {
      await file.close();
      throw e;
    }
  }

  /** Creates a sparse raw image of `size` bytes (a multiple of 512); refuses to overwrite an existing file. */
  static async create(path: string, size: number): Promise<void> {
    if (!Number.isSafeInteger(size) || size < 0 || size % SECTOR_SIZE !== 0) {
      throw new RangeError(`Cannot create disk "${path}": size ${size} is not a non-negative multiple of 512 bytes`);
    }
    let file: FileHandle;
    try {
      file = await open(path, "wx");
    } catch (e) {
      throw new Error(`Cannot create disk "${path}": ${(e as Error).message}`, { cause: e });
    }
    try {
      await file.truncate(size);
      await file.sync();
    } finally {
      await file.close();
    }
  }

  read(offset: number, buf: Uint8Array): Promise<void> {
    return this.track(async () => {
      this.checkOpen();
      checkRequestRange(this.path, this.size, offset, buf.length);
      const start = performance.now();
      let done = 0;
      while (done < buf.length) {
        const { bytesRead } = await this.file.read(buf, done, buf.length - done, offset + done);
        // The file shrank under us: what is no longer there reads as zeroes.
        if (bytesRead === 0) {
          buf.fill(0, done);
          break;
        }
        done += bytesRead;
      }
      this.counters.readRequests++;
      this.counters.bytesRead += buf.length;
      this.counters.totalLatencyMs += performance.now() - start;
    });
  }

  write(offset: number, data: Uint8Array): Promise<void> {
    return this.track(async () => {
      this.checkWritable();
      checkRequestRange(this.path, this.size, offset, data.length);
      const start = performance.now();
      await this.writeAll(offset, data);
      this.counters.writeRequests++;
      this.counters.bytesWritten += data.length;
      this.counters.totalLatencyMs += performance.now() - start;
    });
  }

  flush(): Promise<void> {
    return this.track(async () => {
      this.checkOpen();
      const start = performance.now();
      if (!this.readOnly) await this.file.datasync();
      this.counters.flushRequests++;
      this.counters.totalLatencyMs += performance.now() - start;
    });
  }

  /** Advisory, and Node cannot punch holes: checks the range and does nothing. */
  discard(offset: number, length: number): Promise<void> {
    return this.track(async () => {
      this.checkWritable();
      checkRequestRange(this.path, this.size, offset, length);
      this.counters.discardRequests++;
    });
  }

  /** Writes real zeroes (mayUnmap cannot be honoured without fallocate). */
  writeZeroes(offset: number, length: number, _mayUnmap: boolean): Promise<void> {
    return this.track(async () => {
      this.checkWritable();
      checkRequestRange(this.path, this.size, offset, length);
      const start = performance.now();
      for (let done = 0; done < length; done += ZERO_CHUNK.length) {
        await this.writeAll(offset + done, ZERO_CHUNK.subarray(0, Math.min(ZERO_CHUNK.length, length - done)));
      }
      this.counters.writeRequests++;
      this.counters.bytesWritten += length;
      this.counters.totalLatencyMs += performance.now() - start;
    });
  }

  stats(): BlockStats {
    return { ...this.counters };
  }

  /** Waits for requests in flight, then closes the file; later requests fail. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.inFlight]);
    await this.file.close();
  }

  private async writeAll(offset: number, data: Uint8Array): Promise<void> {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.file.write(data, done, data.length - done, offset + done);
      done += bytesWritten;
    }
  }

  private track(op: () => Promise<void>): Promise<void> {
    const p = op();
    this.inFlight.add(p);
    const forget = (): void => void this.inFlight.delete(p);
    p.then(forget, forget);
    return p;
  }

  private checkOpen(): void {
    if (this.closed) throw new BlockRequestError(`Disk "${this.path}" is closed`);
  }

  private checkWritable(): void {
    this.checkOpen();
    if (this.readOnly) throw new BlockRequestError(`Disk "${this.path}" is read-only`);
  }
}
