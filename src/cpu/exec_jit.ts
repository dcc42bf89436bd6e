// The JIT tier's dispatch loop: runs compiled blocks where they exist, counts the pages it
// interprets, and compiles the hot ones (jit/block_cache.ts, jit/compile_block.ts).
import { HartFastLoop } from "./exec_fast.js";
import { COLD_INSTRUCTIONS_PER_VISIT_LOG2, COLD_RUN, PROFILE_EARLY_PER_MILLION, PROFILED_QUEUE_MAX, PROFILED_VISITS, type BlockCache } from "./jit/block_cache.js";
import { MAX_BLOCK, NO_TAIL, blockLength, canStartBlock, fastLoopDeclines } from "./jit/block_scan.js";
import { HART_JIT_STATUS, JIT_GO_ON, JIT_INTERPRET, JIT_SLICE_END, W_JIT_DS, W_JIT_XKEY, W_JIT_XS } from "./hart_layout.js";

export abstract class HartJitLoop extends HartFastLoop {
  /** The code cache of this hart's thread; null runs the interpreter only (--cpu-tier interp). */
  protected jit: BlockCache | null = null;
  /** The HART_JIT_STATUS word of this hart's state block. */
  private jitStatus: Int32Array | null = null;

  /** Puts this hart on the JIT tier with `cache` (shared by the harts of one thread). */
  useJit(cache: BlockCache): void {
    if (this.stateOffset < 0) throw new Error(`hart ${this.hartId}: the JIT needs the hart's state in its block above RAM (HartOptions.stateBlock)`);
    cache.addHart(this);
    this.jit = cache;
    this.resetJumpCache();
    this.jitStatus = new Int32Array(this.ram.buffer, this.stateOffset + HART_JIT_STATUS, 1);
    this.codeGates = cache.codeGates;
    this.takenMap = cache.taken;
  }

  get jitCache(): BlockCache | null {
    return this.jit;
  }

  /** A store is about to map RAM page `page`, which holds compiled code: drop that code first. */
  protected override codeWritten(page: number): void {
    if (this.jit !== null) this.jit.invalidatePage(page);
    else super.codeWritten(page);
  }

  /** The RAM offset of the code at virtual `pc` through the fetch TLB; -1 on a miss (execSlow fills it). */
  private codeOffset(pc: number): number {
    const lo = pc | 0;
    const idx = (lo >>> 12) & 2047;
    if (this.xTagLo[idx] !== (lo & -4096) || this.xTagHi[idx] !== (Math.floor(pc / 4294967296) | 0)) return -1;
    return this.xOff[idx]! + (lo & 0xfff);
  }

  /** The first halfword of the virtual page after pc's, through the fetch TLB (NO_TAIL on a miss): the upper half of an instruction across the page end. */
  private nextPageHalf(pc: number): number {
    const off = this.codeOffset(pc - ((pc | 0) & 0xfff) + 4096);
    return off < 0 ? NO_TAIL : this.u16[off >>> 1]!;
  }

