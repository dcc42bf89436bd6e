// What a block of guest code is, before any wasm: scanning one from a page offset (how far the
// compiler can take it, where it may go on), planning the blocks of a page reachable from its
// entries, and how far the interpreter runs to reach the next block start (exec_jit.ts).
// compile_block.ts emits the wasm of the shapes found here.
import { RVC_TABLE } from "../rvc.js";
import { isZbb } from "./emit_zbb.js";

/** Longest block compiled (instructions). */
export const MAX_BLOCK = 64;

/** What a scan of guest code found at a block start. */
export interface BlockShape {
  /** Instructions scanned: the block's, and the one it stops before when the compiler does not do it. */
  interpLen: number;
  /** Leading instructions the compiler handles (≤ interpLen). */
  jitLen: number;
  /** Page offset of the first instruction. */
  start: number;
  /** The raw (expanded) instructions and their lengths, jitLen of them. */
  insns: number[];
  lens: number[];
  /** Page offsets where compiled code may go on from this block (see successorsOfTransfer). */
  next: number[];
  /** The in-page targets of its branches and jumps among `next` (planBlocks compiles one only where the interpreter took a transfer to it: takenBefore). */
  jumps: number[];
  /** The upper halfword of its last instruction when that crosses into the next page (emitTailGuard), else NO_TAIL. */
  tail: number;
  /** Indexes of instructions a branch or jump of the block goes back to: loops inside the block function. */
  heads: Set<number>;
  /** Conditional branch index -> the later instruction's index it goes forward to, inside the block function (no loop head between). */
  forward: Map<number, number>;
}

/** The upper halfword of an instruction across the page end is not known. */
export const NO_TAIL = -1;

const enum Kind { Unsupported, Plain, Transfer }

/** Classifies an expanded instruction: can the compiler do it, and does it end the block? */
function classify(insn: number): Kind {
  if (isZbb(insn)) return Kind.Plain;
  const f3 = (insn >>> 12) & 7;
  const f7 = insn >>> 25;
  switch ((insn >>> 2) & 31) {
    case 13: case 5: return Kind.Plain; // LUI, AUIPC
    case 27: return Kind.Transfer; // JAL
    case 25: return f3 === 0 ? Kind.Transfer : Kind.Unsupported; // JALR
    case 24: return f3 === 2 || f3 === 3 ? Kind.Unsupported : Kind.Transfer; // BRANCH
    case 0: return f3 === 7 ? Kind.Unsupported : Kind.Plain; // LOAD
    case 8: return f3 <= 3 ? Kind.Plain : Kind.Unsupported; // STORE
    case 4: // OP-IMM
      if (f3 === 1) return insn >>> 26 === 0 ? Kind.Plain : Kind.Unsupported;
      if (f3 === 5) return insn >>> 26 === 0 || insn >>> 26 === 0x10 ? Kind.Plain : Kind.Unsupported;
      return Kind.Plain;
    case 6: // OP-IMM-32
      if (f3 === 0) return Kind.Plain;
      if (f3 === 1) return f7 === 0 ? Kind.Plain : Kind.Unsupported;
      if (f3 === 5) return f7 === 0 || f7 === 0x20 ? Kind.Plain : Kind.Unsupported;
      return Kind.Unsupported;
    case 12: // OP
      if (f7 === 0) return Kind.Plain;
      if (f7 === 0x20) return f3 === 0 || f3 === 5 ? Kind.Plain : Kind.Unsupported;
      if (f7 === 1) return Kind.Plain;
      return Kind.Unsupported;
    case 14: // OP-32
      if (f7 === 0) return f3 === 0 || f3 === 1 || f3 === 5 ? Kind.Plain : Kind.Unsupported;
      if (f7 === 0x20) return f3 === 0 || f3 === 5 ? Kind.Plain : Kind.Unsupported;
      if (f7 === 1) return f3 === 0 || f3 >= 4 ? Kind.Plain : Kind.Unsupported;
      return Kind.Unsupported;
    case 3: return f3 <= 1 ? Kind.Plain : Kind.Unsupported; // FENCE, FENCE.I
    case 28: return isSstatusAccess(insn) ? (endsSlice(insn) ? Kind.Transfer : Kind.Plain) : Kind.Unsupported; // SYSTEM: sstatus only
    case 1: case 9: return f3 === 2 || f3 === 3 ? Kind.Plain : Kind.Unsupported; // FLW/FLD, FSW/FSD
    case 11: { // AMO: LR/SC and the read-modify-write ops with wasm atomics (min/max to the interpreter)
      const f5 = insn >>> 27;
      const ok = AMO_RMW[f5] !== undefined || f5 === 3 || (f5 === 2 && ((insn >>> 20) & 31) === 0);
      return (f3 === 2 || f3 === 3) && ok ? Kind.Plain : Kind.Unsupported;
    }
    default: return Kind.Unsupported;
  }
}

