// Random RV64GC instructions for the fast-path/slow-path equivalence test: mostly the ones
// Hart.execFast runs itself (integer ALU, M, loads/stores, branches, jumps, LR/SC and simple AMOs,
// FP loads/stores, compressed forms), mixed with ones it hands to execSlow (SYSTEM, FP arithmetic,
// AMO min/max, illegal encodings) so the hand-off between the two loops is exercised too.
import { encB, encI, encJ, encR, encS, encU } from "../encode.js";
import { RVC_TABLE } from "../rvc.js";
import * as K from "../constants.js";
import type { Rng } from "./rng.js";

/** Registers the scenario loads with data addresses (x2 for c.*sp, x8-x11 for c.lw/c.sd and friends). */
export const POINTER_REGS: readonly number[] = [2, 8, 9, 10, 11, 18, 19, 20, 21, 22, 23];
/** Pointer registers the scenario starts at 8-byte aligned RAM data (atomics need aligned RAM addresses). */
export const ALIGNED_POINTER_REGS: readonly number[] = [18, 19, 20, 21];
/** Return-address register: the scenario starts it at a code address, JAL writes it, JALR reads it. */
export const LINK_REG = 1;
/** Holds the mstatus bits the program may toggle with csrrs/csrrc (SUM, MXR, MPRV, FS). */
export const MSTATUS_MASK_REG = 30;
/** Scratch of the trap handlers. */
export const HANDLER_REG = 31;
/** Hold two satp values of the scenario's page tables with different ASIDs: `csrw satp` switches between address spaces. */
export const SATP_REGS: readonly number[] = [3, 4];

const SCRATCH_REGS = [5, 6, 7, 12, 13, 14, 15, 16, 17, 24, 25, 26, 27, 28, 29];
/** Registers that generated instructions must never write (the handlers and the mstatus mask rely on them). */
const RESERVED_RD = new Set([MSTATUS_MASK_REG, HANDLER_REG, ...SATP_REGS]);

/** CSRs the program may read (some are illegal at lower privilege or with FS off, which is the point). */
const READ_CSRS = [
  K.CSR_MSTATUS, K.CSR_SSTATUS, K.CSR_MEPC, K.CSR_SEPC, K.CSR_MCAUSE, K.CSR_SCAUSE, K.CSR_MTVAL, K.CSR_STVAL,
  K.CSR_FFLAGS, K.CSR_FRM, K.CSR_FCSR, K.CSR_INSTRET, K.CSR_CYCLE, K.CSR_MINSTRET, K.CSR_SATP, K.CSR_MSCRATCH,
  K.CSR_SSCRATCH, K.CSR_MIE, K.CSR_MIP, K.CSR_SIE, K.CSR_SIP, K.CSR_MISA, K.CSR_MHARTID, K.CSR_TIME, 0x7c0, // 0x7c0: absent
];
/** CSRs the program may write with a random register. */
const WRITE_CSRS = [
  K.CSR_FFLAGS, K.CSR_FRM, K.CSR_FCSR, K.CSR_MSCRATCH, K.CSR_SSCRATCH, K.CSR_MEPC, K.CSR_SEPC, K.CSR_MTVAL, K.CSR_STVAL,
  K.CSR_MINSTRET, K.CSR_MCYCLE, K.CSR_MCOUNTINHIBIT,
];

export interface RandomInsn {
  /** Instruction bits: a 16-bit halfword when size is 2. */
  bits: number;
  size: 2 | 4;
}

function imm12(rng: Rng): number {
  switch (rng.below(6)) {
    case 0: return rng.pick([0, 1, -1, 2047, -2048, 31, 32, 63, 64]);
    case 1: case 2: return rng.between(-64, 64);
    default: return rng.between(-2048, 2047);
  }
}

function shamt(rng: Rng, max: number): number {
  return rng.chance(0.3) ? rng.pick([0, 1, 31, max === 63 ? 32 : 30, max]) : rng.below(max + 1);
}

