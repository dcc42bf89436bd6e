// Runs a short synthetic program on a throwaway hart built as the VM's harts are, before the boot,
// so the interpreter's loops (execFast, execSlow) have type feedback for every instruction path
// when TurboFan first optimizes them. Without it each path the guest first takes later ("insufficient
// type feedback") deoptimized them and TurboFan recompiled them, ~30-40 ms each on V8's pool thread,
// ~35 times a boot for execFast alone, while the vCPU thread ran the unoptimized loop meanwhile.
import { Bus } from "../machine/bus.js";
import { GuestRam } from "../seams/guest_ram.js";
import type { TimeSource } from "../seams/time.js";
import { C64_MTVEC, C64_SATP, C64_STVEC } from "./csr.js";
import { MIP_SSIP, MSTATUS_FS_SHIFT, MSTATUS_SIE, PRV_M, PRV_S, PRV_U } from "./constants.js";
import { encB, encI, encJ, encR, encS, encU } from "./encode.js";
import { Hart } from "./hart.js";
import { EXIT_BUDGET, EXIT_MMIO, EXIT_SBI, EXIT_WFI } from "./exit.js";
import { BlockCache } from "./jit/block_cache.js";
import { aluKinds, memoryKinds } from "./jit/emitter_warm_up.js";

const BASE = 0x8000_0000;
const SIZE = 1 << 20;
// The program starts 2 bytes off a word so that its 41st word lies across a page end (0x5000):
// the fetch of an instruction split between two pages is a path of its own in execFast and execSlow.
const HANDLER = BASE, ROOT_TABLE = BASE + 0x2000, CODE = BASE + 0x5000 - 2 - 4 * 40;
const DATA = BASE + 0x10000, SCRATCH_DATA = BASE + 0x20000, STACK = BASE + 0x30000;
/**
 * A return the program calls first: the call misses the fetch TLB, and the return comes back to a
 * page the TLB holds, execFast's page-change path. Taken only at the end of a round before, it got
 * its type feedback after TurboFan had begun compiling execFast in about one boot of two, and that
 * code deoptimized early in the boot; V8 then ran execFast's loop as OSR code entered from the
 * baseline tier for most of the boot (~0.2 s more of the vCPU thread, 4 boots with --trace-deopt).
 */
const RETURN_STUB = BASE + 0x8000;
/** A lone WFI the warm-up ends with. */
const WFI_AT = BASE + 0x1000;
/** A device on the warm-up hart's own bus (as the VM's harts serve the CLINT and PLIC): below RAM, above the M pass's MMIO address. */
const DEVICE = 0x200;
/** CSRs the program reads (the supervisor's, the counters, and machine ones that trap in S-mode). */
const READ_CSRS = [0x100, 0x104, 0x105, 0x106, 0x140, 0x141, 0x142, 0x143, 0x144, 0x180, 0x10a, 0xc00, 0xc01, 0xc02, 0x300, 0x304, 0x305, 0x344, 0xf14];