/** funct5 of an AMO -> the wasm atomic rmw sub-opcode of its 32-bit form (the 64-bit one is +1). */
export const AMO_RMW: Record<number, number> = { 0x00: 0x1e, 0x01: 0x41, 0x04: 0x3a, 0x08: 0x33, 0x0c: 0x2c };

/** True for instructions that end a block (jumps, branches, fence.i, after which the dispatcher looks for code a device wrote, and sstatus writes). */
function isTransfer(insn: number): boolean {
  const op = (insn >>> 2) & 31;
  return op === 27 || op === 25 || op === 24 || (op === 3 && ((insn >>> 12) & 7) === 1) || (op === 28 && endsSlice(insn));
}

const CSR_SSTATUS = 0x100;

/**
 * csrrs/csrrc/csrrsi/csrrci on sstatus: the kernel's interrupt save, disable and restore. The
 * compiler does these (a write only where it changes nothing but SIE, checked when the operand is a
 * register); csrrw and every other CSR go to the interpreter.
 */
function isSstatusAccess(insn: number): boolean {
  return insn >>> 20 === CSR_SSTATUS && (((insn >>> 12) & 7) & 3) >= 2;
}

/** An sstatus access that writes (rs1 or the immediate nonzero): the interpreter ends its slice after it, so compiled code does too. */
function endsSlice(insn: number): boolean {
  return isSstatusAccess(insn) && ((insn >>> 15) & 31) !== 0;
}

/** Major opcodes (low 7 bits) of 32-bit instructions the fast loop (exec_fast.ts) never runs: SYSTEM, OP-FP and the fused multiply-adds. */
const SLOW_ONLY_OPCODES = new Uint8Array(128);
for (const op of [0x73, 0x53, 0x43, 0x47, 0x4b, 0x4f]) SLOW_ONLY_OPCODES[op] = 1; // a table: this runs at every missed entry

/**
 * Whether the instruction at RAM byte offset `off` is one only the full interpreter runs (a CSR
 * access, ecall, xret, wfi, sfence.vma, FP arithmetic): the JIT then goes straight to execSlow
 * instead of asking the fast loop first (a trap's round trip 1.1-1.6 µs → 0.3 µs, bench_system.ts).
 */
export function fastLoopDeclines(u16: Uint16Array, off: number): boolean {
  return SLOW_ONLY_OPCODES[u16[off >>> 1]! & 0x7f] === 1;
}

/**
 * Whether a block can start at RAM byte offset `off`: its first instruction is one the compiler
 * does (`tail`: the upper half of one across the page end). Entries where none can are not worth compiling.
 */
export function canStartBlock(u16: Uint16Array, off: number, tail = NO_TAIL): boolean {
  const lo = u16[off >>> 1]!;
  if ((lo & 3) !== 3) return classify(RVC_TABLE[lo]!) !== Kind.Unsupported;
  const hi = (off & 0xfff) <= 4092 ? u16[(off >>> 1) + 1]! : tail;
  return hi !== NO_TAIL && classify(lo | (hi << 16)) !== Kind.Unsupported;
}

/**
 * Scans guest code at RAM byte offset `off` (halfword aligned) up to its page end; `tail` is the
 * first halfword of the next virtual page as the hart maps it now, for an instruction across the end.
 */
export function scanBlock(u16: Uint16Array, off: number, tail = NO_TAIL): BlockShape {
  const insns: number[] = [];
  const lens: number[] = [];
  const next: number[] = [];
  const jumps: number[] = [];
  let po = off & 0xfff;
  const pageHalf = (off - po) >>> 1;
  let interpLen = 0;
  let straddle = false;
  while (interpLen < MAX_BLOCK && po <= 4094) {
    let insn = u16[pageHalf + (po >>> 1)]!;
    let len = 2;
    if ((insn & 3) === 3) {
      straddle = po > 4092; // it crosses into the next page: compiled with a guard on its upper half
      if (straddle && tail === NO_TAIL) break;
      insn = (insn | ((straddle ? tail : u16[pageHalf + (po >>> 1) + 1]!) << 16)) | 0;
      len = 4;
    } else {
      insn = RVC_TABLE[insn]!;
    }
    interpLen++;
    if (classify(insn) === Kind.Unsupported) {
      pushIfInPage(next, po + len); // where compiled code can resume after the interpreter ran this one
      break;
    }
    insns.push(insn);
    lens.push(len);
    if (isTransfer(insn)) {
      successorsOfTransfer(insn, po, len, next);
      const t = directTarget(insn, po);
      if (t >= 0 && t <= 4094) jumps.push(t);
    }
    if (endsBlock(insn)) break;
    po += len; // a conditional branch does not end the block: its fall-through path goes on inline
    if (insns.length === MAX_BLOCK || po > 4094) pushIfInPage(next, po);
  }
  const start = off & 0xfff;
  const { heads, forward, inside } = innerFlow(insns, lens, start);
  // Where the block's own code goes on inline (a loop, a forward branch, a branch's fall-through) needs no function of its own.
  const outside = next.filter((q) => !inside.has(q));
  return { start, interpLen, jitLen: insns.length, insns, lens, next: outside, jumps: jumps.filter((q) => !inside.has(q)), tail: straddle && insns.length === interpLen ? tail : NO_TAIL, heads, forward };
}

