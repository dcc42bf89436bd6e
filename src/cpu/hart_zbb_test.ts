// Zbb (basic bit manipulation) against a BigInt reference, on the interpreter and on compiled code,
// plus the reserved neighbours of its encodings, which must stay illegal.
import { test } from "node:test";
import assert from "node:assert/strict";
import { GuestRam } from "../seams/guest_ram.js";
import { Bus } from "../machine/bus.js";
import { Hart } from "./hart.js";
import { BlockCache } from "./jit/block_cache.js";
import { Asm } from "./testing/asm.js";
import { encI, encR } from "./encode.js";
import { CAUSE_ILLEGAL_INSTRUCTION } from "./constants.js";

const RAM_BASE = 0x8000_0000;
const s64 = (v: bigint): bigint => BigInt.asIntN(64, v);
const u64 = (v: bigint): bigint => BigInt.asUintN(64, v);
const s32 = (v: bigint): bigint => BigInt.asIntN(32, v);
const u32 = (v: bigint): bigint => BigInt.asUintN(32, v);
const clz = (v: bigint, bits: number): bigint => { let n = 0n; for (let i = bits - 1; i >= 0 && ((v >> BigInt(i)) & 1n) === 0n; i--) n++; return n; };
const ctz = (v: bigint, bits: number): bigint => { let n = 0n; for (let i = 0; i < bits && ((v >> BigInt(i)) & 1n) === 0n; i++) n++; return n; };
const cpop = (v: bigint): bigint => { let n = 0n; for (; v !== 0n; v >>= 1n) n += v & 1n; return n; };
const rotr = (v: bigint, n: bigint, bits: bigint): bigint => { const m = (1n << bits) - 1n; v &= m; n %= bits; return ((v >> n) | (v << ((bits - n) % bits))) & m; };
const bytes = (v: bigint): bigint[] => Array.from({ length: 8 }, (_, i) => (u64(v) >> BigInt(8 * i)) & 0xffn);

/** Name -> (encoding for rd 3, rs1 1, rs2 2, reference of (rs1, rs2)). */
type Case = [number, (a: bigint, b: bigint) => bigint];
const CASES: Record<string, Case> = {
  andn: [encR(0x33, 3, 7, 1, 2, 0x20), (a, b) => s64(a & ~b)],
  orn: [encR(0x33, 3, 6, 1, 2, 0x20), (a, b) => s64(a | ~b)],
  xnor: [encR(0x33, 3, 4, 1, 2, 0x20), (a, b) => s64(~(a ^ b))],
  min: [encR(0x33, 3, 4, 1, 2, 5), (a, b) => (a < b ? a : b)],
  minu: [encR(0x33, 3, 5, 1, 2, 5), (a, b) => (u64(a) < u64(b) ? a : b)],
  max: [encR(0x33, 3, 6, 1, 2, 5), (a, b) => (a > b ? a : b)],
  maxu: [encR(0x33, 3, 7, 1, 2, 5), (a, b) => (u64(a) > u64(b) ? a : b)],
  rol: [encR(0x33, 3, 1, 1, 2, 0x30), (a, b) => s64(rotr(a, 64n - (b & 63n), 64n))],
  ror: [encR(0x33, 3, 5, 1, 2, 0x30), (a, b) => s64(rotr(a, b & 63n, 64n))],
  rolw: [encR(0x3b, 3, 1, 1, 2, 0x30), (a, b) => s32(rotr(a, 32n - (b & 31n), 32n))],
  rorw: [encR(0x3b, 3, 5, 1, 2, 0x30), (a, b) => s32(rotr(a, b & 31n, 32n))],
  "zext.h": [encR(0x3b, 3, 4, 1, 0, 4), (a) => a & 0xffffn],
  clz: [encI(0x13, 3, 1, 1, 0x600), (a) => clz(u64(a), 64)],
  ctz: [encI(0x13, 3, 1, 1, 0x601), (a) => ctz(u64(a), 64)],
  cpop: [encI(0x13, 3, 1, 1, 0x602), (a) => cpop(u64(a))],
  "sext.b": [encI(0x13, 3, 1, 1, 0x604), (a) => BigInt.asIntN(8, a)],
  "sext.h": [encI(0x13, 3, 1, 1, 0x605), (a) => BigInt.asIntN(16, a)],
  clzw: [encR(0x1b, 3, 1, 1, 0, 0x30), (a) => clz(u32(a), 32)],
  ctzw: [encR(0x1b, 3, 1, 1, 1, 0x30), (a) => ctz(u32(a), 32)],
  cpopw: [encR(0x1b, 3, 1, 1, 2, 0x30), (a) => cpop(u32(a))],
  "orc.b": [encI(0x13, 3, 5, 1, 0x287), (a) => s64(bytes(a).reduce((acc, b, i) => acc | ((b !== 0n ? 0xffn : 0n) << BigInt(8 * i)), 0n))],
  rev8: [encI(0x13, 3, 5, 1, 0x6b8), (a) => s64(bytes(a).reduce((acc, b, i) => acc | (b << BigInt(8 * (7 - i))), 0n))],
};
for (const sh of [0, 1, 31, 32, 33, 63]) CASES[`rori ${sh}`] = [encI(0x13, 3, 5, 1, 0x600 | sh), (a) => s64(rotr(a, BigInt(sh), 64n))];
for (const sh of [0, 1, 16, 31]) CASES[`roriw ${sh}`] = [encR(0x1b, 3, 5, 1, sh, 0x30), (a) => s32(rotr(a, BigInt(sh), 32n))];

