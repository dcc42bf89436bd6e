// Human-readable description of one instruction for test failure messages: raw hex, the
// compressed expansion, the major opcode, its fields by format, and a mnemonic where known.
import { RVC_TABLE } from "../rvc.js";

const hex = (v: number, digits: number): string => "0x" + (v >>> 0).toString(16).padStart(digits, "0");

const OPCODE_NAMES: Record<number, string> = {
  0x03: "LOAD", 0x07: "LOAD-FP", 0x0f: "MISC-MEM", 0x13: "OP-IMM", 0x17: "AUIPC", 0x1b: "OP-IMM-32", 0x23: "STORE",
  0x27: "STORE-FP", 0x2f: "AMO", 0x33: "OP", 0x37: "LUI", 0x3b: "OP-32", 0x43: "MADD", 0x47: "MSUB", 0x4b: "NMSUB",
  0x4f: "NMADD", 0x53: "OP-FP", 0x63: "BRANCH", 0x67: "JALR", 0x6f: "JAL", 0x73: "SYSTEM",
};

const LOADS = ["lb", "lh", "lw", "ld", "lbu", "lhu", "lwu", "?"];
const STORES = ["sb", "sh", "sw", "sd", "?", "?", "?", "?"];
const BRANCHES = ["beq", "bne", "?", "?", "blt", "bge", "bltu", "bgeu"];
const OP_IMM = ["addi", "slli", "slti", "sltiu", "xori", "srli/srai", "ori", "andi"];
const OP_BASE = ["add/sub", "sll", "slt", "sltu", "xor", "srl/sra", "or", "and"];
const OP_M = ["mul", "mulh", "mulhsu", "mulhu", "div", "divu", "rem", "remu"];
const AMOS: Record<number, string> = {
  0x00: "amoadd", 0x01: "amoswap", 0x02: "lr", 0x03: "sc", 0x04: "amoxor", 0x08: "amoor", 0x0c: "amoand",
  0x10: "amomin", 0x14: "amomax", 0x18: "amominu", 0x1c: "amomaxu",
};

function mnemonic(insn: number): string {
  const op = insn & 0x7f, f3 = (insn >>> 12) & 7, f7 = insn >>> 25;
  switch (op) {
    case 0x03: return LOADS[f3]!;
    case 0x23: return STORES[f3]!;
    case 0x07: return f3 === 2 ? "flw" : f3 === 3 ? "fld" : "?";
    case 0x27: return f3 === 2 ? "fsw" : f3 === 3 ? "fsd" : "?";
    case 0x63: return BRANCHES[f3]!;
    case 0x13: return OP_IMM[f3]!;
    case 0x1b: return ["addiw", "slliw", "?", "?", "?", "srliw/sraiw", "?", "?"][f3]!;
    case 0x33: return f7 === 1 ? OP_M[f3]! : OP_BASE[f3]!;
    case 0x3b: return f7 === 1 ? OP_M[f3]! + "w" : ["addw/subw", "sllw", "?", "?", "?", "srlw/sraw", "?", "?"][f3]!;
    case 0x2f: return (AMOS[insn >>> 27] ?? "amo?") + (f3 === 2 ? ".w" : f3 === 3 ? ".d" : ".?");
    case 0x37: return "lui";
    case 0x17: return "auipc";
    case 0x6f: return "jal";
    case 0x67: return "jalr";
    case 0x0f: return f3 === 0 ? "fence" : f3 === 1 ? "fence.i" : "?";
    case 0x73:
      if (f3 === 0) {
        const names: Record<number, string> = { 0x00000073: "ecall", 0x00100073: "ebreak", 0x30200073: "mret", 0x10200073: "sret", 0x10500073: "wfi" };
        return names[insn >>> 0] ?? (f7 === 0x09 ? "sfence.vma" : "system?");
      }
      return ["?", "csrrw", "csrrs", "csrrc", "?", "csrrwi", "csrrsi", "csrrci"][f3]!;
    default: return OPCODE_NAMES[op]?.toLowerCase() ?? "?";
  }
}

function fields(insn: number): string {
  const op = insn & 0x7f;
  const rd = (insn >>> 7) & 31, rs1 = (insn >>> 15) & 31, rs2 = (insn >>> 20) & 31, f3 = (insn >>> 12) & 7;
  const iImm = insn >> 20;
  const sImm = ((insn >> 25) << 5) | ((insn >>> 7) & 31);
  const bImm = ((insn >> 31) << 12) | (((insn >>> 7) & 1) << 11) | (((insn >>> 25) & 0x3f) << 5) | (((insn >>> 8) & 0xf) << 1);
  const jImm = ((insn >> 31) << 20) | (((insn >>> 12) & 0xff) << 12) | (((insn >>> 20) & 1) << 11) | (((insn >>> 21) & 0x3ff) << 1);
  switch (op) {
    case 0x37: case 0x17: return `rd=x${rd} imm=${hex(insn & 0xfffff000, 8)}`;
    case 0x6f: return `rd=x${rd} offset=${jImm}`;
    case 0x63: return `rs1=x${rs1} rs2=x${rs2} funct3=${f3} offset=${bImm}`;
    case 0x23: case 0x27: return `rs1=x${rs1} rs2=${op === 0x27 ? "f" : "x"}${rs2} funct3=${f3} imm=${sImm}`;
    case 0x03: case 0x07: case 0x13: case 0x1b: case 0x67: case 0x0f:
      return `rd=${op === 0x07 ? "f" : "x"}${rd} rs1=x${rs1} funct3=${f3} imm=${iImm} (funct6=${hex(insn >>> 26, 2)})`;
    case 0x73: return `rd=x${rd} rs1/uimm=${rs1} funct3=${f3} csr=${hex(insn >>> 20, 3)}`;
    case 0x2f: return `rd=x${rd} rs1=x${rs1} rs2=x${rs2} funct3=${f3} funct5=${hex(insn >>> 27, 2)} aq=${(insn >>> 26) & 1} rl=${(insn >>> 25) & 1}`;
    default: return `rd=${rd} rs1=${rs1} rs2=${rs2} funct3=${f3} funct7=${hex(insn >>> 25, 2)}`;
  }
}

/** E.g. `0x4501 (compressed; expands to 0x00000513) addi [OP-IMM] rd=x10 rs1=x0 funct3=0 imm=0`. */
export function describeInsn(raw: number, size: 2 | 4): string {
  let insn = raw | 0;
  let head: string;
  if (size === 2) {
    insn = RVC_TABLE[raw & 0xffff]!;
    if (insn === -1) return `${hex(raw & 0xffff, 4)} (compressed; illegal encoding)`;
    head = `${hex(raw & 0xffff, 4)} (compressed; expands to ${hex(insn, 8)})`;
  } else {
    head = hex(insn, 8);
  }
  const op = insn & 0x7f;
  return `${head} ${mnemonic(insn)} [${OPCODE_NAMES[op] ?? "opcode " + hex(op, 2)}] ${fields(insn)}`;
}
