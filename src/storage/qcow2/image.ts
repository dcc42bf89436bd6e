// A qcow2 image as a BlockBackend: guest reads and writes through L1/L2 mapping, cluster
// allocation with refcounts, copy-on-write from snapshots and backing files.
//
// Concurrency: data I/O to clusters the active image owns (COPIED) runs in parallel; every
// metadata change runs under one mutex. Before a cluster is freed the I/O gate drains, so no
// request still in flight can write into a cluster that is being reused.
// Crash order (kill -9 and power loss): refcounts durable before a cluster is used; data durable
// before the L2 entries that point at it are written (they wait in memory until a flush); a new
// L2 table durable before its L1 entry; frees only after the tables that dropped the clusters.

import { open as openFile } from "node:fs/promises";
import { performance } from "node:perf_hooks";
import { BlockRequestError, type BlockBackend, type BlockStats } from "../block_backend.js";
import { checkRequestRange } from "../raw.js";
import {
  ClusterKind,
  ENTRY_COPIED_HI,
  ENTRY_ZERO_LO,
  compressedClusters,
  decodeL2,
  entryCopied,
  setEntry,
  type L2Entry,
} from "./entries.js";
import { corruptError, openError, Qcow2Error } from "./errors.js";
import { INCOMPAT_CORRUPT, INCOMPAT_DIRTY, parseHeader, type Qcow2Header } from "./header.js";
import { ImageFile } from "./image_file.js";
import { Qcow2Reader, type Qcow2OpenOptions } from "./image_reader.js";
import { growL1Table, resizeImage } from "./resize.js";

export { MAX_BACKING_DEPTH, type BackingOpener, type Qcow2OpenOptions } from "./image_reader.js";

const QUEUE_DEPTH = 16;
// Freed clusters wait for the next flush; past this many bytes, a sync frees them early so space is reused.
const PENDING_FREE_BYTES = 16 * 1024 * 1024;
// L2 entry updates wait in memory for the next flush (after the data they point at is durable), up to:
const DIRTY_L2_ENTRIES = 4096;
const DIRTY_L2_TABLES = 64;
const L2_CACHE_BYTES = 32 * 1024 * 1024;

/** An allocating write in flight: fresh host clusters for guest clusters [firstGc, firstGc + count). */
interface AllocRun {
  firstGc: number;
  count: number;
  host: number;
  l1Index: number;
  l2off: number;
  /** The write covers only its own bytes (the rest reads as zero), so other writes may go into the clusters meanwhile. */
  shareable: boolean;
  state: "writing" | "written" | "failed";
  /** Host clusters the old entries held, freed once the new entries are set. */
  frees: number[];
  /** True once the L2 entries point at the clusters; false if the allocation was abandoned. */
  linked: Promise<boolean>;
  resolve: (ok: boolean) => void;
}

interface Allocation {
  /** The data writes; resolves to their error, or null. */
  io: Promise<unknown>;
  runs: AllocRun[];
}

interface Wait {
  wait: Promise<unknown>;
}

/** A qcow2 image as a BlockBackend: the read side (image_reader.ts) plus allocating writes, discard, flush and resize. */
export class Qcow2Image extends Qcow2Reader implements BlockBackend {
  readonly queueDepth = QUEUE_DEPTH;
  readonly supportsDiscard = true;
  private pendingFrees: number[] = [];
  private dirtyL2 = new Map<number, { first: number; last: number }>();
  private dirtyEntries = 0;
  /** The L2 table the metadata-mutex holder is modifying (never evicted meanwhile). */
  private pinnedL2 = -1;
  /** Allocating writes in flight, by guest cluster: host clusters chosen, data being written, L2 entries not yet set. */
  private pending = new Map<number, AllocRun>();
  private unlinked = new Set<AllocRun>();
  /** L2 tables that unlinked allocations will modify (kept in the cache), with how many. */
  private linkTables = new Map<number, number>();

  private constructor(path: string, file: ImageFile, header: Qcow2Header, rawHeader: Buffer, readOnly: boolean, l2CacheBytes: number) {
    super(path, file, header, rawHeader, readOnly, l2CacheBytes);
  }

  // A table being modified must stay the one instance everyone sees.
  protected override mayEvictL2(off: number): boolean {
    return off !== this.pinnedL2 && !this.dirtyL2.has(off) && !this.linkTables.has(off);
  }

