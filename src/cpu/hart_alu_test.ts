// RV64I/M register and immediate operations against a BigInt reference, plus branches and jumps.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Asm } from "./testing/asm.js";
import type { OpName } from "./testing/asm.js";
import { makeMachine, load, runTo, RAM_BASE } from "./testing/machine.js";

const M64 = (1n << 64n) - 1n;
const s64 = (v: bigint): bigint => BigInt.asIntN(64, v);
const u64 = (v: bigint): bigint => BigInt.asUintN(64, v);
const s32 = (v: bigint): bigint => BigInt.asIntN(32, v);
const u32 = (v: bigint): bigint => BigInt.asUintN(32, v);
const MIN64 = -(1n << 63n);
const MIN32 = -(1n << 31n);

const REF: Record<OpName, (a: bigint, b: bigint) => bigint> = {
  add: (a, b) => s64(a + b),
  sub: (a, b) => s64(a - b),
  sll: (a, b) => s64(a << (b & 63n)),
  slt: (a, b) => (a < b ? 1n : 0n),
  sltu: (a, b) => (u64(a) < u64(b) ? 1n : 0n),
  xor: (a, b) => s64(a ^ b),
  srl: (a, b) => s64(u64(a) >> (b & 63n)),
  sra: (a, b) => s64(a >> (b & 63n)),
  or: (a, b) => s64(a | b),
  and: (a, b) => s64(a & b),
  mul: (a, b) => s64(a * b),
  mulh: (a, b) => s64((a * b) >> 64n),
  mulhsu: (a, b) => s64((a * u64(b)) >> 64n),
  mulhu: (a, b) => s64((u64(a) * u64(b)) >> 64n),
  div: (a, b) => (b === 0n ? -1n : a === MIN64 && b === -1n ? a : a / b),
  divu: (a, b) => (b === 0n ? -1n : s64(u64(a) / u64(b))),
  rem: (a, b) => (b === 0n ? a : a === MIN64 && b === -1n ? 0n : a % b),
  remu: (a, b) => (b === 0n ? a : s64(u64(a) % u64(b))),
  addw: (a, b) => s32(a + b),
  subw: (a, b) => s32(a - b),
  sllw: (a, b) => s32(a << (b & 31n)),
  srlw: (a, b) => s32(u32(a) >> (b & 31n)),
  sraw: (a, b) => s32(s32(a) >> (b & 31n)),
  mulw: (a, b) => s32(a * b),
  divw: (a, b) => {
    const x = s32(a), y = s32(b);
    return y === 0n ? -1n : x === MIN32 && y === -1n ? x : s32(x / y);
  },
  divuw: (a, b) => (u32(b) === 0n ? -1n : s32(u32(a) / u32(b))),
  remw: (a, b) => {
    const x = s32(a), y = s32(b);
    return y === 0n ? x : x === MIN32 && y === -1n ? 0n : s32(x % y);
  },
  remuw: (a, b) => (u32(b) === 0n ? s32(a) : s32(u32(a) % u32(b))),
};

const VALUES = [0n, 1n, -1n, 2n, 7n, -7n, 31n, 32n, 63n, 64n, 0x7fffffffn, -0x80000000n, 0x80000000n, 0xffffffffn,
  0x100000000n, MIN64, (1n << 63n) - 1n, 0x123456789abcdefn, -0x0fedcba987654321n, 0x5555aaaa3333ccccn];

/** Runs `emit` for each operand pair, storing rd to consecutive doublewords; returns the stored values. */
function runPairs(pairs: [bigint, bigint][], emit: (a: Asm) => void): bigint[] {
  const m = makeMachine();
  const out = RAM_BASE + 0x20_0000;
  const a = new Asm();
  a.li(20, out);
  for (const [x, y] of pairs) {
    a.li(1, x).li(2, y);
    emit(a);
    a.sd(3, 20, 0).addi(20, 20, 8);
  }
  const end = a.here;
  a.addi(0, 0, 0);
  load(m, a);
  runTo(m, end, 1_000_000);
  const res: bigint[] = [];
  for (let i = 0; i < pairs.length; i++) {
    const v = BigInt(m.ram.readU32(out + 8 * i)) | (BigInt(m.ram.readU32(out + 8 * i + 4)) << 32n);
    res.push(s64(v));
  }
  return res;
}

