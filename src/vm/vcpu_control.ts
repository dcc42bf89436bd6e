// The words the device thread and the vCPU worker threads share (docs/vcpu-threads.md): one
// control block per hart and one for the VM, in SharedArrayBuffers with named offsets. Every
// cross-thread input a hart takes (interrupt lines, IPIs, remote fences, HSM start, pause) is a
// word here plus an Atomics.notify on its WAKE word; MMIO exits travel through its mailbox.

import type { JitStats } from "../cpu/jit/block_cache.js";

/** Int32 word offsets in a hart's control block. */
export const HartWord = {
  /** Bumped (and notified) by anyone who changed an input below: a hart in WFI or stopped waits on it. */
  WAKE: 0,
  /** mip bits the PLIC drives (SEIP 1<<9, MEIP 1<<11), as levels. */
  EXT_LEVELS: 1,
  /** Non-zero: an IPI (SSIP) arrived; the hart swaps it back to 0 when it takes it. */
  SSIP: 2,
  /** Remote fence requests (TLB and icache), counted; the hart acks by storing the count it applied. */
  FENCE_REQUESTED: 3,
  FENCE_DONE: 4,
  /** RUNNING or STOPPED (HSM): written by the hart itself on stop and by a starter on start. */
  RUN_STATE: 5,
  /** An HSM start waiting for the hart to take it: pc and a1 (opaque) as 32-bit halves; a0 is the hart id. */
  START_PENDING: 6,
  START_PC_LO: 7,
  START_PC_HI: 8,
  START_A1_LO: 9,
  START_A1_HI: 10,
  /** The MMIO mailbox: MAILBOX_IDLE → (worker) MAILBOX_REQUEST → (device thread) MAILBOX_REPLY → (worker) idle. */
  MB_STATE: 11,
  MB_ADDR_LO: 12,
  MB_ADDR_HI: 13,
  MB_SIZE: 14,
  MB_WRITE: 15,
  MB_VALUE_LO: 16,
  MB_VALUE_HI: 17,
  MB_FAULT: 18,
} as const;
const HART_WORDS = 20;

/** Float64 slot offsets after the words: figures the hart publishes for query-stats. */
export const HartFigure = {
  INSTRET: 0,
  MMIO_EXITS: 1,
  SBI_EXITS: 2,
  /** Host ms the hart slept in WFI. */
  IDLE_MS: 3,
  /** Host ms its CPU cap held it back. */
  THROTTLED_MS: 4,
  /** Host ms it ran guest code (its CPU time, as far as this thread can tell). */
  RUN_MS: 5,
  PC: 6,
  /** Traps taken by cause: 0-31 exceptions, 32-63 interrupts. */
  TRAPS: 8,
  /** The JIT's figures of the hart's thread, in JIT_FIGURES' order. */
  JIT: 8 + 64,
} as const;

/** The code cache's figures (cpu/jit/block_cache.ts JitStats) a vCPU thread publishes. */
export const JIT_FIGURES = [
  "blocks", "codeBytes", "compiledTotal", "compileMs", "staleCompiles", "reusedCompiles", "invalidations", "flushes", "instructionsCompiled", "handBacks", "missedEntries",
] as const satisfies ReadonlyArray<keyof JitStats>;
const HART_FIGURES = HartFigure.JIT + JIT_FIGURES.length;

export const RUNNING = 0;
export const STOPPED = 1;
export const MAILBOX_IDLE = 0;
export const MAILBOX_REQUEST = 1;
export const MAILBOX_REPLY = 2;

/** Int32 word offsets in the VM's control block. */
export const VmWord = {
  /** Non-zero: every hart parks at its next loop turn (pause). */
  PAUSE: 0,
  /** Non-zero: every hart leaves its loop (the VM is stopping). */
  STOP: 1,
  /** Harts parked right now. */
  PARKED: 2,
  /** CPU cap per vCPU in hundredths of a per cent; 0 = uncapped. */
  CAP: 3,
} as const;
const VM_WORDS = 8;