  static async open(path: string, opts: Qcow2OpenOptions = {}): Promise<Qcow2Image> {
    const readOnly = opts.readOnly ?? false;
    let fh;
    try {
      fh = await openFile(path, readOnly ? "r" : "r+");
    } catch (e) {
      throw openError(path, (e as Error).message);
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw openError(path, "it is not a regular file");
      const file = new ImageFile(fh, path, st.size);
      const first = Buffer.alloc(Math.min(st.size, 2 * 1024 * 1024));
      if (first.length > 0) await file.read(0, first, "header");
      const header = parseHeader(first, path, st.size);
      if (!readOnly && header.incompatible & BigInt(INCOMPAT_CORRUPT)) {
        throw openError(path, 'the image is marked corrupt; open it read-only or run "nodevisor disk check --repair" on it');
      }
      const img = new Qcow2Image(path, file, header, first.subarray(0, header.version === 3 ? header.headerLength : 72), readOnly, opts.l2CacheBytes ?? L2_CACHE_BYTES);
      await img.load(opts);
      return img;
    } catch (e) {
      await fh.close().catch(() => {});
      throw e;
    }
  }

  protected async prepareForWriting(): Promise<void> {
    const h = this.header;
    let rewrite = false;
    if (h.autoclear !== 0n) {
      // Bits we do not understand must be cleared once we modify the image (spec).
      h.autoclear = 0n;
      rewrite = true;
    }
    if (h.incompatible & BigInt(INCOMPAT_DIRTY)) {
      const { checkImage } = await import("./check.js");
      await checkImage(this, { repair: true });
      h.incompatible &= ~BigInt(INCOMPAT_DIRTY);
      rewrite = true;
    }
    if (rewrite) {
      await this.writeHeader();
      await this.file.sync();
    }
    // Refuse to allocate over metadata that the refcounts do not protect.
    const must: Array<[number, string]> = [[0, "header"]];
    for (let o = 0; o < h.l1Size * 8; o += this.clusterSize) must.push([h.l1TableOffset + o, "L1 table"]);
    for (let c = 0; c < this.refcounts.tableClusters; c++) must.push([this.refcounts.tableOffset + c * this.clusterSize, "refcount table"]);
    for (const [off, what] of must) {
      if ((await this.refcounts.getAt(off)) === 0) {
        throw openError(this.path, `the ${what} cluster at offset ${off} has refcount 0; run "nodevisor disk check --repair" on it`);
      }
    }
  }

  // ---- writes ----

  /** True when a host cluster holds metadata that data must never overwrite (QEMU's overlap check, cheap part). */
  private isMetadata(off: number): boolean {
    const h = this.header;
    const cs = this.clusterSize;
    const inside = (start: number, bytes: number): boolean => off >= start && off < start + Math.ceil(bytes / cs) * cs;
    return (
      off < cs ||
      inside(h.l1TableOffset, h.l1Size * 8) ||
      inside(this.refcounts.tableOffset, this.refcounts.tableClusters * cs) ||
      (h.nbSnapshots > 0 && inside(h.snapshotsOffset, this.snapshotTableBytes)) ||
      this.refcounts.isBlock(off) ||
      this.l2Cache.peek(off) !== undefined ||
      this.snapshots.some((s) => inside(s.l1TableOffset, s.l1Size * 8))
    );
  }

  /** Allocates clusters for guest data or an L2 table; refcounts that call metadata free are corruption. */
  private async allocChecked(n: number, durable = true): Promise<number> {
    const off = await this.refcounts.alloc(n, durable);
    for (let j = 0; j < n; j++) if (this.isMetadata(off + j * this.clusterSize)) await this.refuseCorruptWrite(off + j * this.clusterSize);
    return off;
  }

  /** Marks the image corrupt (incompatible bit 1) so no one writes to it again before a repair. */
  private async refuseCorruptWrite(off: number): Promise<never> {
    this.corrupted = true;
    this.header.incompatible |= BigInt(INCOMPAT_CORRUPT);
    await this.writeHeader().catch(() => {});
    throw corruptError(this.path, `a data write would overwrite metadata at offset ${off}`);
  }

  private corrupted = false;

