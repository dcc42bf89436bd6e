// Bit-level F/D operations: sign injection (fsgnj, fsgnjn, fsgnjx) and fclass. Neither raises flags.
import { FpStatus } from "./context.js";
import { unboxS, writeSBits } from "./registers.js";

export function signInject(f: Int32Array, isD: boolean, funct3: number, rd: number, r1: number, r2: number): FpStatus {
  if (funct3 > 2) return FpStatus.Illegal;
  const a = isD ? f[2 * r1 + 1] : unboxS(f, r1);
  const b = isD ? f[2 * r2 + 1] : unboxS(f, r2);
  const sign = funct3 === 0 ? b & 0x80000000 : funct3 === 1 ? ~b & 0x80000000 : (a ^ b) & 0x80000000;
  const word = (a & 0x7fffffff) | sign;
  if (isD) {
    f[2 * rd] = f[2 * r1];
    f[2 * rd + 1] = word;
  } else {
    writeSBits(f, rd, word);
  }
  return FpStatus.Ok;
}

/** fclass bit for a value with sign, biased exponent (all ones = inf/NaN) and mantissa properties. */
function classify(neg: boolean, expZero: boolean, expMax: boolean, manZero: boolean, quiet: boolean): number {
  if (expMax) {
    if (manZero) return neg ? 1 << 0 : 1 << 7;
    return quiet ? 1 << 9 : 1 << 8;
  }
  if (expZero) {
    if (manZero) return neg ? 1 << 3 : 1 << 4;
    return neg ? 1 << 2 : 1 << 5;
  }
  return neg ? 1 << 1 : 1 << 6;
}

export function classifyS(bits: number): number {
  const exp = (bits >>> 23) & 0xff;
  return classify(bits < 0, exp === 0, exp === 0xff, (bits & 0x7fffff) === 0, (bits & 0x400000) !== 0);
}

export function classifyD(lo: number, hi: number): number {
  const exp = (hi >>> 20) & 0x7ff;
  return classify(hi < 0, exp === 0, exp === 0x7ff, ((hi & 0xfffff) | lo) === 0, (hi & 0x80000) !== 0);
}
