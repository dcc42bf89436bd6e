// The hart's architectural state (registers, privilege, CSR fields, reservation, pending exception)
// and its software TLBs: a set per privilege (U mode's per recent address space), with the flushes
// that keep them exact.
import type { GuestRam } from "../seams/guest_ram.js";
import type { MmioRouter } from "../seams/mmio.js";
import { EXIT_BUDGET, type VcpuExit } from "./exit.js";
import type { TimeSource } from "../seams/time.js";
import type { FpContext } from "./fpu/context.js";
import * as KC from "./constants.js";
import * as CSR from "./csr.js";
import * as HL from "./hart_layout.js";
import * as TS from "./tlb_sets.js";
import { TlbSet } from "./tlb_sets.js";

// Module-local copies of imported bindings: ESM loaders may turn each cross-module read into a
// getter call, which showed up at several percent in profiles of the interpreter loop.
const { C64_COUNT, C64_SATP, CSR_EFFECT_MSTATUS, CSR_EFFECT_SATP, CSR_EFFECT_STIMER, csrWrite } = CSR;
const { TLB_MASK, NO_SPACE, clearSet, dropPage, dropSpaceFills, dropWritesTo, satpAsid } = TS;
const {
  MSTATUS_FS, MSTATUS_MPP, MSTATUS_MPP_SHIFT, MSTATUS_MPRV, MSTATUS_MXR, MSTATUS_SUM, PRV_M, PRV_S,
  PRV_U, SATP_BARE,
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
export { TLB_SIZE, TLB_MASK, TLB_INVALID, type TlbWay, type TlbSet } from "./tlb_sets.js";
// The loops and semantics/instructions.ts spell the mask as a literal (see there); keep them in step.
if (TLB_MASK !== 2047) throw new Error("TLB_SIZE changed: update the 2047 literals in semantics/instructions.ts, exec_fast.ts and exec_slow.ts");
/** Superpage regions remembered for sfence.vma by address; beyond this, their bounds stand for them. */
const BIG_MAX = 64;
export const PTE_U = 16;
export const PTE_G = 32;

/** The FPU's view of fcsr: frm and fflags are words of the state block. */
class BlockFpContext implements FpContext {
  constructor(readonly f: Int32Array, readonly x: Int32Array, private readonly w: Int32Array) {}
  get frm(): number { return this.w[HL.W_FRM]!; }
  set frm(v: number) { this.w[HL.W_FRM] = v; }
  get fflags(): number { return this.w[HL.W_FFLAGS]!; }
  set fflags(v: number) { this.w[HL.W_FFLAGS] = v; }
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
  // U-mode's is one of uSets, the one of the current address space (satp's ASID and root). S-mode
  // data accesses with mstatus.SUM set use sumSet (as QEMU keeps a TLB per MMU index with SUM):
  // the kernel sets and clears SUM around every user copy, and dropping the user pages at each clear
  // walked them again in every syscall.
  protected readonly tlbs: TlbSet[];
  private readonly sumSet: TlbSet;
  /** U-mode sets, one per recent address space: a switch back to one finds its entries (satpWritten). */
  private readonly uSets: TlbSet[];
  /** Every set, for the invalidations that reach them all. */
  private readonly allSets: TlbSet[];
  /** Address-space switches so far: the U sets' `used` stamps. */
  private spaceSwitches = 0;
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
  /** The bounds of every superpage region noted since the last flush (virtual addresses as doubles): past BIG_MAX, a fence inside them flushes. */
  private bigStart = Infinity;
  private bigEnd = -Infinity;
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
    // (Slot 2's room in the state block is the JIT's jump cache; no hart runs at privilege 2.)
    this.uSets = HL.U_SLOTS.map((slot) => new TlbSet(buf, base, slot, shared));
    const sSet = new TlbSet(buf, base, HL.TLB_SLOT_S, shared), mSet = new TlbSet(buf, base, HL.TLB_SLOT_M, shared);
    this.sumSet = new TlbSet(buf, base, HL.TLB_SLOT_SUM, shared);
    this.tlbs = [this.uSets[0]!, sSet, mSet, mSet];
    this.allSets = [sSet, this.sumSet, mSet, ...this.uSets];
    this.uSets[0]!.satpLo = this.uSets[0]!.satpHi = 0;
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
    for (const t of this.allSets) clearSet(t);
    this.bigCount = 0;
    this.bigStart = Infinity;
    this.bigEnd = -Infinity;
    this.codeVBase = NaN;
  }

  /** Compiled code now depends on RAM page `ramPage`: no write-TLB entry may map it (stores must reach translate()). */
  dropWriteMappings(ramPage: number): void {
    for (const t of this.allSets) dropWritesTo(t, ramPage);
  }

  /**
   * sfence.vma with an address: drop that page's entries in every address space, or everything if
   * a cached superpage covers it. Entries of other pages stay, and the jump cache stays valid unless
   * a fetch entry of this page went: the kernel's fences are mostly for data pages (57,000 a boot),
   * and a new generation after each made every dispatch look its target up again.
   */
  protected flushTlbPage(lo: number, hi: number): void {
    const n = this.bigCount;
    if (n > BIG_MAX) {
      const va = hi * TWO32 + (lo >>> 0);
      if (va >= this.bigStart && va < this.bigEnd) { this.flushTlb(); return; }
    }
    for (let i = 0; i < n && i < BIG_MAX; i++) {
      if (((lo ^ this.bigLo[i]) & this.bigMaskLo[i]) === 0 && ((hi ^ this.bigHi[i]) & this.bigMaskHi[i]) === 0) {
        this.flushTlb();
        return;
      }
    }
    const idx = (lo >>> 12) & TLB_MASK;
    const tag = lo & -4096;
    let code = false;
    for (const t of this.allSets) if (dropPage(t, idx, tag, hi)) code = true;
    if (code) {
      this.bumpJumpCache();
      this.codeVBase = NaN;
    }
  }

  /** sfence.vma x0, rs2: drop the entries of address space `asid` (its U sets, and the S sets' own if it is current). */
  protected flushAsid(asid: number): void {
    let code = false;
    for (const t of this.uSets) {
      if (t.fills !== 0 && satpAsid(t.satpHi) === asid) { clearSet(t); code = true; }
    }
    if (satpAsid(this.c64[2 * C64_SATP + 1]!) === asid) this.dropSpaceFills();
    if (code) {
      this.bumpJumpCache();
      this.codeVBase = NaN;
    }
  }

  /** Remember that a superpage (leaf level > 0) covering (lo, hi) has entries cached. */
  protected noteSuperpage(lo: number, hi: number, level: number): void {
    const n = this.bigCount;
    if (n > BIG_MAX) { this.noteSuperpageBounds(lo, hi, level); return; }
    const maskLo = level === 1 ? -0x200000 : level === 2 ? -0x40000000 : 0;
    const maskHi = level === 3 ? ~0x7f : -1;
    for (let i = 0; i < n; i++) {
      if (this.bigMaskLo[i] === maskLo && this.bigMaskHi[i] === maskHi &&
        ((lo ^ this.bigLo[i]) & maskLo) === 0 && ((hi ^ this.bigHi[i]) & maskHi) === 0) return;
    }
    this.noteSuperpageBounds(lo, hi, level);
    if (n === BIG_MAX) { this.bigCount = BIG_MAX + 1; return; }
    this.bigLo[n] = lo & maskLo;
    this.bigHi[n] = hi & maskHi;
    this.bigMaskLo[n] = maskLo;
    this.bigMaskHi[n] = maskHi;
    this.bigCount = n + 1;
  }

  /** Widens the bounds of the superpages noted to the one of `level` around (lo, hi). */
  private noteSuperpageBounds(lo: number, hi: number, level: number): void {
    const size = 2 ** (12 + 9 * level);
    const start = Math.floor((hi * TWO32 + (lo >>> 0)) / size) * size;
    if (start < this.bigStart) this.bigStart = start;
    if (start + size > this.bigEnd) this.bigEnd = start + size;
  }

  /** The address space changed: the S sets drop their entries of the old one (tlb_sets.ts spaceFills). */
  private dropSpaceFills(): void {
    if (dropSpaceFills(this.tlbs[PRV_S]!)) this.bumpJumpCache();
    dropSpaceFills(this.sumSet); // data only
    this.codeVBase = NaN;
  }

  /** Point the current TLB arrays at the sets of dataPriv (loads/stores; S with SUM: sumSet) and priv (fetch). */
  protected selectTlbs(): void {
    const dp = this.dataPriv;
    const d = dp === PRV_S && (this.mstatus & MSTATUS_SUM) !== 0 ? this.sumSet : this.tlbs[dp]!, f = this.tlbs[this.priv]!;
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
    if ((effects & CSR_EFFECT_SATP) !== 0) this.satpWritten();
    if ((effects & CSR_EFFECT_STIMER) !== 0) this.updateStimer();
  }

  /** Sets or clears STIP from stimecmp and the time now (hart_traps.ts). */
  protected abstract updateStimer(): void;

  /** mstatus changed from `old`: drop TLB entries the change made stale, re-derive the data privilege. */
  private mstatusChanged(old: number): void {
    const changed = old ^ this.mstatus;
    // SUM picks S mode's data set (selectTlbs): the user pages it lets in stay in sumSet.
    if ((changed & MSTATUS_MXR) !== 0) this.flushTlb();
    if ((changed & (MSTATUS_MPRV | MSTATUS_MPP)) !== 0) this.updateDataPriv();
    else if ((changed & MSTATUS_SUM) !== 0) this.selectTlbs();
  }

  /** satp changed (a reset, a restore): no cached translation stays; the current U set is the new address space's. */
  satpChanged(): void {
    const lo = this.c64[2 * C64_SATP]!, hi = this.c64[2 * C64_SATP + 1]!;
    this.satpMode = hi >>> 28;
    this.satpPpn = (lo >>> 0) + (hi & 0xfff) * TWO32;
    this.flushTlb();
    for (const t of this.uSets) t.satpLo = t.satpHi = NO_SPACE; // all empty now: none may claim an address space twice
    const u = this.tlbs[PRV_U]!;
    u.satpLo = lo;
    u.satpHi = hi;
    u.used = ++this.spaceSwitches;
  }

  /**
   * The guest wrote satp. Within one translating mode, nothing is flushed (as hardware with ASIDs;
   * the guest fences what it changed): the S sets drop the old address space's own entries
   * (spaceFills) and keep the global ones, and U mode takes the set of the new address space
   * (satp's ASID and root alike), the least recently chosen one's if none has it. Linux then stops
   * flushing everything at each of a boot's ~350 switches.
   */
  private satpWritten(): void {
    const lo = this.c64[2 * C64_SATP]!, hi = this.c64[2 * C64_SATP + 1]!;
    const mode = hi >>> 28;
    if (mode === SATP_BARE || mode !== this.satpMode) { this.satpChanged(); return; }
    const current = this.tlbs[PRV_U]!;
    if (current.satpLo === lo && current.satpHi === hi) return;
    this.satpPpn = (lo >>> 0) + (hi & 0xfff) * TWO32;
    this.dropSpaceFills();
    let pick: TlbSet | null = null;
    for (const t of this.uSets) {
      if (t.satpLo === lo && t.satpHi === hi) { pick = t; break; }
      if (t !== current && (pick === null || t.used < pick.used)) pick = t;
    }
    pick = pick!;
    if (pick.satpLo !== lo || pick.satpHi !== hi) {
      if (pick.fills !== 0) {
        clearSet(pick);
        this.bumpJumpCache(); // the jump cache may hold entries of its fetch TLB
      }
      pick.satpLo = lo;
      pick.satpHi = hi;
    }
    pick.used = ++this.spaceSwitches;
    this.tlbs[PRV_U] = pick;
    this.selectTlbs();
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
