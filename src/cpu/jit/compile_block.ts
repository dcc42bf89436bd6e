// Compiles hot blocks of one guest code page (RV64IM integer instructions, loads and stores, the
// read-modify-write AMOs) into wasm functions, one per block, with the fast loop's contract: a block
// executes instructions while it can and stops, without side effects, before any it cannot do (a
// TLB miss, a misaligned access, an instruction it does not compile): the interpreter then runs
// that one. So compiled code never traps, and every exception stays the interpreter's, exact.
//
// fn(vpage: i64, st: i32, rem: i32, token: v128) -> i32 runs the block at its page offset in virtual page vpage,
// for the hart whose state block is at st (hart_layout.ts; its W_JIT_DS word names the data TLB
// set), with at most `rem` instructions left to run, and returns what is left with the next pc and
// HART_JIT_STATUS stored. A block jumps straight to another block compiled in the same module (a
// wasm tail call); leaving it otherwise goes through the dispatcher's `go` (jit/dispatcher.ts).
// Within a block a guest register lives in a wasm local from its first use (read from the state
// block once; writes go through to it), so the state block is exact at every exit.
// Code is position-independent: it serves every virtual mapping of its physical page and every
// hart of its thread. One function per block keeps V8's work per function small: its optimizing
// tier then recompiles only the blocks that are hot, not whole pages.
import { MSTATUS_FS, MSTATUS_HI_UXL, MSTATUS_SIE, SSTATUS_MASK } from "../constants.js";
import * as HL from "../hart_layout.js";
import { ByteWriter, I32, I64, OP, VOID, buildModule, type FuncType, type FunctionBody } from "./wasm_module.js";
import { Emitter, FIXED_LOCALS, L_A, L_ADDR, L_ANCHOR, L_B, L_C, L_HB, L_LO, L_OFF, L_P, L_T, P_REM, P_ST, P_VPAGE } from "./block_emitter.js";
import { BLOCK_FN_TYPE } from "./dispatcher.js";
import { emitZbb, isZbb } from "./emit_zbb.js";
import { AMO_RMW, NO_TAIL, endsBlock, planBlocks, type BlockShape, type PageOffsets } from "./block_scan.js";


const R_TAG_LO = HL.TLB_R_TAG_LO * HL.TLB_ARRAY_BYTES, R_TAG_HI = HL.TLB_R_TAG_HI * HL.TLB_ARRAY_BYTES, R_OFF = HL.TLB_R_OFF * HL.TLB_ARRAY_BYTES;
const W_TAG_LO = HL.TLB_W_TAG_LO * HL.TLB_ARRAY_BYTES, W_TAG_HI = HL.TLB_W_TAG_HI * HL.TLB_ARRAY_BYTES, W_OFF = HL.TLB_W_OFF * HL.TLB_ARRAY_BYTES;


const TWO63 = 1n << 63n;

/**
 * Computes the TLB pointer for the address in L_ADDR and leaves in local `off` (L_OFF) the RAM
 * offset and in `lo` (L_LO) the address's low word, side exiting (pc at the instruction at page
 * offset `at`, k retired, status 1) on a miss, on an access across the page's end, and for an
 * atomic (`atomic`: a wasm atomic traps unless aligned, the interpreter raises) a misaligned one.
 * The tag is compared with the page of the access's last byte: the entry at the first byte's index
 * can only hold that page if both bytes are in it, so one test covers the page end, and a plain
 * access misaligned inside its page runs here (wasm loads and stores need no alignment) as the
 * interpreter's byte-wise slow path would (a kernel memcpy to an unaligned buffer: ~58,000
 * hand-backs a boot).
 */
function emitTranslate(e: Emitter, write: boolean, size: number, at: number, k: number, lo = L_LO, off = L_OFF, atomic = false): void {
  // Tags compared by xor and or'ed: one test and one branch.
  e.get(L_ADDR).op(OP.i32WrapI64).tee(lo)
    .i32(12).op(OP.i32ShrU).i32(2047).op(OP.i32And).i32(2).op(OP.i32Shl).ds().op(OP.i32Add).tee(L_P)
    .mem(OP.i32Load, 2, write ? W_TAG_LO : R_TAG_LO).get(lo);
  if (size > 1) e.i32(size - 1).op(OP.i32Add);
  e.i32(-4096).op(OP.i32And).op(OP.i32Xor)
    .get(L_P).mem(OP.i32Load, 2, write ? W_TAG_HI : R_TAG_HI).get(L_ADDR).i64(32).op(OP.i64ShrU).op(OP.i32WrapI64).op(OP.i32Xor)
    .op(OP.i32Or);
  if (atomic) e.get(lo).i32(size - 1).op(OP.i32And).op(OP.i32Or);
  // No call to the translate function (way 1) here: a call on the miss arm made TurboFan spill the
  // block's cached registers on the hit path (the shell loop ~5% slower); the interpreter swaps.
  e.if_().handBack(at, k).end_();
  e.get(L_P).mem(OP.i32Load, 2, write ? W_OFF : R_OFF).get(lo).i32(0xfff).op(OP.i32And).op(OP.i32Add).set(off);
}

/** The type of a module's translate functions: (address, state block, size - 1) -> RAM offset, or -1 on a miss or an access across the page's end. */
const TRANSLATE_FN_TYPE: FuncType = { params: [I64, I32, I32], results: [I32] };

/** The module's translate functions (the same in every module: emitted once). */
let translateFns: [FunctionBody, FunctionBody] | null = null;

/**
 * The body of a module's translate function for loads or stores (`write`), as emitTranslate's
 * lookup of a plain access, then way 1's: a hit there swaps the two ways' entries, as the
 * interpreter's translate() does, so both tiers keep the same entries (and drop the same ones).
 */
