// The hart's architectural state (registers, privilege, CSR fields, reservation, pending exception)
// and its software TLBs: one set per privilege, with the flushes that keep them exact.
import type { GuestRam } from "../seams/guest_ram.js";
import type { MmioRouter } from "../seams/mmio.js";
import { EXIT_BUDGET, type VcpuExit } from "./exit.js";
import type { TimeSource } from "../seams/time.js";
import type { FpContext } from "./fpu/context.js";
import * as KC from "./constants.js";
import * as CSR from "./csr.js";
import * as MMU from "./mmu.js";
import * as HL from "./hart_layout.js";

// Module-local copies of imported bindings: ESM loaders may turn each cross-module read into a
// getter call, which showed up at several percent in profiles of the interpreter loop.
const { C64_COUNT, C64_SATP, CSR_EFFECT_MSTATUS, CSR_EFFECT_SATP, CSR_EFFECT_STIMER, csrWrite } = CSR;
const { ACCESS_READ } = MMU;
const {
  MSTATUS_FS, MSTATUS_MPP, MSTATUS_MPP_SHIFT, MSTATUS_MPRV, MSTATUS_MXR, MSTATUS_SUM, PRV_M, PRV_S,
  SATP_BARE,
} = KC;

export interface HartOptions {
  hartId: number;
  ram: GuestRam;
  /**
   * Devices the vCPU serves itself, as KVM keeps the interrupt controllers in the kernel (the
   * CLINT and the PLIC). An access to any other non-RAM address ends run() with an MMIO exit.
   */
  vcpuDevices: MmioRouter;
  time: TimeSource;
  /**
   * Keep the hart's state block (hart_layout.ts: registers, pc, control state, TLBs) above RAM in
   * the shared memory, where other threads and the JIT's wasm code reach it; otherwise it is a
   * private buffer with the same layout (tests that run two harts of one id over one RAM). The
   * hart that runs owns the block: another object over it only reads it while that hart is parked.
   */
  stateBlock?: boolean;
}

export const TWO32 = 4294967296;
export const TLB_SIZE = HL.TLB_SIZE;
export const TLB_MASK = TLB_SIZE - 1;
// The loops and semantics/instructions.ts spell the mask as a literal (see there); keep them in step.
if (TLB_MASK !== 2047) throw new Error("TLB_SIZE changed: update the 2047 literals in semantics/instructions.ts, exec_fast.ts and exec_slow.ts");
/** A tag no address can have (page tags have their low 12 bits clear). */
export const TLB_INVALID = 1;
/** Superpage regions remembered for sfence.vma by address; beyond this, such a fence flushes everything. */
const BIG_MAX = 64;
/** S-mode TLB fills of user pages (under SUM) remembered for clearing SUM; beyond this, clearing flushes the S set. */
export const SUM_MAX = 64;
export const PTE_U = 16;

/** One privilege level's software TLBs (read / write / fetch): tag lo/hi words of the virtual page -> RAM byte offset. */
export interface TlbWay {
  rTagLo: Int32Array; rTagHi: Int32Array; rOff: Uint32Array;
  wTagLo: Int32Array; wTagHi: Int32Array; wOff: Uint32Array;
  xTagLo: Int32Array; xTagHi: Int32Array; xOff: Uint32Array;
}

/** Way 0 (the fast paths'), and way 1 with the entries fills displaced from it (hart_layout.ts). */
export interface TlbSet extends TlbWay {
  way1: TlbWay;
  /** Write entries filled since the set was last flushed: none, and dropWriteMappings skips it. */
  writeFills: number;
}

/** The FPU's view of fcsr: frm and fflags are words of the state block. */
class BlockFpContext implements FpContext {
  constructor(readonly f: Int32Array, readonly x: Int32Array, private readonly w: Int32Array) {}
  get frm(): number { return this.w[HL.W_FRM]!; }
  set frm(v: number) { this.w[HL.W_FRM] = v; }
  get fflags(): number { return this.w[HL.W_FFLAGS]!; }
  set fflags(v: number) { this.w[HL.W_FFLAGS] = v; }
}