  private assertWritable(): void {
    if (this.readOnly) throw new BlockRequestError(`Disk "${this.path}" is read-only`);
    if (this.header.backingFile !== null && this.backing === null) {
      // Copy-on-write would read zeroes where the backing file has data.
      throw new BlockRequestError(`Disk "${this.path}" was opened without its backing file; guest writes are refused`);
    }
    if (this.corrupted) throw new BlockRequestError(`Disk "${this.path}" was found corrupt; it takes no more writes`);
    if (this.closed) throw new BlockRequestError(`Disk "${this.path}" is closed`);
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    checkRequestRange(this.path, this.size, offset, data.length);
    this.assertWritable();
    const t0 = performance.now();
    const span = this.clusterSize * this.l2Entries;
    let pos = 0;
    while (pos < data.length) {
      const g = offset + pos;
      const n = Math.min(data.length - pos, span - (g % span));
      const chunk = data.subarray(pos, pos + n);
      for (;;) {
        const r = await this.writeInPlace(g, chunk);
        if (r === true) break;
        if (r !== false) {
          // Another request is allocating these clusters: wait until it has, then write in place.
          await r.wait;
          continue;
        }
        const a = await this.meta.run(() => this.writeAllocating(g, chunk));
        if (a === null) continue; // allocated meanwhile: write in place
        if ("wait" in a) {
          await a.wait;
          continue;
        }
        if (await this.finishAllocating(a)) break;
      }
      pos += n;
    }
    this.counters.writeRequests++;
    this.counters.bytesWritten += data.length;
    this.counters.totalLatencyMs += performance.now() - t0;
  }

  /** Fast path: every cluster is already ours (COPIED), or is being allocated by a request that writes only
   * its own bytes into it, so data goes straight to its place. In the second case the request completes only
   * once the allocating request has set the L2 entries (a read after it must see the data). */
  private async writeInPlace(g: number, data: Uint8Array): Promise<boolean | Wait> {
    if (!this.gate.tryEnter()) await this.gate.enter();
    const cs = this.clusterSize;
    let shared: AllocRun[] | null = null;
    try {
      const firstGc = Math.floor(g / cs);
      if ((g % cs) + data.length <= cs) {
        // One cluster (the common case): no run bookkeeping.
        const e = this.lookupCached(firstGc) ?? (await this.lookup(firstGc));
        let base: number;
        if (e.kind === ClusterKind.Normal && e.copied) {
          if (this.isMetadata(e.offset)) await this.refuseCorruptWrite(e.offset);
          base = e.offset;
        } else {
          const p = this.pending.get(firstGc);
          if (!p) return false;
          if (!p.shareable) return { wait: p.linked };
          base = p.host + (firstGc - p.firstGc) * cs;
          shared = [p];
        }
        await this.file.write(base + (g % cs), data);
      } else {
        const hosts: number[] = [];
        for (let pos = 0; pos < data.length; ) {
          const gc = Math.floor((g + pos) / cs);
          const e = this.lookupCached(gc) ?? (await this.lookup(gc));
          const inCluster = (g + pos) % cs;
          if (e.kind === ClusterKind.Normal && e.copied) {
            if (this.isMetadata(e.offset)) await this.refuseCorruptWrite(e.offset);
            hosts.push(e.offset + inCluster);
          } else {
            const p = this.pending.get(gc);
            if (!p) return false;
            if (!p.shareable) return { wait: p.linked };
            hosts.push(p.host + (gc - p.firstGc) * cs + inCluster);
            if (!shared) shared = [p];
            else if (!shared.includes(p)) shared.push(p);
          }
          pos += cs - inCluster;
        }
        const io: Array<Promise<void>> = [];
        let pos = 0;
        let runHost = hosts[0];
        let runStart = 0;
        for (let i = 0; i < hosts.length; i++) {
          const n = Math.min(data.length - pos, cs - ((g + pos) % cs));
          if (hosts[i] !== runHost + (pos - runStart)) {
            io.push(this.file.write(runHost, data.subarray(runStart, pos)));
            runHost = hosts[i];
            runStart = pos;
          }
          pos += n;
        }
        io.push(this.file.write(runHost, data.subarray(runStart, pos)));
        await Promise.all(io);
      }
    } finally {
      this.gate.leave();
    }
    // Outside the gate: linking may need a gate drain (exclusive()).
    if (shared) for (const p of shared) if (!(await p.linked)) return false;
    return true;
  }

