// Randomized cross-check of executeFp against an exact reference written here with BigInt rationals.
import { test } from "node:test";
import assert from "node:assert/strict";
import { executeFp } from "./execute.js";
import {
  FMADD, FMSUB, FNMADD, FNMSUB, FMT_D, FMT_S, fused, getD, getS, getX, makeCtx, opFp, setD, setS, setX, signedBits,
} from "./testing.js";

// ---- exact reference ----

interface Fmt { P: number; emin: number; emax: number; fracBits: number; expBits: number; bias: number }
const SF: Fmt = { P: 24, emin: -126, emax: 127, fracBits: 23, expBits: 8, bias: 127 };
const DF: Fmt = { P: 53, emin: -1022, emax: 1023, fracBits: 52, expBits: 11, bias: 1023 };
const NV = 0x10, DZ = 0x08, OF = 0x04, UF = 0x02, NX = 0x01;

/** An exact value num/den (den > 0); sign kept separately so that -0 survives. */
interface Q { neg: boolean; num: bigint; den: bigint }
interface R { bits: bigint; flags: number }

const blen = (m: bigint): number => (m === 0n ? 0 : m.toString(2).length);
const pow2 = (e: number): bigint => 1n << BigInt(e);

function decodeQ(bits: bigint, f: Fmt): Q {
  const neg = (bits >> BigInt(f.fracBits + f.expBits)) === 1n;
  const e = Number((bits >> BigInt(f.fracBits)) & (pow2(f.expBits) - 1n));
  let m = bits & (pow2(f.fracBits) - 1n);
  let exp = 1 - f.bias - f.fracBits;
  if (e !== 0) {
    m |= pow2(f.fracBits);
    exp = e - f.bias - f.fracBits;
  }
  return exp >= 0 ? { neg, num: m << BigInt(exp), den: 1n } : { neg, num: m, den: pow2(-exp) };
}

function signedNum(q: Q): bigint {
  return q.neg ? -q.num : q.num;
}

function nanBits(f: Fmt): bigint {
  return f === SF ? 0x7fc00000n : 0x7ff8000000000000n;
}

function encode(neg: boolean, biased: bigint, frac: bigint, f: Fmt): bigint {
  return ((neg ? 1n : 0n) << BigInt(f.fracBits + f.expBits)) | (biased << BigInt(f.fracBits)) | frac;
}

/** floor(num / (den * 2^lsb)) rounded under rm, plus whether it was inexact. */
function roundAt(num: bigint, den: bigint, lsb: number, neg: boolean, rm: number): [bigint, boolean] {
  const N = lsb < 0 ? num << BigInt(-lsb) : num;
  const D = lsb > 0 ? den << BigInt(lsb) : den;
  const q = N / D;
  const rem2 = 2n * (N - q * D);
  if (rem2 === 0n) return [q, false];
  let up: boolean;
  if (rm === 0) up = rem2 > D || (rem2 === D && (q & 1n) === 1n);
  else if (rm === 1) up = false;
  else if (rm === 2) up = neg;
  else if (rm === 3) up = !neg;
  else up = rem2 >= D;
  return [up ? q + 1n : q, true];
}

/** Rounds a non-zero exact value into format f under rm with IEEE/RISC-V flags. */
function roundQ(x: Q, f: Fmt, rm: number): R {
  const { neg, num, den } = x;
  let E = blen(num) - blen(den);
  if (E >= 0 ? num < den << BigInt(E) : num << BigInt(-E) < den) E--; // now 2^E <= x < 2^(E+1)
  const [q1] = roundAt(num, den, E - f.P + 1, neg, rm);
  const tiny = E < f.emin && !(E === f.emin - 1 && q1 === pow2(f.P));
  let lsb = Math.max(E - f.P + 1, f.emin - f.P + 1);
  let [q, inexact] = roundAt(num, den, lsb, neg, rm);
  if (q === pow2(f.P)) {
    q >>= 1n;
    lsb++;
  }
  let flags = inexact ? NX : 0;
  if (tiny && inexact) flags |= UF;
  if (q !== 0n && lsb + blen(q) - 1 > f.emax) {
    const inf = rm === 0 || rm === 4 || (rm === 2 && neg) || (rm === 3 && !neg);
    const maxExp = pow2(f.expBits) - 1n;
    return {
      bits: inf ? encode(neg, maxExp, 0n, f) : encode(neg, maxExp - 1n, pow2(f.fracBits) - 1n, f),
      flags: OF | NX,
    };
  }
  if (q < pow2(f.P - 1)) return { bits: encode(neg, 0n, q, f), flags };
  return { bits: encode(neg, BigInt(lsb + f.P - 1 + f.bias), q - pow2(f.P - 1), f), flags };
}

