import { test } from "node:test";
import assert from "node:assert/strict";
import { R, divrem64, mul64, mulh64, mulhsu64, mulhu64, mulhu32 } from "./int64.js";

const M64 = (1n << 64n) - 1n;
const EDGES = [0n, 1n, 2n, 3n, -1n, -2n, 0x7fffffffn, 0x80000000n, 0xffffffffn, 0x100000000n, -(1n << 63n), (1n << 63n) - 1n,
  0x123456789abcdefn, -0x123456789abcdefn, 0xdeadbeefcafebaben];

function rnd(seed: { s: bigint }): bigint {
  seed.s = (seed.s * 6364136223846793005n + 1442695040888963407n) & M64;
  return BigInt.asIntN(64, seed.s);
}

function operands(): bigint[] {
  const seed = { s: 42n };
  const out = [...EDGES];
  for (let i = 0; i < 40; i++) out.push(rnd(seed));
  for (let i = 0; i < 10; i++) out.push(rnd(seed) >> 40n);
  return out.map((v) => BigInt.asIntN(64, v));
}

const lo = (v: bigint): number => Number(BigInt.asIntN(32, v));
const hi = (v: bigint): number => Number(BigInt.asIntN(32, v >> 32n));
const got = (): bigint => BigInt.asIntN(64, (BigInt(R[1]) << 32n) | BigInt(R[0] >>> 0));

test("mulhu32 is the exact high word of 32x32 unsigned products", () => {
  for (const a of [0, 1, 0xffff, 0x10000, 0xffffffff, 0x80000000, 0x12345678, 0xdeadbeef]) {
    for (const b of [0, 1, 0xffff, 0xffffffff, 0x80000001, 0x9abcdef0]) {
      const want = Number(((BigInt(a) * BigInt(b)) >> 32n) & 0xffffffffn);
      assert.equal(mulhu32(a | 0, b | 0) >>> 0, want, `mulhu32(${a}, ${b})`);
    }
  }
});

test("64-bit multiplies match BigInt (low, high signed, unsigned, signed x unsigned)", () => {
  const ops = operands();
  for (const a of ops) for (const b of ops) {
    const ua = a & M64, ub = b & M64;
    mul64(lo(a), hi(a), lo(b), hi(b));
    assert.equal(got(), BigInt.asIntN(64, a * b), `mul ${a} ${b}`);
    mulhu64(lo(a), hi(a), lo(b), hi(b));
    assert.equal(got(), BigInt.asIntN(64, (ua * ub) >> 64n), `mulhu ${a} ${b}`);
    mulh64(lo(a), hi(a), lo(b), hi(b));
    assert.equal(got(), BigInt.asIntN(64, (a * b) >> 64n), `mulh ${a} ${b}`);
    mulhsu64(lo(a), hi(a), lo(b), hi(b));
    assert.equal(got(), BigInt.asIntN(64, (a * ub) >> 64n), `mulhsu ${a} ${b}`);
  }
});

test("64-bit division follows RISC-V rules, including /0 and overflow", () => {
  const ops = operands();
  for (const a of ops) for (const b of ops) {
    const ua = a & M64, ub = b & M64;
    const div = b === 0n ? -1n : a === -(1n << 63n) && b === -1n ? a : a / b;
    const rem = b === 0n ? a : a === -(1n << 63n) && b === -1n ? 0n : a % b;
    const divu = ub === 0n ? -1n : BigInt.asIntN(64, ua / ub);
    const remu = ub === 0n ? a : BigInt.asIntN(64, ua % ub);
    divrem64(0, lo(a), hi(a), lo(b), hi(b)); assert.equal(got(), div, `div ${a} ${b}`);
    divrem64(1, lo(a), hi(a), lo(b), hi(b)); assert.equal(got(), divu, `divu ${a} ${b}`);
    divrem64(2, lo(a), hi(a), lo(b), hi(b)); assert.equal(got(), rem, `rem ${a} ${b}`);
    divrem64(3, lo(a), hi(a), lo(b), hi(b)); assert.equal(got(), remu, `remu ${a} ${b}`);
  }
});
