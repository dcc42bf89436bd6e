// Known-answer tests for executeFp: special values, rounding modes, flags, conversions, NaN-boxing.
import { test } from "node:test";
import assert from "node:assert/strict";
import { FpStatus } from "./context.js";
import { executeFp } from "./execute.js";
import {
  FMADD, FMSUB, FNMADD, FNMSUB, FMT_D, FMT_S, dbits, fused, getD, getS, getX, makeCtx, opFp, sbits, setD, setS, setX, signedBits, u64,
} from "./testing.js";

const NV = 0x10, DZ = 0x08, OF = 0x04, UF = 0x02, NX = 0x01;
const RNE = 0, RTZ = 1, RDN = 2, RUP = 3, RMM = 4;
const ADD = 0x00, SUB = 0x01, MUL = 0x02, DIV = 0x03, SGNJ = 0x04, MINMAX = 0x05, CVT_FF = 0x08, SQRT = 0x0b;
const CMP = 0x14, CVT_IF = 0x18, CVT_FI = 0x1a, MV_X = 0x1c, MV_F = 0x1e;

const CNAN_D = 0x7ff8000000000000n;
const CNAN_S = 0x7fc00000n;
const SNAN_D = 0x7ff0000000000001n;
const QNAN_D_PAYLOAD = 0xfff8000000001234n;
const SNAN_S = 0x7f800001n;
const QNAN_S = 0x7fc00000n;
const MAX_D = dbits(Number.MAX_VALUE);
const MIN_NORMAL_D = 0x0010000000000000n;
const MAX_S = 0x7f7fffffn;
const INF_S = 0x7f800000n;

type Bits = bigint | number;
const asD = (v: Bits): bigint => (typeof v === "bigint" ? v : dbits(v));
/** Numbers are values; bigints are bit patterns. */
const asS = (v: Bits): number => (typeof v === "bigint" ? Number(v) : sbits(v));

/** Runs a D-format OP-FP or fused instruction with operands in f1..f3; returns rd=f10's bits and fflags. */
function runD(insn: number, ops: Bits[], frm = 0): { bits: bigint; flags: number; status: FpStatus } {
  const ctx = makeCtx();
  ctx.frm = frm;
  ops.forEach((v, i) => setD(ctx, i + 1, asD(v)));
  const status = executeFp(insn, ctx);
  return { bits: getD(ctx, 10), flags: ctx.fflags, status };
}

/** Same for S format (numbers are values, bigints bit patterns). */
function runS(insn: number, ops: Bits[]): { bits: number; flags: number; boxed: boolean } {
  const ctx = makeCtx();
  ops.forEach((v, i) => setS(ctx, i + 1, asS(v)));
  executeFp(insn, ctx);
  return { bits: getS(ctx, 10), flags: ctx.fflags, boxed: ctx.f[21] === -1 };
}

const d2 = (op: number, rm: number) => opFp(op, FMT_D, 10, 1, 2, rm);
const s2 = (op: number, rm: number) => opFp(op, FMT_S, 10, 1, 2, rm);

function expectD(insn: number, ops: Bits[], bits: Bits, flags: number): void {
  const r = runD(insn, ops);
  assert.equal(r.bits.toString(16), asD(bits).toString(16), `bits of ${ops.join(",")}`);
  assert.equal(r.flags, flags, `flags of ${ops.join(",")}`);
}

function expectS(insn: number, ops: Bits[], bits: Bits, flags: number): void {
  const r = runS(insn, ops);
  assert.equal(r.bits.toString(16), (asS(bits) >>> 0).toString(16), `bits of ${ops.join(",")}`);
  assert.equal(r.flags, flags, `flags of ${ops.join(",")}`);
  assert.ok(r.boxed, "single results are NaN-boxed");
}

test("fadd.d rounds 1 + 2^-60 in every mode, and ties by mode", () => {
  const up = 1 + 2 ** -52;
  expectD(d2(ADD, RNE), [1, 2 ** -60], 1, NX);
  expectD(d2(ADD, RTZ), [1, 2 ** -60], 1, NX);
  expectD(d2(ADD, RDN), [1, 2 ** -60], 1, NX);
  expectD(d2(ADD, RUP), [1, 2 ** -60], up, NX);
  expectD(d2(ADD, RMM), [1, 2 ** -60], 1, NX);
  expectD(d2(ADD, RDN), [-1, -(2 ** -60)], -up, NX);
  expectD(d2(ADD, RUP), [-1, -(2 ** -60)], -1, NX);
  expectD(d2(ADD, RTZ), [-1, -(2 ** -60)], -1, NX);
  // Exact ties: 1 + 2^-53 sits between 1 (even) and 1 + 2^-52 (odd).
  expectD(d2(ADD, RNE), [1, 2 ** -53], 1, NX);
  expectD(d2(ADD, RMM), [1, 2 ** -53], up, NX);
  expectD(d2(ADD, RMM), [-1, -(2 ** -53)], -up, NX);
  expectD(d2(ADD, RNE), [up, 2 ** -53], 1 + 2 ** -51, NX);
  expectD(d2(ADD, RTZ), [up, 2 ** -53], up, NX);
  expectD(d2(ADD, RNE), [1, 2], 3, 0);
});

