// CLINT (core-local interruptor, SiFive layout): per-hart software interrupt (MSIP) and timer compare (MTIP).
// mtime is the machine TimeSource itself, so the CLINT and the `time` CSR can never disagree.

import type { MmioDevice } from "../seams/mmio.js";
import type { InterruptTarget } from "../seams/interrupts.js";
import type { TimeSource } from "../seams/time.js";

const MSIP_BASE = 0x0;
const MTIMECMP_BASE = 0x4000;
const MTIME = 0xbff8;
/** Size of the CLINT's MMIO window (as in QEMU virt). */
export const CLINT_SIZE = 0x10000;
/** The layout has room for this many harts (msip words below 0x4000). */
export const CLINT_MAX_HARTS = 4095;

const MIP_MSIP = 3;
const MIP_MTIP = 7;
const TWO_32 = 0x1_0000_0000;

export interface ClintOptions {
  harts: InterruptTarget[];
  time: TimeSource;
}

export interface ClintState {
  msip: boolean[];
  /** mtimecmp per hart as 32-bit halves, so the full 64-bit value survives JSON. */
  mtimecmpLow: number[];
  mtimecmpHigh: number[];
}

export class Clint implements MmioDevice {
  readonly name = "clint";
  private readonly harts: InterruptTarget[];
  private readonly time: TimeSource;
  private readonly msip: boolean[];
  private readonly cmpLow: Uint32Array;
  private readonly cmpHigh: Uint32Array;
  private readonly mtip: boolean[];
  // mtime high word as latched by the last read of the low word, so a 64-bit read is consistent.
  private latchedHigh = 0;
  private highLatched = false;

  constructor(options: ClintOptions) {
    if (options.harts.length > CLINT_MAX_HARTS) {
      throw new RangeError(`Cannot build a CLINT for ${options.harts.length} harts: the layout holds at most ${CLINT_MAX_HARTS}`);
    }
    this.harts = options.harts;
    this.time = options.time;
    const n = this.harts.length;
    this.msip = new Array<boolean>(n).fill(false);
    // Reset compare values to the maximum: no timer interrupt until software programs one.
    this.cmpLow = new Uint32Array(n).fill(0xffffffff);
    this.cmpHigh = new Uint32Array(n).fill(0xffffffff);
    this.mtip = new Array<boolean>(n).fill(false);
  }

  /** Re-evaluates every hart's MTIP against the current time; the run loop calls this between slices. */
  update(): void {
    const now = this.time.now();
    for (let h = 0; h < this.harts.length; h++) this.setMtip(h, now >= this.compareValue(h), false);
  }

  /** Earliest mtimecmp among harts in TimeSource ticks (possibly already past); Infinity when no timer is armed. */
  nextDeadline(): number {
    let earliest = Infinity;
    for (let h = 0; h < this.harts.length; h++) earliest = Math.min(earliest, this.compareValue(h));
    // Compare values past 2^53 ticks (software writes all-ones to disarm) are never reached.
    return earliest > Number.MAX_SAFE_INTEGER ? Infinity : earliest;
  }

  read(offset: number, size: 1 | 2 | 4): number {
    if (size !== 4 || offset % 4 !== 0) return 0; // registers are 32-bit words; other accesses read 0
    if (offset === MTIME || offset === MTIME + 4) return this.readMtime(offset === MTIME);
    this.highLatched = false;
    const hartMsip = (offset - MSIP_BASE) / 4;
    if (offset >= MSIP_BASE && hartMsip < this.harts.length) return this.msip[hartMsip] ? 1 : 0;
    const cmp = this.cmpIndex(offset);
    if (cmp !== null) return cmp.high ? this.cmpHigh[cmp.hart] : this.cmpLow[cmp.hart];
    return 0;
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    this.highLatched = false;
    if (size !== 4 || offset % 4 !== 0) return;
    const hartMsip = (offset - MSIP_BASE) / 4;
    if (offset >= MSIP_BASE && hartMsip < this.harts.length) {
      const level = (value & 1) !== 0;
      if (level !== this.msip[hartMsip]) {
        this.msip[hartMsip] = level;
        this.harts[hartMsip].setInterruptPending(MIP_MSIP, level);
      }
      return;
    }
    const cmp = this.cmpIndex(offset);
    if (cmp !== null) {
      if (cmp.high) this.cmpHigh[cmp.hart] = value >>> 0;
      else this.cmpLow[cmp.hart] = value >>> 0;
      this.setMtip(cmp.hart, this.time.now() >= this.compareValue(cmp.hart), false);
    }
    // mtime writes are ignored: it is the shared TimeSource, which also feeds every hart's `time` CSR.
  }

  save(): ClintState {
    return { msip: [...this.msip], mtimecmpLow: Array.from(this.cmpLow), mtimecmpHigh: Array.from(this.cmpHigh) };
  }

  restore(state: ClintState): void {
    const now = this.time.now();
    for (let h = 0; h < this.harts.length; h++) {
      this.msip[h] = state.msip[h] === true;
      this.harts[h].setInterruptPending(MIP_MSIP, this.msip[h]);
      this.cmpLow[h] = (state.mtimecmpLow[h] ?? 0xffffffff) >>> 0;
      this.cmpHigh[h] = (state.mtimecmpHigh[h] ?? 0xffffffff) >>> 0;
      this.setMtip(h, now >= this.compareValue(h), true);
    }
  }

  private readMtime(low: boolean): number {
    if (!low && this.highLatched) {
      this.highLatched = false;
      return this.latchedHigh;
    }
    const now = this.time.now();
    const lo = now % TWO_32 >>> 0;
    const hi = Math.floor(now / TWO_32) >>> 0;
    this.latchedHigh = hi;
    this.highLatched = low;
    return low ? lo : hi;
  }

  private cmpIndex(offset: number): { hart: number; high: boolean } | null {
    const rel = offset - MTIMECMP_BASE;
    if (rel < 0) return null;
    const hart = Math.floor(rel / 8);
    if (hart >= this.harts.length) return null;
    return { hart, high: rel % 8 === 4 };
  }

  // As a double; values beyond 2^53 round, but stay far beyond any reachable time.
  private compareValue(hart: number): number {
    return this.cmpHigh[hart] * TWO_32 + this.cmpLow[hart];
  }

  private setMtip(hart: number, level: boolean, force: boolean): void {
    if (level === this.mtip[hart] && !force) return;
    this.mtip[hart] = level;
    this.harts[hart].setInterruptPending(MIP_MTIP, level);
  }
}