test("register-register operations (RV64I, RV64M, *W forms) match the reference", () => {
  const pairs: [bigint, bigint][] = [];
  for (const x of VALUES) for (const y of VALUES) pairs.push([x, y]);
  for (const name of Object.keys(REF) as OpName[]) {
    const got = runPairs(pairs, (a) => a.op(name, 3, 1, 2));
    pairs.forEach(([x, y], i) => assert.equal(got[i], REF[name](x, y), `${name} ${x} ${y}`));
  }
});

test("RV64M operations match the reference on pseudo-random operands", () => {
  // xorshift64: deterministic operands of every magnitude (the fast paths split on int32 range).
  let st = 0x9e3779b97f4a7c15n;
  const next = (): bigint => {
    st ^= (st << 13n) & 0xffffffffffffffffn; st ^= st >> 7n; st ^= (st << 17n) & 0xffffffffffffffffn;
    const shift = st & 63n;
    return s64(st >> shift);
  };
  const pairs: [bigint, bigint][] = [];
  for (let i = 0; i < 400; i++) pairs.push([next(), next()]);
  for (const name of ["mul", "mulh", "mulhsu", "mulhu", "div", "divu", "rem", "remu"] as OpName[]) {
    const got = runPairs(pairs, (a) => a.op(name, 3, 1, 2));
    pairs.forEach(([x, y], i) => assert.equal(got[i], REF[name](x, y), `${name} ${x} ${y}`));
  }
});

test("immediate operations match the reference", () => {
  const imms = [0, 1, -1, 5, -2048, 2047, 0x7ff, -0x800 + 3];
  const shamts = [0, 1, 13, 31, 32, 33, 63];
  const pairs: [bigint, bigint][] = VALUES.map((v) => [v, 0n]);
  const check = (name: string, emit: (a: Asm, imm: number) => void, ref: (a: bigint, imm: bigint) => bigint, list: number[]): void => {
    for (const imm of list) {
      const got = runPairs(pairs, (a) => emit(a, imm));
      pairs.forEach(([x], i) => assert.equal(got[i], ref(x, BigInt(imm)), `${name} ${x} ${imm}`));
    }
  };
  check("addi", (a, i) => a.addi(3, 1, i), (x, i) => s64(x + i), imms);
  check("slti", (a, i) => a.slti(3, 1, i), (x, i) => (x < i ? 1n : 0n), imms);
  check("sltiu", (a, i) => a.sltiu(3, 1, i), (x, i) => (u64(x) < u64(i) ? 1n : 0n), imms);
  check("xori", (a, i) => a.xori(3, 1, i), (x, i) => s64(x ^ i), imms);
  check("ori", (a, i) => a.ori(3, 1, i), (x, i) => s64(x | i), imms);
  check("andi", (a, i) => a.andi(3, 1, i), (x, i) => s64(x & i), imms);
  check("slli", (a, i) => a.slli(3, 1, i), (x, i) => s64(x << i), shamts);
  check("srli", (a, i) => a.srli(3, 1, i), (x, i) => s64(u64(x) >> i), shamts);
  check("srai", (a, i) => a.srai(3, 1, i), (x, i) => x >> i, shamts);
  check("addiw", (a, i) => a.addiw(3, 1, i), (x, i) => s32(x + i), imms);
  const sh32 = [0, 1, 15, 31];
  check("slliw", (a, i) => a.slliw(3, 1, i), (x, i) => s32(x << i), sh32);
  check("srliw", (a, i) => a.srliw(3, 1, i), (x, i) => s32(u32(x) >> i), sh32);
  check("sraiw", (a, i) => a.sraiw(3, 1, i), (x, i) => s32(s32(x) >> i), sh32);
});

