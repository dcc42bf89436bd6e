// Loads, stores and fetches off the fast path: translation and TLB fill, misaligned and device
// accesses (MMIO exits), the A extension and FP loads/stores.
import { EXIT_MMIO } from "./exit.js";
import * as KC from "./constants.js";
import * as MMU from "./mmu.js";
import * as AT from "./atomics.js";
import { HartTraps } from "./hart_traps.js";
import { TWO32, TLB_MASK, PTE_G, PTE_U } from "./hart_base.js";
import { fillEntry, noteSpaceFill, swapFromWay1 } from "./tlb_sets.js";

// Module-local copies of imported bindings: ESM loaders may turn each cross-module read into a
// getter call, which showed up at several percent in profiles of the interpreter loop.
const { ACCESS_FETCH, ACCESS_READ, ACCESS_WRITE, WALK_ACCESS_FAULT, WALK_LEAF, walk } = MMU;
const { amo32, amo64, loadReserved64, oldWords, storeConditional32, storeConditional64 } = AT;
const {
  CAUSE_FETCH_ACCESS, CAUSE_FETCH_PAGE_FAULT, CAUSE_ILLEGAL_INSTRUCTION, CAUSE_LOAD_ACCESS,
  CAUSE_LOAD_PAGE_FAULT, CAUSE_MISALIGNED_LOAD, CAUSE_MISALIGNED_STORE, CAUSE_STORE_ACCESS,
  CAUSE_STORE_PAGE_FAULT, MSTATUS_FS, PRV_M, PRV_S, SATP_BARE,
} = KC;

export abstract class HartMemory extends HartTraps {
  /**
   * Translate virtual (lo, hi) for `access`; fills the matching TLB for RAM pages.
   * Returns the physical address, or -1 after raising the fault.
   */
  protected translate(lo: number, hi: number, access: number): number {
    const hit = this.fromWay1(lo, hi, access);
    if (hit >= 0) return this.ram.base + hit + (lo & 0xfff);
    const priv = access === ACCESS_FETCH ? this.priv : this.dataPriv;
    let pa: number;
    let walked = false;
    if (priv === PRV_M || this.satpMode === SATP_BARE) {
      pa = hi < 0 ? -1 : hi * TWO32 + (lo >>> 0);
      if (pa < 0) {
        this.raise(access === ACCESS_FETCH ? CAUSE_FETCH_ACCESS : access === ACCESS_READ ? CAUSE_LOAD_ACCESS : CAUSE_STORE_ACCESS, lo, hi);
        return -1;
      }
    } else {
      pa = walk(this.ram, this.satpMode, this.satpPpn, lo, hi, access, priv, this.mstatus);
      walked = pa >= 0;
      if (pa < 0) {
        const access_ = pa === WALK_ACCESS_FAULT;
        const cause = access === ACCESS_FETCH
          ? (access_ ? CAUSE_FETCH_ACCESS : CAUSE_FETCH_PAGE_FAULT)
          : access === ACCESS_READ
            ? (access_ ? CAUSE_LOAD_ACCESS : CAUSE_LOAD_PAGE_FAULT)
            : (access_ ? CAUSE_STORE_ACCESS : CAUSE_STORE_PAGE_FAULT);
        this.raise(cause, lo, hi);
        return -1;
      }
    }
    const ram = this.ram;
    if (pa >= ram.base && pa < ram.end) {
      const idx = (lo >>> 12) & TLB_MASK;
      const tag = lo & -4096;
      const off = pa - (lo & 0xfff) - ram.base;
      if (ram.lazyState !== null) ram.ensurePresent(off, 4096); // lazy restore: the page comes in on first touch
      if (walked) {
        if (WALK_LEAF[0] !== 0) this.noteSuperpage(lo, hi, WALK_LEAF[0]);
        // An S-mode entry of a page that is not global (or of a user page, allowed by SUM) belongs to this address space.
        if (priv === PRV_S && (WALK_LEAF[1] & (PTE_U | PTE_G)) !== PTE_G) noteSpaceFill(access === ACCESS_FETCH ? this.xSet : this.dSet, idx, access);
      }
      this.tlbFills++;
      if (access === ACCESS_WRITE) {
        if (this.ram.codePages[off >>> 12] !== 0) this.codeWritten(off >>> 12);
        // Dirty log (seams/guest_ram.ts): a write-TLB entry exists only for a page marked written.
        const page = off / 4096;
        Atomics.or(ram.dirty, page >>> 5, 1 << (page & 31));
      }
      const displaced = fillEntry(access === ACCESS_FETCH ? this.xSet : this.dSet, access, idx, tag, hi, off);
      if (displaced && access === ACCESS_FETCH) this.bumpJumpCache(); // the entry replaced may be cached there
    }
    return pa;
  }