function emitTranslateFn(write: boolean): FunctionBody {
  const e = new Emitter();
  const ADDR = 0, ST = 1, LAST = 2, LO = 3, P = 4, TAG = 5, HI = 6, OFF1 = 7;
  const tagLo = write ? W_TAG_LO : R_TAG_LO, tagHi = write ? W_TAG_HI : R_TAG_HI, offs = write ? W_OFF : R_OFF;
  const WAY = HL.TLB_WAY_BYTES;
  e.get(ADDR).op(OP.i32WrapI64).tee(LO)
    .i32(12).op(OP.i32ShrU).i32(2047).op(OP.i32And).i32(2).op(OP.i32Shl)
    .get(ST).mem(OP.i32Load, 2, HL.HART_WORDS + 4 * HL.W_JIT_DS).op(OP.i32Add).set(P);
  e.get(LO).get(LAST).op(OP.i32Add).i32(-4096).op(OP.i32And).set(TAG);
  e.get(ADDR).i64(32).op(OP.i64ShrU).op(OP.i32WrapI64).set(HI);
  e.get(P).mem(OP.i32Load, 2, tagLo).get(TAG).op(OP.i32Xor).get(P).mem(OP.i32Load, 2, tagHi).get(HI).op(OP.i32Xor).op(OP.i32Or);
  e.op(OP.i32Eqz).op(OP.if, VOID);
  e.get(P).mem(OP.i32Load, 2, offs).get(LO).i32(0xfff).op(OP.i32And).op(OP.i32Add).op(OP.return);
  e.op(OP.end);
  e.get(P).mem(OP.i32Load, 2, WAY + tagLo).get(TAG).op(OP.i32Xor).get(P).mem(OP.i32Load, 2, WAY + tagHi).get(HI).op(OP.i32Xor).op(OP.i32Or);
  e.op(OP.if, VOID).i32(-1).op(OP.return).op(OP.end);
  // Way 1 holds the page: its entry and way 0's change places.
  e.get(P).mem(OP.i32Load, 2, WAY + offs).set(OFF1);
  e.get(P).get(P).mem(OP.i32Load, 2, tagLo).mem(OP.i32Store, 2, WAY + tagLo);
  e.get(P).get(P).mem(OP.i32Load, 2, tagHi).mem(OP.i32Store, 2, WAY + tagHi);
  e.get(P).get(P).mem(OP.i32Load, 2, offs).mem(OP.i32Store, 2, WAY + offs);
  e.get(P).get(TAG).mem(OP.i32Store, 2, tagLo);
  e.get(P).get(HI).mem(OP.i32Store, 2, tagHi);
  e.get(P).get(OFF1).mem(OP.i32Store, 2, offs);
  e.get(OFF1).get(LO).i32(0xfff).op(OP.i32And).op(OP.i32Add);
  return { locals: [I32, I32, I32, I32, I32], body: e.w, type: 1 };
}

/**
 * The local holding the RAM offset of x[base] + imm for a load (or store, `write`) of `size`
 * bytes at page offset `at`, after `k` retired. An earlier access of the block from the same
 * base register, unchanged since, in the same direction, looked its page up already (the
 * anchor): this one's address differs from that one's by a constant, so when it falls in the same
 * page, its RAM offset is the anchor's plus that constant, with no TLB lookup (stack
 * frames, struct fields); otherwise the module's translate function looks it up (a frame across
 * a page end would hand back on every call). Same direction
 * only, so the reuse relies on no TLB entry the interpreter would not have used itself.
 */
function emitAccess(e: Emitter, base: number, imm: number, write: boolean, size: number, at: number, k: number): number {
  const a = e.cond === 0 ? e.anchorFor(base, write) : -1;
  if (a >= 0) {
    const d = imm - e.anchorImm[a]!, lo = L_ANCHOR + 2 * a;
    if (d === 0 && size <= e.anchorSize[a]!) return lo + 1; // the anchor's own bytes, or a part of them
    e.get(lo).i32(0xfff).op(OP.i32And).i32(d).op(OP.i32Add); // this address's offset in the anchor's page
    e.i32(4096 - size).op(OP.i32GtU);
    e.if_(); // not all of it in the anchor's page: a full lookup
    e.cond++;
    e.reg(base);
    if (imm !== 0) e.i64(imm).op(OP.i64Add); // Liftoff does not fold an add of zero
    e.get(P_ST).i32(size - 1).op(OP.call).u(e.translateIndex + (write ? 1 : 0));
    e.tee(L_OFF).i32(-1).op(OP.i32Eq).if_().handBack(at, k).end_();
    e.usedTranslate = true;
    e.op(OP.else);
    e.get(lo + 1).i32(d).op(OP.i32Add).set(L_OFF);
    e.cond--;
    e.end_();
    return L_OFF;
  }
  e.reg(base);
  if (imm !== 0) e.i64(imm).op(OP.i64Add);
  e.set(L_ADDR);
  if (base === 0 || e.cond !== 0) {
    emitTranslate(e, write, size, at, k);
    return L_OFF;
  }
  const lo = L_ANCHOR + 2 * e.newAnchor(base, imm, size, write);
  emitTranslate(e, write, size, at, k, lo, lo + 1);
  return lo + 1;
}

/**
 * Pushes the high 64 bits of the 128-bit product of L_A and L_B: MULH (f3 1, signed), MULHSU (2),
 * MULHU (3). Unsigned from four 32x32 products, then the signed corrections (a<0: -b; b<0: -a).
 */
