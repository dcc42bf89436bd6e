// Control and status registers: access rules, read and write side effects.
// csrRead/csrWrite operate on the hart's fields; the hart's loop calls them for Zicsr instructions.
import type { HartTraps } from "./hart_traps.js";
import * as KC from "./constants.js";

// Local copies: cross-module reads can cost a getter call per access under ESM loaders.
const {
  CSR_CYCLE, CSR_FCSR, CSR_FFLAGS, CSR_FRM, CSR_INSTRET, CSR_MARCHID, CSR_MCAUSE, CSR_MCONFIGPTR,
  CSR_MCOUNTEREN, CSR_MCOUNTINHIBIT, CSR_MCYCLE, CSR_MEDELEG, CSR_MENVCFG, CSR_MEPC, CSR_MHARTID,
  CSR_MIDELEG, CSR_MIE, CSR_MIMPID, CSR_MINSTRET, CSR_MIP, CSR_MISA, CSR_MSCRATCH, CSR_MSTATUS,
  CSR_MTVAL, CSR_MTVEC, CSR_MVENDORID, CSR_PMPADDR0, CSR_PMPCFG0, CSR_SATP, CSR_SCAUSE,
  CSR_SCOUNTEREN, CSR_SENVCFG, CSR_SEPC, CSR_SIE, CSR_SIP, CSR_SSCRATCH, CSR_SSTATUS, CSR_STVAL,
  CSR_STVEC, CSR_TIME, ALL_INTERRUPTS, MEDELEG_WRITABLE, MIP_SSIP, MISA_HI, MISA_LO, MSTATUS_FS,
  MSTATUS_HI_SXL, MSTATUS_HI_UXL, MSTATUS_MPP, MSTATUS_TVM, MSTATUS_WRITABLE, PRV_M, PRV_S, PRV_U,
  S_INTERRUPTS, SATP_BARE, SATP_SV39, SATP_SV48, SSTATUS_MASK, MIP_SEIP, MIP_STIP,
} = KC;

// Slots of 64-bit CSRs in Hart.c64 (pair i at [2i], [2i+1]).
export const C64_MTVEC = 0;
export const C64_STVEC = 1;
export const C64_MEPC = 2;
export const C64_SEPC = 3;
export const C64_MSCRATCH = 4;
export const C64_SSCRATCH = 5;
export const C64_MTVAL = 6;
export const C64_STVAL = 7;
export const C64_MCAUSE = 8;
export const C64_SCAUSE = 9;
export const C64_SATP = 10;
export const C64_COUNT = 11;

const TWO32 = 4294967296;

// Debug-trigger CSRs (debug spec): tselect exists so probing software learns there are no
// triggers without an illegal-instruction trap — it never reads back the index written.
export const CSR_TSELECT = 0x7a0;
export const CSR_TDATA1 = 0x7a1;
export const CSR_TDATA3 = 0x7a3;
export const CSR_TINFO = 0x7a4;
/** tinfo with only bit 0 (type 0): no trigger exists at any index. */
const TINFO_NO_TRIGGER = 1;

/** Counter indexes: the bit in mcountinhibit and the slot in the hart's counter offset arrays. */
export const COUNTER_CYCLE = 0;
export const COUNTER_INSTRET = 2;

/**
 * mcycle / minstret: the hart's retire count plus a per-counter offset, or a frozen value while
 * mcountinhibit stops the counter. (Cycles are counted as one per instruction.)
 */
export function counterValue(h: HartTraps, counter: number): number {
  if ((h.mcountinhibit >>> counter) & 1) return h.counterFrozen[counter]!;
  return h.instret + h.counterDelta[counter]!;
}

/**
 * A CSR write to a counter replaces the writing instruction's own increment: the instruction
 * retires after this write and adds 1 to instret, so the offset takes that 1 back.
 */
function writeCounter(h: HartTraps, counter: number, value: number): void {
  if ((h.mcountinhibit >>> counter) & 1) h.counterFrozen[counter] = value;
  else h.counterDelta[counter] = value - (h.instret + 1);
}

