// fcvt between floating point and 32/64-bit integers, with RISC-V's saturation and flag rules.
import { FFLAG_NV, FFLAG_NX } from "./context.js";
import { sumError } from "./eft.js";
import { finishD, halfGapD, roundS } from "./round.js";
import { fpState, RM_RDN, RM_RMM, RM_RNE, RM_RTZ } from "./state.js";

export const INT_W = 0;
export const INT_WU = 1;
export const INT_L = 2;
export const INT_LU = 3;

const TWO_32 = 4294967296;
const TWO_52 = 4503599627370496;
const TWO_63 = 9223372036854775808;
const TWO_64 = 18446744073709551616;

/** v rounded to an integral double under rm (v finite). */
export function roundToIntegral(v: number, rm: number): number {
  if (!(Math.abs(v) < TWO_52)) return v; // already an integer
  const fl = Math.floor(v);
  const frac = v - fl; // exact
  if (frac === 0) return v;
  switch (rm) {
    case RM_RNE:
      return frac > 0.5 || (frac === 0.5 && fl % 2 !== 0) ? fl + 1 : fl;
    case RM_RTZ:
      return v < 0 ? fl + 1 : fl;
    case RM_RDN:
      return fl;
    case RM_RMM:
      return frac > 0.5 || (frac === 0.5 && v > 0) ? fl + 1 : fl;
    default:
      return fl + 1;
  }
}

/** Low and high words of the last toInt() result. */
export const intResult = { lo: 0, hi: 0 };

/** Converts v (any double, NaN allowed) to the integer kind; results of W kinds are sign-extended. */
export function toInt(v: number, kind: number, rm: number): void {
  let r: number;
  let inRange: boolean;
  if (v !== v) {
    r = NaN;
    inRange = false;
  } else {
    r = roundToIntegral(v, rm);
    switch (kind) {
      case INT_W:
        inRange = r >= -2147483648 && r <= 2147483647;
        break;
      case INT_WU:
        inRange = r >= 0 && r <= 4294967295;
        break;
      case INT_L:
        inRange = r >= -TWO_63 && r < TWO_63;
        break;
      default:
        inRange = r >= 0 && r < TWO_64;
    }
  }
  if (!inRange) {
    fpState.flags |= FFLAG_NV; // invalid replaces inexact
    const neg = v < 0; // false for NaN: NaN saturates to the maximum
    switch (kind) {
      case INT_W:
        setInt(neg ? -2147483648 : 2147483647, neg ? -1 : 0);
        return;
      case INT_WU:
        setInt(neg ? 0 : -1, neg ? 0 : -1);
        return;
      case INT_L:
        setInt(neg ? 0 : -1, neg ? -2147483648 : 0x7fffffff);
        return;
      default:
        setInt(neg ? 0 : -1, neg ? 0 : -1);
        return;
    }
  }
  if (r !== v) fpState.flags |= FFLAG_NX;
  if (kind === INT_W || kind === INT_WU) {
    const lo = r | 0; // ToInt32 wraps WU's upper half into the sign, as sign extension wants
    setInt(lo, lo >> 31);
  } else {
    const hi = Math.floor(r / TWO_32);
    setInt((r - hi * TWO_32) | 0, hi | 0);
  }
}

function setInt(lo: number, hi: number): void {
  intResult.lo = lo;
  intResult.hi = hi;
}

/** Converts the integer kind held in lo/hi to double (isDouble) or single, rounded under rm. */
export function fromInt(lo: number, hi: number, kind: number, isDouble: boolean, rm: number): number {
  let big: number;
  let small: number;
  switch (kind) {
    case INT_W:
      big = 0;
      small = lo;
      break;
    case INT_WU:
      big = 0;
      small = lo >>> 0;
      break;
    case INT_L:
      big = hi * TWO_32;
      small = lo >>> 0;
      break;
    default:
      big = (hi >>> 0) * TWO_32;
      small = lo >>> 0;
  }
  const s = big + small;
  const e = sumError(big, small, s);
  if (!isDouble) return s === 0 ? 0 : roundS(s, e > 0 ? 1 : e < 0 ? -1 : 0, rm);
  if (e === 0) return s;
  const dir = e > 0 ? 1 : -1;
  return finishD(s, dir, Math.abs(e) === halfGapD(s, dir), rm);
}