  /** Slow path, under the metadata mutex, for a range inside one L2 table: allocates host clusters and starts
   * the data writes (the caller awaits them outside the mutex, see finishAllocating). null if nothing needs
   * allocating any more; a wait if another request is allocating some of these clusters. */
  private async writeAllocating(g: number, data: Uint8Array): Promise<null | Wait | Allocation> {
    const cs = this.clusterSize;
    const firstGc = Math.floor(g / cs);
    const lastGc = Math.floor((g + data.length - 1) / cs);
    this.linkPending();
    let needed = false;
    for (let c = firstGc; c <= lastGc; c++) {
      const p = this.pending.get(c);
      if (p) return { wait: p.linked };
      if (!needed) {
        const e = await this.lookup(c);
        needed = e.kind !== ClusterKind.Normal || !e.copied;
      }
    }
    if (!needed) return null;
    const l1Index = Math.floor(g / (cs * this.l2Entries));
    const { table, l2off } = await this.writableL2(l1Index);
    const writes: Array<{ host: number; data: Uint8Array }> = [];
    const runs: AllocRun[] = [];
    let gc = firstGc;
    while (gc <= lastGc) {
      const e = this.checkedEntry(table, gc % this.l2Entries);
      if (e.kind === ClusterKind.Normal && e.copied) {
        if (this.isMetadata(e.offset)) await this.refuseCorruptWrite(e.offset);
        const from = Math.max(g, gc * cs);
        const to = Math.min(g + data.length, (gc + 1) * cs);
        writes.push({ host: e.offset + (from - gc * cs), data: data.subarray(from - g, to - g) });
        gc++;
        continue;
      }
      // A run of clusters that all need a fresh host cluster, allocated together.
      const olds: L2Entry[] = [e];
      while (gc + olds.length <= lastGc) {
        const next = this.checkedEntry(table, (gc + olds.length) % this.l2Entries);
        if (next.kind === ClusterKind.Normal && next.copied) break;
        olds.push(next);
      }
      const count = olds.length;
      const fileEnd = this.file.size;
      // The clusters' L2 entries reach the file only after a sync (settle), which makes their refcounts durable first.
      const host = await this.allocChecked(count, false);
      const runStart = gc * cs;
      const from = Math.max(g, runStart);
      const to = Math.min(g + data.length, runStart + count * cs);
      // Space past the old end of file reads as zero, so zero padding need not be written there.
      let zeroBase = host >= fileEnd;
      for (let j = 0; j < count && zeroBase; j++) {
        const cStart = (gc + j) * cs;
        const partial = Math.min(to, cStart + cs) - Math.max(from, cStart) < cs;
        if (partial && !this.readsAsZero(gc + j, olds[j])) zeroBase = false;
      }
      if (zeroBase) {
        writes.push({ host: host + (from - runStart), data: data.subarray(from - g, to - g) });
      } else {
        const buf = Buffer.alloc(count * cs);
        for (let j = 0; j < count; j++) {
          const cStart = (gc + j) * cs;
          const f = Math.max(g, cStart);
          const t = Math.min(g + data.length, cStart + cs);
          const part = buf.subarray(j * cs, (j + 1) * cs);
          if (t - f < cs && !this.readsAsZero(gc + j, olds[j])) await this.clusterContent(gc + j, olds[j], part);
          part.set(data.subarray(f - g, t - g), f - cStart);
        }
        writes.push({ host, data: buf });
      }
      const frees: number[] = [];
      for (const old of olds) {
        if (old.kind === ClusterKind.Normal || (old.kind === ClusterKind.Zero && old.offset !== 0)) frees.push(old.offset);
        else if (old.kind === ClusterKind.Compressed) frees.push(...compressedClusters(old, cs));
      }
      let resolve!: (ok: boolean) => void;
      const linked = new Promise<boolean>((r) => (resolve = r));
      runs.push({ firstGc: gc, count, host, l1Index, l2off, shareable: zeroBase, state: "writing", frees, linked, resolve });
      gc += count;
    }
    // Nothing awaited from here on: the runs are registered and their writes started together.
    if (!this.gate.tryEnter()) throw new Error("internal error: I/O gate closed under the metadata mutex");
    for (const r of runs) {
      for (let j = 0; j < r.count; j++) this.pending.set(r.firstGc + j, r);
      this.unlinked.add(r);
      this.linkTables.set(r.l2off, (this.linkTables.get(r.l2off) ?? 0) + 1);
    }
    const io = Promise.all(writes.map((w) => this.file.write(w.host, w.data))).then(
      () => null,
      (e: unknown) => e,
    );
    return { io, runs };
  }

