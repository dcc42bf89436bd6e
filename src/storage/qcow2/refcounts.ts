// Two-level refcounts (refcount table -> refcount blocks) and the cluster allocator on top of them.
// Every change is written through before the caller links the cluster anywhere, so a crash
// leaves at worst a leaked cluster (refcount higher than its references), never a shared one.

import { corruptError, Qcow2Error } from "./errors.js";
import type { ImageFile } from "./image_file.js";
import { entryOffset, setEntry } from "./entries.js";
import { entryByteRange, getRefcount, maxRefcount, setRefcount } from "./refcount_codec.js";
import { TableCache } from "./table_cache.js";

export interface RefcountOptions {
  file: ImageFile;
  clusterBits: number;
  order: number;
  tableOffset: number;
  tableClusters: number;
  /** Persists a moved refcount table in the header (one in-place write). */
  saveTableLocation: (offset: number, clusters: number) => Promise<void>;
  /** Told when a cluster's refcount reaches zero, so caches forget it. */
  onFreed: (offset: number) => void;
}

export class Refcounts {
  readonly clusterSize: number;
  readonly entriesPerBlock: number;
  readonly max: number;
  tableOffset: number;
  tableClusters: number;
  private table!: Buffer;
  private readonly blocks: TableCache;
  private readonly dirty = new Set<number>();
  private batching = false;
  /** Clusters at or above this index are neither used nor referenced. */
  end = 0;
  private freeHint = 0;
  /** Host offsets of every refcount block, for the overlap check on data writes. */
  private blockSet = new Set<number>();
  /** Clusters [poolNext, poolEnd) carry refcount 1, durably, and are not yet used by anything. */
  private poolNext = 0;
  private poolEnd = 0;
  /** Whether the pool's refcounts are known durable. */
  private poolDurable = true;
  private readonly reserveClusters: number;

  constructor(private readonly o: RefcountOptions) {
    this.clusterSize = 2 ** o.clusterBits;
    this.entriesPerBlock = (this.clusterSize * 8) >> o.order;
    this.max = maxRefcount(o.order);
    this.tableOffset = o.tableOffset;
    this.tableClusters = o.tableClusters;
    this.reserveClusters = Math.max(1, Math.min(64, Math.floor((2 << 20) / this.clusterSize)));
    this.blocks = new TableCache(
      256,
      async (off) => {
        const b = Buffer.alloc(this.clusterSize);
        await o.file.read(off, b, "refcount block");
        return b;
      },
      (off) => !this.dirty.has(off),
    );
  }

  get tableEntries(): number {
    return (this.tableClusters * this.clusterSize) / 8;
  }

  async load(): Promise<void> {
    this.table = Buffer.alloc(this.tableClusters * this.clusterSize);
    await this.o.file.read(this.tableOffset, this.table, "refcount table");
    this.end = Math.ceil(this.o.file.size / this.clusterSize);
    for (const [, off] of this.usedBlocks()) this.blockSet.add(off);
  }

  private blockOffset(tableIndex: number): number {
    if (tableIndex >= this.tableEntries) return 0;
    const off = entryOffset(this.table, tableIndex);
    if (off % this.clusterSize !== 0 || off + this.clusterSize > Math.max(this.o.file.size, this.end * this.clusterSize)) {
      throw corruptError(this.o.file.path, `refcount block ${tableIndex} at offset ${off} is misaligned or outside the file`);
    }
    return off;
  }

  async get(cluster: number): Promise<number> {
    const t = Math.floor(cluster / this.entriesPerBlock);
    const off = this.blockOffset(t);
    if (off === 0) return 0;
    const block = await this.blocks.get(off);
    return getRefcount(block, cluster % this.entriesPerBlock, this.o.order);
  }

  async getAt(offset: number): Promise<number> {
    return this.get(Math.floor(offset / this.clusterSize));
  }

  /** Adds delta to a cluster's refcount and returns the new value. */
  async change(cluster: number, delta: number): Promise<number> {
    const t = Math.floor(cluster / this.entriesPerBlock);
    let off = this.blockOffset(t);
    if (off === 0) {
      if (delta < 0) throw corruptError(this.o.file.path, `cluster ${cluster} is freed but has no refcount`);
      off = await this.createBlock(t, cluster, cluster + 1);
    }
    const block = await this.blocks.get(off);
    const i = cluster % this.entriesPerBlock;
    const v = getRefcount(block, i, this.o.order) + delta;
    if (v < 0) throw corruptError(this.o.file.path, `refcount of cluster ${cluster} would drop below zero`);
    if (v > this.max) throw new Qcow2Error(`Disk "${this.o.file.path}": refcount of cluster ${cluster} would exceed ${this.max}`);
    setRefcount(block, i, this.o.order, v);
    await this.persist(off, block, i, i);
    if (v === 0) {
      if (cluster < this.freeHint) this.freeHint = cluster;
      this.o.onFreed(cluster * this.clusterSize);
    }
    return v;
  }

