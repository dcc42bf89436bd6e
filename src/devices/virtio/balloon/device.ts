// virtio-balloon (traditional memory balloon, id 5): the host sets a target number of 4 KiB pages the
// guest should give up (num_pages); the guest inflates by sending the page frame numbers it gave up
// and deflates by sending the ones it takes back, tells its statistics on the stats queue when asked,
// and with free page reporting hands over ranges of free memory it will not touch until we answer.
// Pages given up or reported go back to the host through `release` (madvise in the VM process).
//
// Queues by negotiated features, as Linux numbers them (absent queues take no index): inflateq 0,
// deflateq 1, statsq 2 (STATS_VQ), then reporting_vq (REPORTING). The guest is hostile: PFNs outside
// RAM, pages inflated twice or deflated without being inflated, ranges reported twice in one report,
// and statistics buffers beyond the one a driver keeps are ignored and counted, never trusted.

import { DEVICE_ID_BALLOON } from "../constants.js";
import { gather } from "../descriptor_chain.js";
import type { VirtioDevice, VirtioDeviceContext } from "../device.js";
import { MAX_STAT_ENTRIES, parseStats, STAT_ENTRY_BYTES } from "./stats.js";
import { PageSet } from "./page_set.js";

/** Feature bits (virtio 1.2 §5.5.3). */
export const F_MUST_TELL_HOST = 1n << 0n;
export const F_STATS_VQ = 1n << 1n;
export const F_DEFLATE_ON_OOM = 1n << 2n;
export const F_FREE_PAGE_HINT = 1n << 3n;
export const F_PAGE_POISON = 1n << 4n;
export const F_REPORTING = 1n << 5n;

/** The balloon always counts in 4 KiB pages, whatever the guest's page size. */
export const BALLOON_PAGE = 4096;
/** PFNs read from one chain (Linux sends at most 256); a longer chain is read only up to here. */
const MAX_PFNS_PER_CHAIN = 16384;
/** Config space: le32 num_pages (host's target), le32 actual (driver's count). */
const CONFIG_NUM_PAGES = 0;
const CONFIG_ACTUAL = 4;
const CONFIG_BYTES = 8;
/** Linux refuses free page reporting on a queue smaller than PAGE_REPORTING_CAPACITY (32). */
const QUEUE_SIZE = 128;

/** Gives `length` bytes of guest RAM at `offset` (from the start of RAM, page-aligned) back to the host; false if only counted. */
export type ReleasePages = (offset: number, length: number) => boolean;

export interface VirtioBalloonOptions {
  /** Guest-physical address and size of RAM: PFNs outside it are refused. */
  ramBase: number;
  ramBytes: number;
  /** Offer free page reporting (VIRTIO_BALLOON_F_REPORTING). */
  reporting?: boolean;
  /** Offer VIRTIO_BALLOON_F_DEFLATE_ON_OOM: the guest may take pages back before its OOM killer runs (MemTotal then does not fall). */
  deflateOnOom?: boolean;
  release?: ReleasePages;
  /** Wall clock for the statistics' age (ms since the epoch); tests inject their own. */
  now?: () => number;
}

export interface BalloonGuestStats {
  /** When the guest last sent its figures (ms since the epoch); null before the first. */
  updatedAt: number | null;
  /** Named figures from the guest: bytes, except majorFaults, minorFaults and other counts. */
  values: Record<string, number>;
}

export type VirtioBalloonCounters = {
  requests: number;
  errors: number;
  inflatedPages: number;
  deflatedPages: number;
  /** Pages the guest gave back while the balloon was at or below its target: DEFLATE_ON_OOM at work. */
  oomDeflatedPages: number;
  reports: number;
  reportedPages: number;
  /** Pages handed to `release` (inflated or reported); pagesReleasedForReal of them reached the OS. */
  releasedPages: number;
  releasedForRealPages: number;
  statsUpdates: number;
  /** Ignored guest input, by kind. */
  badPfns: number;
  duplicateInflates: number;
  unknownDeflates: number;
  duplicateReports: number;
  reportsInBalloon: number;
  statsFlood: number;
  statsBadEntries: number;
  configWritesIgnored: number;
};