function emitMulHigh(e: Emitter, f3: number): void {
  const lo = (l: number): void => { e.get(l).i64(0xffffffff).op(OP.i64And); };
  const hi = (l: number): void => { e.get(l).i64(32).op(OP.i64ShrU); };
  lo(L_A); hi(L_B); e.op(OP.i64Mul).set(L_T); // a.lo * b.hi
  hi(L_A); lo(L_B); e.op(OP.i64Mul).set(L_C); // a.hi * b.lo
  lo(L_A); lo(L_B); e.op(OP.i64Mul).i64(32).op(OP.i64ShrU); // the middle column's sum
  e.get(L_T).i64(0xffffffff).op(OP.i64And).op(OP.i64Add).get(L_C).i64(0xffffffff).op(OP.i64And).op(OP.i64Add);
  e.i64(32).op(OP.i64ShrU);
  hi(L_A); hi(L_B); e.op(OP.i64Mul).op(OP.i64Add);
  e.get(L_T).i64(32).op(OP.i64ShrU).op(OP.i64Add).get(L_C).i64(32).op(OP.i64ShrU).op(OP.i64Add);
  if (f3 !== 3) e.get(L_A).i64(63).op(OP.i64ShrS).get(L_B).op(OP.i64And).op(OP.i64Sub);
  if (f3 === 1) e.get(L_B).i64(63).op(OP.i64ShrS).get(L_A).op(OP.i64And).op(OP.i64Sub);
}

const MSTATUS = HL.HART_WORDS + 4 * HL.W_MSTATUS;

/** Hands the instruction at `at` to the interpreter while mstatus.FS is Off (it raises illegal-instruction). */
function emitFpuOnCheck(e: Emitter, at: number, k: number): void {
  e.get(P_ST).mem(OP.i32Load, 2, MSTATUS).i32(MSTATUS_FS).op(OP.i32And).op(OP.i32Eqz).if_().handBack(at, k).end_();
}

const W_RES = (w: number): number => HL.HART_WORDS + 4 * w;
const RES_ADDR = HL.HART_DOUBLES + 8 * HL.D_RES_ADDR;

/**
 * LR (read TLB) or SC (write TLB), as the interpreter's atomicAt: LR loads atomically and records
 * the reservation (RAM offset, size, the value read); SC succeeds only on a matching reservation
 * and a compare-and-swap against that value, and always drops the reservation.
 */
function emitLrSc(e: Emitter, lr: boolean, wide: boolean, rd: number, rs1: number, rs2: number, at: number, k: number): void {
  const size = wide ? 8 : 4, align = wide ? 3 : 2;
  e.reg(rs1).set(L_ADDR);
  emitTranslate(e, !lr, size, at, k, L_LO, L_OFF, true);
  if (lr) {
    e.get(L_OFF).op(0xfe).u(wide ? 0x11 : 0x10).u(align).u(0); // i64/i32.atomic.load
    if (!wide) e.op(OP.i64ExtendI32S);
    e.set(L_T);
    if (rd !== 0) e.get(L_T).setReg(rd);
    e.get(P_ST).i32(1).mem(OP.i32Store, 2, W_RES(HL.W_RES_VALID));
    e.get(P_ST).get(L_OFF).op(OP.f64ConvertI32U).mem(OP.f64Store, 3, RES_ADDR);
    e.get(P_ST).get(L_T).op(OP.i32WrapI64).mem(OP.i32Store, 2, W_RES(HL.W_RES_LO));
    e.get(P_ST).get(L_T).i64(32).op(OP.i64ShrU).op(OP.i32WrapI64).mem(OP.i32Store, 2, W_RES(HL.W_RES_HI));
    e.get(P_ST).i32(size).mem(OP.i32Store, 2, W_RES(HL.W_RES_SIZE));
    return;
  }
  // the reservation matches: valid, same RAM offset, same size
  e.get(P_ST).mem(OP.i32Load, 2, W_RES(HL.W_RES_VALID)).i32(0).op(OP.i32Ne);
  e.get(P_ST).mem(OP.f64Load, 3, RES_ADDR).get(L_OFF).op(OP.f64ConvertI32U).op(OP.f64Eq).op(OP.i32And);
  e.get(P_ST).mem(OP.i32Load, 2, W_RES(HL.W_RES_SIZE)).i32(size).op(OP.i32Eq).op(OP.i32And);
  e.reg(rs2).set(L_C); // before the conditional arm: a first read there would not be cached
  e.op(OP.if, I32);
  e.cond++;
  // the value LR read, then the compare-and-swap against it
  if (wide) {
    e.get(P_ST).mem(OP.i32Load, 2, W_RES(HL.W_RES_LO)).op(OP.i64ExtendI32U);
    e.get(P_ST).mem(OP.i32Load, 2, W_RES(HL.W_RES_HI)).op(OP.i64ExtendI32S).i64(32).op(OP.i64Shl).op(OP.i64Or).set(L_T);
    e.get(L_OFF).get(L_T).get(L_C).op(0xfe).u(0x49).u(3).u(0).get(L_T).op(OP.i64Eq);
  } else {
    e.get(P_ST).mem(OP.i32Load, 2, W_RES(HL.W_RES_LO)).op(OP.i64ExtendI32S).set(L_T);
    e.get(L_OFF).get(L_T).op(OP.i32WrapI64).get(L_C).op(OP.i32WrapI64).op(0xfe).u(0x48).u(2).u(0).get(L_T).op(OP.i32WrapI64).op(OP.i32Eq);
  }
  e.cond--;
  e.op(OP.else).i32(0).op(OP.end).set(L_LO);
  e.get(P_ST).i32(0).mem(OP.i32Store, 2, W_RES(HL.W_RES_VALID));
  if (rd !== 0) e.get(L_LO).op(OP.i32Eqz).op(OP.i64ExtendI32U).setReg(rd);
}

/**
 * csrrs/csrrc/csrrsi/csrrci on sstatus at page offset `at`, as csr.ts does them: from S-mode or
 * above (else the interpreter raises), rd gets sstatus (mstatus under SSTATUS_MASK, UXL, SD when
 * FS is dirty). A write that would change a bit other than SIE goes to the interpreter (it may
 * flush TLBs); otherwise the block ends after it with JIT_SLICE_END, where the interpreter ends
 * its slice, so a pending interrupt it enabled is taken there.
 */
