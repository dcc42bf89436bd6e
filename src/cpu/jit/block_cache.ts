// The JIT's code cache for the harts of one thread, by RAM page: a page the interpreter keeps
// entering is compiled — every block reachable inside it from the entries seen so far (branch
// targets, fall-throughs, call return sites) — into one module of block functions
// (compile_block.ts), reached through a function table by the wasm dispatcher (dispatcher.ts).
// An entry the page's code lacks is counted, and compiled in a small module of its own (with the
// blocks it reaches) once it is hot: a page's code grows by blocks, never recompiled whole.
//
// Code changes are caught exactly: compiling a page sets this thread's bit in ram.codePages and
// removes every write-TLB entry that maps it (on other threads too: code_shootdown.ts), so any
// later store to it (guest store, AMO or SC, from the interpreter or compiled code, from any hart)
// takes the slow path, where translate() drops the page's code of every thread first
// (GuestRam.dropCode); device writes drop it the same way. Dropping clears the bit, the gate and
// the page's block-lookup keys; this cache forgets its record of the page when it next looks.
import { JIT_LOOKUP_ENTRIES, JIT_MARKS, type GuestRam, type JitArea } from "../../seams/guest_ram.js";
import { CodeShootdown } from "./code_shootdown.js";
import { blockImportName, compileModules, instantiateBlocks, type BlockFn, type CompiledPart } from "./compile_block.js";
import { NO_TAIL, TAKEN_MAP_BYTES, blockLength } from "./block_scan.js";
import { CompileService, type CompileChannel } from "./compile_service.js";
import { warmUpBlockScanOnce } from "./emitter_warm_up.js";
import { buildDispatcher, type DispatchFn, type LookupTables } from "./dispatcher.js";
import { PrefetchPlan } from "./profile_prefetch.js";
import { PROFILE_HOT_RUNS, PROFILE_MAX_AGE, PROFILE_PAGE_THRESHOLDS, pageKey, type JitProfile, type ProfiledPage } from "./jit_profile.js";

/** What the cache knows of one RAM page of guest code. */
export interface PageInfo {
  /** Times the interpreter started in this page while it had no code; compiled at the threshold. */
  visits: number;
  /** Page offsets where execution entered the page before it was compiled. */
  entries: Set<number>;
  /** Compiled blocks: page offset -> function-table slot; null while the page has none. */
  blocks: Map<number, number> | null;
  /** Entries compiled code lacks, with how often the interpreter ran them. */
  missed: Map<number, number>;
  /** Bytes of wasm of the page's modules. */
  bytes: number;
  /** True while a module of this page compiles in the background (no other is started meanwhile). */
  pending: boolean;
  /** The compile service's slot of that request (CompileService.heat), -1 when none. */
  slot: number;
  /** What an earlier run knew of this page (jit_profile.ts), until its first compile; null when it is not in the profile. */
  profiled: ProfiledPage | null;
  /** The visit at which a page not found in the profile is looked up again by its code as it is then (BlockCache.lookUpAgain). */
  profileLookAt: number;
  /** Instructions the hart had retired when this page's visits first reached the threshold (it turned hot); -1 before. */
  hotSince: number;
  /** The page's key (jit_profile.ts) when its first compile was asked for: the code its blocks are of; null before. */
  compiledKey: string | null;
  /** Where execution entered the page in this run for its compiles not from a profile (entries, compiled missed entries): its record in the next profile. */
  seeds: Set<number> | null;
  /** The entries of the page's first compile when it was from a profile, their ages and the counts of their blocks' runs; null when not. */
  audit: ProfileAudit | null;
  /** The shootdown announcement of the page's code (code_shootdown.ts): its compile waits until it settles; 0 when none. */
  announced: number;
}

/** The entries of a page's compile from a profile (jit_profile.ts), with their ages: entry i's block counts its runs in the int32 at `marks + 4 * i` of RAM's memory (none when marks is -1). */
interface ProfileAudit {
  entries: number[];
  ages: number[];
  marks: number;
  /** The page's ProfiledPage.hotAt in the next profile: the profile's when its compile came before the page could turn hot by itself. */
  hotAt: number;
  /** Compiled ahead of the guest (BlockCache.prefetch), not because this run went there: if no block of it runs, its entries do not age. */
  prefetched: boolean;
}

/** A page's part of a compiled module that is still current when it arrives: it gets installed. */
interface LivePart {
  p: number;
  info: PageInfo;
  part: CompiledPart;
}