function rd(rng: Rng): number {
  const k = rng.below(40);
  if (k < 36) return rng.pick(SCRATCH_REGS);
  if (k < 37) return rng.pick(POINTER_REGS); // rarely: garbage in a base register makes the following accesses fault
  return k === 37 ? 0 : k === 38 ? LINK_REG : rng.below(30);
}

function rs(rng: Rng): number {
  return rng.chance(0.7) ? rng.pick(SCRATCH_REGS) : rng.below(32);
}

function ptr(rng: Rng): number {
  return rng.chance(0.85) ? rng.pick(POINTER_REGS) : rng.below(32);
}

/** A memory offset: mostly small and aligned to the access size, sometimes anything. */
function memImm(rng: Rng, size: number): number {
  if (rng.chance(0.85)) return rng.between(-8, 16) * size;
  return imm12(rng);
}

/**
 * Mostly forward and to a 4-byte slot (see randomCode), sometimes into the middle of one. Backward
 * targets are rare: a taken backward branch usually becomes a loop that eats the whole budget.
 */
function branchOffset(rng: Rng): number {
  const unit = rng.chance(0.9) ? 4 : 2;
  const k = rng.below(40);
  if (k < 30) return unit * rng.between(1, 20);
  if (k < 38) return unit * rng.between(1, 1023);
  return -unit * rng.between(1, 1024);
}

/** Legal [funct7, funct3] pairs of OP (0x33) and OP-32 (0x3b). */
const OP_FORMS: readonly (readonly [number, number])[] = [
  ...[0, 1, 2, 3, 4, 5, 6, 7].map((f3) => [0, f3] as const), [0x20, 0], [0x20, 5], ...[0, 1, 2, 3, 4, 5, 6, 7].map((f3) => [1, f3] as const),
];
const OP32_FORMS: readonly (readonly [number, number])[] = [[0, 0], [0, 1], [0, 5], [0x20, 0], [0x20, 5], [1, 0], [1, 4], [1, 5], [1, 6], [1, 7]];

function op32(rng: Rng, opcode: number): number {
  if (rng.chance(0.05)) return encR(opcode, rd(rng), rng.below(8), rs(rng), rs(rng), rng.chance(0.5) ? rng.pick([0, 0x20, 1]) : rng.below(128));
  const [f7, f3] = rng.pick(opcode === 0x33 ? OP_FORMS : OP32_FORMS);
  return encR(opcode, rd(rng), f3, rs(rng), rs(rng), f7);
}

function system(rng: Rng): number {
  const k = rng.below(20);
  if (k >= 16) return encI(0x73, 0, 1, rng.pick(SATP_REGS), K.CSR_SATP); // csrw satp: another address space, or the same
  if (k < 5) return encI(0x73, rd(rng), 2, 0, rng.pick(READ_CSRS)); // csrr
  if (k < 7) return encI(0x73, rd(rng), rng.pick([1, 2, 3]), rs(rng), rng.pick(WRITE_CSRS));
  if (k < 8) return encI(0x73, rd(rng), rng.pick([2, 3]), MSTATUS_MASK_REG, rng.pick([K.CSR_MSTATUS, K.CSR_SSTATUS]));
  if (k < 9) return encI(0x73, rd(rng), rng.pick([6, 7]), rng.pick([2, 8, 10]), rng.pick([K.CSR_MSTATUS, K.CSR_SSTATUS])); // SIE/MIE
  if (k < 10) return 0x00000073; // ecall
  if (k < 11) return 0x00100073; // ebreak
  if (k < 12) return rng.chance(0.5) ? 0x30200073 : 0x10200073; // mret / sret
  if (k < 13) return encR(0x73, 0, 0, rng.chance(0.5) ? 0 : ptr(rng), rng.chance(0.5) ? 0 : rng.chance(0.5) ? rng.pick(SATP_REGS) : rs(rng), 0x09); // sfence.vma
  if (k < 14) return rng.chance(0.2) ? 0x10500073 : 0x0000100f; // wfi (rarely: it may park the hart) / fence.i
  if (k < 15) return encI(0x73, rd(rng), 4, rs(rng), rng.below(4096)); // funct3 4: illegal
  return encI(0x73, rd(rng), rng.pick([5, 6, 7]), rng.below(32), rng.pick(WRITE_CSRS));
}