function emitSstatus(e: Emitter, insn: number, at: number, ilen: number, k: number): void {
  const rd = (insn >>> 7) & 31, rs1 = (insn >>> 15) & 31, f3 = (insn >>> 12) & 7;
  const write = rs1 !== 0;
  e.get(P_ST).mem(OP.i32Load, 2, HL.HART_WORDS + 4 * HL.W_PRIV).op(OP.i32Eqz).if_().handBack(at, k).end_();
  if (write) { // L_B: the sstatus bits to set or clear; anything but SIE goes to the interpreter
    if (f3 >= 4) e.i64(rs1); else e.reg(rs1);
    e.i64(SSTATUS_MASK).op(OP.i64And).tee(L_B).i64(MSTATUS_SIE).op(OP.i64Or).i64(MSTATUS_SIE).op(OP.i64Ne).if_().handBack(at, k).end_();
  }
  e.get(P_ST).mem(OP.i32Load, 2, MSTATUS).set(L_LO);
  if (rd !== 0) {
    e.get(L_LO).i32(SSTATUS_MASK).op(OP.i32And).op(OP.i64ExtendI32U);
    e.i32(MSTATUS_HI_UXL | 0x80000000).i32(MSTATUS_HI_UXL).get(L_LO).i32(MSTATUS_FS).op(OP.i32And).i32(MSTATUS_FS).op(OP.i32Eq).op(OP.select);
    e.op(OP.i64ExtendI32U).i64(32).op(OP.i64Shl).op(OP.i64Or).setReg(rd);
  }
  if (!write) return;
  e.get(P_ST).get(L_LO).get(L_B).op(OP.i32WrapI64);
  if ((f3 & 3) === 2) e.op(OP.i32Or); // csrrs(i): set
  else e.i32(-1).op(OP.i32Xor).op(OP.i32And); // csrrc(i): clear
  e.mem(OP.i32Store, 2, MSTATUS);
  e.flush(); // the slice ends after this instruction (rd written back first)
  e.get(P_ST).get(P_VPAGE).i64(at + ilen).op(OP.i64Add).op(OP.f64ConvertI64S).mem(OP.f64Store, 3, HL.HART_PC);
  e.get(P_ST).i32(HL.JIT_SLICE_END).mem(OP.i32Store, 2, HL.HART_JIT_STATUS);
  e.remAfter(k + 1).op(OP.return);
}

/** Pushes the 64-bit division result of L_A / L_B with RISC-V's answers for /0 and overflow. */
function emitDiv64(e: Emitter, f3: number): void {
  const signed = (f3 & 1) === 0, rem = f3 >= 6;
  e.get(L_B).op(OP.i64Eqz).op(OP.if, I64);
  if (rem) e.get(L_A); else e.i64(-1);
  e.op(OP.else);
  if (signed) {
    e.get(L_A).i64(-TWO63).op(OP.i64Eq).get(L_B).i64(-1).op(OP.i64Eq).op(OP.i32And).op(OP.if, I64);
    if (rem) e.i64(0); else e.get(L_A);
    e.op(OP.else).get(L_A).get(L_B).op(rem ? OP.i64RemS : OP.i64DivS).op(OP.end);
  } else {
    e.get(L_A).get(L_B).op(rem ? OP.i64RemU : OP.i64DivU);
  }
  e.op(OP.end);
}

/** The same for the W forms: 32-bit operands in L_A/L_B (as i64), result sign-extended. */
function emitDiv32(e: Emitter, f3: number): void {
  const signed = (f3 & 1) === 0, rem = f3 >= 6;
  const a = (): void => { e.get(L_A).op(OP.i32WrapI64); };
  const b = (): void => { e.get(L_B).op(OP.i32WrapI64); };
  b(); e.op(OP.i32Eqz).op(OP.if, I32);
  if (rem) a(); else e.i32(-1);
  e.op(OP.else);
  if (signed) {
    a(); e.i32(-0x80000000).op(OP.i32Eq); b(); e.i32(-1).op(OP.i32Eq).op(OP.i32And).op(OP.if, I32);
    if (rem) e.i32(0); else a();
    e.op(OP.else); a(); b(); e.op(rem ? OP.i32RemS : OP.i32DivS).op(OP.end);
  } else {
    a(); b(); e.op(rem ? OP.i32RemU : OP.i32DivU);
  }
  e.op(OP.end).op(OP.i64ExtendI32S);
}

/**
 * The block's last instruction crosses into the next virtual page: it runs compiled only while the
 * fetch TLB maps that page and its first halfword is still `tail`. No code-page tracking covers
 * that halfword (it is in another RAM page, under whatever mapping), so it is checked each time.
 */
function emitTailGuard(e: Emitter, tail: number, at: number, k: number): void {
  const X = HL.TLB_ARRAY_BYTES;
  e.get(P_VPAGE).i64(4096).op(OP.i64Add).tee(L_ADDR).op(OP.i32WrapI64).tee(L_LO);
  e.i32(12).op(OP.i32ShrU).i32(2047).op(OP.i32And).i32(2).op(OP.i32Shl);
  e.get(P_ST).mem(OP.i32Load, 2, HL.HART_WORDS + 4 * HL.W_JIT_XS).op(OP.i32Add).set(L_P);
  e.get(L_P).mem(OP.i32Load, 2, HL.TLB_X_TAG_LO * X).get(L_LO).op(OP.i32Ne);
  e.get(L_P).mem(OP.i32Load, 2, HL.TLB_X_TAG_HI * X).get(L_ADDR).i64(32).op(OP.i64ShrU).op(OP.i32WrapI64).op(OP.i32Ne).op(OP.i32Or);
  e.if_().handBack(at, k).end_();
  e.get(L_P).mem(OP.i32Load, 2, HL.TLB_X_OFF * X).mem(OP.i32Load16U, 1, 0).i32(tail).op(OP.i32Ne);
  e.if_().handBack(at, k).end_();
}