export interface JitStats {
  /** Blocks with live compiled code. */
  blocks: number;
  /** Bytes of wasm of the live modules (the host keeps machine code several times that). */
  codeBytes: number;
  /** Modules compiled and installed since start (one may hold several pages' blocks: the compile thread batches waiting requests). */
  compiledTotal: number;
  /** Time the vCPU thread spent compiling (scanning, emitting, instantiating; with background compiles, not V8's compile itself). */
  compileMs: number;
  /** Background compiles whose code was dropped on arrival because the page changed meanwhile. */
  staleCompiles: number;
  /** Modules the compile thread answered with a module it kept (module_reuse.ts): another vCPU thread's of the same page bytes, or this one's from before. */
  reusedCompiles: number;
  /** Pages whose code was dropped because it was written. */
  invalidations: number;
  /** Whole-cache flushes because the cache was full. */
  flushes: number;
  /** Guest instructions retired inside compiled code. */
  instructionsCompiled: number;
  /** Instructions compiled code handed to the interpreter (one each: a TLB miss, a CSR, an ecall...). */
  handBacks: number;
  /** Times execution entered a compiled page where it had no block (the interpreter ran to the next block start). */
  missedEntries: number;
}

export interface BlockCacheOptions {
  /** Interpreter visits before a page is compiled. */
  threshold?: number;
  /** Further visits for each background compile not yet installed (DEFAULT_BACKLOG_VISITS). */
  backlogVisits?: number;
  /** Most blocks kept compiled; beyond it the whole cache is flushed (QEMU's policy for a full code buffer). */
  maxBlocks?: number;
  /**
   * Compile on a thread of its own (compile_service.ts) while the interpreter goes on, installing
   * the code when it is ready (poll()); off, a page's code exists as soon as compilePage returns.
   */
  background?: boolean;
  /** Pages earlier runs of this guest compiled (jit_profile.ts): compiled when first entered, from their recorded entries. */
  profile?: JitProfile;
  /**
   * Compile a branch or jump target only once the interpreter went there (the taken-transfer map,
   * block_scan.ts planBlocks); default on, NODEVISOR_JIT_TAKEN=0 turns it off.
   */
  takenTargetsOnly?: boolean;
  /** The JIT thread this cache serves (its tables above RAM and its bit in codePages): 0 unless the harts run on several threads. */
  thread?: number;
  /** With harts on several threads, the VM's shootdown words (code_shootdown.ts): pages compiled here are announced to the others. */
  shootdown?: SharedArrayBuffer;
  /** With `background`, this JIT thread's client of a compile thread others share (startCompilePool), not one of its own. */
  compiler?: CompileChannel;
  /**
   * Compile profiled pages found in the RAM pages their code was in before, a little before they
   * turned hot then (prefetch); with harts on one thread only. Default on with `background`,
   * NODEVISOR_JIT_PREFETCH=0 turns it off.
   */
  prefetch?: boolean;
}

/** A hart the cache protects: its write TLB must stop mapping a page once code there is compiled. */
export interface JitHart {
  dropWriteMappings(ramPage: number): void;
  /** Compiled code was dropped: the hart's jump cache may name it. */
  bumpJumpCache(): void;
}

export const DEFAULT_THRESHOLD = 1024;
/**
 * Visits a page's first compile waits longer for each compile the thread has not delivered yet. In
 * a boot the compile thread is the bottleneck and shares two cores with the vCPU thread: a page
 * that only turns warm while others queue is left to the interpreter (boot to the shell 4.34 →
 * 3.84 s, CPU 8.0 → 7.0 s); with an empty queue, as on a steady loop, nothing changes.
 */
export const DEFAULT_BACKLOG_VISITS = 1024;
/** Instructions the interpreter runs at a time in a page without code (it counts one visit per run). */
export const COLD_RUN = 512;
/**
 * A run in a page without code counts one more visit for each this many instructions it ran: a
 * page whose runs are loops inside it (up to COLD_RUN each) was interpreted for up to half a
 * million instructions before 1,024 visits (a boot: 36 M instructions in pages compiled later,
 * ~125,000 each). With 128, a boot interprets ~10 M instructions fewer and the vCPU thread's CPU
 * is ~6% lower (8 interleaved boots; 64: ~5%); on two cores the compile thread's extra work about
 * cancels that in wall time, on more cores it does not. log2 of it, for a shift.
 */
export const COLD_INSTRUCTIONS_PER_VISIT_LOG2 = 7;
export const DEFAULT_MAX_BLOCKS = 65536;

/** Interpreted runs of a missed entry before it is compiled. */
const MISS_THRESHOLD = 16;
/**
 * Blocks compiled in one module at most, nearest the entries first (a page of dense code has a few
 * hundred). The compile thread's time is mostly V8 compiling what it is given, and the blocks far
 * from the entries seldom run: 24 instead of 64 compiled 28% less wasm in a boot and reached the
 * shell ~6% sooner (main-thread CPU, 3 pairs); a block left out compiles once it is entered often.
 */