  /** Waits for an allocating write's data (inside the I/O gate), then sets its L2 entries under the mutex:
   * data before the entries that point at it. False if the entries could not be set (write again). */
  private async finishAllocating(a: Allocation): Promise<boolean> {
    const error = await a.io;
    for (const r of a.runs) r.state = error === null ? "written" : "failed";
    this.gate.leave();
    await this.meta.run(async () => {
      this.linkPending();
      await this.settleIfOver();
    });
    if (error !== null) throw error;
    for (const r of a.runs) if (!(await r.linked)) return false;
    return true;
  }

  /** Sets the L2 entries of every allocation whose data write has finished (in memory; settle writes them).
   * Caller holds the metadata mutex. Failed allocations leak their clusters (check --repair reclaims them). */
  private linkPending(): void {
    if (this.unlinked.size === 0) return;
    for (const r of this.unlinked) {
      if (r.state === "writing") continue;
      this.unlinked.delete(r);
      const n = (this.linkTables.get(r.l2off) ?? 1) - 1;
      if (n === 0) this.linkTables.delete(r.l2off);
      else this.linkTables.set(r.l2off, n);
      for (let j = 0; j < r.count; j++) this.pending.delete(r.firstGc + j);
      const table = this.l2Cache.peek(r.l2off);
      if (r.state === "failed" || !table || this.l2OffsetFor(r.l1Index) !== r.l2off || !entryCopied(this.l1, r.l1Index)) {
        r.resolve(false);
        continue;
      }
      const i0 = r.firstGc % this.l2Entries;
      for (let j = 0; j < r.count; j++) setEntry(table, i0 + j, ENTRY_COPIED_HI, r.host + j * this.clusterSize);
      this.noteL2Dirty(r.l2off, i0, i0 + r.count - 1);
      for (const off of r.frees) this.pendingFrees.push(off);
      r.resolve(true);
    }
  }

  /** Settles when too many L2 updates or frees wait in memory. Caller holds the mutex and is outside the gate. */
  private async settleIfOver(): Promise<void> {
    if (
      this.dirtyEntries >= DIRTY_L2_ENTRIES ||
      this.dirtyL2.size >= DIRTY_L2_TABLES ||
      this.pendingFrees.length * this.clusterSize >= PENDING_FREE_BYTES
    ) {
      await this.settle(true);
    }
  }

  /** A pending allocation among guest clusters [first, last), to wait for before changing their entries. */
  private pendingIn(first: number, last: number): Promise<boolean> | null {
    if (this.pending.size === 0) return null;
    this.linkPending();
    for (const [gc, r] of this.pending) if (gc >= first && gc < last) return r.linked;
    return null;
  }

  /** Whether a guest cluster's current content is all zero without reading anything. */
  private readsAsZero(gc: number, e: L2Entry): boolean {
    if (e.kind === ClusterKind.Zero) return true;
    return e.kind === ClusterKind.Unallocated && (this.backing === null || gc * this.clusterSize >= this.backing.size);
  }

  /** Queues one reference drop per host cluster. Drops happen only after the table updates that
   * stopped using the clusters are durable, so a power cut can leak a cluster but never leave a
   * table pointing at a free one. Caller holds the metadata mutex. */
  async freeClusters(offsets: number[]): Promise<void> {
    this.pendingFrees.push(...offsets);
    if (this.pendingFrees.length * this.clusterSize >= PENDING_FREE_BYTES) await this.settle(true);
  }

  /** L2 entries changed in memory only (the table stays cached and pinned until written back). */
  private async markL2Dirty(l2off: number, first: number, last: number): Promise<void> {
    this.noteL2Dirty(l2off, first, last);
    if (this.dirtyEntries >= DIRTY_L2_ENTRIES || this.dirtyL2.size >= DIRTY_L2_TABLES) await this.settle(true);
  }