test("fadd/fsub zero signs: x - x is +0 except -0 when rounding down", () => {
  expectD(d2(SUB, RNE), [1.5, 1.5], 0, 0);
  expectD(d2(SUB, RDN), [1.5, 1.5], -0, 0);
  expectD(d2(ADD, RNE), [-0, -0], -0, 0);
  expectD(d2(ADD, RNE), [0, -0], 0, 0);
  expectD(d2(ADD, RDN), [0, -0], -0, 0);
  expectS(s2(SUB, RDN), [2.5, 2.5], -0, 0);
  expectS(s2(ADD, RUP), [-0, 0], 0, 0);
});

test("fadd.s ties and directed modes on single precision", () => {
  expectS(s2(ADD, RNE), [1, 2 ** -24], 1, NX);
  expectS(s2(ADD, RMM), [1, 2 ** -24], 1 + 2 ** -23, NX);
  expectS(s2(ADD, RUP), [1, 2 ** -40], 1 + 2 ** -23, NX);
  expectS(s2(ADD, RDN), [1, -(2 ** -40)], 1 - 2 ** -24, NX);
  expectS(s2(ADD, RTZ), [-1, -(2 ** -40)], -1, NX);
  // 1 + 2^-24 + 2^-60 is just above the tie: nearest is up, where double-rounding would say 1.
  const ctx = makeCtx();
  setD(ctx, 1, dbits(1 + 2 ** -24 + 2 ** -52));
  executeFp(opFp(CVT_FF, FMT_S, 10, 1, 1, RNE), ctx);
  assert.equal(getS(ctx, 10), sbits(1 + 2 ** -23));
});

test("overflow rounds to infinity or the largest finite value by mode", () => {
  expectD(d2(ADD, RNE), [Number.MAX_VALUE, Number.MAX_VALUE], Infinity, OF | NX);
  expectD(d2(ADD, RTZ), [Number.MAX_VALUE, Number.MAX_VALUE], MAX_D, OF | NX);
  expectD(d2(ADD, RDN), [Number.MAX_VALUE, Number.MAX_VALUE], MAX_D, OF | NX);
  expectD(d2(ADD, RUP), [Number.MAX_VALUE, Number.MAX_VALUE], Infinity, OF | NX);
  expectD(d2(ADD, RMM), [Number.MAX_VALUE, Number.MAX_VALUE], Infinity, OF | NX);
  expectD(d2(MUL, RDN), [-Number.MAX_VALUE, 2], -Infinity, OF | NX);
  expectD(d2(MUL, RUP), [-Number.MAX_VALUE, 2], -Number.MAX_VALUE, OF | NX);
  // Just above MAX: RNE keeps MAX (inexact, no overflow), RUP overflows.
  expectD(d2(ADD, RNE), [Number.MAX_VALUE, 2 ** 960], MAX_D, NX);
  expectD(d2(ADD, RUP), [Number.MAX_VALUE, 2 ** 960], Infinity, OF | NX);
  expectS(s2(MUL, RNE), [MAX_S, 2], INF_S, OF | NX);
  expectS(s2(MUL, RTZ), [MAX_S, 2], MAX_S, OF | NX);
  expectS(s2(ADD, RNE), [Infinity, 1], INF_S, 0); // infinity is exact
});

test("underflow: tininess is detected after rounding", () => {
  const below1 = 0x3fefffffffffffffn; // 1 - 2^-53
  // (1 - 2^-53) * 2^-1022 = 2^-1022 - 2^-1075: tiny even after rounding to 53 bits; the subnormal
  // rounding is a tie that RNE sends up to the minimum normal.
  expectD(d2(MUL, RNE), [below1, MIN_NORMAL_D], MIN_NORMAL_D, UF | NX);
  expectD(d2(MUL, RTZ), [below1, MIN_NORMAL_D], 0x000fffffffffffffn, UF | NX);
  expectD(d2(MUL, RUP), [below1, MIN_NORMAL_D], MIN_NORMAL_D, UF | NX);
  // Slightly above 2^-1022: not tiny.
  expectD(d2(MUL, RNE), [below1, MIN_NORMAL_D + 1n], MIN_NORMAL_D, NX);
  expectD(d2(MUL, RUP), [below1, MIN_NORMAL_D + 1n], MIN_NORMAL_D + 1n, NX);
  // fcvt.s.d of 2^-126 - 2^-152: rounds to 2^-126 even at unbounded exponent, so not tiny in RNE...
  const cvt = opFp(CVT_FF, FMT_S, 10, 1, 1, RNE);
  const x = 2 ** -126 - 2 ** -152;
  let r = runD(cvt, [x]);
  assert.equal(getSFrom(r.bits), sbits(2 ** -126));
  assert.equal(r.flags, NX);
  // ...but tiny under RTZ (unbounded rounding gives 2^-126 - 2^-150).
  r = runD(opFp(CVT_FF, FMT_S, 10, 1, 1, RTZ), [x]);
  assert.equal(getSFrom(r.bits), 0x007fffff);
  assert.equal(r.flags, UF | NX);
  // Exact subnormal results raise nothing.
  expectD(d2(MUL, RNE), [MIN_NORMAL_D, 0.5], 0x0008000000000000n, 0);
  // The smallest subnormal halved: a tie between 0 and 2^-149.
  expectS(s2(MUL, RNE), [1, 0.5], 0.5, 0);
  expectS(s2(MUL, RNE), [0x00000001n, 0.5], 0, UF | NX);
  expectS(s2(MUL, RMM), [0x00000001n, 0.5], 0x00000001n, UF | NX);
  expectS(s2(MUL, RUP), [0x00000001n, 0.5], 0x00000001n, UF | NX);
  expectS(s2(MUL, RDN), [0x80000001n, 0.5], 0x80000001n, UF | NX);
  expectS(s2(MUL, RNE), [0x80000001n, 0.5], 0x80000000n, UF | NX);
  expectD(d2(DIV, RNE), [1n, 2], 0n, UF | NX);
  expectD(d2(DIV, RUP), [1n, 2], 1n, UF | NX);
});

