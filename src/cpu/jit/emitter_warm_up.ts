// A page of synthetic guest code with an instance of every kind of instruction the compiler does,
// for warming V8's type feedback of the block scanner and the emitter before the first real
// compile. TurboFan optimizes them as soon as they are hot; each instruction path first seen
// afterwards ("insufficient type feedback") deoptimized and recompiled the emitter, ~70 ms on V8's
// pool thread each, six times a boot, beside the same for the scanner's small functions.
import { encB, encI, encJ, encR, encS, encU } from "../encode.js";
import { MAX_BLOCK, blockLength, canStartBlock, planBlocks } from "./block_scan.js";
import { emitModule } from "./compile_block.js";

const OP_IMM = 0x13, OP_IMM_32 = 0x1b, OP = 0x33, OP_32 = 0x3b, LOAD = 0x03, STORE = 0x23, BRANCH = 0x63;
const SSTATUS = 0x100;

/** The code, as halfwords of one page; its block starts; the first halfword of the "next page" for the instruction across the end. */
export interface WarmUpPage {
  u16: Uint16Array;
  work: number[];
  /** Offsets standing in for blocks of an earlier module (linked as imports): a Set, as the compile thread passes. */
  have: Set<number>;
  tail: number;
  /** The page offset of every instruction. */
  offsets: number[];
}

/** Registers: x10 and x11 point at data (anchors), x2 at a stack; x5-x9 and x12-x15 hold values. */
export function aluKinds(w: (insn: number) => void): void {
  w(encU(0x37, 15, 0x12345000)); w(encU(0x17, 6, 0x1000)); // LUI, AUIPC (x5 is left to vary between rounds)
  for (const f3 of [0, 2, 3, 4, 6, 7]) w(encI(OP_IMM, 7, f3, 5, -77)); // ADDI SLTI SLTIU XORI ORI ANDI
  w(encI(OP_IMM, 0, 0, 0, 0)); // a nop (rd x0)
  w(encI(OP_IMM, 8, 1, 7, 13)); w(encI(OP_IMM, 8, 5, 7, 45)); w(encI(OP_IMM, 9, 5, 8, 0x400 | 3)); // SLLI SRLI SRAI
  w(encI(OP_IMM_32, 12, 0, 9, 100)); w(encI(OP_IMM_32, 12, 1, 9, 5)); w(encI(OP_IMM_32, 13, 5, 12, 7)); w(encI(OP_IMM_32, 13, 5, 12, 0x400 | 7));
  for (const f3 of [0, 1, 2, 3, 4, 5, 6, 7]) w(encR(OP, 14, f3, 7, 8, 0)); // ADD SLL SLT SLTU XOR SRL OR AND
  w(encR(OP, 14, 0, 7, 8, 0x20)); w(encR(OP, 14, 5, 7, 8, 0x20)); // SUB SRA
  for (let f3 = 0; f3 < 8; f3++) w(encR(OP, 15, f3, 14, 9, 1)); // MUL MULH MULHSU MULHU DIV DIVU REM REMU
  for (const f3 of [0, 1, 5]) w(encR(OP_32, 12, f3, 14, 9, 0)); // ADDW SLLW SRLW
  w(encR(OP_32, 12, 0, 14, 9, 0x20)); w(encR(OP_32, 12, 5, 14, 9, 0x20)); // SUBW SRAW
  for (const f3 of [0, 4, 5, 6, 7]) w(encR(OP_32, 13, f3, 12, 14, 1)); // MULW DIVW DIVUW REMW REMUW
  // Zbb: CLZ CTZ CPOP SEXT.B SEXT.H, RORI ORC.B REV8, CLZW CTZW CPOPW RORIW, ANDN ORN XNOR, MIN(U) MAX(U), ROL ROR, ROLW RORW ZEXT.H
  for (const sub of [0, 1, 2, 4, 5]) w(encI(OP_IMM, 14, 1, 7, 0x600 | sub));
  for (const imm of [0x600 | 13, 0x600 | 45, 0x287, 0x6b8]) w(encI(OP_IMM, 14, 5, 8, imm));
  for (const sub of [0, 1, 2]) w(encR(OP_IMM_32, 13, 1, 9, sub, 0x30));
  w(encR(OP_IMM_32, 13, 5, 9, 7, 0x30));
  for (const f3 of [4, 6, 7]) w(encR(OP, 14, f3, 7, 8, 0x20));
  for (const f3 of [4, 5, 6, 7]) w(encR(OP, 14, f3, 7, 9, 5));
  for (const f3 of [1, 5]) { w(encR(OP, 14, f3, 7, 8, 0x30)); w(encR(OP_32, 13, f3, 12, 8, 0x30)); }
  w(encR(OP_32, 13, 4, 12, 0, 4));
}

/** Loads, stores, FP loads and stores, AMOs, LR/SC, FENCE and an sstatus read (registers as aluKinds). */
export function memoryKinds(w: (insn: number) => void): void {
  for (const f3 of [0, 1, 2, 3, 4, 5, 6]) w(encI(LOAD, 12, f3, 10, 8 * f3)); // loads from one base (anchors)
  w(encI(LOAD, 13, 3, 10, 4000)); // out of the anchor's page: the translate function
  for (let f3 = 0; f3 < 4; f3++) w(encS(STORE, f3, 11, 13, 16 * f3)); // stores from another base
  w(encS(STORE, 3, 2, 13, -8)); w(encI(LOAD, 14, 3, 2, -8)); // the stack
  w(encI(0x07, 1, 2, 11, 0)); w(encI(0x07, 2, 3, 11, 8)); w(encS(0x27, 2, 11, 1, 16)); w(encS(0x27, 3, 11, 2, 24)); // FLW FLD FSW FSD
  for (const f5 of [0x01, 0x00, 0x04, 0x0c, 0x08]) for (const f3 of [2, 3]) w(encR(0x2f, 15, f3, 11, 14, f5 << 2)); // AMOs
  for (const f3 of [2, 3]) { w(encR(0x2f, 15, f3, 11, 0, 2 << 2)); w(encR(0x2f, 15, f3, 11, 14, 3 << 2)); } // LR SC
  w(encI(0x0f, 0, 0, 0, 0x0ff)); // FENCE
  w(encI(0x73, 12, 2, 0, SSTATUS)); // csrr sstatus
}