function writeCountInhibit(h: HartTraps, value: number): void {
  for (const c of [COUNTER_CYCLE, COUNTER_INSTRET]) {
    const was = (h.mcountinhibit >>> c) & 1;
    const now = (value >>> c) & 1;
    if (was === now) continue;
    // Stopping counts this instruction; starting resumes from the frozen value at the next one.
    if (now) h.counterFrozen[c] = h.instret + 1 + h.counterDelta[c]!;
    else h.counterDelta[c] = h.counterFrozen[c]! - (h.instret + 1);
  }
  h.mcountinhibit = value;
}

function slot64(csr: number): number {
  switch (csr) {
    case CSR_MTVEC: return C64_MTVEC;
    case CSR_STVEC: return C64_STVEC;
    case CSR_MEPC: return C64_MEPC;
    case CSR_SEPC: return C64_SEPC;
    case CSR_MSCRATCH: return C64_MSCRATCH;
    case CSR_SSCRATCH: return C64_SSCRATCH;
    case CSR_MTVAL: return C64_MTVAL;
    case CSR_STVAL: return C64_STVAL;
    case CSR_MCAUSE: return C64_MCAUSE;
    case CSR_SCAUSE: return C64_SCAUSE;
    default: return -1;
  }
}

function setNumber(h: HartTraps, v: number): void {
  h.csrLo = v | 0; // ToInt32 is exact mod 2^32 for integers
  h.csrHi = Math.floor(v / TWO32) | 0;
}

/** mstatus high word: UXL, SXL, and SD when FS is dirty. */
function mstatusHigh(h: HartTraps, withSxl: boolean): number {
  const sd = (h.mstatus & MSTATUS_FS) === MSTATUS_FS ? 0x80000000 : 0;
  return (MSTATUS_HI_UXL | (withSxl ? MSTATUS_HI_SXL : 0) | sd) | 0;
}

/**
 * Privilege and read-only checks plus CSR-specific gates (counteren, TVM, FS).
 * Returns false when the access is an illegal instruction.
 */
export function csrAccessAllowed(h: HartTraps, csr: number, write: boolean): boolean {
  if (write && csr >>> 10 === 3) return false;
  if (h.priv < ((csr >>> 8) & 3)) return false;
  if (csr >= CSR_CYCLE && csr <= 0xc1f) {
    const bit = 1 << (csr & 31);
    if (h.priv < PRV_M && (h.mcounteren & bit) === 0) return false;
    if (h.priv === PRV_U && (h.scounteren & bit) === 0) return false;
  }
  if (csr === CSR_SATP && h.priv === PRV_S && (h.mstatus & MSTATUS_TVM) !== 0) return false;
  if (csr <= CSR_FCSR && (h.mstatus & MSTATUS_FS) === 0) return false;
  return true;
}

