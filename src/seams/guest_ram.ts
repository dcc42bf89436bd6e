// Guest RAM: one shared WebAssembly.Memory mapped at a guest-physical base, so that vCPU worker
// threads, the device thread and JIT-generated wasm code all load and store the same bytes.
// Every DMA-style accessor bounds-checks its range.
//
// Dirty log: one bit per 4 KiB page, in a SharedArrayBuffer every thread sets bits in. A vCPU
// sets a page's bit when it fills a write-TLB entry for it (cpu/hart_memory.ts) and the page
// walker when it sets A/D in a PTE; device writes through the accessors below set it after
// writing. A reader takes the set with takeDirtyPages() and then flushes every hart's write TLB
// before copying, so a write through an entry filled before the take is copied in this round.

/** Raised when a device or loader touches guest-physical memory outside RAM. */
export class GuestMemoryError extends RangeError {
  override name = "GuestMemoryError";
}

export interface GuestRamState {
  base: number;
  size: number;
}

const WASM_PAGE = 65536;
const PAGE = 4096;
/** A wasm32 memory holds at most 4 GiB. */
const WASM_MAX_BYTES = 65536 * WASM_PAGE;
/** vCPU state blocks reserved above RAM (one per hart id; see cpu/hart_layout.ts). */
export const HART_SLOTS = 8;
export const HART_SLOT_BYTES = 0x1b1000;
/**
 * Byte offset in a hart's state block of the generation of the JIT's jump cache (cpu/hart_layout.ts
 * W_JC_GEN): a device write over compiled code moves it on in every block, so no cached jump
 * enters the dropped code.
 */
export const HART_JC_GEN_OFFSET = 1024 + 4 * 26;
/**
 * JIT threads with tables of their own above RAM, one per hart at most (the harts time-sliced on
 * one thread share thread 0's; each vCPU worker has its hart's). A page's codePages byte holds a
 * bit per thread whose code cache depends on it.
 */
export const JIT_THREADS = HART_SLOTS;

/** codePages: one byte per RAM page, rounded to whole pages. */
const flagBytes = (size: number): number => Math.ceil(size / PAGE / PAGE) * PAGE;
/** A JIT thread's gates: one int32 per RAM page, rounded to whole pages. */
const slotBytes = (size: number): number => Math.ceil((size / PAGE) * 4 / PAGE) * PAGE;

/** Entries of the JIT's block lookup (direct-mapped by RAM halfword): 8 bytes each, (RAM offset + 1, table slot). */
export const JIT_LOOKUP_ENTRIES = 32768;
const LOOKUP_BYTES = JIT_LOOKUP_ENTRIES * 8;
/** The JIT's profile marks (cpu/jit/jit_profile.ts): an int32 each, counting the runs of a block compiled from a profile's entry. */
export const JIT_MARKS = 65536;

/** Bytes of one JIT thread's tables: its gates, its block lookup, its profile marks. */
const jitAreaBytes = (size: number): number => slotBytes(size) + LOOKUP_BYTES + 4 * JIT_MARKS;

/** Bytes above RAM for the VMM area (code-page flags, hart state blocks, the JIT threads' tables), or 0 when they do not fit a wasm32 memory. */
function vmmAreaBytes(size: number): number {
  const bytes = flagBytes(size) + HART_SLOTS * HART_SLOT_BYTES + JIT_THREADS * jitAreaBytes(size);
  return size + bytes <= WASM_MAX_BYTES ? bytes : 0;
}

/** One JIT thread's tables above RAM (cpu/jit/block_cache.ts); the thread owns them, other threads only clear entries. */
export interface JitArea {
  /** The thread's bit in codePages. */
  readonly bit: number;
  /** One int32 per RAM page: nonzero while the thread's dispatcher may enter compiled code in the page. */
  readonly gates: Int32Array;
  /** Offset in `memory` of the block lookup (JIT_LOOKUP_ENTRIES pairs of int32: RAM offset + 1, table slot), direct-mapped by RAM halfword. */
  readonly lookupOffset: number;
  readonly lookup: Int32Array;
  /** Offset in `memory` of the profile marks (JIT_MARKS int32s). */
  readonly marksOffset: number;
}
export const PAGE_ABSENT = 0;
export const PAGE_LOADING = 1;
export const PAGE_PRESENT = 2;