/** The program: every kind of instruction the compiler and execFast do, branches both ways, CSRs, a trap, compressed forms; then round again. */
function program(): Uint32Array {
  const words: number[] = [];
  const w = (insn: number): void => { words.push(insn >>> 0); };
  w(encJ(0x6f, 1, RETURN_STUB - CODE)); // a call to another page and back (RETURN_STUB)
  aluKinds(w);
  memoryKinds(w);
  for (const f5 of [0x10, 0x14, 0x18, 0x1c]) for (const f3 of [2, 3]) w(encR(0x2f, 15, f3, 11, 14, f5 << 2)); // AMOMIN/MAX(U): execAtomic's path
  // Edge operands for the paths that depend on values: -1, 2^31-1, -2^31, 0 and 64-bit magnitudes as
  // multiplicands, dividends and divisors (unsigned views above 2^31 and 2^63, products past 2^64,
  // overflow, division by zero), shift amounts 0, 31, 32 and 63. TurboFan speculates int32 for an
  // add it has only seen small: MULH's partial products past 2^31 deoptimized execFast a boot ("lost precision").
  w(encI(0x13, 20, 0, 0, -1)); w(encU(0x37, 21, 0x8000_0000)); w(encI(0x1b, 22, 0, 21, -1)); // x20 -1, x21 -2^31, x22 2^31-1 (addiw)
  w(encI(0x13, 25, 5, 20, 1)); w(encI(0x13, 26, 1, 22, 33)); w(encR(0x33, 27, 4, 25, 5, 0)); // x25 2^63-1, x26 0xfffffffe_00000000, x27 x25^x5
  w(encI(0x13, 28, 5, 20, 32)); // x28 2^32-1: unsigned 32-bit operands past 2^31 (DIVU/REMU's 32-bit path)
  for (const [a, b] of [[20, 21], [21, 20], [22, 21], [21, 0], [20, 22], [25, 25], [25, 26], [26, 22], [27, 25], [26, 27], [28, 22], [22, 28], [28, 9]]) {
    for (let f3 = 0; f3 < 8; f3++) w(encR(0x33, 23, f3, a, b, 1)); // MUL..REMU
    for (const f3 of [0, 4, 5, 6, 7]) w(encR(0x3b, 23, f3, a, b, 1)); // MULW DIVW DIVUW REMW REMUW
  }
  for (const sh of [0, 31, 32, 63]) {
    w(encI(0x13, 24, 0, 0, sh));
    for (const [f3, f7] of [[1, 0], [5, 0], [5, 0x20]]) { w(encR(0x33, 23, f3, 21, 24, f7)); w(encR(0x3b, 23, f3, 21, 24, f7)); } // SLL SRL SRA, and the W forms
  }
  // Zbb's counts on them: of a value with a zero low word (x26), or of a word past 2^31 (x28), each
  // takes a path of its own (ctz and ctzw deoptimized execFast in every boot).
  for (const rs of [20, 21, 26, 28]) {
    for (const sub of [0, 1, 2]) w(encI(0x13, 23, 1, rs, 0x600 | sub)); // CLZ CTZ CPOP
    for (const sub of [0, 1, 2]) w(encR(0x1b, 23, 1, rs, sub, 0x30)); // CLZW CTZW CPOPW
  }
  for (const f3 of [0, 1, 4, 5, 6, 7]) { w(encB(0x63, f3, 12, 13, 8)); w(encI(0x13, 6, 0, 6, 1)); } // taken or not, on
  for (const f3 of [0, 1, 4, 5, 6, 7]) { w(encB(0x63, f3, 20, 21, 8)); w(encI(0x13, 6, 0, 6, 1)); } // the other way for some
  for (const f3 of [4, 5, 6, 7]) { w(encB(0x63, f3, 5, 8, 8)); w(encI(0x13, 6, 0, 6, 1)); } // equal high words: the low words decide
  for (const f3 of [0, 1]) { w(encB(0x63, f3, 20, 20, 8)); w(encI(0x13, 6, 0, 6, 1)); } // BEQ/BNE on equal low words: the high words decide
  for (const f3 of [1, 5]) w(encI(0x13, 23, f3, 21, 40)); w(encI(0x13, 23, 5, 21, 0x400 | 40)); // SLLI SRLI SRAI by 32 or more
  // FP arithmetic, fused and not (double): the interpreter's FP helpers behind their own CSR check.
  w(encR(0x53, 3, 7, 1, 2, 0x01)); w(encR(0x53, 3, 7, 1, 2, 0x09)); w(encR(0x43, 3, 7, 1, 2, (4 << 2) | 1)); // FADD.D FMUL.D FMADD.D
  // SLT(I)(U) where the high words are equal (the low words' comparison runs only then), both signs.
  for (const [rs, imm] of [[5, 77], [20, -77], [22, -1], [20, -1]]) for (const f3 of [2, 3]) w(encI(0x13, 23, f3, rs, imm));
  for (const [a, b] of [[5, 8], [20, 21]]) for (const f3 of [2, 3]) w(encR(0x33, 23, f3, a, b, 0));
  w(encJ(0x6f, 1, 8)); w(encI(0x13, 6, 0, 6, 1)); // a call over one instruction
  w(encU(0x17, 14, 0)); w(encI(0x67, 0, 0, 14, 12)); w(encI(0x13, 6, 0, 6, 1)); // auipc + jalr over one
  w(encU(0x17, 14, 0)); w(encI(0x67, 1, 0, 14, 12)); w(encI(0x13, 6, 0, 6, 1)); // and a call through a register (jalr ra)
  for (const csr of READ_CSRS) w(encI(0x73, 12, 2, 0, csr)); // csrr
  w(encI(0x73, 0, 1, 13, 0x140)); w(encI(0x73, 0, 1, 13, 0x141)); // csrw sscratch, sepc
  w(encI(0x73, 0, 6, 2, 0x100)); w(encI(0x73, 0, 7, 2, 0x100)); // csrsi / csrci sstatus.SIE
  // Paths a boot takes early that deoptimized execSystem, loadSlow, storeSlow and translate when first taken:
  // sret (to the next instruction; the S pass alone: x31 = 1 there), sfence.vma for one address, for all and for one ASID,
  // an access across a page end, a load that faults (M: no RAM there; S: a user page; U: it succeeds),
  // sstatus.SUM set and cleared, the FP CSRs written, and read with the FPU off (a trap).
  w(encB(0x63, 0, 31, 0, 28)); w(encI(0x13, 30, 0, 0, 0x100)); w(encI(0x73, 0, 2, 30, 0x100)); // beq x31, x0, over; csrs sstatus, SPP
  w(encU(0x17, 29, 0)); w(encI(0x13, 29, 0, 29, 16)); w(encI(0x73, 0, 1, 29, 0x141)); w(0x10200073); // sepc = after the sret; sret
  w(encR(0x73, 0, 0, 10, 0, 0x09)); w(encR(0x73, 0, 0, 0, 0, 0x09)); w(encR(0x73, 0, 0, 0, 13, 0x09)); // sfence.vma x10; sfence.vma; sfence.vma x0, asid
  w(encI(0x13, 29, 0, 10, 2044)); w(encI(0x13, 29, 0, 29, 2044)); // x29 = DATA + 4088
  w(encI(0x03, 23, 3, 29, 4)); w(encS(0x23, 3, 29, 23, 4)); w(encI(0x03, 23, 2, 29, 6)); // ld, sd, lw across the page end
  w(encI(0x03, 23, 3, 0, 0x100)); // ld from 0x100
  w(encU(0x37, 30, 0x40000)); w(encI(0x73, 0, 2, 30, 0x100)); w(encI(0x73, 0, 3, 30, 0x100)); // csrs/csrc sstatus, SUM
  w(encI(0x73, 0, 5, 0, 0x002)); w(encI(0x73, 0, 5, 0, 0x001)); // csrwi frm, 0; csrwi fflags, 0
  w(encU(0x37, 30, 0x6000)); w(encI(0x73, 0, 3, 30, 0x100)); w(encI(0x73, 23, 2, 0, 0x003)); w(encI(0x73, 0, 2, 30, 0x100)); // FS off, csrr fcsr, FS on
  // More paths a boot takes after the warm-up used to end (each deoptimized a function once a boot,
  // `node --trace-deopt`): the Sstc timer (STCE on in menvcfg from M-mode, stimecmp written far ahead
  // and read: csrWrite's 64-bit value, the stimer update, run()'s timer check); fcsr from a register;
  // an S-mode load from a user page under SUM; device loads of a halfword and stores of every size
  // (a sign to extend, a value past 2^31) and a device the vCPU serves itself (DEVICE); LR/SC on a
  // word past the small-integer range; WFI with an interrupt pending (a no-op, M-mode only: the S pass skips it).
  w(encI(0x13, 30, 0, 0, 1)); w(encI(0x13, 30, 1, 30, 63)); w(encI(0x73, 0, 2, 30, 0x30a)); // csrs menvcfg, STCE
  w(encI(0x73, 0, 1, 25, 0x14d)); w(encI(0x73, 12, 2, 0, 0x14d)); // csrw stimecmp, 2^63-1; csrr stimecmp
  w(encI(0x73, 0, 1, 0, 0x003)); // csrw fcsr, x0
  w(encU(0x37, 30, 0x40000)); w(encI(0x73, 0, 2, 30, 0x100)); // csrs sstatus, SUM
  w(encU(0x37, 29, DATA - BASE)); w(encI(0x03, 23, 3, 29, 0)); w(encI(0x73, 0, 3, 30, 0x100)); // ld from RAM's user mapping; csrc sstatus, SUM
  for (const f3 of [1, 5, 0]) w(encI(0x03, 23, f3, 0, 0x102)); // lh, lhu, lb from 0x102: a device
  for (const f3 of [0, 1, 2, 3]) w(encS(0x23, f3, 0, 20, 0x100)); // sb..sd of -1 to it
  for (const f3 of [2, 3]) { w(encI(0x03, 23, f3, 0, DEVICE)); w(encS(0x23, f3, 0, 21, DEVICE)); } // lw/ld, sw/sd at the vCPU's own device
  w(encS(0x23, 2, 11, 21, 40)); w(encI(0x13, 29, 0, 11, 40)); // -2^31 at SCRATCH_DATA + 40
  w(encR(0x2f, 15, 2, 29, 0, 2 << 2)); w(encR(0x2f, 15, 2, 29, 21, 3 << 2)); // lr.w, sc.w
  w(encB(0x63, 1, 31, 0, 28)); // bne x31, x0: the S pass skips the WFI (mie/mip are M-mode CSRs there; nothing pending: it would wait)
  w(encI(0x13, 30, 0, 0, 2)); w(encI(0x73, 0, 2, 30, 0x304)); w(encI(0x73, 0, 2, 30, 0x344)); // csrs mie, mip: SSIP
  w(0x10500073); w(encI(0x73, 0, 3, 30, 0x344)); w(encI(0x73, 0, 3, 30, 0x304)); // wfi; csrc mip, mie
  w(0x00000073); // ecall: a trap, and the handler's mret
  w(encI(0x0f, 0, 1, 0, 0)); // fence.i
  // Compressed, stack-relative and register forms only (a trap would skip 4 bytes): add, addi, li, mv, addw, andi, ld/sd sp.
  const halves = [0x9736, 0x0785, 0x4c2d, 0x8a26, 0x2485, 0x8b1d, 0x4a01, 0x64a2, 0x69e6, 0xe426, 0x0141, 0x1141];
  for (let i = 0; i < halves.length; i += 2) w(halves[i]! | (halves[i + 1]! << 16));
  // x5 feeds the values above: a new one each round, so value-dependent paths (shift amounts, signs) go both ways.
  w(encI(0x13, 16, 1, 5, 7)); w(encI(0x13, 17, 5, 5, 0x400 | 3)); w(encR(0x33, 5, 4, 16, 17, 0)); w(encI(0x13, 5, 0, 5, 1233));
  w(encJ(0x6f, 0, -4 * words.length)); // round again
  return Uint32Array.from(words);
}