  /** The RAM offset of (lo, hi)'s page from way 1 of the TLB for `access`, swapped into way 0; -1 when it is not there. */
  private fromWay1(lo: number, hi: number, access: number): number {
    const off = swapFromWay1(access === ACCESS_FETCH ? this.xSet : this.dSet, access, (lo >>> 12) & TLB_MASK, lo & -4096, hi);
    if (off >= 0 && access === ACCESS_FETCH) this.bumpJumpCache(); // as any change of a fetch entry
    return off;
  }

  /** A store will map RAM page `page`, on which compiled code depends: every JIT thread's code of it goes first (exec_jit.ts forgets its own record too). */
  protected codeWritten(page: number): void {
    this.ram.dropCode(page);
  }

  /** Read one byte at virtual (lo, hi) through translation; -1 after raising a fault. */
  protected readByte(lo: number, hi: number): number {
    const idx = (lo >>> 12) & TLB_MASK;
    if (this.rTagLo[idx] === (lo & -4096) && this.rTagHi[idx] === hi) return this.u8[this.rOff[idx] + (lo & 0xfff)];
    const pa = this.translate(lo, hi, ACCESS_READ);
    if (pa < 0) return -1;
    const ram = this.ram;
    if (pa >= ram.base && pa < ram.end) return this.u8[pa - ram.base];
    // Misaligned device accesses are not split into exits: only in-vCPU devices answer them.
    const v = this.vcpuDevices.read(pa, 1);
    if (this.vcpuDevices.fault) { this.raise(CAUSE_LOAD_ACCESS, lo, hi); return -1; }
    return v & 0xff;
  }

  protected writeByte(lo: number, hi: number, v: number): boolean {
    const idx = (lo >>> 12) & TLB_MASK;
    if (this.wTagLo[idx] === (lo & -4096) && this.wTagHi[idx] === hi) { this.u8[this.wOff[idx] + (lo & 0xfff)] = v; return true; }
    const pa = this.translate(lo, hi, ACCESS_WRITE);
    if (pa < 0) return false;
    const ram = this.ram;
    if (pa >= ram.base && pa < ram.end) { this.u8[pa - ram.base] = v; return true; }
    this.vcpuDevices.write(pa, 1, v & 0xff);
    if (this.vcpuDevices.fault) { this.raise(CAUSE_STORE_ACCESS, lo, hi); return false; }
    return true;
  }