export class GuestRam {
  readonly base: number;
  readonly size: number;
  readonly end: number;
  /** The wasm memory itself (its buffer is a SharedArrayBuffer of whole 64 KiB pages, at least `size` bytes). */
  readonly memory: WebAssembly.Memory;
  readonly buffer: SharedArrayBuffer;
  readonly u8: Uint8Array;
  readonly u16: Uint16Array;
  readonly u32: Uint32Array;
  readonly i32: Int32Array;
  /** For 64-bit atomics (AMO*.D, LR/SC.D). */
  readonly i64: BigInt64Array;
  /** For single-copy-atomic aligned doublewords: one element moved bit-exactly (see cpu/hart.ts). */
  readonly f64: Float64Array;
  readonly view: DataView;
  /**
   * One byte per RAM page, above RAM in the same shared memory: bit t is set while JIT thread t's
   * compiled code depends on the page (or a compile of it is on its way). A store to such a page
   * misses the write TLB, and the store or device write drops the code of every thread (dropCode).
   * Empty when the VMM area does not fit (4 GiB of RAM): no JIT then.
   */
  readonly codePages: Uint8Array;
  /** False until a JIT attached to this RAM: without one no page holds compiled code, and device writes skip the code-page scan. */
  private codeMayExist = false;
  private readonly areas: (JitArea | undefined)[] = [];
  /** Byte offset of the first JIT thread's tables in `memory`, or -1 without a VMM area. */
  private readonly jitAreasOffset: number;
  /** Byte offset of the first hart state block in `memory`, or -1 without a VMM area. */
  private readonly hartSlotsOffset: number;
  /** The dirty log: bit (p & 31) of word p >> 5 is set once page p has been written (see above). */
  readonly dirty: Int32Array;
  private readonly fenceWord = new Int32Array(new SharedArrayBuffer(4));
  /**
   * Lazy restore: per page PAGE_ABSENT (still in the snapshot), PAGE_LOADING or PAGE_PRESENT;
   * null once every page is here. Every reader of RAM that is not a TLB hit calls ensurePresent.
   */
  lazyState: Int32Array | null = null;
  private pageSource: ((page: number, into: Uint8Array) => void) | null = null;

  /** With `memory` (and `dirtyLog`), views RAM another thread created (a vCPU worker); otherwise creates it. */
  constructor(base: number, size: number, memory?: WebAssembly.Memory, dirtyLog?: SharedArrayBuffer) {
    if (size <= 0 || size % 4096 !== 0) throw new RangeError(`Guest RAM size ${size} must be a positive multiple of 4 KiB`);
    this.base = base;
    this.size = size;
    this.end = base + size;
    // Reserved, not committed: the OS zero-fills pages on first touch, so untouched guest memory
    // costs no host memory. A fixed size (maximum = initial): the buffer never moves.
    const vmm = vmmAreaBytes(size);
    const pages = Math.ceil((size + vmm) / WASM_PAGE);
    this.memory = memory ?? new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    if (this.memory.buffer.byteLength < size) throw new RangeError(`Guest RAM of ${size} bytes does not fit the ${this.memory.buffer.byteLength}-byte memory given`);
    this.buffer = this.memory.buffer as unknown as SharedArrayBuffer;
    this.u8 = new Uint8Array(this.buffer);
    this.u16 = new Uint16Array(this.buffer);
    this.u32 = new Uint32Array(this.buffer);
    this.i32 = new Int32Array(this.buffer);
    this.i64 = new BigInt64Array(this.buffer);
    this.f64 = new Float64Array(this.buffer);
    this.view = new DataView(this.buffer);
    this.codePages = vmm === 0 ? new Uint8Array(0) : new Uint8Array(this.buffer, size, size / PAGE);
    this.hartSlotsOffset = vmm === 0 ? -1 : size + flagBytes(size);
    this.jitAreasOffset = vmm === 0 ? -1 : this.hartSlotsOffset + HART_SLOTS * HART_SLOT_BYTES;
    this.dirty = new Int32Array(dirtyLog ?? new SharedArrayBuffer(Math.ceil(size / 4096 / 32) * 4));
  }

  /**
   * JIT thread `t`'s tables (0 for the harts time-sliced on one thread, a worker's hart id for a
   * vCPU thread). Taking them tells device writes to look for code pages from then on.
   */
  jitArea(t: number): JitArea {
    if (this.jitAreasOffset < 0) throw new RangeError(`The JIT needs room above guest RAM for its tables: give the VM less than ${this.size} bytes of memory`);
    if (!Number.isInteger(t) || t < 0 || t >= JIT_THREADS) throw new RangeError(`JIT thread ${t} has no tables: threads are 0..${JIT_THREADS - 1}`);
    this.codeMayExist = true;
    return this.area(t);
  }