/** One hart's control block: views over one SharedArrayBuffer that both threads make alike. */
export class HartControl {
  readonly shared: SharedArrayBuffer;
  readonly words: Int32Array;
  readonly figures: Float64Array;

  constructor(shared?: SharedArrayBuffer) {
    this.shared = shared ?? new SharedArrayBuffer(HART_WORDS * 4 + HART_FIGURES * 8);
    this.words = new Int32Array(this.shared, 0, HART_WORDS);
    this.figures = new Float64Array(this.shared, HART_WORDS * 4, HART_FIGURES);
  }

  /** Wakes the hart if it sleeps (WFI, stopped, parked) so it looks at its inputs. */
  wake(): void {
    Atomics.add(this.words, HartWord.WAKE, 1);
    Atomics.notify(this.words, HartWord.WAKE);
  }

  setExternalLevel(bit: number, level: boolean): void {
    const mask = 1 << bit;
    const old = level ? Atomics.or(this.words, HartWord.EXT_LEVELS, mask) : Atomics.and(this.words, HartWord.EXT_LEVELS, ~mask);
    if (((old & mask) !== 0) !== level) this.wake();
  }

  raiseSoftwareInterrupt(): void {
    Atomics.store(this.words, HartWord.SSIP, 1);
    this.wake();
  }

  /** An IPI was sent that the hart has not taken yet (it lives only here until the hart looks). */
  get softwareInterruptWaiting(): boolean {
    return Atomics.load(this.words, HartWord.SSIP) !== 0;
  }

  get stopped(): boolean {
    return Atomics.load(this.words, HartWord.RUN_STATE) === STOPPED;
  }

  /** HSM start: the hart takes pc/a1 at its next loop turn. */
  requestStart(pc: number, a1: bigint): void {
    const w = this.words;
    w[HartWord.START_PC_LO] = pc % 2 ** 32 | 0;
    w[HartWord.START_PC_HI] = Math.floor(pc / 2 ** 32) | 0;
    w[HartWord.START_A1_LO] = Number(a1 & 0xffffffffn) | 0;
    w[HartWord.START_A1_HI] = Number((a1 >> 32n) & 0xffffffffn) | 0;
    Atomics.store(w, HartWord.RUN_STATE, RUNNING);
    Atomics.store(w, HartWord.START_PENDING, 1);
    this.wake();
  }

  /** Asks for a TLB + icache flush; returns the count to wait for in FENCE_DONE. */
  requestFence(): number {
    const n = Atomics.add(this.words, HartWord.FENCE_REQUESTED, 1) + 1;
    this.wake();
    return n;
  }

  fenceDone(n: number): boolean {
    return Atomics.load(this.words, HartWord.FENCE_DONE) - n >= 0;
  }

  trapCounts(): Map<string, number> {
    const m = new Map<string, number>();
    for (let i = 0; i < 64; i++) {
      const n = this.figures[HartFigure.TRAPS + i]!;
      if (n !== 0) m.set(`${i >= 32 ? "interrupt" : "exception"}:${i & 31}`, n);
    }
    return m;
  }
}

/** The VM-wide control block. */
export class VmControl {
  readonly shared: SharedArrayBuffer;
  readonly words: Int32Array;

  constructor(shared?: SharedArrayBuffer) {
    this.shared = shared ?? new SharedArrayBuffer(VM_WORDS * 4);
    this.words = new Int32Array(this.shared);
  }

  get paused(): boolean {
    return Atomics.load(this.words, VmWord.PAUSE) !== 0;
  }

  get stopping(): boolean {
    return Atomics.load(this.words, VmWord.STOP) !== 0;
  }

  /** The cap in per cent of a core per vCPU, or null. */
  get capPercent(): number | null {
    const v = Atomics.load(this.words, VmWord.CAP);
    return v === 0 ? null : v / 100;
  }
}
