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

export class VcpuPacer {
  private capPercent: number | null = null;
  // CPU milliseconds the vCPUs may still use; negative means they owe and must wait.
  private tokensMs = 0;
  private lastRefill: number;
  private sliceWall = 0;
  private sliceCpu = 0;
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
    this.chargedCpu = clock.cpuMs();
  }

  /** Null or 0 removes the cap. Takes effect at the next slice. */
  setCap(capPercent: number | null): void {
    if (capPercent !== null && (!Number.isFinite(capPercent) || capPercent < 0)) {
      throw new RangeError(`A CPU cap must be a non-negative per cent of a core, not ${capPercent}`);
    }
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
    this.chargedCpu = this.clock.cpuMs();
  }

  /** Called when a slice of guest execution begins. */
  sliceStarted(): void {
    this.sliceWall = this.clock.now();
    this.sliceCpu = this.clock.cpuMs();
  }

  /** Called when the slice ends; returns how many ms to hold the vCPUs back (0: go on at once). */
  sliceEnded(): number {
    const cpuNow = this.clock.cpuMs();
    const wall = Math.max(0, this.clock.now() - this.sliceWall);
    const cpu = Math.min(wall, Math.max(0, cpuNow - this.sliceCpu));
    this.totals.stealMs += wall - cpu; // the thread was runnable but the host ran something else
    // The cap covers all the process's CPU (devices, timers, GC threads too), not only guest code.
    const charge = Math.max(0, cpuNow - this.chargedCpu);
    this.chargedCpu = cpuNow;
    this.totals.cpuMs += charge;
    const rate = this.ratePerMs();
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

  stats(): PacingStats {
    const s = { ...this.totals };
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
