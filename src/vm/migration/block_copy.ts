// Block migration: the disks go along with RAM when they are not shared storage (`migrate` with
// "blk": true, QEMU's `migrate -b`). The source sends every non-zero 64 KiB chunk of each
// writable disk while the guest runs, then in rounds the chunks the guest wrote meanwhile (a dirty
// log fed by completed writes), and the last ones while the guest is stopped. The destination
// writes them into new qcow2 files it creates (`run --incoming URI --disk PATH`), never over an
// existing file.
//
//   BLOCKS frame: u32 disk index | u32 offset / 512 | data (a multiple of 512 bytes, at most one chunk)

import { rm, stat } from "node:fs/promises";
import type { BlockBackend } from "../../storage/block_backend.js";
import { createQcow2 } from "../../storage/qcow2/create.js";
import { openDisk } from "../../storage/open.js";
import { BLOCK_CHUNK_BYTES as CHUNK_BYTES, MigrationError } from "./stream.js";

const SECTOR = 512;
/** Bytes read at once in the first pass (zero chunks inside are skipped). */
const BULK_READ_BYTES = 1 << 20;
/** Dirty rounds while the guest runs stop once this little is left, or after MAX_ROUNDS. */
const SETTLED_BYTES = 4 << 20;
const MAX_ROUNDS = 8;

/** Which chunks of one disk were written since the last take(). */
export class DiskDirtyLog {
  private readonly bits: Uint8Array;
  private dirty = 0;

  constructor(readonly sizeBytes: number) {
    this.bits = new Uint8Array(Math.ceil(sizeBytes / CHUNK_BYTES));
  }

  mark(offset: number, length: number): void {
    if (length <= 0) return;
    const last = Math.min(this.bits.length - 1, Math.floor((offset + length - 1) / CHUNK_BYTES));
    for (let c = Math.max(0, Math.floor(offset / CHUNK_BYTES)); c <= last; c++) {
      if (this.bits[c] === 0) {
        this.bits[c] = 1;
        this.dirty++;
      }
    }
  }

  get count(): number {
    return this.dirty;
  }

  /** The dirty chunk numbers, in order; the log is clean afterwards. */
  take(): number[] {
    const out: number[] = [];
    for (let c = 0; c < this.bits.length && out.length < this.dirty; c++) {
      if (this.bits[c] === 1) {
        this.bits[c] = 0;
        out.push(c);
      }
    }
    this.dirty = 0;
    return out;
  }
}

/** A disk the source copies: what it reads from, and where completed guest writes are reported. */
export interface CopiedDisk {
  index: number;
  backend: BlockBackend;
  /** Starts (a log) or stops (null) reporting completed writes. */
  watchWrites(log: DiskDirtyLog | null): void;
}

export function blockFrame(index: number, offset: number, data: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(8 + data.length);
  b.writeUInt32LE(index, 0);
  b.writeUInt32LE(offset / SECTOR, 4);
  b.set(data, 8);
  return b;
}

/** The source's side: sends disks as BLOCKS frames through `send` (which paces them). */
export class BlockCopySource {
  private readonly logs: DiskDirtyLog[];
  bytesSent = 0;

  constructor(private readonly disks: CopiedDisk[], private readonly send: (payload: Buffer) => Promise<void>) {
    this.logs = disks.map((d) => new DiskDirtyLog(d.backend.size));
  }

  /** What the destination needs to create the copies. */
  describe(): Array<{ index: number; size: number }> {
    return this.disks.map((d) => ({ index: d.index, size: d.backend.size }));
  }

  /** The first pass and the dirty rounds, while the guest runs; writes stay watched until stop(). */
  async copyLive(cancelled: () => boolean): Promise<void> {
    this.disks.forEach((d, i) => d.watchWrites(this.logs[i]!));
    for (const d of this.disks) {
      const buf = new Uint8Array(BULK_READ_BYTES);
      for (let at = 0; at < d.backend.size; at += BULK_READ_BYTES) {
        if (cancelled()) return;
        const n = Math.min(BULK_READ_BYTES, d.backend.size - at);
        await d.backend.read(at, buf.subarray(0, n));
        for (let c = 0; c < n; c += CHUNK_BYTES) {
          const chunk = buf.subarray(c, Math.min(n, c + CHUNK_BYTES));
          if (chunk.some((x) => x !== 0)) await this.sendChunk(d.index, at + c, chunk);
        }
      }
    }
    for (let round = 0; round < MAX_ROUNDS && this.dirtyBytes() > SETTLED_BYTES && !cancelled(); round++) await this.sendDirty();
  }

  dirtyBytes(): number {
    return this.logs.reduce((sum, l) => sum + l.count * CHUNK_BYTES, 0);
  }