function zero(neg: boolean, f: Fmt): R {
  return { bits: encode(neg, 0n, 0n, f), flags: 0 };
}

/** Exact sum x + y rounded; an exact zero takes IEEE's sign rule. */
function refSum(x: Q, y: Q, f: Fmt, rm: number): R {
  const den = x.den > y.den ? x.den : y.den;
  const n = signedNum(x) * (den / x.den) + signedNum(y) * (den / y.den);
  if (n === 0n) {
    if (x.num === 0n && y.num === 0n && x.neg === y.neg) return zero(x.neg, f);
    return zero(rm === 2, f);
  }
  return roundQ({ neg: n < 0n, num: n < 0n ? -n : n, den }, f, rm);
}

function mulQ(x: Q, y: Q): Q {
  return { neg: x.neg !== y.neg, num: x.num * y.num, den: x.den * y.den };
}

function refMul(x: Q, y: Q, f: Fmt, rm: number): R {
  const p = mulQ(x, y);
  return p.num === 0n ? zero(p.neg, f) : roundQ(p, f, rm);
}

function refDiv(x: Q, y: Q, f: Fmt, rm: number): R {
  const neg = x.neg !== y.neg;
  if (y.num === 0n) {
    if (x.num === 0n) return { bits: nanBits(f), flags: NV };
    return { bits: encode(neg, pow2(f.expBits) - 1n, 0n, f), flags: DZ };
  }
  if (x.num === 0n) return zero(neg, f);
  return roundQ({ neg, num: x.num * y.den, den: x.den * y.num }, f, rm);
}

function isqrt(n: bigint): bigint {
  if (n < 2n) return n;
  let x = pow2((blen(n) >> 1) + 1);
  for (;;) {
    const y = (x + n / x) >> 1n;
    if (y >= x) return x;
    x = y;
  }
}

function refSqrt(x: Q, f: Fmt, rm: number): R {
  if (x.num === 0n) return zero(x.neg, f);
  if (x.neg) return { bits: nanBits(f), flags: NV };
  // sqrt(num/den) = sqrt(num * 2^(2j) / den) / 2^j with den a power of two dividing num * 2^(2j).
  const j = 200 + blen(x.den);
  const n = (x.num << BigInt(2 * j)) / x.den;
  const s = isqrt(n);
  const sticky = s * s === n ? 0n : 1n;
  return roundQ({ neg: false, num: 2n * s + sticky, den: pow2(j + 1) }, f, rm);
}

function refFma(a: Q, b: Q, c: Q, f: Fmt, rm: number): R {
  return refSum(mulQ(a, b), c, f, rm);
}

// ---- random operands (deterministic xorshift) ----

// FPU_FUZZ_SEED / FPU_FUZZ_N widen the sweep for a one-off deep run; the defaults keep CI quick.
let seed = Number(process.env.FPU_FUZZ_SEED ?? 0x9e3779b9) | 0 || 1;
function rnd32(): number {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return seed >>> 0;
}
const below = (n: number): number => rnd32() % n;
function randBig(bits: number): bigint {
  let r = 0n;
  for (let i = 0; i < bits; i += 32) r = (r << 32n) | BigInt(rnd32());
  return r & (pow2(bits) - 1n);
}

