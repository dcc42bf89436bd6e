// A tiny RV64 assembler for tests and benchmarks: emits 32-bit (and raw 16-bit) instructions,
// resolves branch/jump labels, and can load the result into guest RAM.
import { encB, encI, encJ, encR, encS, encU } from "../encode.js";

interface Fixup { at: number; label: string; kind: "b" | "j"; word: number }

export class Asm {
  private readonly bytes: number[] = [];
  private readonly labels = new Map<string, number>();
  private readonly fixups: Fixup[] = [];

  constructor(readonly origin = 0x8000_0000) {}

  /** Current address. */
  get here(): number {
    return this.origin + this.bytes.length;
  }

  label(name: string): this {
    this.labels.set(name, this.bytes.length);
    return this;
  }

  word(w: number): this {
    for (let i = 0; i < 4; i++) this.bytes.push((w >>> (8 * i)) & 0xff);
    return this;
  }

  half(h: number): this {
    this.bytes.push(h & 0xff, (h >>> 8) & 0xff);
    return this;
  }

  // RV64I
  lui(rd: number, imm: number): this { return this.word(encU(0x37, rd, imm)); }
  auipc(rd: number, imm: number): this { return this.word(encU(0x17, rd, imm)); }
  addi(rd: number, rs1: number, imm: number): this { return this.word(encI(0x13, rd, 0, rs1, imm)); }
  slti(rd: number, rs1: number, imm: number): this { return this.word(encI(0x13, rd, 2, rs1, imm)); }
  sltiu(rd: number, rs1: number, imm: number): this { return this.word(encI(0x13, rd, 3, rs1, imm)); }
  xori(rd: number, rs1: number, imm: number): this { return this.word(encI(0x13, rd, 4, rs1, imm)); }
  ori(rd: number, rs1: number, imm: number): this { return this.word(encI(0x13, rd, 6, rs1, imm)); }
  andi(rd: number, rs1: number, imm: number): this { return this.word(encI(0x13, rd, 7, rs1, imm)); }
  slli(rd: number, rs1: number, sh: number): this { return this.word(encI(0x13, rd, 1, rs1, sh)); }
  srli(rd: number, rs1: number, sh: number): this { return this.word(encI(0x13, rd, 5, rs1, sh)); }
  srai(rd: number, rs1: number, sh: number): this { return this.word(encI(0x13, rd, 5, rs1, sh | 0x400)); }
  addiw(rd: number, rs1: number, imm: number): this { return this.word(encI(0x1b, rd, 0, rs1, imm)); }
  slliw(rd: number, rs1: number, sh: number): this { return this.word(encI(0x1b, rd, 1, rs1, sh)); }
  srliw(rd: number, rs1: number, sh: number): this { return this.word(encI(0x1b, rd, 5, rs1, sh)); }
  sraiw(rd: number, rs1: number, sh: number): this { return this.word(encI(0x1b, rd, 5, rs1, sh | 0x400)); }
  op(name: OpName, rd: number, rs1: number, rs2: number): this {
    const [opc, f3, f7] = OPS[name];
    return this.word(encR(opc, rd, f3, rs1, rs2, f7));
  }
  add(rd: number, rs1: number, rs2: number): this { return this.op("add", rd, rs1, rs2); }
  sub(rd: number, rs1: number, rs2: number): this { return this.op("sub", rd, rs1, rs2); }
  load(f3: number, rd: number, rs1: number, imm: number): this { return this.word(encI(0x03, rd, f3, rs1, imm)); }
  ld(rd: number, rs1: number, imm: number): this { return this.load(3, rd, rs1, imm); }
  lw(rd: number, rs1: number, imm: number): this { return this.load(2, rd, rs1, imm); }
  lbu(rd: number, rs1: number, imm: number): this { return this.load(4, rd, rs1, imm); }
  store(f3: number, rs2: number, rs1: number, imm: number): this { return this.word(encS(0x23, f3, rs1, rs2, imm)); }
  sd(rs2: number, rs1: number, imm: number): this { return this.store(3, rs2, rs1, imm); }
  sw(rs2: number, rs1: number, imm: number): this { return this.store(2, rs2, rs1, imm); }
  sb(rs2: number, rs1: number, imm: number): this { return this.store(0, rs2, rs1, imm); }
  fld(fd: number, rs1: number, imm: number): this { return this.word(encI(0x07, fd, 3, rs1, imm)); }
  flw(fd: number, rs1: number, imm: number): this { return this.word(encI(0x07, fd, 2, rs1, imm)); }
  fsd(fs: number, rs1: number, imm: number): this { return this.word(encS(0x27, 3, rs1, fs, imm)); }
  fsw(fs: number, rs1: number, imm: number): this { return this.word(encS(0x27, 2, rs1, fs, imm)); }

  branch(f3: number, rs1: number, rs2: number, target: string | number): this {
    return this.fix(encB(0x63, f3, rs1, rs2, 0), "b", target);
  }
  beq(rs1: number, rs2: number, t: string | number): this { return this.branch(0, rs1, rs2, t); }
  bne(rs1: number, rs2: number, t: string | number): this { return this.branch(1, rs1, rs2, t); }
  blt(rs1: number, rs2: number, t: string | number): this { return this.branch(4, rs1, rs2, t); }
  bge(rs1: number, rs2: number, t: string | number): this { return this.branch(5, rs1, rs2, t); }
  bltu(rs1: number, rs2: number, t: string | number): this { return this.branch(6, rs1, rs2, t); }
  bgeu(rs1: number, rs2: number, t: string | number): this { return this.branch(7, rs1, rs2, t); }
  jal(rd: number, target: string | number): this { return this.fix(encJ(0x6f, rd, 0), "j", target); }
  jalr(rd: number, rs1: number, imm: number): this { return this.word(encI(0x67, rd, 0, rs1, imm)); }