/** A TLB way in `buffer` at `at` (laid out as hart_layout.ts says), all invalid. */
function makeTlbWay(buffer: ArrayBufferLike, at: number): TlbWay {
  const i32 = (k: number): Int32Array => new Int32Array(buffer, at + k * HL.TLB_ARRAY_BYTES, TLB_SIZE);
  const u32 = (k: number): Uint32Array => new Uint32Array(buffer, at + k * HL.TLB_ARRAY_BYTES, TLB_SIZE);
  const way: TlbWay = {
    rTagLo: i32(HL.TLB_R_TAG_LO), rTagHi: i32(HL.TLB_R_TAG_HI), rOff: u32(HL.TLB_R_OFF),
    wTagLo: i32(HL.TLB_W_TAG_LO), wTagHi: i32(HL.TLB_W_TAG_HI), wOff: u32(HL.TLB_W_OFF),
    xTagLo: i32(HL.TLB_X_TAG_LO), xTagHi: i32(HL.TLB_X_TAG_HI), xOff: u32(HL.TLB_X_OFF),
  };
  way.rTagLo.fill(TLB_INVALID);
  way.wTagLo.fill(TLB_INVALID);
  way.xTagLo.fill(TLB_INVALID);
  return way;
}

/** A TLB set in `buffer` at `at`, or in a private buffer. */
function makeTlbSet(buffer: ArrayBufferLike = new ArrayBuffer(HL.TLB_SET_BYTES), at = 0): TlbSet {
  return { ...makeTlbWay(buffer, at), way1: makeTlbWay(buffer, at + HL.TLB_WAY_BYTES), writeFills: 0 };
}

export abstract class HartBase {
  readonly hartId: number;
  readonly ram: GuestRam;
  readonly vcpuDevices: MmioRouter;
  readonly time: TimeSource;
  /** Why the last run() returned, and what the VMM must do before the next (see exit.ts). */
  readonly exit: VcpuExit = { reason: EXIT_BUDGET, retired: 0, mmioAddr: 0, mmioSize: 1, mmioWrite: false, mmioValueLo: 0, mmioValueHi: 0 };

  /** x0..x31 as (lo, hi) int32 pairs; shared with the FPU. */
  readonly x: Int32Array;
  readonly f: Int32Array;
  readonly fp: FpContext;
  /** Offset of this hart's state block in the RAM memory (hart_layout.ts), or -1 when its state is private. */
  readonly stateOffset: number;

