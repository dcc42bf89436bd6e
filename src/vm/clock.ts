// The VM's time base: mtime ticks at TIMEBASE_HZ derived from the host's monotonic clock,
// frozen while the VM is paused so the guest never sees time jump on resume. Its state is two
// numbers in shared memory on an absolute time base (performance.timeOrigin + now()), so vCPU
// worker threads, whose performance.now() counts from their own start, read the same clock.

import { performance } from "node:perf_hooks";
import type { TimeSource } from "../seams/time.js";
import { TIMEBASE_HZ } from "../machine/layout.js";

const TICKS_PER_MS = TIMEBASE_HZ / 1000;
const ORIGIN = 0;
const PAUSED_AT = 1; // NaN while running

/** Host time in ms on a base every thread of this process shares. */
function hostNowMs(): number {
  return performance.timeOrigin + performance.now();
}

export class VirtualClock implements TimeSource {
  readonly frequency = TIMEBASE_HZ;
  /** [origin, pausedAt] in absolute host ms; hand `shared` to a worker to give it this clock. */
  readonly shared: SharedArrayBuffer;
  private readonly state: Float64Array;

  constructor(shared?: SharedArrayBuffer) {
    this.shared = shared ?? new SharedArrayBuffer(2 * Float64Array.BYTES_PER_ELEMENT);
    this.state = new Float64Array(this.shared);
    if (shared === undefined) {
      this.state[ORIGIN] = hostNowMs();
      this.state[PAUSED_AT] = NaN;
    }
  }

  now(): number {
    const paused = this.state[PAUSED_AT]!;
    const t = paused === paused ? paused : hostNowMs();
    return Math.floor((t - this.state[ORIGIN]!) * TICKS_PER_MS);
  }

  pause(): void {
    if (Number.isNaN(this.state[PAUSED_AT])) this.state[PAUSED_AT] = hostNowMs();
  }

  resume(): void {
    const paused = this.state[PAUSED_AT]!;
    if (Number.isNaN(paused)) return;
    this.state[ORIGIN] = this.state[ORIGIN]! + (hostNowMs() - paused);
    this.state[PAUSED_AT] = NaN;
  }

  /** Milliseconds of host time until the clock reads `ticks` (0 if already past). */
  msUntil(ticks: number): number {
    return Math.max(0, (ticks - this.now()) / TICKS_PER_MS);
  }

  save(): { ticks: number } {
    return { ticks: this.now() };
  }

  restore(s: { ticks: number }): void {
    const paused = this.state[PAUSED_AT]!;
    this.state[ORIGIN] = (paused === paused ? paused : hostNowMs()) - s.ticks / TICKS_PER_MS;
  }
}