function getSFrom(bits: bigint): number {
  return Number(bits & 0xffffffffn);
}

test("fdiv and fsqrt: exact flags, division by zero, invalid cases, directed rounding", () => {
  expectD(d2(DIV, RNE), [1, 0], Infinity, DZ);
  expectD(d2(DIV, RNE), [-1, 0], -Infinity, DZ);
  expectD(d2(DIV, RNE), [1, -0], -Infinity, DZ);
  expectD(d2(DIV, RNE), [0, 0], CNAN_D, NV);
  expectD(d2(DIV, RNE), [Infinity, -Infinity], CNAN_D, NV);
  expectD(d2(DIV, RNE), [Infinity, 0], Infinity, 0);
  expectD(d2(DIV, RNE), [1, Infinity], 0, 0);
  expectD(d2(DIV, RNE), [6, 3], 2, 0);
  expectD(d2(DIV, RNE), [1, 3], 0x3fd5555555555555n, NX);
  expectD(d2(DIV, RUP), [1, 3], 0x3fd5555555555556n, NX);
  expectD(d2(DIV, RDN), [-1, 3], 0xbfd5555555555556n, NX);
  expectD(d2(DIV, RTZ), [-1, 3], 0xbfd5555555555555n, NX);
  expectD(d2(DIV, RUP), [2, 3], 0x3fe5555555555556n, NX);
  expectD(d2(DIV, RNE), [2, 3], 0x3fe5555555555555n, NX);
  expectS(s2(DIV, RNE), [1, 3], 0x3eaaaaabn, NX);
  expectS(s2(DIV, RTZ), [1, 3], 0x3eaaaaaan, NX);
  expectS(s2(DIV, RNE), [0, 0], CNAN_S, NV);
  expectS(s2(DIV, RNE), [-2, 0], 0xff800000n, DZ);
  const sq = (rm: number) => opFp(SQRT, FMT_D, 10, 1, 0, rm);
  expectD(sq(RNE), [2], 0x3ff6a09e667f3bcdn, NX);
  expectD(sq(RUP), [2], 0x3ff6a09e667f3bcdn, NX);
  expectD(sq(RDN), [2], 0x3ff6a09e667f3bccn, NX);
  expectD(sq(RTZ), [2], 0x3ff6a09e667f3bccn, NX);
  expectD(sq(RNE), [4], 2, 0);
  expectD(sq(RNE), [-0], -0, 0);
  expectD(sq(RNE), [-1], CNAN_D, NV);
  expectD(sq(RNE), [-Infinity], CNAN_D, NV);
  expectD(sq(RNE), [Infinity], Infinity, 0);
  expectD(sq(RNE), [1n], 0x1e60000000000000n, 0); // sqrt(2^-1074) = 2^-537
  expectS(opFp(SQRT, FMT_S, 10, 1, 0, RNE), [2], 0x3fb504f3n, NX);
  expectS(opFp(SQRT, FMT_S, 10, 1, 0, RUP), [2], 0x3fb504f4n, NX);
  assert.equal(runD(opFp(SQRT, FMT_D, 10, 1, 3, RNE), [4]).status, FpStatus.Illegal);
});

test("NaNs: canonical results, signalling NaNs raise NV, quiet NaNs do not", () => {
  expectD(d2(ADD, RNE), [QNAN_D_PAYLOAD, 1], CNAN_D, 0);
  expectD(d2(ADD, RNE), [SNAN_D, 1], CNAN_D, NV);
  expectD(d2(MUL, RNE), [1, SNAN_D], CNAN_D, NV);
  expectD(d2(ADD, RNE), [Infinity, -Infinity], CNAN_D, NV);
  expectD(d2(MUL, RNE), [Infinity, 0], CNAN_D, NV);
  expectS(s2(ADD, RNE), [SNAN_S, 1], CNAN_S, NV);
  expectS(s2(ADD, RNE), [0xffc01234n, 1], CNAN_S, 0);
  expectS(s2(SUB, RNE), [Infinity, Infinity], CNAN_S, NV);
  const cvtDS = opFp(CVT_FF, FMT_D, 10, 1, 0, RNE);
  const r = runS(cvtDS, [SNAN_S]);
  assert.equal(r.flags, NV);
  const ctx = makeCtx();
  setS(ctx, 1, Number(SNAN_S));
  executeFp(cvtDS, ctx);
  assert.equal(getD(ctx, 10), CNAN_D);
});