function fpArith(rng: Rng): number {
  const fmt = rng.below(2); // S, D
  const rm = rng.chance(0.8) ? rng.pick([0, 1, 2, 3, 4, 7]) : rng.below(8);
  const r1 = rng.below(32), r2 = rng.below(32);
  switch (rng.below(8)) {
    case 0: return encR(0x53, rng.below(32), rm, r1, r2, (rng.below(4) << 2) | fmt); // fadd/fsub/fmul/fdiv
    case 1: return encR(0x53, rng.below(32), rng.below(3), r1, r2, (4 << 2) | fmt); // fsgnj*
    case 2: return encR(0x53, rng.below(32), rng.below(2), r1, r2, (5 << 2) | fmt); // fmin/fmax
    case 3: return encR(0x53, rd(rng), rng.below(3), r1, r2, (0x14 << 2) | fmt); // feq/flt/fle -> x
    case 4: return encR(0x53, rd(rng), rm, r1, rng.below(4), (0x18 << 2) | fmt); // fcvt.{w,wu,l,lu}
    case 5: return encR(0x53, rd(rng), 0, r1, 0, (0x1c << 2) | fmt); // fmv.x.w/d
    case 6: return encR(0x53, rng.below(32), 0, rs(rng), 0, (0x1e << 2) | fmt); // fmv.w/d.x
    default: return (rng.below(32) << 27) | (fmt << 25) | encR(rng.pick([0x43, 0x47, 0x4b, 0x4f]), rng.below(32), rm, r1, r2, 0); // fmadd...
  }
}

function amo(rng: Rng): number {
  const f5 = rng.chance(0.95) ? rng.pick([0x02, 0x03, 0x02, 0x03, 0x01, 0x00, 0x04, 0x08, 0x0c, 0x10, 0x14, 0x18, 0x1c]) : rng.below(32);
  const f3 = rng.chance(0.95) ? rng.pick([2, 3]) : rng.below(8);
  const rs2 = f5 === 0x02 && rng.chance(0.9) ? 0 : rs(rng);
  return encR(0x2f, rd(rng), f3, rng.chance(0.85) ? rng.pick(ALIGNED_POINTER_REGS) : ptr(rng), rs2, (f5 << 2) | rng.below(4));
}

// OP-IMM, OP-IMM-32, LUI, AUIPC, M, OP, OP-32, LOAD, STORE, LOAD-FP, STORE-FP, BRANCH, JAL, JALR, AMO, SYSTEM, OP-FP, MISC-MEM/other.
/** Zbb's instructions (RV64 encodings), with now and then a near miss (a reserved neighbour: illegal). */
function zbb(rng: Rng): number {
  const r1 = rs(rng);
  switch (rng.below(8)) {
    case 0: return encI(0x13, rd(rng), 1, r1, 0x600 | (rng.chance(0.9) ? rng.pick([0, 1, 2, 4, 5]) : rng.pick([3, 6, 0x20]))); // clz ctz cpop sext.b sext.h
    case 1: return encI(0x13, rd(rng), 5, r1, 0x600 | shamt(rng, 63)); // rori
    case 2: return encI(0x13, rd(rng), 5, r1, rng.pick([0x287, 0x6b8, 0x6b8, 0x287, 0x286, 0x6b0])); // orc.b rev8
    case 3: return encR(0x1b, rd(rng), 1, r1, rng.chance(0.9) ? rng.below(3) : 3, 0x30); // clzw ctzw cpopw
    case 4: return encR(0x1b, rd(rng), 5, r1, shamt(rng, 31), 0x30); // roriw
    case 5: return encR(0x33, rd(rng), rng.pick([4, 6, 7]), r1, rs(rng), 0x20); // xnor orn andn
    case 6: return rng.chance(0.6) ? encR(0x33, rd(rng), rng.between(4, 7), r1, rs(rng), 5) : encR(0x33, rd(rng), rng.pick([1, 5]), r1, rs(rng), 0x30); // min max, rol ror
    default: return rng.chance(0.7) ? encR(0x3b, rd(rng), rng.pick([1, 5]), r1, rs(rng), 0x30) : encR(0x3b, rd(rng), 4, r1, rng.chance(0.9) ? 0 : 1, 4); // rolw rorw, zext.h
  }
}

