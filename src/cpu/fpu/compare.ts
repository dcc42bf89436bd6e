// fmin/fmax and the comparisons feq/flt/fle, with their NaN and signed-zero rules.
import { FFLAG_NV, FpStatus, type FpContext } from "./context.js";
import { doubleFromBits, floatFromBits, isNaND, isNaNS, isSignalingD, isSignalingS } from "./bits.js";
import { unboxS, writeD, writeS, writeX } from "./registers.js";
import { fpState } from "./state.js";

/** fmin/fmax per IEEE 754-2019 minimumNumber/maximumNumber: -0 < +0, a NaN yields the other operand. */
export function minMax(f: Int32Array, isD: boolean, funct3: number, rd: number, r1: number, r2: number): FpStatus {
  if (funct3 > 1) return FpStatus.Illegal;
  const isMax = funct3 === 1;
  let aNaN: boolean, bNaN: boolean, a: number, b: number;
  if (isD) {
    const alo = f[2 * r1], ahi = f[2 * r1 + 1];
    const blo = f[2 * r2], bhi = f[2 * r2 + 1];
    aNaN = isNaND(alo, ahi);
    bNaN = isNaND(blo, bhi);
    if (isSignalingD(alo, ahi) || isSignalingD(blo, bhi)) fpState.flags |= FFLAG_NV;
    a = doubleFromBits(alo, ahi);
    b = doubleFromBits(blo, bhi);
  } else {
    const ba = unboxS(f, r1);
    const bb = unboxS(f, r2);
    aNaN = isNaNS(ba);
    bNaN = isNaNS(bb);
    if (isSignalingS(ba) || isSignalingS(bb)) fpState.flags |= FFLAG_NV;
    a = floatFromBits(ba);
    b = floatFromBits(bb);
  }
  let r: number;
  if (aNaN) r = bNaN ? NaN : b;
  else if (bNaN) r = a;
  else if (a === b) r = isMax === Object.is(a, -0) ? b : a; // equal values differ only as -0 vs +0
  else r = (a < b) !== isMax ? a : b;
  if (isD) writeD(f, rd, r);
  else writeS(f, rd, r);
  return FpStatus.Ok;
}

export function compare(ctx: FpContext, isD: boolean, funct3: number, rd: number, r1: number, r2: number): FpStatus {
  if (funct3 > 2) return FpStatus.Illegal;
  const f = ctx.f;
  let anyNaN: boolean, anySignaling: boolean, a: number, b: number;
  if (isD) {
    const alo = f[2 * r1], ahi = f[2 * r1 + 1];
    const blo = f[2 * r2], bhi = f[2 * r2 + 1];
    anyNaN = isNaND(alo, ahi) || isNaND(blo, bhi);
    anySignaling = isSignalingD(alo, ahi) || isSignalingD(blo, bhi);
    a = doubleFromBits(alo, ahi);
    b = doubleFromBits(blo, bhi);
  } else {
    const ba = unboxS(f, r1);
    const bb = unboxS(f, r2);
    anyNaN = isNaNS(ba) || isNaNS(bb);
    anySignaling = isSignalingS(ba) || isSignalingS(bb);
    a = floatFromBits(ba);
    b = floatFromBits(bb);
  }
  let r = 0;
  if (anyNaN) {
    // feq is a quiet comparison; flt and fle signal on any NaN.
    if (anySignaling || funct3 !== 2) fpState.flags |= FFLAG_NV;
  } else if (funct3 === 2) r = a === b ? 1 : 0;
  else if (funct3 === 1) r = a < b ? 1 : 0;
  else r = a <= b ? 1 : 0;
  writeX(ctx.x, rd, r, 0);
  return FpStatus.Ok;
}