/** Major opcodes whose compiled code never leaves the block nor branches: OP-IMM(-32), OP(-32) with M and Zbb, LUI, AUIPC. Dirty registers stay in locals across them. */
const PURE_ARITHMETIC = new Uint8Array(128);
for (const op of [0x13, 0x1b, 0x33, 0x3b, 0x37, 0x17]) PURE_ARITHMETIC[op] = 1;

const LOAD_OPS = [OP.i64Load8S, OP.i64Load16S, OP.i64Load32S, OP.i64Load, OP.i64Load8U, OP.i64Load16U, OP.i64Load32U];
const STORE_OPS = [OP.i64Store8, OP.i64Store16, OP.i64Store32, OP.i64Store];

/** Emits block `shape`'s function; one at an entry of a compile from the profile first counts its runs in its profile mark (the int32 at memory offset `mark`, -1: none). */
function emitBlock(e: Emitter, shape: BlockShape, mark = -1): void {
  const s = shape.start;
  e.startFunction();
  if (mark >= 0) e.i32(mark).i32(mark).mem(OP.i32Load, 2, 0).i32(1).op(OP.i32Add).mem(OP.i32Store, 2, 0);
  e.op(OP.block, I32); // the hand-back label (Emitter.handBack): its value says where and after how many
  // A branch back into the block loops inside the function (a `loop` from that instruction to the
  // block's end) instead of a call per iteration: memset, memcpy and string loops. A branch forward
  // to a later instruction leaves a wasm `block` that ends there (innerFlow).
  const { heads, forward } = shape;
  // Forward targets by the loop head they follow (their `block`s open right after it, the farthest outermost, and end before the next).
  const targets = [...new Set(forward.values())].sort((x, y) => y - x);
  const openForward = (from: number, to: number): void => { // the targets after instruction `from` up to `to`
    for (const j of targets) {
      if (j <= from || j > to) continue;
      e.op(OP.block, VOID);
      e.depth++;
      e.forwardDepth.set(j, e.depth);
    }
  };
  const nextHead = (k: number): number => { let h = shape.jitLen; for (const x of heads) if (x > k && x < h) h = x; return h; };
  openForward(-1, nextHead(-1));
  let delta = 0; // byte offset of instruction k from the block's start
  for (let k = 0; k < shape.jitLen; k++) {
    const insn = shape.insns[k]!;
    const ilen = shape.lens[k]!;
    const at = s + delta;
    if (e.forwardDepth.has(k)) { // forward branches land here
      e.flush().end_(); // (the branches flushed before they left)
      e.joinAt(k);
    }
    if (heads.has(k)) {
      e.flush(); // the back edge comes with nothing dirty too (a branch)
      e.op(OP.loop, VOID);
      e.depth++;
      e.loopHeads.set(at, { index: k, depth: e.depth });
      e.dropAnchors(); // the loop's body may move their base registers before it comes round
      openForward(k, nextHead(k));
    }
    // Not enough budget for the rest of the block: the interpreter takes it from here.
    if (k === 0 || heads.has(k)) e.get(P_REM).i32(shape.jitLen).op(OP.i32LtU).if_().handBack(at, k).end_();
    const rd = (insn >>> 7) & 31, rs1 = (insn >>> 15) & 31, rs2 = (insn >>> 20) & 31;
    const f3 = (insn >>> 12) & 7, f7 = insn >>> 25;
    const immI = insn >> 20;
    if (!PURE_ARITHMETIC[insn & 0x7f]) e.flush(); // it may leave the block, trap or branch: the state block must be whole
    if (at + ilen > 4096) emitTailGuard(e, shape.tail, at, k);
    if (isZbb(insn)) {
      if (rd !== 0) { emitZbb(e, insn); e.setReg(rd); }
      delta += ilen;
      continue;
    }
    switch ((insn >>> 2) & 31) {
      case 13: // LUI
        if (rd !== 0) e.i64(insn & 0xfffff000).setReg(rd);
        break;
      case 5: // AUIPC
        if (rd !== 0) e.pcI64(at, insn & 0xfffff000).setReg(rd);
        break;
      case 27: { // JAL
        const imm = ((insn >> 31) << 20) | (((insn >>> 12) & 0xff) << 12) | (((insn >>> 20) & 1) << 11) | (((insn >>> 21) & 0x3ff) << 1);
        if (rd !== 0) e.pcI64(at, ilen).setReg(rd);
        e.jumpTo(at + imm, k + 1);
        break;
      }
      case 25: { // JALR: the target before the link (rd may be rs1)
        e.reg(rs1).i64(immI).op(OP.i64Add).i64(-2).op(OP.i64And).set(L_T);
        if (rd !== 0) e.pcI64(at, ilen).setReg(rd);
        e.goTo(() => e.get(L_T), k + 1);
        break;
      }
      case 24: { // BRANCH
        const imm = ((insn >> 31) << 12) | (((insn >>> 7) & 1) << 11) | (((insn >>> 25) & 0x3f) << 5) | (((insn >>> 8) & 0xf) << 1);
        const cmp = [OP.i64Eq, OP.i64Ne, 0, 0, OP.i64LtS, OP.i64GeS, OP.i64LtU, OP.i64GeU][f3]!;
        if (rs2 === 0 && f3 <= 1) { // beqz, bnez: no zero to materialize
          e.reg(rs1).op(OP.i64Eqz);
          if (f3 === 1) e.op(OP.i32Eqz);
        } else {
          e.reg(rs1).reg(rs2).op(cmp);
        }
        e.if_();
        const j = forward.get(k);
        if (j === undefined) e.jumpTo(at + imm, k + 1);
        else { // forward inside the block: the instructions skipped count as run, so `rem - index` stays the budget left on every path
          if (j > k + 1) e.get(P_REM).i32(j - k - 1).op(OP.i32Add).set(P_REM);
          e.branchState(j);
          e.op(OP.br).u(e.depth - e.forwardDepth.get(j)!);
        }
        e.end_();
        break; // not taken: on with the next instruction
      }
      case 0: { // LOAD
        const off = emitAccess(e, rs1, immI, false, 1 << (f3 & 3), at, k);
        if (rd !== 0) e.get(off).mem(LOAD_OPS[f3]!, f3 & 3, 0).setReg(rd);
        break;
      }
      case 8: { // STORE
        const imm = ((insn >> 25) << 5) | ((insn >>> 7) & 31);
        const off = emitAccess(e, rs1, imm, true, 1 << f3, at, k);
        e.get(off).reg(rs2).mem(STORE_OPS[f3]!, f3, 0);
        break;
      }
      case 4: { // OP-IMM
        if (rd === 0) break;
        if (f3 === 0 && (rs1 === 0 || immI === 0)) { // li, mv: a constant or a register, not an add
          if (rs1 === 0) e.i64(immI); else e.reg(rs1);
          e.setReg(rd);
          break;
        }
        e.reg(rs1);
        const sh = (insn >>> 20) & 63;
        switch (f3) {
          case 0: e.i64(immI).op(OP.i64Add); break;
          case 2: e.i64(immI).op(OP.i64LtS, OP.i64ExtendI32U); break;
          case 3: e.i64(immI).op(OP.i64LtU, OP.i64ExtendI32U); break;
          case 4: e.i64(immI).op(OP.i64Xor); break;
          case 6: e.i64(immI).op(OP.i64Or); break;
          case 7: e.i64(immI).op(OP.i64And); break;
          case 1: e.i64(sh).op(OP.i64Shl); break;
          default: e.i64(sh).op(insn >>> 26 === 0 ? OP.i64ShrU : OP.i64ShrS); break;
        }
        e.setReg(rd);
        break;
      }
      case 6: { // OP-IMM-32
        if (rd === 0) break;
        e.reg(rs1).op(OP.i32WrapI64);
        if (f3 === 0) e.i32(immI).op(OP.i32Add);
        else e.i32(rs2).op(f3 === 1 ? OP.i32Shl : f7 === 0 ? OP.i32ShrU : OP.i32ShrS);
        e.op(OP.i64ExtendI32S).setReg(rd);
        break;
      }
      case 12: { // OP
        if (rd === 0) break;
        if (f7 === 1 && f3 >= 1 && f3 <= 3) {
          e.reg(rs1).set(L_A).reg(rs2).set(L_B);
          emitMulHigh(e, f3);
        } else if (f7 === 1 && f3 >= 4) {
          e.reg(rs1).set(L_A).reg(rs2).set(L_B);
          emitDiv64(e, f3);
        } else if (f7 === 0 && (f3 === 0 || f3 === 4 || f3 === 6) && (rs1 === 0 || rs2 === 0)) { // add, xor, or with x0 (c.mv): the other operand
          e.reg(rs1 === 0 ? rs2 : rs1);
        } else {
          e.reg(rs1).reg(rs2);
          if (f7 === 1) e.op(OP.i64Mul);
          else if (f7 === 0x20) e.op(f3 === 0 ? OP.i64Sub : OP.i64ShrS);
          else if (f3 === 2 || f3 === 3) e.op(f3 === 2 ? OP.i64LtS : OP.i64LtU, OP.i64ExtendI32U);
          else e.op([OP.i64Add, OP.i64Shl, 0, 0, OP.i64Xor, OP.i64ShrU, OP.i64Or, OP.i64And][f3]!);
        }
        e.setReg(rd);
        break;
      }
      case 14: { // OP-32
        if (rd === 0) break;
        if (f7 === 1 && f3 >= 4) {
          e.reg(rs1).set(L_A).reg(rs2).set(L_B);
          emitDiv32(e, f3);
        } else {
          e.reg(rs1).op(OP.i32WrapI64).reg(rs2).op(OP.i32WrapI64);
          if (f7 === 1) e.op(OP.i32Mul);
          else if (f7 === 0x20) e.op(f3 === 0 ? OP.i32Sub : OP.i32ShrS);
          else e.op(f3 === 0 ? OP.i32Add : f3 === 1 ? OP.i32Shl : OP.i32ShrU);
          e.op(OP.i64ExtendI32S);
        }
        e.setReg(rd);
        break;
      }
      case 1: { // LOAD-FP: with the FPU on (else the interpreter raises); flw NaN-boxes; marks the FPU state dirty
        emitFpuOnCheck(e, at, k);
        const off = emitAccess(e, rs1, immI, false, f3 === 3 ? 8 : 4, at, k);
        e.get(P_ST).get(off);
        if (f3 === 3) e.mem(OP.i64Load, 3, 0);
        else e.mem(OP.i64Load32U, 2, 0).i64(-4294967296).op(OP.i64Or);
        e.mem(OP.i64Store, 3, HL.HART_F + 8 * rd);
        e.get(P_ST).get(P_ST).mem(OP.i32Load, 2, MSTATUS).i32(MSTATUS_FS).op(OP.i32Or).mem(OP.i32Store, 2, MSTATUS);
        break;
      }
      case 9: { // STORE-FP
        emitFpuOnCheck(e, at, k);
        const off = emitAccess(e, rs1, ((insn >> 25) << 5) | ((insn >>> 7) & 31), true, f3 === 3 ? 8 : 4, at, k);
        e.get(off).get(P_ST);
        if (f3 === 3) e.mem(OP.i64Load, 3, HL.HART_F + 8 * rs2).mem(OP.i64Store, 3, 0);
        else e.mem(OP.i32Load, 2, HL.HART_F + 8 * rs2).mem(OP.i32Store, 2, 0);
        break;
      }
      case 3: // FENCE: a host barrier when harts run on other threads (the interpreter's hostFence); else ordering is the host's
        if (f3 === 0 && e.hostFences) e.op(0xfe).u(0x03).op(0x00); // atomic.fence
        if (f3 === 1) e.goTo(() => e.pcI64(at, ilen), k + 1); // FENCE.I: stores to code are caught already; `go` finds no block of a page a device wrote
        break;
      case 28: // SYSTEM: an sstatus access (isSstatusAccess)
        emitSstatus(e, insn, at, ilen, k);
        break;
      case 11: { // AMO read-modify-write: a host atomic on the RAM word, after the write-TLB and alignment checks
        const wide = f3 === 3;
        if (insn >>> 27 === 2 || insn >>> 27 === 3) {
          emitLrSc(e, insn >>> 27 === 2, wide, rd, rs1, rs2, at, k);
          break;
        }
        e.reg(rs1).set(L_ADDR);
        emitTranslate(e, true, wide ? 8 : 4, at, k, L_LO, L_OFF, true);
        e.get(L_OFF).reg(rs2);
        if (!wide) e.op(OP.i32WrapI64);
        e.op(0xfe).u(AMO_RMW[insn >>> 27]! + (wide ? 1 : 0)).u(wide ? 3 : 2).u(0);
        if (!wide) e.op(OP.i64ExtendI32S);
        e.setReg(rd);
        break;
      }
      default: throw new Error(`compile_block: instruction 0x${(insn >>> 0).toString(16)} was classified as supported but has no emitter`);
    }
    delta += ilen;
  }
  if (shape.jitLen > 0 && endsBlock(shape.insns[shape.jitLen - 1]!)) {
    // it jumped
  } else if (shape.jitLen < shape.interpLen) {
    e.handBack(s + delta, shape.jitLen); // an instruction the compiler does not do
  } else {
    e.jumpTo(s + delta, shape.jitLen); // ran to the end of the page (or MAX_BLOCK): go on there
  }
  for (let i = 0; i < heads.size; i++) e.end_(); // the loops
  e.op(OP.unreachable, OP.end).set(L_HB); // (every path above has left: a loop's end alone would fall through) the hand-back: pc, status, count
  e.get(P_ST).get(P_VPAGE).get(L_HB).i32(0xfff).op(OP.i32And).op(OP.i64ExtendI32U).op(OP.i64Add).op(OP.f64ConvertI64S).mem(OP.f64Store, 3, HL.HART_PC);
  e.get(P_ST).i32(HL.JIT_INTERPRET).mem(OP.i32Store, 2, HL.HART_JIT_STATUS);
  e.get(P_REM).get(L_HB).i32(12).op(OP.i32ShrU).op(OP.i32Sub).op(OP.return);
}

