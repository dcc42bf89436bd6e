// Rounding under the five RISC-V modes, given a round-to-nearest candidate and the sign of its error.
import { FFLAG_NX, FFLAG_OF, FFLAG_UF } from "./context.js";
import { MAX_D, MAX_S, pow2, stepD, stepS, doubleHi, doubleLo } from "./bits.js";
import { fpState, RM_RDN, RM_RMM, RM_RNE, RM_RTZ, RM_RUP } from "./state.js";

const TWO_M126 = 1.1754943508222875e-38;
const TWO_127 = 1.7014118346046923e38;

/**
 * u is the nearest double to an inexact exact value x, x - u has sign dir, and tie says x was a midpoint.
 * u must be normal and far from overflow (2^-1021 <= |u| <= 2^1022) so no step leaves the normal range.
 */
export function finishD(u: number, dir: number, tie: boolean, rm: number): number {
  fpState.flags |= FFLAG_NX;
  switch (rm) {
    case RM_RNE:
      return u;
    case RM_RTZ:
      return (dir > 0) !== (u > 0) ? stepD(u, dir) : u;
    case RM_RDN:
      return dir < 0 ? stepD(u, -1) : u;
    case RM_RUP:
      return dir > 0 ? stepD(u, 1) : u;
    default: // RMM: differs from RNE only when RNE broke a tie toward zero
      return tie && (dir > 0) === (u > 0) ? stepD(u, dir) : u;
  }
}

/** Same as finishD for a float candidate f that is a normal float below 2^127 in magnitude. */
function finishS(f: number, dir: number, tie: boolean, rm: number): number {
  fpState.flags |= FFLAG_NX;
  switch (rm) {
    case RM_RNE:
      return f;
    case RM_RTZ:
      return (dir > 0) !== (f > 0) ? stepS(f, dir) : f;
    case RM_RDN:
      return dir < 0 ? stepS(f, -1) : f;
    case RM_RUP:
      return dir > 0 ? stepS(f, 1) : f;
    default:
      return tie && (dir > 0) === (f > 0) ? stepS(f, dir) : f;
  }
}

/** Half the distance from the double u to its neighbour in direction dir. */
export function halfGapD(u: number, dir: number): number {
  return Math.abs(stepD(u, dir) - u) * 0.5;
}

/**
 * Rounds x = v + d to single precision, where v is a finite double, d is tiny (|d| <= half an ulp of v)
 * and sign(d) = dir (0 when v is exact). Returns a double holding the float result.
 */
export function roundS(v: number, dir: number, rm: number): number {
  const a = Math.abs(v);
  if (a > TWO_M126 && a < TWO_127) {
    let f = Math.fround(v);
    if (f === v) {
      if (dir === 0) return f;
      return finishS(f, dir, false, rm);
    }
    const d = v - f; // exact (Sterbenz): f and v are within a factor of two
    let fdir = d > 0 ? 1 : -1;
    let tie = false;
    if (Math.abs(d) === Math.abs(stepS(f, fdir) - f) * 0.5) {
      // v sits on a float midpoint: the tiny error d decides which side x is on.
      if (dir === 0) tie = true;
      else if (dir === fdir) {
        f = stepS(f, fdir);
        fdir = -fdir;
      }
    }
    return finishS(f, fdir, tie, rm);
  }
  if (v === 0 || v !== v || a === Infinity) return v;
  decode(v);
  // Append the error as an eighth of v's ulp: it sits strictly between the same single-precision
  // rounding boundaries as the true value, so the coarser rounding comes out the same.
  const magDir = v < 0 ? -dir : dir;
  return roundPackBig(v < 0, (decM << 3n) + BigInt(magDir), decE - 3, false, rm);
}

/** Mantissa and exponent of the last decode(): |v| = decM * 2^decE. */
export let decM = 0n;
export let decE = 0;

/** Splits a finite non-zero double into an integer mantissa and an exponent (into decM, decE). */
export function decode(v: number): void {
  const hi = doubleHi(v);
  const lo = doubleLo(v);
  const e = (hi >>> 20) & 0x7ff;
  const m = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo >>> 0);
  if (e === 0) {
    decM = m;
    decE = -1074;
  } else {
    decM = m | (1n << 52n);
    decE = e - 1075;
  }
}

export function bitLength(m: bigint): number {
  return m === 0n ? 0 : m.toString(2).length;
}

let roundedInexact = false;

/** mant / 2^shift rounded to an integer under rm (sign neg); sets roundedInexact. */
function roundShift(mant: bigint, shift: number, neg: boolean, rm: number): bigint {
  if (shift <= 0) {
    roundedInexact = false;
    return mant << BigInt(-shift);
  }
  const s = BigInt(shift);
  const q = mant >> s;
  const rem = mant - (q << s);
  roundedInexact = rem !== 0n;
  if (!roundedInexact) return q;
  const half = 1n << (s - 1n);
  let up: boolean;
  switch (rm) {
    case RM_RNE:
      up = rem > half || (rem === half && (q & 1n) === 1n);
      break;
    case RM_RTZ:
      up = false;
      break;
    case RM_RDN:
      up = neg;
      break;
    case RM_RUP:
      up = !neg;
      break;
    default:
      up = rem >= half;
  }
  return up ? q + 1n : q;
}

/** Multiplies x by 2^n exactly when the result is representable (n may be below -1022). */
function scaleByPow2(x: number, n: number): number {
  while (n > 1023) {
    x *= pow2(1023);
    n -= 1023;
  }
  while (n < -1000) {
    x *= pow2(-1000);
    n += 1000;
  }
  return x * pow2(n);
}

/**
 * Rounds (-1)^neg * mant * 2^exp (mant > 0) to double (isDouble) or single under rm, raising
 * NX/UF/OF; tininess is detected after rounding, as RISC-V requires. The slow, exact path.
 */
export function roundPackBig(neg: boolean, mant: bigint, exp: number, isDouble: boolean, rm: number): number {
  const P = isDouble ? 53 : 24;
  const emin = isDouble ? -1022 : -126;
  const emax = isDouble ? 1023 : 127;
  const len = bitLength(mant);
  const E = exp + len - 1;
  let tiny = E < emin - 1;
  if (E === emin - 1) {
    // Tiny unless rounding to P bits with an unbounded exponent carries up to 2^emin.
    const q = roundShift(mant, len - P, neg, rm);
    tiny = bitLength(q) === P;
  }
  let lsb = Math.max(E - P + 1, emin - P + 1);
  let q = roundShift(mant, lsb - exp, neg, rm);
  const inexact = roundedInexact;
  if (bitLength(q) > P) {
    q >>= 1n; // q was exactly 2^P
    lsb++;
  }
  let flags = 0;
  if (inexact) flags |= FFLAG_NX;
  if (inexact && tiny) flags |= FFLAG_UF;
  if (q !== 0n && lsb + bitLength(q) - 1 > emax) {
    fpState.flags |= FFLAG_OF | FFLAG_NX;
    const toInf = rm === RM_RNE || rm === RM_RMM || (rm === RM_RDN && neg) || (rm === RM_RUP && !neg);
    const mag = toInf ? Infinity : isDouble ? MAX_D : MAX_S;
    return neg ? -mag : mag;
  }
  fpState.flags |= flags;
  const mag = q === 0n ? 0 : scaleByPow2(Number(q), lsb);
  return neg ? -mag : mag;
}
