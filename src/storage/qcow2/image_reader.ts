// The read side of an open qcow2 image: the header and tables loaded at open, the mapping from
// guest clusters to host clusters (L1/L2 lookups through a table cache), and guest reads through
// it (allocated, zero, compressed and backing-file clusters). Qcow2Image (image.ts) adds writes.

import { realpath } from "node:fs/promises";
import { performance } from "node:perf_hooks";
import { BlockRequestError, emptyBlockStats, type BlockBackend, type BlockStats } from "../block_backend.js";
import { checkRequestRange, diskIdFor } from "../raw.js";
import { inflateCluster } from "./compressed.js";
import { ClusterKind, decodeL2, entryOffset, type L2Entry } from "./entries.js";
import { corruptError, openError } from "./errors.js";
import { encodeHeaderFields, type Qcow2Header } from "./header.js";
import type { ImageFile } from "./image_file.js";
import { IoGate, Mutex } from "./mutex.js";
import { Refcounts } from "./refcounts.js";
import { parseSnapshotTable, snapshotTableLength, type SnapshotEntry } from "./snapshot_table.js";
import { TableCache } from "./table_cache.js";

export const MAX_BACKING_DEPTH = 64;

/** Opens a backing file; supplied by open.ts so this module needs no knowledge of other formats. */
export type BackingOpener = (path: string, format: string | null, chain: string[]) => Promise<BlockBackend>;

export interface Qcow2OpenOptions {
  readOnly?: boolean;
  openBacking?: BackingOpener;
  /** Real paths of the images above this one in a backing chain (loop detection). */
  chain?: string[];
  /** Open without the backing file (for info/check of a broken chain). */
  noBacking?: boolean;
  /** Memory for cached L2 tables (default 32 MiB; at least 4 tables). */
  l2CacheBytes?: number;
}

export abstract class Qcow2Reader {
  readonly id: string;
  size: number;
  readonly clusterSize: number;
  readonly l2Entries: number;
  l1!: Buffer;
  snapshots: SnapshotEntry[] = [];
  /** Bytes the on-disk snapshot table occupies. */
  snapshotTableBytes = 0;
  backing: BlockBackend | null = null;
  readonly l2Cache: TableCache;
  refcounts!: Refcounts;
  readonly meta = new Mutex();
  readonly gate = new IoGate();
  protected counters: BlockStats = emptyBlockStats();
  private lastInflated: { offset: number; data: Buffer } | null = null;
  protected closed = false;

  protected constructor(
    readonly path: string,
    readonly file: ImageFile,
    readonly header: Qcow2Header,
    private rawHeader: Buffer,
    readonly readOnly: boolean,
    l2CacheBytes: number,
  ) {
    this.id = diskIdFor(path);
    this.clusterSize = 2 ** header.clusterBits;
    this.l2Entries = this.clusterSize / 8;
    this.size = header.size - (header.size % 512);
    this.l2Cache = new TableCache(
      Math.max(4, Math.floor(l2CacheBytes / this.clusterSize)),
      async (off) => {
        const t = Buffer.alloc(this.clusterSize);
        await this.file.read(off, t, "L2 table");
        return t;
      },
      (off) => this.mayEvictL2(off),
    );
  }

  /** Whether the cache may drop L2 table `off`; the write side keeps the tables it is modifying. */
  protected mayEvictL2(_off: number): boolean {
    return true;
  }

  protected async load(opts: Qcow2OpenOptions): Promise<void> {
    const h = this.header;
    this.l1 = Buffer.alloc(Math.ceil((h.l1Size * 8) / this.clusterSize) * this.clusterSize);
    if (h.l1Size > 0) await this.file.read(h.l1TableOffset, this.l1.subarray(0, h.l1Size * 8), "L1 table");
    this.refcounts = this.makeRefcounts(h.refcountTableOffset, h.refcountTableClusters);
    await this.refcounts.load();
    this.snapshots = await this.loadSnapshots();
    if (h.backingFile !== null && !opts.noBacking) {
      if (!opts.openBacking) throw openError(this.path, "it has a backing file but no way to open it was given");
      const self = await realpath(this.path);
      const chain = [...(opts.chain ?? []), self];
      if (chain.length > MAX_BACKING_DEPTH) throw openError(this.path, `backing chain is deeper than ${MAX_BACKING_DEPTH}`);
      this.backing = await opts.openBacking(this.resolveBacking(), h.backingFormat, chain);
    }
    if (!this.readOnly) await this.prepareForWriting();
  }

