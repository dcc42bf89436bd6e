// The RISC-V hart: RV64IMAC + Zicsr + Zifencei with M/S/U privilege and Sv39/Sv48.
// Interpreter loops in the TinyEMU style (execFast: the call-free common case; execSlow: every
// instruction, one at a time when execFast declines): integer registers as (lo, hi) int32 pairs,
// direct-mapped software TLBs with an inline fast path, fetch through a cached RAM offset for the
// current code page, faults leave the loop through one exit, and interrupts are checked between slices.
import type { GuestRam } from "../seams/guest_ram.js";
import type { MmioRouter } from "../seams/mmio.js";
import { EXIT_BUDGET, EXIT_MMIO, EXIT_SBI, EXIT_STOPPED, EXIT_WFI, type VcpuExit } from "./exit.js";
import type { InterruptTarget } from "../seams/interrupts.js";
import type { TimeSource } from "../seams/time.js";
import type { FpContext } from "./fpu/context.js";
import * as FP from "./fp_bridge.js";
import * as KC from "./constants.js";
import * as CSR from "./csr.js";
import * as MMU from "./mmu.js";
import * as RVC from "./rvc.js";
import * as I64 from "./int64.js";
import * as AT from "./atomics.js";

// Module-local copies of imported bindings: ESM loaders may turn each cross-module read into a
// getter call, which showed up at several percent in profiles of the interpreter loop.
const { executeFp } = FP;
const { C64_COUNT, C64_MCAUSE, C64_MEPC, C64_MTVAL, C64_MTVEC, C64_SATP, C64_SCAUSE, C64_SEPC, C64_STVAL, C64_STVEC,
  csrAccessAllowed, csrRead, csrWrite } = CSR;
const { ACCESS_FETCH, ACCESS_READ, ACCESS_WRITE, WALK_ACCESS_FAULT, WALK_LEAF, walk } = MMU;
const { RVC_TABLE } = RVC;
const { R, divrem64, mulh64, mulhsu64, mulhu64, mulhu32 } = I64;
const { amo32, amo64, loadReserved64, oldWords, storeConditional32, storeConditional64 } = AT;
const { CSR_SSTATUS, CSR_SIE, CSR_SIP, CSR_SATP, CSR_MSTATUS, CSR_MIE, CSR_MIP, CSR_MIDELEG } = KC;
const {
  CAUSE_BREAKPOINT, CAUSE_FETCH_ACCESS, CAUSE_FETCH_PAGE_FAULT, CAUSE_ILLEGAL_INSTRUCTION, CAUSE_LOAD_ACCESS, CAUSE_LOAD_PAGE_FAULT,
  CAUSE_MACHINE_ECALL, CAUSE_MISALIGNED_FETCH, CAUSE_MISALIGNED_LOAD, CAUSE_MISALIGNED_STORE, CAUSE_STORE_ACCESS, CAUSE_STORE_PAGE_FAULT,
  CAUSE_SUPERVISOR_ECALL, CAUSE_USER_ECALL, IRQ_M_EXT, IRQ_M_SOFT, IRQ_M_TIMER, IRQ_S_EXT,
  IRQ_S_SOFT, IRQ_S_TIMER, MIP_MEIP, MIP_MSIP, MIP_MTIP, MIP_SEIP,
  MIP_SSIP, MIP_STIP, MSTATUS_FS, MSTATUS_MIE, MSTATUS_MPIE, MSTATUS_MPP,
  MSTATUS_MPP_SHIFT, MSTATUS_MPRV, MSTATUS_MXR, MSTATUS_SIE, MSTATUS_SPIE, MSTATUS_SPP,
  MSTATUS_SUM, MSTATUS_TSR, MSTATUS_TVM, MSTATUS_TW, PRV_M, PRV_S,
  PRV_U, SATP_BARE, S_INTERRUPTS,
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
}

/** Plain, JSON-serializable hart state; 64-bit registers are (lo, hi) int32 word pairs. */
export interface HartState {
  hartId: number;
  x: number[];          // 64 int32 words, lo/hi pairs
  f: number[];          // 64 int32 words, lo/hi pairs
  frm: number;
  fflags: number;
  pc: number;
  privilege: number;
  mstatus: number;
  mie: number;
  mipSoftware: number;
  mipDevice: number;
  medeleg: number;
  mideleg: number;
  mcounteren: number;
  scounteren: number;
  mcountinhibit: number;
  menvcfg: number;
  senvcfg: number;
  csr64: number[];      // C64_* slots as lo/hi pairs
  pmpcfg: number[];
  pmpaddr: number[];
  instret: number;
  /** mcycle / minstret offsets from instret, and their values while mcountinhibit froze them ([cycle, -, instret]). */
  counterDelta?: number[];
  counterFrozen?: number[];
  stimecmp: number | null; // null = off (Infinity)
  waiting: boolean;
  stopped: boolean;
  reservationValid: boolean;
  reservationAddr: number;
  reservationLo: number;
  reservationHi: number;
  reservationSize: number;
}

export interface HartStats {
  instret: number;
  /** Traps taken, keyed "exception:<cause>" or "interrupt:<cause>". */
  trapsByCause: Map<string, number>;
  wfiIdleMs: number;
}

const TWO32 = 4294967296;
const TLB_SIZE = 2048;
const TLB_MASK = TLB_SIZE - 1;
// execSlice spells the mask as a literal (see there); keep the two in step.
if (TLB_MASK !== 2047) throw new Error("TLB_SIZE changed: update the 2047 literals in Hart.execSlice");
/** A tag no address can have (page tags have their low 12 bits clear). */
const TLB_INVALID = 1;
/** Superpage regions remembered for sfence.vma by address; beyond this, such a fence flushes everything. */
const BIG_MAX = 64;
/** S-mode TLB fills of user pages (under SUM) remembered for clearing SUM; beyond this, clearing flushes the S set. */
const SUM_MAX = 64;
const PTE_U = 16;

/** One privilege level's software TLBs (read / write / fetch): tag lo/hi words of the virtual page -> RAM byte offset. */
interface TlbSet {
  rTagLo: Int32Array; rTagHi: Int32Array; rOff: Uint32Array;
  wTagLo: Int32Array; wTagHi: Int32Array; wOff: Uint32Array;
  xTagLo: Int32Array; xTagHi: Int32Array; xOff: Uint32Array;
}

function makeTlbSet(): TlbSet {
  return {
    rTagLo: new Int32Array(TLB_SIZE).fill(TLB_INVALID), rTagHi: new Int32Array(TLB_SIZE), rOff: new Uint32Array(TLB_SIZE),
    wTagLo: new Int32Array(TLB_SIZE).fill(TLB_INVALID), wTagHi: new Int32Array(TLB_SIZE), wOff: new Uint32Array(TLB_SIZE),
    xTagLo: new Int32Array(TLB_SIZE).fill(TLB_INVALID), xTagHi: new Int32Array(TLB_SIZE), xOff: new Uint32Array(TLB_SIZE),
  };
}

/** Longest uninterrupted run between interrupt/timer checks. */
const MAX_SLICE = 1 << 15;

/** CSRs whose writes can enable an interrupt or change privilege/translation: the slice must end. */
function csrAffectsControl(csr: number): boolean {
  return csr === CSR_SSTATUS || csr === CSR_SIE || csr === CSR_SIP || csr === CSR_SATP ||
    csr === CSR_MSTATUS || csr === CSR_MIE || csr === CSR_MIP || csr === CSR_MIDELEG;
}

export class Hart implements InterruptTarget {
  readonly hartId: number;
  readonly ram: GuestRam;
  readonly vcpuDevices: MmioRouter;
  readonly time: TimeSource;
  /** Why the last run() returned, and what the VMM must do before the next (see exit.ts). */
  readonly exit: VcpuExit = { reason: EXIT_BUDGET, retired: 0, mmioAddr: 0, mmioSize: 1, mmioWrite: false, mmioValueLo: 0, mmioValueHi: 0 };

  /** x0..x31 as (lo, hi) int32 pairs; shared with the FPU. */
  readonly x = new Int32Array(64);
  readonly f = new Int32Array(64);
  readonly fp: FpContext;

  /** pc in a Float64Array slot: the interpreter loop stores it as a raw double instead of boxing it. */
  private readonly pcBox = new Float64Array(1);
  get pc(): number { return this.pcBox[0]!; }
  set pc(v: number) { this.pcBox[0] = v; }
  priv = PRV_M;
  /** Privilege used for loads/stores (differs from priv under mstatus.MPRV). */
  dataPriv = PRV_M;
  mstatus = 0;
  mie = 0;
  /** Software-writable pending bits (SSIP, STIP, SEIP). */
  mipSw = 0;
  /** Pending bits driven by devices (CLINT, PLIC) and by stimecmp. */
  mipDev = 0;
  medeleg = 0;
  mideleg = 0;
  mcounteren = 0;
  scounteren = 0;
  mcountinhibit = 0;
  menvcfg = 0;
  senvcfg = 0;
  readonly c64 = new Int32Array(2 * C64_COUNT);
  readonly pmpcfg = new Int32Array(16);
  readonly pmpaddr = new Int32Array(128);
  satpMode = SATP_BARE;
  satpPpn = 0;
  /** Instructions retired by this hart (the VMM's count; mcycle/minstret derive from it, see csr.ts). */
  instret = 0;
  readonly counterDelta = new Float64Array(3);
  readonly counterFrozen = new Float64Array(3);

  /** Scratch outputs of csrRead and the slow load path. */
  csrLo = 0;
  csrHi = 0;
  private ldLo = 0;
  private ldHi = 0;

  waiting = false;
  stopped = false;
  /** With true (the built-in SBI), an S-mode ecall ends run() with an SBI exit instead of trapping. */
  sbiExits = false;
  /** Test-only: skip execFast so every instruction goes through execSlow (hart_equivalence_test compares the two). */
  slowPathOnly = false;
  /** An exit (MMIO, SBI) was requested by the instruction at pc; it has not retired. */
  private exitPending = 0;
  /** Virtual address of the MMIO access waiting for the VMM (for the access-fault tval). */
  private mmioVLo = 0;
  private mmioVHi = 0;
  /** The VMM completed the MMIO exit: the instruction at pc re-executes and takes this result. */
  private mmioReplay = false;
  private stimecmpValue = Infinity;

