// The A extension's memory semantics, written once for both interpreter loops and atomic across
// threads: guest RAM is shared memory, so with vCPUs on worker threads every AMO is a host
// atomic (Atomics.*) and SC is a compare-and-swap against the value LR saw. (That CAS accepts an
// ABA store by another hart between LR and SC, which the ISA allows an implementation to miss
// only if the value is unchanged — the outcome the guest sees is the same.)

/** funct5 of the AMO instructions. */
export const AMO_ADD = 0x00;
export const AMO_SWAP = 0x01;
export const AMO_LR = 0x02;
export const AMO_SC = 0x03;
export const AMO_XOR = 0x04;
export const AMO_OR = 0x08;
export const AMO_AND = 0x0c;
export const AMO_MIN = 0x10;
export const AMO_MAX = 0x14;
export const AMO_MINU = 0x18;
export const AMO_MAXU = 0x1c;

const LO = 0xffffffffn;

/** Result of the last 64-bit operation's old value, as (lo, hi) int32 words. */
export const oldWords = new Int32Array(2);

function toBig(lo: number, hi: number): bigint {
  return (BigInt(hi) << 32n) | BigInt(lo >>> 0);
}

function split(v: bigint): void {
  oldWords[0] = Number(v & LO) | 0;
  oldWords[1] = Number((v >> 32n) & LO) | 0;
}

function pick32(f5: number, a: number, b: number): number {
  switch (f5) {
    case AMO_MIN: return a < b ? a : b;
    case AMO_MAX: return a > b ? a : b;
    case AMO_MINU: return (a >>> 0) < (b >>> 0) ? a : b;
    default: return (a >>> 0) > (b >>> 0) ? a : b; // AMO_MAXU
  }
}

/**
 * A 32-bit read-modify-write AMO (not LR/SC) on word index `w`; returns the old value. The caller
 * has checked f5 is a valid AMO.
 */
export function amo32(i32: Int32Array, w: number, f5: number, b: number): number {
  switch (f5) {
    case AMO_SWAP: return Atomics.exchange(i32, w, b);
    case AMO_ADD: return Atomics.add(i32, w, b);
    case AMO_XOR: return Atomics.xor(i32, w, b);
    case AMO_OR: return Atomics.or(i32, w, b);
    case AMO_AND: return Atomics.and(i32, w, b);
    default:
      for (;;) {
        const old = Atomics.load(i32, w);
        if (Atomics.compareExchange(i32, w, old, pick32(f5, old, b)) === old) return old;
      }
  }
}

/** True when (al, ah) < (bl, bh) as 64-bit numbers, signed or unsigned. */
function less64(al: number, ah: number, bl: number, bh: number, signed: boolean): boolean {
  if (ah !== bh) return signed ? ah < bh : (ah >>> 0) < (bh >>> 0);
  return (al >>> 0) < (bl >>> 0);
}

/** A 64-bit read-modify-write AMO on doubleword index `d`; the old value lands in oldWords. */
export function amo64(i64: BigInt64Array, d: number, f5: number, bl: number, bh: number): void {
  const b = toBig(bl, bh);
  switch (f5) {
    case AMO_SWAP: return split(Atomics.exchange(i64, d, b));
    case AMO_ADD: return split(Atomics.add(i64, d, b));
    case AMO_XOR: return split(Atomics.xor(i64, d, b));
    case AMO_OR: return split(Atomics.or(i64, d, b));
    case AMO_AND: return split(Atomics.and(i64, d, b));
    default: {
      const signed = f5 === AMO_MIN || f5 === AMO_MAX;
      const wantLess = f5 === AMO_MIN || f5 === AMO_MINU;
      for (;;) {
        const old = Atomics.load(i64, d);
        split(old);
        const oldIsLess = less64(oldWords[0]!, oldWords[1]!, bl, bh, signed);
        const next = oldIsLess === wantLess ? old : b;
        if (Atomics.compareExchange(i64, d, old, next) === old) return;
      }
    }
  }
}

/** LR.D: a single-copy-atomic 64-bit load; the value lands in oldWords. */
export function loadReserved64(i64: BigInt64Array, d: number): void {
  split(Atomics.load(i64, d));
}

/** SC.W: stores `b` if the word still holds what LR read; true on success. */
export function storeConditional32(i32: Int32Array, w: number, expected: number, b: number): boolean {
  return Atomics.compareExchange(i32, w, expected, b) === expected;
}

/** SC.D: as storeConditional32 for a doubleword. */
export function storeConditional64(i64: BigInt64Array, d: number, expLo: number, expHi: number, bl: number, bh: number): boolean {
  const expected = toBig(expLo, expHi);
  return Atomics.compareExchange(i64, d, expected, toBig(bl, bh)) === expected;
}