export const MAX_MODULE_BLOCKS = 24;
const LOOKUP_MASK = JIT_LOOKUP_ENTRIES - 1;
/** Blocks a page's first compile from a profile may hold at most (a page of dense code has a few hundred). */
const PROFILED_MODULE_BLOCKS = 256;
/** Profiled pages compile early (PROFILED_VISITS) only while fewer compiles than this wait (the pool has RING_SLOTS). */
export const PROFILED_QUEUE_MAX = 32;
/**
 * A profiled page compiles at this visit, not at the threshold's: the profile says the page was hot
 * in some earlier run of the guest, perhaps of another workload, and a few visits in this run
 * confirm it is warm here too (against 3 visits, with a profile of boots, a loop and a modprobe:
 * the vCPU thread's CPU to /init 4% lower, 10 interleaved rounds; docs/jit.md).
 */
export const PROFILED_VISITS = 32;
/**
 * A profiled page compiles early (PROFILED_VISITS) only from this share of the instructions the
 * hart had retired when it turned hot in the recorded run (ProfiledPage.hotAt); before that it waits
 * for the threshold as without a profile. A profile holds the pages of every workload the guest ran
 * (the bench's: a boot, the sh loop and a modprobe), and the pages of a later workload that the boot
 * visits lukewarm were compiled in the boot: /init 1.67 s with a profile of boots only against 1.91
 * s with that one (10 interleaved rounds, each run from a copy of the same file).
 */
export const PROFILE_EARLY = 0.75;
/** Instructions retired per million of ProfiledPage.hotAt from which a profiled page may compile early (PROFILE_EARLY). */
export const PROFILE_EARLY_PER_MILLION = 1e6 * PROFILE_EARLY;

/** Instructions as ProfiledPage.hotAt has them: millions, to a tenth (0 for none). */
const millions = (instructions: number): number => Math.max(0, Math.floor(instructions / 1e5) / 10);

/**
 * Background compiles in flight below which a prefetch is asked for, so that prefetches take a
 * compile thread with little else to do (12-14 interleaved boots to /init: 1 no better than none;
 * 4, 6 and 64 within the noise of 2).
 */
const PREFETCH_QUEUE = 2;

/** Records of pages whose code was dropped that a run keeps for its profile at most (a guest that generates code could make many). */
const RETIRED_MAX = 1024;

export class BlockCache {
  readonly threshold: number;
  readonly backlogVisits: number;
  readonly maxBlocks: number;
  /** The compile thread (BlockCacheOptions.background), null when compiling on the vCPU thread. */
  private service: CompileService | null = null;
  /** Background compiles not yet installed, by request id. */
  private readonly inFlight = new Map<number, { p: number; info: PageInfo; epoch: number }>();
  readonly stats: JitStats = { blocks: 0, codeBytes: 0, compiledTotal: 0, compileMs: 0, staleCompiles: 0, reusedCompiles: 0, invalidations: 0, flushes: 0, instructionsCompiled: 0, handBacks: 0, missedEntries: 0 };
  /** Bumped by every flush: a background compile started before one is dropped on arrival. */
  private epoch = 0;
  /** Runs compiled code from the hart's pc until the interpreter is needed (dispatcher.ts). */
  readonly dispatch: DispatchFn;
  private readonly harts: JitHart[] = [];
  private readonly u16: Uint16Array;
  private readonly codePages: Uint8Array;
  /** This thread's tables above RAM, and its bit in codePages. */
  private readonly area: JitArea;
  private readonly bit: number;
  /** Announces compiled pages to the other threads' harts; null when every hart runs on this thread. */
  readonly shootdown: CodeShootdown | null;
  /** Per RAM page: 1 while the page has compiled code (the interpreter stops where it enters such a page). */
  private readonly gates: Int32Array;
  /** The block lookup: pairs (RAM offset + 1, table slot), direct-mapped by RAM halfword. */
  private readonly lookup: Int32Array;
  private readonly table: WebAssembly.Table;
  private readonly freeSlots: number[] = [];
  private readonly pages = new Map<number, PageInfo>();
  private readonly wasmPages: number;
  private readonly tables: LookupTables;
  /** The dispatcher's `go`, which every module of blocks imports. */
  private readonly go: BlockFn;
  /** The profile this run started from (empty without one). */
  private readonly profile: JitProfile;
  /** Profile records of pages whose code was dropped in this run, by the key of the code they were compiled from (retire). */
  private readonly retired = new Map<string, ProfiledPage>();
  /** The profile marks (ProfileAudit), and the next one free. */
  private readonly marks: Int32Array;
  private nextMark = 0;
  /** The taken-transfer map: the interpreter marks where its branches and jumps went (block_scan.ts takenBefore); one for the threads a compile thread serves. */
  readonly taken: Uint8Array;
  /** The taken-transfer map when compiles leave out targets the interpreter never went to (BlockCacheOptions.takenTargetsOnly), else null. */
  private readonly takenFilter: Uint8Array | null;
  /** The profiled pages to look for before the guest runs them (prefetch); null when off. */
  private readonly plan: PrefetchPlan | null;