/** A compiled block: (virtual page, state block, budget left) -> budget left. */
/** A block function (BLOCK_FN_TYPE): only wasm calls it, JavaScript puts it in the function table. */
export type BlockFn = (vpage: bigint, st: number, rem: number, token: never) => number;

/** The import name of part `part`'s page's block at page offset `po`, compiled in an earlier module. */
export function blockImportName(po: number, part = 0): string {
  return `b${part}_${po}`;
}

/** One page's share of a module (emitModules): its blocks, the page's blocks of earlier modules, and (filled in) those it imports. */
export interface ModulePart {
  blocks: BlockShape[];
  have: PageOffsets | null;
  linked: number[];
  /** Block start -> the profile mark its block counts its runs in (profileMarks). */
  marks?: Map<number, number> | null;
}

/**
 * The wasm module of `blocks` (distinct starts in one page, each with jitLen > 0), its own
 * function i exported as f${i}, for a memory of `pages` wasm pages. The blocks leave through the
 * imported `go` (the dispatcher's), and jump straight to the page's blocks of earlier modules that
 * they reach: `have` lists the page offsets of those, and `linked` gets the ones the module imports
 * (blockImportName; a page's modules are dropped together, so such a link never outlives its
 * target). Only the dispatcher imports the function table: V8 updates every instance that imports
 * a table on each change to it, which made compiling quadratic in the number of modules.
 */
