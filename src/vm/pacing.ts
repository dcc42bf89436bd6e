// CPU pacing for one VM process: holds the vCPUs back so they use at most `cap` per cent of a
// host core each, and accounts steal — time a vCPU wanted to run but did not, because its cap
// held it back or because the host gave the thread less CPU than the wall time that passed.
// A pure object: the scheduler tells it how each slice went and asks how long to wait.

/** Wall time and this process's CPU time, in milliseconds; injectable so tests use a fake clock. */
export interface PacingClock {
  now(): number;
  cpuMs(): number;
}

export const hostPacingClock: PacingClock = {
  now: () => performance.now(),
  cpuMs: () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  },
};

export interface PacingStats {
  /** Host CPU time the VM process used (vCPUs and the device work they cause). */
  cpuMs: number;
  /** Time held back by the cap (served holds) plus time lost to host contention while running. */
  stealMs: number;
  /** The part of stealMs due to the cap alone. */
  throttledMs: number;
}

/** How much CPU the bucket may bank while the guest idles: a short burst, never a long one. */
const BURST_WINDOW_MS = 100;

/**
 * Uncapped, the process's CPU is read once per this much slice time instead of every slice:
 * `process.cpuUsage()` (getrusage over every thread) took ~120 µs a call on a busy 2-core host,
 * up to 10 ms, ~150 ms of the vCPU thread in a boot. A cap still reads it every slice.
 */
export const UNCAPPED_WINDOW_MS = 200;

export class VcpuPacer {
  private capPercent: number | null = null;
  // CPU milliseconds the vCPUs may still use; negative means they owe and must wait.
  private tokensMs = 0;
  private lastRefill: number;
  private sliceWall = 0;
  // The accounting window: the slices since the process's CPU was last read (one slice when capped).
  private windowWall = 0;
  private windowCpu: number;
  // Process CPU time already charged against the cap.
  private chargedCpu: number;
  private holdStartedAt: number | null = null;
  private readonly totals: PacingStats = { cpuMs: 0, stealMs: 0, throttledMs: 0 };

  constructor(
    /** vCPUs the cap applies to (a cap is per vCPU). */
    private readonly vcpus: number,
    /** Host threads the vCPUs run on: a cap above what they can use is no cap. */
    private readonly threads: number,
    private readonly clock: PacingClock = hostPacingClock,
  ) {
    this.lastRefill = clock.now();
    this.chargedCpu = this.windowCpu = clock.cpuMs();
  }

  /** Null or 0 removes the cap. Takes effect at the next slice. */
  setCap(capPercent: number | null): void {
    if (capPercent !== null && (!Number.isFinite(capPercent) || capPercent < 0)) {
      throw new RangeError(`A CPU cap must be a non-negative per cent of a core, not ${capPercent}`);
    }
    if (this.windowWall > 0) this.closeWindow(); // the slices before it are charged as they ran (uncapped), not against the new cap
    this.refill();
    this.capPercent = capPercent === 0 ? null : capPercent;
    this.tokensMs = Math.min(this.tokensMs, this.burstMs());
  }

  get cap(): number | null {
    return this.capPercent;
  }

  /**
   * Charges from now on: the process's CPU before the guest's first slice (loading the kernel,
   * the JIT's compile thread starting) is not the guest's, and charged to a small cap it held a
   * fresh VM back for seconds.
   */
  startCharging(): void {
    this.chargedCpu = this.windowCpu = this.clock.cpuMs();
    this.windowWall = 0;
  }

  /** Called when a slice of guest execution begins. */
  sliceStarted(): void {
    this.sliceWall = this.clock.now();
    if (this.ratePerMs() !== null) this.windowCpu = this.clock.cpuMs(); // capped: a window is this slice alone, holds and gaps outside it
  }

  /** Called when the slice ends; returns how many ms to hold the vCPUs back (0: go on at once). */
  sliceEnded(): number {
    this.windowWall += Math.max(0, this.clock.now() - this.sliceWall);
    const rate = this.ratePerMs();
    if (rate === null && this.windowWall < UNCAPPED_WINDOW_MS) return 0;
    const charge = this.closeWindow();
    if (rate === null) return 0;
    this.refill();
    this.tokensMs -= charge;
    if (this.tokensMs >= 0) return 0;
    return -this.tokensMs / rate;
  }

  /** Called when a hold begins and when it ends (the hold may end early, e.g. on pause). */
  holdStarted(): void {
    this.holdStartedAt = this.clock.now();
  }

  holdEnded(): void {
    if (this.holdStartedAt === null) return;
    const held = Math.max(0, this.clock.now() - this.holdStartedAt);
    this.holdStartedAt = null;
    this.totals.stealMs += held;
    this.totals.throttledMs += held;
  }

  /**
   * Reads the process's CPU, accounts the window's slices (steal, and the CPU used since the last
   * charge, which it returns) and starts the next window from that reading (uncapped, the CPU
   * between two slices then counts as the next one's, where it lowers steal a little; a cap is
   * charged for it either way).
   */
  private closeWindow(): number {
    const { stealMs, charge, cpuNow } = this.windowFigures();
    this.totals.stealMs += stealMs;
    this.chargedCpu = this.windowCpu = cpuNow;
    this.windowWall = 0;
    this.totals.cpuMs += charge;
    return charge;
  }

  /** The open window's steal (the thread was runnable but the host ran something else) and the CPU not yet charged. */
  private windowFigures(): { stealMs: number; charge: number; cpuNow: number } {
    const cpuNow = this.clock.cpuMs();
    const wall = this.windowWall;
    const stealMs = wall - Math.min(wall, Math.max(0, cpuNow - this.windowCpu));
    // The cap covers all the process's CPU (devices, timers, GC threads too), not only guest code.
    return { stealMs, charge: Math.max(0, cpuNow - this.chargedCpu), cpuNow };
  }

  stats(): PacingStats {
    const s = { ...this.totals };
    if (this.windowWall > 0) { // slices ran since the last reading (not before the guest's first: startCharging)
      const w = this.windowFigures();
      s.stealMs += w.stealMs;
      s.cpuMs += w.charge;
    }
    if (this.holdStartedAt !== null) {
      const held = Math.max(0, this.clock.now() - this.holdStartedAt);
      s.stealMs += held;
      s.throttledMs += held;
    }
    return s;
  }

  /** CPU ms per wall ms the vCPUs may use, or null when uncapped. */
  private ratePerMs(): number | null {
    if (this.capPercent === null) return null;
    const rate = (this.capPercent / 100) * this.vcpus;
    return rate >= this.threads ? null : rate;
  }

  private burstMs(): number {
    const rate = this.ratePerMs();
    return rate === null ? 0 : rate * BURST_WINDOW_MS;
  }

  private refill(): void {
    const now = this.clock.now();
    const rate = this.ratePerMs();
    if (rate !== null) this.tokensMs = Math.min(this.burstMs(), this.tokensMs + (now - this.lastRefill) * rate);
    this.lastRefill = now;
  }
}