  /** Load of 1 << (f3 & 3) bytes (f3 = load funct3) into ldLo/ldHi. False after raising a fault. */
  protected loadSlow(lo: number, hi: number, f3: number): boolean {
    const size = 1 << (f3 & 3);
    let vl = 0, vh = 0;
    if ((lo & (size - 1)) === 0) {
      // TLB first: FP loads come here directly, and a page walk per access dominated FP-heavy code.
      const idx = (lo >>> 12) & TLB_MASK;
      const hit = this.rTagLo[idx] === (lo & -4096) && this.rTagHi[idx] === hi;
      const ram = this.ram;
      const pa = hit ? this.rOff[idx] + (lo & 0xfff) + ram.base : this.translate(lo, hi, ACCESS_READ);
      if (pa < 0) return false;
      if (pa >= ram.base && pa + size <= ram.end) {
        const off = pa - ram.base;
        if (size === 1) vl = this.u8[off];
        else if (size === 2) vl = this.u16[off >>> 1];
        else if (size === 4) vl = this.i32[off >>> 2];
        else { this.d64[0] = this.f64[off >>> 3]; vl = this.d32[0]; vh = this.d32[1]; } // one host access: no torn doubleword
      } else if (this.vcpuDevices.claims(pa)) {
        const d = this.vcpuDevices;
        vl = d.read(pa, size as 1 | 2 | 4 | 8);
        if (size === 8) vh = d.readHigh;
        if (d.fault) { this.raise(CAUSE_LOAD_ACCESS, lo, hi); return false; }
      } else {
        const e = this.exit;
        if (!this.mmioReplay || e.mmioWrite || e.mmioAddr !== pa || e.mmioSize !== size) return this.requestMmio(lo, hi, pa, size, false, 0, 0);
        this.mmioReplay = false;
        vl = e.mmioValueLo;
        vh = e.mmioValueHi;
      }
    } else {
      // Misaligned: byte by byte, each byte translated (may cross a page).
      // Low to high, so a fault reports the first byte inside the unmapped page.
      for (let i = 0; i < size; i++) {
        const s = (lo >>> 0) + i;
        const b = this.readByte(s | 0, s >= TWO32 ? (hi + 1) | 0 : hi);
        if (b < 0) return false;
        if (i >= 4) vh |= b << ((i - 4) * 8); else vl |= b << (i * 8);
      }
    }
    // Extend to 64 bits per funct3.
    switch (f3) {
      case 0: vl = (vl << 24) >> 24; vh = vl >> 31; break;
      case 1: vl = (vl << 16) >> 16; vh = vl >> 31; break;
      case 2: vl |= 0; vh = vl >> 31; break;
      case 4: vl &= 0xff; vh = 0; break;
      case 5: vl &= 0xffff; vh = 0; break;
      case 6: vl |= 0; vh = 0; break;
      default: break;
    }
    this.ldLo = vl;
    this.ldHi = vh;
    return true;
  }

  /** Store of 1 << f3 bytes. False after raising a fault. */
  protected storeSlow(lo: number, hi: number, f3: number, vl: number, vh: number): boolean {
    const size = 1 << f3;
    if ((lo & (size - 1)) === 0) {
      const idx = (lo >>> 12) & TLB_MASK;
      const hit = this.wTagLo[idx] === (lo & -4096) && this.wTagHi[idx] === hi;
      const ram = this.ram;
      const pa = hit ? this.wOff[idx] + (lo & 0xfff) + ram.base : this.translate(lo, hi, ACCESS_WRITE);
      if (pa < 0) return false;
      if (pa >= ram.base && pa + size <= ram.end) {
        const off = pa - ram.base;
        if (size === 1) this.u8[off] = vl;
        else if (size === 2) this.u16[off >>> 1] = vl;
        else if (size === 4) this.i32[off >>> 2] = vl;
        else { this.d32[0] = vl; this.d32[1] = vh; this.f64[off >>> 3] = this.d64[0]; }
        return true;
      }
      const v = size === 1 ? vl & 0xff : size === 2 ? vl & 0xffff : vl >>> 0;
      if (this.vcpuDevices.claims(pa)) {
        this.vcpuDevices.write(pa, size as 1 | 2 | 4 | 8, v, vh >>> 0);
        if (this.vcpuDevices.fault) { this.raise(CAUSE_STORE_ACCESS, lo, hi); return false; }
        return true;
      }
      const e = this.exit;
      if (!this.mmioReplay || !e.mmioWrite || e.mmioAddr !== pa || e.mmioSize !== size) {
        return this.requestMmio(lo, hi, pa, size, true, v, size === 8 ? vh >>> 0 : 0);
      }
      this.mmioReplay = false; // the VMM performed this store
      return true;
    }
    // Misaligned: check every byte translates before writing any, so a fault leaves memory unchanged.
    // The write TLB first: a walk per byte made a kernel memcpy to an unaligned buffer 8 walks a store.
    for (let i = 0; i < size; i++) {
      const s = (lo >>> 0) + i;
      const bl = s | 0, bh = s >= TWO32 ? (hi + 1) | 0 : hi;
      const idx = (bl >>> 12) & TLB_MASK;
      if (this.wTagLo[idx] === (bl & -4096) && this.wTagHi[idx] === bh) continue;
      if (this.translate(bl, bh, ACCESS_WRITE) < 0) return false;
    }
    for (let i = 0; i < size; i++) {
      const s = (lo >>> 0) + i;
      const b = i >= 4 ? (vh >>> ((i - 4) * 8)) & 0xff : (vl >>> (i * 8)) & 0xff;
      if (!this.writeByte(s | 0, s >= TWO32 ? (hi + 1) | 0 : hi, b)) return false;
    }
    return true;
  }

