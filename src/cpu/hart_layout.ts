// A hart's state block in guest-RAM memory (above RAM, see seams/guest_ram.ts): byte offsets that
// the interpreter reaches through typed-array views and the JIT's wasm code through loads/stores.
import { HART_JC_GEN_OFFSET, HART_SLOT_BYTES } from "../seams/guest_ram.js";

/** Entries per software-TLB array (direct-mapped by virtual page number). */
export const TLB_SIZE = 2048;

/** x0..x31, 8 bytes each, little-endian (the interpreter's lo/hi int32 pairs). */
export const HART_X = 0;
/** f0..f31, 8 bytes each. */
export const HART_F = 256;
/** pc as a float64 (a signed 64-bit address, exact for canonical Sv39/Sv48 addresses). */
export const HART_PC = 512;
/** int32 the JIT's compiled code sets on return: one of the JIT_* values below. */
export const HART_JIT_STATUS = 520;
/** Go on at pc: the dispatcher looks up its page. */
export const JIT_GO_ON = 0;
/** pc is in a compiled page but not one of its entries. */
export const JIT_NOT_ENTRY = 1;
/** The instruction at pc needs the interpreter (a TLB miss, a misaligned access, an instruction not compiled, too little budget). */
export const JIT_INTERPRET = 2;
/** The instruction before pc wrote a CSR that can enable an interrupt (sstatus): the slice ends there, as the interpreter's does. */
export const JIT_SLICE_END = 3;
/**
 * Control state as int32 words (index = W_* below): privilege, CSRs, pending interrupts, the
 * LR/SC reservation, run state. With x, f and pc this is the hart's whole architectural state:
 * another thread reads it here while the hart is parked, and a copy of [0, HART_TLB) saves it.
 */
export const HART_WORDS = 1024;
export const WORD_COUNT = 256;
export const W_PRIV = 0;
/** Privilege of loads and stores (differs from W_PRIV under mstatus.MPRV). */
export const W_DATA_PRIV = 1;
export const W_MSTATUS = 2;
export const W_MIE = 3;
/** Software-writable pending bits (SSIP, STIP, SEIP). */
export const W_MIP_SW = 4;
/** Pending bits driven by devices (CLINT, PLIC) and by stimecmp. */
export const W_MIP_DEV = 5;
export const W_MEDELEG = 6;
export const W_MIDELEG = 7;
export const W_MCOUNTEREN = 8;
export const W_SCOUNTEREN = 9;
export const W_MCOUNTINHIBIT = 10;
export const W_MENVCFG = 11;
export const W_SENVCFG = 12;
export const W_SATP_MODE = 13;
export const W_FRM = 14;
export const W_FFLAGS = 15;
/** 1 while the hart sleeps in WFI. */
export const W_WAITING = 16;
/** 1 while the hart is stopped (SBI HSM). */
export const W_STOPPED = 17;
export const W_RES_VALID = 18;
export const W_RES_LO = 19;
export const W_RES_HI = 20;
export const W_RES_SIZE = 21;
/** A CSR read's result (lo, hi): csr.ts returns values here. */
export const W_CSR_LO = 22;
export const W_CSR_HI = 23;
/** The JIT's data and fetch TLB sets (offsets in the memory) for compiled code, set before it runs (exec_jit.ts). */
export const W_JIT_DS = 24;
export const W_JIT_XS = 25;
/** The generation of the jump cache (HART_JUMP_CACHE): an entry counts only if it was made in this one. */
export const W_JC_GEN = 26;
/** The fetch TLB set's slot << 16, which the jump cache keys entries by (see HART_JUMP_CACHE), set with W_JIT_XS. */
export const W_JIT_XKEY = 27;
/** 64-bit CSRs as lo/hi pairs (slot order: csr.ts C64_*). */
export const W_C64 = 32;
export const W_PMPCFG = 64;
export const W_PMPCFG_COUNT = 16;
export const W_PMPADDR = 80;
export const W_PMPADDR_COUNT = 128;
/** Control state that needs doubles (index = D_* below). */
export const HART_DOUBLES = 2048;
export const DOUBLE_COUNT = 16;
/** Instructions retired (mcycle/minstret derive from it, see csr.ts). */
export const D_INSTRET = 0;
/** mcycle / minstret offsets from instret, indexed by counter (csr.ts COUNTER_*): [1, 4). */
export const D_COUNTER_DELTA = 1;
/** Their values while mcountinhibit froze them: [4, 7). */
export const D_COUNTER_FROZEN = 4;
/** stimecmp (Sstc through the SBI timer), Infinity when off. */
export const D_STIMECMP = 7;
export const D_SATP_PPN = 8;
export const D_RES_ADDR = 9;

