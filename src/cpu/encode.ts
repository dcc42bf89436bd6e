// RISC-V 32-bit instruction encoders by format. Used to expand compressed instructions
// (rvc.ts) and by the test assembler (testing/asm.ts). Results are signed 32-bit integers.

export function encR(opcode: number, rd: number, f3: number, rs1: number, rs2: number, f7: number): number {
  return (f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | opcode;
}

export function encI(opcode: number, rd: number, f3: number, rs1: number, imm: number): number {
  return ((imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | opcode;
}

export function encS(opcode: number, f3: number, rs1: number, rs2: number, imm: number): number {
  return (((imm >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((imm & 0x1f) << 7) | opcode;
}

export function encB(opcode: number, f3: number, rs1: number, rs2: number, imm: number): number {
  return (
    (((imm >> 12) & 1) << 31) |
    (((imm >> 5) & 0x3f) << 25) |
    (rs2 << 20) |
    (rs1 << 15) |
    (f3 << 12) |
    (((imm >> 1) & 0xf) << 8) |
    (((imm >> 11) & 1) << 7) |
    opcode
  );
}

export function encU(opcode: number, rd: number, imm: number): number {
  return (imm & 0xfffff000) | (rd << 7) | opcode;
}

export function encJ(opcode: number, rd: number, imm: number): number {
  return (
    (((imm >> 20) & 1) << 31) |
    (((imm >> 1) & 0x3ff) << 21) |
    (((imm >> 11) & 1) << 20) |
    (((imm >> 12) & 0xff) << 12) |
    (rd << 7) |
    opcode
  );
}
