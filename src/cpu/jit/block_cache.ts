// The JIT's code cache for the harts of one thread, by RAM page: a page the interpreter keeps
// entering is compiled whole — every block reachable inside it from the entries seen so far
// (branch targets, fall-throughs, call return sites) — into one page function (compile_block.ts),
// reached through a function table by the wasm dispatcher (dispatcher.ts). Entries it lacks are
// counted and added by a recompile.
//
// Code changes are caught exactly: compiling a page marks it in ram.codePages and removes every
// write-TLB entry that maps it, so any later store to it (guest store, AMO or SC, from the
// interpreter or compiled code) takes the slow path, where translate() calls back here to drop the
// page's code first. Devices mark such pages as written (GuestRam.deviceWrote); a lookup in a
// page so marked drops its code too.
import { CODE_PAGE, CODE_PAGE_DMA_WRITTEN, type GuestRam } from "../../seams/guest_ram.js";
import { compilePage, scanBlock, type BlockShape } from "./compile_block.js";
import { buildDispatcher, type DispatchFn } from "./dispatcher.js";
import { setFlagsFromString } from "node:v8";

// V8 first compiles wasm with its baseline compiler (Liftoff) and re-compiles functions that run a
// lot with its optimizing one (TurboFan) on background threads. With thousands of page functions,
// the default budget sent most of a boot's code to TurboFan: 3x the CPU of the whole interpreted
// boot. A budget ~50x larger optimizes only the truly hot pages (loops keep their ~3x TurboFan gain).
const WASM_TIERING_BUDGET = 100_000_000;
let tieringSet = false;

/** What the cache knows of one RAM page of guest code. */
export interface PageInfo {
  /** Times the interpreter started in this page while it had no code; compiled at the threshold. */
  visits: number;
  /** Page offsets where execution entered the page (compiled or not yet). */
  entries: Set<number>;
  /** Block starts in the compiled function; null while the page has none. */
  compiled: Set<number> | null;
  /** Entries compiled code lacks, with how often the interpreter ran them. */
  missed: Map<number, number>;
  recompiles: number;
  slot: number;
  bytes: number;
}

export interface JitStats {
  /** Blocks in live compiled page functions. */
  blocks: number;
  /** Bytes of wasm of the live page functions (the host keeps machine code several times that). */
  codeBytes: number;
  /** Page functions compiled since start (recompiles included). */
  compiledTotal: number;
  compileMs: number;
  /** Pages whose code was dropped because it was written. */
  invalidations: number;
  /** Whole-cache flushes because the cache was full. */
  flushes: number;
  /** Guest instructions retired inside compiled code. */
  instructionsCompiled: number;
}

export interface BlockCacheOptions {
  /** Interpreter visits before a page is compiled. */
  threshold?: number;
  /** Most blocks kept compiled; beyond it the whole cache is flushed (QEMU's policy for a full code buffer). */
  maxBlocks?: number;
}

/** A hart the cache protects: its write TLB must stop mapping a page once code there is compiled. */
export interface JitHart {
  dropWriteMappings(ramPage: number): void;
}

export const DEFAULT_THRESHOLD = 1024;
/** Instructions the interpreter runs at a time in a page without code (it counts one visit per run). */
export const COLD_RUN = 512;
export const DEFAULT_MAX_BLOCKS = 65536;

/** Interpreted runs of a missed entry before its page is recompiled with it. */
const MISS_THRESHOLD = 64;
/** Recompiles of one page before its missed entries stay interpreted. */
const MAX_RECOMPILES = 8;
/** Blocks compiled per page at most, nearest the entries first (a page of dense code has a few hundred). */
const MAX_PAGE_BLOCKS = 64;

export class BlockCache {
  readonly threshold: number;
  readonly maxBlocks: number;
  readonly stats: JitStats = { blocks: 0, codeBytes: 0, compiledTotal: 0, compileMs: 0, invalidations: 0, flushes: 0, instructionsCompiled: 0 };
  /** Runs compiled code from the hart's pc until the interpreter is needed (dispatcher.ts). */
  readonly dispatch: DispatchFn;
  private readonly harts: JitHart[] = [];
  private readonly u16: Uint16Array;
  private readonly codePages: Uint8Array;
  private readonly slots: Int32Array;
  private readonly table: WebAssembly.Table;
  private readonly freeSlots: number[] = [];
  private readonly pages = new Map<number, PageInfo>();
  private readonly wasmPages: number;