  constructor(private readonly ram: GuestRam, opts: BlockCacheOptions = {}) {
    this.area = ram.jitArea(opts.thread ?? 0);
    this.bit = this.area.bit;
    this.shootdown = opts.shootdown === undefined ? null : new CodeShootdown(opts.shootdown, opts.thread ?? 0);
    this.threshold = opts.threshold ?? (Number(process.env.NODEVISOR_JIT_THRESHOLD) || DEFAULT_THRESHOLD);
    const backlog = Number(process.env.NODEVISOR_JIT_BACKLOG ?? DEFAULT_BACKLOG_VISITS); // garbage (NaN) would stop every first compile
    this.backlogVisits = opts.backlogVisits ?? (Number.isFinite(backlog) && backlog >= 0 ? backlog : DEFAULT_BACKLOG_VISITS);
    this.maxBlocks = opts.maxBlocks ?? DEFAULT_MAX_BLOCKS;
    this.profile = opts.profile ?? new Map();
    this.taken = new Uint8Array(opts.compiler?.taken ?? new SharedArrayBuffer(TAKEN_MAP_BYTES));
    this.takenFilter = (opts.takenTargetsOnly ?? process.env.NODEVISOR_JIT_TAKEN !== "0") ? this.taken : null;
    if (opts.background === true) {
      this.service = opts.compiler !== undefined ? new CompileService(opts.compiler) : CompileService.start(ram.memory, ram.size, MAX_MODULE_BLOCKS, this.takenFilter, (message) => {
        process.stderr.write(`nodevisor: JIT: the compile thread failed, compiling on the vCPU thread from now on: ${message}\n`);
        this.abandonInFlight();
      });
    }
    this.u16 = ram.u16;
    this.codePages = ram.codePages;
    this.gates = this.area.gates;
    this.gates.fill(0);
    this.lookup = this.area.lookup;
    this.lookup.fill(0);
    this.marks = new Int32Array(ram.buffer, this.area.marksOffset, JIT_MARKS);
    this.marks.fill(0);
    this.wasmPages = ram.memory.buffer.byteLength / 65536;
    this.table = new WebAssembly.Table({ element: "anyfunc", initial: 1 });
    this.tables = { lookupOffset: this.area.lookupOffset };
    const d = buildDispatcher(ram.memory, this.table, this.tables);
    this.dispatch = d.dispatch;
    this.go = d.go as unknown as BlockFn;
    warmUpBlockScanOnce(); // the interpreter's missed entries ask the scanner: its type feedback before TurboFan sees it
    const prefetch = opts.prefetch ?? (this.service !== null && process.env.NODEVISOR_JIT_PREFETCH !== "0");
    this.plan = prefetch && this.shootdown === null && this.profile.size > 0 ? new PrefetchPlan(this.profile, ram.size >>> 12, PROFILE_EARLY_PER_MILLION) : null;
  }

  /** Instructions retired from which prefetch() has work (Infinity: none). */
  get prefetchAt(): number {
    return this.plan === null ? Infinity : this.plan.nextAt;
  }

  addHart(h: JitHart): void {
    this.harts.push(h);
  }

  /** The gates of this thread's dispatcher: per RAM page, nonzero while it may enter compiled code there. */
  get codeGates(): Int32Array {
    return this.gates;
  }

  /** RAM page `p`'s record; forgotten first when the page's code was dropped (a store or a device wrote it). */
  page(p: number): PageInfo {
    let info = this.pages.get(p);
    if (info !== undefined && (info.blocks !== null || info.pending) && (this.codePages[p]! & this.bit) === 0) {
      this.forget(p);
      info = undefined;
    }
    if (info === undefined) {
      const profiled = this.profile.size === 0 ? null : this.profile.get(pageKey(this.u16, p * 4096)) ?? null;
      const profileLookAt = profiled === null && this.profile.size > 0 ? PROFILED_VISITS : Infinity;
      info = { visits: 0, entries: new Set(), blocks: null, missed: new Map(), bytes: 0, pending: false, slot: -1, profiled, profileLookAt, hotSince: -1, compiledKey: null, seeds: null, audit: null, announced: 0 };
      this.pages.set(p, info);
    }
    return info;
  }