test("NaN-boxing: improperly boxed singles read as the canonical NaN; results are boxed", () => {
  const ctx = makeCtx();
  ctx.f[2] = sbits(1.5); // f1 low word 1.5, high word 0: not boxed
  setS(ctx, 2, sbits(1));
  executeFp(s2(ADD, RNE), ctx);
  assert.equal(getS(ctx, 10), Number(CNAN_S));
  assert.equal(ctx.f[21], -1);
  assert.equal(ctx.fflags, 0);
  // fsgnj.s on an unboxed input works on the canonical NaN.
  setS(ctx, 2, sbits(-1));
  executeFp(opFp(SGNJ, FMT_S, 11, 1, 2, 0), ctx);
  assert.equal(ctx.f[22] >>> 0, 0xffc00000);
  assert.equal(ctx.f[23], -1);
  // fclass.s of an unboxed value is quiet NaN.
  executeFp(opFp(MV_X, FMT_S, 5, 1, 0, 1), ctx);
  assert.equal(getX(ctx, 5), 1n << 9n);
  // fmv.x.w is a transfer: it moves the raw low word, sign-extended, ignoring the box.
  ctx.f[2] = sbits(-1.5);
  executeFp(opFp(MV_X, FMT_S, 6, 1, 0, 0), ctx);
  assert.equal(getX(ctx, 6), signedBits(BigInt(sbits(-1.5)), 32));
  // fmv.w.x boxes the low 32 bits of x.
  setX(ctx, 7, 0x123456783f800000n);
  executeFp(opFp(MV_F, FMT_S, 12, 7, 0, 0), ctx);
  assert.equal(getS(ctx, 12), 0x3f800000);
  assert.equal(ctx.f[25], -1);
  // fmv.d.x / fmv.x.d move all 64 bits.
  setX(ctx, 8, -0x0123456789abcdefn);
  executeFp(opFp(MV_F, FMT_D, 13, 8, 0, 0), ctx);
  assert.equal(getD(ctx, 13), u64(-0x0123456789abcdefn));
  executeFp(opFp(MV_X, FMT_D, 9, 13, 0, 0), ctx);
  assert.equal(getX(ctx, 9), -0x0123456789abcdefn);
  // fcvt.s.d results are boxed too.
  setD(ctx, 3, dbits(0.1));
  executeFp(opFp(CVT_FF, FMT_S, 14, 3, 1, RNE), ctx);
  assert.equal(getS(ctx, 14), sbits(Math.fround(0.1)));
  assert.equal(ctx.f[29], -1);
});

test("fsgnj, fsgnjn, fsgnjx move sign bits only, NaN payloads included", () => {
  expectD(opFp(SGNJ, FMT_D, 10, 1, 2, 0), [3, -1], -3, 0);
  expectD(opFp(SGNJ, FMT_D, 10, 1, 2, 1), [3, -1], 3, 0);
  expectD(opFp(SGNJ, FMT_D, 10, 1, 2, 2), [-3, -1], 3, 0);
  expectD(opFp(SGNJ, FMT_D, 10, 1, 1, 1), [SNAN_D], SNAN_D | (1n << 63n), 0);
  expectS(opFp(SGNJ, FMT_S, 10, 1, 2, 0), [2, -0], -2, 0);
  expectS(opFp(SGNJ, FMT_S, 10, 1, 2, 2), [-2, -1], 2, 0);
  expectS(opFp(SGNJ, FMT_S, 10, 1, 1, 1), [SNAN_S], SNAN_S | 0x80000000n, 0);
  assert.equal(runD(opFp(SGNJ, FMT_D, 10, 1, 2, 3), [1, 1]).status, FpStatus.Illegal);
});

test("fmin/fmax: -0 < +0, one NaN yields the other operand, sNaN raises NV", () => {
  const min = (fmt: number) => opFp(MINMAX, fmt, 10, 1, 2, 0);
  const max = (fmt: number) => opFp(MINMAX, fmt, 10, 1, 2, 1);
  expectD(min(FMT_D), [0, -0], -0, 0);
  expectD(min(FMT_D), [-0, 0], -0, 0);
  expectD(max(FMT_D), [-0, 0], 0, 0);
  expectD(max(FMT_D), [0, -0], 0, 0);
  expectD(min(FMT_D), [QNAN_D_PAYLOAD, 2], 2, 0);
  expectD(max(FMT_D), [2, QNAN_D_PAYLOAD], 2, 0);
  expectD(min(FMT_D), [SNAN_D, 2], 2, NV);
  expectD(max(FMT_D), [QNAN_D_PAYLOAD, SNAN_D], CNAN_D, NV);
  expectD(min(FMT_D), [QNAN_D_PAYLOAD, QNAN_D_PAYLOAD], CNAN_D, 0);
  expectD(min(FMT_D), [-Infinity, 1], -Infinity, 0);
  expectD(max(FMT_D), [3, 5], 5, 0);
  expectS(min(FMT_S), [0, -0], -0, 0);
  expectS(max(FMT_S), [-0, 0], 0, 0);
  expectS(max(FMT_S), [SNAN_S, -7], -7, NV);
  expectS(min(FMT_S), [QNAN_S, QNAN_S], CNAN_S, 0);
  expectS(min(FMT_S), [0x00000001n, 0x80000001n], 0x80000001n, 0);
});

