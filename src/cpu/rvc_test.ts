import { test } from "node:test";
import assert from "node:assert/strict";
import { RVC_TABLE, RVC_ILLEGAL } from "./rvc.js";
import { encB, encI, encJ, encR, encS, encU } from "./encode.js";

// Compressed encodings as GNU as emits them (common in Debian kernel disassembly), and their
// 32-bit equivalents.
const CASES: [string, number, number][] = [
  ["c.addi sp,sp,-16", 0x1141, encI(0x13, 2, 0, 2, -16)],
  ["c.sdsp ra,8(sp)", 0xe406, encS(0x23, 3, 2, 1, 8)],
  ["c.sdsp s0,0(sp)", 0xe022, encS(0x23, 3, 2, 8, 0)],
  ["c.addi4spn s0,sp,16", 0x0800, encI(0x13, 8, 0, 2, 16)],
  ["c.ldsp ra,8(sp)", 0x60a2, encI(0x03, 1, 3, 2, 8)],
  ["c.ldsp s0,0(sp)", 0x6402, encI(0x03, 8, 3, 2, 0)],
  ["c.addi sp,sp,16", 0x0141, encI(0x13, 2, 0, 2, 16)],
  ["c.jr ra (ret)", 0x8082, encI(0x67, 0, 0, 1, 0)],
  ["c.li a0,0", 0x4501, encI(0x13, 10, 0, 0, 0)],
  ["c.mv a0,a1", 0x852e, encR(0x33, 10, 0, 0, 11, 0)],
  ["c.addi16sp sp,-64", 0x7139, encI(0x13, 2, 0, 2, -64)],
  ["c.addi16sp sp,64", 0x6121, encI(0x13, 2, 0, 2, 64)],
  ["c.jalr a5", 0x9782, encI(0x67, 1, 0, 15, 0)],
  ["c.ebreak", 0x9002, 0x00100073],
  ["c.beqz a0,+8", 0xc501, encB(0x63, 0, 10, 0, 8)],
  ["c.addiw a0,a0,0 (sext.w)", 0x2501, encI(0x1b, 10, 0, 10, 0)],
  ["c.lui a0,0x1", 0x6505, encU(0x37, 10, 0x1000)],
  ["c.lw a0,0(a0)", 0x4108, encI(0x03, 10, 2, 10, 0)],
  ["c.ld a0,8(a0)", 0x6508, encI(0x03, 10, 3, 10, 8)],
  ["c.j -2", 0xbffd, encJ(0x6f, 0, -2)],
  ["c.nop", 0x0001, encI(0x13, 0, 0, 0, 0)],
  ["c.add a0,a0,a1", 0x952e, encR(0x33, 10, 0, 10, 11, 0)],
  ["c.slli a0,a0,32", 0x1502, encI(0x13, 10, 1, 10, 32)],
  ["c.srli a0,a0,32", 0x9101, encI(0x13, 10, 5, 10, 32)],
  ["c.srai a0,a0,3", 0x850d, encI(0x13, 10, 5, 10, 3 | 0x400)],
  ["c.andi a0,a0,-1", 0x997d, encI(0x13, 10, 7, 10, -1)],
  ["c.sub a0,a0,a1", 0x8d0d, encR(0x33, 10, 0, 10, 11, 0x20)],
  ["c.subw a0,a0,a1", 0x9d0d, encR(0x3b, 10, 0, 10, 11, 0x20)],
  ["c.addw a0,a0,a1", 0x9d2d, encR(0x3b, 10, 0, 10, 11, 0)],
  ["c.fld fa0,8(a0)", 0x2508, encI(0x07, 10, 3, 10, 8)],
  ["c.fsd fa0,8(a0)", 0xa508, encS(0x27, 3, 10, 10, 8)],
  ["c.fldsp fa0,8(sp)", 0x2522, encI(0x07, 10, 3, 2, 8)],
  ["c.fsdsp fa0,8(sp)", 0xa42a, encS(0x27, 3, 2, 10, 8)],
  ["c.swsp a0,4(sp)", 0xc22a, encS(0x23, 2, 2, 10, 4)],
  ["c.lwsp a0,4(sp)", 0x4512, encI(0x03, 10, 2, 2, 4)],
  ["c.sw a0,4(a1)", 0xc1c8, encS(0x23, 2, 11, 10, 4)],
  ["c.sd a0,8(a1)", 0xe588, encS(0x23, 3, 11, 10, 8)],
  ["c.bnez a0,-4", 0xfd75, encB(0x63, 1, 10, 0, -4)],
];

test("compressed instructions expand to their 32-bit equivalents", () => {
  for (const [name, c, want] of CASES) {
    assert.equal(RVC_TABLE[c] >>> 0, want >>> 0, `${name} (0x${c.toString(16)})`);
  }
});

test("reserved compressed encodings are illegal", () => {
  assert.equal(RVC_TABLE[0x0000], RVC_ILLEGAL, "all-zero halfword");
  assert.equal(RVC_TABLE[0x4002], RVC_ILLEGAL, "c.lwsp x0");
  assert.equal(RVC_TABLE[0x6002], RVC_ILLEGAL, "c.ldsp x0");
  assert.equal(RVC_TABLE[0x8002], RVC_ILLEGAL, "c.jr x0");
  assert.equal(RVC_TABLE[0x6101], RVC_ILLEGAL, "c.addi16sp 0");
  assert.equal(RVC_TABLE[0x6501 & ~0x007c], RVC_ILLEGAL, "c.lui rd, 0");
  assert.equal(RVC_TABLE[0x2001], RVC_ILLEGAL, "c.addiw x0");
  assert.equal(RVC_TABLE[0x8000], RVC_ILLEGAL, "quadrant 0 funct3 4");
  assert.equal(RVC_TABLE[0x9c41], RVC_ILLEGAL, "reserved c.subw/addw slot");
});