test("lui, auipc, li of 64-bit constants", () => {
  const m = makeMachine();
  const a = new Asm();
  a.lui(1, 0x80000000 | 0).lui(2, 0x7ffff000).auipc(3, 0x1000).auipc(4, -0x1000);
  a.li(5, 0xfedcba9876543210n).li(6, -2n).li(7, 0x7fffffffn).li(8, 0x80000000n);
  const end = a.here;
  load(m, a);
  runTo(m, end);
  const h = m.hart;
  assert.equal(h.getX(1), -0x80000000n);
  assert.equal(h.getX(2), 0x7ffff000n);
  assert.equal(h.getX(3), BigInt(RAM_BASE + 8 + 0x1000));
  assert.equal(h.getX(4), BigInt(RAM_BASE + 12 - 0x1000));
  assert.equal(h.getX(5), s64(0xfedcba9876543210n));
  assert.equal(h.getX(6), -2n);
  assert.equal(h.getX(7), 0x7fffffffn);
  assert.equal(h.getX(8), 0x80000000n);
});

test("branches compare signed and unsigned 64-bit values", () => {
  const conds: [string, (x: bigint, y: bigint) => boolean, (a: Asm, t: string) => void][] = [
    ["beq", (x, y) => x === y, (a, t) => a.beq(1, 2, t)],
    ["bne", (x, y) => x !== y, (a, t) => a.bne(1, 2, t)],
    ["blt", (x, y) => x < y, (a, t) => a.blt(1, 2, t)],
    ["bge", (x, y) => x >= y, (a, t) => a.bge(1, 2, t)],
    ["bltu", (x, y) => u64(x) < u64(y), (a, t) => a.bltu(1, 2, t)],
    ["bgeu", (x, y) => u64(x) >= u64(y), (a, t) => a.bgeu(1, 2, t)],
  ];
  const vals = [0n, 1n, -1n, MIN64, (1n << 63n) - 1n, 0x100000000n, 0xffffffffn, -0x100000000n];
  const pairs: [bigint, bigint][] = [];
  for (const x of vals) for (const y of vals) pairs.push([x, y]);
  for (const [name, ref, emit] of conds) {
    let n = 0;
    const got = runPairs(pairs, (a) => {
      const l = `t${name}${n++}`;
      a.li(3, 1);
      emit(a, l);
      a.li(3, 0);
      a.label(l);
    });
    pairs.forEach(([x, y], i) => assert.equal(got[i], ref(x, y) ? 1n : 0n, `${name} ${x} ${y}`));
  }
});

test("jal and jalr link pc+4 (pc+2 when compressed) and jalr clears bit 0", () => {
  const m = makeMachine();
  const a = new Asm();
  a.jal(1, "f"); // 0
  a.label("back");
  a.li(10, 1); // 4
  const end = a.here;
  a.addi(0, 0, 0);
  a.label("f");
  a.li(5, RAM_BASE + 0x41); // odd target: jalr must clear bit 0
  a.jalr(6, 5, 0);
  load(m, a);
  // At RAM_BASE + 0x40: c.jalr x1? use c.jr ra (0x8082) to return to "back".
  m.ram.writeU16(RAM_BASE + 0x40, 0x8082);
  runTo(m, end);
  assert.equal(m.hart.getX(1), BigInt(RAM_BASE + 4));
  assert.equal(m.hart.getX(10), 1n);
  assert.ok(m.hart.getX(6) > BigInt(RAM_BASE));
});

test("writes to x0 are discarded", () => {
  const m = makeMachine();
  const a = new Asm();
  a.li(1, 5).add(0, 1, 1).addi(0, 0, 7).lui(0, 0x1000).add(2, 0, 0);
  const end = a.here;
  load(m, a);
  runTo(m, end);
  assert.equal(m.hart.getX(0), 0n);
  assert.equal(m.hart.getX(2), 0n);
});
