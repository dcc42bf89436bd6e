// Double-precision add, multiply, divide, square root and fused multiply-add, correctly rounded in
// every mode. Inputs are never NaN (executeFp handles NaNs). Fast path: JS arithmetic plus the exact
// error; edges (subnormal results, overflow, extreme exponents, hard FMA cases) take an exact BigInt path.
import { FFLAG_DZ, FFLAG_NV } from "./context.js";
import { doubleLo, stepD } from "./bits.js";
import { productError, sumError } from "./eft.js";
import { bitLength, decE, decM, decode, finishD, halfGapD, roundPackBig } from "./round.js";
import { fpState, RM_RDN } from "./state.js";

const SAFE_HI = 2 ** 960;
const SAFE_LO = 2 ** -900;
const ADD_HI = 2 ** 1020;
const NORMAL_LO = 2 ** -1021;
const NORMAL_HI = 2 ** 1022;

/** The sign of an exact zero sum a + b, per IEEE 754 (both zero operands keep a shared sign). */
export function zeroSum(a: number, b: number, rm: number): number {
  if (a === 0 && b === 0 && 1 / a === 1 / b) return a;
  return rm === RM_RDN ? -0 : 0;
}

function sign(x: number): number {
  return x > 0 ? 1 : x < 0 ? -1 : 0;
}

export function addD(a: number, b: number, rm: number): number {
  const s = a + b;
  if (s !== s) {
    fpState.flags |= FFLAG_NV; // inf - inf
    return NaN;
  }
  if (a === Infinity || a === -Infinity || b === Infinity || b === -Infinity) return s;
  if (Math.abs(a) >= ADD_HI || Math.abs(b) >= ADD_HI) return slowAdd(a, b, rm);
  const e = sumError(a, b, s);
  if (s === 0) return zeroSum(a, b, rm);
  if (e === 0) return s; // includes every sum in the subnormal range, which is always exact
  const dir = e > 0 ? 1 : -1;
  return finishD(s, dir, Math.abs(e) === halfGapD(s, dir), rm);
}

function slowAdd(a: number, b: number, rm: number): number {
  decode(a);
  const ma = a < 0 ? -decM : decM;
  const ea = decE;
  decode(b);
  const mb = b < 0 ? -decM : decM;
  const eb = decE;
  const e = Math.min(ea, eb);
  const sum = (ma << BigInt(ea - e)) + (mb << BigInt(eb - e));
  if (sum === 0n) return zeroSum(a, b, rm);
  return roundPackBig(sum < 0n, sum < 0n ? -sum : sum, e, true, rm);
}

function inMulRange(a: number, b: number, p: number): boolean {
  const aa = Math.abs(a);
  const ab = Math.abs(b);
  const ap = Math.abs(p);
  return aa > SAFE_LO && aa < SAFE_HI && ab > SAFE_LO && ab < SAFE_HI && ap > SAFE_LO && ap < SAFE_HI;
}

export function mulD(a: number, b: number, rm: number): number {
  const p = a * b;
  if (p !== p) {
    fpState.flags |= FFLAG_NV; // inf * 0
    return NaN;
  }
  if (p === 0 || p === Infinity || p === -Infinity) {
    if (a === 0 || b === 0 || Math.abs(a) === Infinity || Math.abs(b) === Infinity) return p;
    return slowMul(a, b, rm); // overflow or underflow of finite non-zero operands
  }
  if (!inMulRange(a, b, p)) return slowMul(a, b, rm);
  const e = productError(a, b, p);
  if (e === 0) return p;
  const dir = e > 0 ? 1 : -1;
  return finishD(p, dir, Math.abs(e) === halfGapD(p, dir), rm);
}

function slowMul(a: number, b: number, rm: number): number {
  decode(a);
  const ma = decM;
  const ea = decE;
  decode(b);
  return roundPackBig((a < 0) !== (b < 0), ma * decM, ea + decE, true, rm);
}

export function divD(a: number, b: number, rm: number): number {
  const q = a / b;
  if (q !== q) {
    fpState.flags |= FFLAG_NV; // 0/0 or inf/inf
    return NaN;
  }
  if (b === 0) {
    if (a !== Infinity && a !== -Infinity) fpState.flags |= FFLAG_DZ;
    return q;
  }
  if (a === 0 || a === Infinity || a === -Infinity || b === Infinity || b === -Infinity) return q;
  if (!inMulRange(q, b, a)) return slowDiv(a, b, rm);
  const r = remainderOf(a, q, b);
  if (r === 0) return q;
  return finishD(q, sign(r) * sign(b), false, rm); // quotients are never exact midpoints
}