  /** pc in a Float64Array slot: the interpreter loop stores it as a raw double instead of boxing it. */
  protected readonly pcBox: Float64Array;
  get pc(): number { return this.pcBox[0]!; }
  set pc(v: number) { this.pcBox[0] = v; }
  /** Control state words and doubles of the state block (hart_layout.ts W_* / D_*). */
  readonly w: Int32Array;
  readonly d: Float64Array;
  get priv(): number { return this.w[HL.W_PRIV]!; }
  set priv(v: number) { this.w[HL.W_PRIV] = v; }
  /** Privilege used for loads/stores (differs from priv under mstatus.MPRV). */
  get dataPriv(): number { return this.w[HL.W_DATA_PRIV]!; }
  set dataPriv(v: number) { this.w[HL.W_DATA_PRIV] = v; }
  get mstatus(): number { return this.w[HL.W_MSTATUS]!; }
  set mstatus(v: number) { this.w[HL.W_MSTATUS] = v; }
  get mie(): number { return this.w[HL.W_MIE]!; }
  set mie(v: number) { this.w[HL.W_MIE] = v; }
  /** Software-writable pending bits (SSIP, STIP, SEIP). */
  get mipSw(): number { return this.w[HL.W_MIP_SW]!; }
  set mipSw(v: number) { this.w[HL.W_MIP_SW] = v; }
  /** Pending bits driven by devices (CLINT, PLIC) and by stimecmp. */
  get mipDev(): number { return this.w[HL.W_MIP_DEV]!; }
  set mipDev(v: number) { this.w[HL.W_MIP_DEV] = v; }
  get medeleg(): number { return this.w[HL.W_MEDELEG]!; }
  set medeleg(v: number) { this.w[HL.W_MEDELEG] = v; }
  get mideleg(): number { return this.w[HL.W_MIDELEG]!; }
  set mideleg(v: number) { this.w[HL.W_MIDELEG] = v; }
  get mcounteren(): number { return this.w[HL.W_MCOUNTEREN]!; }
  set mcounteren(v: number) { this.w[HL.W_MCOUNTEREN] = v; }
  get scounteren(): number { return this.w[HL.W_SCOUNTEREN]!; }
  set scounteren(v: number) { this.w[HL.W_SCOUNTEREN] = v; }
  get mcountinhibit(): number { return this.w[HL.W_MCOUNTINHIBIT]!; }
  set mcountinhibit(v: number) { this.w[HL.W_MCOUNTINHIBIT] = v; }
  get menvcfg(): number { return this.w[HL.W_MENVCFG]!; }
  set menvcfg(v: number) { this.w[HL.W_MENVCFG] = v; }
  get senvcfg(): number { return this.w[HL.W_SENVCFG]!; }
  set senvcfg(v: number) { this.w[HL.W_SENVCFG] = v; }
  /** 64-bit CSRs (csr.ts C64_* slots as lo/hi pairs), PMP: views of the state block. */
  readonly c64: Int32Array;
  readonly pmpcfg: Int32Array;
  readonly pmpaddr: Int32Array;
  get satpMode(): number { return this.w[HL.W_SATP_MODE]!; }
  set satpMode(v: number) { this.w[HL.W_SATP_MODE] = v; }
  get satpPpn(): number { return this.d[HL.D_SATP_PPN]!; }
  set satpPpn(v: number) { this.d[HL.D_SATP_PPN] = v; }
  /** Instructions retired by this hart (the VMM's count; mcycle/minstret derive from it, see csr.ts). */
  get instret(): number { return this.d[HL.D_INSTRET]!; }
  set instret(v: number) { this.d[HL.D_INSTRET] = v; }
  readonly counterDelta: Float64Array;
  readonly counterFrozen: Float64Array;

  /** A CSR read's result (csr.ts leaves it in the block). */
  get csrLo(): number { return this.w[HL.W_CSR_LO]!; }
  get csrHi(): number { return this.w[HL.W_CSR_HI]!; }
  protected ldLo = 0;
  protected ldHi = 0;

  get waiting(): boolean { return this.w[HL.W_WAITING] !== 0; }
  set waiting(v: boolean) { this.w[HL.W_WAITING] = v ? 1 : 0; }
  get stopped(): boolean { return this.w[HL.W_STOPPED] !== 0; }
  set stopped(v: boolean) { this.w[HL.W_STOPPED] = v ? 1 : 0; }
  /** With true (the built-in SBI), an S-mode ecall ends run() with an SBI exit instead of trapping. */
  sbiExits = false;
  /** Test-only: skip execFast so every instruction goes through execSlow (hart_equivalence_test compares the two). */
  slowPathOnly = false;
  /** Other harts run on other host threads (vcpu_worker.ts): FENCE then needs a host barrier (GuestRam.hostFence). */
  hostFences = false;
  /** An exit (MMIO, SBI) was requested by the instruction at pc; it has not retired. */
  protected exitPending = 0;
  /** Virtual address of the MMIO access waiting for the VMM (for the access-fault tval). */
  protected mmioVLo = 0;
  protected mmioVHi = 0;
  /** The VMM completed the MMIO exit: the instruction at pc re-executes and takes this result. */
  protected mmioReplay = false;
  protected get stimecmpValue(): number { return this.d[HL.D_STIMECMP]!; }
  protected set stimecmpValue(v: number) { this.d[HL.D_STIMECMP] = v; }