/** A finite value's bits, biased toward the edges: subnormals, near overflow, short or all-ones fractions. */
function randFinite(f: Fmt, nearExp?: number): bigint {
  const maxE = (1 << f.expBits) - 2;
  let e: number;
  const k = below(10);
  if (nearExp !== undefined && k < 5) e = Math.min(maxE, Math.max(0, nearExp + below(5) - 2));
  else if (k < 2) e = below(3) === 0 ? 0 : 1 + below(f.P + 2);
  else if (k < 3) e = maxE - below(4);
  else if (k < 7) e = f.bias - 30 + below(60);
  else e = below(maxE + 1);
  let frac: bigint;
  const m = below(10);
  if (m < 5) frac = randBig(f.fracBits);
  else if (m < 7) frac = randBig(f.fracBits) & randBig(f.fracBits) & randBig(f.fracBits) & randBig(f.fracBits);
  else if (m < 8) frac = pow2(f.fracBits) - 1n - (randBig(f.fracBits) & 7n);
  else if (m < 9) frac = randBig(f.fracBits) << BigInt(f.fracBits - 8) & (pow2(f.fracBits) - 1n);
  else frac = 0n;
  return encode(below(2) === 1, BigInt(e), frac, f);
}

function expOf(bits: bigint, f: Fmt): number {
  return Number((bits >> BigInt(f.fracBits)) & (pow2(f.expBits) - 1n));
}

// ---- the harness ----

function put(ctx: ReturnType<typeof makeCtx>, r: number, bits: bigint, f: Fmt): void {
  if (f === SF) setS(ctx, r, Number(bits));
  else setD(ctx, r, bits);
}

function got(ctx: ReturnType<typeof makeCtx>, r: number, f: Fmt): bigint {
  return f === SF ? BigInt(getS(ctx, r)) : getD(ctx, r);
}

function hex(b: bigint): string {
  return "0x" + b.toString(16);
}

function check(insn: number, ops: bigint[], f: Fmt, want: R, what: string): void {
  const ctx = makeCtx();
  ops.forEach((b, i) => put(ctx, i + 1, b, f));
  executeFp(insn, ctx);
  const res = got(ctx, 10, f);
  if (res !== want.bits || ctx.fflags !== want.flags) {
    assert.fail(
      `${what}(${ops.map(hex).join(", ")}) = ${hex(res)} flags ${ctx.fflags.toString(16)}, want ${hex(want.bits)} flags ${want.flags.toString(16)}`,
    );
  }
}

const N = Number(process.env.FPU_FUZZ_N ?? 2500);