  // Pending exception raised by a slow path; taken by run() after the slice ends.
  /** Set by SYSTEM instructions that may change interrupt enables, privilege or translation. */
  private sliceExit = false;
  /** Set when a device raises an enabled interrupt during a slice (MMIO side effect): end the slice. */
  private irqRaised = false;
  private excPending = false;
  private excCause = 0;
  private excTvalLo = 0;
  private excTvalHi = 0;

  // LR/SC: the reservation remembers address and loaded value; SC also compares the value so a
  // store by another hart between slices makes it fail.
  private resValid = false;
  private resAddr = 0;
  private resLo = 0;
  private resHi = 0;
  private resSize = 0;

  // Software TLBs, one set per privilege (index = privilege; 2 unused), so traps, ecalls and xret
  // switch sets instead of flushing. Data accesses use the set of dataPriv, fetches the set of priv.
  private readonly tlbs: TlbSet[] = [makeTlbSet(), makeTlbSet(), makeTlbSet(), makeTlbSet()];
  private rTagLo = this.tlbs[PRV_M]!.rTagLo;
  private rTagHi = this.tlbs[PRV_M]!.rTagHi;
  private rOff = this.tlbs[PRV_M]!.rOff;
  private wTagLo = this.tlbs[PRV_M]!.wTagLo;
  private wTagHi = this.tlbs[PRV_M]!.wTagHi;
  private wOff = this.tlbs[PRV_M]!.wOff;
  private xTagLo = this.tlbs[PRV_M]!.xTagLo;
  private xTagHi = this.tlbs[PRV_M]!.xTagHi;
  private xOff = this.tlbs[PRV_M]!.xOff;
  /** Superpage regions with cached entries (masked lo/hi and masks), for sfence.vma by address; > BIG_MAX = overflowed. */
  private readonly bigLo = new Int32Array(BIG_MAX);
  private readonly bigHi = new Int32Array(BIG_MAX);
  private readonly bigMaskLo = new Int32Array(BIG_MAX);
  private readonly bigMaskHi = new Int32Array(BIG_MAX);
  private bigCount = 0;
  /** S-set entries of user pages filled under SUM (idx | access << 8); clearing SUM drops them. > SUM_MAX = overflowed. */
  private readonly sumFills = new Int32Array(SUM_MAX);
  private sumCount = 0;
  /** Current code page: virtual base (NaN = none) and RAM byte offset. */
  private codeVBase = NaN;
  private codeOff = 0;