  /** Fetch the halfword at virtual pc; caches the code page. -1 after raising a fault. */
  protected fetchHalf(pc: number, cachePage: boolean): number {
    const lo = pc | 0;
    const hi = Math.floor(pc / TWO32) | 0;
    const idx = (lo >>> 12) & TLB_MASK;
    let pa: number;
    const ram = this.ram;
    if (this.xTagLo[idx] === (lo & -4096) && this.xTagHi[idx] === hi) {
      pa = this.xOff[idx] + (lo & 0xfff) + ram.base;
    } else {
      pa = this.translate(lo, hi, ACCESS_FETCH);
      if (pa < 0) return -1;
    }
    if (pa >= ram.base && pa + 2 <= ram.end) {
      if (cachePage) {
        this.codeVBase = pc - (lo & 0xfff);
        this.codeOff = pa - (lo & 0xfff) - ram.base;
      }
      return this.u16[(pa - ram.base) >>> 1];
    }
    // Executing from a device: only in-vCPU ones answer (no caching); the rest is an access fault.
    if (cachePage) this.codeVBase = NaN;
    const v = this.vcpuDevices.read(pa, 2);
    if (this.vcpuDevices.fault) { this.raise(CAUSE_FETCH_ACCESS, lo, hi); return -1; }
    return v & 0xffff;
  }

  /** Slow instruction fetch (page change, page crossing, ROM). Returns raw bits, -1 after a fault. */
  protected fetchSlow(): number {
    const pc = this.pc;
    const h0 = this.fetchHalf(pc, true);
    if (h0 < 0 || (h0 & 3) !== 3) return h0;
    const h1 = this.fetchHalf(pc + 2, false);
    if (h1 < 0) return -1;
    return (h0 | (h1 << 16)) | 0;
  }

  /** Ends the instruction at pc with an MMIO exit (it re-executes after completeMmio). */
  protected requestMmio(lo: number, hi: number, pa: number, size: number, write: boolean, vl: number, vh: number): false {
    const e = this.exit;
    e.mmioAddr = pa;
    e.mmioSize = size as 1 | 2 | 4 | 8;
    e.mmioWrite = write;
    e.mmioValueLo = vl;
    e.mmioValueHi = vh;
    this.mmioVLo = lo;
    this.mmioVHi = hi;
    this.mmioReplay = false;
    this.exitPending = EXIT_MMIO;
    return false;
  }

  /** Translate an AMO/LR/SC address (aligned, RAM only). Returns the RAM byte offset or -1 after a fault. */
  protected atomicOffset(lo: number, hi: number, size: number, isLr: boolean): number {
    if ((lo & (size - 1)) !== 0) {
      this.raise(isLr ? CAUSE_MISALIGNED_LOAD : CAUSE_MISALIGNED_STORE, lo, hi);
      return -1;
    }
    const idx = (lo >>> 12) & TLB_MASK;
    const tag = lo & -4096;
    if (isLr) {
      if (this.rTagLo[idx] === tag && this.rTagHi[idx] === hi) return this.rOff[idx] + (lo & 0xfff);
    } else if (this.wTagLo[idx] === tag && this.wTagHi[idx] === hi) {
      return this.wOff[idx] + (lo & 0xfff);
    }
    const pa = this.translate(lo, hi, isLr ? ACCESS_READ : ACCESS_WRITE);
    if (pa < 0) return -1;
    const ram = this.ram;
    if (pa < ram.base || pa + size > ram.end) {
      // Atomics on devices are not supported: access fault.
      this.raise(isLr ? CAUSE_LOAD_ACCESS : CAUSE_STORE_ACCESS, lo, hi);
      return -1;
    }
    return pa - ram.base;
  }

