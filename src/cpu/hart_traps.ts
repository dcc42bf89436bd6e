// Interrupts and traps: pending-interrupt selection, the supervisor timer, trap entry with
// delegation, and the boot state the built-in SBI hands to a supervisor.
import * as KC from "./constants.js";
import * as CSR from "./csr.js";
import { HartBase, TWO32 } from "./hart_base.js";

// Module-local copies of imported bindings: ESM loaders may turn each cross-module read into a
// getter call, which showed up at several percent in profiles of the interpreter loop.
const { C64_MCAUSE, C64_MEPC, C64_MTVAL, C64_MTVEC, C64_SCAUSE, C64_SEPC, C64_STVAL, C64_STVEC } = CSR;
const {
  CAUSE_BREAKPOINT, CAUSE_FETCH_ACCESS, CAUSE_FETCH_PAGE_FAULT, CAUSE_ILLEGAL_INSTRUCTION, CAUSE_LOAD_ACCESS,
  CAUSE_LOAD_PAGE_FAULT, CAUSE_MISALIGNED_FETCH, CAUSE_MISALIGNED_LOAD, CAUSE_MISALIGNED_STORE,
  CAUSE_STORE_ACCESS, CAUSE_STORE_PAGE_FAULT, CAUSE_USER_ECALL, IRQ_M_EXT, IRQ_M_SOFT, IRQ_M_TIMER,
  IRQ_S_EXT, IRQ_S_SOFT, IRQ_S_TIMER, MIP_MEIP, MIP_MSIP, MIP_MTIP, MIP_SEIP, MIP_SSIP, MIP_STIP,
  MSTATUS_MIE, MSTATUS_MPIE, MSTATUS_MPP, MSTATUS_MPP_SHIFT, MSTATUS_SIE, MSTATUS_SPIE, MSTATUS_SPP, PRV_M,
  PRV_S, S_INTERRUPTS,
} = KC;

export abstract class HartTraps extends HartBase {
  get stimecmp(): number {
    return this.stimecmpValue;
  }

  /** Setting the compare value updates STIP at once (sbi_set_timer clears a pending timer). */
  set stimecmp(v: number) {
    this.stimecmpValue = v;
    this.updateStimer();
  }

  setInterruptPending(bit: number, level: boolean): void {
    if (bit === IRQ_S_SOFT) {
      // SSIP is one software-visible bit (the guest clears it through sip).
      if (level) this.mipSw |= MIP_SSIP; else this.mipSw &= ~MIP_SSIP;
    } else {
      const m = 1 << bit;
      if (level) this.mipDev |= m; else this.mipDev &= ~m;
    }
    if (level && (this.mip() & this.mie) !== 0) {
      this.waiting = false;
      this.irqRaised = true;
    }
  }

  enterSupervisorBoot(pc: number, a0: bigint, a1: bigint): void {
    // Same delegation as OpenSBI, plus illegal instruction (no M-mode emulation here).
    this.medeleg = (1 << CAUSE_MISALIGNED_FETCH) | (1 << CAUSE_FETCH_ACCESS) | (1 << CAUSE_ILLEGAL_INSTRUCTION) |
      (1 << CAUSE_BREAKPOINT) | (1 << CAUSE_MISALIGNED_LOAD) | (1 << CAUSE_LOAD_ACCESS) |
      (1 << CAUSE_MISALIGNED_STORE) | (1 << CAUSE_STORE_ACCESS) | (1 << CAUSE_USER_ECALL) |
      (1 << CAUSE_FETCH_PAGE_FAULT) | (1 << CAUSE_LOAD_PAGE_FAULT) | (1 << CAUSE_STORE_PAGE_FAULT);
    this.mideleg = S_INTERRUPTS;
    this.mcounteren = 0xffffffff;
    // Sstc on, as OpenSBI leaves it on a hart that has it: the kernel writes stimecmp itself instead of calling SBI set_timer.
    this.menvcfg = CSR.MENVCFG_STCE_WORD;
    // OpenSBI sets scounteren = CY|TM|IR at boot; Linux relies on it for rdtime in the vDSO
    // unless the SBI PMU driver rewrites it.
    this.scounteren = 7;
    // PMP entry 0: NAPOT over all of memory, RWX.
    this.pmpaddr[0] = -1;
    this.pmpaddr[1] = 0x3fffff;
    this.pmpcfg[0] = 0x1f;
    this.mie = 0;
    this.writeMstatus(0); // FS off, interrupts off, MPP = U
    this.c64.fill(0);
    this.satpChanged();
    this.setX(10, a0);
    this.setX(11, a1);
    this.setPriv(PRV_S);
    this.pc = pc;
    this.waiting = false;
    this.stopped = false;
  }