  constructor(private readonly ram: GuestRam, opts: BlockCacheOptions = {}) {
    if (ram.codePages.length === 0) throw new RangeError(`The JIT needs room above guest RAM for its tables: give the VM less than ${ram.size} bytes of memory`);
    if (!tieringSet) {
      setFlagsFromString(`--wasm-tiering-budget=${WASM_TIERING_BUDGET}`);
      tieringSet = true;
    }
    this.threshold = opts.threshold ?? (Number(process.env.NODEVISOR_JIT_THRESHOLD) || DEFAULT_THRESHOLD);
    this.maxBlocks = opts.maxBlocks ?? DEFAULT_MAX_BLOCKS;
    this.u16 = ram.u16;
    this.codePages = ram.codePages;
    this.slots = ram.jitSlots;
    this.slots.fill(0);
    this.wasmPages = ram.memory.buffer.byteLength / 65536;
    this.table = new WebAssembly.Table({ element: "anyfunc", initial: 1 });
    this.dispatch = buildDispatcher(ram.memory, this.table, ram.jitSlotsOffset);
  }

  addHart(h: JitHart): void {
    this.harts.push(h);
  }

  /** RAM page `p`'s record; its code is dropped first when a device wrote the page. */
  page(p: number): PageInfo {
    let info = this.pages.get(p);
    if (info !== undefined && this.codePages[p] === CODE_PAGE_DMA_WRITTEN) {
      this.invalidatePage(p);
      info = undefined;
    }
    if (info === undefined) {
      info = { visits: 0, entries: new Set(), compiled: null, missed: new Map(), recompiles: 0, slot: 0, bytes: 0 };
      this.pages.set(p, info);
    }
    return info;
  }

  /** The interpreter is about to run the entry at page offset `po` that compiled code lacks; true when the page should be recompiled now. */
  noteMissed(info: PageInfo, po: number): boolean {
    if (info.recompiles >= MAX_RECOMPILES) return false;
    const c = (info.missed.get(po) ?? 0) + 1;
    info.missed.set(po, c);
    return c >= MISS_THRESHOLD;
  }

  /** Compiles page `p` from the code as it is now: every block reachable in it from its entries. */
  compilePage(p: number, info: PageInfo): void {
    const t0 = performance.now();
    for (const po of info.missed.keys()) info.entries.add(po);
    info.missed.clear();
    const pageOff = p * 4096;
    const starts = new Set<number>();
    const shapes: BlockShape[] = [];
    const work = [...info.entries];
    for (let i = 0; i < work.length && shapes.length < MAX_PAGE_BLOCKS; i++) { // breadth first
      const po = work[i]!;
      if (starts.has(po)) continue;
      starts.add(po);
      const shape = scanBlock(this.u16, pageOff + po);
      if (shape.jitLen > 0) shapes.push(shape);
      for (const q of shape.next) if (!starts.has(q)) work.push(q);
    }
    if (shapes.length === 0) {
      info.visits = -4 * this.threshold; // nothing to compile here yet: look again much later
      return;
    }
    if (this.stats.blocks + shapes.length > this.maxBlocks) this.flush(p);
    const { fn, bytes } = compilePage(shapes, this.ram.memory, this.wasmPages);
    if (info.slot === 0) info.slot = this.allocSlot();
    else info.recompiles++;
    this.stats.blocks += shapes.length - (info.compiled?.size ?? 0);
    this.stats.codeBytes += bytes - info.bytes;
    info.bytes = bytes;
    info.compiled = new Set(shapes.map((b) => b.start));
    this.table.set(info.slot, fn);
    this.slots[p] = info.slot;
    if (this.codePages[p] !== CODE_PAGE) {
      this.codePages[p] = CODE_PAGE;
      for (const h of this.harts) h.dropWriteMappings(p);
    }
    this.stats.compiledTotal++;
    this.stats.compileMs += performance.now() - t0;
  }

  /** A store or a device write reached RAM page `p`: its code may be stale. */
  invalidatePage(p: number): void {
    this.codePages[p] = 0;
    const info = this.pages.get(p);
    if (info === undefined) return;
    this.pages.delete(p);
    if (this.dropCode(p, info)) this.stats.invalidations++;
  }

  /** Drops every page's code (the cache is full), keeping page `keep`'s record. */
  flush(keep: number): void {
    for (const [p, info] of this.pages) {
      if (info.compiled !== null) {
        this.codePages[p] = 0;
        this.dropCode(p, info);
      }
      if (p !== keep) this.pages.delete(p);
    }
    this.stats.flushes++;
  }

  private dropCode(p: number, info: PageInfo): boolean {
    if (info.compiled === null) return false;
    this.slots[p] = 0;
    this.table.set(info.slot, null);
    this.freeSlots.push(info.slot);
    this.stats.blocks -= info.compiled.size;
    this.stats.codeBytes -= info.bytes;
    info.compiled = null;
    info.slot = 0;
    info.bytes = 0;
    return true;
  }

  private allocSlot(): number {
    const free = this.freeSlots.pop();
    if (free !== undefined) return free;
    return this.table.grow(1);
  }
}
