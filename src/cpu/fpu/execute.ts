// Executes one RV64 F/D instruction (everything but loads and stores) on the FPU context.
import { FFLAG_NV, FpStatus, type FpContext } from "./context.js";
import { addD, divD, fmaD, mulD, sqrtD } from "./arith64.js";
import { addS, divS, fmaS, mulS, sqrtS } from "./arith32.js";
import { doubleFromBits, floatFromBits, isNaND, isNaNS, isSignalingD, isSignalingS } from "./bits.js";
import { compare, minMax } from "./compare.js";
import { unboxS, writeD, writeS, writeSBits, writeX } from "./registers.js";
import { classifyD, classifyS, signInject } from "./sign_class.js";
import { fromInt, intResult, toInt } from "./convert.js";
import { roundS } from "./round.js";
import { fpState } from "./state.js";

const OP_FP = 0x53;
const OP_FMADD = 0x43;
const OP_FMSUB = 0x47;
const OP_FNMSUB = 0x4b;
const OP_FNMADD = 0x4f;
const RM_DYN = 7;

// funct7 >> 2 selects the OP-FP operation; funct7 & 3 is the format (0 = S, 1 = D).
const F_ADD = 0x00;
const F_SUB = 0x01;
const F_MUL = 0x02;
const F_DIV = 0x03;
const F_SGNJ = 0x04;
const F_MINMAX = 0x05;
const F_CVT_FF = 0x08;
const F_SQRT = 0x0b;
const F_CMP = 0x14;
const F_CVT_IF = 0x18; // float to integer
const F_CVT_FI = 0x1a; // integer to float
const F_MV_X_CLASS = 0x1c;
const F_MV_F = 0x1e;

/** Reads the rounding mode from the instruction, or -1 when it is reserved. */
function roundingMode(insn: number, ctx: FpContext): number {
  let rm = (insn >>> 12) & 7;
  if (rm === RM_DYN) rm = ctx.frm;
  return rm >= 5 ? -1 : rm;
}

export function executeFp(insn: number, ctx: FpContext): FpStatus {
  fpState.flags = 0;
  const opcode = insn & 0x7f;
  const status = opcode === OP_FP ? executeOpFp(insn, ctx) : executeFused(insn, ctx, opcode);
  ctx.fflags |= fpState.flags;
  return status;
}

function executeFused(insn: number, ctx: FpContext, opcode: number): FpStatus {
  if (opcode !== OP_FMADD && opcode !== OP_FMSUB && opcode !== OP_FNMSUB && opcode !== OP_FNMADD) {
    return FpStatus.Illegal;
  }
  const fmt = (insn >>> 25) & 3;
  const rm = roundingMode(insn, ctx);
  if (fmt > 1 || rm < 0) return FpStatus.Illegal;
  const f = ctx.f;
  const rd = (insn >>> 7) & 31;
  const r1 = (insn >>> 15) & 31;
  const r2 = (insn >>> 20) & 31;
  const r3 = insn >>> 27;
  const negProduct = opcode === OP_FNMSUB || opcode === OP_FNMADD;
  const negAddend = opcode === OP_FMSUB || opcode === OP_FNMADD;
  let a: number;
  let b: number;
  let c: number;
  let anyNaN: boolean;
  if (fmt === 0) {
    const ba = unboxS(f, r1);
    const bb = unboxS(f, r2);
    const bc = unboxS(f, r3);
    anyNaN = isNaNS(ba) || isNaNS(bb) || isNaNS(bc);
    if (anyNaN && (isSignalingS(ba) || isSignalingS(bb) || isSignalingS(bc))) fpState.flags |= FFLAG_NV;
    a = floatFromBits(ba);
    b = floatFromBits(bb);
    c = floatFromBits(bc);
  } else {
    const alo = f[2 * r1], ahi = f[2 * r1 + 1];
    const blo = f[2 * r2], bhi = f[2 * r2 + 1];
    const clo = f[2 * r3], chi = f[2 * r3 + 1];
    anyNaN = isNaND(alo, ahi) || isNaND(blo, bhi) || isNaND(clo, chi);
    if (anyNaN && (isSignalingD(alo, ahi) || isSignalingD(blo, bhi) || isSignalingD(clo, chi))) {
      fpState.flags |= FFLAG_NV;
    }
    a = doubleFromBits(alo, ahi);
    b = doubleFromBits(blo, bhi);
    c = doubleFromBits(clo, chi);
  }
  let result: number;
  if (anyNaN) {
    // RISC-V: inf * 0 is invalid even when the addend is a quiet NaN.
    if ((Math.abs(a) === Infinity && b === 0) || (a === 0 && Math.abs(b) === Infinity)) fpState.flags |= FFLAG_NV;
    result = NaN;
  } else {
    if (negProduct) a = -a;
    if (negAddend) c = -c;
    result = fmt === 0 ? fmaS(a, b, c, rm) : fmaD(a, b, c, rm);
  }
  if (fmt === 0) writeS(f, rd, result);
  else writeD(f, rd, result);
  return FpStatus.Ok;
}