  private area(t: number): JitArea {
    let a = this.areas[t];
    if (a === undefined) {
      const at = this.jitAreasOffset + t * jitAreaBytes(this.size);
      const lookupOffset = at + slotBytes(this.size);
      a = this.areas[t] = {
        bit: 1 << t,
        gates: new Int32Array(this.buffer, at, this.size / PAGE),
        lookupOffset,
        lookup: new Int32Array(this.buffer, lookupOffset, 2 * JIT_LOOKUP_ENTRIES),
        marksOffset: lookupOffset + LOOKUP_BYTES,
      };
    }
    return a;
  }

  /**
   * RAM page `p` is about to be written: no thread's compiled code of it may run again. Every
   * thread's gate and block-lookup keys of the page are cleared (only keys: a dispatcher reading
   * the pair meanwhile still finds its own table's function) and every hart's jump cache moves on;
   * each thread's cache drops its record when it next looks at the page (its bit is gone).
   */
  dropCode(p: number): void {
    const bits = Atomics.exchange(this.codePages, p, 0);
    if (bits === 0) return;
    for (let t = 0; t < JIT_THREADS; t++) {
      if ((bits & (1 << t)) === 0) continue;
      const a = this.area(t);
      Atomics.store(a.gates, p, 0); // the interpreter no longer stops there for compiled code
      // Nor does the dispatcher find the page's blocks (keys are RAM offset + 1; other pages' entries at these indexes stay).
      const first = 2 * ((p * (PAGE / 2)) & (JIT_LOOKUP_ENTRIES - 1)), lookup = a.lookup;
      for (let e = first; e < first + PAGE; e += 2) if ((lookup[e]! - 1) >>> 12 === p) lookup[e] = 0;
    }
    for (let h = 0; h < HART_SLOTS; h++) Atomics.add(this.i32, (this.hartSlotsOffset + h * HART_SLOT_BYTES + HART_JC_GEN_OFFSET) >> 2, 1);
  }

  /** Offset in `memory` of hart `hartId`'s state block (HART_SLOT_BYTES long, outside guest-visible RAM). */
  hartStateOffset(hartId: number): number {
    if (this.hartSlotsOffset < 0) throw new RangeError(`No room for vCPU state blocks above ${this.size} bytes of RAM in a 4 GiB wasm memory: give the VM less memory`);
    if (!Number.isInteger(hartId) || hartId < 0 || hartId >= HART_SLOTS) throw new RangeError(`Hart ${hartId} has no state block: harts are 0..${HART_SLOTS - 1}`);
    return this.hartSlotsOffset + hartId * HART_SLOT_BYTES;
  }

  /** RAM bytes [off, off+len) are about to be returned to the host (they read as zeros after): compiled code there is dropped and a migration resends them. */
  discarding(off: number, len: number): void {
    this.deviceWrote(off, len);
  }

  /**
   * A device (or a loader) wrote RAM bytes [off, off+len) (off from the RAM base): compiled code
   * there is dropped before it runs again, and a live snapshot or migration copies the pages again.
   */
  deviceWrote(off: number, len: number): void {
    this.dropCodeIn(off, len);
    this.markDirty(off, len);
  }

  /** Compiled code of the pages of RAM bytes [off, off+len) is dropped before it runs again (dropCode). */
  private dropCodeIn(off: number, len: number): void {
    if (!this.codeMayExist || len <= 0) return;
    const flags = this.codePages;
    const last = (off + len - 1) / PAGE;
    for (let p = Math.floor(off / PAGE); p <= last; p++) if (flags[p] !== 0) this.dropCode(p);
  }

  /**
   * Pages come from `source` on first touch (lazy restore). `state` is shared by every thread
   * (one Int32 per page); `source` fills one page synchronously or throws (a damaged page).
   */
  loadLazily(state: Int32Array, source: (page: number, into: Uint8Array) => void): void {
    this.lazyState = state;
    this.pageSource = source;
  }

  /** Brings the pages of RAM bytes [off, off+len) in from the lazy source if they are not here yet. */
  ensurePresent(off: number, len: number): void {
    const st = this.lazyState;
    if (st === null || len <= 0) return;
    const last = Math.floor((off + len - 1) / 4096);
    for (let p = Math.floor(off / 4096); p <= last; p++) if (st[p] !== PAGE_PRESENT) this.loadPage(p);
  }

  private loadPage(p: number): void {
    const st = this.lazyState!;
    for (;;) {
      const was = Atomics.compareExchange(st, p, PAGE_ABSENT, PAGE_LOADING);
      if (was === PAGE_PRESENT) return;
      if (was === PAGE_ABSENT) break;
      Atomics.wait(st, p, PAGE_LOADING, 100); // another thread loads it
    }
    try {
      this.pageSource!(p, this.u8.subarray(p * 4096, (p + 1) * 4096));
      Atomics.store(st, p, PAGE_PRESENT);
    } catch (e) {
      Atomics.store(st, p, PAGE_ABSENT);
      throw e;
    } finally {
      Atomics.notify(st, p);
    }
  }