/** Saved with the VM: the target, the pages in the balloon (a bitmap, base64) and the statistics buffer held. */
export interface VirtioBalloonState {
  version: 1;
  targetPages: number;
  actualPages: number;
  balloonBitmap: string;
  statsHead: number | null;
  guestStats: BalloonGuestStats;
}

export class VirtioBalloon implements VirtioDevice<VirtioBalloonState> {
  readonly name = "virtio-balloon";
  readonly deviceId = DEVICE_ID_BALLOON;
  readonly features: bigint;
  readonly queueCount: number;
  readonly queueMaxSize = QUEUE_SIZE;
  readonly ramPages: number;
  private readonly ramBasePfn: number;
  private readonly release: ReleasePages;
  private readonly now: () => number;
  private ctx: VirtioDeviceContext | null = null;
  private statsQueue = -1;
  private reportingQueue = -1;
  private targetPages = 0;
  private actualPages = 0;
  private readonly balloon: PageSet;
  /** The statistics buffer the driver left with us; completing it asks for fresh figures. */
  private statsHead: number | null = null;
  private guestStats: BalloonGuestStats = { updatedAt: null, values: {} };
  private readonly counters: VirtioBalloonCounters = {
    requests: 0, errors: 0, inflatedPages: 0, deflatedPages: 0, oomDeflatedPages: 0, reports: 0, reportedPages: 0,
    releasedPages: 0, releasedForRealPages: 0, statsUpdates: 0, badPfns: 0, duplicateInflates: 0, unknownDeflates: 0,
    duplicateReports: 0, reportsInBalloon: 0, statsFlood: 0, statsBadEntries: 0, configWritesIgnored: 0,
  };

  constructor(opts: VirtioBalloonOptions) {
    if (opts.ramBytes % BALLOON_PAGE !== 0) throw new RangeError(`Guest RAM of ${opts.ramBytes} bytes is not a whole number of 4 KiB pages`);
    this.ramPages = opts.ramBytes / BALLOON_PAGE;
    this.ramBasePfn = Math.floor(opts.ramBase / BALLOON_PAGE);
    this.balloon = new PageSet(this.ramPages);
    this.features = F_STATS_VQ | (opts.deflateOnOom ? F_DEFLATE_ON_OOM : 0n) | (opts.reporting ? F_REPORTING : 0n);
    this.queueCount = opts.reporting ? 4 : 3;
    this.release = opts.release ?? (() => false);
    this.now = opts.now ?? Date.now;
  }

  /** Asks the guest to hold `pages` 4 KiB pages in its balloon (clamped to RAM). */
  setTarget(pages: number): void {
    this.targetPages = Math.max(0, Math.min(this.ramPages, Math.floor(pages)));
    if (this.ctx?.live) this.ctx.configChanged();
  }

  get target(): number {
    return this.targetPages;
  }

  /** Pages in the balloon as the device counts them (what the guest really sent, not its `actual` claim). */
  get balloonPages(): number {
    return this.balloon.count;
  }

  /** What the driver wrote to `actual`. */
  get reportedActual(): number {
    return this.actualPages;
  }

  get guest(): BalloonGuestStats {
    return { updatedAt: this.guestStats.updatedAt, values: { ...this.guestStats.values } };
  }

  /** True while a driver has the device set up (DRIVER_OK). */
  get driverReady(): boolean {
    return this.ctx?.live ?? false;
  }

  /** True once the driver negotiated reporting (and so may report free pages). */
  get reportingActive(): boolean {
    return this.reportingQueue >= 0;
  }

  /** Hands the statistics buffer back to the guest, which answers with fresh figures; false if it holds none. */
  requestStats(): boolean {
    const ctx = this.ctx;
    if (ctx === null || !ctx.live || this.statsHead === null) return false;
    const q = ctx.queues[this.statsQueue]!;
    try {
      q.pushUsed(this.statsHead, 0);
    } catch (e) {
      ctx.fail((e as Error).message);
      return false;
    }
    this.statsHead = null;
    ctx.signalUsed(this.statsQueue);
    return true;
  }