const VALUES = [0n, 1n, -1n, 2n, 0x80n, 0xff00n, 0x7fffffffn, -0x80000000n, 0x80000000n, 0xffffffffn, 0x100000000n,
  -(1n << 63n), (1n << 63n) - 1n, 0x0123456789abcdefn, -0x0fedcba987654321n, 0x00ff000000010000n, 0x8000000000000001n, 63n, 64n, 33n].map(s64);

function hart(jit: boolean): Hart {
  const ram = new GuestRam(RAM_BASE, 1 << 20);
  const h = new Hart({ hartId: 0, ram, vcpuDevices: new Bus(), time: { frequency: 10_000_000, now: () => 0 }, stateBlock: true });
  if (jit) h.useJit(new BlockCache(ram, { threshold: 1 }));
  return h;
}

const put = (h: Hart, gpa: number, v: bigint): void => { h.ram.writeU32(gpa, Number(u64(v) & 0xffffffffn)); h.ram.writeU32(gpa + 4, Number(u64(v) >> 32n)); };
const get = (h: Hart, gpa: number): bigint => s64(BigInt(h.ram.readU32(gpa)) | (BigInt(h.ram.readU32(gpa + 4)) << 32n));

/** Runs `insn` for every operand pair in a loop, twice round (the JIT runs the second round compiled); rd per pair, and the instructions run compiled. */
function results(jit: boolean, insn: number, pairs: [bigint, bigint][]): { values: bigint[]; compiled: number } {
  const h = hart(jit);
  const table = RAM_BASE + 0x8000, out = RAM_BASE + 0x10000;
  pairs.forEach(([a, b], i) => { put(h, table + 16 * i, a); put(h, table + 16 * i + 8, b); });
  const asm = new Asm(RAM_BASE);
  asm.li(9, 2).label("round").li(5, table).li(6, out).li(7, pairs.length);
  asm.label("next").ld(1, 5, 0).ld(2, 5, 8).word(insn).sd(3, 6, 0).addi(5, 5, 16).addi(6, 6, 8).addi(7, 7, -1).bne(7, 0, "next");
  asm.addi(9, 9, -1).bne(9, 0, "round");
  const done = asm.here;
  asm.label("done").jal(0, "done");
  h.ram.write(RAM_BASE, asm.bytesOut());
  h.setPc(RAM_BASE);
  for (let i = 0; i < 10_000 && h.getPc() !== done; i++) h.run(97);
  assert.equal(h.getPc(), done, "the program ran to its end");
  return { values: pairs.map((_, i) => get(h, out + 8 * i)), compiled: h.jitCache?.stats.instructionsCompiled ?? 0 };
}

for (const jit of [false, true]) {
  test(`Zbb instructions match the reference (${jit ? "compiled" : "interpreter"})`, () => {
    const pairs: [bigint, bigint][] = [];
    for (const a of VALUES) for (const b of VALUES) pairs.push([a, b]);
    for (const [name, [insn, ref]] of Object.entries(CASES)) {
      const { values, compiled } = results(jit, insn, pairs);
      pairs.forEach(([a, b], i) => assert.equal(values[i], ref(a, b), `${name} ${a} ${b}`));
      // The loop body is 8 instructions: its second round ran compiled, the Zbb instruction inside the block.
      if (jit) assert.ok(compiled >= 8 * pairs.length, `${name}: only ${compiled} instructions ran compiled`);
    }
  });
}

test("the reserved neighbours of Zbb's encodings are illegal instructions", () => {
  for (const insn of [encI(0x13, 3, 1, 1, 0x603), encI(0x13, 3, 1, 1, 0x606), encI(0x13, 3, 1, 1, 0x620), encI(0x13, 3, 5, 1, 0x286), encI(0x13, 3, 5, 1, 0x6b0),
    encR(0x1b, 3, 1, 1, 3, 0x30), encR(0x3b, 3, 4, 1, 1, 4), encR(0x33, 3, 0, 1, 2, 5), encR(0x33, 3, 2, 1, 2, 0x30)]) {
    const h = hart(false);
    const asm = new Asm(RAM_BASE).word(insn);
    h.ram.write(RAM_BASE, asm.bytesOut());
    h.setPc(RAM_BASE);
    h.run(1);
    assert.equal(h.stats.trapsByCause.get(`exception:${CAUSE_ILLEGAL_INSTRUCTION}`), 1, `0x${(insn >>> 0).toString(16)} traps as illegal`);
  }
});