  private noteL2Dirty(l2off: number, first: number, last: number): void {
    const d = this.dirtyL2.get(l2off);
    if (d) {
      d.first = Math.min(d.first, first);
      d.last = Math.max(d.last, last);
    } else {
      this.dirtyL2.set(l2off, { first, last });
    }
    this.dirtyEntries += last - first + 1;
  }

  /** Makes memory and file agree, in crash-safe order: data durable, then the L2 entries that point at it,
   * durable, then the queued frees. Caller holds the metadata mutex. */
  private async settle(drainGate: boolean): Promise<void> {
    this.linkPending();
    if (this.dirtyL2.size === 0 && this.pendingFrees.length === 0) return;
    const frees = this.pendingFrees;
    this.pendingFrees = [];
    await this.file.sync();
    if (this.dirtyL2.size > 0) {
      for (const [off, { first, last }] of this.dirtyL2) {
        const table = this.l2Cache.peek(off);
        if (!table) throw new Error(`internal error: dirty L2 table at ${off} left the cache`);
        await this.file.write(off + first * 8, table.subarray(first * 8, (last + 1) * 8));
      }
      this.dirtyL2.clear();
      this.dirtyEntries = 0;
      await this.file.sync();
    }
    if (frees.length === 0) return;
    const reopen = drainGate ? await this.gate.drain() : () => {};
    this.refcounts.beginBatch();
    try {
      for (const off of frees) await this.refcounts.changeAt(off, -1);
    } finally {
      await this.refcounts.endBatch();
      reopen();
    }
  }

  /** The L2 table for l1Index, allocated or copied (if shared with a snapshot) so the active image owns it. */
  async writableL2(l1Index: number): Promise<{ table: Buffer; l2off: number }> {
    const old = this.l2OffsetFor(l1Index);
    if (old !== 0 && entryCopied(this.l1, l1Index)) {
      this.pinnedL2 = old;
      return { table: await this.l2Cache.get(old), l2off: old };
    }
    // Not synced here: the sync below, before the L1 entry, covers the refcount too.
    const l2off = await this.allocChecked(1, false);
    const table = Buffer.alloc(this.clusterSize);
    if (old !== 0) {
      (await this.l2Cache.get(old)).copy(table);
      // The copy owns an entry's cluster alone only if nothing else counts it.
      for (let i = 0; i < this.l2Entries; i++) {
        const e = decodeL2(table, i, this.header.clusterBits, this.header.version);
        if (e.offset === 0 || e.kind === ClusterKind.Compressed) continue;
        const lo = table.readUInt32BE(i * 8 + 4) & ENTRY_ZERO_LO;
        const copied = (await this.refcounts.getAt(e.offset)) === 1;
        setEntry(table, i, copied ? ENTRY_COPIED_HI : 0, e.offset, lo);
      }
    }
    await this.file.write(l2off, table);
    await this.file.sync(); // the table's content before the L1 entry that points at it
    this.pinnedL2 = l2off;
    this.l2Cache.put(l2off, table);
    await this.setL1(l1Index, l2off, true);
    if (old !== 0) await this.freeClusters([old]);
    return { table, l2off };
  }

  async setL1(l1Index: number, l2off: number, copied: boolean): Promise<void> {
    setEntry(this.l1, l1Index, copied ? ENTRY_COPIED_HI : 0, l2off);
    await this.file.write(this.header.l1TableOffset + l1Index * 8, this.l1.subarray(l1Index * 8, l1Index * 8 + 8));
  }

  // ---- discard and write-zeroes ----

  async discard(offset: number, length: number): Promise<void> {
    checkRequestRange(this.path, this.size, offset, length);
    this.assertWritable();
    const t0 = performance.now();
    await this.unmapRange(offset, length);
    this.counters.discardRequests++;
    this.counters.totalLatencyMs += performance.now() - t0;
  }