const WORD_WEIGHTS = [14, 4, 4, 3, 3, 12, 6, 11, 9, 3, 3, 10, 3, 1, 5, 2, 2, 1, 3];

function word(rng: Rng): number {
  switch (rng.weighted(WORD_WEIGHTS)) {
    case 0: { // OP-IMM
      const f3 = rng.below(8);
      if (f3 === 1) return encI(0x13, rd(rng), 1, rs(rng), shamt(rng, 63) | (rng.chance(0.05) ? 0x400 : 0));
      if (f3 === 5) return encI(0x13, rd(rng), 5, rs(rng), shamt(rng, 63) | (rng.chance(0.5) ? 0x400 : 0) | (rng.chance(0.03) ? 0x800 : 0));
      return encI(0x13, rd(rng), f3, rs(rng), imm12(rng));
    }
    case 1: { // OP-IMM-32
      const f3 = rng.chance(0.9) ? rng.pick([0, 1, 5]) : rng.below(8);
      if (f3 === 0) return encI(0x1b, rd(rng), 0, rs(rng), imm12(rng));
      const top = rng.chance(0.9) ? (f3 === 5 && rng.chance(0.5) ? 0x20 : 0) : rng.below(128);
      return encR(0x1b, rd(rng), f3, rs(rng), shamt(rng, 31), top);
    }
    case 2: return encU(0x37, rd(rng), rng.u32() | 0); // LUI
    case 3: return encU(0x17, rd(rng), rng.u32() | 0); // AUIPC
    case 4: return rng.chance(0.5) ? encR(0x33, rd(rng), rng.below(8), rs(rng), rs(rng), 1) : encR(0x3b, rd(rng), rng.pick([0, 4, 5, 6, 7]), rs(rng), rs(rng), 1); // M
    case 5: return op32(rng, 0x33); // OP
    case 6: return op32(rng, 0x3b); // OP-32
    case 7: { // LOAD
      const f3 = rng.chance(0.97) ? rng.below(7) : 7;
      return encI(0x03, rd(rng), f3, ptr(rng), memImm(rng, 1 << (f3 & 3)));
    }
    case 8: { // STORE
      const f3 = rng.chance(0.97) ? rng.below(4) : rng.between(4, 7);
      return encS(0x23, f3, ptr(rng), rs(rng), memImm(rng, 1 << (f3 & 3)));
    }
    case 9: { // LOAD-FP
      const f3 = rng.chance(0.95) ? rng.pick([2, 3]) : rng.below(8);
      return encI(0x07, rng.below(32), f3, ptr(rng), memImm(rng, 1 << (f3 & 3)));
    }
    case 10: { // STORE-FP
      const f3 = rng.chance(0.95) ? rng.pick([2, 3]) : rng.below(8);
      return encS(0x27, f3, ptr(rng), rng.below(32), memImm(rng, 1 << (f3 & 3)));
    }
    case 11: { // BRANCH
      const f3 = rng.chance(0.96) ? rng.pick([0, 1, 4, 5, 6, 7]) : rng.pick([2, 3]);
      const a = rs(rng);
      return encB(0x63, f3, a, rng.chance(0.15) ? a : rs(rng), branchOffset(rng));
    }
    case 12: return encJ(0x6f, rng.pick([0, 0, LINK_REG, LINK_REG, rd(rng)]), rng.chance(0.9) ? branchOffset(rng) : 2 * rng.between(-4096, 4095));
    case 13: { // JALR
      const base = rng.chance(0.6) ? LINK_REG : rng.chance(0.5) ? ptr(rng) : rs(rng);
      return encI(0x67, rng.pick([0, LINK_REG, rd(rng)]), rng.chance(0.97) ? 0 : rng.between(1, 7), base, rng.chance(0.7) ? 0 : rng.between(-16, 16) * 2);
    }
    case 14: return amo(rng);
    case 15: return system(rng);
    case 16: return fpArith(rng);
    case 18: return zbb(rng);
    default: { // MISC-MEM (fence / fence.i / reserved funct3) or any 32-bit pattern
      if (rng.chance(0.5)) return encI(0x0f, 0, rng.chance(0.9) ? rng.below(2) : rng.between(2, 7), 0, rng.below(256));
      return rng.chance(0.3) ? (rng.u32() | 3) | 0 : encI(0x0f, 0, 0, 0, rng.below(256));
    }
  }
}

