// 64-bit multiply/divide on (lo, hi) signed-32-bit word pairs, the hart's register layout.
// Results are written to R (R[0] = low word, R[1] = high word) so nothing is allocated.

export const R = new Int32Array(2);

const TWO32 = 4294967296;

/** High 32 bits of the unsigned 32x32 product. */
export function mulhu32(a: number, b: number): number {
  const a0 = a & 0xffff, a1 = a >>> 16, b0 = b & 0xffff, b1 = b >>> 16;
  const p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  return (p11 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16)) | 0;
}

/** Low 64 bits of a 64x64 product. */
export function mul64(al: number, ah: number, bl: number, bh: number): void {
  R[0] = Math.imul(al, bl);
  R[1] = (mulhu32(al, bl) + Math.imul(al, bh) + Math.imul(ah, bl)) | 0;
}

/** High 64 bits of the unsigned 128-bit product. */
export function mulhu64(al: number, ah: number, bl: number, bh: number): void {
  const hi00 = mulhu32(al, bl) >>> 0;
  const lo01 = Math.imul(al, bh) >>> 0, hi01 = mulhu32(al, bh) >>> 0;
  const lo10 = Math.imul(ah, bl) >>> 0, hi10 = mulhu32(ah, bl) >>> 0;
  const lo11 = Math.imul(ah, bh) >>> 0, hi11 = mulhu32(ah, bh) >>> 0;
  const mid = hi00 + lo01 + lo10; // < 3 * 2^32, exact in a double
  const low = lo11 + hi01 + hi10 + Math.floor(mid / TWO32);
  R[0] = low | 0;
  R[1] = (hi11 + Math.floor(low / TWO32)) | 0;
}

function sub64InR(bl: number, bh: number): void {
  const l = R[0], h = R[1];
  R[0] = (l - bl) | 0;
  R[1] = (h - bh - ((l >>> 0) < (bl >>> 0) ? 1 : 0)) | 0;
}

/** High 64 bits of the signed x signed product. */
export function mulh64(al: number, ah: number, bl: number, bh: number): void {
  mulhu64(al, ah, bl, bh);
  if (ah < 0) sub64InR(bl, bh);
  if (bh < 0) sub64InR(al, ah);
}

/** High 64 bits of the signed x unsigned product. */
export function mulhsu64(al: number, ah: number, bl: number, bh: number): void {
  mulhu64(al, ah, bl, bh);
  if (ah < 0) sub64InR(bl, bh);
}

function toBig(lo: number, hi: number): bigint {
  return (BigInt(hi) << 32n) | BigInt(lo >>> 0);
}

function fromBig(v: bigint): void {
  R[0] = Number(BigInt.asIntN(32, v));
  R[1] = Number(BigInt.asIntN(32, v >> 32n));
}

/** 64-bit division and remainder with RISC-V edge cases; op: 0 div, 1 divu, 2 rem, 3 remu. */
export function divrem64(op: number, al: number, ah: number, bl: number, bh: number): void {
  const signed = op === 0 || op === 2;
  const isRem = op >= 2;
  if (bl === 0 && bh === 0) {
    // Division by zero: quotient all ones, remainder the dividend.
    if (isRem) { R[0] = al; R[1] = ah; } else { R[0] = -1; R[1] = -1; }
    return;
  }
  if (signed) {
    if (ah === (al >> 31) && bh === (bl >> 31)) {
      // Both fit in int32: exact in doubles (the int32 overflow case gives +2^31, fine in 64 bits).
      const r = isRem ? al % bl : Math.trunc(al / bl);
      R[0] = r | 0;
      R[1] = r < 0 ? -1 : 0;
      return;
    }
    if (ah === -0x80000000 && al === 0 && bl === -1 && bh === -1) {
      // Overflow: -2^63 / -1.
      if (isRem) { R[0] = 0; R[1] = 0; } else { R[0] = al; R[1] = ah; }
      return;
    }
    const a = BigInt.asIntN(64, toBig(al, ah)), b = BigInt.asIntN(64, toBig(bl, bh));
    fromBig(isRem ? a % b : a / b);
    return;
  }
  if (ah === 0 && bh === 0) {
    const a = al >>> 0, b = bl >>> 0;
    const r = isRem ? a % b : Math.floor(a / b);
    R[0] = r | 0;
    R[1] = 0;
    return;
  }
  const a = BigInt.asUintN(64, toBig(al, ah)), b = BigInt.asUintN(64, toBig(bl, bh));
  fromBig(isRem ? a % b : a / b);
}
