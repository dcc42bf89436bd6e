// Lazy restore: a restored guest runs at once, and each RAM page comes from the snapshot file the
// first time anything touches it (a vCPU's TLB fill or page walk, a device's DMA: see
// seams/guest_ram.ts ensurePresent), read synchronously on whichever thread touched it. Meanwhile
// the device thread brings the rest in, a few pages per turn, so the file is not needed for long.

import { openSync, readSync } from "node:fs";
import { PAGE_ABSENT, PAGE_PRESENT, type GuestRam } from "../../seams/guest_ram.js";
import { PAGE_SIZE, pageChecksum, RAM_AT, SnapshotError, type SnapshotFileInfo } from "./snapshot_file.js";

/** What every thread needs to load pages itself (workers get it in their workerData). */
export interface LazyPagesShared {
  path: string;
  /** Int32 per page: PAGE_ABSENT / PAGE_LOADING / PAGE_PRESENT. */
  state: SharedArrayBuffer;
  /** The stored pages' checksums, by page number. */
  checksums: SharedArrayBuffer;
}

/** Pages the background loader brings in per turn of the event loop. */
const PAGES_PER_TURN = 256;

/** Sets `ram` up to load the snapshot's pages on first touch; returns what worker threads need. */
export function lazyPagesFor(path: string, info: SnapshotFileInfo<unknown>, ram: GuestRam): LazyPagesShared {
  if (info.ramBytes !== ram.size) {
    throw new SnapshotError(`"${path}" is not a usable nodevisor snapshot: it holds ${info.ramBytes >> 20} MiB of RAM for a VM of ${ram.size >> 20} MiB.`);
  }
  const pages = ram.size / PAGE_SIZE;
  const shared: LazyPagesShared = { path, state: new SharedArrayBuffer(pages * 4), checksums: new SharedArrayBuffer(pages * 4) };
  const state = new Int32Array(shared.state).fill(PAGE_PRESENT);
  const sums = new Uint32Array(shared.checksums);
  info.pages.forEach((p, i) => {
    state[p] = PAGE_ABSENT;
    sums[p] = info.checksums[i]!;
  });
  attachLazyPages(ram, shared);
  return shared;
}

/** Lets this thread's view of RAM load pages from the file (one descriptor per thread). */
export function attachLazyPages(ram: GuestRam, shared: LazyPagesShared): void {
  const fd = openSync(shared.path, "r");
  const sums = new Uint32Array(shared.checksums);
  ram.loadLazily(new Int32Array(shared.state), (page, into) => {
    const n = readSync(fd, into, 0, PAGE_SIZE, RAM_AT + page * PAGE_SIZE);
    const words = new Int32Array(into.buffer, into.byteOffset, PAGE_SIZE / 4);
    if (n !== PAGE_SIZE || pageChecksum(words, 0) !== sums[page]) {
      into.fill(0);
      throw new SnapshotError(`The snapshot "${shared.path}" is damaged: RAM page ${page} ${n !== PAGE_SIZE ? "is cut short" : "does not match its checksum"}; the restored guest cannot go on.`);
    }
  });
  // The descriptor stays open for the thread's life: a page may be touched at any time.
}

/** Brings every page not yet touched in from the file, a few per turn, on the device thread. */
export class BackgroundPageLoader {
  private next = 0;
  private stopped = false;
  private readonly state: Int32Array;

  constructor(private readonly ram: GuestRam, shared: LazyPagesShared, private readonly onError: (e: Error) => void) {
    this.state = new Int32Array(shared.state);
  }

  start(): void {
    setImmediate(() => this.turn());
  }

  stop(): void {
    this.stopped = true;
  }

  /** Loads everything now (before a snapshot or migration reads RAM directly). */
  loadAll(): void {
    this.ram.ensurePresent(0, this.ram.size);
    this.ram.lazyState = null;
    this.stopped = true;
  }

  private turn(): void {
    if (this.stopped || this.ram.lazyState === null) return;
    try {
      const pages = this.state.length;
      let loaded = 0;
      while (this.next < pages && loaded < PAGES_PER_TURN) {
        if (this.state[this.next] !== PAGE_PRESENT) {
          this.ram.ensurePresent(this.next * PAGE_SIZE, PAGE_SIZE);
          loaded++;
        }
        this.next++;
      }
      if (this.next >= pages) {
        // Every page is here: RAM readers stop checking (on this thread; workers' checks all pass).
        this.ram.lazyState = null;
        return;
      }
    } catch (e) {
      this.onError(e as Error);
      return;
    }
    setImmediate(() => this.turn());
  }
}
