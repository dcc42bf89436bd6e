// Single-precision arithmetic: compute in double (exactly, or with the sign of the error known), then
// round once to single under the mode with roundS. Inputs are never NaN (executeFp handles NaNs).
import { FFLAG_DZ, FFLAG_NV } from "./context.js";
import { productError, sumError } from "./eft.js";
import { zeroSum } from "./arith64.js";
import { roundS } from "./round.js";
import { fpState } from "./state.js";

function sign(x: number): number {
  return x > 0 ? 1 : x < 0 ? -1 : 0;
}

export function addS(a: number, b: number, rm: number): number {
  const s = a + b;
  if (s !== s) {
    fpState.flags |= FFLAG_NV;
    return NaN;
  }
  if (s === Infinity || s === -Infinity) return s; // only from infinite operands: floats cannot overflow a double
  if (s === 0) return zeroSum(a, b, rm);
  return roundS(s, sign(sumError(a, b, s)), rm);
}

export function mulS(a: number, b: number, rm: number): number {
  const p = a * b; // exact: 24 x 24 bits fit in a double's 53
  if (p !== p) {
    fpState.flags |= FFLAG_NV;
    return NaN;
  }
  if (p === 0 || p === Infinity || p === -Infinity) return p;
  return roundS(p, 0, rm);
}

export function divS(a: number, b: number, rm: number): number {
  const q = a / b;
  if (q !== q) {
    fpState.flags |= FFLAG_NV;
    return NaN;
  }
  if (b === 0) {
    if (a !== Infinity && a !== -Infinity) fpState.flags |= FFLAG_DZ;
    return q;
  }
  if (q === 0 || q === Infinity || q === -Infinity) return q; // only from zero or infinite operands
  const p = q * b;
  const r = a - p - productError(q, b, p); // exact remainder: float operands keep everything in range
  return roundS(q, sign(r) * sign(b), rm);
}

export function sqrtS(a: number, rm: number): number {
  if (a === 0 || a === Infinity) return a;
  if (a < 0) {
    fpState.flags |= FFLAG_NV;
    return NaN;
  }
  const s = Math.sqrt(a);
  const p = s * s;
  return roundS(s, sign(a - p - productError(s, s, p)), rm);
}

export function fmaS(a: number, b: number, c: number, rm: number): number {
  const p = a * b; // exact
  if (p !== p) {
    fpState.flags |= FFLAG_NV;
    return NaN;
  }
  return addS(p, c, rm);
}