  /**
   * Looks page `p`, not yet compiled and not found in the profile, up again by its code as it is
   * now, and next at twice the visits. The kernel patches its text as it boots (alternatives, static
   * keys, ftrace): a page first run before that had the key of code no earlier run kept (a boot:
   * ~90 such pages, 11 M instructions interpreted in them that a profile would have compiled).
   */
  lookUpAgain(p: number, info: PageInfo): void {
    info.profileLookAt = Math.max(info.visits, PROFILED_VISITS) * 2; // visits go below 0 after a compile found nothing
    if (info.blocks !== null || info.pending) return;
    info.profiled = this.profile.get(pageKey(this.u16, p * 4096)) ?? null;
    if (info.profiled !== null) info.profileLookAt = Infinity;
  }

  /**
   * Asks for compiles of the profiled pages due at `instret` (profile_prefetch.ts) whose RAM page
   * holds their code now, while the compile thread has nothing else to do. Such a compile is the
   * one the page's own visits would have asked for, from the same entries, only sooner.
   */
  prefetch(instret: number): void {
    const plan = this.plan!;
    const room = PREFETCH_QUEUE - this.inFlight.size;
    if (room > 0) {
      for (const c of plan.due(instret, room)) {
        const known = this.pages.get(c.ram);
        if (known !== undefined && (known.blocks !== null || known.pending)) continue; // compiled already, or compiling
        if (pageKey(this.u16, c.ram * 4096) !== c.key) { // other code there now: the kernel may not have patched it yet
          plan.again(c, instret);
          continue;
        }
        const info = this.page(c.ram);
        info.profiled ??= this.profile.get(c.key) ?? null;
        if (info.profiled !== null) this.compilePage(c.ram, info, NO_TAIL, true);
      }
    }
  }

  /** `n` profile marks in a row: the memory offset of the first, or -1 when none are left (a run compiles ~30,000 profiled entries). */
  private takeMarks(n: number): number {
    // With harts on several threads no profile is saved (docs/jit.md), and a module without marks can be reused by the other threads.
    if (n === 0 || this.nextMark + n > JIT_MARKS || this.shootdown !== null) return -1;
    this.nextMark += n;
    return this.area.marksOffset + 4 * (this.nextMark - n);
  }

  /** Instructions the interpreter runs from RAM offset `off` before compiled code can take over: to the next block start in its page, or the first transfer (blockLength). */
  runLength(off: number): number {
    return blockLength(this.u16, off, this.lookup, LOOKUP_MASK);
  }

  /** Puts the compiled block at RAM offset `off` (table slot `slot`) back in the lookup, which another block had taken. */
  relink(off: number, slot: number): void {
    const e = ((off >>> 1) & LOOKUP_MASK) << 1;
    this.lookup[e + 1] = slot;
    Atomics.store(this.lookup, e, off + 1);
    if ((Atomics.load(this.codePages, off >>> 12) & this.bit) === 0) this.forget(off >>> 12); // dropped meanwhile by another thread: take the entry back out
  }

  /** The interpreter is about to run the entry at page offset `po` that compiled code lacks; true when it should be compiled now. */
  noteMissed(info: PageInfo, po: number): boolean {
    const c = (info.missed.get(po) ?? 0) + 1;
    info.missed.set(po, c);
    return c >= MISS_THRESHOLD;
  }