test("feq is quiet, flt/fle signal on any NaN; results go to x registers", () => {
  const cmp = (fmt: number, f3: number, a: Bits, b: Bits) => {
    const ctx = makeCtx();
    if (fmt === FMT_D) {
      setD(ctx, 1, asD(a));
      setD(ctx, 2, asD(b));
    } else {
      setS(ctx, 1, asS(a));
      setS(ctx, 2, asS(b));
    }
    setX(ctx, 5, -1n);
    executeFp(opFp(CMP, fmt, 5, 1, 2, f3), ctx);
    return [getX(ctx, 5), ctx.fflags];
  };
  const FEQ = 2, FLT = 1, FLE = 0;
  assert.deepEqual(cmp(FMT_D, FEQ, 0, -0), [1n, 0]);
  assert.deepEqual(cmp(FMT_D, FLT, -0, 0), [0n, 0]);
  assert.deepEqual(cmp(FMT_D, FLE, -0, 0), [1n, 0]);
  assert.deepEqual(cmp(FMT_D, FLT, 1, 2), [1n, 0]);
  assert.deepEqual(cmp(FMT_D, FEQ, QNAN_D_PAYLOAD, 1), [0n, 0]);
  assert.deepEqual(cmp(FMT_D, FEQ, SNAN_D, 1), [0n, NV]);
  assert.deepEqual(cmp(FMT_D, FLT, QNAN_D_PAYLOAD, 1), [0n, NV]);
  assert.deepEqual(cmp(FMT_D, FLE, 1, QNAN_D_PAYLOAD), [0n, NV]);
  assert.deepEqual(cmp(FMT_S, FEQ, QNAN_S, QNAN_S), [0n, 0]);
  assert.deepEqual(cmp(FMT_S, FLE, 2, 2), [1n, 0]);
  assert.deepEqual(cmp(FMT_S, FLT, SNAN_S, 2), [0n, NV]);
  // Never writes x0.
  const ctx = makeCtx();
  setD(ctx, 1, dbits(1));
  executeFp(opFp(CMP, FMT_D, 0, 1, 1, FEQ), ctx);
  assert.equal(getX(ctx, 0), 0n);
});

