// Pre-copy of guest RAM while the guest runs (live snapshots and live migration): send every
// non-zero page, then in rounds the pages the guest dirtied meanwhile, until what is left fits
// the downtime limit at the rate the sink achieved. The caller then stops the guest and sends
// what is left (pending + the pages dirtied since) with the device state.
//
// Each round takes the dirty log, then flushes every hart's TLB, then copies: a store through a
// TLB entry filled before the take lands before the copy, and any later store fills again and
// marks the page for the next round (seams/guest_ram.ts).

import type { GuestRam } from "../../seams/guest_ram.js";
import { nonZeroPages, PAGE_SIZE } from "./snapshot_file.js";

export interface PrecopyProgress {
  rounds: number;
  pagesSent: number;
  bytesSent: number;
  /** Pages dirtied per second in the last round. */
  dirtyPagesPerSecond: number;
  /** Bytes per second the sink took, over all rounds. */
  bytesPerSecond: number;
  /** Dirty pages not yet sent. */
  remainingPages: number;
  /** How long the guest would stop to send what is left, at the measured rate (ms). */
  expectedDowntimeMs: number;
  /** The CPU cap pacing holds the vCPUs to (per cent), or null. */
  throttlePercent: number | null;
}

export interface PrecopyOptions {
  ram: GuestRam;
  flushTlbs(): Promise<void>;
  /** Copies these pages (ascending) from RAM to wherever they go; resolves once it took them. */
  send(pages: Uint32Array): Promise<void>;
  /** A number, or a function read each round (the limit may change while the copy runs). */
  downtimeLimitMs: number | (() => number);
  /** Rounds of dirty pages after the first full pass before the caller stops the guest anyway. */
  maxRounds: number;
  now(): number;
  /** Checked between batches: true stops the copy (a cancel). */
  cancelled?(): boolean;
  /**
   * Pacing: called after a round that did not shrink the dirty set, with the cap to hold each
   * vCPU to (per cent), lower each time. The caller lifts the cap once the guest stopped (or the
   * copy failed).
   */
  throttle?(capPercent: number | null): void;
  onProgress?(p: PrecopyProgress): void;
}

/** Raised when a cancel stopped the copy. */
export class PrecopyCancelled extends Error {
  override name = "PrecopyCancelled";
}

/** Pages sent per call to send(): keeps cancel and progress responsive. */
const BATCH_PAGES = 1024;
/** Pacing as QEMU's auto-converge: first cap, then each further step, never below the floor. */
const THROTTLE_FIRST = 80;
const THROTTLE_STEP = 20;
const THROTTLE_FLOOR = 5;

/** Runs the rounds; returns the dirty pages taken but not sent (the final round's to send). */
export async function precopy(o: PrecopyOptions): Promise<{ pending: Uint32Array; progress: PrecopyProgress }> {
  const p: PrecopyProgress = {
    rounds: 0, pagesSent: 0, bytesSent: 0, dirtyPagesPerSecond: 0, bytesPerSecond: 0,
    remainingPages: 0, expectedDowntimeMs: 0, throttlePercent: null,
  };
  let sendMs = 0;
  const sendAll = async (pages: Uint32Array): Promise<void> => {
    for (let i = 0; i < pages.length; i += BATCH_PAGES) {
      if (o.cancelled?.()) throw new PrecopyCancelled("the copy was cancelled");
      const batch = pages.subarray(i, Math.min(pages.length, i + BATCH_PAGES));
      const t0 = o.now();
      await o.send(batch);
      sendMs += o.now() - t0;
      p.pagesSent += batch.length;
      p.bytesSent += batch.length * PAGE_SIZE;
      p.bytesPerSecond = sendMs > 0 ? (p.bytesSent / sendMs) * 1000 : 0;
      o.onProgress?.(p);
    }
  };
  o.ram.takeDirtyPages();
  await o.flushTlbs();
  let tookAt = o.now();
  let toSend = nonZeroPages(o.ram);
  let lastDirty = Infinity;
  for (;;) {
    await sendAll(toSend);
    p.rounds++;
    const dirty = o.ram.takeDirtyPages();
    await o.flushTlbs();
    const now = o.now();
    p.dirtyPagesPerSecond = Math.round((dirty.length / Math.max(now - tookAt, 1)) * 1000);
    tookAt = now;
    p.remainingPages = dirty.length;
    // Until a rate is measured, assume the sink is slow: one more round costs little.
    p.expectedDowntimeMs = p.bytesPerSecond > 0 ? Math.round(((dirty.length * PAGE_SIZE) / p.bytesPerSecond) * 10_000) / 10 : Infinity;
    o.onProgress?.(p);
    const limit = typeof o.downtimeLimitMs === "number" ? o.downtimeLimitMs : o.downtimeLimitMs();
    if (p.expectedDowntimeMs <= limit || p.rounds > o.maxRounds || o.cancelled?.()) {
      if (o.cancelled?.()) throw new PrecopyCancelled("the copy was cancelled");
      return { pending: dirty, progress: p };
    }
    if (o.throttle !== undefined && dirty.length >= lastDirty * 0.9) {
      p.throttlePercent = Math.max(THROTTLE_FLOOR, p.throttlePercent === null ? THROTTLE_FIRST : p.throttlePercent - THROTTLE_STEP);
      o.throttle(p.throttlePercent);
    }
    lastDirty = dirty.length;
    toSend = dirty;
  }
}

/** Pages and their content, copied out of RAM in one step: page `pages[i]` is at `data[i * PAGE_SIZE]`. */
export interface FrozenPages {
  readonly pages: Uint32Array;
  readonly data: Uint8Array;
}

/**
 * Copies `pages` (ascending) out of RAM now. The last pages of a snapshot or a migration are
 * frozen in the same synchronous step that saves the device state: while the vCPUs are paused the
 * device thread runs on (a frame arrives, a backend completes) and writes RAM the saved device
 * state knows nothing of; sent later, such a page gives the restored guest a virtqueue whose ring
 * is ahead of its device, and the guest's driver gives up on the queue.
 */
export function freezePages(ram: GuestRam, pages: Uint32Array): FrozenPages {
  const data = new Uint8Array(pages.length * PAGE_SIZE);
  for (let i = 0; i < pages.length;) {
    // Runs of neighbouring pages in one copy.
    let n = 1;
    while (i + n < pages.length && pages[i + n] === pages[i]! + n) n++;
    data.set(ram.u8.subarray(pages[i]! * PAGE_SIZE, (pages[i]! + n) * PAGE_SIZE), i * PAGE_SIZE);
    i += n;
  }
  return { pages, data };
}

/** The union of two ascending page lists, ascending. */
export function mergePages(a: Uint32Array, b: Uint32Array): Uint32Array {
  const out = new Uint32Array(a.length + b.length);
  let i = 0, j = 0, n = 0;
  while (i < a.length || j < b.length) {
    const x = i < a.length ? a[i]! : Infinity;
    const y = j < b.length ? b[j]! : Infinity;
    if (x <= y) { out[n++] = x; i++; if (x === y) j++; } else { out[n++] = y; j++; }
  }
  return out.subarray(0, n);
}
