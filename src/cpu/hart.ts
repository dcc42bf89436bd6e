// The RISC-V hart: RV64IMAC + Zicsr + Zifencei with M/S/U privilege and Sv39/Sv48.
// Interpreter loops in the TinyEMU style (execFast: the call-free common case; execSlow: every
// instruction, one at a time when execFast declines): integer registers as (lo, hi) int32 pairs,
// direct-mapped software TLBs with an inline fast path, fetch through a cached RAM offset for the
// current code page, faults leave the loop through one exit, and interrupts are checked between slices.
// One responsibility per file, layered as a class chain (each file extends the one before):
// hart_base (state, TLBs) -> hart_traps -> hart_memory (slow loads/stores, atomics) -> hart_system
// (SYSTEM opcode) -> exec_slow -> exec_fast -> hart (run(), exit completion, snapshots, public API).
import { EXIT_BUDGET, EXIT_MMIO, EXIT_SBI, EXIT_STOPPED, EXIT_WFI } from "./exit.js";
import type { InterruptTarget } from "../seams/interrupts.js";
import * as KC from "./constants.js";
import { HartJitLoop } from "./exec_jit.js";

export type { HartOptions } from "./hart_base.js";

// Module-local copies of imported bindings: ESM loaders may turn each cross-module read into a
// getter call, which showed up at several percent in profiles of the interpreter loop.
const { CAUSE_LOAD_ACCESS, CAUSE_STORE_ACCESS, PRV_M } = KC;

/** Plain, JSON-serializable hart state; 64-bit registers are (lo, hi) int32 word pairs. */
export interface HartState {
  hartId: number;
  x: number[];          // 64 int32 words, lo/hi pairs
  f: number[];          // 64 int32 words, lo/hi pairs
  frm: number;
  fflags: number;
  pc: number;
  privilege: number;
  mstatus: number;
  mie: number;
  mipSoftware: number;
  mipDevice: number;
  medeleg: number;
  mideleg: number;
  mcounteren: number;
  scounteren: number;
  mcountinhibit: number;
  menvcfg: number;
  senvcfg: number;
  csr64: number[];      // C64_* slots as lo/hi pairs
  pmpcfg: number[];
  pmpaddr: number[];
  instret: number;
  /** mcycle / minstret offsets from instret, and their values while mcountinhibit froze them ([cycle, -, instret]). */
  counterDelta?: number[];
  counterFrozen?: number[];
  stimecmp: number | null; // null = off (Infinity)
  waiting: boolean;
  stopped: boolean;
  reservationValid: boolean;
  reservationAddr: number;
  reservationLo: number;
  reservationHi: number;
  reservationSize: number;
}

export interface HartStats {
  instret: number;
  /** Traps taken, keyed "exception:<cause>" or "interrupt:<cause>". */
  trapsByCause: Map<string, number>;
  wfiIdleMs: number;
}

/** Longest uninterrupted run between interrupt/timer checks. */
const MAX_SLICE = 1 << 15;

export class Hart extends HartJitLoop implements InterruptTarget {
  get stats(): HartStats {
    const m = new Map<string, number>();
    for (let i = 0; i < 64; i++) {
      if (this.trapCounts[i] !== 0) m.set(`${i >= 32 ? "interrupt" : "exception"}:${i & 31}`, this.trapCounts[i]);
    }
    return { instret: this.instret, trapsByCause: m, wfiIdleMs: 0 };
  }

  getPc(): number {
    return this.pc;
  }

  /** What decides whether this hart takes an interrupt, for query-interrupts (a moment's view while it runs). */
  describeInterrupts(): { pc: string; privilege: number; mip: string; mie: string; mstatus: string; waiting: boolean; stopped: boolean } {
    const hex = (v: number): string => `0x${(v >>> 0).toString(16)}`;
    return { pc: `0x${BigInt.asUintN(64, BigInt(this.pc)).toString(16)}`, privilege: this.priv, mip: hex(this.mip()), mie: hex(this.mie), mstatus: hex(this.mstatus), waiting: this.waiting, stopped: this.stopped };
  }

  setPc(pc: number): void {
    this.pc = pc;
  }

