// What the VM asks of whatever runs its vCPUs: the time-sliced scheduler on this thread
// (scheduler.ts) or one worker thread per vCPU (vcpu_threads.ts).

import type { Board } from "../machine/board.js";
import type { PacingStats } from "./pacing.js";
import type { HartState } from "../cpu/hart.js";
import type { JitStats } from "../cpu/jit/block_cache.js";

export interface VcpuRunner {
  /** Guest instructions retired, all vCPUs. */
  readonly instructions: number;
  readonly mmioExits: number;
  readonly sbiExits: number;
  /** Host ms the vCPUs slept waiting for interrupts. */
  readonly idleMs: number;
  readonly cap: number | null;
  /** Starts the vCPUs from the board's boot state. */
  begin(board: Board): void;
  /** Device state changed (an interrupt, console input): let the vCPUs and devices see it soon. */
  kick(): void;
  pause(): void;
  resume(): void;
  /** The VM is ending: stop for good. */
  stop(): void;
  /** Per cent of a host core each vCPU may use; null removes the cap. */
  setCap(capPercent: number | null): void;
  pacingStats(): PacingStats;
  trapsByCause(): Map<string, number>;
  /** Every hart's architectural state; the vCPUs must be paused. */
  collectHartStates(): Promise<HartState[]>;
  /** Every hart drops its TLB entries, so its next store to any page marks the dirty log again. */
  flushTlbs(): Promise<void>;
  /** Where each hart is, for crash reports. */
  describePcs(): string;
  /** Vcpu threads only: the JIT's figures summed over the threads' code caches; null on the interpreter. */
  jitStats?(): JitStats | null;
  /** Vcpu threads only: each hart's inputs not yet taken (external levels, a waiting IPI), for query-interrupts. */
  describeInputs?(): Array<{ externalLevels: string; softwareInterruptWaiting: boolean }>;
}
