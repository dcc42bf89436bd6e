// Time-slices the VM's harts on this thread: the vCPU loop. Runs each hart until it exits
// (cpu/exit.ts), hands MMIO and SBI exits to the VMM, and runs slices of guest code between
// turns of the Node event loop (so device I/O and the control socket stay live); sleeps on a
// host timer when every hart waits in WFI, so an idle guest costs no host CPU.

import { performance } from "node:perf_hooks";
import type { Hart, HartState } from "../cpu/hart.js";
import { EXIT_MMIO, EXIT_SBI } from "../cpu/exit.js";
import type { Clint } from "../devices/clint.js";
import type { VirtualClock } from "./clock.js";
import { VcpuPacer, type PacingStats } from "./pacing.js";
import type { VcpuRunner } from "./vcpu_runner.js";

const MIP_STIP = 5;
/** Instructions a hart runs before the next hart gets its turn. */
const QUANTUM_SMP = 20_000;
const QUANTUM_UP = 200_000;
/** Host milliseconds of guest execution between event-loop turns. */
const SLICE_MS = 10;

export interface SchedulerHooks {
  /** Called after each batch of execution (flush device output, etc.). */
  afterSlice: () => void;
  /** Completes a hart's MMIO or SBI exit (device access, firmware call) before it runs again. */
  /** Completes the hart's exit; returns the instructions that retired (an MMIO access's instruction). */
  onExit: (hart: Hart) => number;
  /** True while the VM should keep running. */
  isRunning: () => boolean;
  /** Something threw out of guest execution (a VMM bug): the VM must stop, the process must not. */
  onCrash: (error: unknown) => void;
  /** Holds the vCPUs back to their CPU cap (src/vm/pacing.ts); uncapped when absent. */
  pacer?: VcpuPacer;
}

export class Scheduler implements VcpuRunner {
  instructions = 0;
  /** Exits the VMM completed, by kind (KVM reports the same figures). */
  mmioExits = 0;
  sbiExits = 0;
  idleMs = 0;
  private timer: NodeJS.Timeout | null = null;
  private holdTimer: NodeJS.Timeout | null = null;
  private immediate: NodeJS.Immediate | null = null;
  private sleepingSince = 0;
  /** True while runSlice() is on the stack: a kick() then only asks it to go on, never starts a second chain. */
  private inSlice = false;
  private kickedDuringSlice = false;
  private readonly quantum: number;
  private readonly pacer: VcpuPacer;

  constructor(
    private readonly harts: Hart[],
    private readonly clint: Clint,
    private readonly clock: VirtualClock,
    private readonly hooks: SchedulerHooks,
  ) {
    this.quantum = harts.length > 1 ? QUANTUM_SMP : QUANTUM_UP;
    this.pacer = hooks.pacer ?? new VcpuPacer(harts.length, 1);
  }

  begin(): void {
    this.pacer.startCharging();
    this.kick();
  }

  pause(): void {
    this.stop();
  }

  resume(): void {
    this.kick();
  }

  get cap(): number | null {
    return this.pacer.cap;
  }

  setCap(capPercent: number | null): void {
    this.pacer.setCap(capPercent);
    // A hold was sized for the old cap (a daemon raises a new VM's cap as its demand shows): the next slice sizes it anew.
    if (this.holdTimer !== null) {
      clearTimeout(this.holdTimer);
      this.holdTimer = null;
      this.pacer.holdEnded();
      this.kick();
    }
  }

  pacingStats(): PacingStats {
    return this.pacer.stats();
  }

  trapsByCause(): Map<string, number> {
    const all = new Map<string, number>();
    for (const h of this.harts) for (const [k, n] of h.stats.trapsByCause) all.set(k, (all.get(k) ?? 0) + n);
    return all;
  }

  collectHartStates(): Promise<HartState[]> {
    // Paused means no slice is running, and exits complete (their instructions retire) within runHart: every hart is at a boundary.
    return Promise.resolve(this.harts.map((h) => h.save()));
  }

  /** Slices run on this thread, so no hart is mid-store while this runs. */
  flushTlbs(): Promise<void> {
    for (const h of this.harts) h.flushTlb();
    return Promise.resolve();
  }