  /** Executes one A-extension instruction. False after raising a fault. */
  protected execAtomic(insn: number): boolean {
    const f3 = (insn >>> 12) & 7;
    const rd = (insn >>> 7) & 31;
    const rs1 = (insn >>> 15) & 31;
    const rs2 = (insn >>> 20) & 31;
    const f5 = insn >>> 27;
    const x = this.x;
    if (f3 !== 2 && f3 !== 3) { this.raise(CAUSE_ILLEGAL_INSTRUCTION, insn, 0); return false; }
    const size = f3 === 2 ? 4 : 8;
    const lo = x[2 * rs1], hi = x[2 * rs1 + 1];
    const bl = x[2 * rs2], bh = x[2 * rs2 + 1];
    const isLr = f5 === 2;
    if (isLr && rs2 !== 0) { this.raise(CAUSE_ILLEGAL_INSTRUCTION, insn, 0); return false; }
    switch (f5) {
      case 0x00: case 0x01: case 0x02: case 0x03: case 0x04: case 0x08: case 0x0c:
      case 0x10: case 0x14: case 0x18: case 0x1c:
        break;
      default:
        this.raise(CAUSE_ILLEGAL_INSTRUCTION, insn, 0);
        return false;
    }
    const off = this.atomicOffset(lo, hi, size, isLr);
    if (off < 0) return false;
    this.atomicAt(off, f5, size === 8, bl, bh);
    if (rd !== 0) { x[2 * rd] = oldWords[0]!; x[2 * rd + 1] = oldWords[1]!; }
    return true;
  }

  /**
   * The A extension at RAM byte offset `off` (aligned), for both interpreter loops: LR, SC or an
   * AMO, atomic across threads (atomics.ts). rd's new value lands in oldWords.
   */
  protected atomicAt(off: number, f5: number, wide: boolean, bl: number, bh: number): void {
    if (f5 === 0x02) { // LR
      if (wide) loadReserved64(this.i64, off >>> 3);
      else { oldWords[0] = Atomics.load(this.i32, off >>> 2); oldWords[1] = oldWords[0] >> 31; }
      this.resValid = true;
      this.resAddr = off;
      this.resLo = oldWords[0]!;
      this.resHi = oldWords[1]!;
      this.resSize = wide ? 8 : 4;
    } else if (f5 === 0x03) { // SC: a CAS against what LR read, so another hart's store in between fails it
      const ok = this.resValid && this.resAddr === off && this.resSize === (wide ? 8 : 4) &&
        (wide ? storeConditional64(this.i64, off >>> 3, this.resLo, this.resHi, bl, bh) : storeConditional32(this.i32, off >>> 2, this.resLo, bl));
      this.resValid = false;
      oldWords[0] = ok ? 0 : 1;
      oldWords[1] = 0;
    } else if (wide) {
      amo64(this.i64, off >>> 3, f5, bl, bh);
    } else {
      oldWords[0] = amo32(this.i32, off >>> 2, f5, bl);
      oldWords[1] = oldWords[0] >> 31;
    }
  }

  /** FP loads/stores (flw/fld/fsw/fsd): raw bits, flw NaN-boxed. False after raising a fault. */
  protected execFpMem(insn: number, isStore: boolean, raw: number): boolean {
    const f3 = (insn >>> 12) & 7;
    if ((f3 !== 2 && f3 !== 3) || (this.mstatus & MSTATUS_FS) === 0) {
      this.raise(CAUSE_ILLEGAL_INSTRUCTION, raw, 0);
      return false;
    }
    const rs1 = (insn >>> 15) & 31;
    const imm = isStore ? ((insn >> 25) << 5) | ((insn >>> 7) & 31) : insn >> 20;
    const s = (this.x[2 * rs1] >>> 0) + imm;
    const lo = s | 0;
    const hi = (this.x[2 * rs1 + 1] + (s >= TWO32 ? 1 : s < 0 ? -1 : 0)) | 0;
    const f = this.f;
    if (isStore) {
      const r = (insn >>> 20) & 31;
      if (!this.storeSlow(lo, hi, f3, f[2 * r], f[2 * r + 1])) return false;
    } else {
      const r = (insn >>> 7) & 31;
      if (!this.loadSlow(lo, hi, f3 === 2 ? 6 : 3)) return false;
      f[2 * r] = this.ldLo;
      f[2 * r + 1] = f3 === 2 ? -1 : this.ldHi; // NaN-box singles
      this.markFpDirty();
    }
    return true;
  }
}