  /**
   * A full host memory barrier (an atomic read-modify-write; a locked instruction on x86): with vCPUs on other threads, a
   * device that stores to a ring and then loads what the driver stored (virtio's event indexes)
   * needs it between the two, as the driver has a FENCE between its own store and load.
   */
  hostFence(): void {
    Atomics.add(this.fenceWord, 0, 0);
  }

  /** Marks the pages of RAM bytes [off, off+len) written (off from the RAM base); devices call deviceWrote, which also drops compiled code. */
  markDirty(off: number, len: number): void {
    if (len <= 0) return;
    const last = Math.floor((off + len - 1) / 4096);
    for (let p = Math.floor(off / 4096); p <= last; p++) Atomics.or(this.dirty, p >>> 5, 1 << (p & 31));
  }

  /** The pages written since the last take (ascending), and clears the log. */
  takeDirtyPages(): Uint32Array {
    const d = this.dirty;
    const out: number[] = [];
    for (let w = 0; w < d.length; w++) {
      if (d[w] === 0) continue;
      let bits = Atomics.exchange(d, w, 0);
      while (bits !== 0) {
        const b = 31 - Math.clz32(bits & -bits);
        out.push(w * 32 + b);
        bits &= bits - 1;
      }
    }
    return Uint32Array.from(out);
  }

  /** Pages written since the last take, without taking them. */
  dirtyPageCount(): number {
    let n = 0;
    for (let w = 0; w < this.dirty.length; w++) {
      let v = this.dirty[w]!;
      while (v !== 0) { v &= v - 1; n++; }
    }
    return n;
  }

  /** True when [gpa, gpa+len) lies entirely inside RAM. */
  contains(gpa: number, len: number): boolean {
    return gpa >= this.base && len >= 0 && gpa + len <= this.end;
  }

  /** A live view of [gpa, gpa+len) (no copy). Throws GuestMemoryError when out of RAM. */
  slice(gpa: number, len: number): Uint8Array {
    if (!this.contains(gpa, len)) {
      throw new GuestMemoryError(`guest range 0x${gpa.toString(16)}+${len} is outside RAM`);
    }
    const off = gpa - this.base;
    this.dropCodeIn(off, len); // a live view may be written (its dirty pages are marked when the device is done with it)
    if (this.lazyState !== null) this.ensurePresent(off, len);
    return this.u8.subarray(off, off + len);
  }

  read(gpa: number, len: number): Uint8Array {
    if (!this.contains(gpa, len)) throw new GuestMemoryError(`guest range 0x${gpa.toString(16)}+${len} is outside RAM`);
    const off = gpa - this.base;
    if (this.lazyState !== null) this.ensurePresent(off, len);
    return this.u8.slice(off, off + len);
  }

  write(gpa: number, data: Uint8Array): void {
    this.check(gpa, data.length);
    const off = gpa - this.base;
    this.u8.set(data, off);
    this.deviceWrote(off, data.length);
  }

  readU16(gpa: number): number {
    this.check(gpa, 2);
    return this.view.getUint16(gpa - this.base, true);
  }

  readU32(gpa: number): number {
    this.check(gpa, 4);
    return this.view.getUint32(gpa - this.base, true);
  }

  /** 64-bit little-endian read as a JS number; values above 2^53 lose precision (only used for guest addresses and lengths, which are then range-checked). */
  readU64(gpa: number): number {
    this.check(gpa, 8);
    const off = gpa - this.base;
    return this.view.getUint32(off, true) + this.view.getUint32(off + 4, true) * 0x1_0000_0000;
  }

  writeU16(gpa: number, v: number): void {
    this.check(gpa, 2);
    this.view.setUint16(gpa - this.base, v, true);
    this.deviceWrote(gpa - this.base, 2);
  }

  writeU32(gpa: number, v: number): void {
    this.check(gpa, 4);
    this.view.setUint32(gpa - this.base, v >>> 0, true);
    this.deviceWrote(gpa - this.base, 4);
  }

  writeU64(gpa: number, v: number): void {
    this.check(gpa, 8);
    const off = gpa - this.base;
    this.view.setUint32(off, v % 0x1_0000_0000 >>> 0, true);
    this.view.setUint32(off + 4, Math.floor(v / 0x1_0000_0000) >>> 0, true);
    this.deviceWrote(off, 8);
  }

  private check(gpa: number, len: number): void {
    if (!this.contains(gpa, len)) {
      throw new GuestMemoryError(`guest access 0x${gpa.toString(16)}+${len} is outside RAM`);
    }
    if (this.lazyState !== null) this.ensurePresent(gpa - this.base, len);
  }
}