  describePcs(): string {
    return this.harts.map((h) => `hart ${h.hartId} at pc 0x${h.getPc().toString(16)}`).join(", ");
  }

  /** Starts or restarts execution at the next event-loop turn (safe to call often). */
  kick(): void {
    if (this.inSlice) {
      this.kickedDuringSlice = true;
      return;
    }
    if (this.immediate !== null || this.holdTimer !== null) return; // a capped VM waits out its hold
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
      this.idleMs += performance.now() - this.sleepingSince;
    }
    this.immediate = setImmediate(this.loop);
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.immediate !== null) clearImmediate(this.immediate);
    if (this.holdTimer !== null) clearTimeout(this.holdTimer);
    this.pacer.holdEnded();
    this.holdTimer = null;
    this.timer = null;
    this.immediate = null;
  }

  private readonly loop = (): void => {
    this.immediate = null;
    if (!this.hooks.isRunning()) return;
    this.inSlice = true;
    this.kickedDuringSlice = false;
    try {
      this.runSlice();
    } catch (e) {
      this.stop();
      this.hooks.onCrash(e);
    } finally {
      this.inSlice = false;
    }
  };

  private runSlice(): void {
    const harts = this.harts;
    const sliceEnd = performance.now() + SLICE_MS;
    let ran = false;
    this.pacer.sliceStarted();
    do {
      ran = false;
      const now = this.clock.now();
      for (let i = 0; i < harts.length; i++) {
        const h = harts[i]!;
        if (h.stopped) continue;
        if (h.stimecmp <= now) h.setInterruptPending(MIP_STIP, true);
        if (h.waiting) continue;
        this.runHart(h);
        ran = true;
        if (!this.hooks.isRunning()) break;
      }
      this.clint.update();
      if (!this.hooks.isRunning()) break;
    } while (ran && performance.now() < sliceEnd);
    this.hooks.afterSlice();
    if (!this.hooks.isRunning()) return;
    const holdMs = this.pacer.sliceEnded();
    if (holdMs >= 1) {
      this.pacer.holdStarted();
      this.holdTimer = setTimeout(() => {
        this.holdTimer = null;
        this.pacer.holdEnded();
        this.loop();
      }, Math.round(holdMs));
      return;
    }
    if (ran || this.kickedDuringSlice || this.anyRunnable()) {
      this.immediate = setImmediate(this.loop);
      return;
    }
    this.sleepUntilNextTimer();
  }

  /** Runs one hart for a quantum, completing its MMIO and SBI exits as they come. */
  private runHart(h: Hart): void {
    let budget = this.quantum;
    while (budget > 0) {
      const n = h.run(budget);
      this.instructions += n;
      const reason = h.exit.reason;
      if (reason !== EXIT_MMIO && reason !== EXIT_SBI) return;
      if (reason === EXIT_MMIO) this.mmioExits++;
      else this.sbiExits++;
      this.instructions += this.hooks.onExit(h); // an MMIO access's instruction retires as it completes
      if (reason === EXIT_SBI) this.instructions++; // the ecall retires when the SBI call completes
      if (!this.hooks.isRunning()) return;
      budget -= n + 1;
    }
  }

  private anyRunnable(): boolean {
    for (const h of this.harts) if (!h.stopped && !h.waiting) return true;
    return false;
  }

  /** Every hart waits: sleep until the earliest timer; device interrupts call kick() sooner. */
  private sleepUntilNextTimer(): void {
    let deadline = this.clint.nextDeadline();
    for (const h of this.harts) if (!h.stopped && h.stimecmp < deadline) deadline = h.stimecmp;
    this.sleepingSince = performance.now();
    // With no timer armed at all, wake once a second anyway, so nothing can sleep forever.
    const ms = deadline === Infinity ? 1000 : Math.min(1000, this.clock.msUntil(deadline));
    // A timer that fires before the deadline finds nothing to run and costs a second wake-up. Node
    // counts whole milliseconds from a clock truncated to the millisecond, so a timer may fire up to
    // 1 ms early: round up and add that millisecond.
    this.timer = setTimeout(() => {
      this.timer = null;
      this.idleMs += performance.now() - this.sleepingSince;
      this.loop();
    }, ms <= 0 ? 0 : Math.ceil(ms) + 1);
  }
}