  async changeAt(offset: number, delta: number): Promise<number> {
    return this.change(Math.floor(offset / this.clusterSize), delta);
  }

  /** Collects refcount changes in memory until endBatch() writes each touched block once. */
  beginBatch(): void {
    this.batching = true;
  }

  async endBatch(): Promise<void> {
    this.batching = false;
    for (const off of [...this.dirty]) {
      const block = this.blocks.peek(off);
      if (block) await this.o.file.write(off, block);
      this.dirty.delete(off);
    }
  }

  private async persist(off: number, block: Buffer, first: number, last: number): Promise<void> {
    if (this.batching) {
      this.dirty.add(off);
      return;
    }
    const [from, to] = entryByteRange(first, last, this.o.order);
    await this.o.file.write(off + from, block.subarray(from, to));
  }

  /** Allocates n contiguous clusters with refcount 1 and returns the host offset of the first.
   * With durable (the default) the refcounts are made durable (fdatasync) before any cluster is handed out,
   * so no table can point at a cluster whose refcount a power cut lost. Clusters are reserved a few at a
   * time for that. durable=false is for guest data clusters: their L2 entries reach the file only after
   * the next sync (Qcow2Image.settle), which makes these refcount writes durable first. */
  async alloc(n: number, durable = true): Promise<number> {
    if (this.poolEnd - this.poolNext >= n) {
      if (durable && !this.poolDurable) {
        await this.o.file.sync();
        this.poolDurable = true;
      }
      const s = this.poolNext;
      this.poolNext += n;
      return s * this.clusterSize;
    }
    await this.releasePool();
    const s = await this.findFree(n);
    // Extend the run over the free clusters that follow it, up to the reservation size.
    let e = s + n;
    const want = s + Math.max(n, this.reserveClusters);
    while (e < want && (await this.get(e)) === 0) e++;
    await this.claim(s, e);
    if (durable) await this.o.file.sync();
    this.poolDurable = durable;
    this.poolNext = s + n;
    this.poolEnd = e;
    return s * this.clusterSize;
  }

  /** Gives back reserved clusters nothing uses yet (before checks, snapshots and close). */
  async releasePool(): Promise<void> {
    if (this.poolNext >= this.poolEnd) return;
    const [from, to] = [this.poolNext, this.poolEnd];
    this.poolNext = this.poolEnd = 0;
    const wasBatching = this.batching;
    this.batching = true;
    try {
      for (let c = from; c < to; c++) await this.change(c, -1);
    } finally {
      this.batching = wasBatching;
      if (!wasBatching) await this.endBatch();
    }
  }

  /** Sets refcount 1 on the free clusters [s, e), creating refcount blocks (and a bigger table) as needed. */
  private async claim(s: number, e: number): Promise<void> {
    const lastT = Math.floor((e - 1) / this.entriesPerBlock);
    if (lastT >= this.tableEntries) await this.growTable(lastT, s, e);
    for (let t = Math.floor(s / this.entriesPerBlock); t <= lastT; t++) {
      if (this.blockOffset(t) === 0) await this.createBlock(t, s, e);
    }
    // Set refcounts one block at a time, each with a single write.
    let c = s;
    while (c < e) {
      const t = Math.floor(c / this.entriesPerBlock);
      const off = this.blockOffset(t);
      const block = await this.blocks.get(off);
      const first = c % this.entriesPerBlock;
      const last = Math.min(this.entriesPerBlock - 1, first + (e - c) - 1);
      for (let i = first; i <= last; i++) {
        if (getRefcount(block, i, this.o.order) !== 0) throw corruptError(this.o.file.path, `free-space search returned used cluster ${c}`);
        setRefcount(block, i, this.o.order, 1);
      }
      await this.persist(off, block, first, last);
      c += last - first + 1;
    }
    if (e > this.end) this.end = e;
    if (s === this.freeHint) this.freeHint = e;
  }