  // Pending exception raised by a slow path; taken by run() after the slice ends.
  /** Set by SYSTEM instructions that may change interrupt enables, privilege or translation. */
  protected sliceExit = false;
  /** Set when a device raises an enabled interrupt during a slice (MMIO side effect): end the slice. */
  protected irqRaised = false;
  protected excPending = false;
  protected excCause = 0;
  protected excTvalLo = 0;
  protected excTvalHi = 0;

  // LR/SC: the reservation remembers address and loaded value; SC also compares the value so a
  // store by another hart between slices makes it fail.
  protected get resValid(): boolean { return this.w[HL.W_RES_VALID] !== 0; }
  protected set resValid(v: boolean) { this.w[HL.W_RES_VALID] = v ? 1 : 0; }
  protected get resAddr(): number { return this.d[HL.D_RES_ADDR]!; }
  protected set resAddr(v: number) { this.d[HL.D_RES_ADDR] = v; }
  protected get resLo(): number { return this.w[HL.W_RES_LO]!; }
  protected set resLo(v: number) { this.w[HL.W_RES_LO] = v; }
  protected get resHi(): number { return this.w[HL.W_RES_HI]!; }
  protected set resHi(v: number) { this.w[HL.W_RES_HI] = v; }
  protected get resSize(): number { return this.w[HL.W_RES_SIZE]!; }
  protected set resSize(v: number) { this.w[HL.W_RES_SIZE] = v; }

  // Software TLBs, one set per privilege (index = privilege; 2 unused), so traps, ecalls and xret
  // switch sets instead of flushing. Data accesses use the set of dataPriv, fetches the set of priv.
  protected readonly tlbs: TlbSet[];
  /** The JIT's jump cache in the state block (null without one). */
  private readonly jumpCache: Int32Array | null;
  protected rTagLo!: Int32Array;
  protected rTagHi!: Int32Array;
  protected rOff!: Uint32Array;
  protected wTagLo!: Int32Array;
  protected wTagHi!: Int32Array;
  protected wOff!: Uint32Array;
  protected xTagLo!: Int32Array;
  protected xTagHi!: Int32Array;
  protected xOff!: Uint32Array;
  /** The data set and the fetch set (hart_layout.ts): their way 1 holds the entries fills displaced from the arrays above. */
  protected dSet!: TlbSet;
  protected xSet!: TlbSet;
  /** Superpage regions with cached entries (masked lo/hi and masks), for sfence.vma by address; > BIG_MAX = overflowed. */
  protected readonly bigLo = new Int32Array(BIG_MAX);
  protected readonly bigHi = new Int32Array(BIG_MAX);
  protected readonly bigMaskLo = new Int32Array(BIG_MAX);
  protected readonly bigMaskHi = new Int32Array(BIG_MAX);
  protected bigCount = 0;
  /** S-set entries of user pages filled under SUM (idx | access << 8); clearing SUM drops them. > SUM_MAX = overflowed. */
  protected readonly sumFills = new Int32Array(SUM_MAX);
  protected sumCount = 0;
  /** Current code page: virtual base (NaN = none) and RAM byte offset. */
  protected codeVBase = NaN;
  protected codeOff = 0;
  /** TLB entries filled by translate() (a page walk, or the translation in M-mode or bare); way 1's swaps are not fills. */
  tlbFills = 0;

  protected readonly trapCounts = new Float64Array(64);
  protected readonly u8: Uint8Array;
  protected readonly u16: Uint16Array;
  protected readonly i32: Int32Array;
  protected readonly i64: BigInt64Array;
  /**
   * Aligned doublewords move as one 8-byte host access (a Float64Array element copied bit-exactly
   * through the d64/d32 scratch pair), so a hart on another thread never sees half of a store.
   */
  protected readonly f64: Float64Array;
  protected readonly d64 = new Float64Array(1);
  protected readonly d32 = new Int32Array(this.d64.buffer);