test("fclass reports all ten classes for S and D", () => {
  const clsD = (v: Bits) => {
    const ctx = makeCtx();
    setD(ctx, 1, asD(v));
    executeFp(opFp(MV_X, FMT_D, 5, 1, 0, 1), ctx);
    return Number(getX(ctx, 5));
  };
  const clsS = (v: bigint) => {
    const ctx = makeCtx();
    setS(ctx, 1, Number(v));
    executeFp(opFp(MV_X, FMT_S, 5, 1, 0, 1), ctx);
    return Number(getX(ctx, 5));
  };
  assert.deepEqual(
    [-Infinity, -1, 0x800fffffffffffffn, -0, 0, 1n, 1, Infinity, SNAN_D, CNAN_D].map(clsD),
    [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
  );
  assert.deepEqual(
    [0xff800000n, 0xbf800000n, 0x80000001n, 0x80000000n, 0n, 1n, 0x3f800000n, INF_S, SNAN_S, QNAN_S].map(clsS),
    [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
  );
});

/** Converts a double (f1) to an integer kind with fcvt; returns [x10 as int64, fflags]. */
function toInt(kind: number, v: Bits, rm: number, fmt = FMT_D): [bigint, number] {
  const ctx = makeCtx();
  if (fmt === FMT_D) setD(ctx, 1, asD(v));
  else setS(ctx, 1, asS(v));
  executeFp(opFp(CVT_IF, fmt, 10, 1, kind, rm), ctx);
  return [getX(ctx, 10), ctx.fflags];
}

test("fcvt to integers: rounding, saturation and NV/NX edges", () => {
  const W = 0, WU = 1, L = 2, LU = 3;
  const I64_MAX = (1n << 63n) - 1n, I64_MIN = -(1n << 63n);
  assert.deepEqual(toInt(L, 2 ** 63, RNE), [I64_MAX, NV]);
  assert.deepEqual(toInt(L, -(2 ** 63), RNE), [I64_MIN, 0]);
  assert.deepEqual(toInt(L, 0xc3e0000000000001n, RNE), [I64_MIN, NV]); // -2^63 - 2048
  assert.deepEqual(toInt(L, 2 ** 63 - 1024, RNE), [(1n << 63n) - 1024n, 0]);
  assert.deepEqual(toInt(L, CNAN_D, RNE), [I64_MAX, NV]);
  assert.deepEqual(toInt(L, 0xfff8000000000000n, RNE), [I64_MAX, NV]); // negative NaN still saturates up
  assert.deepEqual(toInt(L, -Infinity, RNE), [I64_MIN, NV]);
  assert.deepEqual(toInt(LU, Infinity, RNE), [-1n, NV]);
  assert.deepEqual(toInt(LU, -0.5, RNE), [0n, NX]);
  assert.deepEqual(toInt(LU, -0.5, RTZ), [0n, NX]);
  assert.deepEqual(toInt(LU, -0.5, RDN), [0n, NV]);
  assert.deepEqual(toInt(LU, -0.5, RMM), [0n, NV]);
  assert.deepEqual(toInt(LU, -1, RTZ), [0n, NV]);
  assert.deepEqual(toInt(LU, 2 ** 64, RNE), [-1n, NV]);
  assert.deepEqual(toInt(LU, 2 ** 64 - 2048, RNE), [signedBits((1n << 64n) - 2048n, 64), 0]);
  assert.deepEqual(toInt(WU, 4294967295.5, RTZ), [-1n, NX]); // 0xffffffff sign-extended
  assert.deepEqual(toInt(WU, 4294967295.5, RNE), [-1n, NV]);
  assert.deepEqual(toInt(WU, 2147483648, RNE), [-2147483648n, 0]);
  assert.deepEqual(toInt(W, -2147483648.5, RTZ), [-2147483648n, NX]);
  assert.deepEqual(toInt(W, -2147483648.5, RNE), [-2147483648n, NX]);
  assert.deepEqual(toInt(W, -2147483648.5, RDN), [-2147483648n, NV]);
  assert.deepEqual(toInt(W, 2147483647.5, RNE), [2147483647n, NV]);
  assert.deepEqual(toInt(W, 2.5, RNE), [2n, NX]);
  assert.deepEqual(toInt(W, 2.5, RMM), [3n, NX]);
  assert.deepEqual(toInt(W, -2.5, RMM), [-3n, NX]);
  assert.deepEqual(toInt(W, -2.5, RUP), [-2n, NX]);
  assert.deepEqual(toInt(W, -2.5, RDN), [-3n, NX]);
  assert.deepEqual(toInt(W, 3.5, RNE), [4n, NX]);
  assert.deepEqual(toInt(W, CNAN_S, RNE, FMT_S), [2147483647n, NV]);
  assert.deepEqual(toInt(WU, CNAN_S, RNE, FMT_S), [-1n, NV]);
  assert.deepEqual(toInt(W, SNAN_S, RNE, FMT_S), [2147483647n, NV]);
  assert.deepEqual(toInt(L, 0xdf000000n, RNE, FMT_S), [I64_MIN, 0]); // -2^63 as a single
  assert.deepEqual(toInt(L, 0x5f000000n, RNE, FMT_S), [I64_MAX, NV]); // 2^63 as a single
  assert.deepEqual(toInt(W, -1e-30, RUP), [0n, NX]);
  // x0 is never written.
  const ctx = makeCtx();
  setD(ctx, 1, dbits(5));
  executeFp(opFp(CVT_IF, FMT_D, 0, 1, L, RNE), ctx);
  assert.equal(getX(ctx, 0), 0n);
});

test("fcvt from integers rounds by mode", () => {
  const fromInt = (fmt: number, kind: number, v: bigint, rm: number): [bigint, number] => {
    const ctx = makeCtx();
    setX(ctx, 5, v);
    executeFp(opFp(CVT_FI, fmt, 10, 5, kind, rm), ctx);
    return [fmt === FMT_D ? getD(ctx, 10) : BigInt(getS(ctx, 10)), ctx.fflags];
  };
  const W = 0, WU = 1, L = 2, LU = 3;
  assert.deepEqual(fromInt(FMT_S, W, 16777217n, RNE), [BigInt(sbits(16777216)), NX]);
  assert.deepEqual(fromInt(FMT_S, W, 16777217n, RUP), [BigInt(sbits(16777218)), NX]);
  assert.deepEqual(fromInt(FMT_S, W, -16777217n, RUP), [BigInt(sbits(-16777216)), NX]);
  assert.deepEqual(fromInt(FMT_S, WU, 0xffffffffn, RNE), [BigInt(sbits(2 ** 32)), NX]);
  assert.deepEqual(fromInt(FMT_S, WU, -1n, RTZ), [BigInt(sbits(2 ** 32 - 256)), NX]);
  assert.deepEqual(fromInt(FMT_D, W, -7n, RNE), [dbits(-7), 0]);
  assert.deepEqual(fromInt(FMT_D, WU, -1n, RNE), [dbits(2 ** 32 - 1), 0]);
  assert.deepEqual(fromInt(FMT_D, L, (1n << 63n) - 1n, RNE), [dbits(2 ** 63), NX]);
  assert.deepEqual(fromInt(FMT_D, L, (1n << 63n) - 1n, RTZ), [dbits(2 ** 63 - 1024), NX]);
  assert.deepEqual(fromInt(FMT_D, L, -(1n << 63n), RNE), [dbits(-(2 ** 63)), 0]);
  assert.deepEqual(fromInt(FMT_D, LU, -1n, RNE), [dbits(2 ** 64), NX]);
  assert.deepEqual(fromInt(FMT_D, LU, -1n, RDN), [dbits(2 ** 64 - 2048), NX]);
  assert.deepEqual(fromInt(FMT_D, L, (1n << 53n) + 1n, RMM), [dbits(2 ** 53 + 2), NX]);
  assert.deepEqual(fromInt(FMT_D, L, (1n << 53n) + 1n, RNE), [dbits(2 ** 53), NX]);
  assert.deepEqual(fromInt(FMT_D, L, 0n, RDN), [0n, 0]);
});

test("fcvt.s.d overflows by mode; fcvt.d.s is exact", () => {
  const sd = (rm: number) => opFp(CVT_FF, FMT_S, 10, 1, 1, rm);
  let r = runD(sd(RNE), [1e300]);
  assert.deepEqual([getSFrom(r.bits), r.flags], [Number(INF_S), OF | NX]);
  r = runD(sd(RTZ), [-1e300]);
  assert.deepEqual([getSFrom(r.bits), r.flags], [Number(MAX_S | 0x80000000n), OF | NX]);
  r = runD(sd(RNE), [-Infinity]);
  assert.deepEqual([getSFrom(r.bits), r.flags], [0xff800000, 0]);
  r = runD(sd(RNE), [1e-300]);
  assert.deepEqual([getSFrom(r.bits), r.flags], [0, UF | NX]);
  r = runD(sd(RUP), [1e-300]);
  assert.deepEqual([getSFrom(r.bits), r.flags], [1, UF | NX]);
  const ctx = makeCtx();
  setS(ctx, 1, 0x00000001);
  executeFp(opFp(CVT_FF, FMT_D, 10, 1, 0, RNE), ctx);
  assert.equal(getD(ctx, 10), dbits(2 ** -149));
  assert.equal(ctx.fflags, 0);
});

test("fused multiply-add rounds once, where multiply-then-add would not", () => {
  const fd = (op: number, rm: number) => fused(op, FMT_D, 10, 1, 2, 3, rm);
  const fs = (op: number, rm: number) => fused(op, FMT_S, 10, 1, 2, 3, rm);
  // (1 + 2^-52)(1 - 2^-52) - 1 = -2^-104 exactly; unfused gives 0.
  expectD(fd(FMADD, RNE), [1 + 2 ** -52, 1 - 2 ** -52, -1], -(2 ** -104), 0);
  expectD(fd(FMSUB, RNE), [1 + 2 ** -52, 1 - 2 ** -52, 1], -(2 ** -104), 0);
  expectD(fd(FNMSUB, RNE), [1 + 2 ** -52, 1 - 2 ** -52, 1], 2 ** -104, 0);
  expectD(fd(FNMADD, RNE), [1 + 2 ** -52, 1 - 2 ** -52, -1], 2 ** -104, 0);
  // 0.1 * 10 - 1: the exact residue of the rounded 0.1.
  expectD(fd(FMADD, RNE), [0.1, 10, -1], 2 ** -54, 0);
  // A product whose low bits decide a tie: (1 + 2^-52)(1 + 2^-53 ...) style via modes.
  expectD(fd(FMADD, RNE), [1 + 2 ** -52, 1 + 2 ** -52, 0], 1 + 2 ** -51, NX);
  expectD(fd(FMADD, RUP), [1 + 2 ** -52, 1 + 2 ** -52, 0], 1 + 2 ** -51 + 2 ** -52, NX);
  expectD(fd(FMADD, RDN), [1 + 2 ** -52, 1 + 2 ** -52, -(2 ** -200)], 1 + 2 ** -51, NX);
  expectD(fd(FMADD, RUP), [1 + 2 ** -52, 1 + 2 ** -52, -(2 ** -104)], 1 + 2 ** -51, 0);
  expectS(fs(FMADD, RNE), [1 + 2 ** -23, 1 - 2 ** -23, -1], -(2 ** -46), 0);
  // Single: (1 + 2^-22 + 2^-46) - 1.5 * 2^-23 = 1 + 2^-24 + 2^-46, just above a tie; unfused ties to 1.
  expectS(fs(FMADD, RNE), [1 + 2 ** -23, 1 + 2 ** -23, -(2 ** -23 + 2 ** -24)], 1 + 2 ** -23, NX);
  // Zeros: exact cancellation is +0 (or -0 rounding down); 0*x + -0 keeps IEEE's sum sign rule.
  expectD(fd(FMADD, RNE), [1, 1, -1], 0, 0);
  expectD(fd(FMADD, RDN), [1, 1, -1], -0, 0);
  expectD(fd(FMADD, RNE), [0, 5, -0], 0, 0);
  expectD(fd(FMADD, RNE), [-0, 5, -0], -0, 0);
  expectD(fd(FMADD, RDN), [0, 5, -0], -0, 0);
  expectD(fd(FNMADD, RNE), [0, 5, 0], -0, 0);
  // Specials: inf*0 is invalid even with a quiet-NaN addend; inf - inf is invalid.
  expectD(fd(FMADD, RNE), [Infinity, 0, QNAN_D_PAYLOAD], CNAN_D, NV);
  expectD(fd(FMADD, RNE), [1, 2, QNAN_D_PAYLOAD], CNAN_D, 0);
  expectD(fd(FMADD, RNE), [1, 2, SNAN_D], CNAN_D, NV);
  expectD(fd(FMADD, RNE), [Infinity, 2, -Infinity], CNAN_D, NV);
  expectD(fd(FMSUB, RNE), [Infinity, 2, Infinity], CNAN_D, NV);
  expectD(fd(FMADD, RNE), [Infinity, 2, Infinity], Infinity, 0);
  expectD(fd(FMADD, RNE), [2, 3, -Infinity], -Infinity, 0);
  expectS(fs(FMADD, RNE), [0, Infinity, QNAN_S], CNAN_S, NV);
  // Overflow and underflow through the fused path.
  expectD(fd(FMADD, RNE), [Number.MAX_VALUE, 2, -Number.MAX_VALUE], MAX_D, 0);
  expectD(fd(FMADD, RTZ), [Number.MAX_VALUE, 4, 0.5], MAX_D, OF | NX);
  expectD(fd(FMADD, RNE), [2 ** -537, 2 ** -537, 2n], 3n, 0);
  expectD(fd(FMADD, RNE), [2 ** -600, 2 ** -500, 1n], 1n, UF | NX);
  expectD(fd(FMADD, RUP), [2 ** -600, 2 ** -500, 1n], 2n, UF | NX);
  expectD(fd(FMADD, RDN), [-(2 ** -600), 2 ** -500, 1n], 0n, UF | NX);
});

test("rounding mode fields: reserved modes and DYN with a bad frm are illegal", () => {
  for (const rm of [5, 6]) {
    assert.equal(runD(d2(ADD, rm), [1, 2]).status, FpStatus.Illegal);
    assert.equal(runD(fused(FMADD, FMT_D, 10, 1, 2, 3, rm), [1, 2, 3]).status, FpStatus.Illegal);
    assert.equal(runD(opFp(CVT_IF, FMT_D, 10, 1, 0, rm), [1]).status, FpStatus.Illegal);
  }
  assert.equal(runD(d2(ADD, 7), [1, 2], 5).status, FpStatus.Illegal);
  assert.equal(runD(d2(ADD, 7), [1, 2], 7).status, FpStatus.Illegal);
  const dyn = runD(d2(ADD, 7), [1, 2 ** -60], RUP);
  assert.equal(dyn.status, FpStatus.Ok);
  assert.equal(dyn.bits, dbits(1 + 2 ** -52));
  // An illegal instruction changes nothing.
  const ctx = makeCtx();
  ctx.fflags = 0x3;
  setD(ctx, 1, SNAN_D);
  assert.equal(executeFp(d2(ADD, 5), ctx), FpStatus.Illegal);
  assert.equal(ctx.fflags, 0x3);
  assert.equal(getD(ctx, 10), 0n);
});

test("unknown encodings are illegal", () => {
  const ill = (insn: number) => assert.equal(executeFp(insn, makeCtx()), FpStatus.Illegal, insn.toString(16));
  ill(opFp(ADD, 2, 10, 1, 2, 0)); // half precision
  ill(opFp(ADD, 3, 10, 1, 2, 0)); // quad precision
  ill(fused(FMADD, 2, 10, 1, 2, 3, 0));
  ill(opFp(0x1f, FMT_D, 10, 1, 0, 0));
  ill(opFp(CVT_FF, FMT_S, 10, 1, 0, 0)); // fcvt.s.s
  ill(opFp(CVT_FF, FMT_D, 10, 1, 1, 0)); // fcvt.d.d
  ill(opFp(CVT_IF, FMT_D, 10, 1, 4, 0));
  ill(opFp(CVT_FI, FMT_D, 10, 1, 5, 0));
  ill(opFp(MV_X, FMT_D, 10, 1, 0, 2));
  ill(opFp(MV_X, FMT_D, 10, 1, 1, 0));
  ill(opFp(MV_F, FMT_D, 10, 1, 0, 1));
  ill(opFp(MINMAX, FMT_D, 10, 1, 2, 2));
  ill(opFp(CMP, FMT_D, 10, 1, 2, 3));
  ill(0x00000007); // not an FP opcode
});

test("fflags accumulate across instructions", () => {
  const ctx = makeCtx();
  setD(ctx, 1, dbits(1));
  setD(ctx, 2, dbits(0));
  executeFp(d2(DIV, RNE), ctx);
  setD(ctx, 2, dbits(3));
  executeFp(d2(DIV, RNE), ctx);
  assert.equal(ctx.fflags, DZ | NX);
});