/**
 * Software-TLB sets, each two ways of nine arrays of TLB_SIZE int32, in TLB_SLOTS slots: slot 1 is
 * S-mode's, TLB_SLOT_SUM S-mode's data accesses' while mstatus.SUM is set (user pages too), slot 3
 * M-mode's, and U_SLOTS hold U-mode's, one per recent address space (satp's ASID and root: a
 * switch back finds its entries, hart_base.ts); slot 2's room holds the jump cache.
 * Way 0 is the one every fast path looks at; a fill moves the entry it displaces to way 1 at the
 * same index, where translate() and compiled code's translate function find it: two hot pages 8
 * MiB apart (the index is the page number's low 11 bits) no longer miss on every access (one
 * shell loop in ~8 ran 3x slower so).
 */
export const HART_TLB = 4096;
export const TLB_ARRAY_BYTES = TLB_SIZE * 4;
export const TLB_WAY_BYTES = 9 * TLB_ARRAY_BYTES;
export const TLB_SET_BYTES = 2 * TLB_WAY_BYTES;
export const TLB_SLOT_S = 1, TLB_SLOT_M = 3, TLB_SLOT_SUM = 11;
export const U_SLOTS: readonly number[] = [0, 4, 5, 6, 7, 8, 9, 10];
export const TLB_SLOTS = 12;
/**
 * The JIT's jump cache (jit/dispatcher.ts): JC_ENTRIES of (pc low word, pc high word ^ W_JIT_XKEY,
 * generation, table slot), so `go` finds the block at a virtual pc without the fetch TLB and the
 * lookup. The key keeps sets apart: a pc with a fetch-TLB entry has a high word in [0, 0x7fff] or
 * [0xffff8000, 0xffffffff] (a canonical Sv39/Sv48 address, or RAM below 4 GiB), which slot << 16
 * changes only in bits 16-19. Not saved in snapshots (below HART_TLB is).
 */
export const HART_JUMP_CACHE = HART_TLB + 2 * TLB_SET_BYTES;
export const JC_ENTRIES = 4096;
export const JC_ENTRY_BYTES = 16;
/** Array order inside a way (offset = index * TLB_ARRAY_BYTES, plus TLB_WAY_BYTES for way 1). */
export const TLB_R_TAG_LO = 0, TLB_R_TAG_HI = 1, TLB_R_OFF = 2;
export const TLB_W_TAG_LO = 3, TLB_W_TAG_HI = 4, TLB_W_OFF = 5;
export const TLB_X_TAG_LO = 6, TLB_X_TAG_HI = 7, TLB_X_OFF = 8;
export const HART_STATE_BYTES = HART_TLB + TLB_SLOTS * TLB_SET_BYTES;

if (HART_WORDS + 4 * WORD_COUNT > HART_DOUBLES || HART_DOUBLES + 8 * DOUBLE_COUNT > HART_TLB) throw new Error("hart_layout.ts: the control regions overlap");
if (HART_WORDS + 4 * W_JC_GEN !== HART_JC_GEN_OFFSET) throw new Error("hart_layout.ts: W_JC_GEN and HART_JC_GEN_OFFSET in seams/guest_ram.ts disagree");
if (JC_ENTRIES * JC_ENTRY_BYTES > TLB_SET_BYTES) throw new Error("hart_layout.ts: the jump cache outgrew TLB set 2's room");
if (TLB_SLOTS > 16 || TLB_SLOT_SUM >= TLB_SLOTS || U_SLOTS.some((u) => u === TLB_SLOT_S || u === TLB_SLOT_M || u === TLB_SLOT_SUM || u === 2 || u >= TLB_SLOTS)) throw new Error("hart_layout.ts: TLB slots overlap");
if (HART_STATE_BYTES > HART_SLOT_BYTES) throw new Error(`hart state block (${HART_STATE_BYTES} bytes) outgrew HART_SLOT_BYTES in seams/guest_ram.ts`);

/** Offset of the TLB set in `slot` of a state block at `base`. */
export function tlbSetOffset(base: number, slot: number): number {
  return base + HART_TLB + slot * TLB_SET_BYTES;
}