  private readonly trapCounts = new Float64Array(64);
  private readonly u8: Uint8Array;
  private readonly u16: Uint16Array;
  private readonly i32: Int32Array;
  private readonly i64: BigInt64Array;
  /**
   * Aligned doublewords move as one 8-byte host access (a Float64Array element copied bit-exactly
   * through the d64/d32 scratch pair), so a hart on another thread never sees half of a store.
   */
  private readonly f64: Float64Array;
  private readonly d64 = new Float64Array(1);
  private readonly d32 = new Int32Array(this.d64.buffer);

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
    this.fp = { f: this.f, x: this.x, frm: 0, fflags: 0 };
    this.mstatus = 0;
    this.pc = 0x1000;
  }

  // ---------------------------------------------------------------- public API

  get privilege(): 0 | 1 | 3 {
    return this.priv as 0 | 1 | 3;
  }

  set privilege(p: 0 | 1 | 3) {
    this.setPriv(p);
  }

  get stimecmp(): number {
    return this.stimecmpValue;
  }

  /** Setting the compare value updates STIP at once (sbi_set_timer clears a pending timer). */
  set stimecmp(v: number) {
    this.stimecmpValue = v;
    this.updateStimer();
  }

  get stats(): HartStats {
    const m = new Map<string, number>();
    for (let i = 0; i < 64; i++) {
      if (this.trapCounts[i] !== 0) m.set(`${i >= 32 ? "interrupt" : "exception"}:${i & 31}`, this.trapCounts[i]);
    }
    return { instret: this.instret, trapsByCause: m, wfiIdleMs: 0 };
  }

  getPc(): number {
    return this.pc;
  }

  setPc(pc: number): void {
    this.pc = pc;
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

  /** Debug/firmware access to a CSR without privilege checks; null if the CSR does not exist. */
  readCsr(csr: number): bigint | null {
    if (!csrRead(this, csr)) return null;
    return (BigInt(this.csrHi | 0) << 32n) | BigInt(this.csrLo >>> 0);
  }

  /** Debug/firmware write of a CSR with its normal WARL rules; false if the CSR does not exist. */
  writeCsr(csr: number, v: bigint): boolean {
    if (!csrRead(this, csr)) return false;
    csrWrite(this, csr, Number(v & 0xffffffffn) | 0, Number((v >> 32n) & 0xffffffffn) | 0);
    return true;
  }

  setInterruptPending(bit: number, level: boolean): void {
    if (bit === IRQ_S_SOFT) {
      // SSIP is one software-visible bit (the guest clears it through sip).
      if (level) this.mipSw |= MIP_SSIP; else this.mipSw &= ~MIP_SSIP;
    } else {
      const m = 1 << bit;
      if (level) this.mipDev |= m; else this.mipDev &= ~m;
    }
    if (level && (this.mip() & this.mie) !== 0) {
      this.waiting = false;
      this.irqRaised = true;
    }
  }

  /** Effective mip. */
  mip(): number {
    return this.mipSw | this.mipDev;
  }

  enterSupervisorBoot(pc: number, a0: bigint, a1: bigint): void {
    // Same delegation as OpenSBI, plus illegal instruction (no M-mode emulation here).
    this.medeleg = (1 << CAUSE_MISALIGNED_FETCH) | (1 << CAUSE_FETCH_ACCESS) | (1 << CAUSE_ILLEGAL_INSTRUCTION) |
      (1 << CAUSE_BREAKPOINT) | (1 << CAUSE_MISALIGNED_LOAD) | (1 << CAUSE_LOAD_ACCESS) |
      (1 << CAUSE_MISALIGNED_STORE) | (1 << CAUSE_STORE_ACCESS) | (1 << CAUSE_USER_ECALL) |
      (1 << CAUSE_FETCH_PAGE_FAULT) | (1 << CAUSE_LOAD_PAGE_FAULT) | (1 << CAUSE_STORE_PAGE_FAULT);
    this.mideleg = S_INTERRUPTS;
    this.mcounteren = 0xffffffff;
    // OpenSBI sets scounteren = CY|TM|IR at boot; Linux relies on it for rdtime in the vDSO
    // unless the SBI PMU driver rewrites it.
    this.scounteren = 7;
    // PMP entry 0: NAPOT over all of memory, RWX.
    this.pmpaddr[0] = -1;
    this.pmpaddr[1] = 0x3fffff;
    this.pmpcfg[0] = 0x1f;
    this.mie = 0;
    this.writeMstatus(0); // FS off, interrupts off, MPP = U
    this.c64.fill(0);
    this.satpChanged();
    this.setX(10, a0);
    this.setX(11, a1);
    this.setPriv(PRV_S);
    this.pc = pc;
    this.waiting = false;
    this.stopped = false;
  }

  flushTlb(): void {
    for (const t of this.tlbs) {
      t.rTagLo.fill(TLB_INVALID);
      t.wTagLo.fill(TLB_INVALID);
      t.xTagLo.fill(TLB_INVALID);
    }
    this.bigCount = 0;
    this.sumCount = 0;
    this.codeVBase = NaN;
  }

  /** sfence.vma with an address: drop that page's entries, or everything if a cached superpage covers it. */
  private flushTlbPage(lo: number, hi: number): void {
    const n = this.bigCount;
    if (n > BIG_MAX) { this.flushTlb(); return; }
    for (let i = 0; i < n; i++) {
      if (((lo ^ this.bigLo[i]) & this.bigMaskLo[i]) === 0 && ((hi ^ this.bigHi[i]) & this.bigMaskHi[i]) === 0) {
        this.flushTlb();
        return;
      }
    }
    const idx = (lo >>> 12) & TLB_MASK;
    for (const t of this.tlbs) {
      t.rTagLo[idx] = TLB_INVALID;
      t.wTagLo[idx] = TLB_INVALID;
      t.xTagLo[idx] = TLB_INVALID;
    }
    this.codeVBase = NaN;
  }

  /** Remember that a superpage (leaf level > 0) covering (lo, hi) has entries cached. */
  private noteSuperpage(lo: number, hi: number, level: number): void {
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
  private dropSumFills(): void {
    const t = this.tlbs[PRV_S]!;
    const n = this.sumCount;
    if (n > SUM_MAX) {
      t.rTagLo.fill(TLB_INVALID);
      t.wTagLo.fill(TLB_INVALID);
    } else {
      for (let i = 0; i < n; i++) {
        const e = this.sumFills[i]!;
        if (e >>> 8 === ACCESS_READ) t.rTagLo[e & TLB_MASK] = TLB_INVALID;
        else t.wTagLo[e & TLB_MASK] = TLB_INVALID;
      }
    }
    this.sumCount = 0;
    this.codeVBase = NaN;
  }

  /** Point the current TLB arrays at the sets of dataPriv (loads/stores) and priv (fetch). */
  private selectTlbs(): void {
    const d = this.tlbs[this.dataPriv]!, f = this.tlbs[this.priv]!;
    this.rTagLo = d.rTagLo; this.rTagHi = d.rTagHi; this.rOff = d.rOff;
    this.wTagLo = d.wTagLo; this.wTagHi = d.wTagHi; this.wOff = d.wOff;
    this.xTagLo = f.xTagLo; this.xTagHi = f.xTagHi; this.xOff = f.xOff;
    this.codeVBase = NaN;
  }

  flushIcache(): void {
    // No decoded-instruction cache: fetch always reads RAM, so stores are seen at once.
    this.codeVBase = NaN;
  }

  /**
   * Executes up to `budget` instructions and returns how many retired; `exit` says why it stopped
   * (exit.ts): the budget, WFI with nothing pending, a stopped hart, or an MMIO access or SBI call
   * the VMM must complete first. Traps taken also consume budget (one each).
   */
  run(budget: number): number {
    const exit = this.exit;
    let retired = 0;
    let work = 0;
    let lastTimerCheck = -MAX_SLICE;
    exit.reason = EXIT_BUDGET;
    if (this.exitPending !== 0) throw new Error(`hart ${this.hartId}: run() called before its ${this.exitPending === EXIT_SBI ? "SBI" : "MMIO"} exit was completed`);
    if (this.mmioReplay && !this.excPending) {
      // The instruction behind a completed MMIO exit runs before anything else (an interrupt
      // handler's own device access must not take its result).
      const done = this.execSlow(1);
      this.mmioReplay = false;
      retired += done;
      work += done + 1;
    }
    while (work < budget) {
      if (this.stopped) { exit.reason = EXIT_STOPPED; break; }
      if (this.excPending) {
        this.excPending = false;
        this.takeTrap(this.excCause, false, this.excTvalLo, this.excTvalHi);
        work++;
        continue;
      }
      if (this.stimecmpValue !== Infinity && (work - lastTimerCheck >= 4096 || this.waiting)) {
        lastTimerCheck = work;
        this.updateStimer();
      }
      const irq = this.pendingInterrupt();
      if (irq >= 0) {
        this.waiting = false;
        this.takeTrap(irq, true, 0, 0);
        work++;
        continue;
      }
      if (this.waiting) {
        if ((this.mip() & this.mie) === 0) { exit.reason = EXIT_WFI; break; }
        this.waiting = false;
      }
      let n = budget - work;
      if (n > MAX_SLICE) n = MAX_SLICE;
      const done = this.execSlice(n); // adds to this.instret itself
      retired += done;
      work += done;
      if (this.exitPending !== 0) {
        exit.reason = this.exitPending as typeof EXIT_MMIO | typeof EXIT_SBI;
        break;
      }
      if (done === 0 && !this.excPending) work++; // a slice that did nothing still makes progress
    }
    exit.retired = retired;
    return retired;
  }

  /** Ends the instruction at pc with an MMIO exit (it re-executes after completeMmio). */
  private requestMmio(lo: number, hi: number, pa: number, size: number, write: boolean, vl: number, vh: number): false {
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

  /**
   * The VMM performed the MMIO exit's access: `lo`/`hi` is the value a load reads (ignored for
   * stores). With `fault`, no device answered: the instruction takes an access fault instead.
   */
  completeMmio(lo: number, hi = 0, fault = false): void {
    if (this.exitPending !== EXIT_MMIO) throw new Error(`hart ${this.hartId}: completeMmio without an MMIO exit`);
    this.exitPending = 0;
    const e = this.exit;
    if (fault) {
      this.raise(e.mmioWrite ? CAUSE_STORE_ACCESS : CAUSE_LOAD_ACCESS, this.mmioVLo, this.mmioVHi);
      return;
    }
    if (!e.mmioWrite) {
      e.mmioValueLo = lo | 0;
      e.mmioValueHi = hi | 0;
    }
    this.mmioReplay = true;
  }

  /** The VMM answered the SBI exit (a0/a1 are set): the ecall retires. */
  completeSbi(): void {
    if (this.exitPending !== EXIT_SBI) throw new Error(`hart ${this.hartId}: completeSbi without an SBI exit`);
    this.exitPending = 0;
    if (this.stopped) return; // HSM stop: the hart keeps its pc until it is started again
    this.pc = this.pc + 4;
    this.instret++;
  }

  // ---------------------------------------------------------------- privileged helpers

  markFpDirty(): void {
    this.mstatus |= MSTATUS_FS;
  }

  writeMstatus(v: number): void {
    const old = this.mstatus;
    this.mstatus = v;
    const changed = old ^ v;
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

  private setPriv(p: number): void {
    if (p === this.priv) return;
    this.priv = p;
    this.updateDataPriv();
  }


  private updateDataPriv(): void {
    const m = this.mstatus;
    this.dataPriv = this.priv === PRV_M && (m & MSTATUS_MPRV) !== 0 ? (m >>> MSTATUS_MPP_SHIFT) & 3 : this.priv;
    this.selectTlbs();
  }

  private updateStimer(): void {
    if (this.stimecmpValue === Infinity) {
      this.mipDev &= ~MIP_STIP;
      return;
    }
    if (this.time.now() >= this.stimecmpValue) {
      this.mipDev |= MIP_STIP;
      if ((this.mie & MIP_STIP) !== 0) this.waiting = false;
    } else {
      this.mipDev &= ~MIP_STIP;
    }
  }

  /** Highest-priority interrupt that is pending, enabled and takeable now, or -1. */
  private pendingInterrupt(): number {
    const pending = this.mip() & this.mie;
    if (pending === 0) return -1;
    const mEnabled = this.priv < PRV_M || (this.mstatus & MSTATUS_MIE) !== 0;
    const m = mEnabled ? pending & ~this.mideleg : 0;
    if (m !== 0) {
      if (m & MIP_MEIP) return IRQ_M_EXT;
      if (m & MIP_MSIP) return IRQ_M_SOFT;
      if (m & MIP_MTIP) return IRQ_M_TIMER;
      if (m & MIP_SEIP) return IRQ_S_EXT;
      if (m & MIP_SSIP) return IRQ_S_SOFT;
      if (m & MIP_STIP) return IRQ_S_TIMER;
    }
    const sEnabled = this.priv < PRV_S || (this.priv === PRV_S && (this.mstatus & MSTATUS_SIE) !== 0);
    const s = sEnabled ? pending & this.mideleg : 0;
    if (s !== 0) {
      if (s & MIP_SEIP) return IRQ_S_EXT;
      if (s & MIP_SSIP) return IRQ_S_SOFT;
      if (s & MIP_STIP) return IRQ_S_TIMER;
    }
    return -1;
  }

  /** Enter the trap handler for `cause` at this.pc (the faulting/interrupted instruction). */
  private takeTrap(cause: number, interrupt: boolean, tvalLo: number, tvalHi: number): void {
    this.trapCounts[cause + (interrupt ? 32 : 0)]++;
    this.resValid = false;
    const epcLo = this.pc | 0; // ToInt32 is exact mod 2^32 for integers (no Float64Mod)
    const epcHi = Math.floor(this.pc / TWO32) | 0;
    const deleg = this.priv <= PRV_S && (((interrupt ? this.mideleg : this.medeleg) >>> cause) & 1) !== 0;
    const c = this.c64;
    let tvec: number;
    if (deleg) {
      c[2 * C64_SCAUSE] = cause;
      c[2 * C64_SCAUSE + 1] = interrupt ? 0x80000000 | 0 : 0;
      c[2 * C64_SEPC] = epcLo;
      c[2 * C64_SEPC + 1] = epcHi;
      c[2 * C64_STVAL] = tvalLo;
      c[2 * C64_STVAL + 1] = tvalHi;
      let m = this.mstatus & ~(MSTATUS_SPIE | MSTATUS_SIE | MSTATUS_SPP);
      if (this.mstatus & MSTATUS_SIE) m |= MSTATUS_SPIE;
      if (this.priv === PRV_S) m |= MSTATUS_SPP;
      this.mstatus = m;
      tvec = C64_STVEC;
      this.setPriv(PRV_S);
    } else {
      c[2 * C64_MCAUSE] = cause;
      c[2 * C64_MCAUSE + 1] = interrupt ? 0x80000000 | 0 : 0;
      c[2 * C64_MEPC] = epcLo;
      c[2 * C64_MEPC + 1] = epcHi;
      c[2 * C64_MTVAL] = tvalLo;
      c[2 * C64_MTVAL + 1] = tvalHi;
      let m = this.mstatus & ~(MSTATUS_MPIE | MSTATUS_MIE | MSTATUS_MPP);
      if (this.mstatus & MSTATUS_MIE) m |= MSTATUS_MPIE;
      m |= this.priv << MSTATUS_MPP_SHIFT;
      this.mstatus = m;
      tvec = C64_MTVEC;
      if (this.priv === PRV_M) this.updateDataPriv(); // MPP changed: matters under MPRV
      else this.setPriv(PRV_M);
    }
    const lo = c[2 * tvec];
    let base = (c[2 * tvec + 1] * TWO32) + ((lo & ~3) >>> 0);
    if ((lo & 3) === 1 && interrupt) base += 4 * cause;
    this.pc = base;
    this.codeVBase = NaN;
  }

  private raise(cause: number, tvalLo: number, tvalHi: number): void {
    this.excPending = true;
    this.excCause = cause;
    this.excTvalLo = tvalLo;
    this.excTvalHi = tvalHi;
  }

  /** Raise an exception whose tval is a pc-like number. */
  private raiseAt(cause: number, addr: number): void {
    this.raise(cause, addr | 0, Math.floor(addr / TWO32) | 0);
  }

  // ---------------------------------------------------------------- memory slow paths

  /**
   * Translate virtual (lo, hi) for `access`; fills the matching TLB for RAM pages.
   * Returns the physical address, or -1 after raising the fault.
   */
  private translate(lo: number, hi: number, access: number): number {
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
      if (walked) {
        if (WALK_LEAF[0] !== 0) this.noteSuperpage(lo, hi, WALK_LEAF[0]);
        if (priv === PRV_S && access !== ACCESS_FETCH && (WALK_LEAF[1] & PTE_U) !== 0) {
          if (this.sumCount < SUM_MAX) this.sumFills[this.sumCount++] = idx | (access << 8);
          else this.sumCount = SUM_MAX + 1;
        }
      }
      if (access === ACCESS_READ) { this.rTagLo[idx] = tag; this.rTagHi[idx] = hi; this.rOff[idx] = off; }
      else if (access === ACCESS_WRITE) { this.wTagLo[idx] = tag; this.wTagHi[idx] = hi; this.wOff[idx] = off; }
      else { this.xTagLo[idx] = tag; this.xTagHi[idx] = hi; this.xOff[idx] = off; }
    }
    return pa;
  }

  /** Read one byte at virtual (lo, hi) through translation; -1 after raising a fault. */
  private readByte(lo: number, hi: number): number {
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

  private writeByte(lo: number, hi: number, v: number): boolean {
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
  private loadSlow(lo: number, hi: number, f3: number): boolean {
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
  private storeSlow(lo: number, hi: number, f3: number, vl: number, vh: number): boolean {
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
    for (let i = 0; i < size; i++) {
      const s = (lo >>> 0) + i;
      if (this.translate(s | 0, s >= TWO32 ? (hi + 1) | 0 : hi, ACCESS_WRITE) < 0) return false;
    }
    for (let i = 0; i < size; i++) {
      const s = (lo >>> 0) + i;
      const b = i >= 4 ? (vh >>> ((i - 4) * 8)) & 0xff : (vl >>> (i * 8)) & 0xff;
      if (!this.writeByte(s | 0, s >= TWO32 ? (hi + 1) | 0 : hi, b)) return false;
    }
    return true;
  }

  /** Fetch the halfword at virtual pc; caches the code page. -1 after raising a fault. */
  private fetchHalf(pc: number, cachePage: boolean): number {
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
  private fetchSlow(): number {
    const pc = this.pc;
    const h0 = this.fetchHalf(pc, true);
    if (h0 < 0 || (h0 & 3) !== 3) return h0;
    const h1 = this.fetchHalf(pc + 2, false);
    if (h1 < 0) return -1;
    return (h0 | (h1 << 16)) | 0;
  }

  /** Translate an AMO/LR/SC address (aligned, RAM only). Returns the RAM byte offset or -1 after a fault. */
  private atomicOffset(lo: number, hi: number, size: number, isLr: boolean): number {
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
  private execAtomic(insn: number): boolean {
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
  private atomicAt(off: number, f5: number, wide: boolean, bl: number, bh: number): void {
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
  private execFpMem(insn: number, isStore: boolean, raw: number): boolean {
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

  /**
   * SYSTEM opcode (CSR access, ecall/ebreak, xret, wfi, sfence.vma). Always ends the slice.
   * Returns the next pc, or NaN after raising an exception.
   */
  private execSystem(insn: number, ilen: number, rawInsn: number): number {
    const pc = this.pc;
    const f3 = (insn >>> 12) & 7;
    const rd = (insn >>> 7) & 31;
    const rs1 = (insn >>> 15) & 31;
    const npc = pc + ilen;
    if (f3 === 0) {
      if (insn === 0x00000073) {
        if (this.priv === PRV_S && this.sbiExits) {
          this.pc = pc;
          this.exitPending = EXIT_SBI;
          return NaN; // not retired: completeSbi() retires it once the VMM has answered
        }
        this.raise(this.priv === PRV_U ? CAUSE_USER_ECALL : this.priv === PRV_S ? CAUSE_SUPERVISOR_ECALL : CAUSE_MACHINE_ECALL, 0, 0);
        return NaN;
      }
      if (insn === 0x00100073) {
        this.raiseAt(CAUSE_BREAKPOINT, pc);
        return NaN;
      }
      if (insn === 0x30200073 && this.priv === PRV_M) {
        const m = this.mstatus;
        const mpp = (m >>> MSTATUS_MPP_SHIFT) & 3;
        let v = m & ~(MSTATUS_MIE | MSTATUS_MPP);
        if (m & MSTATUS_MPIE) v |= MSTATUS_MIE;
        v |= MSTATUS_MPIE;
        if (mpp !== PRV_M) v &= ~MSTATUS_MPRV;
        this.mstatus = v;
        this.setPriv(mpp);
        this.updateDataPriv();
        this.resValid = false;
        return this.c64[2 * C64_MEPC + 1] * TWO32 + (this.c64[2 * C64_MEPC] >>> 0);
      }
      if (insn === 0x10200073 && (this.priv === PRV_M || (this.priv === PRV_S && (this.mstatus & MSTATUS_TSR) === 0))) {
        const m = this.mstatus;
        const spp = (m & MSTATUS_SPP) !== 0 ? PRV_S : PRV_U;
        let v = m & ~(MSTATUS_SIE | MSTATUS_SPP | MSTATUS_MPRV);
        if (m & MSTATUS_SPIE) v |= MSTATUS_SIE;
        v |= MSTATUS_SPIE;
        this.mstatus = v;
        this.setPriv(spp);
        this.updateDataPriv();
        this.resValid = false;
        return this.c64[2 * C64_SEPC + 1] * TWO32 + (this.c64[2 * C64_SEPC] >>> 0);
      }
      if (insn === 0x10500073 && (this.priv === PRV_M || (this.priv === PRV_S && (this.mstatus & MSTATUS_TW) === 0))) {
        if ((this.mip() & this.mie) === 0) this.waiting = true;
        return npc;
      }
      if (insn >>> 25 === 0x09 && rd === 0 &&
        (this.priv === PRV_M || (this.priv === PRV_S && (this.mstatus & MSTATUS_TVM) === 0))) {
        if (rs1 === 0) this.flushTlb(); else this.flushTlbPage(this.x[2 * rs1], this.x[2 * rs1 + 1]);
        return npc;
      }
      this.raise(CAUSE_ILLEGAL_INSTRUCTION, rawInsn, 0);
      return NaN;
    }
    if (f3 === 4) {
      this.raise(CAUSE_ILLEGAL_INSTRUCTION, rawInsn, 0);
      return NaN;
    }
    // Zicsr.
    const csr = insn >>> 20;
    const op = f3 & 3;
    const writes = op === 1 || rs1 !== 0;
    if (!csrAccessAllowed(this, csr, writes) || !csrRead(this, csr)) {
      this.raise(CAUSE_ILLEGAL_INSTRUCTION, rawInsn, 0);
      return NaN;
    }
    const oldLo = this.csrLo, oldHi = this.csrHi;
    if (writes) {
      let sl: number, sh: number;
      if (f3 >= 5) { sl = rs1; sh = 0; } else { sl = this.x[2 * rs1]; sh = this.x[2 * rs1 + 1]; }
      if (op === 2) { sl |= oldLo; sh |= oldHi; } else if (op === 3) { sl = oldLo & ~sl; sh = oldHi & ~sh; }
      csrWrite(this, csr, sl, sh);
      if (!csrAffectsControl(csr)) this.sliceExit = false;
    } else {
      this.sliceExit = false;
    }
    if (rd !== 0) { this.x[2 * rd] = oldLo; this.x[2 * rd + 1] = oldHi; }
    return npc;
  }

  // ---------------------------------------------------------------- the interpreter loop

  /**
   * Runs at most `limit` instructions; stops after any SYSTEM instruction that may change control
   * state, a fault, or a device interrupt raised by MMIO. Returns instructions retired.
   * Alternates the call-free fast loop with single steps of the full interpreter for whatever the
   * fast loop declines (TLB misses, MMIO, SYSTEM, atomics, FP, traps).
   */
  private execSlice(limit: number): number {
    let n = 0;
    while (n < limit) {
      if (!this.slowPathOnly) n += this.execFast(limit - n);
      if (n >= limit) break;
      this.sliceExit = false;
      const k = this.execSlow(1);
      n += k;
      if (k === 0 || this.excPending || this.sliceExit || this.irqRaised || this.exitPending !== 0) break;
    }
    return n;
  }

  /**
   * The fast loop: only instructions that need no call (so TurboFan keeps typed-array checks and
   * loop state across iterations). Stops, without side effects, before any instruction it does not
   * handle; execSlow then executes that one. Returns instructions retired.
   */
  // Literals (4294967296 = 2^32, 2047 = TLB_MASK) as in execSlow.
  private execFast(limit: number): number {
    const x = this.x;
    const u8 = this.u8, u16 = this.u16, i32 = this.i32;
    const f64 = this.f64, d64 = this.d64, d32 = this.d32;
    const rTagLo = this.rTagLo, rTagHi = this.rTagHi, rOff = this.rOff;
    const xTagLo = this.xTagLo, xTagHi = this.xTagHi, xOff = this.xOff;
    const wTagLo = this.wTagLo, wTagHi = this.wTagHi, wOff = this.wOff;
    const f = this.f;
    const rvc = RVC_TABLE;
    const pcBox = this.pcBox;
    // pc = page + po: the virtual code page (a double) and an int32 offset that may leave [0, 4096)
    // after a jump; hb = the page's RAM index in u16 units (RAM < 4 GiB), -1 until looked up.
    const pc0 = +pcBox[0]!;
    let po = (pc0 | 0) & 0xfff;
    let page = pc0 - po;
    let hb = page === this.codeVBase ? this.codeOff >>> 1 : -1;
    limit |= 0;
    let n = 0;
    loop: while (n < limit) {
      // ---- fetch
      let insn: number;
      if (hb >= 0 && (po >>> 0) <= 4092) {
        const o = hb + (po >> 1);
        insn = u16[o] | (u16[o + 1] << 16);
      } else {
        if (hb < 0 || (po >>> 0) > 4095) { // another page: look up the fetch TLB
          const pc = page + po;
          const lo = pc | 0;
          po = lo & 0xfff;
          page = pc - po;
          const idx = (lo >>> 12) & 2047;
          if (xTagLo[idx] !== (lo & -4096) || xTagHi[idx] !== (Math.floor(pc / 4294967296) | 0)) { hb = -1; break loop; }
          hb = xOff[idx] >>> 1;
        }
        if (po <= 4092) {
          const o = hb + (po >> 1);
          insn = u16[o] | (u16[o + 1] << 16);
        } else {
          insn = u16[hb + 2047]; // last halfword of the page
          if ((insn & 3) === 3) break loop; // crosses into the next page
        }
      }
      let ilen = 4;
      if ((insn & 3) !== 3) {
        insn = rvc[insn & 0xffff];
        ilen = 2;
      }
      const rd = (insn >>> 7) & 31;
      const rs1 = (insn >>> 15) & 31;
      const rs2 = (insn >>> 20) & 31;
      const f3 = (insn >>> 12) & 7;
      let npo = po + ilen;
      switch ((insn >>> 2) & 31) {
        case 13: { // LUI
          if (rd !== 0) { const v = insn & 0xfffff000; x[2 * rd] = v; x[2 * rd + 1] = v >> 31; }
          break;
        }
        case 5: { // AUIPC
          if (rd !== 0) {
            const v = page + po + (insn & 0xfffff000);
            x[2 * rd] = v | 0;
            x[2 * rd + 1] = Math.floor(v / 4294967296) | 0;
          }
          break;
        }
        case 27: { // JAL
          const imm = ((insn >> 31) << 20) | (((insn >>> 12) & 0xff) << 12) | (((insn >>> 20) & 1) << 11) | (((insn >>> 21) & 0x3ff) << 1);
          if (rd !== 0) { const l = page + npo; x[2 * rd] = l | 0; x[2 * rd + 1] = Math.floor(l / 4294967296) | 0; }
          npo = po + imm;
          break;
        }
        case 25: { // JALR
          if (f3 !== 0) break loop;
          const s = (x[2 * rs1] >>> 0) + (insn >> 20);
          const th = (x[2 * rs1 + 1] + (s >= 4294967296 ? 1 : s < 0 ? -1 : 0)) | 0;
          const tl = (s | 0) & ~1;
          if (rd !== 0) { const l = page + npo; x[2 * rd] = l | 0; x[2 * rd + 1] = Math.floor(l / 4294967296) | 0; }
          const tpage = th * 4294967296 + ((tl & -4096) >>> 0);
          if (tpage !== page) { page = tpage; hb = -1; }
          npo = tl & 0xfff;
          break;
        }
        case 24: { // BRANCH
          const al = x[2 * rs1], ah = x[2 * rs1 + 1], bl = x[2 * rs2], bh = x[2 * rs2 + 1];
          let taken: boolean;
          switch (f3) {
            case 0: taken = al === bl && ah === bh; break;
            case 1: taken = al !== bl || ah !== bh; break;
            case 4: taken = ah < bh || (ah === bh && (al >>> 0) < (bl >>> 0)); break;
            case 5: taken = ah > bh || (ah === bh && (al >>> 0) >= (bl >>> 0)); break;
            case 6: taken = (ah >>> 0) < (bh >>> 0) || (ah === bh && (al >>> 0) < (bl >>> 0)); break;
            case 7: taken = (ah >>> 0) > (bh >>> 0) || (ah === bh && (al >>> 0) >= (bl >>> 0)); break;
            default: break loop;
          }
          if (taken) {
            npo = po + (((insn >> 31) << 12) | (((insn >>> 7) & 1) << 11) | (((insn >>> 25) & 0x3f) << 5) | (((insn >>> 8) & 0xf) << 1));
          }
          break;
        }
        case 0: { // LOAD: TLB hit and aligned only
          const s = (x[2 * rs1] >>> 0) + (insn >> 20);
          const lo = s | 0;
          const hi = (x[2 * rs1 + 1] + (s >= 4294967296 ? 1 : s < 0 ? -1 : 0)) | 0;
          const idx = (lo >>> 12) & 2047;
          if (rTagLo[idx] !== (lo & -4096) || rTagHi[idx] !== hi) break loop;
          const off = rOff[idx] + (lo & 0xfff);
          let vl: number, vh = 0;
          switch (f3) {
            case 0: vl = (u8[off] << 24) >> 24; vh = vl >> 31; break;
            case 4: vl = u8[off]; break;
            case 1: if ((off & 1) !== 0) break loop; vl = (u16[off >>> 1] << 16) >> 16; vh = vl >> 31; break;
            case 5: if ((off & 1) !== 0) break loop; vl = u16[off >>> 1]; break;
            case 2: if ((off & 3) !== 0) break loop; vl = i32[off >>> 2]; vh = vl >> 31; break;
            case 6: if ((off & 3) !== 0) break loop; vl = i32[off >>> 2]; break;
            case 3: if ((off & 7) !== 0) break loop; d64[0] = f64[off >>> 3]; vl = d32[0]; vh = d32[1]; break;
            default: break loop;
          }
          if (rd !== 0) { x[2 * rd] = vl; x[2 * rd + 1] = vh; }
          break;
        }
        case 8: { // STORE: TLB hit and aligned only
          const s = (x[2 * rs1] >>> 0) + (((insn >> 25) << 5) | ((insn >>> 7) & 31));
          const lo = s | 0;
          const hi = (x[2 * rs1 + 1] + (s >= 4294967296 ? 1 : s < 0 ? -1 : 0)) | 0;
          const idx = (lo >>> 12) & 2047;
          if (wTagLo[idx] !== (lo & -4096) || wTagHi[idx] !== hi) break loop;
          const off = wOff[idx] + (lo & 0xfff);
          const vl = x[2 * rs2];
          switch (f3) {
            case 0: u8[off] = vl; break;
            case 1: if ((off & 1) !== 0) break loop; u16[off >>> 1] = vl; break;
            case 2: if ((off & 3) !== 0) break loop; i32[off >>> 2] = vl; break;
            case 3: if ((off & 7) !== 0) break loop; d32[0] = vl; d32[1] = x[2 * rs2 + 1]; f64[off >>> 3] = d64[0]; break;
            default: break loop;
          }
          break;
        }
        case 4: { // OP-IMM
          const imm = insn >> 20;
          const al = x[2 * rs1], ah = x[2 * rs1 + 1];
          let rl: number, rh: number;
          switch (f3) {
            case 0: { const s = (al >>> 0) + imm; rl = s | 0; rh = (ah + (s >= 4294967296 ? 1 : s < 0 ? -1 : 0)) | 0; break; }
            case 2: { const ih = imm >> 31; rl = (ah < ih || (ah === ih && (al >>> 0) < (imm >>> 0))) ? 1 : 0; rh = 0; break; }
            case 3: { const ih = imm >> 31; rl = ((ah >>> 0) < (ih >>> 0) || (ah === ih && (al >>> 0) < (imm >>> 0))) ? 1 : 0; rh = 0; break; }
            case 4: rl = al ^ imm; rh = ah ^ (imm >> 31); break;
            case 6: rl = al | imm; rh = ah | (imm >> 31); break;
            case 7: rl = al & imm; rh = ah & (imm >> 31); break;
            case 1: {
              if (insn >>> 26 !== 0) break loop;
              const sh = (insn >>> 20) & 63;
              if (sh === 0) { rl = al; rh = ah; }
              else if (sh < 32) { rl = al << sh; rh = (ah << sh) | (al >>> (32 - sh)); }
              else { rl = 0; rh = al << (sh - 32); }
              break;
            }
            default: { // 5: SRLI / SRAI
              const top = insn >>> 26;
              const sh = (insn >>> 20) & 63;
              if (top === 0) {
                if (sh === 0) { rl = al; rh = ah; }
                else if (sh < 32) { rl = (al >>> sh) | (ah << (32 - sh)); rh = ah >>> sh; }
                else { rl = ah >>> (sh - 32); rh = 0; }
              } else if (top === 0x10) {
                if (sh === 0) { rl = al; rh = ah; }
                else if (sh < 32) { rl = (al >>> sh) | (ah << (32 - sh)); rh = ah >> sh; }
                else { rl = ah >> (sh - 32); rh = ah >> 31; }
              } else break loop;
              break;
            }
          }
          if (rd !== 0) { x[2 * rd] = rl; x[2 * rd + 1] = rh; }
          break;
        }
        case 6: { // OP-IMM-32
          const al = x[2 * rs1];
          let r: number;
          if (f3 === 0) r = (al + (insn >> 20)) | 0;
          else if (f3 === 1 && insn >>> 25 === 0) r = al << rs2;
          else if (f3 === 5 && insn >>> 25 === 0) r = al >>> rs2;
          else if (f3 === 5 && insn >>> 25 === 0x20) r = al >> rs2;
          else break loop;
          if (rd !== 0) { x[2 * rd] = r; x[2 * rd + 1] = r >> 31; }
          break;
        }
        case 12: { // OP
          const al = x[2 * rs1], ah = x[2 * rs1 + 1], bl = x[2 * rs2], bh = x[2 * rs2 + 1];
          const f7 = insn >>> 25;
          let rl: number, rh: number;
          if (f7 === 0) {
            switch (f3) {
              case 0: rl = (al + bl) | 0; rh = (ah + bh + ((rl >>> 0) < (al >>> 0) ? 1 : 0)) | 0; break;
              case 1: {
                const sh = bl & 63;
                if (sh === 0) { rl = al; rh = ah; }
                else if (sh < 32) { rl = al << sh; rh = (ah << sh) | (al >>> (32 - sh)); }
                else { rl = 0; rh = al << (sh - 32); }
                break;
              }
              case 2: rl = (ah < bh || (ah === bh && (al >>> 0) < (bl >>> 0))) ? 1 : 0; rh = 0; break;
              case 3: rl = ((ah >>> 0) < (bh >>> 0) || (ah === bh && (al >>> 0) < (bl >>> 0))) ? 1 : 0; rh = 0; break;
              case 4: rl = al ^ bl; rh = ah ^ bh; break;
              case 5: {
                const sh = bl & 63;
                if (sh === 0) { rl = al; rh = ah; }
                else if (sh < 32) { rl = (al >>> sh) | (ah << (32 - sh)); rh = ah >>> sh; }
                else { rl = ah >>> (sh - 32); rh = 0; }
                break;
              }
              case 6: rl = al | bl; rh = ah | bh; break;
              default: rl = al & bl; rh = ah & bh; break;
            }
          } else if (f7 === 0x20 && f3 === 0) {
            rl = (al - bl) | 0;
            rh = (ah - bh - ((al >>> 0) < (bl >>> 0) ? 1 : 0)) | 0;
          } else if (f7 === 0x20 && f3 === 5) {
            const sh = bl & 63;
            if (sh === 0) { rl = al; rh = ah; }
            else if (sh < 32) { rl = (al >>> sh) | (ah << (32 - sh)); rh = ah >> sh; }
            else { rl = ah >> (sh - 32); rh = ah >> 31; }
          } else if (f7 === 1 && f3 === 0) { // MUL (mulhu32 inlined: no calls in this loop)
            const a0 = al & 0xffff, a1 = al >>> 16, b0 = bl & 0xffff, b1 = bl >>> 16;
            const p01 = a0 * b1, p10 = a1 * b0;
            const mid = ((a0 * b0) >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
            const hu = (a1 * b1 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16)) | 0;
            rl = Math.imul(al, bl);
            rh = (hu + Math.imul(al, bh) + Math.imul(ah, bl)) | 0;
          } else if (f7 === 1 && f3 <= 3) { // MULH / MULHSU / MULHU
            // High word of a 32x32 unsigned product: the double product is within 2^12 of exact, and
            // the exact low word (imul) removes the rounding.
            const ul = al >>> 0, uh = ah >>> 0, vl = bl >>> 0, vh = bh >>> 0;
            const lo00 = Math.imul(al, bl) >>> 0, lo01 = Math.imul(al, bh) >>> 0;
            const lo10 = Math.imul(ah, bl) >>> 0, lo11 = Math.imul(ah, bh) >>> 0;
            const hi00 = Math.round((ul * vl - lo00) / 4294967296), hi01 = Math.round((ul * vh - lo01) / 4294967296);
            const hi10 = Math.round((uh * vl - lo10) / 4294967296), hi11 = Math.round((uh * vh - lo11) / 4294967296);
            const mid = hi00 + lo01 + lo10; // < 3 * 2^32, exact
            const low = lo11 + hi01 + hi10 + Math.floor(mid / 4294967296);
            rl = low | 0;
            rh = (hi11 + Math.floor(low / 4294967296)) | 0;
            if (f3 !== 3 && ah < 0) { // signed a: subtract b << 64
              const t = rl;
              rl = (t - bl) | 0;
              rh = (rh - bh - ((t >>> 0) < (bl >>> 0) ? 1 : 0)) | 0;
            }
            if (f3 === 1 && bh < 0) { // signed b: subtract a << 64
              const t = rl;
              rl = (t - al) | 0;
              rh = (rh - ah - ((t >>> 0) < (al >>> 0) ? 1 : 0)) | 0;
            }
          } else if (f7 === 1 && f3 >= 4 && (bl | bh) !== 0 && ah === (al >> 31) && bh === (bl >> 31) && (f3 & 1) === 0) {
            // DIV / REM with both operands in int32 range (divisor nonzero): exact in doubles.
            const r = f3 === 6 ? al % bl : Math.trunc(al / bl);
            rl = r | 0;
            rh = r < 0 ? -1 : 0;
          } else if (f7 === 1 && f3 >= 4 && (f3 & 1) === 1 && ah === 0 && bh === 0 && bl !== 0) {
            // DIVU / REMU of values below 2^32.
            const a = al >>> 0, b = bl >>> 0;
            const r = f3 === 7 ? a % b : Math.floor(a / b);
            rl = r | 0;
            rh = 0;
          } else break loop;
          if (rd !== 0) { x[2 * rd] = rl; x[2 * rd + 1] = rh; }
          break;
        }
        case 14: { // OP-32
          const a = x[2 * rs1], b = x[2 * rs2];
          const f7 = insn >>> 25;
          let r: number;
          if (f7 === 0) {
            if (f3 === 0) r = (a + b) | 0;
            else if (f3 === 1) r = a << (b & 31);
            else if (f3 === 5) r = a >>> (b & 31);
            else break loop;
          } else if (f7 === 0x20) {
            if (f3 === 0) r = (a - b) | 0;
            else if (f3 === 5) r = a >> (b & 31);
            else break loop;
          } else if (f7 === 1) {
            switch (f3) {
              case 0: r = Math.imul(a, b); break;
              case 4: r = b === 0 ? -1 : a === -0x80000000 && b === -1 ? a : (a / b) | 0; break;
              case 5: r = b === 0 ? -1 : ((a >>> 0) / (b >>> 0)) | 0; break;
              case 6: r = b === 0 ? a : a === -0x80000000 && b === -1 ? 0 : (a % b) | 0; break;
              case 7: r = b === 0 ? a : ((a >>> 0) % (b >>> 0)) | 0; break;
              default: break loop;
            }
          } else break loop;
          if (rd !== 0) { x[2 * rd] = r; x[2 * rd + 1] = r >> 31; }
          break;
        }
        case 3: { // MISC-MEM: fence, fence.i
          if (f3 > 1) break loop;
          break;
        }
        case 1: { // LOAD-FP (flw / fld): FPU on, TLB hit, aligned
          if ((f3 !== 2 && f3 !== 3) || (this.mstatus & 0x6000) === 0) break loop; // 0x6000 = MSTATUS_FS
          const s = (x[2 * rs1] >>> 0) + (insn >> 20);
          const lo = s | 0;
          const hi = (x[2 * rs1 + 1] + (s >= 4294967296 ? 1 : s < 0 ? -1 : 0)) | 0;
          const idx = (lo >>> 12) & 2047;
          if (rTagLo[idx] !== (lo & -4096) || rTagHi[idx] !== hi) break loop;
          const off = rOff[idx] + (lo & 0xfff);
          if (f3 === 2) {
            if ((off & 3) !== 0) break loop;
            f[2 * rd] = i32[off >>> 2];
            f[2 * rd + 1] = -1; // NaN-box singles
          } else {
            if ((off & 7) !== 0) break loop;
            d64[0] = f64[off >>> 3];
            f[2 * rd] = d32[0];
            f[2 * rd + 1] = d32[1];
          }
          this.mstatus |= 0x6000;
          break;
        }
        case 9: { // STORE-FP (fsw / fsd): FPU on, TLB hit, aligned
          if ((f3 !== 2 && f3 !== 3) || (this.mstatus & 0x6000) === 0) break loop;
          const s = (x[2 * rs1] >>> 0) + (((insn >> 25) << 5) | ((insn >>> 7) & 31));
          const lo = s | 0;
          const hi = (x[2 * rs1 + 1] + (s >= 4294967296 ? 1 : s < 0 ? -1 : 0)) | 0;
          const idx = (lo >>> 12) & 2047;
          if (wTagLo[idx] !== (lo & -4096) || wTagHi[idx] !== hi) break loop;
          const off = wOff[idx] + (lo & 0xfff);
          if (f3 === 2) {
            if ((off & 3) !== 0) break loop;
            i32[off >>> 2] = f[2 * rs2];
          } else {
            if ((off & 7) !== 0) break loop;
            d32[0] = f[2 * rs2];
            d32[1] = f[2 * rs2 + 1];
            f64[off >>> 3] = d64[0];
          }
          break;
        }
        case 11: { // AMO: LR/SC and the bitwise/add/swap ops, aligned with a TLB hit; the rest in execSlow
          if (f3 !== 2 && f3 !== 3) break loop;
          const f5 = insn >>> 27;
          const lo = x[2 * rs1], hi = x[2 * rs1 + 1];
          const wide = f3 === 3;
          if ((lo & (wide ? 7 : 3)) !== 0) break loop;
          const idx = (lo >>> 12) & 2047;
          let off: number;
          if (f5 === 2) {
            if (rs2 !== 0 || rTagLo[idx] !== (lo & -4096) || rTagHi[idx] !== hi) break loop;
            off = rOff[idx] + (lo & 0xfff);
          } else {
            if (wTagLo[idx] !== (lo & -4096) || wTagHi[idx] !== hi) break loop;
            off = wOff[idx] + (lo & 0xfff);
          }
          if (f5 > 0x0c || (f5 > 0x04 && (f5 & 3) !== 0)) break loop; // min/max and invalid encodings: execSlow
          this.atomicAt(off, f5, wide, x[2 * rs2], x[2 * rs2 + 1]);
          if (rd !== 0) { x[2 * rd] = oldWords[0]!; x[2 * rd + 1] = oldWords[1]!; }
          break;
        }
        default:
          break loop;
      }
      po = npo;
      n++;
    }
    pcBox[0] = page + po;
    this.codeVBase = hb >= 0 ? page : NaN;
    this.codeOff = hb >= 0 ? hb * 2 : 0;
    this.instret += n;
    return n;
  }

  /** The full interpreter: runs at most `limit` instructions; stops after any SYSTEM instruction or fault. Returns instructions retired. */
  // Literals (4294967296 = 2^32, 2047 = TLB_MASK) rather than module consts: TurboFan reloaded and
  // type-checked the context slot of a module const on every use in this loop.
  private execSlow(limit: number): number {
    const x = this.x;
    const u8 = this.u8, u16 = this.u16, i32 = this.i32;
    const f64 = this.f64, d64 = this.d64, d32 = this.d32;
    const rTagLo = this.rTagLo, rTagHi = this.rTagHi, rOff = this.rOff;
    const xTagLo = this.xTagLo, xTagHi = this.xTagHi, xOff = this.xOff;
    const wTagLo = this.wTagLo, wTagHi = this.wTagHi, wOff = this.wOff;
    const rvc = RVC_TABLE;
    const pcBox = this.pcBox;
    // Unary + types field loads and call results as Number, so TurboFan keeps pc, codeVBase and
    // codeOff as raw float64 in the loop; a tagged phi boxed a HeapNumber for every kernel pc.
    let pc = +this.pc;
    this.irqRaised = false;
    let codeVBase = +this.codeVBase;
    let codeOff = +this.codeOff;
    limit |= 0;
    let n = 0;
    let counted = 0; // part of n already added to this.instret (CSR reads must see an exact count)
    loop: while (n < limit) {
      // ---- fetch
      let insn: number;
      const d = pc - codeVBase;
      if (d >= 0 && d <= 4092) {
        const o = (codeOff + d) >>> 1; // unsigned: RAM may exceed 2 GiB
        insn = u16[o] | (u16[o + 1] << 16);
      } else {
        // New code page: try the fetch TLB inline before the slow path.
        const lo = pc | 0;
        const po = lo & 0xfff;
        const idx = (lo >>> 12) & 2047;
        if (po <= 4092 && xTagLo[idx] === (lo & -4096) && xTagHi[idx] === (Math.floor(pc / 4294967296) | 0)) {
          codeVBase = pc - po;
          codeOff = xOff[idx];
          const o = (codeOff + po) >>> 1;
          insn = u16[o] | (u16[o + 1] << 16);
        } else {
          pcBox[0] = pc;
          insn = this.fetchSlow() | 0;
          if (this.excPending) break loop;
          codeVBase = +this.codeVBase;
          codeOff = +this.codeOff;
        }
      }
      let ilen = 4;
      let raw = insn;
      if ((insn & 3) !== 3) {
        raw = insn & 0xffff;
        insn = rvc[raw];
        ilen = 2;
      }
      const rd = (insn >>> 7) & 31;
      const rs1 = (insn >>> 15) & 31;
      const rs2 = (insn >>> 20) & 31;
      const f3 = (insn >>> 12) & 7;
      let npc = pc + ilen;
      switch ((insn >>> 2) & 31) { // opcode[6:2]: a dense jump table (low bits are 11 after RVC expansion)
        case 13: { // LUI
          if (rd !== 0) { const v = insn & 0xfffff000; x[2 * rd] = v; x[2 * rd + 1] = v >> 31; }
          break;
        }
        case 5: { // AUIPC
          if (rd !== 0) {
            const v = pc + (insn & 0xfffff000);
            x[2 * rd] = v | 0; // ToInt32 = low word; `% 4294967296` compiles to an x87 fprem loop
            x[2 * rd + 1] = Math.floor(v / 4294967296) | 0;
          }
          break;
        }
        case 27: { // JAL
          const imm = ((insn >> 31) << 20) | (((insn >>> 12) & 0xff) << 12) | (((insn >>> 20) & 1) << 11) | (((insn >>> 21) & 0x3ff) << 1);
          if (rd !== 0) { x[2 * rd] = npc | 0; x[2 * rd + 1] = Math.floor(npc / 4294967296) | 0; }
          npc = pc + imm;
          break;
        }
        case 25: { // JALR
          if (f3 !== 0) { this.raise(CAUSE_ILLEGAL_INSTRUCTION, raw, 0); break loop; }
          const s = (x[2 * rs1] >>> 0) + (insn >> 20);
          const th = (x[2 * rs1 + 1] + (s >= 4294967296 ? 1 : s < 0 ? -1 : 0)) | 0;
          const tl = (s | 0) & ~1;
          if (rd !== 0) { x[2 * rd] = npc | 0; x[2 * rd + 1] = Math.floor(npc / 4294967296) | 0; }
          npc = th * 4294967296 + (tl >>> 0);
          break;
        }
        case 24: { // BRANCH
          const al = x[2 * rs1], ah = x[2 * rs1 + 1], bl = x[2 * rs2], bh = x[2 * rs2 + 1];
          let taken: boolean;
          switch (f3) {
            case 0: taken = al === bl && ah === bh; break;
            case 1: taken = al !== bl || ah !== bh; break;
            case 4: taken = ah < bh || (ah === bh && (al >>> 0) < (bl >>> 0)); break;
            case 5: taken = ah > bh || (ah === bh && (al >>> 0) >= (bl >>> 0)); break;
            case 6: taken = (ah >>> 0) < (bh >>> 0) || (ah === bh && (al >>> 0) < (bl >>> 0)); break;
            case 7: taken = (ah >>> 0) > (bh >>> 0) || (ah === bh && (al >>> 0) >= (bl >>> 0)); break;
            default: this.raise(CAUSE_ILLEGAL_INSTRUCTION, raw, 0); break loop;
          }
          if (taken) {
            npc = pc + (((insn >> 31) << 12) | (((insn >>> 7) & 1) << 11) | (((insn >>> 25) & 0x3f) << 5) | (((insn >>> 8) & 0xf) << 1));
          }
          break;
        }
        case 0: { // LOAD
          const s = (x[2 * rs1] >>> 0) + (insn >> 20);
          const lo = s | 0;
          const hi = (x[2 * rs1 + 1] + (s >= 4294967296 ? 1 : s < 0 ? -1 : 0)) | 0;
          const idx = (lo >>> 12) & 2047;
          let vl = 0, vh = 0, done = false;
          if (rTagLo[idx] === (lo & -4096) && rTagHi[idx] === hi) {
            const off = rOff[idx] + (lo & 0xfff);
            switch (f3) {
              case 0: vl = (u8[off] << 24) >> 24; vh = vl >> 31; done = true; break;
              case 4: vl = u8[off]; done = true; break;
              case 1: if ((off & 1) === 0) { vl = (u16[off >>> 1] << 16) >> 16; vh = vl >> 31; done = true; } break;
              case 5: if ((off & 1) === 0) { vl = u16[off >>> 1]; done = true; } break;
              case 2: if ((off & 3) === 0) { vl = i32[off >>> 2]; vh = vl >> 31; done = true; } break;
              case 6: if ((off & 3) === 0) { vl = i32[off >>> 2]; done = true; } break;
              case 3: if ((off & 7) === 0) { d64[0] = f64[off >>> 3]; vl = d32[0]; vh = d32[1]; done = true; } break;
              default: break;
            }
          }
          if (!done) {
            if (f3 === 7) { this.raise(CAUSE_ILLEGAL_INSTRUCTION, raw, 0); break loop; }
            pcBox[0] = pc;
            if (!this.loadSlow(lo, hi, f3)) break loop;
            if (rd !== 0) { x[2 * rd] = this.ldLo; x[2 * rd + 1] = this.ldHi; }
            if (this.irqRaised) { pc = npc; n++; break loop; } // a device raised an interrupt: take it now
            break;
          }
          if (rd !== 0) { x[2 * rd] = vl; x[2 * rd + 1] = vh; }
          break;
        }
        case 8: { // STORE
          const s = (x[2 * rs1] >>> 0) + (((insn >> 25) << 5) | ((insn >>> 7) & 31));
          const lo = s | 0;
          const hi = (x[2 * rs1 + 1] + (s >= 4294967296 ? 1 : s < 0 ? -1 : 0)) | 0;
          const idx = (lo >>> 12) & 2047;
          const vl = x[2 * rs2];
          let done = false;
          if (wTagLo[idx] === (lo & -4096) && wTagHi[idx] === hi) {
            const off = wOff[idx] + (lo & 0xfff);
            switch (f3) {
              case 0: u8[off] = vl; done = true; break;
              case 1: if ((off & 1) === 0) { u16[off >>> 1] = vl; done = true; } break;
              case 2: if ((off & 3) === 0) { i32[off >>> 2] = vl; done = true; } break;
              case 3: if ((off & 7) === 0) { d32[0] = vl; d32[1] = x[2 * rs2 + 1]; f64[off >>> 3] = d64[0]; done = true; } break;
              default: break;
            }
          }
          if (!done) {
            if (f3 > 3) { this.raise(CAUSE_ILLEGAL_INSTRUCTION, raw, 0); break loop; }
            pcBox[0] = pc;
            if (!this.storeSlow(lo, hi, f3, vl, x[2 * rs2 + 1])) break loop;
            if (this.irqRaised) { pc = npc; n++; break loop; }
          }
          break;
        }
        case 4: { // OP-IMM
          const imm = insn >> 20;
          const al = x[2 * rs1], ah = x[2 * rs1 + 1];
          let rl: number, rh: number;
          switch (f3) {
            case 0: { const s = (al >>> 0) + imm; rl = s | 0; rh = (ah + (s >= 4294967296 ? 1 : s < 0 ? -1 : 0)) | 0; break; }
            case 2: { const ih = imm >> 31; rl = (ah < ih || (ah === ih && (al >>> 0) < (imm >>> 0))) ? 1 : 0; rh = 0; break; }
            case 3: { const ih = imm >> 31; rl = ((ah >>> 0) < (ih >>> 0) || (ah === ih && (al >>> 0) < (imm >>> 0))) ? 1 : 0; rh = 0; break; }
            case 4: rl = al ^ imm; rh = ah ^ (imm >> 31); break;
            case 6: rl = al | imm; rh = ah | (imm >> 31); break;
            case 7: rl = al & imm; rh = ah & (imm >> 31); break;
            case 1: {
              if (insn >>> 26 !== 0) { this.raise(CAUSE_ILLEGAL_INSTRUCTION, raw, 0); break loop; }
              const sh = (insn >>> 20) & 63;
              if (sh === 0) { rl = al; rh = ah; }
              else if (sh < 32) { rl = al << sh; rh = (ah << sh) | (al >>> (32 - sh)); }
              else { rl = 0; rh = al << (sh - 32); }
              break;
            }
            default: { // 5: SRLI / SRAI
              const top = insn >>> 26;
              const sh = (insn >>> 20) & 63;
              if (top === 0) {
                if (sh === 0) { rl = al; rh = ah; }
                else if (sh < 32) { rl = (al >>> sh) | (ah << (32 - sh)); rh = ah >>> sh; }
                else { rl = ah >>> (sh - 32); rh = 0; }
              } else if (top === 0x10) {
                if (sh === 0) { rl = al; rh = ah; }
                else if (sh < 32) { rl = (al >>> sh) | (ah << (32 - sh)); rh = ah >> sh; }
                else { rl = ah >> (sh - 32); rh = ah >> 31; }
              } else { this.raise(CAUSE_ILLEGAL_INSTRUCTION, raw, 0); break loop; }
              break;
            }
          }
          if (rd !== 0) { x[2 * rd] = rl; x[2 * rd + 1] = rh; }
          break;
        }
        case 6: { // OP-IMM-32
          const al = x[2 * rs1];
          let r: number;
          if (f3 === 0) r = (al + (insn >> 20)) | 0;
          else if (f3 === 1 && insn >>> 25 === 0) r = al << rs2;
          else if (f3 === 5 && insn >>> 25 === 0) r = al >>> rs2;
          else if (f3 === 5 && insn >>> 25 === 0x20) r = al >> rs2;
          else { this.raise(CAUSE_ILLEGAL_INSTRUCTION, raw, 0); break loop; }
          if (rd !== 0) { x[2 * rd] = r; x[2 * rd + 1] = r >> 31; }
          break;
        }
        case 12: { // OP
          const al = x[2 * rs1], ah = x[2 * rs1 + 1], bl = x[2 * rs2], bh = x[2 * rs2 + 1];
          const f7 = insn >>> 25;
          let rl: number, rh: number;
          if (f7 === 0) {
            switch (f3) {
              case 0: rl = (al + bl) | 0; rh = (ah + bh + ((rl >>> 0) < (al >>> 0) ? 1 : 0)) | 0; break;
              case 1: {
                const sh = bl & 63;
                if (sh === 0) { rl = al; rh = ah; }
                else if (sh < 32) { rl = al << sh; rh = (ah << sh) | (al >>> (32 - sh)); }
                else { rl = 0; rh = al << (sh - 32); }
                break;
              }
              case 2: rl = (ah < bh || (ah === bh && (al >>> 0) < (bl >>> 0))) ? 1 : 0; rh = 0; break;
              case 3: rl = ((ah >>> 0) < (bh >>> 0) || (ah === bh && (al >>> 0) < (bl >>> 0))) ? 1 : 0; rh = 0; break;
              case 4: rl = al ^ bl; rh = ah ^ bh; break;
              case 5: {
                const sh = bl & 63;
                if (sh === 0) { rl = al; rh = ah; }
                else if (sh < 32) { rl = (al >>> sh) | (ah << (32 - sh)); rh = ah >>> sh; }
                else { rl = ah >>> (sh - 32); rh = 0; }
                break;
              }
              case 6: rl = al | bl; rh = ah | bh; break;
              default: rl = al & bl; rh = ah & bh; break;
            }
          } else if (f7 === 0x20 && f3 === 0) {
            rl = (al - bl) | 0;
            rh = (ah - bh - ((al >>> 0) < (bl >>> 0) ? 1 : 0)) | 0;
          } else if (f7 === 0x20 && f3 === 5) {
            const sh = bl & 63;
            if (sh === 0) { rl = al; rh = ah; }
            else if (sh < 32) { rl = (al >>> sh) | (ah << (32 - sh)); rh = ah >> sh; }
            else { rl = ah >> (sh - 32); rh = ah >> 31; }
          } else if (f7 === 1) {
            switch (f3) {
              case 0: rl = Math.imul(al, bl); rh = (mulhu32(al, bl) + Math.imul(al, bh) + Math.imul(ah, bl)) | 0; break;
              case 1: mulh64(al, ah, bl, bh); rl = R[0]; rh = R[1]; break;
              case 2: mulhsu64(al, ah, bl, bh); rl = R[0]; rh = R[1]; break;
              case 3: mulhu64(al, ah, bl, bh); rl = R[0]; rh = R[1]; break;
              default: divrem64(f3 - 4, al, ah, bl, bh); rl = R[0]; rh = R[1]; break;
            }
          } else { this.raise(CAUSE_ILLEGAL_INSTRUCTION, raw, 0); break loop; }
          if (rd !== 0) { x[2 * rd] = rl; x[2 * rd + 1] = rh; }
          break;
        }
        case 14: { // OP-32
          const a = x[2 * rs1], b = x[2 * rs2];
          const f7 = insn >>> 25;
          let r: number;
          if (f7 === 0) {
            if (f3 === 0) r = (a + b) | 0;
            else if (f3 === 1) r = a << (b & 31);
            else if (f3 === 5) r = a >>> (b & 31);
            else { this.raise(CAUSE_ILLEGAL_INSTRUCTION, raw, 0); break loop; }
          } else if (f7 === 0x20) {
            if (f3 === 0) r = (a - b) | 0;
            else if (f3 === 5) r = a >> (b & 31);
            else { this.raise(CAUSE_ILLEGAL_INSTRUCTION, raw, 0); break loop; }
          } else if (f7 === 1) {
            switch (f3) {
              case 0: r = Math.imul(a, b); break;
              case 4: r = b === 0 ? -1 : a === -0x80000000 && b === -1 ? a : (a / b) | 0; break;
              case 5: r = b === 0 ? -1 : ((a >>> 0) / (b >>> 0)) | 0; break;
              case 6: r = b === 0 ? a : a === -0x80000000 && b === -1 ? 0 : (a % b) | 0; break;
              case 7: r = b === 0 ? a : ((a >>> 0) % (b >>> 0)) | 0; break;
              default: this.raise(CAUSE_ILLEGAL_INSTRUCTION, raw, 0); break loop;
            }
          } else { this.raise(CAUSE_ILLEGAL_INSTRUCTION, raw, 0); break loop; }
          if (rd !== 0) { x[2 * rd] = r; x[2 * rd + 1] = r >> 31; }
          break;
        }
        case 3: { // MISC-MEM: fence, fence.i (no decoded-instruction cache, so nothing to drop)
          if (f3 > 1) { this.raise(CAUSE_ILLEGAL_INSTRUCTION, raw, 0); break loop; }
          break;
        }
        case 11: { // AMO
          pcBox[0] = pc;
          if (!this.execAtomic(insn)) break loop;
          break;
        }
        case 28: { // SYSTEM: ends the slice when interrupt enables, privilege or translation may change
          pcBox[0] = pc;
          this.instret += n - counted;
          counted = n;
          this.sliceExit = true;
          const next = +this.execSystem(insn, ilen, raw);
          if (next !== next) break loop; // NaN: exception raised
          n++;
          pc = next;
          if (this.sliceExit) break loop;
          continue;
        }
        case 1: case 9: { // LOAD-FP / STORE-FP
          pcBox[0] = pc;
          if (!this.execFpMem(insn, (insn & 0x7f) === 0x27, raw)) break loop;
          break;
        }
        case 20: case 16: case 17: case 18: case 19: { // F/D arithmetic: the FPU
          if ((this.mstatus & MSTATUS_FS) === 0 || executeFp(insn, this.fp) !== 0) {
            this.raise(CAUSE_ILLEGAL_INSTRUCTION, raw, 0);
            break loop;
          }
          this.mstatus |= MSTATUS_FS;
          break;
        }
        default:
          this.raise(CAUSE_ILLEGAL_INSTRUCTION, raw, 0);
          break loop;
      }
      pc = npc;
      n++;
    }
    pcBox[0] = pc;
    this.instret += n - counted;
    return n;
  }

  // ---------------------------------------------------------------- snapshots

  save(): HartState {
    return {
      hartId: this.hartId,
      x: Array.from(this.x),
      f: Array.from(this.f),
      frm: this.fp.frm,
      fflags: this.fp.fflags,
      pc: this.pc,
      privilege: this.priv,
      mstatus: this.mstatus,
      mie: this.mie,
      mipSoftware: this.mipSw,
      mipDevice: this.mipDev,
      medeleg: this.medeleg,
      mideleg: this.mideleg,
      mcounteren: this.mcounteren,
      scounteren: this.scounteren,
      mcountinhibit: this.mcountinhibit,
      menvcfg: this.menvcfg,
      senvcfg: this.senvcfg,
      csr64: Array.from(this.c64),
      pmpcfg: Array.from(this.pmpcfg),
      pmpaddr: Array.from(this.pmpaddr),
      instret: this.instret,
      counterDelta: Array.from(this.counterDelta),
      counterFrozen: Array.from(this.counterFrozen),
      stimecmp: this.stimecmpValue === Infinity ? null : this.stimecmpValue,
      waiting: this.waiting,
      stopped: this.stopped,
      reservationValid: this.resValid,
      reservationAddr: this.resAddr,
      reservationLo: this.resLo,
      reservationHi: this.resHi,
      reservationSize: this.resSize,
    };
  }

  restore(s: HartState): void {
    if (s.x.length !== 64 || s.f.length !== 64 || s.csr64.length !== this.c64.length ||
      s.pmpcfg.length !== this.pmpcfg.length || s.pmpaddr.length !== this.pmpaddr.length) {
      throw new RangeError(`Cannot restore hart ${this.hartId}: the saved register arrays have the wrong length (corrupt or foreign snapshot)`);
    }
    this.x.set(s.x);
    this.x[0] = 0;
    this.x[1] = 0;
    this.f.set(s.f);
    this.fp.frm = s.frm & 7;
    this.fp.fflags = s.fflags & 0x1f;
    this.pc = s.pc;
    this.mstatus = s.mstatus;
    this.mie = s.mie;
    this.mipSw = s.mipSoftware;
    this.mipDev = s.mipDevice;
    this.medeleg = s.medeleg;
    this.mideleg = s.mideleg;
    this.mcounteren = s.mcounteren;
    this.scounteren = s.scounteren;
    this.mcountinhibit = s.mcountinhibit;
    this.menvcfg = s.menvcfg;
    this.senvcfg = s.senvcfg;
    this.c64.set(s.csr64);
    this.pmpcfg.set(s.pmpcfg);
    this.pmpaddr.set(s.pmpaddr);
    this.instret = s.instret;
    this.counterDelta.fill(0);
    this.counterFrozen.fill(0);
    if (s.counterDelta?.length === 3) this.counterDelta.set(s.counterDelta);
    if (s.counterFrozen?.length === 3) this.counterFrozen.set(s.counterFrozen);
    this.stimecmpValue = s.stimecmp === null ? Infinity : s.stimecmp;
    this.waiting = s.waiting;
    this.stopped = s.stopped;
    this.resValid = s.reservationValid;
    this.resAddr = s.reservationAddr;
    this.resLo = s.reservationLo;
    this.resHi = s.reservationHi;
    this.resSize = s.reservationSize;
    this.excPending = false;
    // A saved hart is at an instruction boundary: no exit is pending and no MMIO result waits.
    this.exitPending = 0;
    this.mmioReplay = false;
    this.priv = s.privilege === 0 || s.privilege === 1 ? s.privilege : PRV_M;
    this.satpChanged();
    this.updateDataPriv();
  }
}