  protected override updateStimer(): void {
    if (this.stimecmpValue === Infinity) {
      this.mipDev &= ~MIP_STIP;
      return;
    }
    if (this.time.now() >= this.stimecmpValue) {
      this.mipDev |= MIP_STIP;
      if ((this.mie & MIP_STIP) !== 0) this.waiting = false;
    } else {
      this.mipDev &= ~MIP_STIP;
    }
  }

  /** Highest-priority interrupt that is pending, enabled and takeable now, or -1. */
  protected pendingInterrupt(): number {
    const pending = this.mip() & this.mie;
    if (pending === 0) return -1;
    const mEnabled = this.priv < PRV_M || (this.mstatus & MSTATUS_MIE) !== 0;
    const m = mEnabled ? pending & ~this.mideleg : 0;
    if (m !== 0) {
      if (m & MIP_MEIP) return IRQ_M_EXT;
      if (m & MIP_MSIP) return IRQ_M_SOFT;
      if (m & MIP_MTIP) return IRQ_M_TIMER;
      if (m & MIP_SEIP) return IRQ_S_EXT;
      if (m & MIP_SSIP) return IRQ_S_SOFT;
      if (m & MIP_STIP) return IRQ_S_TIMER;
    }
    const sEnabled = this.priv < PRV_S || (this.priv === PRV_S && (this.mstatus & MSTATUS_SIE) !== 0);
    const s = sEnabled ? pending & this.mideleg : 0;
    if (s !== 0) {
      if (s & MIP_SEIP) return IRQ_S_EXT;
      if (s & MIP_SSIP) return IRQ_S_SOFT;
      if (s & MIP_STIP) return IRQ_S_TIMER;
    }
    return -1;
  }

  /** Enter the trap handler for `cause` at this.pc (the faulting/interrupted instruction). */
  protected takeTrap(cause: number, interrupt: boolean, tvalLo: number, tvalHi: number): void {
    this.trapCounts[cause + (interrupt ? 32 : 0)]++;
    this.resValid = false;
    const epcLo = this.pc | 0; // ToInt32 is exact mod 2^32 for integers (no Float64Mod)
    const epcHi = Math.floor(this.pc / TWO32) | 0;
    const deleg = this.priv <= PRV_S && (((interrupt ? this.mideleg : this.medeleg) >>> cause) & 1) !== 0;
    const c = this.c64;
    let tvec: number;
    if (deleg) {
      c[2 * C64_SCAUSE] = cause;
      c[2 * C64_SCAUSE + 1] = interrupt ? 0x80000000 | 0 : 0;
      c[2 * C64_SEPC] = epcLo;
      c[2 * C64_SEPC + 1] = epcHi;
      c[2 * C64_STVAL] = tvalLo;
      c[2 * C64_STVAL + 1] = tvalHi;
      let m = this.mstatus & ~(MSTATUS_SPIE | MSTATUS_SIE | MSTATUS_SPP);
      if (this.mstatus & MSTATUS_SIE) m |= MSTATUS_SPIE;
      if (this.priv === PRV_S) m |= MSTATUS_SPP;
      this.mstatus = m;
      tvec = C64_STVEC;
      this.setPriv(PRV_S);
    } else {
      c[2 * C64_MCAUSE] = cause;
      c[2 * C64_MCAUSE + 1] = interrupt ? 0x80000000 | 0 : 0;
      c[2 * C64_MEPC] = epcLo;
      c[2 * C64_MEPC + 1] = epcHi;
      c[2 * C64_MTVAL] = tvalLo;
      c[2 * C64_MTVAL + 1] = tvalHi;
      let m = this.mstatus & ~(MSTATUS_MPIE | MSTATUS_MIE | MSTATUS_MPP);
      if (this.mstatus & MSTATUS_MIE) m |= MSTATUS_MPIE;
      m |= this.priv << MSTATUS_MPP_SHIFT;
      this.mstatus = m;
      tvec = C64_MTVEC;
      if (this.priv === PRV_M) this.updateDataPriv(); // MPP changed: matters under MPRV
      else this.setPriv(PRV_M);
    }
    const lo = c[2 * tvec];
    let base = (c[2 * tvec + 1] * TWO32) + ((lo & ~3) >>> 0);
    if ((lo & 3) === 1 && interrupt) base += 4 * cause;
    this.pc = base;
    this.codeVBase = NaN;
  }

  protected raise(cause: number, tvalLo: number, tvalHi: number): void {
    this.excPending = true;
    this.excCause = cause;
    this.excTvalLo = tvalLo;
    this.excTvalHi = tvalHi;
  }

  /** Raise an exception whose tval is a pc-like number. */
  protected raiseAt(cause: number, addr: number): void {
    this.raise(cause, addr | 0, Math.floor(addr / TWO32) | 0);
  }
}
