// The SYSTEM opcode (Zicsr, ecall/ebreak, xret, wfi, sfence.vma) and CSR access for debuggers and firmware.
import { EXIT_SBI } from "./exit.js";
import * as KC from "./constants.js";
import * as CSR from "./csr.js";
import { HartMemory } from "./hart_memory.js";
import { TWO32 } from "./hart_base.js";

// Module-local copies of imported bindings: ESM loaders may turn each cross-module read into a
// getter call, which showed up at several percent in profiles of the interpreter loop.
const { C64_MEPC, C64_SEPC, csrAccessAllowed, csrRead } = CSR;
const { CSR_SSTATUS, CSR_SIE, CSR_SIP, CSR_SATP, CSR_MSTATUS, CSR_MIE, CSR_MIP, CSR_MIDELEG } = KC;
const {
  CAUSE_BREAKPOINT, CAUSE_ILLEGAL_INSTRUCTION, CAUSE_MACHINE_ECALL, CAUSE_SUPERVISOR_ECALL, CAUSE_USER_ECALL,
  MSTATUS_MIE, MSTATUS_MPIE, MSTATUS_MPP, MSTATUS_MPP_SHIFT, MSTATUS_MPRV, MSTATUS_SIE, MSTATUS_SPIE,
  MSTATUS_SPP, MSTATUS_TSR, MSTATUS_TVM, MSTATUS_TW, PRV_M, PRV_S, PRV_U,
} = KC;

/** CSRs whose writes can enable an interrupt or change privilege/translation: the slice must end. */
function csrAffectsControl(csr: number): boolean {
  return csr === CSR_SSTATUS || csr === CSR_SIE || csr === CSR_SIP || csr === CSR_SATP ||
    csr === CSR_MSTATUS || csr === CSR_MIE || csr === CSR_MIP || csr === CSR_MIDELEG;
}

export abstract class HartSystem extends HartMemory {
  /** Debug/firmware access to a CSR without privilege checks; null if the CSR does not exist. */
  readCsr(csr: number): bigint | null {
    if (!csrRead(this, csr)) return null;
    return (BigInt(this.csrHi | 0) << 32n) | BigInt(this.csrLo >>> 0);
  }

  /** Debug/firmware write of a CSR with its normal WARL rules; false if the CSR does not exist. */
  writeCsr(csr: number, v: bigint): boolean {
    if (!csrRead(this, csr)) return false;
    this.writeCsrWithEffects(csr, Number(v & 0xffffffffn) | 0, Number((v >> 32n) & 0xffffffffn) | 0);
    return true;
  }

  /**
   * SYSTEM opcode (CSR access, ecall/ebreak, xret, wfi, sfence.vma). Always ends the slice.
   * Returns the next pc, or NaN after raising an exception.
   */
  protected execSystem(insn: number, ilen: number, rawInsn: number): number {
    const pc = this.pc;
    const f3 = (insn >>> 12) & 7;
    const rd = (insn >>> 7) & 31;
    const rs1 = (insn >>> 15) & 31;
    const npc = pc + ilen;
    if (f3 === 0) {
      if (insn === 0x00000073) {
        if (this.priv === PRV_S && this.sbiExits) {
          this.pc = pc;
          this.exitPending = EXIT_SBI;
          return NaN; // not retired: completeSbi() retires it once the VMM has answered
        }
        this.raise(this.priv === PRV_U ? CAUSE_USER_ECALL : this.priv === PRV_S ? CAUSE_SUPERVISOR_ECALL : CAUSE_MACHINE_ECALL, 0, 0);
        return NaN;
      }
      if (insn === 0x00100073) {
        this.raiseAt(CAUSE_BREAKPOINT, pc);
        return NaN;
      }
      if (insn === 0x30200073 && this.priv === PRV_M) {
        const m = this.mstatus;
        const mpp = (m >>> MSTATUS_MPP_SHIFT) & 3;
        let v = m & ~(MSTATUS_MIE | MSTATUS_MPP);
        if (m & MSTATUS_MPIE) v |= MSTATUS_MIE;
        v |= MSTATUS_MPIE;
        if (mpp !== PRV_M) v &= ~MSTATUS_MPRV;
        this.mstatus = v;
        this.setPriv(mpp);
        this.updateDataPriv();
        this.resValid = false;
        return this.c64[2 * C64_MEPC + 1] * TWO32 + (this.c64[2 * C64_MEPC] >>> 0);
      }
      if (insn === 0x10200073 && (this.priv === PRV_M || (this.priv === PRV_S && (this.mstatus & MSTATUS_TSR) === 0))) {
        const m = this.mstatus;
        const spp = (m & MSTATUS_SPP) !== 0 ? PRV_S : PRV_U;
        let v = m & ~(MSTATUS_SIE | MSTATUS_SPP | MSTATUS_MPRV);
        if (m & MSTATUS_SPIE) v |= MSTATUS_SIE;
        v |= MSTATUS_SPIE;
        this.mstatus = v;
        this.setPriv(spp);
        this.updateDataPriv();
        this.resValid = false;
        return this.c64[2 * C64_SEPC + 1] * TWO32 + (this.c64[2 * C64_SEPC] >>> 0);
      }
      if (insn === 0x10500073 && (this.priv === PRV_M || (this.priv === PRV_S && (this.mstatus & MSTATUS_TW) === 0))) {
        if ((this.mip() & this.mie) === 0) this.waiting = true;
        return npc;
      }
      if (insn >>> 25 === 0x09 && rd === 0 &&
        (this.priv === PRV_M || (this.priv === PRV_S && (this.mstatus & MSTATUS_TVM) === 0))) {
        // By address, every address space's entries of the page go (as with rs2 = x0: never too few).
        const rs2 = (insn >>> 20) & 31;
        if (rs1 !== 0) this.flushTlbPage(this.x[2 * rs1], this.x[2 * rs1 + 1]);
        else if (rs2 !== 0) this.flushAsid(this.x[2 * rs2]! & 0xffff); // rs2's bits above the ASID's are ignored
        else this.flushTlb();
        return npc;
      }
      this.raise(CAUSE_ILLEGAL_INSTRUCTION, rawInsn, 0);
      return NaN;
    }
    if (f3 === 4) {
      this.raise(CAUSE_ILLEGAL_INSTRUCTION, rawInsn, 0);
      return NaN;
    }
    // Zicsr.
    const csr = insn >>> 20;
    const op = f3 & 3;
    const writes = op === 1 || rs1 !== 0;
    if (!csrAccessAllowed(this, csr, writes) || !csrRead(this, csr)) {
      this.raise(CAUSE_ILLEGAL_INSTRUCTION, rawInsn, 0);
      return NaN;
    }
    const oldLo = this.csrLo, oldHi = this.csrHi;
    if (writes) {
      let sl: number, sh: number;
      if (f3 >= 5) { sl = rs1; sh = 0; } else { sl = this.x[2 * rs1]; sh = this.x[2 * rs1 + 1]; }
      if (op === 2) { sl |= oldLo; sh |= oldHi; } else if (op === 3) { sl = oldLo & ~sl; sh = oldHi & ~sh; }
      this.writeCsrWithEffects(csr, sl, sh);
      if (!csrAffectsControl(csr)) this.sliceExit = false;
    } else {
      this.sliceExit = false;
    }
    if (rd !== 0) { this.x[2 * rd] = oldLo; this.x[2 * rd + 1] = oldHi; }
    return npc;
  }
}