  /** First run of n clusters with refcount 0 at or after the free hint. Clusters past the file's end may still
   * carry a refcount (a crash between allocation and the data write), so the search runs to the table's coverage. */
  private async findFree(n: number): Promise<number> {
    let runStart = -1;
    let runLen = 0;
    let c = Math.max(this.freeHint, 1);
    let firstFree = -1;
    const covered = this.tableEntries * this.entriesPerBlock;
    while (c < covered) {
      const t = Math.floor(c / this.entriesPerBlock);
      const blockEnd = (t + 1) * this.entriesPerBlock;
      const off = this.blockOffset(t);
      if (off === 0) {
        // No block: the whole range is free.
        if (firstFree < 0) firstFree = c;
        if (runLen === 0) runStart = c;
        const take = Math.min(n - runLen, blockEnd - c);
        runLen += take;
        c += take;
        if (runLen === n) break;
        continue;
      }
      const block = await this.blocks.get(off);
      for (; c < blockEnd; c++) {
        if (getRefcount(block, c % this.entriesPerBlock, this.o.order) === 0) {
          if (firstFree < 0) firstFree = c;
          if (runLen === 0) runStart = c;
          if (++runLen === n) break;
        } else {
          runLen = 0;
        }
      }
      if (runLen === n) break;
    }
    this.freeHint = firstFree < 0 ? covered : firstFree;
    return runLen > 0 ? runStart : Math.max(c, 1);
  }

  /** A refcount block for table slot t, stored inside the range it describes (so it counts itself), avoiding clusters [s, e). */
  private async createBlock(t: number, s: number, e: number): Promise<number> {
    const first = t * this.entriesPerBlock;
    let b = first;
    if (b >= s && b < e) b = e;
    if (b >= first + this.entriesPerBlock) {
      throw new Qcow2Error(`Disk "${this.o.file.path}": cannot place a refcount block for an allocation of ${e - s} clusters`);
    }
    const block = Buffer.alloc(this.clusterSize);
    setRefcount(block, b - first, this.o.order, 1);
    const off = b * this.clusterSize;
    await this.o.file.write(off, block);
    await this.o.file.sync(); // the block's content before the table entry that trusts it
    this.blocks.put(off, block);
    setEntry(this.table, t, 0, off);
    this.blockSet.add(off);
    await this.o.file.write(this.tableOffset + t * 8, this.table.subarray(t * 8, t * 8 + 8));
    if (b + 1 > this.end) this.end = b + 1;
    return off;
  }

  /** Moves the refcount table to a bigger one past every used cluster, with fresh blocks that count the new table and themselves. */
  private async growTable(neededIndex: number, s: number, e: number): Promise<void> {
    const oldEntries = this.tableEntries;
    const cs = this.clusterSize;
    const start = Math.max(this.end, e, oldEntries * this.entriesPerBlock);
    let newEntries = Math.max(neededIndex + 1, Math.ceil(oldEntries * 1.5));
    let m = 0;
    let k = 0;
    for (;;) {
      m = Math.ceil((newEntries * 8) / cs);
      const lastT = Math.max(neededIndex, Math.floor((start + m + k - 1) / this.entriesPerBlock));
      const needK = lastT - oldEntries + 1;
      if (lastT + 1 > newEntries) {
        newEntries = lastT + 1;
        continue;
      }
      if (needK === k) break;
      k = needK;
    }
    if (m * cs > 8 * 1024 * 1024) throw new Qcow2Error(`Disk "${this.o.file.path}": refcount table would exceed 8 MiB`);
    const table = Buffer.alloc(m * cs);
    this.table.copy(table, 0, 0, Math.min(this.table.length, table.length));
    const newBlocks: Buffer[] = [];
    for (let j = 0; j < k; j++) newBlocks.push(Buffer.alloc(cs));
    const blockAt = (j: number): number => start + m + j;
    // Count the new table and the new blocks in the new blocks.
    const counted = (c: number): void => {
      const j = Math.floor(c / this.entriesPerBlock) - oldEntries;
      setRefcount(newBlocks[j], c % this.entriesPerBlock, this.o.order, 1);
    };
    for (let c = start; c < start + m + k; c++) counted(c);
    for (let j = 0; j < k; j++) {
      await this.o.file.write(blockAt(j) * cs, newBlocks[j]);
      setEntry(table, oldEntries + j, 0, blockAt(j) * cs);
    }
    await this.o.file.write(start * cs, table);
    await this.o.file.sync(); // the new structures before the header that points at them
    const oldOffset = this.tableOffset;
    const oldClusters = this.tableClusters;
    await this.o.saveTableLocation(start * cs, m);
    await this.o.file.sync(); // the header switch before the old table's clusters become free
    this.table = table;
    this.tableOffset = start * cs;
    this.tableClusters = m;
    for (let j = 0; j < k; j++) {
      this.blocks.put(blockAt(j) * cs, newBlocks[j]);
      this.blockSet.add(blockAt(j) * cs);
    }
    this.end = Math.max(this.end, start + m + k);
    for (let c = 0; c < oldClusters; c++) await this.changeAt(oldOffset + c * cs, -1);
  }

  isBlock(offset: number): boolean {
    return this.blockSet.has(offset);
  }

  /** Table slots in use: [table index, block offset]. */
  usedBlocks(): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    for (let t = 0; t < this.tableEntries; t++) {
      const off = entryOffset(this.table, t);
      if (off !== 0) out.push([t, off]);
    }
    return out;
  }
}
