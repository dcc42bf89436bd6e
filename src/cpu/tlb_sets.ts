// The software TLB's sets (hart_layout.ts): arrays of tags and RAM offsets in two ways, and the
// invalidations the hart applies to them. Which sets exist and when they are dropped is hart_base.ts.
import * as HL from "./hart_layout.js";
import { ACCESS_FETCH, ACCESS_READ, ACCESS_WRITE } from "./mmu.js";

export const TLB_SIZE = HL.TLB_SIZE;
export const TLB_MASK = TLB_SIZE - 1;
/** A tag no address can have (page tags have their low 12 bits clear). */
export const TLB_INVALID = 1;
/** satp (lo, hi) a U-mode set that caches no address space carries: mode 15, which satp never holds. */
export const NO_SPACE = -1;
/** Entries of the address space an S set remembers for dropping them; beyond this, their arrays are cleared. */
export const SPACE_MAX = 64;

/** One TLB of a way: tag lo/hi words of the virtual page -> RAM byte offset. */
export class TlbArrays {
  constructor(readonly tagLo: Int32Array, readonly tagHi: Int32Array, readonly off: Uint32Array) {}
}

// Classes, not object literals: every set then has one hidden class (`declare`d fields are
// assigned once in the constructor, never first as undefined). Sets built by a literal with a
// spread did not (V8 gave the eleventh a map of its own), and the TLB's invalidations and
// translate() deoptimized on it again and again ("wrong map", ~150 ms of TurboFan a boot).

/** One way of a set: read / write / fetch TLBs (the fast paths' names), and the same by access kind (mmu.ts ACCESS_*), all invalid at first. */
export class TlbWay {
  declare readonly rTagLo: Int32Array; declare readonly rTagHi: Int32Array; declare readonly rOff: Uint32Array;
  declare readonly wTagLo: Int32Array; declare readonly wTagHi: Int32Array; declare readonly wOff: Uint32Array;
  declare readonly xTagLo: Int32Array; declare readonly xTagHi: Int32Array; declare readonly xOff: Uint32Array;
  declare readonly byAccess: readonly TlbArrays[];

  /** The way in `buffer` at `at`, laid out as hart_layout.ts says. */
  constructor(buffer: ArrayBufferLike, at: number) {
    const i32 = (k: number): Int32Array => new Int32Array(buffer, at + k * HL.TLB_ARRAY_BYTES, TLB_SIZE);
    const u32 = (k: number): Uint32Array => new Uint32Array(buffer, at + k * HL.TLB_ARRAY_BYTES, TLB_SIZE);
    const r = new TlbArrays(i32(HL.TLB_R_TAG_LO), i32(HL.TLB_R_TAG_HI), u32(HL.TLB_R_OFF));
    const w = new TlbArrays(i32(HL.TLB_W_TAG_LO), i32(HL.TLB_W_TAG_HI), u32(HL.TLB_W_OFF));
    const x = new TlbArrays(i32(HL.TLB_X_TAG_LO), i32(HL.TLB_X_TAG_HI), u32(HL.TLB_X_OFF));
    for (const a of [r, w, x]) a.tagLo.fill(TLB_INVALID);
    this.rTagLo = r.tagLo; this.rTagHi = r.tagHi; this.rOff = r.off;
    this.wTagLo = w.tagLo; this.wTagHi = w.tagHi; this.wOff = w.off;
    this.xTagLo = x.tagLo; this.xTagHi = x.tagHi; this.xOff = x.off;
    const byAccess: TlbArrays[] = [];
    byAccess[ACCESS_READ] = r;
    byAccess[ACCESS_WRITE] = w;
    byAccess[ACCESS_FETCH] = x;
    this.byAccess = byAccess;
  }
}

/** Way 0 (the fast paths'), and way 1 with the entries fills displaced from it (hart_layout.ts). */
export class TlbSet extends TlbWay {
  declare readonly way1: TlbWay;
  /** Its slot in the state block (hart_layout.ts), and its offset in the memory (-1: private). */
  declare readonly slot: number;
  declare readonly at: number;
  /** Entries filled since the set was last cleared: none, and invalidations skip it. */
  fills = 0;
  /** Write entries filled since then: none, and dropWriteMappings skips it. */
  writeFills = 0;
  /** A U-mode set: the satp (lo, hi) of the address space it caches (NO_SPACE: none), and when it was last chosen. */
  satpLo = NO_SPACE;
  satpHi = NO_SPACE;
  used = 0;
  /**
   * An S-mode set: its entries that belong to the current address space (idx | access << 16),
   * pages without the G bit and user pages; a switch of address space drops them. Past
   * SPACE_MAX, spaceLost has a bit per access kind whose array is cleared instead.
   */
  readonly spaceFills = new Int32Array(SPACE_MAX);
  spaceCount = 0;
  spaceLost = 0;

  /** The set of `slot` in the state block at `base` of `buffer`, or (shared false) in a private buffer. */
  constructor(buffer: ArrayBufferLike, base: number, slot: number, shared: boolean) {
    const buf = shared ? buffer : new ArrayBuffer(HL.TLB_SET_BYTES);
    const at = shared ? HL.tlbSetOffset(base, slot) : 0;
    super(buf, at);
    this.way1 = new TlbWay(buf, at + HL.TLB_WAY_BYTES);
    this.slot = slot;
    this.at = shared ? at : -1;
  }
}