/** The in-page target of a branch (op 24) or JAL (op 27) at page offset `at`, or -1 for other instructions. */
function directTarget(insn: number, at: number): number {
  const op = (insn >>> 2) & 31;
  if (op === 24) return at + (((insn >> 31) << 12) | (((insn >>> 7) & 1) << 11) | (((insn >>> 25) & 0x3f) << 5) | (((insn >>> 8) & 0xf) << 1));
  if (op === 27) return at + (((insn >> 31) << 20) | (((insn >>> 12) & 0xff) << 12) | (((insn >>> 20) & 1) << 11) | (((insn >>> 21) & 0x3ff) << 1));
  return -1;
}

/**
 * The control flow a block function keeps inside itself: loop heads (instructions a branch or jump
 * of the block goes back to: a wasm `loop` from there to the block's end), forward branches to a
 * later instruction with no loop head between (a wasm `block` the branch leaves: wasm's structured
 * control flow cannot jump into a loop), and the page offsets the block's code reaches inline
 * (those, their fall-throughs, the block's start): none of them needs a block function of its own.
 * Before, each was compiled again as a block of its own, a copy of the rest of this one: a boot
 * compiled every instruction 3.4 times.
 */
function innerFlow(insns: number[], lens: number[], start: number): { heads: Set<number>; forward: Map<number, number>; inside: Set<number> } {
  const indexAt = new Map<number, number>();
  const at: number[] = [];
  let po = start;
  for (let k = 0; k < insns.length; k++) {
    indexAt.set(po, k);
    at.push(po);
    po += lens[k]!;
  }
  const heads = new Set<number>();
  const targets: Array<[number, number]> = [];
  for (let k = 0; k < insns.length; k++) {
    const j = indexAt.get(directTarget(insns[k]!, at[k]!));
    if (j === undefined) continue;
    if (j <= k) heads.add(j);
    else if (((insns[k]! >>> 2) & 31) === 24) targets.push([k, j]);
  }
  const inside = new Set<number>([start]);
  for (const h of heads) inside.add(at[h]!);
  for (let k = 0; k + 1 < insns.length; k++) if (((insns[k]! >>> 2) & 31) === 24) inside.add(at[k + 1]!);
  const forward = new Map<number, number>();
  const intoLoop: number[] = [];
  for (const [k, j] of targets) {
    let headBetween = false;
    for (const h of heads) if (h > k && h < j) headBetween = true;
    if (headBetween) intoLoop.push(at[j]!); // into a loop from outside it: the target's own block function
    else forward.set(k, j);
  }
  for (const j of forward.values()) inside.add(at[j]!);
  for (const q of intoLoop) inside.delete(q);
  return { heads, forward, inside };
}

/**
 * The blocks to compile in one module for the page at RAM byte offset `pageOff`: every block
 * reachable inside the page from the page offsets `work` (in-page branch and jump targets,
 * fall-throughs, return sites of calls), breadth first, at most `max`, none that `have` has.
 * An offset the interpreter ran from (`work` as given) inside a block already planned is run by
 * that block's code, not compiled again (after a hand-back there the interpreter runs on to the
 * next block start); `work` past the first `seeds` (a profile's block starts) are entries, compiled
 * even inside another block. A block runs on through the start of another (ending it there with a jump
 * made the shell loop 20% slower), and a jump's target inside another block is compiled again.
 * With `taken` (the taken-transfer map), a branch or jump target the interpreter never went to is
 * left out (return sites and entries are not): in a boot without a profile 42% of the blocks
 * compiled without it never ran, most of them such targets; one that runs later is a missed entry.
 */