export function warmUpPage(): WarmUpPage {
  const words: Array<number | { c: number }> = [];
  const w = (insn: number): void => { words.push(insn | 0); };
  const c = (half: number): void => { words.push({ c: half }); };
  aluKinds(w);
  const loopHead = words.length;
  memoryKinds(w);
  w(encB(BRANCH, 1, 7, 8, -4 * (words.length - loopHead))); // back to the loop head: a loop inside the block
  for (const f3 of [0, 4, 5, 6, 7]) w(encB(BRANCH, f3, 12, 13, 8)); // forward: the next block
  const call = words.length;
  w(encJ(0x6f, 1, 16)); // a call (JAL), to a block of an "earlier module" (`have`)
  w(encI(0x73, 0, 3, 14, SSTATUS)); // csrc sstatus: the slice ends
  w(encI(0x0f, 0, 1, 0, 0)); // FENCE.I (ends its block)
  w(encI(0x67, 0, 0, 1, 0)); // ret (JALR)
  const compressed = words.length;
  // Compressed forms as the kernel has them: add, bnez, ld/sd from sp, addi sp, li, mv, addw, andi, j, ret.
  for (const h of [0x9736, 0x60a2, 0x6402, 0x0141, 0x4c2d, 0x8a26, 0x2485, 0x69e6, 0x0785, 0x8b1d, 0x6310, 0x4a01, 0xe605, 0xa801, 0x8082]) c(h);
  const u16 = new Uint16Array(2048);
  const offsets: number[] = [];
  let half = 0;
  for (const x of words) {
    offsets.push(half * 2);
    if (typeof x === "number") { u16[half++] = x & 0xffff; u16[half++] = x >>> 16; } else u16[half++] = x.c;
  }
  // An instruction across the page end, guarded on the next page's halfword.
  const across = encI(OP_IMM, 5, 0, 5, 1);
  u16[2047] = across & 0xffff;
  const starts = [0, offsets[compressed]!, 4094];
  const linked = offsets[call]! + 16;
  return { u16, work: starts, have: new Set([linked]), tail: across >>> 16, offsets };
}

/**
 * A page of one instruction of every major opcode and funct3 (with each OP/OP-32 funct7 the
 * compiler knows and one it does not, and csrs on sstatus and on another CSR), then compressed
 * halfwords of every quadrant: the scanner also classifies what it does not compile.
 */
function everyOpcodePage(): Uint16Array {
  const u16 = new Uint16Array(2048);
  let half = 0;
  const put = (insn: number): void => { u16[half++] = insn & 0xffff; u16[half++] = insn >>> 16; };
  for (let op = 0; op < 32; op++) {
    for (let f3 = 0; f3 < 8; f3++) {
      const base = (op << 2) | 3 | (f3 << 12) | (5 << 7) | (6 << 15) | (7 << 20);
      put(base);
      if (op === 12 || op === 14) for (const f7 of [1, 0x20, 0x05]) put(base | (f7 << 25));
      if (op === 28) { put(base | (SSTATUS << 20)); put((base & 0xfffff) | (0x300 << 20)); }
      if (op === 11) for (const f5 of [0, 1, 2, 3, 4, 8, 12, 16, 28]) put(base | (f5 << 27));
    }
  }
  for (let h = 1; half < 2048; h += 97) u16[half++] = h & 0xffff & ~(((h & 3) === 3 ? 1 : 0)); // 16-bit forms only
  return u16;
}

let scannerWarm = false;

/** warmUpBlockScan once per thread (type feedback is per isolate; a boot builds two block caches). */
export function warmUpBlockScanOnce(): void {
  if (scannerWarm) return;
  scannerWarm = true;
  warmUpBlockScan();
}

/** The vCPU thread's share: the scanner's checks at every instruction of both pages (the interpreter asks them at missed entries). */
export function warmUpBlockScan(p = warmUpPage()): void {
  // A lookup naming every third entry a block start, as BlockCache.runLength passes its own.
  const lookup = new Int32Array(2 * 2048);
  p.offsets.forEach((po, i) => { if (i % 3 === 0) lookup[(po >>> 1) << 1] = po + 1; });
  for (const po of p.offsets) {
    canStartBlock(p.u16, po, p.tail);
    blockLength(p.u16, po);
    blockLength(p.u16, po, lookup, 2047);
  }
  const every = everyOpcodePage();
  for (let po = 0; po < 4094; po += 2) canStartBlock(every, po);
}

/** Emits the warm-up page's module `rounds` times (code thrown away); returns the bytes of the last, for tests. */
export function warmUpEmitter(wasmPages: number, rounds = 3): Uint8Array<ArrayBuffer> {
  const p = warmUpPage();
  let wasm = new Uint8Array(new ArrayBuffer(0));
  for (let i = 0; i < rounds; i++) {
    warmUpBlockScan(p);
    // A page's first module links nothing: the objects it builds have other shapes ("wrong map" deopts).
    const have = i % 2 === 0 ? p.have : new Set<number>();
    wasm = emitModule(planBlocks(p.u16, 0, [...p.work], have, MAX_BLOCK, p.tail), wasmPages, have, []);
  }
  return wasm;
}
