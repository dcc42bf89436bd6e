// The Zbb bit-manipulation instructions (RISC-V Bitmanip 1.0) in compiled blocks: which encodings
// are Zbb, and the wasm computing each one's result. The interpreter's semantics are in
// semantics/instructions.ts; the equivalence tests hold the two equal.
import { L_A, L_B, L_T, type Emitter } from "./block_emitter.js";
import { OP } from "./wasm_module.js";

// Wasm numeric opcodes beyond wasm_module.ts's OP (core spec, binary format).
const I32_CLZ = 0x67, I32_CTZ = 0x68, I32_POPCNT = 0x69, I32_ROTL = 0x77, I32_ROTR = 0x78;
const I64_CLZ = 0x79, I64_CTZ = 0x7a, I64_POPCNT = 0x7b, I64_ROTL = 0x89, I64_ROTR = 0x8a;
const I64_GT_S = 0x55, I64_GT_U = 0x56, I64_EXTEND8_S = 0xc2, I64_EXTEND16_S = 0xc3;

const BYTES_7F = 0x7f7f7f7f7f7f7f7fn, BYTES_80 = -0x7f7f7f7f7f7f7f80n; // 0x8080808080808080 as an i64

/** Whether the (expanded, 32-bit) instruction is one of Zbb's, as RV64 encodes them. */
export function isZbb(insn: number): boolean {
  const f3 = (insn >>> 12) & 7, f7 = insn >>> 25, imm = insn >>> 20, rs2 = (insn >>> 20) & 31;
  switch (insn & 0x7f) {
    case 0x13: // OP-IMM: CLZ CTZ CPOP SEXT.B SEXT.H, RORI, ORC.B, REV8
      if (f3 === 1) return imm === 0x600 || imm === 0x601 || imm === 0x602 || imm === 0x604 || imm === 0x605;
      return f3 === 5 && (insn >>> 26 === 0x18 || imm === 0x287 || imm === 0x6b8);
    case 0x1b: // OP-IMM-32: CLZW CTZW CPOPW, RORIW
      return f7 === 0x30 && ((f3 === 1 && rs2 <= 2) || f3 === 5);
    case 0x33: // OP: ANDN ORN XNOR, MIN MINU MAX MAXU, ROL ROR
      return (f7 === 0x20 && (f3 === 4 || f3 === 6 || f3 === 7)) || (f7 === 5 && f3 >= 4) || (f7 === 0x30 && (f3 === 1 || f3 === 5));
    case 0x3b: // OP-32: ROLW RORW, ZEXT.H
      return (f7 === 0x30 && (f3 === 1 || f3 === 5)) || (f7 === 4 && f3 === 4 && rs2 === 0);
    default:
      return false;
  }
}

/** Pushes the i64 result of Zbb instruction `insn` (isZbb) for rd; L_A, L_B and L_T are scratch. */
export function emitZbb(e: Emitter, insn: number): void {
  const f3 = (insn >>> 12) & 7, f7 = insn >>> 25, imm = insn >>> 20;
  const rs1 = (insn >>> 15) & 31, rs2 = (insn >>> 20) & 31;
  switch (insn & 0x7f) {
    case 0x13:
      e.reg(rs1);
      if (f3 === 1) e.op([I64_CLZ, I64_CTZ, I64_POPCNT, 0, I64_EXTEND8_S, I64_EXTEND16_S][imm & 7]!);
      else if (imm === 0x287) emitOrcB(e);
      else if (imm === 0x6b8) emitRev8(e);
      else e.i64(imm & 63).op(I64_ROTR);
      return;
    case 0x1b:
      e.reg(rs1).op(OP.i32WrapI64);
      if (f3 === 1) e.op([I32_CLZ, I32_CTZ, I32_POPCNT][rs2]!, OP.i64ExtendI32U);
      else e.i32(rs2).op(I32_ROTR, OP.i64ExtendI32S);
      return;
    case 0x33:
      if (f7 === 5) { // min/max: select(a, b, a <cmp> b)
        const cmp = [OP.i64LtS, OP.i64LtU, I64_GT_S, I64_GT_U][f3 - 4]!;
        e.reg(rs1).set(L_A).reg(rs2).set(L_B);
        e.get(L_A).get(L_B).get(L_A).get(L_B).op(cmp, OP.select);
        return;
      }
      e.reg(rs1).reg(rs2);
      if (f7 === 0x30) e.op(f3 === 1 ? I64_ROTL : I64_ROTR);
      else if (f3 === 4) e.op(OP.i64Xor).i64(-1).op(OP.i64Xor); // xnor
      else e.i64(-1).op(OP.i64Xor, f3 === 6 ? OP.i64Or : OP.i64And); // orn, andn
      return;
    default: // 0x3b
      if (f7 === 4) { e.reg(rs1).i64(0xffff).op(OP.i64And); return; } // zext.h
      e.reg(rs1).op(OP.i32WrapI64).reg(rs2).op(OP.i32WrapI64, f3 === 1 ? I32_ROTL : I32_ROTR).op(OP.i64ExtendI32S);
  }
}

/** orc.b of the i64 on the stack: a byte's top bit after adding 0x7f to its low seven is set iff the byte is nonzero (no carry leaves a byte). */
function emitOrcB(e: Emitter): void {
  e.set(L_T).get(L_T).i64(BYTES_7F).op(OP.i64And).i64(BYTES_7F).op(OP.i64Add).get(L_T).op(OP.i64Or);
  e.i64(BYTES_80).op(OP.i64And).i64(7).op(OP.i64ShrU).i64(0xff).op(OP.i64Mul);
}

/** rev8 (a byte swap) of the i64 on the stack: bytes, then halfwords swapped in place, then the words rotated. */
function emitRev8(e: Emitter): void {
  e.set(L_T);
  e.get(L_T).i64(8).op(OP.i64ShrU).i64(0x00ff00ff00ff00ffn).op(OP.i64And).get(L_T).i64(0x00ff00ff00ff00ffn).op(OP.i64And).i64(8).op(OP.i64Shl).op(OP.i64Or).set(L_T);
  e.get(L_T).i64(16).op(OP.i64ShrU).i64(0x0000ffff0000ffffn).op(OP.i64And).get(L_T).i64(0x0000ffff0000ffffn).op(OP.i64And).i64(16).op(OP.i64Shl).op(OP.i64Or);
  e.i64(32).op(I64_ROTR);
}
