// A hart's state block in guest-RAM memory (above RAM, see seams/guest_ram.ts): byte offsets that
// the interpreter reaches through typed-array views and the JIT's wasm code through loads/stores.
import { HART_SLOT_BYTES } from "../seams/guest_ram.js";

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
/** Four software-TLB sets (index = privilege; set 2 unused), each nine arrays of TLB_SIZE int32. */
export const HART_TLB = 4096;
export const TLB_ARRAY_BYTES = TLB_SIZE * 4;
export const TLB_SET_BYTES = 9 * TLB_ARRAY_BYTES;
/** Array order inside a set (offset = index * TLB_ARRAY_BYTES). */
export const TLB_R_TAG_LO = 0, TLB_R_TAG_HI = 1, TLB_R_OFF = 2;
export const TLB_W_TAG_LO = 3, TLB_W_TAG_HI = 4, TLB_W_OFF = 5;
export const TLB_X_TAG_LO = 6, TLB_X_TAG_HI = 7, TLB_X_OFF = 8;
export const HART_STATE_BYTES = HART_TLB + 4 * TLB_SET_BYTES;

if (HART_STATE_BYTES > HART_SLOT_BYTES) throw new Error(`hart state block (${HART_STATE_BYTES} bytes) outgrew HART_SLOT_BYTES in seams/guest_ram.ts`);

/** Offset of TLB set `priv` in a state block at `base`. */
export function tlbSetOffset(base: number, priv: number): number {
  return base + HART_TLB + priv * TLB_SET_BYTES;
}