for (const f of [SF, DF]) {
  const fmt = f === SF ? FMT_S : FMT_D;
  const name = f === SF ? "S" : "D";

  test(`fadd/fsub/fmul/fdiv.${name} match the exact reference in all rounding modes`, () => {
    for (let i = 0; i < N; i++) {
      const a = randFinite(f);
      const b = randFinite(f, expOf(a, f));
      const qa = decodeQ(a, f);
      const qb = decodeQ(b, f);
      for (let rm = 0; rm < 5; rm++) {
        check(opFp(0, fmt, 10, 1, 2, rm), [a, b], f, refSum(qa, qb, f, rm), `fadd.${name} rm${rm}`);
        check(opFp(1, fmt, 10, 1, 2, rm), [a, b], f, refSum(qa, { ...qb, neg: !qb.neg }, f, rm), `fsub.${name} rm${rm}`);
        check(opFp(2, fmt, 10, 1, 2, rm), [a, b], f, refMul(qa, qb, f, rm), `fmul.${name} rm${rm}`);
        check(opFp(3, fmt, 10, 1, 2, rm), [a, b], f, refDiv(qa, qb, f, rm), `fdiv.${name} rm${rm}`);
      }
    }
  });

  test(`fmul.${name} products near the underflow and overflow thresholds match the reference`, () => {
    for (let i = 0; i < N; i++) {
      const a = randFinite(f);
      // Pick b so that a*b lands near 2^emin or 2^emax.
      const target = below(2) === 0 ? f.emin + f.bias : f.emax + f.bias;
      const eb = Math.max(0, Math.min((1 << f.expBits) - 2, target - expOf(a, f) + f.bias + below(5) - 2));
      const b = encode(below(2) === 1, BigInt(eb), randBig(f.fracBits), f);
      const qa = decodeQ(a, f);
      const qb = decodeQ(b, f);
      for (let rm = 0; rm < 5; rm++) {
        check(opFp(2, fmt, 10, 1, 2, rm), [a, b], f, refMul(qa, qb, f, rm), `fmul.${name} rm${rm}`);
        check(opFp(3, fmt, 10, 1, 2, rm), [a, b], f, refDiv(qa, qb, f, rm), `fdiv.${name} rm${rm}`);
      }
    }
  });

  test(`fsqrt.${name} matches the exact reference in all rounding modes`, () => {
    for (let i = 0; i < N; i++) {
      const a = randFinite(f) & ~pow2(f.fracBits + f.expBits); // mostly positive
      const qa = decodeQ(a, f);
      for (let rm = 0; rm < 5; rm++) {
        check(opFp(0x0b, fmt, 10, 1, 0, rm), [a], f, refSqrt(qa, f, rm), `fsqrt.${name} rm${rm}`);
      }
    }
  });

  test(`fmadd/fmsub/fnmsub/fnmadd.${name} are fused and match the exact reference`, () => {
    for (let i = 0; i < N; i++) {
      const a = randFinite(f);
      const b = randFinite(f, f.bias + below(8) - 4);
      let c: bigint;
      const qa = decodeQ(a, f);
      const qb = decodeQ(b, f);
      if (below(3) === 0) {
        // Cancel the product's leading bits: c = -(a*b rounded), nudged in its last bits.
        const p = refMul(qa, qb, f, 0).bits;
        c = (p ^ pow2(f.fracBits + f.expBits)) + BigInt(below(5)) - 2n;
        if (expOf(c, f) === (1 << f.expBits) - 1) c = randFinite(f); // the product overflowed
      } else {
        c = randFinite(f, Math.max(0, expOf(a, f) + expOf(b, f) - f.bias));
      }
      const qc = decodeQ(c, f);
      const nqa = { ...qa, neg: !qa.neg };
      const nqc = { ...qc, neg: !qc.neg };
      for (let rm = 0; rm < 5; rm++) {
        check(fused(FMADD, fmt, 10, 1, 2, 3, rm), [a, b, c], f, refFma(qa, qb, qc, f, rm), `fmadd.${name} rm${rm}`);
        check(fused(FMSUB, fmt, 10, 1, 2, 3, rm), [a, b, c], f, refFma(qa, qb, nqc, f, rm), `fmsub.${name} rm${rm}`);
        check(fused(FNMSUB, fmt, 10, 1, 2, 3, rm), [a, b, c], f, refFma(nqa, qb, qc, f, rm), `fnmsub.${name} rm${rm}`);
        check(fused(FNMADD, fmt, 10, 1, 2, 3, rm), [a, b, c], f, refFma(nqa, qb, nqc, f, rm), `fnmadd.${name} rm${rm}`);
      }
    }
  });

  test(`fma.${name} near-ties: products whose top bit is c's half-ulp and whose tail is far below`, () => {
    // a = 2^ea (1 + i ulp), b = 2^eb (1 + j ulp): the product's tail i*j*ulp^2 sits ~2P bits below c's ulp.
    const one = pow2(f.fracBits);
    for (let n = 0; n < N / 5; n++) {
      const ea = f.bias - 20 + below(40);
      const eb = f.bias - 20 + below(40);
      const ec = Math.max(1, Math.min((1 << f.expBits) - 2, ea + eb - f.bias + f.P + below(3) - 1));
      const mant = (k: number) => BigInt(((k % 4) + 4) % 4);
      const fa = mant(below(7) - 3);
      const a = encode(below(2) === 1, BigInt(ea), fa, f);
      // Half the time b = 2^eb (1 - fa ulp), so a*b = 2^(ea+eb) (1 - fa^2 ulp^2): a power of two minus a speck.
      const fb = below(2) && fa > 0n ? one - 2n * fa : mant(below(4));
      const b = encode(below(2) === 1, BigInt(eb), fb, f);
      const c = encode(below(2) === 1, BigInt(ec), BigInt(below(4)), f);
      const [qa, qb, qc] = [decodeQ(a, f), decodeQ(b, f), decodeQ(c, f)];
      for (let rm = 0; rm < 5; rm++) {
        check(fused(FMADD, fmt, 10, 1, 2, 3, rm), [a, b, c], f, refFma(qa, qb, qc, f, rm), `fmadd.${name} rm${rm}`);
      }
    }
  });

  test(`fcvt.${name} from and to 32/64-bit integers matches the exact reference`, () => {
    const ranges: [bigint, bigint][] = [
      [-(1n << 31n), (1n << 31n) - 1n],
      [0n, (1n << 32n) - 1n],
      [-(1n << 63n), (1n << 63n) - 1n],
      [0n, (1n << 64n) - 1n],
    ];
    for (let i = 0; i < N; i++) {
      for (let kind = 0; kind < 4; kind++) {
        const [lo, hi] = ranges[kind];
        const width = kind < 2 ? 32 : 64;
        let v = randBig(width) >> BigInt(below(width));
        if (lo < 0n && below(2) === 1) v = -v - 1n;
        if (v < lo) v = lo;
        if (v > hi) v = hi;
        for (let rm = 0; rm < 5; rm++) {
          const ctx = makeCtx();
          setX(ctx, 5, v);
          executeFp(opFp(0x1a, fmt, 10, 5, kind, rm), ctx);
          const want = v === 0n ? zero(false, f) : roundQ({ neg: v < 0n, num: v < 0n ? -v : v, den: 1n }, f, rm);
          assert.equal(got(ctx, 10, f), want.bits, `fcvt.${name} kind ${kind} of ${v} rm${rm}`);
          assert.equal(ctx.fflags, want.flags, `fcvt.${name} kind ${kind} of ${v} rm${rm} flags`);
        }
      }
      const a = randFinite(f, f.bias + below(70));
      const qa = decodeQ(a, f);
      for (let kind = 0; kind < 4; kind++) {
        const [lo, hi] = ranges[kind];
        for (let rm = 0; rm < 5; rm++) {
          const ctx = makeCtx();
          put(ctx, 1, a, f);
          executeFp(opFp(0x18, fmt, 10, 1, kind, rm), ctx);
          let [r, inexact] = roundAt(qa.num, qa.den, 0, qa.neg, rm);
          if (qa.neg) r = -r;
          let want: bigint;
          let flags = inexact ? NX : 0;
          if (r < lo || r > hi) {
            want = qa.neg ? lo : hi;
            flags = NV;
          } else want = r;
          want = signedBits(want, kind < 2 ? 32 : 64); // W results are sign-extended
          assert.equal(getX(ctx, 10), want, `fcvt kind ${kind}.${name} of ${hex(a)} rm${rm}`);
          assert.equal(ctx.fflags, flags, `fcvt kind ${kind}.${name} of ${hex(a)} rm${rm} flags`);
        }
      }
    }
  });
}

test("fcvt.s.d matches the exact reference in all rounding modes", () => {
  for (let i = 0; i < N * 2; i++) {
    const k = below(4);
    const a = randFinite(DF, k === 0 ? 1023 - 126 - below(30) : k === 1 ? 1023 + 126 + below(4) : 1023 + below(40) - 20);
    const qa = decodeQ(a, DF);
    for (let rm = 0; rm < 5; rm++) {
      const ctx = makeCtx();
      setD(ctx, 1, a);
      executeFp(opFp(0x08, FMT_S, 10, 1, 1, rm), ctx);
      const want = qa.num === 0n ? zero(qa.neg, SF) : roundQ(qa, SF, rm);
      assert.equal(BigInt(getS(ctx, 10)), want.bits, `fcvt.s.d ${hex(a)} rm${rm}`);
      assert.equal(ctx.fflags, want.flags, `fcvt.s.d ${hex(a)} rm${rm} flags`);
    }
  }
});
