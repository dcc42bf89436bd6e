// The JIT tier's dispatch loop: runs compiled blocks where they exist, counts the pages it
// interprets, and compiles the hot ones (jit/block_cache.ts, jit/compile_block.ts).
import { HartFastLoop } from "./exec_fast.js";
import { COLD_INSTRUCTIONS_PER_VISIT_LOG2, COLD_RUN, PROFILE_EARLY_PER_MILLION, PROFILED_QUEUE_MAX, PROFILED_VISITS, type BlockCache } from "./jit/block_cache.js";
import { MAX_BLOCK, NO_TAIL, canStartBlock, fastLoopDeclines } from "./jit/block_scan.js";
import { HART_JIT_STATUS, JIT_GO_ON, JIT_INTERPRET, JIT_SLICE_END, W_JIT_DS, W_JIT_XKEY, W_JIT_XS } from "./hart_layout.js";

/** The address of virtual pc's page (pc as the hart keeps it: a double, negative for the upper half). */
const pageBase = (pc: number): number => pc - ((pc | 0) & 0xfff);

/** HartJitLoop.resumeAt when the last run left nothing to continue: odd, so no instruction's address. */
const NO_RESUME = 1;

export abstract class HartJitLoop extends HartFastLoop {
  /** The code cache of this hart's thread; null runs the interpreter only (--cpu-tier interp). */
  protected jit: BlockCache | null = null;
  /** The HART_JIT_STATUS word of this hart's state block. */
  private jitStatus: Int32Array | null = null;
  /**
   * Where the next run of execJit goes on with what the last one left inside a block (NO_RESUME: none):
   * where its budget ran out, or after the instruction it left to execSlow (a TLB miss). Entering
   * there continues a block, it is no missed entry: counted as ones, a boot's slice ends and hand-backs
   * in sha256's straight-line rounds made ~500 block starts in one page, 25 modules of its code.
   */
  private resumeAt = NO_RESUME;
  /** Instructions the run from resumeAt may interpret as the rest of its block (contLeft in execJit): a chain of short runs shares one block's worth. */
  private resumeLeft = 0;

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
    // Instructions the interpreter may still run inside blocks (after a hand-back, or resuming the last run) before an entry
    // without a block counts as a missed one again: bounded, so that a loop inside a block entered mid-way still gets compiled.
    // 0: not inside a block; negative: the bound ran out. Blocks end at their page's end, so it holds in `contPage` only.
    let contLeft = pcBox[0] === this.resumeAt ? this.resumeLeft : 0;
    let contPage = pageBase(pcBox[0]!);
    let relinkedAt = -1;
    while (n < limit) {
      status[0] = JIT_GO_ON;
      const r = limit - n - dispatch(st, limit - n);
      if (r > 0) {
        contLeft = 0;
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
        contPage = pageBase(pcBox[0]!);
        const left = limit - n;
        let want = left;
        if (left >= MAX_BLOCK) {
          const off = this.codeOffset(pcBox[0]!);
          if (off >= 0 && fastLoopDeclines(this.u16, off)) break; // execFast would decline it: straight to execSlow
          want = off >= 0 ? jit.runLength(off) : 1;
        }
        this.reachedCode = false;
        const k = this.execFast(want);
        n += k;
        const budgetShort = left < MAX_BLOCK; // the block may not have fitted: the next run continues it
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
          contLeft = 1; // its run to the block's end
          continue;
        }
        contLeft = this.reachedCode ? 0 : budgetShort ? MAX_BLOCK : 1;
        continue;
      }
      if (this.instret >= jit.prefetchAt) jit.prefetch(this.instret); // profiled pages due soon: compiled while the compile thread is idle
      jit.poll(); // about to interpret: code the compile thread finished may cover pc
      const pc = pcBox[0]!;
      const off = this.codeOffset(pc);
      if (off < 0) break;
      const info = jit.page(off >>> 12);
      const po = off & 0xfff;
      const midBlock = contLeft > 0 && pageBase(pc) === contPage;
      let want: number;
      if (info.blocks !== null) {
        const slot = info.blocks.get(po);
        if (slot !== undefined) { // compiled, but another block took its lookup entry
          if (relinkedAt === pc) break; // no progress from there: let execSlow step
          jit.relink(off, slot);
          relinkedAt = pc;
          continue;
        }
        if (!midBlock) stats.missedEntries++;
        // An entry no block can start at, such as an instruction the compiler does not do, is not worth a compile.
        const tail = this.nextPageHalf(pc);
        if (!canStartBlock(this.u16, off, tail)) {
          if (fastLoopDeclines(this.u16, off)) break; // a trap vector's CSR swap, sret, FP arithmetic: execFast would decline it
        } else if (!midBlock && jit.noteMissed(info, po) && jit.compilePage(off >>> 12, info, tail)) continue;
        want = jit.runLength(off); // to the next block start, which is likely compiled
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
      contLeft = midBlock && info.blocks !== null ? (contLeft > k ? contLeft - k : -1) : 0;
      if (k < want && !this.reachedCode) break;
    }
    this.noteResume(n >= limit, contLeft);
    return n;
  }

  /**
   * Where the next run continues a block this one leaves (resumeAt): where the budget ran out,
   * or after the instruction execSlow runs next when a block could hold it (a TLB miss, not a
   * CSR access: after one of those a block starts, which a missed entry there must compile).
   */
  private noteResume(budgetOut: boolean, contLeft: number): void {
    const pc = this.pcBox[0]!;
    this.resumeLeft = contLeft > 0 ? contLeft : contLeft === 0 ? MAX_BLOCK : 0;
    if (budgetOut || this.sliceExit) {
      this.resumeAt = pc;
      return;
    }
    const off = this.codeOffset(pc);
    this.resumeAt = off >= 0 && canStartBlock(this.u16, off) ? pc + ((this.u16[off >>> 1]! & 3) === 3 ? 4 : 2) : NO_RESUME;
  }
}