  /**
   * execFast's contract, with compiled code first: the dispatcher runs compiled blocks until it
   * needs the interpreter; then execFast runs on (one instruction compiled code handed back, a
   * block compiled code lacks, or COLD_RUN instructions in a page without code) while the cache
   * counts where it ran and compiles what is hot. Returns (instructions retired) as soon as
   * something needs execSlow: a fetch-TLB miss, an instruction compiled code handed back that
   * execFast declines too, or one execFast declines.
   */
  protected execJit(limit: number): number {
    const jit = this.jit!;
    const stats = jit.stats;
    const pcBox = this.pcBox, status = this.jitStatus!;
    const st = this.stateOffset;
    // The TLB sets compiled code uses: privilege and satp do not change while this loop runs (execSlow changes them).
    this.w[W_JIT_DS] = this.dSet.at;
    this.w[W_JIT_XS] = this.xSet.at;
    this.w[W_JIT_XKEY] = this.xSet.slot << 16;
    const threshold = jit.threshold;
    const profiledAt = Math.min(PROFILED_VISITS, threshold);
    const dispatch = jit.dispatch;
    let n = 0;
    // True right after the interpreter ran one instruction compiled code handed back: pc is then mid-block, not a missed entry.
    let resumed = false;
    let relinkedAt = -1;
    while (n < limit) {
      status[0] = JIT_GO_ON;
      const r = limit - n - dispatch(st, limit - n);
      const midBlock = resumed && r === 0;
      resumed = false;
      if (r > 0) {
        relinkedAt = -1;
        n += r;
        this.instret += r;
        stats.instructionsCompiled += r;
        if (n >= limit) break;
      }
      if (status[0] === JIT_SLICE_END) { // compiled code wrote sstatus: the slice ends, as after the interpreter's CSR write
        this.sliceExit = true;
        break;
      }
      if (status[0] === JIT_INTERPRET) {
        // Most hand-backs are one instruction execFast does (a TLB hit after a fill, FP): no round trip through execSlice.
        // It runs on to the end of the block (the dispatcher has no block mid-way); near the end of
        // the budget a block hands back because it might not fit: the interpreter runs the rest.
        stats.handBacks++;
        const left = limit - n;
        let want = left;
        if (left >= MAX_BLOCK) {
          const off = this.codeOffset(pcBox[0]!);
          if (off >= 0 && fastLoopDeclines(this.u16, off)) break; // execFast would decline it: straight to execSlow
          want = off >= 0 ? blockLength(this.u16, off) : 1;
        }
        this.reachedCode = false;
        const k = this.execFast(want);
        n += k;
        if (k < want && !this.reachedCode) {
          // execFast declined an instruction of the block (the one handed back: a TLB miss, MMIO):
          // the single step execSlice would take, taken here, so that the run on to the block's end
          // is not counted as a missed entry (a boot's TLB misses made ~150,000 of them).
          if (n >= limit) break;
          const s = this.execSlow(1);
          n += s;
          if (s === 0 || this.excPending || this.sliceExit || this.irqRaised || this.exitPending !== 0) {
            this.sliceExit = true; // execSlice ends the slice, as after its own step
            break;
          }
          resumed = true;
          continue;
        }
        resumed = !this.reachedCode;
        continue;
      }
      if (this.instret >= jit.prefetchAt) jit.prefetch(this.instret); // profiled pages due soon: compiled while the compile thread is idle
      jit.poll(); // about to interpret: code the compile thread finished may cover pc
      const pc = pcBox[0]!;
      const off = this.codeOffset(pc);
      if (off < 0) break;
      const info = jit.page(off >>> 12);
      const po = off & 0xfff;
      let want: number;
      if (info.blocks !== null) {
        const slot = info.blocks.get(po);
        if (slot !== undefined) { // compiled, but another block took its lookup entry
          if (relinkedAt === pc) break; // no progress from there: let execSlow step
          jit.relink(off, slot);
          relinkedAt = pc;
          continue;
        }
        stats.missedEntries++;
        // An entry no block can start at, such as an instruction the compiler does not do, is not worth a compile.
        const tail = this.nextPageHalf(pc);
        if (!canStartBlock(this.u16, off, tail)) {
          if (fastLoopDeclines(this.u16, off)) break; // a trap vector's CSR swap, sret, FP arithmetic: execFast would decline it
        } else if (!midBlock && jit.noteMissed(info, po) && jit.compilePage(off >>> 12, info, tail)) continue;
        want = blockLength(this.u16, off); // to the next block start, which is likely compiled
      } else {
        info.entries.add(po);
        // A queue at the compile thread raises the bar: what turns warm meanwhile waits (DEFAULT_BACKLOG_VISITS).
        // A page earlier runs compiled (jit_profile.ts) compiles at its PROFILED_VISITS-th visit (not the threshold's), unless many compiles wait already.
        const pending = jit.pendingCompiles;
        if (info.visits >= info.profileLookAt) jit.lookUpAgain(off >>> 12, info); // its code may have been patched since its first visit
        const early = info.profiled !== null && pending < PROFILED_QUEUE_MAX && this.instret >= info.profiled.hotAt * PROFILE_EARLY_PER_MILLION;
        // When it turned hot, not when the backlog let it compile: a later time would make the profile's hotAt later run by run.
        if (++info.visits >= threshold && info.hotSince < 0) info.hotSince = this.instret;
        if (info.visits >= (early ? profiledAt : threshold + pending * jit.backlogVisits)) {
          if (jit.compilePage(off >>> 12, info, this.nextPageHalf(pc))) continue;
        }
        want = COLD_RUN;
      }
      const left = limit - n;
      if (want > left) want = left;
      this.reachedCode = false;
      const k = this.execFast(want); // counts instret itself
      if (info.pending) jit.heat(info, k);
      else if (info.blocks === null) info.visits += k >> COLD_INSTRUCTIONS_PER_VISIT_LOG2; // a long run counts more
      n += k;
      if (k < want && !this.reachedCode) break;
    }
    return n;
  }
}