export function planBlocks(u16: Uint16Array, pageOff: number, work: number[], have: PageOffsets | null, max: number, tail = NO_TAIL, seeds = work.length, taken: Uint8Array | null = null): BlockShape[] {
  const starts = new Set<number>();
  const covered = new Set<number>();
  const isStart = (q: number): boolean => starts.has(q) || have?.has(q) === true;
  const shapes: BlockShape[] = [];
  for (let i = 0; i < work.length && shapes.length < max; i++) {
    const po = work[i]!;
    if (isStart(po) || (i < seeds && covered.has(po))) continue;
    starts.add(po);
    const shape = scanBlock(u16, pageOff + po, tail);
    if (shape.jitLen > 0) shapes.push(shape);
    let at = po;
    for (let k = 0; k < shape.jitLen; k++) { covered.add(at); at += shape.lens[k]!; }
    for (const q of shape.next) {
      if (isStart(q)) continue;
      // A branch or jump target the interpreter never went to is left out: it compiles once it is entered often (a missed entry).
      if (taken !== null && !takenBefore(taken, pageOff + q) && shape.jumps.includes(q)) continue;
      work.push(q);
    }
  }
  return shapes;
}

/** Bits of the taken-transfer map (TAKEN_MAP_BYTES): a bit per RAM halfword, modulo its size. */
export const TAKEN_MAP_BYTES = 1 << 22;
const TAKEN_MASK = TAKEN_MAP_BYTES * 8 - 1;

/** True when the interpreter took a branch or jump to RAM byte offset `off` (or to another offset of the same bit). */
export function takenBefore(taken: Uint8Array, off: number): boolean {
  const i = (off >>> 1) & TAKEN_MASK;
  return (taken[i >>> 3]! & (1 << (i & 7))) !== 0;
}

/** Marks RAM halfword `half` as the target of a branch or jump the interpreter took (exec_fast.ts). */
export function noteTaken(taken: Uint8Array, half: number): void {
  const i = half & TAKEN_MASK;
  taken[i >>> 3] |= 1 << (i & 7);
}

/** Jumps and fence.i end a compiled block; a conditional branch leaves it only when taken. */
export function endsBlock(insn: number): boolean {
  return isTransfer(insn) && ((insn >>> 2) & 31) !== 24;
}

/**
 * Instructions from RAM byte offset `off` up to and including the first control transfer, the
 * page end or MAX_BLOCK: what the interpreter runs to reach the next block start (at least 1).
 * With the block lookup (`lookup`, pairs of RAM offset + 1 and slot, direct-mapped by halfword
 * under `mask`), it stops before a later instruction that starts a compiled block: from inside a
 * block, 64 instructions on would land inside the next one, and the one after (sha256's rounds).
 */
export function blockLength(u16: Uint16Array, off: number, lookup: Int32Array | null = null, mask = 0): number {
  let po = off & 0xfff;
  const pageOff = off - po;
  const pageHalf = pageOff >>> 1;
  let n = 0;
  while (n < MAX_BLOCK && po <= 4094) {
    if (lookup !== null && n !== 0 && lookup[(((pageOff + po) >>> 1) & mask) << 1] === pageOff + po + 1) break;
    let insn = u16[pageHalf + (po >>> 1)]!;
    let len = 2;
    if ((insn & 3) === 3) {
      if (po > 4092) break;
      insn = insn | (u16[pageHalf + (po >>> 1) + 1]! << 16);
      len = 4;
    } else {
      insn = RVC_TABLE[insn]!;
    }
    n++;
    if (isTransfer(insn)) break;
    po += len;
  }
  return n > 0 ? n : 1;
}

function pushIfInPage(out: number[], po: number): void {
  if (po >= 0 && po <= 4094) out.push(po);
}

/** Page offsets a transfer at `po` may reach that are worth compiling: in-page targets, and the return site of a call. */
function successorsOfTransfer(insn: number, po: number, len: number, out: number[]): void {
  const rd = (insn >>> 7) & 31;
  switch ((insn >>> 2) & 31) {
    case 24: // BRANCH
      pushIfInPage(out, directTarget(insn, po));
      pushIfInPage(out, po + len);
      break;
    case 27: // JAL
      pushIfInPage(out, directTarget(insn, po));
      if (rd !== 0) pushIfInPage(out, po + len);
      break;
    case 3: case 28: // FENCE.I, an sstatus write: the next instruction starts a block
      pushIfInPage(out, po + len);
      break;
    default: // JALR
      if (rd !== 0) pushIfInPage(out, po + len);
  }
}

/** Page offsets of a page's compiled blocks (a Set, or the cache's Map of them). */
export interface PageOffsets {
  has(po: number): boolean;
}
