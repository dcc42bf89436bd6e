// Bit-level views of doubles and floats, and one-step moves along the representable grid.
// One shared scratch buffer: no allocation on the hot path.

const scratch = new ArrayBuffer(8);
const f64 = new Float64Array(scratch);
const f32 = new Float32Array(scratch);
const i32 = new Int32Array(scratch);

export const CANONICAL_NAN_S = 0x7fc00000;
export const CANONICAL_NAN_D_HI = 0x7ff80000;
export const MAX_S = 3.4028234663852886e38;
export const MAX_D = Number.MAX_VALUE;

/** The double whose bit pattern is hi:lo (little-endian host). */
export function doubleFromBits(lo: number, hi: number): number {
  i32[0] = lo;
  i32[1] = hi;
  return f64[0];
}

/** Low word of v's bit pattern. */
export function doubleLo(v: number): number {
  f64[0] = v;
  return i32[0];
}

/** High word of v's bit pattern. */
export function doubleHi(v: number): number {
  f64[0] = v;
  return i32[1];
}

/** The float whose bit pattern is bits, widened to a double. */
export function floatFromBits(bits: number): number {
  i32[0] = bits;
  return f32[0];
}

/** Bit pattern of v, which must be exactly representable as a float (or not NaN). */
export function floatBits(v: number): number {
  f32[0] = v;
  return i32[0];
}

export function isSignalingS(bits: number): boolean {
  return (bits & 0x7fc00000) === 0x7f800000 && (bits & 0x003fffff) !== 0;
}

export function isNaNS(bits: number): boolean {
  return (bits & 0x7fffffff) > 0x7f800000;
}

export function isSignalingD(lo: number, hi: number): boolean {
  return (hi & 0x7ff80000) === 0x7ff00000 && ((hi & 0x0007ffff) | lo) !== 0;
}

export function isNaND(lo: number, hi: number): boolean {
  const h = hi & 0x7fffffff;
  return h > 0x7ff00000 || (h === 0x7ff00000 && lo !== 0);
}

/** The neighbouring double of v (finite, non-zero) in direction dir (+1 up, -1 down). */
export function stepD(v: number, dir: number): number {
  f64[0] = v;
  // Moving away from zero increments the magnitude bits; toward zero decrements them.
  if ((dir > 0) === (v > 0)) {
    const lo = (i32[0] + 1) | 0;
    i32[0] = lo;
    if (lo === 0) i32[1] = (i32[1] + 1) | 0;
  } else {
    if (i32[0] === 0) i32[1] = (i32[1] - 1) | 0;
    i32[0] = (i32[0] - 1) | 0;
  }
  return f64[0];
}

/** The neighbouring float of v (a non-zero float value) in direction dir. */
export function stepS(v: number, dir: number): number {
  f32[0] = v;
  i32[0] = (dir > 0) === (v > 0) ? (i32[0] + 1) | 0 : (i32[0] - 1) | 0;
  return f32[0];
}

/** 2^n as a double, for -1022 <= n <= 1023. */
export function pow2(n: number): number {
  i32[0] = 0;
  i32[1] = (n + 1023) << 20;
  return f64[0];
}
