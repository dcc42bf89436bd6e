// The VM's time base: mtime ticks at TIMEBASE_HZ derived from the host's monotonic clock,
// frozen while the VM is paused so the guest never sees time jump on resume.

import { performance } from "node:perf_hooks";
import type { TimeSource } from "../seams/time.js";
import { TIMEBASE_HZ } from "../machine/layout.js";

const TICKS_PER_MS = TIMEBASE_HZ / 1000;

export class VirtualClock implements TimeSource {
  readonly frequency = TIMEBASE_HZ;
  private originMs = performance.now();
  private pausedAtMs: number | null = null;

  now(): number {
    const t = this.pausedAtMs ?? performance.now();
    return Math.floor((t - this.originMs) * TICKS_PER_MS);
  }

  pause(): void {
    if (this.pausedAtMs === null) this.pausedAtMs = performance.now();
  }

  resume(): void {
    if (this.pausedAtMs === null) return;
    this.originMs += performance.now() - this.pausedAtMs;
    this.pausedAtMs = null;
  }

  /** Milliseconds of host time until the clock reads `ticks` (0 if already past). */
  msUntil(ticks: number): number {
    return Math.max(0, (ticks - this.now()) / TICKS_PER_MS);
  }

  save(): { ticks: number } {
    return { ticks: this.now() };
  }

  restore(s: { ticks: number }): void {
    this.originMs = (this.pausedAtMs ?? performance.now()) - s.ticks / TICKS_PER_MS;
  }
}