  /** Checks and readies an image opened for writing (its metadata must be sound before the first write). */
  protected abstract prepareForWriting(): Promise<void>;

  /** Backing names are relative to the directory of the image that names them. */
  resolveBacking(): string {
    const name = this.header.backingFile ?? "";
    if (name.startsWith("/")) return name;
    const dir = this.path.includes("/") ? this.path.slice(0, this.path.lastIndexOf("/") + 1) : "";
    return dir + name;
  }

  makeRefcounts(offset: number, clusters: number): Refcounts {
    return new Refcounts({
      file: this.file,
      clusterBits: this.header.clusterBits,
      order: this.header.refcountOrder,
      tableOffset: offset,
      tableClusters: clusters,
      saveTableLocation: async (o, c) => {
        this.header.refcountTableOffset = o;
        this.header.refcountTableClusters = c;
        await this.writeHeader();
      },
      onFreed: (o) => {
        this.l2Cache.drop(o);
        if (this.lastInflated && Math.floor(this.lastInflated.offset / this.clusterSize) * this.clusterSize === o) this.lastInflated = null;
      },
    });
  }

  private async loadSnapshots(): Promise<SnapshotEntry[]> {
    const h = this.header;
    if (h.nbSnapshots === 0) return [];
    // Entries vary in size: read a growing prefix until every entry fits.
    let len = Math.min(64 * 1024, this.file.size - h.snapshotsOffset);
    for (;;) {
      const b = Buffer.alloc(len);
      await this.file.read(h.snapshotsOffset, b, "snapshot table");
      try {
        const list = parseSnapshotTable(b, h.nbSnapshots, this.path, this.clusterSize, h.version);
        for (const sn of list) {
          if (sn.l1Size > 0 && sn.l1TableOffset + sn.l1Size * 8 > this.file.size) {
            throw openError(this.path, `the L1 table of snapshot "${sn.name}" lies outside the file`);
          }
        }
        this.snapshotTableBytes = snapshotTableLength(b, h.nbSnapshots);
        return list;
      } catch (e) {
        const max = Math.min(64 * 1024 * 1024, this.file.size - h.snapshotsOffset);
        if (len >= max) throw e;
        len = Math.min(max, len * 4);
      }
    }
  }

  async writeHeader(): Promise<void> {
    const b = encodeHeaderFields(this.header, this.rawHeader);
    this.rawHeader = b;
    await this.file.write(0, b);
  }

  // ---- mapping ----

  get l1Size(): number {
    return this.header.l1Size;
  }

  l2OffsetFor(l1Index: number): number {
    if (l1Index >= this.header.l1Size) return 0;
    const off = entryOffset(this.l1, l1Index);
    if (off !== 0 && (off % this.clusterSize !== 0 || off >= this.file.size)) {
      throw corruptError(this.path, `L2 table ${l1Index} at offset ${off} is misaligned or outside the file`);
    }
    return off;
  }

  /** The L2 entry for `gc` if its table is cached (no await on the hot path), else null. */
  lookupCached(gc: number): L2Entry | null {
    const l2off = this.l2OffsetFor(Math.floor(gc / this.l2Entries));
    if (l2off === 0) return { kind: ClusterKind.Unallocated, offset: 0, copied: false, compressedLength: 0 };
    const table = this.l2Cache.peek(l2off);
    return table ? this.checkedEntry(table, gc % this.l2Entries) : null;
  }

  /** The L2 entry mapping guest cluster `gc`. */
  async lookup(gc: number): Promise<L2Entry> {
    const l2off = this.l2OffsetFor(Math.floor(gc / this.l2Entries));
    if (l2off === 0) return { kind: ClusterKind.Unallocated, offset: 0, copied: false, compressedLength: 0 };
    const table = await this.l2Cache.get(l2off);
    return this.checkedEntry(table, gc % this.l2Entries);
  }

  checkedEntry(table: Buffer, i: number): L2Entry {
    const e = decodeL2(table, i, this.header.clusterBits, this.header.version);
    if (e.kind === ClusterKind.Normal || (e.kind === ClusterKind.Zero && e.offset !== 0)) {
      if (e.offset % this.clusterSize !== 0 || e.offset >= this.file.size) {
        throw corruptError(this.path, `data cluster at offset ${e.offset} is misaligned or outside the file`);
      }
    } else if (e.kind === ClusterKind.Compressed && e.offset >= this.file.size) {
      throw corruptError(this.path, `compressed cluster at offset ${e.offset} lies outside the file`);
    }
    return e;
  }