  /**
   * Executes up to `budget` instructions and returns how many retired; `exit` says why it stopped
   * (exit.ts): the budget, WFI with nothing pending, a stopped hart, or an MMIO access or SBI call
   * the VMM must complete first. Traps taken also consume budget (one each).
   */
  run(budget: number): number {
    const exit = this.exit;
    let retired = 0;
    let work = 0;
    let lastTimerCheck = -MAX_SLICE;
    exit.reason = EXIT_BUDGET;
    if (this.exitPending !== 0) throw new Error(`hart ${this.hartId}: run() called before its ${this.exitPending === EXIT_SBI ? "SBI" : "MMIO"} exit was completed`);
    while (work < budget) {
      if (this.stopped) { exit.reason = EXIT_STOPPED; break; }
      if (this.excPending) {
        this.excPending = false;
        this.takeTrap(this.excCause, false, this.excTvalLo, this.excTvalHi);
        work++;
        continue;
      }
      if (this.stimecmpValue !== Infinity && (work - lastTimerCheck >= 4096 || this.waiting)) {
        lastTimerCheck = work;
        this.updateStimer();
      }
      const irq = this.pendingInterrupt();
      if (irq >= 0) {
        this.waiting = false;
        this.takeTrap(irq, true, 0, 0);
        work++;
        continue;
      }
      if (this.waiting) {
        if ((this.mip() & this.mie) === 0) { exit.reason = EXIT_WFI; break; }
        this.waiting = false;
      }
      let n = budget - work;
      if (n > MAX_SLICE) n = MAX_SLICE;
      const done = this.execSlice(n); // adds to this.instret itself
      retired += done;
      work += done;
      if (this.exitPending !== 0) {
        exit.reason = this.exitPending as typeof EXIT_MMIO | typeof EXIT_SBI;
        break;
      }
      if (done === 0 && !this.excPending) work++; // a slice that did nothing still makes progress
    }
    exit.retired = retired;
    return retired;
  }

  /**
   * The VMM performed the MMIO exit's access: `lo`/`hi` is the value a load reads (ignored for
   * stores). With `fault`, no device answered: the instruction takes an access fault instead.
   * Otherwise the instruction retires here, at once, taking the value (before any interrupt: a
   * handler's own device access must not take it): between run() calls the hart's state must be
   * whole, because a snapshot or a migration may take it there, and a value held for a later
   * replay is in no saved state (a migrated guest read its UART's IIR a second time, found the
   * THR-empty event gone, and never sent another byte). Returns the instructions retired (0 or 1).
   */
  completeMmio(lo: number, hi = 0, fault = false): number {
    if (this.exitPending !== EXIT_MMIO) throw new Error(`hart ${this.hartId}: completeMmio without an MMIO exit`);
    this.exitPending = 0;
    const e = this.exit;
    if (fault) {
      this.raise(e.mmioWrite ? CAUSE_STORE_ACCESS : CAUSE_LOAD_ACCESS, this.mmioVLo, this.mmioVHi);
      return 0;
    }
    if (!e.mmioWrite) {
      e.mmioValueLo = lo | 0;
      e.mmioValueHi = hi | 0;
    }
    this.mmioReplay = true;
    const done = this.execSlow(1);
    this.mmioReplay = false;
    return done;
  }

  /** The VMM answered the SBI exit (a0/a1 are set): the ecall retires. */
  completeSbi(): void {
    if (this.exitPending !== EXIT_SBI) throw new Error(`hart ${this.hartId}: completeSbi without an SBI exit`);
    this.exitPending = 0;
    if (this.stopped) return; // HSM stop: the hart keeps its pc until it is started again
    this.pc = this.pc + 4;
    this.instret++;
  }