  /** Load any 64-bit constant (lui/addi/slli sequence). */
  li(rd: number, value: bigint | number): this {
    const v = BigInt.asIntN(64, BigInt(value));
    if (v >= -2048n && v < 2048n) return this.addi(rd, 0, Number(v));
    if (v >= -(1n << 31n) && v < (1n << 31n)) {
      const n = Number(v);
      const lo = (n << 20) >> 20;
      const hi = (n - lo) | 0;
      this.lui(rd, hi);
      return lo !== 0 ? this.addiw(rd, rd, lo) : this;
    }
    // Upper part first, then shift in 11-bit chunks (keeps each addi immediate non-negative).
    const low11 = Number(v & 0x7ffn);
    this.li(rd, v >> 11n);
    this.slli(rd, rd, 11);
    return low11 !== 0 ? this.addi(rd, rd, low11) : this;
  }

  // Zicsr / system
  csr(f3: number, rd: number, csr: number, rs1OrImm: number): this { return this.word(encI(0x73, rd, f3, rs1OrImm, csr)); }
  csrrw(rd: number, csr: number, rs1: number): this { return this.csr(1, rd, csr, rs1); }
  csrrs(rd: number, csr: number, rs1: number): this { return this.csr(2, rd, csr, rs1); }
  csrrc(rd: number, csr: number, rs1: number): this { return this.csr(3, rd, csr, rs1); }
  csrrwi(rd: number, csr: number, imm: number): this { return this.csr(5, rd, csr, imm); }
  csrrsi(rd: number, csr: number, imm: number): this { return this.csr(6, rd, csr, imm); }
  csrrci(rd: number, csr: number, imm: number): this { return this.csr(7, rd, csr, imm); }
  ecall(): this { return this.word(0x00000073); }
  ebreak(): this { return this.word(0x00100073); }
  mret(): this { return this.word(0x30200073); }
  sret(): this { return this.word(0x10200073); }
  wfi(): this { return this.word(0x10500073); }
  sfenceVma(rs1 = 0, rs2 = 0): this { return this.word(encR(0x73, 0, 0, rs1, rs2, 0x09)); }
  fence(): this { return this.word(0x0ff0000f); }
  fenceI(): this { return this.word(0x0000100f); }

  /** A-extension: f5 = funct5 (0x02 lr, 0x03 sc, 0x01 swap, 0x00 add, ...), size 4 or 8. */
  amo(f5: number, size: 4 | 8, rd: number, rs1: number, rs2: number): this {
    return this.word(encR(0x2f, rd, size === 4 ? 2 : 3, rs1, rs2, f5 << 2));
  }

  /** Machine code with labels resolved. */
  bytesOut(): Uint8Array {
    const out = Uint8Array.from(this.bytes);
    const dv = new DataView(out.buffer);
    for (const f of this.fixups) {
      const target = this.labels.get(f.label);
      if (target === undefined) throw new Error(`Asm: label "${f.label}" is used but never defined`);
      const off = target - f.at;
      const w = f.kind === "b" ? encB(0x63, (f.word >>> 12) & 7, (f.word >>> 15) & 31, (f.word >>> 20) & 31, off)
        : encJ(0x6f, (f.word >>> 7) & 31, off);
      dv.setUint32(f.at, w >>> 0, true);
    }
    return out;
  }

  private fix(word: number, kind: "b" | "j", target: string | number): this {
    if (typeof target === "number") {
      // Numeric target: byte offset relative to this instruction.
      const w = kind === "b" ? encB(0x63, (word >>> 12) & 7, (word >>> 15) & 31, (word >>> 20) & 31, target)
        : encJ(0x6f, (word >>> 7) & 31, target);
      return this.word(w);
    }
    this.fixups.push({ at: this.bytes.length, label: target, kind, word });
    return this.word(word);
  }
}

export type OpName =
  | "add" | "sub" | "sll" | "slt" | "sltu" | "xor" | "srl" | "sra" | "or" | "and"
  | "mul" | "mulh" | "mulhsu" | "mulhu" | "div" | "divu" | "rem" | "remu"
  | "addw" | "subw" | "sllw" | "srlw" | "sraw" | "mulw" | "divw" | "divuw" | "remw" | "remuw";

const OPS: Record<OpName, [number, number, number]> = {
  add: [0x33, 0, 0], sub: [0x33, 0, 0x20], sll: [0x33, 1, 0], slt: [0x33, 2, 0], sltu: [0x33, 3, 0],
  xor: [0x33, 4, 0], srl: [0x33, 5, 0], sra: [0x33, 5, 0x20], or: [0x33, 6, 0], and: [0x33, 7, 0],
  mul: [0x33, 0, 1], mulh: [0x33, 1, 1], mulhsu: [0x33, 2, 1], mulhu: [0x33, 3, 1],
  div: [0x33, 4, 1], divu: [0x33, 5, 1], rem: [0x33, 6, 1], remu: [0x33, 7, 1],
  addw: [0x3b, 0, 0], subw: [0x3b, 0, 0x20], sllw: [0x3b, 1, 0], srlw: [0x3b, 5, 0], sraw: [0x3b, 5, 0x20],
  mulw: [0x3b, 0, 1], divw: [0x3b, 4, 1], divuw: [0x3b, 5, 1], remw: [0x3b, 6, 1], remuw: [0x3b, 7, 1],
};