  async writeZeroes(offset: number, length: number, _mayUnmap: boolean): Promise<void> {
    checkRequestRange(this.path, this.size, offset, length);
    this.assertWritable();
    const t0 = performance.now();
    const cs = this.clusterSize;
    // Partial clusters at either end are written as zeroes; whole ones become zero clusters.
    const head = Math.min(length, (cs - (offset % cs)) % cs);
    if (head > 0) await this.write(offset, new Uint8Array(head));
    const whole = Math.floor((length - head) / cs) * cs;
    const tail = length - head - whole;
    if (whole > 0) {
      if (this.header.version >= 3 || !this.backing) await this.unmapRange(offset + head, whole);
      else for (let p = 0; p < whole; p += cs) await this.write(offset + head + p, new Uint8Array(cs));
    }
    if (tail > 0) await this.write(offset + length - tail, new Uint8Array(tail));
    this.counters.writeRequests++;
    this.counters.totalLatencyMs += performance.now() - t0;
  }

  /** Unmaps whole clusters in range; with a backing file (v3) they become zero clusters, so the backing data stays hidden. */
  private async unmapRange(offset: number, length: number): Promise<void> {
    const cs = this.clusterSize;
    const first = Math.ceil(offset / cs);
    const end = Math.floor((offset + length) / cs);
    // The partial last cluster of a disk whose size is not a cluster multiple still counts as whole.
    const last = offset + length === this.size ? Math.ceil(this.size / cs) : end;
    for (;;) {
      const wait = await this.meta.run(async () => {
        const w = this.pendingIn(first, last);
        if (w) return { w };
        await this.unmapLocked(first, last);
        return null;
      });
      if (!wait) return;
      await wait.w;
    }
  }

  private async unmapLocked(first: number, last: number): Promise<void> {
    const cs = this.clusterSize;
    let gc = first;
    while (gc < last) {
      const l1i = Math.floor(gc / this.l2Entries);
      const stop = Math.min(last, (l1i + 1) * this.l2Entries);
      const zeroFlag = this.header.version >= 3 && this.backing !== null;
      if (this.l2OffsetFor(l1i) === 0 && !zeroFlag) {
        gc = stop;
        continue;
      }
      const { table, l2off } = await this.writableL2(l1i);
      const toFree: number[] = [];
      const i0 = gc % this.l2Entries;
      for (let c = gc; c < stop; c++) {
        const i = c % this.l2Entries;
        const e = this.checkedEntry(table, i);
        if (e.kind === ClusterKind.Normal || (e.kind === ClusterKind.Zero && e.offset !== 0)) toFree.push(e.offset);
        else if (e.kind === ClusterKind.Compressed) toFree.push(...compressedClusters(e, cs));
        setEntry(table, i, 0, 0, zeroFlag ? ENTRY_ZERO_LO : 0);
      }
      await this.markL2Dirty(l2off, i0, i0 + stop - gc - 1);
      await this.freeClusters(toFree);
      gc = stop;
    }
  }

  // ---- flush, stats, close ----

  async flush(): Promise<void> {
    const t0 = performance.now();
    if (this.pendingFrees.length > 0 || this.dirtyL2.size > 0) await this.meta.run(() => this.settle(true));
    else if (!this.readOnly) await this.file.sync();
    this.counters.flushRequests++;
    this.counters.totalLatencyMs += performance.now() - t0;
  }

  stats(): BlockStats {
    return { ...this.counters };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.exclusive(async () => {
      this.closed = true;
      if (!this.readOnly) await this.file.sync();
      await this.file.fh.close();
    });
    if (this.backing) await this.backing.close();
  }

  /** Runs fn with the metadata mutex held and no data I/O in flight (snapshots, resize, check). */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.meta.run(async () => {
      const reopen = await this.gate.drain();
      try {
        // Settle queued frees and reservations so the refcounts are exact for fn.
        if (!this.readOnly) {
          // The gate is drained, so every allocating write has finished its data: link them all first.
          this.linkPending();
          await this.settle(false);
          await this.refcounts.releasePool();
        }
        return await fn();
      } finally {
        reopen();
      }
    });
  }

  /** Grows the virtual disk (shrinking is refused: it would drop data). */
  async resize(newSize: number): Promise<void> {
    if (this.readOnly) throw new Qcow2Error(`Cannot resize disk "${this.path}": it is open read-only`);
    await resizeImage(this, newSize);
  }

  /** Makes the active L1 table at least `entries` long. Caller holds exclusive(). */
  async growL1(entries: number): Promise<void> {
    await growL1Table(this, entries);
  }
}
