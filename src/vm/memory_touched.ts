// How much of the guest's RAM the host has actually backed with pages: guest RAM is one lazily
// zero-filled mapping, so the resident size of that mapping is what the guest has touched.
// Linux only (/proc/self/smaps); elsewhere the figure is unknown (null).

import { readFileSync } from "node:fs";

/**
 * Resident bytes of the mapping that holds `ramBytes` of guest RAM, from smaps text: the smallest
 * anonymous read-write mapping at least that large. The kernel may merge a neighbouring anonymous
 * mapping into it, so the figure can include a little VMM memory; it never exceeds the RAM size.
 */
export function touchedBytesFromSmaps(smaps: string, ramBytes: number): number | null {
  const wantKiB = ramBytes / 1024;
  let best: { sizeKiB: number; rssKiB: number } | null = null;
  let current: { anonymousRw: boolean; sizeKiB: number } | null = null;
  for (const line of smaps.split("\n")) {
    const header = /^[0-9a-f]+-[0-9a-f]+ (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (header !== null) {
      current = { anonymousRw: header[1]!.startsWith("rw") && header[2]!.trim() === "", sizeKiB: 0 };
    } else if (current !== null && line.startsWith("Size:")) {
      current.sizeKiB = Number(line.split(/\s+/)[1]);
    } else if (current !== null && line.startsWith("Rss:")) {
      const rssKiB = Number(line.split(/\s+/)[1]);
      if (current.anonymousRw && current.sizeKiB >= wantKiB && (best === null || current.sizeKiB < best.sizeKiB)) {
        best = { sizeKiB: current.sizeKiB, rssKiB };
      }
    }
  }
  return best === null ? null : Math.min(best.rssKiB * 1024, ramBytes);
}

/** Reading smaps costs the kernel a walk of every mapping (~10 ms for an idle VM on a busy host). */
const MIN_INTERVAL_MS = 1000;
/** Sample no more often than this many times the last read's cost: the probe stays under 0.1% of a core ... */
const COST_FACTOR = 1000;
/** ... but at least every 10 s, so the figure is never older than that (a busy host makes reads slow). */
const MAX_INTERVAL_MS = 10_000;

/**
 * Samples at most once a second, and less often when a read is expensive: the daemon asks for
 * stats every second, and an idle VM must not spend its CPU on telling how idle it is.
 */
export class TouchedMemoryProbe {
  private last: { at: number; bytes: number | null; nextAt: number } | null = null;

  constructor(
    private readonly ramBytes: number,
    private readonly readSmaps: () => string = () => readFileSync("/proc/self/smaps", "latin1"),
    /** Measures what a read costs (ms); injectable for tests. */
    private readonly clock: () => number = () => performance.now(),
  ) {}

  bytes(now = performance.now()): number | null {
    if (this.last !== null && now < this.last.nextAt) return this.last.bytes;
    let bytes: number | null = null;
    const started = this.clock();
    try {
      bytes = touchedBytesFromSmaps(this.readSmaps(), this.ramBytes);
    } catch {
      bytes = null; // no /proc: not Linux
    }
    const cost = Math.max(0, this.clock() - started);
    this.last = { at: now, bytes, nextAt: now + Math.min(MAX_INTERVAL_MS, Math.max(MIN_INTERVAL_MS, cost * COST_FACTOR)) };
    return bytes;
  }
}
