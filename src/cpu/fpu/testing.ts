// Test helpers: a fresh FPU context, instruction encoders and register accessors by bit pattern.
import type { FpContext } from "./context.js";

export function makeCtx(): FpContext {
  return { f: new Int32Array(64), x: new Int32Array(64), frm: 0, fflags: 0 };
}

export const FMT_S = 0;
export const FMT_D = 1;

/** An OP-FP instruction: funct7 = (op5 << 2) | fmt. */
export function opFp(op5: number, fmt: number, rd: number, rs1: number, rs2: number, rm: number): number {
  return (((op5 << 2) | fmt) << 25) | (rs2 << 20) | (rs1 << 15) | (rm << 12) | (rd << 7) | 0x53;
}

export const FMADD = 0x43;
export const FMSUB = 0x47;
export const FNMSUB = 0x4b;
export const FNMADD = 0x4f;

export function fused(opcode: number, fmt: number, rd: number, rs1: number, rs2: number, rs3: number, rm: number): number {
  return (rs3 << 27) | (fmt << 25) | (rs2 << 20) | (rs1 << 15) | (rm << 12) | (rd << 7) | opcode;
}

/** Writes a single's bit pattern NaN-boxed into f[r]. */
export function setS(ctx: FpContext, r: number, bits: number): void {
  ctx.f[2 * r] = bits;
  ctx.f[2 * r + 1] = -1;
}

// Node 20's optimizing compiler can crash (V8 "Phi of kRepTagged (SignedBigInt64)") on BigInt.asIntN/asUintN
// merged across branches, so these helpers use plain masking instead.

/** The two's-complement value of v's low `bits` bits. */
export function signedBits(v: bigint, bits: number): bigint {
  const m = v & ((1n << BigInt(bits)) - 1n);
  return m >= 1n << BigInt(bits - 1) ? m - (1n << BigInt(bits)) : m;
}

/** The low 64 bits of v, unsigned. */
export function u64(v: bigint): bigint {
  return v & 0xffffffffffffffffn;
}

function word(v: bigint): number {
  return Number(v & 0xffffffffn) | 0;
}

/** Writes a double's 64-bit pattern (as bigint) into f[r]. */
export function setD(ctx: FpContext, r: number, bits: bigint): void {
  ctx.f[2 * r] = word(bits);
  ctx.f[2 * r + 1] = word(bits >> 32n);
}

export function getD(ctx: FpContext, r: number): bigint {
  return (BigInt(ctx.f[2 * r + 1] >>> 0) << 32n) | BigInt(ctx.f[2 * r] >>> 0);
}

/** Low word of f[r] as unsigned bits (the single payload). */
export function getS(ctx: FpContext, r: number): number {
  return ctx.f[2 * r] >>> 0;
}

export function setX(ctx: FpContext, r: number, v: bigint): void {
  ctx.x[2 * r] = word(v);
  ctx.x[2 * r + 1] = word(v >> 32n);
}

/** x[r] as a signed 64-bit bigint. */
export function getX(ctx: FpContext, r: number): bigint {
  return signedBits((BigInt(ctx.x[2 * r + 1] >>> 0) << 32n) | BigInt(ctx.x[2 * r] >>> 0), 64);
}

const buf = new DataView(new ArrayBuffer(8));

export function dbits(v: number): bigint {
  buf.setFloat64(0, v);
  return buf.getBigUint64(0);
}

export function sbits(v: number): number {
  buf.setFloat32(0, v);
  return buf.getUint32(0);
}