export function emitModule(blocks: BlockShape[], pages: number, have: PageOffsets | null = null, linked: number[] = []): Uint8Array<ArrayBuffer> {
  return emitModules([{ blocks, have, linked }], pages).wasm;
}

/**
 * One module of several pages' blocks (emitModule's, part after part: one NativeModule, one jump
 * table and one instantiation for all). A block jumps straight only to blocks of its own page;
 * part i's links are imported as blockImportName(po, i). Returns the wasm and each part's share of
 * the function bodies' bytes.
 */
/** Writers for block bodies, reused from module to module (buildModule copies the bytes out; a fresh writer is an off-heap allocation, which was a third of the emitter's time). */
const bodyWriters: ByteWriter[] = [];

export function emitModules(parts: ModulePart[], pages: number, hostFences = false): { wasm: Uint8Array<ArrayBuffer>; bodyBytes: number[] } {
  const e = new Emitter();
  e.hostFences = hostFences;
  e.goIndex = 0; // the import
  // Function indices: `go`, every part's imports, then every part's blocks, then the translate functions.
  let next = 1;
  const indices: Array<Map<number, number>> = [];
  for (const { blocks, have, linked } of parts) {
    const index = new Map<number, number>();
    const own = new Set<number>();
    for (const b of blocks) own.add(b.start);
    for (const b of blocks) {
      for (const po of b.next) {
        if (have !== null && have.has(po) && !own.has(po) && !index.has(po)) {
          index.set(po, next++);
          linked.push(po);
        }
      }
    }
    indices.push(index);
  }
  for (let i = 0; i < parts.length; i++) for (const b of parts[i]!.blocks) indices[i]!.set(b.start, next++);
  e.translateIndex = next;
  // Arrays built by push, never by map or spread: their elements kinds (V8's maps) are then the same
  // in every module, where map's and spread's depended on the length ("wrong map" deopts a boot).
  const functions: FunctionBody[] = [];
  const bodyBytes: number[] = [];
  let used = 0;
  for (let i = 0; i < parts.length; i++) {
    e.fnIndex = indices[i]!;
    let bytes = 0;
    for (const b of parts[i]!.blocks) {
      if (used === bodyWriters.length) bodyWriters.push(new ByteWriter(4096));
      e.w = bodyWriters[used++]!.reset();
      emitBlock(e, b, parts[i]!.marks?.get(b.start) ?? -1);
      e.op(0x00); // unreachable: every path returned
      const locals = FIXED_LOCALS.slice();
      for (let j = 0; j < e.regLocals; j++) locals.push(I64);
      functions.push({ locals, body: e.w });
      bytes += e.w.length;
    }
    bodyBytes.push(bytes);
  }
  const blockCount = functions.length;
  if (e.usedTranslate) {
    translateFns ??= [emitTranslateFn(false), emitTranslateFn(true)];
    functions.push(translateFns[0], translateFns[1]);
  }
  const importFunctions = ["go"];
  for (let i = 0; i < parts.length; i++) for (const po of parts[i]!.linked) importFunctions.push(blockImportName(po, i));
  const wasm = buildModule({ params: BLOCK_FN_TYPE.params, results: BLOCK_FN_TYPE.results, functions, otherTypes: [TRANSLATE_FN_TYPE], importFunctions, tableFunctions: blockCount }, pages);
  return { wasm, bodyBytes };
}