/** Drops every entry of `t` (both ways). */
export function clearSet(t: TlbSet): void {
  t.spaceCount = 0;
  t.spaceLost = 0;
  if (t.fills === 0) return;
  t.fills = 0;
  t.writeFills = 0;
  for (const w of [t, t.way1]) {
    w.rTagLo.fill(TLB_INVALID);
    w.wTagLo.fill(TLB_INVALID);
    w.xTagLo.fill(TLB_INVALID);
  }
}

/** Drops the entries of `t` for the virtual page (tag, hi) at `idx`; true when a fetch entry went. */
export function dropPage(t: TlbSet, idx: number, tag: number, hi: number): boolean {
  if (t.fills === 0) return false;
  let code = false;
  for (const w of [t, t.way1]) {
    if (w.rTagLo[idx] === tag && w.rTagHi[idx] === hi) w.rTagLo[idx] = TLB_INVALID;
    if (w.wTagLo[idx] === tag && w.wTagHi[idx] === hi) w.wTagLo[idx] = TLB_INVALID;
    if (w.xTagLo[idx] === tag && w.xTagHi[idx] === hi) {
      w.xTagLo[idx] = TLB_INVALID;
      code = true;
    }
  }
  return code;
}

/** Drops the write entries of `t` that map RAM page `ramPage`. */
export function dropWritesTo(t: TlbSet, ramPage: number): void {
  if (t.writeFills === 0) return;
  for (const w of [t, t.way1]) {
    const tag = w.wTagLo, off = w.wOff;
    for (let i = 0; i < TLB_SIZE; i++) {
      if (tag[i] !== TLB_INVALID && off[i]! >>> 12 === ramPage) tag[i] = TLB_INVALID;
    }
  }
}

/** The ASID of a satp high word (bits 44-59 of satp). */
export function satpAsid(hi: number): number {
  return (hi >>> 12) & 0xffff;
}

/**
 * Puts (tag, hi) -> off at `idx` of `t`'s TLB for `access`, the entry it displaces into way 1 at
 * the same index (hart_layout.ts); true when there was one.
 */
export function fillEntry(t: TlbSet, access: number, idx: number, tag: number, hi: number, off: number): boolean {
  const a = t.byAccess[access]!, b = t.way1.byAccess[access]!;
  const displaced = a.tagLo[idx] !== TLB_INVALID;
  if (displaced) { b.tagLo[idx] = a.tagLo[idx]!; b.tagHi[idx] = a.tagHi[idx]!; b.off[idx] = a.off[idx]!; }
  a.tagLo[idx] = tag; a.tagHi[idx] = hi; a.off[idx] = off;
  t.fills++;
  if (access === ACCESS_WRITE) t.writeFills++;
  return displaced;
}

/**
 * The RAM offset of page (tag, hi) from way 1 of `t`'s TLB for `access`, swapped into way 0 (its
 * entry into way 1), or -1 when way 1 does not hold it. Both ways are dropped by the same events,
 * so an entry there is as valid as in way 0.
 */
export function swapFromWay1(t: TlbSet, access: number, idx: number, tag: number, hi: number): number {
  const a = t.byAccess[access]!, b = t.way1.byAccess[access]!;
  if (b.tagLo[idx] !== tag || b.tagHi[idx] !== hi) return -1;
  const off = b.off[idx]!;
  b.tagLo[idx] = a.tagLo[idx]!; b.tagHi[idx] = a.tagHi[idx]!; b.off[idx] = a.off[idx]!;
  a.tagLo[idx] = tag; a.tagHi[idx] = hi; a.off[idx] = off;
  return off;
}

/** Records a fill of `t` that belongs to the current address space (see spaceFills). */
export function noteSpaceFill(t: TlbSet, idx: number, access: number): void {
  if (t.spaceCount < SPACE_MAX) t.spaceFills[t.spaceCount++] = idx | (access << 16);
  else t.spaceLost |= 1 << access;
}

/** Drops `t`'s entries of the address space (see spaceFills); true when a fetch entry went. */
export function dropSpaceFills(t: TlbSet): boolean {
  const n = t.spaceCount, lost = t.spaceLost;
  if (n === 0 && lost === 0) return false;
  const lostCode = (lost & (1 << ACCESS_FETCH)) !== 0;
  let code = lostCode;
  for (const w of [t, t.way1]) { // a fill may have moved such an entry to way 1 at its index
    for (let i = 0; i < n; i++) {
      const e = t.spaceFills[i]!, kind = e >>> 16;
      w.byAccess[kind]!.tagLo[e & TLB_MASK] = TLB_INVALID;
      if (kind === ACCESS_FETCH) code = true;
    }
    if ((lost & (1 << ACCESS_READ)) !== 0) w.rTagLo.fill(TLB_INVALID);
    if ((lost & (1 << ACCESS_WRITE)) !== 0) w.wTagLo.fill(TLB_INVALID);
    if (lostCode) w.xTagLo.fill(TLB_INVALID);
  }
  t.spaceCount = 0;
  t.spaceLost = 0;
  return code;
}