  configRead(offset: number, size: 1 | 2 | 4): number {
    const bytes = new Uint8Array(CONFIG_BYTES);
    const view = new DataView(bytes.buffer);
    view.setUint32(CONFIG_NUM_PAGES, this.targetPages, true);
    view.setUint32(CONFIG_ACTUAL, this.actualPages, true);
    let v = 0;
    for (let i = size - 1; i >= 0; i--) {
      const o = offset + i;
      v = v * 256 + (o >= 0 && o < CONFIG_BYTES ? bytes[o]! : 0);
    }
    return v >>> 0;
  }

  configWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    // Only `actual` is the driver's to write; it may write it in parts.
    if (offset < CONFIG_ACTUAL || offset + size > CONFIG_BYTES) {
      this.counters.configWritesIgnored++;
      return;
    }
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setUint32(0, this.actualPages, true);
    for (let i = 0; i < size; i++) bytes[offset - CONFIG_ACTUAL + i] = (value >>> (8 * i)) & 0xff;
    this.actualPages = new DataView(bytes.buffer).getUint32(0, true);
  }

  activate(ctx: VirtioDeviceContext): void {
    this.ctx = ctx;
    let next = 2;
    this.statsQueue = ctx.features & F_STATS_VQ ? next++ : -1;
    this.reportingQueue = ctx.features & F_REPORTING && next < this.queueCount ? next++ : -1;
    for (let q = 0; q < this.queueCount; q++) if (ctx.queues[q]?.ready) this.notify(q);
  }

  notify(queue: number): void {
    const ctx = this.ctx;
    if (ctx === null || !ctx.live) return;
    try {
      if (queue === 0) this.drain(ctx, 0, (c) => this.inflate(c));
      else if (queue === 1) this.drain(ctx, 1, (c) => this.deflate(c));
      else if (queue === this.statsQueue) this.takeStats(ctx);
      else if (queue === this.reportingQueue) this.drain(ctx, queue, (c) => this.report(c));
    } catch (e) {
      ctx.fail((e as Error).message);
    }
  }

  private drain(ctx: VirtioDeviceContext, queue: number, serve: (chain: { readable: readonly Uint8Array[]; writable: readonly Uint8Array[] }) => void): void {
    const q = ctx.queues[queue];
    if (!q?.ready) return;
    let done = 0;
    for (let chain = q.pop(); chain !== null; chain = q.pop()) {
      this.counters.requests++;
      serve(chain);
      q.pushUsed(chain.head, 0);
      done++;
    }
    if (done > 0) ctx.signalUsed(queue);
  }

  private pfns(readable: readonly Uint8Array[]): Uint32Array {
    const bytes = gather(readable, 0, MAX_PFNS_PER_CHAIN * 4);
    if (bytes.length % 4 !== 0) this.counters.badPfns++;
    const n = bytes.length >>> 2;
    const out = new Uint32Array(n);
    const view = new DataView(bytes.buffer, bytes.byteOffset, n * 4);
    for (let i = 0; i < n; i++) out[i] = view.getUint32(i * 4, true);
    return out;
  }

  /** Page index in RAM of a guest PFN, or -1 when it is outside RAM. */
  private pageOf(pfn: number): number {
    const page = pfn - this.ramBasePfn;
    return page >= 0 && page < this.ramPages ? page : -1;
  }

  private inflate(chain: { readable: readonly Uint8Array[] }): void {
    const taken: number[] = [];
    for (const pfn of this.pfns(chain.readable)) {
      const page = this.pageOf(pfn);
      if (page < 0) this.counters.badPfns++;
      else if (!this.balloon.add(page)) this.counters.duplicateInflates++;
      else taken.push(page);
    }
    this.counters.inflatedPages += taken.length;
    this.releaseRuns(taken);
  }

  private deflate(chain: { readable: readonly Uint8Array[] }): void {
    for (const pfn of this.pfns(chain.readable)) {
      const page = this.pageOf(pfn);
      if (page < 0) this.counters.badPfns++;
      else if (!this.balloon.has(page)) this.counters.unknownDeflates++;
      else {
        if (this.balloon.count <= this.targetPages) this.counters.oomDeflatedPages++;
        this.balloon.delete(page);
        this.counters.deflatedPages++;
      }
    }
  }

  private report(chain: { writable: readonly Uint8Array[] }): void {
    this.counters.reports++;
    // Each writable buffer is one free range; sorted so overlaps (a range reported twice) show.
    const ranges = chain.writable
      .map((seg) => ({ start: Math.ceil(seg.byteOffset / BALLOON_PAGE), end: Math.floor((seg.byteOffset + seg.length) / BALLOON_PAGE) }))
      .filter((r) => r.end > r.start)
      .sort((a, b) => a.start - b.start);
    let covered = 0;
    const pages: number[] = [];
    for (const r of ranges) {
      if (r.start < covered) this.counters.duplicateReports += Math.min(r.end, covered) - r.start;
      for (let p = Math.max(r.start, covered); p < r.end; p++) {
        if (this.balloon.has(p)) this.counters.reportsInBalloon++;
        else pages.push(p);
      }
      covered = Math.max(covered, r.end);
    }
    this.counters.reportedPages += pages.length;
    this.releaseRuns(pages);
  }

  /** Releases sorted-or-not pages in runs of neighbours: one call per run, not per page. */
  private releaseRuns(pages: number[]): void {
    if (pages.length === 0) return;
    pages.sort((a, b) => a - b);
    let start = pages[0]!;
    let prev = start;
    const flush = (from: number, to: number): void => {
      const n = to - from + 1;
      this.counters.releasedPages += n;
      if (this.release(from * BALLOON_PAGE, n * BALLOON_PAGE)) this.counters.releasedForRealPages += n;
    };
    for (let i = 1; i < pages.length; i++) {
      const p = pages[i]!;
      if (p === prev + 1) {
        prev = p;
        continue;
      }
      flush(start, prev);
      start = prev = p;
    }
    flush(start, prev);
  }

  private takeStats(ctx: VirtioDeviceContext): void {
    const q = ctx.queues[this.statsQueue];
    if (!q?.ready) return;
    let returned = 0;
    for (let chain = q.pop(); chain !== null; chain = q.pop()) {
      this.counters.requests++;
      // A driver keeps one statistics buffer; an older one we still hold goes back unread.
      if (this.statsHead !== null) {
        this.counters.statsFlood++;
        q.pushUsed(this.statsHead, 0);
        returned++;
      }
      this.statsHead = chain.head;
      const maxBytes = MAX_STAT_ENTRIES * STAT_ENTRY_BYTES;
      const parsed = parseStats(gather(chain.readable, 0, maxBytes), chain.readableBytes);
      this.counters.statsBadEntries += parsed.unknownTags + (parsed.ignoredBytes > 0 ? 1 : 0);
      this.guestStats = { updatedAt: this.now(), values: { ...this.guestStats.values, ...parsed.values } };
      this.counters.statsUpdates++;
    }
    if (returned > 0) ctx.signalUsed(this.statsQueue);
  }

  reset(): void {
    this.ctx = null;
    this.statsHead = null;
    this.statsQueue = -1;
    this.reportingQueue = -1;
    this.actualPages = 0;
    // The guest starts afresh with all its memory; the target stays for the next driver.
    this.balloon.clear();
  }

  stats(): VirtioBalloonCounters {
    return { ...this.counters };
  }

  save(): VirtioBalloonState {
    return {
      version: 1,
      targetPages: this.targetPages,
      actualPages: this.actualPages,
      balloonBitmap: Buffer.from(this.balloon.bytes()).toString("base64"),
      statsHead: this.statsHead,
      guestStats: this.guest,
    };
  }

  restore(s: VirtioBalloonState): void {
    if (s.version !== 1) throw new RangeError(`virtio-balloon state version ${String(s.version)} is not one this nodevisor reads`);
    this.targetPages = Math.min(this.ramPages, s.targetPages >>> 0);
    this.actualPages = s.actualPages >>> 0;
    this.balloon.load(Buffer.from(s.balloonBitmap, "base64"));
    this.statsHead = s.statsHead;
    this.guestStats = { updatedAt: s.guestStats.updatedAt, values: { ...s.guestStats.values } };
  }
}