function executeOpFp(insn: number, ctx: FpContext): FpStatus {
  const funct7 = insn >>> 25;
  const fmt = funct7 & 3;
  if (fmt > 1) return FpStatus.Illegal;
  const op = funct7 >>> 2;
  const rd = (insn >>> 7) & 31;
  const funct3 = (insn >>> 12) & 7;
  const r1 = (insn >>> 15) & 31;
  const r2 = (insn >>> 20) & 31;
  const f = ctx.f;
  const isD = fmt === 1;
  switch (op) {
    case F_ADD:
    case F_SUB:
    case F_MUL:
    case F_DIV:
      return binaryArith(ctx, op, isD, roundingMode(insn, ctx), rd, r1, r2);
    case F_SQRT: {
      const rm = roundingMode(insn, ctx);
      if (r2 !== 0 || rm < 0) return FpStatus.Illegal;
      if (isD) {
        const lo = f[2 * r1], hi = f[2 * r1 + 1];
        writeD(f, rd, isNaND(lo, hi) ? quietNaN(isSignalingD(lo, hi)) : sqrtD(doubleFromBits(lo, hi), rm));
      } else {
        const bits = unboxS(f, r1);
        writeS(f, rd, isNaNS(bits) ? quietNaN(isSignalingS(bits)) : sqrtS(floatFromBits(bits), rm));
      }
      return FpStatus.Ok;
    }
    case F_SGNJ:
      return signInject(f, isD, funct3, rd, r1, r2);
    case F_MINMAX:
      return minMax(f, isD, funct3, rd, r1, r2);
    case F_CVT_FF: {
      const rm = roundingMode(insn, ctx);
      if (rm < 0) return FpStatus.Illegal;
      if (isD && r2 === 0) {
        const bits = unboxS(f, r1);
        writeD(f, rd, isNaNS(bits) ? quietNaN(isSignalingS(bits)) : floatFromBits(bits));
      } else if (!isD && r2 === 1) {
        const lo = f[2 * r1], hi = f[2 * r1 + 1];
        writeS(f, rd, isNaND(lo, hi) ? quietNaN(isSignalingD(lo, hi)) : roundS(doubleFromBits(lo, hi), 0, rm));
      } else {
        return FpStatus.Illegal;
      }
      return FpStatus.Ok;
    }
    case F_CMP:
      return compare(ctx, isD, funct3, rd, r1, r2);
    case F_CVT_IF: {
      const rm = roundingMode(insn, ctx);
      if (r2 > 3 || rm < 0) return FpStatus.Illegal;
      let v: number;
      if (isD) {
        const lo = f[2 * r1], hi = f[2 * r1 + 1];
        if (isSignalingD(lo, hi)) fpState.flags |= FFLAG_NV;
        v = doubleFromBits(lo, hi);
      } else {
        const bits = unboxS(f, r1);
        if (isSignalingS(bits)) fpState.flags |= FFLAG_NV;
        v = floatFromBits(bits);
      }
      toInt(v, r2, rm);
      writeX(ctx.x, rd, intResult.lo, intResult.hi);
      return FpStatus.Ok;
    }
    case F_CVT_FI: {
      const rm = roundingMode(insn, ctx);
      if (r2 > 3 || rm < 0) return FpStatus.Illegal;
      const v = fromInt(ctx.x[2 * r1], ctx.x[2 * r1 + 1], r2, isD, rm);
      if (isD) writeD(f, rd, v);
      else writeS(f, rd, v);
      return FpStatus.Ok;
    }
    case F_MV_X_CLASS: {
      if (r2 !== 0) return FpStatus.Illegal;
      if (funct3 === 0) {
        // A transfer: the raw low 32 bits (no NaN-box check), sign-extended.
        const lo = f[2 * r1];
        if (isD) writeX(ctx.x, rd, lo, f[2 * r1 + 1]);
        else writeX(ctx.x, rd, lo, lo >> 31);
        return FpStatus.Ok;
      }
      if (funct3 !== 1) return FpStatus.Illegal;
      writeX(ctx.x, rd, isD ? classifyD(f[2 * r1], f[2 * r1 + 1]) : classifyS(unboxS(f, r1)), 0);
      return FpStatus.Ok;
    }
    case F_MV_F:
      if (r2 !== 0 || funct3 !== 0) return FpStatus.Illegal;
      if (isD) {
        f[2 * rd] = ctx.x[2 * r1];
        f[2 * rd + 1] = ctx.x[2 * r1 + 1];
      } else {
        writeSBits(f, rd, ctx.x[2 * r1]);
      }
      return FpStatus.Ok;
    default:
      return FpStatus.Illegal;
  }
}

