// Reading and writing FP and integer registers in the shared lo/hi word layout, with NaN-boxing.
import { CANONICAL_NAN_D_HI, CANONICAL_NAN_S, doubleHi, doubleLo, floatBits } from "./bits.js";

/** Bits of a single-precision operand: the canonical NaN unless properly NaN-boxed. */
export function unboxS(f: Int32Array, r: number): number {
  return f[2 * r + 1] === -1 ? f[2 * r] : CANONICAL_NAN_S;
}

export function writeS(f: Int32Array, r: number, v: number): void {
  f[2 * r] = v !== v ? CANONICAL_NAN_S : floatBits(v);
  f[2 * r + 1] = -1;
}

export function writeSBits(f: Int32Array, r: number, bits: number): void {
  f[2 * r] = bits;
  f[2 * r + 1] = -1;
}

export function writeD(f: Int32Array, r: number, v: number): void {
  if (v !== v) {
    f[2 * r] = 0;
    f[2 * r + 1] = CANONICAL_NAN_D_HI;
  } else {
    f[2 * r] = doubleLo(v);
    f[2 * r + 1] = doubleHi(v);
  }
}

export function writeX(x: Int32Array, r: number, lo: number, hi: number): void {
  if (r === 0) return;
  x[2 * r] = lo;
  x[2 * r + 1] = hi;
}