  /** Sends what was written since the last pass (all of it once the guest is stopped and its writes drained). */
  async sendDirty(): Promise<void> {
    for (let i = 0; i < this.disks.length; i++) {
      const d = this.disks[i]!;
      for (const c of this.logs[i]!.take()) {
        const at = c * CHUNK_BYTES;
        const chunk = new Uint8Array(Math.min(CHUNK_BYTES, d.backend.size - at));
        await d.backend.read(at, chunk);
        await this.sendChunk(d.index, at, chunk);
      }
    }
  }

  /** Stops watching writes (the migration ended either way). */
  stop(): void {
    for (const d of this.disks) d.watchWrites(null);
  }

  private async sendChunk(index: number, offset: number, data: Uint8Array): Promise<void> {
    await this.send(blockFrame(index, offset, data));
    this.bytesSent += data.length;
  }
}

export interface BlockCopyTargetOptions {
  /** Where each of the source's disks goes, by disk index. */
  paths: readonly string[];
  /** How many disks the source's VM has. */
  diskCount: number;
  /** Names the source in error sentences. */
  peer: string;
  /** Opens a freshly created copy; openDisk unless a test needs it to fail. */
  openCopy?: (path: string) => Promise<BlockBackend>;
}

/** The destination's side: new qcow2 files, one for each disk the source copies. */
export class BlockCopyTarget {
  private constructor(
    private readonly targets: Map<number, { path: string; backend: BlockBackend }>,
    private readonly peer: string,
  ) {}

  /**
   * Creates the copies: `o.paths[i]` receives the source's disk i. Refuses an existing file (a
   * copy never overwrites data) and a missing path, with a sentence. On any failure it removes
   * the files it created, and only those.
   */
  static async create(disks: Array<{ index: number; size: number }>, o: BlockCopyTargetOptions): Promise<BlockCopyTarget> {
    const { paths, diskCount, peer } = o;
    const openCopy = o.openCopy ?? ((path: string) => openDisk(path, { format: "qcow2" }));
    const targets = new Map<number, { path: string; backend: BlockBackend }>();
    let createdNotOpened: string | null = null;
    try {
      for (const d of disks) {
        if (!Number.isInteger(d?.index) || d.index < 0 || d.index >= diskCount || !Number.isSafeInteger(d.size) || d.size <= 0 || d.size % SECTOR !== 0 || targets.has(d.index)) {
          throw new MigrationError(`${peer} announced a disk copy that does not fit its VM (${JSON.stringify(d).slice(0, 100)}); the migration stream is corrupt.`);
        }
        const path = paths[d.index];
        if (path === undefined) {
          throw new MigrationError(`${peer} copies its disk ${d.index + 1} and this destination has nowhere to put it: start it with one --disk PATH for each of the source's ${diskCount} disk(s).`);
        }
        if (await stat(path).then(() => true, () => false)) {
          throw new MigrationError(`The disk copy would overwrite "${path}", which exists: give --disk a new file (the destination creates it).`);
        }
        await createQcow2(path, { size: d.size });
        createdNotOpened = path;
        targets.set(d.index, { path, backend: await openCopy(path) });
        createdNotOpened = null;
      }
    } catch (e) {
      await new BlockCopyTarget(targets, peer).abandon();
      // A copy this call created but could not open is not in `targets`; it is ours all the same.
      if (createdNotOpened !== null) await rm(createdNotOpened, { force: true }).catch(() => {});
      throw e;
    }
    return new BlockCopyTarget(targets, peer);
  }

  /** Writes one BLOCKS frame, after checking it lies inside a disk being copied. */
  async write(payload: Buffer): Promise<void> {
    const bad = (why: string) => new MigrationError(`${this.peer} sent a bad BLOCKS frame (${why}); the migration stream is corrupt.`);
    if (payload.length < 8 + SECTOR) throw bad(`${payload.length} bytes`);
    const index = payload.readUInt32LE(0);
    const offset = payload.readUInt32LE(4) * SECTOR;
    const data = payload.subarray(8);
    const t = this.targets.get(index);
    if (t === undefined) throw bad(`disk ${index} is not being copied`);
    if (data.length % SECTOR !== 0 || data.length > CHUNK_BYTES || offset + data.length > t.backend.size) throw bad(`${data.length} bytes at ${offset} do not fit the ${t.backend.size}-byte disk`);
    await t.backend.write(offset, data);
  }

  /** Makes the copies durable and closes them; the VM opens them by path. */
  async finish(): Promise<Map<number, string>> {
    for (const t of this.targets.values()) {
      await t.backend.flush();
      await t.backend.close();
    }
    return new Map([...this.targets].map(([i, t]) => [i, t.path]));
  }

  /** A failed migration: the half-made copies are removed (they were created here, and hold nothing else). */
  async abandon(): Promise<void> {
    await Promise.allSettled([...this.targets.values()].map((t) => t.backend.close()));
    await Promise.allSettled([...this.targets.values()].map((t) => rm(t.path, { force: true })));
  }
}