/** Raises NV for a signalling NaN operand and returns the (canonical) NaN result. */
function quietNaN(signaling: boolean): number {
  if (signaling) fpState.flags |= FFLAG_NV;
  return NaN;
}

function binaryArith(ctx: FpContext, op: number, isD: boolean, rm: number, rd: number, r1: number, r2: number): FpStatus {
  if (rm < 0) return FpStatus.Illegal;
  const f = ctx.f;
  if (isD) {
    const alo = f[2 * r1], ahi = f[2 * r1 + 1];
    const blo = f[2 * r2], bhi = f[2 * r2 + 1];
    if (isNaND(alo, ahi) || isNaND(blo, bhi)) {
      writeD(f, rd, quietNaN(isSignalingD(alo, ahi) || isSignalingD(blo, bhi)));
      return FpStatus.Ok;
    }
    const a = doubleFromBits(alo, ahi);
    const b = doubleFromBits(blo, bhi);
    let r: number;
    switch (op) {
      case F_ADD:
        r = addD(a, b, rm);
        break;
      case F_SUB:
        r = addD(a, -b, rm);
        break;
      case F_MUL:
        r = mulD(a, b, rm);
        break;
      default:
        r = divD(a, b, rm);
    }
    writeD(f, rd, r);
  } else {
    const ba = unboxS(f, r1);
    const bb = unboxS(f, r2);
    if (isNaNS(ba) || isNaNS(bb)) {
      writeS(f, rd, quietNaN(isSignalingS(ba) || isSignalingS(bb)));
      return FpStatus.Ok;
    }
    const a = floatFromBits(ba);
    const b = floatFromBits(bb);
    let r: number;
    switch (op) {
      case F_ADD:
        r = addS(a, b, rm);
        break;
      case F_SUB:
        r = addS(a, -b, rm);
        break;
      case F_MUL:
        r = mulS(a, b, rm);
        break;
      default:
        r = divS(a, b, rm);
    }
    writeS(f, rd, r);
  }
  return FpStatus.Ok;
}