/** a - q*b exactly, valid when q is the correctly rounded a/b (or sqrt, with b = q) in the safe range. */
function remainderOf(a: number, q: number, b: number): number {
  const p = q * b;
  return a - p - productError(q, b, p);
}

function slowDiv(a: number, b: number, rm: number): number {
  decode(a);
  const ma = decM;
  const ea = decE;
  decode(b);
  const mb = decM;
  const k = 57 + Math.max(0, bitLength(mb) - bitLength(ma));
  const num = ma << BigInt(k);
  const q = num / mb;
  const sticky = num - q * mb === 0n ? 0n : 1n;
  return roundPackBig((a < 0) !== (b < 0), (q << 1n) | sticky, ea - decE - k - 1, true, rm);
}

export function sqrtD(a: number, rm: number): number {
  if (a === 0 || a === Infinity) return a;
  if (a < 0) {
    fpState.flags |= FFLAG_NV;
    return NaN;
  }
  const s = Math.sqrt(a);
  if (a < SAFE_LO || a > SAFE_HI) return slowSqrt(a, rm, true);
  const r = remainderOf(a, s, s);
  if (r === 0) return s;
  return finishD(s, sign(r), false, rm);
}

/** Integer square root (floor) of n > 0. */
function isqrt(n: bigint): bigint {
  let x = 1n << BigInt((bitLength(n) >> 1) + 1);
  for (;;) {
    const y = (x + n / x) >> 1n;
    if (y >= x) return x;
    x = y;
  }
}

/** Exact square root of a finite positive double, rounded to double or single. */
export function slowSqrt(a: number, rm: number, isDouble: boolean): number {
  decode(a);
  let m = decM;
  let e = decE;
  if (e & 1) {
    m <<= 1n;
    e -= 1;
  }
  const k = Math.max(0, Math.ceil((112 - bitLength(m)) / 2));
  const n = m << BigInt(2 * k);
  const s = isqrt(n);
  const sticky = n === s * s ? 0n : 1n;
  return roundPackBig(false, (s << 1n) | sticky, (e - 2 * k) / 2 - 1, isDouble, rm);
}

/** a*b + c with a single rounding. */
export function fmaD(a: number, b: number, c: number, rm: number): number {
  const p = a * b;
  if (p !== p) {
    fpState.flags |= FFLAG_NV; // inf * 0
    return NaN;
  }
  if (a === Infinity || a === -Infinity || b === Infinity || b === -Infinity) return addD(p, c, rm);
  if (c === Infinity || c === -Infinity) return c;
  if (a === 0 || b === 0) return c === 0 ? zeroSum(p, c, rm) : c;
  if (c === 0) return mulD(a, b, rm);
  if (!inMulRange(a, b, p) || Math.abs(c) >= SAFE_HI) return slowFma(a, b, c, rm);
  const pe = productError(a, b, p);
  // a*b + c = p + pe + c exactly; fold it into u + w + e4 with u the double nearest the sum.
  const s = c + p;
  const e1 = sumError(c, p, s);
  const t = e1 + pe;
  const e2 = sumError(e1, pe, t);
  const u = s + t;
  const e3 = sumError(s, t, u);
  const w = e3 + e2;
  const e4 = sumError(e3, e2, w);
  const au = Math.abs(u);
  if (au < NORMAL_LO || au > NORMAL_HI) return slowFma(a, b, c, rm);
  if (w === 0) return u; // then e4 is 0 too: exact
  const dir = w > 0 ? 1 : -1;
  const half = halfGapD(u, dir);
  const aw = Math.abs(w);
  if (aw < half) return finishD(u, dir, false, rm); // |w + e4| < half too, so u is nearest
  if (aw === half) {
    // x lies on, beyond (e4 with w's sign) or short of the midpoint between u and its neighbour n.
    const n = stepD(u, dir);
    if (e4 === 0) return (doubleLo(u) & 1) === 0 ? finishD(u, dir, true, rm) : finishD(n, -dir, true, rm);
    return (e4 > 0) === (dir > 0) ? finishD(n, -dir, false, rm) : finishD(u, dir, false, rm);
  }
  return slowFma(a, b, c, rm);
}

function slowFma(a: number, b: number, c: number, rm: number): number {
  decode(a);
  const ma = decM;
  const ea = decE;
  decode(b);
  let mp = ma * decM;
  if ((a < 0) !== (b < 0)) mp = -mp;
  const ep = ea + decE;
  decode(c);
  const mc = c < 0 ? -decM : decM;
  const e = Math.min(ep, decE);
  const sum = (mp << BigInt(ep - e)) + (mc << BigInt(decE - e));
  if (sum === 0n) return rm === RM_RDN ? -0 : 0;
  return roundPackBig(sum < 0n, sum < 0n ? -sum : sum, e, true, rm);
}