  /**
   * Compiles blocks of page `p` from the code as it is now: on the first compile every block
   * reachable in it from the entries seen, later the missed entries and what they reach that the
   * page's code lacks. `tail` is the first halfword of the next virtual page as the hart maps it
   * now (scanBlock). True when the code is there now; false when there was nothing to compile or
   * it compiles in the background. `prefetched`: a first compile from the profile ahead of the
   * guest (prefetch), not because this run entered the page.
   */
  compilePage(p: number, info: PageInfo, tail = NO_TAIL, prefetched = false): boolean {
    if (info.pending) return false;
    const t0 = performance.now();
    const have = info.blocks;
    const work = have === null ? [...info.entries] : [...info.missed.keys()];
    let maxBlocks = MAX_MODULE_BLOCKS;
    const seeds = work.length;
    const evidence = info.seeds ?? (info.seeds = new Set());
    if (have === null) info.compiledKey = pageKey(this.u16, p * 4096);
    let marks = -1;
    if (have === null && info.profiled !== null) {
      // In one module a block at each entry the recorded runs saw (inside another block too, as a
      // hand-back's continuation), then what they reach. Every entry of it is audited, this run's
      // first visits' too: the next profile keeps those whose blocks run.
      // At the threshold's visits the page turned hot by itself, now; earlier the profile's time stands.
      const hotAt = info.visits >= this.threshold ? millions(info.hotSince) : info.profiled.hotAt;
      const audit: ProfileAudit = { entries: work.slice(), ages: work.map(() => 0), marks: -1, hotAt, prefetched };
      const own = new Map<number, number>();
      work.forEach((po, i) => own.set(po, i));
      const { entries, ages } = info.profiled;
      for (let i = 0; i < entries.length; i++) {
        const po = entries[i]!, mine = own.get(po);
        if (mine !== undefined) { audit.ages[mine] = ages[i] ?? 0; continue; } // seen in this run's first visits too: as old as the profile says
        audit.entries.push(po);
        audit.ages.push(ages[i] ?? 0);
        work.push(po);
      }
      marks = audit.marks = this.takeMarks(audit.entries.length);
      info.audit = audit;
      // As many blocks as entries (what they reach comes after them): sized by the recorded run's
      // block count, a profile kept every block a compile had reached from then on, used or not
      // (a boot compiled 41,000 blocks where this compiles 29,000; /init 6.49 → 5.83 s, 5 rounds).
      maxBlocks = Math.min(PROFILED_MODULE_BLOCKS, Math.max(MAX_MODULE_BLOCKS, work.length));
      info.profiled = null;
    } else {
      for (const po of work) evidence.add(po);
    }
    info.missed.clear();
    info.entries.clear();
    const pageOff = p * 4096;
    const service = this.service;
    // From the request on, a store to the page drops its record, so code of stale bytes is never installed.
    this.markCode(p, info);
    if (service !== null && service.failure === null) {
      const req = service.request(pageOff, work, have === null ? [] : have.keys(), tail, maxBlocks, seeds, marks, info.announced);
      if (req !== null) {
        info.pending = true;
        info.slot = req.slot;
        this.inFlight.set(req.id, { p, info, epoch: this.epoch });
        this.stats.compileMs += performance.now() - t0;
        return false;
      } // the ring is full: compile here
    }
    if (this.shootdown !== null && !this.shootdown.settled(info.announced)) return false; // other threads' harts may still store to the page: later
    const compiled = compileModules(this.u16, [{ pageOff, work, have, tail, seeds, marks, taken: this.takenFilter }], maxBlocks, this.wasmPages, this.shootdown !== null);
    if (compiled === null) {
      if (have === null) info.visits = -4 * this.threshold; // nothing to compile here yet: look again much later
      return false;
    }
    this.install(compiled.module, compiled.parts, [{ p, info, part: compiled.parts[0]! }]);
    this.stats.compileMs += performance.now() - t0;
    return info.blocks !== null;
  }

  /**
   * The profile for the next run (jit_profile.ts): the pages with code now, keyed by their code,
   * with where execution entered them and how many blocks they have, over the profile this run
   * started from. Entries that were block starts, not every block start: blocks a compile added
   * because they were within reach would otherwise be recorded as entries and the set grow from
   * run to run.
   */
  exportProfile(): JitProfile {
    const out: JitProfile = new Map();
    const audited = new Set<string>();
    for (const [p, info] of this.pages) { // this run's pages first: they are kept when the profile is full
      if (info.blocks === null) continue;
      if ((this.codePages[p]! & this.bit) === 0) { // a device or another thread dropped its code, and this thread has not looked since
        this.retire(p, info);
        continue;
      }
      const key = pageKey(this.u16, p * 4096);
      if (info.audit !== null) audited.add(key);
      const record = this.profileRecord(p, info);
      if (record === null) continue;
      out.set(key, record);
      // Its code changed since its first compile without a store dropping it here (another thread's, or this one's and compiled again): both.
      if (info.compiledKey !== null && !out.has(info.compiledKey)) out.set(info.compiledKey, record);
    }
    for (const [key, record] of this.retired) if (!out.has(key)) out.set(key, record);
    for (const [key, page] of this.profile) if (!out.has(key) && !audited.has(key)) out.set(key, page); // pages this run did not compile, as they were
    return out;
  }

  /** What the next profile keeps of RAM page `p`'s record `info`, whose blocks are still there; null when nothing. */
  private profileRecord(p: number, info: PageInfo): ProfiledPage | null {
    const blocks = info.blocks!;
    const age = new Map<number, number>();
    if (info.seeds !== null) for (const po of info.seeds) if (blocks.has(po)) age.set(po, 0); // an entry inside another block ran there
    if (info.audit !== null) this.auditAges(info.audit, age);
    if (age.size === 0) return null;
    const entries = [...age.keys()].sort((a, b) => a - b);
    const hotAt = info.audit !== null ? info.audit.hotAt : millions(info.hotSince);
    return { entries, ages: entries.map((po) => age.get(po)!), blocks: blocks.size, hotAt, ram: p };
  }

