// Error-free transformations: the exact rounding error of a double sum or product.

const SPLITTER = 134217729; // 2^27 + 1: Veltkamp split into two 26-bit halves

/** Exact error of s = a + b (so a + b = s + error); valid whenever nothing overflows. */
export function sumError(a: number, b: number, s: number): number {
  const bb = s - a;
  return a - (s - bb) + (b - bb);
}

/**
 * Exact error of p = a * b (so a * b = p + error). Valid when |a|, |b| < 2^995 and the error
 * does not underflow (|p| >= 2^-968 or so).
 */
export function productError(a: number, b: number, p: number): number {
  let t = SPLITTER * a;
  const ah = t - (t - a);
  const al = a - ah;
  t = SPLITTER * b;
  const bh = t - (t - b);
  const bl = b - bh;
  return ah * bh - p + ah * bl + al * bh + al * bl;
}