  /**
   * Runs at most `limit` instructions; stops after any SYSTEM instruction that may change control
   * state, a fault, or a device interrupt raised by MMIO. Returns instructions retired.
   * Alternates the call-free fast loop with single steps of the full interpreter for whatever the
   * fast loop declines (TLB misses, MMIO, SYSTEM, atomics, FP, traps).
   */
  private execSlice(limit: number): number {
    let n = 0;
    while (n < limit) {
      this.sliceExit = false;
      if (!this.slowPathOnly) n += this.jit !== null ? this.execJit(limit - n) : this.execFast(limit - n);
      if (n >= limit || this.sliceExit) break; // compiled code wrote sstatus (JIT_SLICE_END)
      const k = this.execSlow(1);
      n += k;
      if (k === 0 || this.excPending || this.sliceExit || this.irqRaised || this.exitPending !== 0) break;
    }
    return n;
  }

  save(): HartState {
    return {
      hartId: this.hartId,
      x: Array.from(this.x),
      f: Array.from(this.f),
      frm: this.fp.frm,
      fflags: this.fp.fflags,
      pc: this.pc,
      privilege: this.priv,
      mstatus: this.mstatus,
      mie: this.mie,
      mipSoftware: this.mipSw,
      mipDevice: this.mipDev,
      medeleg: this.medeleg,
      mideleg: this.mideleg,
      mcounteren: this.mcounteren,
      scounteren: this.scounteren,
      mcountinhibit: this.mcountinhibit,
      menvcfg: this.menvcfg,
      senvcfg: this.senvcfg,
      csr64: Array.from(this.c64),
      pmpcfg: Array.from(this.pmpcfg),
      pmpaddr: Array.from(this.pmpaddr),
      instret: this.instret,
      counterDelta: Array.from(this.counterDelta),
      counterFrozen: Array.from(this.counterFrozen),
      stimecmp: this.stimecmpValue === Infinity ? null : this.stimecmpValue,
      waiting: this.waiting,
      stopped: this.stopped,
      reservationValid: this.resValid,
      reservationAddr: this.resAddr,
      reservationLo: this.resLo,
      reservationHi: this.resHi,
      reservationSize: this.resSize,
    };
  }

  restore(s: HartState): void {
    if (s.x.length !== 64 || s.f.length !== 64 || s.csr64.length !== this.c64.length ||
      s.pmpcfg.length !== this.pmpcfg.length || s.pmpaddr.length !== this.pmpaddr.length) {
      throw new RangeError(`Cannot restore hart ${this.hartId}: the saved register arrays have the wrong length (corrupt or foreign snapshot)`);
    }
    this.x.set(s.x);
    this.x[0] = 0;
    this.x[1] = 0;
    this.f.set(s.f);
    this.fp.frm = s.frm & 7;
    this.fp.fflags = s.fflags & 0x1f;
    this.pc = s.pc;
    this.mstatus = s.mstatus;
    this.mie = s.mie;
    this.mipSw = s.mipSoftware;
    this.mipDev = s.mipDevice;
    this.medeleg = s.medeleg;
    this.mideleg = s.mideleg;
    this.mcounteren = s.mcounteren;
    this.scounteren = s.scounteren;
    this.mcountinhibit = s.mcountinhibit;
    this.menvcfg = s.menvcfg;
    this.senvcfg = s.senvcfg;
    this.c64.set(s.csr64);
    this.pmpcfg.set(s.pmpcfg);
    this.pmpaddr.set(s.pmpaddr);
    this.instret = s.instret;
    this.counterDelta.fill(0);
    this.counterFrozen.fill(0);
    if (s.counterDelta?.length === 3) this.counterDelta.set(s.counterDelta);
    if (s.counterFrozen?.length === 3) this.counterFrozen.set(s.counterFrozen);
    this.stimecmpValue = s.stimecmp === null ? Infinity : s.stimecmp;
    this.waiting = s.waiting;
    this.stopped = s.stopped;
    this.resValid = s.reservationValid;
    this.resAddr = s.reservationAddr;
    this.resLo = s.reservationLo;
    this.resHi = s.reservationHi;
    this.resSize = s.reservationSize;
    this.excPending = false;
    // A saved hart is at an instruction boundary: no exit is pending and no MMIO result waits.
    this.exitPending = 0;
    this.mmioReplay = false;
    this.priv = s.privilege === 0 || s.privilege === 1 ? s.privilege : PRV_M;
    this.satpChanged();
    this.updateDataPriv();
  }
}