  /**
   * The next ages of a profiled compile's entries into `age` (those not there yet): 0 for an entry
   * whose block ran PROFILE_HOT_RUNS times in a page whose audited blocks ran PROFILE_PAGE_THRESHOLDS
   * thresholds' worth (a page hot enough to compile without a profile), one older otherwise;
   * none at PROFILE_MAX_AGE. Unchanged when there were no marks to count with, and for a page
   * compiled ahead of the guest none of whose blocks ran: this run did not go there, and its record
   * stays as it was, as that of a page a run does not compile (a workload's pages would otherwise
   * go from the profile after three runs of other workloads).
   */
  private auditAges(audit: ProfileAudit, age: Map<number, number>): void {
    const first = (audit.marks - this.area.marksOffset) >> 2;
    let total = 0;
    if (audit.marks >= 0) for (let i = 0; i < audit.entries.length; i++) total += this.marks[first + i]! >>> 0;
    const pageHot = total >= this.threshold * PROFILE_PAGE_THRESHOLDS;
    const unaudited = audit.marks < 0 || (audit.prefetched && total === 0);
    for (let i = 0; i < audit.entries.length; i++) {
      const po = audit.entries[i]!;
      const next = unaudited ? audit.ages[i]! : pageHot && this.marks[first + i]! >>> 0 >= PROFILE_HOT_RUNS ? 0 : audit.ages[i]! + 1;
      if (next < PROFILE_MAX_AGE && !age.has(po)) age.set(po, next);
    }
  }

  /** The interpreter ran `instructions` in a page whose compile is waiting: that request goes earlier. */
  heat(info: PageInfo, instructions: number): void {
    if (info.slot >= 0) this.service?.heat(info.slot, instructions);
  }

  /** Background compiles asked for and not yet taken back. */
  get pendingCompiles(): number {
    return this.inFlight.size;
  }

  /** Installs what the compile thread finished: one shared-memory load when nothing did. */
  poll(): void {
    if (this.service !== null && this.service.ready) this.collect();
  }

  private collect(): void {
    for (const r of this.service!.take()) {
      const live: LivePart[] = [];
      for (const part of r.parts) {
        const job = this.inFlight.get(part.id);
        if (job === undefined) continue;
        this.inFlight.delete(part.id);
        const { p, info } = job;
        info.slot = -1;
        if (r.error !== undefined) { // a bug of ours: the page's pending flag stays, so it is never compiled again
          process.stderr.write(`nodevisor: JIT: compiling code of RAM page 0x${p.toString(16)} failed, it stays interpreted: ${r.error}\n`);
          continue;
        }
        info.pending = false;
        if (r.module === undefined || part.starts.length === 0) {
          if (info.blocks === null) info.visits = -4 * this.threshold; // nothing to compile here yet: look again much later
          continue;
        }
        // The page was written, its code dropped or the cache flushed meanwhile: this code may be stale.
        if (job.epoch !== this.epoch || this.pages.get(p) !== info || (Atomics.load(this.codePages, p) & this.bit) === 0) {
          this.stats.staleCompiles++;
          continue;
        }
        live.push({ p, info, part });
      }
      if (live.length === 0) continue;
      if (r.reused === true) this.stats.reusedCompiles++;
      const t0 = performance.now();
      this.install(r.module!, r.parts, live);
      this.stats.compileMs += performance.now() - t0;
    }
  }

  /**
   * From now on a store to RAM page `p` misses the write TLB, and translate() drops the page's
   * code first: on this thread at once, on the others once the announcement settles (info.announced).
   */
  private markCode(p: number, info: PageInfo): void {
    if ((this.codePages[p]! & this.bit) !== 0) return;
    Atomics.or(this.codePages, p, this.bit);
    for (const h of this.harts) h.dropWriteMappings(p);
    if (this.shootdown !== null) info.announced = this.shootdown.announce(p);
  }

  /**
   * Instantiates a compiled module of one or more pages' blocks (`parts`, in function order: each
   * page's blocks at page offsets `starts`, linked to the page's earlier blocks at `linked`) and
   * makes the dispatcher find the blocks of the `live` parts (the others' pages changed meanwhile:
   * their functions stay unreachable, their links bound to `go`).
   */
  private install(module: WebAssembly.Module, parts: readonly CompiledPart[], live: LivePart[]): void {
    let count = 0, adding = 0;
    for (const part of parts) count += part.starts.length;
    for (const l of live) adding += l.part.starts.length;
    if (this.stats.blocks + adding > this.maxBlocks) { // flush keeps one page's record
      this.flush(live.length === 1 ? live[0]!.p : -1);
      if (live.length > 1 || live[0]!.part.linked.length > 0) return; // the records, or the blocks it links to, are gone
    }
    const links: Record<string, BlockFn> = {};
    for (let i = 0; i < parts.length; i++) for (const po of parts[i]!.linked) links[blockImportName(po, i)] = this.go;
    const installed: LivePart[] = [];
    for (const l of live) {
      const i = parts.indexOf(l.part);
      let ok = true;
      for (const po of l.part.linked) {
        const slot = l.info.blocks?.get(po);
        if (slot === undefined) ok = false; // (cannot be: a page's blocks are dropped together, and the reply then as stale)
        else links[blockImportName(po, i)] = this.table.get(slot) as BlockFn;
      }
      if (ok) installed.push(l);
    }
    if (installed.length === 0) return;
    const fns = instantiateBlocks(module, count, this.ram.memory, this.go, links);
    for (const { p, info, part } of installed) this.installPage(p, info, fns.slice(part.first, part.first + part.starts.length), part);
    this.stats.compiledTotal++;
    // Another thread's store or a device may have dropped a page's code while it was installed: its gate and keys are set again, so out it goes.
    for (const { p } of installed) if ((Atomics.load(this.codePages, p) & this.bit) === 0) this.forget(p);
  }

