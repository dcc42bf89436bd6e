// Control and status registers: access rules, reads and writes. They work on the hart's state
// block (hart_layout.ts) only; a write whose effects reach beyond the block (TLB flushes, the
// data privilege) returns CSR_EFFECT_* bits for the hart to act on.
import type { TimeSource } from "../seams/time.js";
import * as KC from "./constants.js";
import * as HL from "./hart_layout.js";

// Local copies: cross-module reads can cost a getter call per access under ESM loaders.
const {
  CSR_CYCLE, CSR_FCSR, CSR_FFLAGS, CSR_FRM, CSR_INSTRET, CSR_MARCHID, CSR_MCAUSE, CSR_MCONFIGPTR,
  CSR_MCOUNTEREN, CSR_MCOUNTINHIBIT, CSR_MCYCLE, CSR_MEDELEG, CSR_MENVCFG, CSR_MEPC, CSR_MHARTID,
  CSR_MIDELEG, CSR_MIE, CSR_MIMPID, CSR_MINSTRET, CSR_MIP, CSR_MISA, CSR_MSCRATCH, CSR_MSTATUS,
  CSR_MTVAL, CSR_MTVEC, CSR_MVENDORID, CSR_PMPADDR0, CSR_PMPCFG0, CSR_SATP, CSR_SCAUSE,
  CSR_SCOUNTEREN, CSR_SENVCFG, CSR_SEPC, CSR_SIE, CSR_SIP, CSR_SSCRATCH, CSR_SSTATUS, CSR_STVAL,
  CSR_STIMECMP, CSR_STVEC, CSR_TIME, ALL_INTERRUPTS, MEDELEG_WRITABLE, MIP_SSIP, MISA_HI, MISA_LO, MSTATUS_FS,
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
const {
  W_C64, W_CSR_HI, W_CSR_LO, W_FFLAGS, W_FRM, W_MCOUNTEREN, W_MCOUNTINHIBIT, W_MEDELEG, W_MENVCFG, W_MIDELEG,
  W_MIE, W_MIP_DEV, W_MIP_SW, W_MSTATUS, W_PMPADDR, W_PMPCFG, W_PRIV, W_SCOUNTEREN, W_SENVCFG,
  D_COUNTER_DELTA, D_COUNTER_FROZEN, D_INSTRET, D_STIMECMP,
} = HL;
if (2 * C64_COUNT > W_PMPCFG - W_C64) throw new Error("csr.ts: the 64-bit CSRs outgrew their words in hart_layout.ts");

/** What the CSR code reaches: a hart's state block views and its fixed facts. */
export interface CsrFile {
  /** The block's control words (hart_layout.ts W_*). */
  readonly w: Int32Array;
  /** The block's control doubles (hart_layout.ts D_*). */
  readonly d: Float64Array;
  readonly hartId: number;
  readonly time: TimeSource;
}

/** csrWrite changed mstatus: the hart re-derives its data privilege and drops TLB entries the change made stale. */
export const CSR_EFFECT_MSTATUS = 1;
/** csrWrite changed satp: the hart re-reads the translation mode and flushes its TLBs. */
export const CSR_EFFECT_SATP = 2;
/** csrWrite changed stimecmp: the hart re-derives STIP from it at once. */
export const CSR_EFFECT_STIMER = 4;

/**
 * menvcfg.STCE (bit 63, Sstc) as kept in the block's W_MENVCFG word: bit 31, which is WPRI (zero)
 * in menvcfg's low half, so the word holds both bits the hart implements (FIOM and STCE).
 */
export const MENVCFG_STCE_WORD = 0x80000000 | 0;
/** stimecmp values from 2^53 ticks (28 years at 10 MHz) on mean "never": kept as Infinity, read back as all ones. */
const STIMECMP_NEVER = 2 ** 53;

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
export function counterValue(s: CsrFile, counter: number): number {
  const d = s.d;
  if ((s.w[W_MCOUNTINHIBIT]! >>> counter) & 1) return d[D_COUNTER_FROZEN + counter]!;
  return d[D_INSTRET]! + d[D_COUNTER_DELTA + counter]!;
}

/**
 * A CSR write to a counter replaces the writing instruction's own increment: the instruction
 * retires after this write and adds 1 to instret, so the offset takes that 1 back.
 */
function writeCounter(s: CsrFile, counter: number, value: number): void {
  const d = s.d;
  if ((s.w[W_MCOUNTINHIBIT]! >>> counter) & 1) d[D_COUNTER_FROZEN + counter] = value;
  else d[D_COUNTER_DELTA + counter] = value - (d[D_INSTRET]! + 1);
}

function writeCountInhibit(s: CsrFile, value: number): void {
  const d = s.d;
  for (const c of [COUNTER_CYCLE, COUNTER_INSTRET]) {
    const was = (s.w[W_MCOUNTINHIBIT]! >>> c) & 1;
    const now = (value >>> c) & 1;
    if (was === now) continue;
    // Stopping counts this instruction; starting resumes from the frozen value at the next one.
    if (now) d[D_COUNTER_FROZEN + c] = d[D_INSTRET]! + 1 + d[D_COUNTER_DELTA + c]!;
    else d[D_COUNTER_DELTA + c] = d[D_COUNTER_FROZEN + c]! - (d[D_INSTRET]! + 1);
  }
  s.w[W_MCOUNTINHIBIT] = value;
}

/** The word index of a 64-bit CSR's low half in the block, or -1. */
function word64(csr: number): number {
  switch (csr) {
    case CSR_MTVEC: return W_C64 + 2 * C64_MTVEC;
    case CSR_STVEC: return W_C64 + 2 * C64_STVEC;
    case CSR_MEPC: return W_C64 + 2 * C64_MEPC;
    case CSR_SEPC: return W_C64 + 2 * C64_SEPC;
    case CSR_MSCRATCH: return W_C64 + 2 * C64_MSCRATCH;
    case CSR_SSCRATCH: return W_C64 + 2 * C64_SSCRATCH;
    case CSR_MTVAL: return W_C64 + 2 * C64_MTVAL;
    case CSR_STVAL: return W_C64 + 2 * C64_STVAL;
    case CSR_MCAUSE: return W_C64 + 2 * C64_MCAUSE;
    case CSR_SCAUSE: return W_C64 + 2 * C64_SCAUSE;
    case CSR_SATP: return W_C64 + 2 * C64_SATP;
    default: return -1;
  }
}

function setNumber(w: Int32Array, v: number): void {
  w[W_CSR_LO] = v | 0; // ToInt32 is exact mod 2^32 for integers
  w[W_CSR_HI] = Math.floor(v / TWO32) | 0;
}

/** mstatus high word: UXL, SXL, and SD when FS is dirty. */
function mstatusHigh(mstatus: number, withSxl: boolean): number {
  const sd = (mstatus & MSTATUS_FS) === MSTATUS_FS ? 0x80000000 : 0;
  return (MSTATUS_HI_UXL | (withSxl ? MSTATUS_HI_SXL : 0) | sd) | 0;
}

/**
 * Privilege and read-only checks plus CSR-specific gates (counteren, TVM, FS).
 * Returns false when the access is an illegal instruction.
 */
export function csrAccessAllowed(s: CsrFile, csr: number, write: boolean): boolean {
  const w = s.w, priv = w[W_PRIV]!, mstatus = w[W_MSTATUS]!;
  if (write && csr >>> 10 === 3) return false;
  if (priv < ((csr >>> 8) & 3)) return false;
  if (csr >= CSR_CYCLE && csr <= 0xc1f) {
    const bit = 1 << (csr & 31);
    if (priv < PRV_M && (w[W_MCOUNTEREN]! & bit) === 0) return false;
    if (priv === PRV_U && (w[W_SCOUNTEREN]! & bit) === 0) return false;
  }
  if (csr === CSR_SATP && priv === PRV_S && (mstatus & MSTATUS_TVM) !== 0) return false;
  if (csr === CSR_STIMECMP && priv < PRV_M && (w[W_MENVCFG]! & MENVCFG_STCE_WORD) === 0) return false;
  if (csr <= CSR_FCSR && (mstatus & MSTATUS_FS) === 0) return false;
  return true;
}

/** Reads a CSR into the block's W_CSR_LO / W_CSR_HI. Returns false if the CSR does not exist. */
export function csrRead(s: CsrFile, csr: number): boolean {
  const w = s.w;
  let lo = 0, hi = 0;
  const at = word64(csr);
  if (at >= 0) {
    lo = w[at]!;
    hi = w[at + 1]!;
  } else {
    switch (csr) {
      case CSR_FFLAGS: lo = w[W_FFLAGS]! & 0x1f; break;
      case CSR_FRM: lo = w[W_FRM]! & 7; break;
      case CSR_FCSR: lo = ((w[W_FRM]! & 7) << 5) | (w[W_FFLAGS]! & 0x1f); break;
      case CSR_CYCLE: case CSR_MCYCLE: setNumber(w, counterValue(s, COUNTER_CYCLE)); return true;
      case CSR_INSTRET: case CSR_MINSTRET: setNumber(w, counterValue(s, COUNTER_INSTRET)); return true;
      case CSR_TSELECT: lo = -1; hi = -1; break;
      case CSR_TINFO: lo = TINFO_NO_TRIGGER; break;
      case CSR_TIME: setNumber(w, Math.floor(s.time.now())); return true;
      case CSR_SSTATUS: lo = w[W_MSTATUS]! & SSTATUS_MASK; hi = mstatusHigh(w[W_MSTATUS]!, false); break;
      case CSR_SIE: lo = w[W_MIE]! & w[W_MIDELEG]!; break;
      case CSR_SIP: lo = (w[W_MIP_SW]! | w[W_MIP_DEV]!) & w[W_MIDELEG]!; break;
      case CSR_SCOUNTEREN: lo = w[W_SCOUNTEREN]!; break;
      case CSR_SENVCFG: lo = w[W_SENVCFG]!; break;
      case CSR_MVENDORID: case CSR_MARCHID: case CSR_MIMPID: case CSR_MCONFIGPTR: break;
      case CSR_MHARTID: lo = s.hartId; break;
      case CSR_MSTATUS: lo = w[W_MSTATUS]!; hi = mstatusHigh(lo, true); break;
      case CSR_MISA: lo = MISA_LO; hi = MISA_HI; break;
      case CSR_MEDELEG: lo = w[W_MEDELEG]!; break;
      case CSR_MIDELEG: lo = w[W_MIDELEG]!; break;
      case CSR_MIE: lo = w[W_MIE]!; break;
      case CSR_MIP: lo = w[W_MIP_SW]! | w[W_MIP_DEV]!; break;
      case CSR_MCOUNTEREN: lo = w[W_MCOUNTEREN]!; break;
      case CSR_MENVCFG: lo = w[W_MENVCFG]! & 1; hi = w[W_MENVCFG]! & MENVCFG_STCE_WORD; break;
      case CSR_STIMECMP: {
        const v = s.d[D_STIMECMP]!;
        if (v === Infinity) { lo = -1; hi = -1; break; }
        setNumber(w, v);
        return true;
      }
      case CSR_MCOUNTINHIBIT: lo = w[W_MCOUNTINHIBIT]!; break;
      default:
        if (csr >= CSR_TDATA1 && csr <= CSR_TDATA3) break; // tdata1.type 0: no trigger here
        if (csr >= CSR_PMPCFG0 && csr < CSR_PMPCFG0 + 16) {
          if ((csr & 1) !== 0) return false; // odd pmpcfg registers do not exist on RV64
          const i = W_PMPCFG + csr - CSR_PMPCFG0;
          lo = w[i]!;
          hi = w[i + 1]!;
          break;
        }
        if (csr >= CSR_PMPADDR0 && csr < CSR_PMPADDR0 + 64) {
          const i = W_PMPADDR + (csr - CSR_PMPADDR0) * 2;
          lo = w[i]!;
          hi = w[i + 1]!;
          break;
        }
        // hpmcounter3..31, mhpmcounter3..31, mhpmevent3..31: present, always zero.
        if ((csr >= 0xc03 && csr <= 0xc1f) || (csr >= 0xb03 && csr <= 0xb1f) || (csr >= 0x323 && csr <= 0x33f)) break;
        return false;
    }
  }
  w[W_CSR_LO] = lo;
  w[W_CSR_HI] = hi;
  return true;
}

/**
 * Writes a CSR whose access was already checked by csrAccessAllowed and csrRead. Returns the
 * CSR_EFFECT_* bits the hart must act on (0 for none).
 */
export function csrWrite(s: CsrFile, csr: number, lo: number, hi: number): number {
  const w = s.w;
  switch (csr) {
    case CSR_FFLAGS: w[W_FFLAGS] = lo & 0x1f; w[W_MSTATUS] |= MSTATUS_FS; return 0;
    case CSR_FRM: w[W_FRM] = lo & 7; w[W_MSTATUS] |= MSTATUS_FS; return 0;
    case CSR_FCSR: w[W_FFLAGS] = lo & 0x1f; w[W_FRM] = (lo >>> 5) & 7; w[W_MSTATUS] |= MSTATUS_FS; return 0;
    case CSR_MTVEC: case CSR_STVEC: {
      // Modes 2 and 3 are reserved: fall back to direct.
      const at = word64(csr);
      w[at] = (lo & 3) >= 2 ? lo & ~3 : lo;
      w[at + 1] = hi;
      return 0;
    }
    case CSR_MEPC: case CSR_SEPC: {
      const at = word64(csr);
      w[at] = lo & ~1;
      w[at + 1] = hi;
      return 0;
    }
    case CSR_MSCRATCH: case CSR_SSCRATCH: case CSR_MTVAL: case CSR_STVAL: case CSR_MCAUSE: case CSR_SCAUSE: {
      const at = word64(csr);
      w[at] = lo;
      w[at + 1] = hi;
      return 0;
    }
    case CSR_MCYCLE: writeCounter(s, COUNTER_CYCLE, (hi >>> 0) * TWO32 + (lo >>> 0)); return 0;
    case CSR_MINSTRET: writeCounter(s, COUNTER_INSTRET, (hi >>> 0) * TWO32 + (lo >>> 0)); return 0;
    case CSR_SSTATUS:
      w[W_MSTATUS] = (w[W_MSTATUS]! & ~SSTATUS_MASK) | (lo & SSTATUS_MASK);
      return CSR_EFFECT_MSTATUS;
    case CSR_MSTATUS: {
      let v = (w[W_MSTATUS]! & ~MSTATUS_WRITABLE) | (lo & MSTATUS_WRITABLE);
      if ((v & MSTATUS_MPP) === 2 << 11) v &= ~MSTATUS_MPP; // MPP=2 (H) is not a mode here: WARL to U
      w[W_MSTATUS] = v;
      return CSR_EFFECT_MSTATUS;
    }
    case CSR_SIE: w[W_MIE] = (w[W_MIE]! & ~w[W_MIDELEG]!) | (lo & w[W_MIDELEG]!); return 0;
    case CSR_SIP: {
      const mask = MIP_SSIP & w[W_MIDELEG]!;
      w[W_MIP_SW] = (w[W_MIP_SW]! & ~mask) | (lo & mask);
      return 0;
    }
    case CSR_MIE: w[W_MIE] = lo & ALL_INTERRUPTS; return 0;
    case CSR_MIP: {
      // With Sstc on (STCE), STIP is stimecmp's comparison alone: read-only.
      const mask = MIP_SSIP | MIP_SEIP | ((w[W_MENVCFG]! & MENVCFG_STCE_WORD) === 0 ? MIP_STIP : 0);
      w[W_MIP_SW] = (w[W_MIP_SW]! & ~mask) | (lo & mask);
      return 0;
    }
    case CSR_MEDELEG: w[W_MEDELEG] = lo & MEDELEG_WRITABLE; return 0;
    case CSR_MIDELEG: w[W_MIDELEG] = lo & S_INTERRUPTS; return 0;
    case CSR_SCOUNTEREN: w[W_SCOUNTEREN] = lo; return 0;
    case CSR_MCOUNTEREN: w[W_MCOUNTEREN] = lo; return 0;
    case CSR_SENVCFG: w[W_SENVCFG] = lo & 1; return 0; // FIOM only; no Zicbo*, no Svpbmt
    case CSR_MENVCFG: w[W_MENVCFG] = (lo & 1) | (hi & MENVCFG_STCE_WORD); return 0;
    case CSR_STIMECMP: {
      const v = (hi >>> 0) * TWO32 + (lo >>> 0);
      s.d[D_STIMECMP] = v >= STIMECMP_NEVER ? Infinity : v;
      return CSR_EFFECT_STIMER;
    }
    case CSR_MCOUNTINHIBIT: writeCountInhibit(s, lo & ~2); return 0;
    case CSR_SATP: {
      const mode = hi >>> 28;
      // Unsupported modes (Sv57, Sv64) leave satp unchanged: that is how Linux probes.
      if (mode !== SATP_BARE && mode !== SATP_SV39 && mode !== SATP_SV48) return 0;
      // All 16 ASID bits are kept (the hart keeps a TLB set per recent address space, hart_base.ts).
      const at = W_C64 + 2 * C64_SATP;
      w[at] = lo;
      w[at + 1] = hi;
      return CSR_EFFECT_SATP;
    }
  }
  if (csr >= CSR_PMPCFG0 && csr < CSR_PMPCFG0 + 16) {
    const i = W_PMPCFG + csr - CSR_PMPCFG0;
    w[i] = lo & 0x9f9f9f9f; // bits 5-6 of each byte are reserved
    w[i + 1] = hi & 0x9f9f9f9f;
    return 0;
  }
  if (csr >= CSR_PMPADDR0 && csr < CSR_PMPADDR0 + 64) {
    const i = W_PMPADDR + (csr - CSR_PMPADDR0) * 2;
    w[i] = lo;
    w[i + 1] = hi & 0x3fffff; // pmpaddr holds bits 55:2 of the address
    return 0;
  }
  return 0; // read-only-zero counters and events: writes ignored
}