/** Reads a CSR into h.csrLo / h.csrHi. Returns false if the CSR does not exist. */
export function csrRead(h: HartTraps, csr: number): boolean {
  h.csrHi = 0;
  const s = slot64(csr);
  if (s >= 0) {
    h.csrLo = h.c64[2 * s];
    h.csrHi = h.c64[2 * s + 1];
    return true;
  }
  switch (csr) {
    case CSR_FFLAGS: h.csrLo = h.fp.fflags & 0x1f; return true;
    case CSR_FRM: h.csrLo = h.fp.frm & 7; return true;
    case CSR_FCSR: h.csrLo = ((h.fp.frm & 7) << 5) | (h.fp.fflags & 0x1f); return true;
    case CSR_CYCLE: case CSR_MCYCLE:
      setNumber(h, counterValue(h, COUNTER_CYCLE));
      return true;
    case CSR_INSTRET: case CSR_MINSTRET:
      setNumber(h, counterValue(h, COUNTER_INSTRET));
      return true;
    case CSR_TSELECT: h.csrLo = -1; h.csrHi = -1; return true;
    case CSR_TINFO: h.csrLo = TINFO_NO_TRIGGER; return true;
    case CSR_TIME: setNumber(h, Math.floor(h.time.now())); return true;
    case CSR_SSTATUS:
      h.csrLo = h.mstatus & SSTATUS_MASK;
      h.csrHi = mstatusHigh(h, false);
      return true;
    case CSR_SIE: h.csrLo = h.mie & h.mideleg; return true;
    case CSR_SIP: h.csrLo = h.mip() & h.mideleg; return true;
    case CSR_SCOUNTEREN: h.csrLo = h.scounteren; return true;
    case CSR_SENVCFG: h.csrLo = h.senvcfg; return true;
    case CSR_SATP: h.csrLo = h.c64[2 * C64_SATP]; h.csrHi = h.c64[2 * C64_SATP + 1]; return true;
    case CSR_MVENDORID: case CSR_MARCHID: case CSR_MIMPID: case CSR_MCONFIGPTR:
      h.csrLo = 0;
      return true;
    case CSR_MHARTID: h.csrLo = h.hartId; return true;
    case CSR_MSTATUS: h.csrLo = h.mstatus; h.csrHi = mstatusHigh(h, true); return true;
    case CSR_MISA: h.csrLo = MISA_LO; h.csrHi = MISA_HI; return true;
    case CSR_MEDELEG: h.csrLo = h.medeleg; return true;
    case CSR_MIDELEG: h.csrLo = h.mideleg; return true;
    case CSR_MIE: h.csrLo = h.mie; return true;
    case CSR_MIP: h.csrLo = h.mip(); return true;
    case CSR_MCOUNTEREN: h.csrLo = h.mcounteren; return true;
    case CSR_MENVCFG: h.csrLo = h.menvcfg; return true;
    case CSR_MCOUNTINHIBIT: h.csrLo = h.mcountinhibit; return true;
  }
  if (csr >= CSR_TDATA1 && csr <= CSR_TDATA3) {
    h.csrLo = 0; // tdata1.type 0: no trigger here
    return true;
  }
  if (csr >= CSR_PMPCFG0 && csr < CSR_PMPCFG0 + 16) {
    if ((csr & 1) !== 0) return false; // odd pmpcfg registers do not exist on RV64
    const i = csr - CSR_PMPCFG0;
    h.csrLo = h.pmpcfg[i];
    h.csrHi = h.pmpcfg[i + 1];
    return true;
  }
  if (csr >= CSR_PMPADDR0 && csr < CSR_PMPADDR0 + 64) {
    const i = (csr - CSR_PMPADDR0) * 2;
    h.csrLo = h.pmpaddr[i];
    h.csrHi = h.pmpaddr[i + 1];
    return true;
  }
  // hpmcounter3..31, mhpmcounter3..31, mhpmevent3..31: present, always zero.
  if ((csr >= 0xc03 && csr <= 0xc1f) || (csr >= 0xb03 && csr <= 0xb1f) || (csr >= 0x323 && csr <= 0x33f)) {
    h.csrLo = 0;
    return true;
  }
  return false;
}