  constructor(opts: HartOptions) {
    this.hartId = opts.hartId;
    this.ram = opts.ram;
    this.vcpuDevices = opts.vcpuDevices;
    this.time = opts.time;
    this.u8 = opts.ram.u8;
    this.u16 = opts.ram.u16;
    this.i32 = opts.ram.i32;
    this.i64 = opts.ram.i64;
    this.f64 = opts.ram.f64;
    if (opts.ram.base % 4096 !== 0) throw new RangeError(`Guest RAM base 0x${opts.ram.base.toString(16)} must be 4 KiB aligned`);
    // The block above RAM, or a private buffer laid out the same (its TLB sets private too).
    const shared = opts.stateBlock === true;
    const buf = shared ? opts.ram.buffer : new ArrayBuffer(HL.HART_TLB);
    const base = shared ? opts.ram.hartStateOffset(opts.hartId) : 0;
    this.stateOffset = shared ? base : -1;
    new Uint8Array(buf, base, HL.HART_TLB).fill(0);
    this.x = new Int32Array(buf, base + HL.HART_X, 64);
    this.f = new Int32Array(buf, base + HL.HART_F, 64);
    this.pcBox = new Float64Array(buf, base + HL.HART_PC, 1);
    this.w = new Int32Array(buf, base + HL.HART_WORDS, HL.WORD_COUNT);
    this.d = new Float64Array(buf, base + HL.HART_DOUBLES, HL.DOUBLE_COUNT);
    this.c64 = this.w.subarray(HL.W_C64, HL.W_C64 + 2 * C64_COUNT);
    this.pmpcfg = this.w.subarray(HL.W_PMPCFG, HL.W_PMPCFG + HL.W_PMPCFG_COUNT);
    this.pmpaddr = this.w.subarray(HL.W_PMPADDR, HL.W_PMPADDR + HL.W_PMPADDR_COUNT);
    this.counterDelta = this.d.subarray(HL.D_COUNTER_DELTA, HL.D_COUNTER_DELTA + 3);
    this.counterFrozen = this.d.subarray(HL.D_COUNTER_FROZEN, HL.D_COUNTER_FROZEN + 3);
    // (Set 2's room in the state block is the JIT's jump cache; no hart runs at privilege 2.)
    this.tlbs = [0, 1, 2, 3].map((p) => (shared && p !== 2 ? makeTlbSet(buf, HL.tlbSetOffset(base, p)) : makeTlbSet()));
    this.jumpCache = shared ? new Int32Array(buf, base + HL.HART_JUMP_CACHE, (HL.JC_ENTRIES * HL.JC_ENTRY_BYTES) / 4) : null;
    this.priv = PRV_M;
    this.dataPriv = PRV_M;
    this.stimecmpValue = Infinity;
    this.selectTlbs();
    this.fp = new BlockFpContext(this.f, this.x, this.w);
    this.pc = 0x1000;
  }

  getX(i: number): bigint {
    if (!Number.isInteger(i) || i < 0 || i > 31) throw new RangeError(`Cannot read register x${i}: RISC-V has x0..x31`);
    if (i === 0) return 0n;
    // The signed high word makes the result signed already; no BigInt.asIntN (Node 20's optimizer has crashed on it).
    return (BigInt(this.x[2 * i + 1]!) << 32n) | BigInt(this.x[2 * i]! >>> 0);
  }

  setX(i: number, v: bigint): void {
    if (!Number.isInteger(i) || i < 0 || i > 31) throw new RangeError(`Cannot write register x${i}: RISC-V has x0..x31`);
    if (i === 0) return; // x0 is hard-wired to zero
    this.x[2 * i] = Number(v & 0xffffffffn) | 0;
    this.x[2 * i + 1] = Number((v >> 32n) & 0xffffffffn) | 0;
  }

  get privilege(): 0 | 1 | 3 {
    return this.priv as 0 | 1 | 3;
  }

  set privilege(p: 0 | 1 | 3) {
    this.setPriv(p);
  }

  /** Effective mip. */
  mip(): number {
    return this.mipSw | this.mipDev;
  }

