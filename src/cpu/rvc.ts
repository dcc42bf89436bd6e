// RV64C: every 16-bit compressed instruction is expanded once, at module load, into its
// 32-bit equivalent. The hart then executes one decoder for both lengths.
import { encB, encI, encJ, encR, encS, encU } from "./encode.js";

/** Expansion result for an illegal/reserved compressed encoding: opcode 0x7f, never a valid instruction. */
export const RVC_ILLEGAL = -1;

function bits(v: number, hi: number, lo: number): number {
  return (v >>> lo) & ((1 << (hi - lo + 1)) - 1);
}

function signExtend(v: number, width: number): number {
  const s = 32 - width;
  return (v << s) >> s;
}

/** Expand one compressed halfword to a 32-bit instruction, or RVC_ILLEGAL. */
export function expandCompressed(c: number): number {
  const op = c & 3;
  const f3 = c >>> 13;
  const rdp = bits(c, 4, 2) + 8; // rd'/rs2'
  const rs1p = bits(c, 9, 7) + 8;
  const rd = bits(c, 11, 7);
  const rs2 = bits(c, 6, 2);
  if (op === 0) {
    switch (f3) {
      case 0: {
        const imm = (bits(c, 12, 11) << 4) | (bits(c, 10, 7) << 6) | (bits(c, 6, 6) << 2) | (bits(c, 5, 5) << 3);
        return imm === 0 ? RVC_ILLEGAL : encI(0x13, rdp, 0, 2, imm); // c.addi4spn
      }
      case 1: return encI(0x07, rdp, 3, rs1p, (bits(c, 12, 10) << 3) | (bits(c, 6, 5) << 6)); // c.fld
      case 2: return encI(0x03, rdp, 2, rs1p, (bits(c, 12, 10) << 3) | (bits(c, 6, 6) << 2) | (bits(c, 5, 5) << 6)); // c.lw
      case 3: return encI(0x03, rdp, 3, rs1p, (bits(c, 12, 10) << 3) | (bits(c, 6, 5) << 6)); // c.ld
      case 5: return encS(0x27, 3, rs1p, rdp, (bits(c, 12, 10) << 3) | (bits(c, 6, 5) << 6)); // c.fsd
      case 6: return encS(0x23, 2, rs1p, rdp, (bits(c, 12, 10) << 3) | (bits(c, 6, 6) << 2) | (bits(c, 5, 5) << 6)); // c.sw
      case 7: return encS(0x23, 3, rs1p, rdp, (bits(c, 12, 10) << 3) | (bits(c, 6, 5) << 6)); // c.sd
      default: return RVC_ILLEGAL;
    }
  }
  if (op === 1) {
    const imm6 = signExtend((bits(c, 12, 12) << 5) | rs2, 6);
    switch (f3) {
      case 0: return encI(0x13, rd, 0, rd, imm6); // c.addi / c.nop
      case 1: return rd === 0 ? RVC_ILLEGAL : encI(0x1b, rd, 0, rd, imm6); // c.addiw
      case 2: return encI(0x13, rd, 0, 0, imm6); // c.li
      case 3: {
        if (rd === 2) {
          const imm = signExtend(
            (bits(c, 12, 12) << 9) | (bits(c, 6, 6) << 4) | (bits(c, 5, 5) << 6) | (bits(c, 4, 3) << 7) | (bits(c, 2, 2) << 5),
            10,
          );
          return imm === 0 ? RVC_ILLEGAL : encI(0x13, 2, 0, 2, imm); // c.addi16sp
        }
        const imm = signExtend((bits(c, 12, 12) << 17) | (rs2 << 12), 18);
        return imm === 0 ? RVC_ILLEGAL : encU(0x37, rd, imm); // c.lui
      }
      case 4: {
        const f2 = bits(c, 11, 10);
        const shamt = (bits(c, 12, 12) << 5) | rs2;
        if (f2 === 0) return encI(0x13, rs1p, 5, rs1p, shamt); // c.srli
        if (f2 === 1) return encI(0x13, rs1p, 5, rs1p, shamt | 0x400); // c.srai
        if (f2 === 2) return encI(0x13, rs1p, 7, rs1p, imm6); // c.andi
        const sub = bits(c, 6, 5);
        if (bits(c, 12, 12) === 0) {
          if (sub === 0) return encR(0x33, rs1p, 0, rs1p, rdp, 0x20); // c.sub
          if (sub === 1) return encR(0x33, rs1p, 4, rs1p, rdp, 0); // c.xor
          if (sub === 2) return encR(0x33, rs1p, 6, rs1p, rdp, 0); // c.or
          return encR(0x33, rs1p, 7, rs1p, rdp, 0); // c.and
        }
        if (sub === 0) return encR(0x3b, rs1p, 0, rs1p, rdp, 0x20); // c.subw
        if (sub === 1) return encR(0x3b, rs1p, 0, rs1p, rdp, 0); // c.addw
        return RVC_ILLEGAL;
      }
      case 5: {
        const imm = signExtend(
          (bits(c, 12, 12) << 11) | (bits(c, 11, 11) << 4) | (bits(c, 10, 9) << 8) | (bits(c, 8, 8) << 10) |
            (bits(c, 7, 7) << 6) | (bits(c, 6, 6) << 7) | (bits(c, 5, 3) << 1) | (bits(c, 2, 2) << 5),
          12,
        );
        return encJ(0x6f, 0, imm); // c.j
      }
      default: {
        const imm = signExtend(
          (bits(c, 12, 12) << 8) | (bits(c, 11, 10) << 3) | (bits(c, 6, 5) << 6) | (bits(c, 4, 3) << 1) | (bits(c, 2, 2) << 5),
          9,
        );
        return encB(0x63, f3 === 6 ? 0 : 1, rs1p, 0, imm); // c.beqz / c.bnez
      }
    }
  }
  if (op === 2) {
    switch (f3) {
      case 0: return encI(0x13, rd, 1, rd, (bits(c, 12, 12) << 5) | rs2); // c.slli
      case 1: return encI(0x07, rd, 3, 2, (bits(c, 12, 12) << 5) | (bits(c, 6, 5) << 3) | (bits(c, 4, 2) << 6)); // c.fldsp
      case 2:
        return rd === 0 ? RVC_ILLEGAL : encI(0x03, rd, 2, 2, (bits(c, 12, 12) << 5) | (bits(c, 6, 4) << 2) | (bits(c, 3, 2) << 6)); // c.lwsp
      case 3:
        return rd === 0 ? RVC_ILLEGAL : encI(0x03, rd, 3, 2, (bits(c, 12, 12) << 5) | (bits(c, 6, 5) << 3) | (bits(c, 4, 2) << 6)); // c.ldsp
      case 4:
        if (bits(c, 12, 12) === 0) {
          if (rs2 === 0) return rd === 0 ? RVC_ILLEGAL : encI(0x67, 0, 0, rd, 0); // c.jr
          return encR(0x33, rd, 0, 0, rs2, 0); // c.mv
        }
        if (rs2 === 0) return rd === 0 ? 0x00100073 : encI(0x67, 1, 0, rd, 0); // c.ebreak / c.jalr
        return encR(0x33, rd, 0, rd, rs2, 0); // c.add
      case 5: return encS(0x27, 3, 2, rs2, (bits(c, 12, 10) << 3) | (bits(c, 9, 7) << 6)); // c.fsdsp
      case 6: return encS(0x23, 2, 2, rs2, (bits(c, 12, 9) << 2) | (bits(c, 8, 7) << 6)); // c.swsp
      default: return encS(0x23, 3, 2, rs2, (bits(c, 12, 10) << 3) | (bits(c, 9, 7) << 6)); // c.sdsp
    }
  }
  return RVC_ILLEGAL; // op 3 is a 32-bit instruction, never looked up here
}

/** RVC_TABLE[halfword] = 32-bit expansion (0 = illegal). 256 KiB, built once. */
export const RVC_TABLE: Int32Array = (() => {
  const t = new Int32Array(65536);
  t.fill(RVC_ILLEGAL);
  for (let c = 0; c < 65536; c++) if ((c & 3) !== 3) t[c] = expandCompressed(c);
  return t;
})();