/** Writes a CSR whose access was already checked by csrAccessAllowed and csrRead. */
export function csrWrite(h: HartTraps, csr: number, lo: number, hi: number): void {
  switch (csr) {
    case CSR_FFLAGS: h.fp.fflags = lo & 0x1f; h.markFpDirty(); return;
    case CSR_FRM: h.fp.frm = lo & 7; h.markFpDirty(); return;
    case CSR_FCSR: h.fp.fflags = lo & 0x1f; h.fp.frm = (lo >>> 5) & 7; h.markFpDirty(); return;
    case CSR_MTVEC: case CSR_STVEC: {
      // Modes 2 and 3 are reserved: fall back to direct.
      const s = slot64(csr);
      h.c64[2 * s] = (lo & 3) >= 2 ? lo & ~3 : lo;
      h.c64[2 * s + 1] = hi;
      return;
    }
    case CSR_MEPC: case CSR_SEPC: {
      const s = slot64(csr);
      h.c64[2 * s] = lo & ~1;
      h.c64[2 * s + 1] = hi;
      return;
    }
    case CSR_MSCRATCH: case CSR_SSCRATCH: case CSR_MTVAL: case CSR_STVAL: case CSR_MCAUSE: case CSR_SCAUSE: {
      const s = slot64(csr);
      h.c64[2 * s] = lo;
      h.c64[2 * s + 1] = hi;
      return;
    }
    case CSR_MCYCLE:
      writeCounter(h, COUNTER_CYCLE, (hi >>> 0) * TWO32 + (lo >>> 0));
      return;
    case CSR_MINSTRET:
      writeCounter(h, COUNTER_INSTRET, (hi >>> 0) * TWO32 + (lo >>> 0));
      return;
    case CSR_SSTATUS:
      h.writeMstatus((h.mstatus & ~SSTATUS_MASK) | (lo & SSTATUS_MASK));
      return;
    case CSR_MSTATUS: {
      let v = (h.mstatus & ~MSTATUS_WRITABLE) | (lo & MSTATUS_WRITABLE);
      if ((v & MSTATUS_MPP) === 2 << 11) v &= ~MSTATUS_MPP; // MPP=2 (H) is not a mode here: WARL to U
      h.writeMstatus(v);
      return;
    }
    case CSR_SIE: h.mie = (h.mie & ~h.mideleg) | (lo & h.mideleg); return;
    case CSR_SIP: {
      const mask = MIP_SSIP & h.mideleg;
      h.mipSw = (h.mipSw & ~mask) | (lo & mask);
      return;
    }
    case CSR_MIE: h.mie = lo & ALL_INTERRUPTS; return;
    case CSR_MIP: {
      const mask = MIP_SSIP | MIP_STIP | MIP_SEIP;
      h.mipSw = (h.mipSw & ~mask) | (lo & mask);
      return;
    }
    case CSR_MEDELEG: h.medeleg = lo & MEDELEG_WRITABLE; return;
    case CSR_MIDELEG: h.mideleg = lo & S_INTERRUPTS; return;
    case CSR_SCOUNTEREN: h.scounteren = lo >>> 0; return;
    case CSR_MCOUNTEREN: h.mcounteren = lo >>> 0; return;
    case CSR_SENVCFG: h.senvcfg = lo & 1; return; // FIOM only; no Zicbo*, no Svpbmt
    case CSR_MENVCFG: h.menvcfg = lo & 1; return;
    case CSR_MCOUNTINHIBIT: writeCountInhibit(h, lo & ~2); return;
    case CSR_SATP: {
      const mode = hi >>> 28;
      // Unsupported modes (Sv57, Sv64) leave satp unchanged: that is how Linux probes.
      if (mode !== SATP_BARE && mode !== SATP_SV39 && mode !== SATP_SV48) return;
      // ASID is WARL 0 (no ASID bits): every satp write flushes the TLB anyway.
      h.c64[2 * C64_SATP] = lo;
      h.c64[2 * C64_SATP + 1] = hi & 0xf0000fff;
      h.satpChanged();
      return;
    }
  }
  if (csr >= CSR_PMPCFG0 && csr < CSR_PMPCFG0 + 16) {
    const i = csr - CSR_PMPCFG0;
    h.pmpcfg[i] = lo & 0x9f9f9f9f; // bits 5-6 of each byte are reserved
    h.pmpcfg[i + 1] = hi & 0x9f9f9f9f;
    return;
  }
  if (csr >= CSR_PMPADDR0 && csr < CSR_PMPADDR0 + 64) {
    const i = (csr - CSR_PMPADDR0) * 2;
    h.pmpaddr[i] = lo;
    h.pmpaddr[i + 1] = hi & 0x3fffff; // pmpaddr holds bits 55:2 of the address
    return;
  }
  // Read-only-zero counters and events: writes ignored.
}