  /**
   * A fetch-TLB entry changed, or compiled code was dropped: no entry of the JIT's jump cache
   * (jit/dispatcher.ts) counts any more. Its memory is cleared only when the generation wraps.
   */
  /** Empties the jump cache (a hart attaching to the JIT: the memory may hold a restored generation). */
  resetJumpCache(): void {
    this.jumpCache?.fill(0);
    this.w[HL.W_JC_GEN] = 1;
  }

  bumpJumpCache(): void {
    const gen = (this.w[HL.W_JC_GEN]! + 1) | 0;
    if (gen !== 0) this.w[HL.W_JC_GEN] = gen;
    else this.resetJumpCache();
  }

  flushTlb(): void {
    this.bumpJumpCache();
    for (const t of this.tlbs) {
      t.writeFills = 0;
      for (const w of [t, t.way1]) {
        w.rTagLo.fill(TLB_INVALID);
        w.wTagLo.fill(TLB_INVALID);
        w.xTagLo.fill(TLB_INVALID);
      }
    }
    this.bigCount = 0;
    this.sumCount = 0;
    this.codeVBase = NaN;
  }

  /** Compiled code now depends on RAM page `ramPage`: no write-TLB entry may map it (stores must reach translate()). */
  dropWriteMappings(ramPage: number): void {
    for (const t of this.tlbs) {
      if (t.writeFills === 0) continue;
      for (const w of [t, t.way1]) {
        const tag = w.wTagLo, off = w.wOff;
        for (let i = 0; i < TLB_SIZE; i++) {
          if (tag[i] !== TLB_INVALID && off[i]! >>> 12 === ramPage) tag[i] = TLB_INVALID;
        }
      }
    }
  }

  /**
   * sfence.vma with an address: drop that page's entries, or everything if a cached superpage
   * covers it. Entries of other pages stay, and the jump cache stays valid unless a fetch entry of
   * this page went: the kernel's fences are mostly for data pages (57,000 a boot), and a new
   * generation after each made every dispatch look its target up again.
   */
  protected flushTlbPage(lo: number, hi: number): void {
    const n = this.bigCount;
    if (n > BIG_MAX) { this.flushTlb(); return; }
    for (let i = 0; i < n; i++) {
      if (((lo ^ this.bigLo[i]) & this.bigMaskLo[i]) === 0 && ((hi ^ this.bigHi[i]) & this.bigMaskHi[i]) === 0) {
        this.flushTlb();
        return;
      }
    }
    const idx = (lo >>> 12) & TLB_MASK;
    const tag = lo & -4096;
    let code = false;
    for (const t of this.tlbs) {
      for (const w of [t, t.way1]) {
        if (w.rTagLo[idx] === tag && w.rTagHi[idx] === hi) w.rTagLo[idx] = TLB_INVALID;
        if (w.wTagLo[idx] === tag && w.wTagHi[idx] === hi) w.wTagLo[idx] = TLB_INVALID;
        if (w.xTagLo[idx] === tag && w.xTagHi[idx] === hi) {
          w.xTagLo[idx] = TLB_INVALID;
          code = true;
        }
      }
    }
    if (code) {
      this.bumpJumpCache();
      this.codeVBase = NaN;
    }
  }

  /** Remember that a superpage (leaf level > 0) covering (lo, hi) has entries cached. */
  protected noteSuperpage(lo: number, hi: number, level: number): void {
    const n = this.bigCount;
    if (n > BIG_MAX) return;
    const maskLo = level === 1 ? -0x200000 : level === 2 ? -0x40000000 : 0;
    const maskHi = level === 3 ? ~0x7f : -1;
    for (let i = 0; i < n; i++) {
      if (this.bigMaskLo[i] === maskLo && this.bigMaskHi[i] === maskHi &&
        ((lo ^ this.bigLo[i]) & maskLo) === 0 && ((hi ^ this.bigHi[i]) & maskHi) === 0) return;
    }
    if (n === BIG_MAX) { this.bigCount = BIG_MAX + 1; return; }
    this.bigLo[n] = lo & maskLo;
    this.bigHi[n] = hi & maskHi;
    this.bigMaskLo[n] = maskLo;
    this.bigMaskHi[n] = maskHi;
    this.bigCount = n + 1;
  }