  // ---- reads ----

  async read(offset: number, buf: Uint8Array): Promise<void> {
    checkRequestRange(this.path, this.size, offset, buf.length);
    if (this.closed) throw new BlockRequestError(`Disk "${this.path}" is closed`);
    const t0 = performance.now();
    if (!this.gate.tryEnter()) await this.gate.enter();
    try {
      const cs = this.clusterSize;
      const gc0 = Math.floor(offset / cs);
      const e0 = (offset % cs) + buf.length <= cs ? this.lookupCached(gc0) : null;
      if (e0 !== null && e0.kind === ClusterKind.Normal) {
        // One cached, allocated cluster (the common case): a single positioned read.
        await this.file.read(e0.offset + (offset % cs), buf);
      } else {
        await this.readMapped(offset, buf);
      }
    } finally {
      this.gate.leave();
    }
    this.counters.readRequests++;
    this.counters.bytesRead += buf.length;
    this.counters.totalLatencyMs += performance.now() - t0;
  }

  /** Reads through the mapping cluster by cluster, merging contiguous host runs. Caller is inside the gate. */
  private async readMapped(offset: number, buf: Uint8Array): Promise<void> {
    const io: Array<Promise<void>> = [];
    let pos = 0;
    // A run of contiguous host bytes collected for one positioned read.
    let runHost = -1;
    let runStart = 0;
    let runLen = 0;
    const endRun = (): void => {
      if (runLen > 0) io.push(this.file.read(runHost, buf.subarray(runStart, runStart + runLen)));
      runLen = 0;
    };
    while (pos < buf.length) {
      const g = offset + pos;
      const gc = Math.floor(g / this.clusterSize);
      const inCluster = g % this.clusterSize;
      const n = Math.min(buf.length - pos, this.clusterSize - inCluster);
      const e = this.lookupCached(gc) ?? (await this.lookup(gc));
      if (e.kind === ClusterKind.Normal) {
        const host = e.offset + inCluster;
        if (runLen > 0 && runHost + runLen === host) runLen += n;
        else {
          endRun();
          runHost = host;
          runStart = pos;
          runLen = n;
        }
      } else {
        endRun();
        const part = buf.subarray(pos, pos + n);
        if (e.kind === ClusterKind.Zero) part.fill(0);
        else if (e.kind === ClusterKind.Compressed) io.push(this.readCompressed(e).then((c) => part.set(c.subarray(inCluster, inCluster + n))));
        else io.push(this.readBacking(g, part));
      }
      pos += n;
    }
    endRun();
    await Promise.all(io);
  }

  /** Bytes of the backing chain at guest offset g (zero past its end or without one). */
  async readBacking(g: number, part: Uint8Array): Promise<void> {
    const b = this.backing;
    if (!b || g >= b.size) {
      part.fill(0);
      return;
    }
    const n = Math.min(part.length, b.size - g);
    await b.read(g, part.subarray(0, n));
    if (n < part.length) part.fill(0, n);
  }

  async readCompressed(e: L2Entry): Promise<Buffer> {
    if (this.lastInflated?.offset === e.offset) return this.lastInflated.data;
    const len = Math.min(e.compressedLength, this.file.size - e.offset);
    const input = Buffer.alloc(len);
    await this.file.read(e.offset, input, "compressed cluster");
    const data = inflateCluster(this.path, input, this.clusterSize, e.offset);
    this.lastInflated = { offset: e.offset, data };
    return data;
  }

  /** The current content of a whole guest cluster, for copy-on-write of a partial write. */
  protected async clusterContent(gc: number, e: L2Entry, out: Buffer): Promise<void> {
    switch (e.kind) {
      case ClusterKind.Normal:
        await this.file.read(e.offset, out);
        return;
      case ClusterKind.Compressed:
        (await this.readCompressed(e)).copy(out);
        return;
      case ClusterKind.Zero:
        out.fill(0);
        return;
      case ClusterKind.Unallocated: {
        const g = gc * this.clusterSize;
        const n = Math.min(this.clusterSize, Math.ceil((this.size - g) / 512) * 512);
        await this.readBacking(g, out.subarray(0, n));
        out.fill(0, n);
        return;
      }
      default: {
        const never: never = e.kind;
        throw new Error(`unknown cluster kind ${String(never)}`);
      }
    }
  }
}