  /** Makes the dispatcher find page `p`'s new blocks `fns` (at page offsets `starts`). */
  private installPage(p: number, info: PageInfo, fns: BlockFn[], { starts, bytes }: CompiledPart): void {
    const blocks = info.blocks ?? (info.blocks = new Map());
    const before = blocks.size;
    const pageOff = p * 4096;
    for (let i = 0; i < starts.length; i++) {
      if (blocks.has(starts[i]!)) continue; // the compile thread got only part of the page's list of blocks
      const slot = this.allocSlot();
      this.table.set(slot, fns[i]!);
      blocks.set(starts[i]!, slot);
      const e = (((pageOff + starts[i]!) >>> 1) & LOOKUP_MASK) << 1;
      this.lookup[e + 1] = slot;
      Atomics.store(this.lookup, e, pageOff + starts[i]! + 1);
    }
    this.stats.blocks += blocks.size - before;
    this.stats.codeBytes += bytes;
    info.bytes += bytes;
    Atomics.store(this.gates, p, 1);
  }

  /** Stops the compile thread (the cache compiles on the caller's thread from then on). */
  close(): void {
    this.service?.close();
    this.service = null;
    this.abandonInFlight();
  }

  /** Forgets the background compiles not taken back: their pages may be compiled again. */
  private abandonInFlight(): void {
    for (const job of this.inFlight.values()) {
      job.info.pending = false;
      job.info.slot = -1;
    }
    this.inFlight.clear();
  }

  /** A store of a hart of this thread is about to reach RAM page `p`: every thread's code of it goes. */
  invalidatePage(p: number): void {
    this.ram.dropCode(p);
    this.forget(p);
  }

  /** Forgets RAM page `p`'s record and code here (its code was dropped, or is being). */
  private forget(p: number): void {
    Atomics.and(this.codePages, p, ~this.bit);
    const info = this.pages.get(p);
    if (info === undefined) return;
    this.pages.delete(p);
    this.retire(p, info);
    if (this.dropCode(p, info)) this.stats.invalidations++;
  }

  /** Drops every page's code (the cache is full), keeping page `keep`'s record. */
  flush(keep: number): void {
    this.epoch++;
    for (const [p, info] of this.pages) {
      if (info.blocks !== null) {
        Atomics.and(this.codePages, p, ~this.bit); // other threads' code of the page stays
        this.dropCode(p, info);
      }
      if (p !== keep) this.pages.delete(p);
    }
    this.stats.flushes++;
  }

  /**
   * Keeps what the profile should know of a page whose code is being dropped because the page was
   * written, under the key of the code it was compiled from. The kernel frees its init code after
   * the boot and patches its text as it runs (static keys): a boot compiled ~34 pages whose code
   * was gone or different by the end of the run, never in the profile, 8 M instructions
   * interpreted in them a boot.
   */
  private retire(p: number, info: PageInfo): void {
    if (info.blocks === null || info.compiledKey === null || this.retired.size >= RETIRED_MAX) return;
    const record = this.profileRecord(p, info);
    if (record !== null) this.retired.set(info.compiledKey, record);
  }

  private dropCode(p: number, info: PageInfo): boolean {
    const blocks = info.blocks;
    if (blocks === null) return false;
    for (const h of this.harts) h.bumpJumpCache();
    Atomics.store(this.gates, p, 0);
    const pageOff = p * 4096;
    for (const [po, slot] of blocks) {
      const e = (((pageOff + po) >>> 1) & LOOKUP_MASK) << 1;
      if (this.lookup[e] === pageOff + po + 1) this.lookup[e] = 0;
      this.table.set(slot, null);
      this.freeSlots.push(slot);
    }
    this.stats.blocks -= blocks.size;
    this.stats.codeBytes -= info.bytes;
    info.blocks = null;
    info.bytes = 0;
    return true;
  }

  private allocSlot(): number {
    const free = this.freeSlots.pop();
    if (free !== undefined) return free;
    const first = this.table.grow(256);
    for (let s = first + 255; s > first; s--) this.freeSlots.push(s);
    return first;
  }
}