  /** SUM was cleared: S-mode entries for user pages filled while it was set are no longer valid. */
  protected dropSumFills(): void {
    const t = this.tlbs[PRV_S]!;
    const n = this.sumCount;
    for (const w of [t, t.way1]) { // a fill may have moved such an entry to way 1 at its index
      if (n > SUM_MAX) {
        w.rTagLo.fill(TLB_INVALID);
        w.wTagLo.fill(TLB_INVALID);
      } else {
        for (let i = 0; i < n; i++) {
          const e = this.sumFills[i]!;
          if (e >>> 8 === ACCESS_READ) w.rTagLo[e & TLB_MASK] = TLB_INVALID;
          else w.wTagLo[e & TLB_MASK] = TLB_INVALID;
        }
      }
    }
    this.sumCount = 0;
    this.codeVBase = NaN;
  }

  /** Point the current TLB arrays at the sets of dataPriv (loads/stores) and priv (fetch). */
  protected selectTlbs(): void {
    const d = this.tlbs[this.dataPriv]!, f = this.tlbs[this.priv]!;
    this.rTagLo = d.rTagLo; this.rTagHi = d.rTagHi; this.rOff = d.rOff;
    this.wTagLo = d.wTagLo; this.wTagHi = d.wTagHi; this.wOff = d.wOff;
    this.xTagLo = f.xTagLo; this.xTagHi = f.xTagHi; this.xOff = f.xOff;
    this.dSet = d; this.xSet = f;
    this.codeVBase = NaN;
  }

  flushIcache(): void {
    // No decoded-instruction cache: fetch always reads RAM, so stores are seen at once.
    this.codeVBase = NaN;
  }

  markFpDirty(): void {
    this.mstatus |= MSTATUS_FS;
  }

  writeMstatus(v: number): void {
    const old = this.mstatus;
    this.mstatus = v;
    this.mstatusChanged(old);
  }

  /** A checked CSR write (csr.ts), then what it changed beyond the block: TLBs, the data privilege. */
  protected writeCsrWithEffects(csr: number, lo: number, hi: number): void {
    const before = this.mstatus;
    const effects = csrWrite(this, csr, lo, hi);
    if ((effects & CSR_EFFECT_MSTATUS) !== 0) this.mstatusChanged(before);
    if ((effects & CSR_EFFECT_SATP) !== 0) this.satpChanged();
    if ((effects & CSR_EFFECT_STIMER) !== 0) this.updateStimer();
  }

  /** Sets or clears STIP from stimecmp and the time now (hart_traps.ts). */
  protected abstract updateStimer(): void;

  /** mstatus changed from `old`: drop TLB entries the change made stale, re-derive the data privilege. */
  private mstatusChanged(old: number): void {
    const changed = old ^ this.mstatus;
    // Setting SUM only permits more, so entries stay valid; clearing it drops the user pages it let in.
    if ((changed & MSTATUS_MXR) !== 0) this.flushTlb();
    else if ((changed & old & MSTATUS_SUM) !== 0) this.dropSumFills();
    if ((changed & (MSTATUS_MPRV | MSTATUS_MPP)) !== 0) this.updateDataPriv();
  }

  satpChanged(): void {
    const hi = this.c64[2 * C64_SATP + 1];
    this.satpMode = hi >>> 28;
    this.satpPpn = (this.c64[2 * C64_SATP] >>> 0) + (hi & 0xfff) * TWO32;
    this.flushTlb();
  }

  protected setPriv(p: number): void {
    if (p === this.priv) return;
    this.priv = p;
    this.updateDataPriv();
  }

  protected updateDataPriv(): void {
    const m = this.mstatus;
    this.dataPriv = this.priv === PRV_M && (m & MSTATUS_MPRV) !== 0 ? (m >>> MSTATUS_MPP_SHIFT) & 3 : this.priv;
    this.selectTlbs();
  }
}