/** True when the (32-bit form of the) instruction writes integer register `rd` of its encoding. */
function writesRd(insn: number): boolean {
  switch (insn & 0x7f) {
    case 0x37: case 0x17: case 0x6f: case 0x67: case 0x03: case 0x13: case 0x1b: case 0x33: case 0x3b: case 0x2f: case 0x73: case 0x53:
      return true;
    default:
      return false;
  }
}

const POINTER_SET = new Set(POINTER_REGS);

function compressed(rng: Rng): number {
  for (;;) {
    const h = rng.below(0x10000);
    if ((h & 3) === 3) continue;
    const insn = RVC_TABLE[h]!;
    if (insn === -1 && !rng.chance(0.04)) continue; // mostly legal encodings
    // Random halfwords write x8-x11 often (c.lw, c.li, c.addi...): keep most base registers intact.
    if (writesRd(insn) && POINTER_SET.has((insn >>> 7) & 31) && !rng.chance(0.1)) continue;
    if (((insn & 0x7f) === 0x63 || (insn & 0x7f) === 0x6f) && insn < 0 && !rng.chance(0.1)) continue; // backward c.j/c.beqz/c.bnez: loops
    return h;
  }
}

/** One random instruction; never writes the registers the trap handlers and the mstatus mask rely on. */
export function randomInsn(rng: Rng, compressedShare = 0.3): RandomInsn {
  for (;;) {
    const c = rng.chance(compressedShare);
    const bits = c ? compressed(rng) : word(rng);
    const expanded = c ? RVC_TABLE[bits]! : bits;
    if (writesRd(expanded) && RESERVED_RD.has((expanded >>> 7) & 31)) continue;
    return { bits, size: c ? 2 : 4 };
  }
}

/**
 * `bytes` of random code in 4-byte slots, each one 32-bit instruction or two compressed ones, so a
 * trap handler can resume at the next slot ((epc + 4) & ~3) without decoding. Some pages end with
 * a 32-bit instruction that straddles into the next page (then a compressed one realigns the slots).
 */
export function randomCode(rng: Rng, bytes: number, pageSize: number): Uint8Array {
  const out = new Uint8Array(bytes);
  const view = new DataView(out.buffer);
  const put = (at: number, insn: RandomInsn): number => {
    if (insn.size === 2) view.setUint16(at, insn.bits, true);
    else view.setInt32(at, insn.bits, true);
    return at + insn.size;
  };
  let at = 0;
  while (at < bytes) {
    if (at % pageSize === pageSize - 4 && at + 8 <= bytes && rng.chance(0.4)) {
      at = put(at, randomInsn(rng, 1));
      at = put(at, randomInsn(rng, 0));
      at = put(at, randomInsn(rng, 1));
    } else if (rng.chance(0.2)) {
      at = put(at, randomInsn(rng, 1));
      at = put(at, randomInsn(rng, 1));
    } else {
      at = put(at, randomInsn(rng, 0));
    }
  }
  return out;
}