/** mepc += 4; mret (every trap the program takes is a 4-byte instruction). */
const HANDLER_CODE = [encI(0x73, 5, 2, 0, 0x341), encI(0x13, 5, 0, 5, 4), encI(0x73, 0, 1, 5, 0x341), 0x30200073];

/** How a pass runs: privilege, the virtual address RAM's base appears at (bare in M-mode; the kernel's and a user program's places under Sv39), and whether execSlow alone executes. */
const PASSES: Array<{ priv: 0 | 1 | 3; vbase: bigint; slowOnly: boolean }> = [];
for (const slowOnly of [false, true]) {
  PASSES.push({ priv: PRV_M, vbase: BigInt(BASE), slowOnly });
  PASSES.push({ priv: PRV_S, vbase: 0xffff_ffff_8000_0000n, slowOnly });
  PASSES.push({ priv: PRV_U, vbase: 0n, slowOnly });
}

/**
 * Runs the program for ~`steps` instructions in each pass (PASSES) on a hart like the VM's (state
 * block in shared memory, the JIT attached when `jit`, with a threshold nothing reaches), and
 * throws it away. Returns the instructions run, the hart's traps by cause, the exits it took and
 * its accesses to the device on its own bus (for tests).
 */
export function warmUpInterpreter(time: TimeSource, jit: boolean, steps = 1500): { instructions: number; traps: Map<string, number>; exits: number; deviceAccesses: number } {
  const ram = new GuestRam(BASE, SIZE);
  const view = new DataView(ram.buffer);
  HANDLER_CODE.forEach((insn, i) => view.setInt32(HANDLER - BASE + 4 * i, insn, true));
  const code = program();
  if (CODE + 4 * code.length > RETURN_STUB) throw new Error("the warm-up's program runs into its return stub");
  code.forEach((insn, i) => view.setUint32(CODE - BASE + 4 * i, insn, true));
  view.setInt32(RETURN_STUB - BASE, encI(0x13, 0, 0, 0, 0), true); // nop (execSlow's step after the TLB miss), then the return in execFast
  view.setInt32(RETURN_STUB - BASE + 4, encI(0x67, 0, 0, 1, 0), true); // jalr x0, 0(x1)
  // Sv39 gigapages onto RAM's base (PPN 0x80000): at VA 0 for U-mode, at the kernel's VA (index 510) for S-mode.
  const leaf = (BigInt(BASE >>> 12) << 10n) | 0xcfn; // RWX, accessed, dirty
  // U-mode's leaf without A and D: its first walks set them (the page walk's compare-and-swap, deoptimized in every boot otherwise).
  view.setBigUint64(ROOT_TABLE - BASE + 8 * 0, (leaf & ~0xc0n) | 0x10n, true);
  view.setBigUint64(ROOT_TABLE - BASE + 8 * 510, leaf, true);
  const vcpuDevices = new Bus();
  let deviceAccesses = 0;
  vcpuDevices.map(DEVICE, 0x100, { name: "warm-up", read: () => (deviceAccesses++, 0x8000_0000), write: () => { deviceAccesses++; } });
  const hart = new Hart({ hartId: 0, ram, vcpuDevices, time, stateBlock: true });
  if (jit) {
    const cache = new BlockCache(ram, { threshold: 2 ** 30 });
    hart.useJit(cache);
    // The program's second page opens as if it had code (with no block in it): the interpreter
    // then stops where it enters it, as it does at every page with code in a boot.
    cache.codeGates[(CODE - BASE + 4 * 40) >>> 12] = 1;
  }
  let ran = 0, exits = 0;
  for (const { priv, vbase, slowOnly } of PASSES) {
    const va = (pa: number): bigint => BigInt.asUintN(64, vbase + BigInt(pa - BASE));
    const s = hart.save();
    s.pc = Number(BigInt.asIntN(64, va(CODE)));
    s.privilege = priv;
    s.mstatus |= 1 << MSTATUS_FS_SHIFT; // the FPU on (Initial)
    s.csr64[2 * C64_MTVEC] = HANDLER | 0;
    s.csr64[2 * C64_SATP] = priv === PRV_M ? 0 : ROOT_TABLE / 4096;
    s.csr64[2 * C64_SATP + 1] = priv === PRV_M ? 0 : 8 << 28; // Sv39
    const regs: Array<[number, bigint]> = [[2, va(STACK)], [10, va(DATA)], [11, va(SCRATCH_DATA)], [5, 0x7654_3210n], [7, -3n], [8, 0x1234_5678n], [9, 77n], [13, 5n], [14, -9n], [31, priv === PRV_S ? 1n : 0n]];
    for (const [r, v] of regs) { s.x[2 * r] = Number(BigInt.asIntN(32, v)); s.x[2 * r + 1] = Number(BigInt.asIntN(32, v >> 32n)); }
    hart.restore(s);
    hart.slowPathOnly = slowOnly;
    hart.sbiExits = priv === PRV_S; // its ecalls are SBI calls, as a kernel's are
    // The VMM's side of exits: the load from 0x100 in M-mode reads a device (a fixed value), an S-mode ecall an SBI call.
    for (let left = steps; left > 0; ) {
      const k = hart.run(left);
      ran += k;
      left -= Math.max(k, 1);
      const reason = hart.exit.reason;
      if (reason === EXIT_MMIO) hart.completeMmio(exits % 2 === 0 ? 0x5a5a_5a5a : 0xa5a5_a5a5, -1); // a value past the small-integer range too
      else if (reason === EXIT_SBI) hart.completeSbi();
      else break;
      exits++;
    }
  }
  // Last, a WFI (then a jump to itself) from run()'s own loop, the timer armed far ahead (the program's
  // stimecmp of 2^63-1 means "never" and skips run()'s timer check): with nothing enabled, in M and in
  // S-mode (run()'s wait, execSystem's TW test); with a delegated software interrupt pending, in
  // S-mode while SIE is off and in U-mode, where it is taken to stvec, the jump (pendingInterrupt's
  // delegation tests at a slice boundary). Each of these deoptimized run(), execSystem or
  // pendingInterrupt in every boot otherwise.
  view.setInt32(WFI_AT - BASE, 0x10500073, true);
  view.setInt32(WFI_AT - BASE + 4, 0x0000006f, true);
  for (const [priv, pending] of [[PRV_M, 0], [PRV_S, 0], [PRV_S, MIP_SSIP], [PRV_U, MIP_SSIP]] as const) {
    const s = hart.save();
    Object.assign(s, { pc: WFI_AT, privilege: priv, mie: pending, mipSoftware: pending, mideleg: pending, mstatus: s.mstatus & ~MSTATUS_SIE, stimecmp: 2 ** 40, waiting: false });
    s.csr64[2 * C64_SATP] = 0;
    s.csr64[2 * C64_SATP + 1] = 0;
    s.csr64[2 * C64_STVEC] = (WFI_AT + 4) | 0;
    s.csr64[2 * C64_STVEC + 1] = 0;
    hart.restore(s);
    hart.slowPathOnly = false;
    ran += hart.run(100);
    const want = pending === 0 ? EXIT_WFI : EXIT_BUDGET;
    if (hart.exit.reason !== want) throw new Error(`the warm-up's WFI (privilege ${priv}, pending ${pending}) ended with exit ${hart.exit.reason}, not ${want}`);
  }
  return { instructions: ran, traps: hart.stats.trapsByCause, exits, deviceAccesses };
}