/** What compileModules compiles for one page: planBlocks' arguments. */
export interface PageRequest {
  pageOff: number;
  work: number[];
  have: PageOffsets | null;
  tail: number;
  /** Blocks at most for this page (compileModules' maxBlocks when absent). */
  maxBlocks?: number;
  /** How many of `work`, from the first, are where the interpreter ran (planBlocks; all when absent): the rest are block starts from a profile. */
  seeds?: number;
  /** Memory offset of the profile marks of `work` (distinct entries): the block at work[j] counts its runs in the int32 at `marks + 4 * j` (-1 or absent: none). */
  marks?: number;
  /** The taken-transfer map (planBlocks): branch and jump targets the interpreter never went to are not compiled; absent or null: all are. */
  taken?: Uint8Array | null;
}

/** The profile marks of a request's blocks (PageRequest.marks), by block start; null when it has none. Before planBlocks, which extends `work`. */
export function profileMarks(r: PageRequest): Map<number, number> | null {
  if (r.marks === undefined || r.marks < 0) return null;
  const marks = new Map<number, number>();
  for (let j = 0; j < r.work.length; j++) marks.set(r.work[j]!, r.marks + 4 * j);
  return marks;
}

/** A page's share of a compiled module: its blocks' page offsets, the earlier blocks it links to, its share of the wasm, its first function (export f${first}). */
export interface CompiledPart {
  starts: number[];
  linked: number[];
  bytes: number;
  first: number;
}

/**
 * Plans and emits the blocks of several pages into one module and compiles it (the compile
 * thread's, for the requests waiting together). A part may have no blocks; null when none has.
 */
/** `hostFences`: harts run on several threads, so FENCE is a host barrier (Emitter.hostFences). */
export function compileModules(u16: Uint16Array, reqs: PageRequest[], maxBlocks: number, pages: number, hostFences = false): { module: WebAssembly.Module; parts: CompiledPart[] } | null {
  const parts: ModulePart[] = [];
  let total = 0;
  for (const r of reqs) {
    const marks = profileMarks(r);
    const blocks = planBlocks(u16, r.pageOff, r.work, r.have, r.maxBlocks ?? maxBlocks, r.tail, r.seeds ?? r.work.length, r.taken ?? null);
    total += blocks.length;
    parts.push({ blocks, have: r.have, linked: [], marks });
  }
  if (total === 0) return null;
  const { wasm, bodyBytes } = emitModules(parts, pages, hostFences);
  let allBodies = 0;
  for (const b of bodyBytes) allBodies += b;
  const out: CompiledPart[] = [];
  let first = 0;
  for (let i = 0; i < parts.length; i++) {
    const starts: number[] = [];
    for (const b of parts[i]!.blocks) starts.push(b.start);
    out.push({ starts, linked: parts[i]!.linked, bytes: Math.round((wasm.length * bodyBytes[i]!) / Math.max(1, allBodies)), first });
    first += starts.length;
  }
  return { module: new WebAssembly.Module(wasm), parts: out };
}

/**
 * The `count` block functions of a module emitModule made, instantiated against `memory`, `go`
 * and the earlier blocks it links to (`linked`: blockImportName -> function).
 */
export function instantiateBlocks(module: WebAssembly.Module, count: number, memory: WebAssembly.Memory, go: BlockFn, linked: Record<string, BlockFn>): BlockFn[] {
  const inst = new WebAssembly.Instance(module, { env: { ...linked, mem: memory, go } });
  const table = inst.exports["t"] as WebAssembly.Table; // the blocks in function order (ModuleSpec.tableFunctions)
  const fns: BlockFn[] = [];
  for (let i = 0; i < count; i++) fns.push(table.get(i) as BlockFn);
  return fns;
}
