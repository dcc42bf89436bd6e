// Built-in SBI (RISC-V Supervisor Binary Interface v2.0) so the kernel can start directly in
// S-mode without an M-mode firmware. Extensions: BASE, TIME, IPI, RFENCE, HSM, SRST, DBCN.
// The vCPU loop calls handle() for every SBI exit (an ECALL from S-mode; see cpu/exit.ts).

import type { GuestRam } from "../seams/guest_ram.js";

/** The part of a hart the firmware drives; Hart from src/cpu implements it. */
export interface SbiHart {
  readonly hartId: number;
  stopped: boolean;
  waiting: boolean;
  stimecmp: number;
  privilege: 0 | 1 | 3;
  getX(i: number): bigint;
  setX(i: number, v: bigint): void;
  setInterruptPending(bit: number, level: boolean): void;
  enterSupervisorBoot(pc: number, a0: bigint, a1: bigint): void;
  flushTlb(): void;
  flushIcache(): void;
}

export interface SbiOptions {
  harts: SbiHart[];
  ram: GuestRam;
  /** Debug-console output (DBCN) goes where the serial console goes. */
  consoleWrite: (bytes: Uint8Array) => void;
  /** Reads pending debug-console input, at most `max` bytes. */
  consoleRead?: (max: number) => Uint8Array;
  /** SRST: shutdown (exit code) or reboot. */
  onSystemReset: (kind: "shutdown" | "reboot", exitCode: number) => void;
  /** Called when a timer is armed so an idle run loop can re-plan its sleep. */
  onTimerChange?: () => void;
}

export const SBI_SUCCESS = 0n;
export const SBI_ERR_FAILED = -1n;
export const SBI_ERR_NOT_SUPPORTED = -2n;
export const SBI_ERR_INVALID_PARAM = -3n;
export const SBI_ERR_INVALID_ADDRESS = -5n;
export const SBI_ERR_ALREADY_AVAILABLE = -6n;
export const SBI_ERR_ALREADY_STOPPED = -8n;

export const EXT_BASE = 0x10;
export const EXT_TIME = 0x54494d45;
export const EXT_IPI = 0x735049;
export const EXT_RFENCE = 0x52464e43;
export const EXT_HSM = 0x48534d;
export const EXT_SRST = 0x53525354;
export const EXT_DBCN = 0x4442434e;

const SUPPORTED = new Set([EXT_BASE, EXT_TIME, EXT_IPI, EXT_RFENCE, EXT_HSM, EXT_SRST, EXT_DBCN]);
const SPEC_VERSION_2_0 = 2n << 24n;
/** Implementation id outside the SBI-assigned range (0-10): "nodevisor". */
const IMPL_ID = 0x6e7664n;
const HSM_STARTED = 0n;
const HSM_STOPPED = 1n;
const MIP_SSIP = 1;
const MIP_STIP = 5;
const U64 = (1n << 64n) - 1n;
/** Caps one DBCN write so a hostile length cannot stall the host. */
const DBCN_MAX_WRITE = 4096;

export interface SbiStats {
  calls: number;
  byExtension: Record<string, number>;
}

export class SbiFirmware {
  private readonly opts: SbiOptions;
  readonly stats: SbiStats = { calls: 0, byExtension: {} };

  constructor(opts: SbiOptions) {
    this.opts = opts;
  }

  /** Handles the ECALL the hart just took from S-mode; always returns true (unknown calls get NOT_SUPPORTED). */
  handle(hart: SbiHart): boolean {
    const ext = Number(hart.getX(17) & 0xffffffffn);
    const fid = Number(hart.getX(16) & 0xffffffffn);
    this.stats.calls++;
    const key = extensionName(ext);
    this.stats.byExtension[key] = (this.stats.byExtension[key] ?? 0) + 1;
    const [error, value] = this.dispatch(hart, ext, fid);
    // A hart that stopped itself (HSM stop) keeps its registers as they were.
    hart.setX(10, error);
    hart.setX(11, value);
    return true;
  }

  private dispatch(hart: SbiHart, ext: number, fid: number): [bigint, bigint] {
    // Masking, not BigInt.asUintN: Node 20's optimizer has crashed on asUintN results merged across branches.
    const a = (i: number): bigint => hart.getX(10 + i) & U64;
    switch (ext) {
      case EXT_BASE:
        return this.base(fid, a(0));
      case EXT_TIME:
        if (fid !== 0) return [SBI_ERR_NOT_SUPPORTED, 0n];
        return this.setTimer(hart, a(0));
      case EXT_IPI:
        if (fid !== 0) return [SBI_ERR_NOT_SUPPORTED, 0n];
        return this.forEachHart(a(0), a(1), (h) => h.setInterruptPending(MIP_SSIP, true));
      case EXT_RFENCE:
        return this.rfence(fid, a(0), a(1));
      case EXT_HSM:
        return this.hsm(hart, fid, a(0), a(1), a(2));
      case EXT_SRST:
        return this.srst(fid, a(0), a(1));
      case EXT_DBCN:
        return this.dbcn(fid, a(0), a(1), a(2));
      default:
        return [SBI_ERR_NOT_SUPPORTED, 0n];
    }
  }

  private base(fid: number, arg0: bigint): [bigint, bigint] {
    switch (fid) {
      case 0:
        return [SBI_SUCCESS, SPEC_VERSION_2_0];
      case 1:
        return [SBI_SUCCESS, IMPL_ID];
      case 2:
        return [SBI_SUCCESS, 1n];
      case 3:
        return [SBI_SUCCESS, arg0 <= 0xffffffffn && SUPPORTED.has(Number(arg0)) ? 1n : 0n];
      case 4: // mvendorid, marchid, mimpid
      case 5:
      case 6:
        return [SBI_SUCCESS, 0n];
      default:
        return [SBI_ERR_NOT_SUPPORTED, 0n];
    }
  }

  private setTimer(hart: SbiHart, when: bigint): [bigint, bigint] {
    // Values past 2^53 ticks (centuries at 10 MHz) mean "never"; Linux uses all-ones to disarm.
    hart.stimecmp = when >= 1n << 53n ? Infinity : Number(when);
    hart.setInterruptPending(MIP_STIP, false);
    this.opts.onTimerChange?.();
    return [SBI_SUCCESS, 0n];
  }

  /** Applies fn to every hart selected by (hart_mask, hart_mask_base); base all-ones selects all harts. */
  private forEachHart(mask: bigint, base: bigint, fn: (h: SbiHart) => void): [bigint, bigint] {
    const harts = this.opts.harts;
    if (base === U64) {
      for (const h of harts) fn(h);
      return [SBI_SUCCESS, 0n];
    }
    const selected: SbiHart[] = [];
    for (let bit = 0n; mask !== 0n && bit < 64n; bit++, mask >>= 1n) {
      if ((mask & 1n) === 0n) continue;
      const id = base + bit;
      const h = id < BigInt(harts.length) ? harts[Number(id)] : undefined;
      if (h === undefined) return [SBI_ERR_INVALID_PARAM, 0n];
      selected.push(h);
    }
    for (const h of selected) fn(h);
    return [SBI_SUCCESS, 0n];
  }

  private rfence(fid: number, mask: bigint, base: bigint): [bigint, bigint] {
    switch (fid) {
      case 0: // remote FENCE.I
        return this.forEachHart(mask, base, (h) => h.flushIcache());
      case 1: // remote SFENCE.VMA (address range ignored: we flush the whole TLB)
      case 2: // remote SFENCE.VMA with ASID
        return this.forEachHart(mask, base, (h) => h.flushTlb());
      default: // hypervisor fences: no H extension
        return [SBI_ERR_NOT_SUPPORTED, 0n];
    }
  }

  private hsm(caller: SbiHart, fid: number, hartid: bigint, start: bigint, opaque: bigint): [bigint, bigint] {
    const harts = this.opts.harts;
    const target = hartid < BigInt(harts.length) ? harts[Number(hartid)] : undefined;
    switch (fid) {
      case 0: {
        if (target === undefined) return [SBI_ERR_INVALID_PARAM, 0n];
        if (!target.stopped) return [SBI_ERR_ALREADY_AVAILABLE, 0n];
        if (!this.opts.ram.contains(Number(start), 4)) return [SBI_ERR_INVALID_ADDRESS, 0n];
        target.enterSupervisorBoot(Number(start), hartid, opaque);
        target.stimecmp = Infinity;
        target.stopped = false;
        target.waiting = false;
        return [SBI_SUCCESS, 0n];
      }
      case 1:
        if (caller.stopped) return [SBI_ERR_ALREADY_STOPPED, 0n];
        caller.stopped = true;
        return [SBI_SUCCESS, 0n];
      case 2:
        if (target === undefined) return [SBI_ERR_INVALID_PARAM, 0n];
        return [SBI_SUCCESS, target.stopped ? HSM_STOPPED : HSM_STARTED];
      default: // hart_suspend needs idle states in the device tree, which we do not advertise
        return [SBI_ERR_NOT_SUPPORTED, 0n];
    }
  }

  private srst(fid: number, type: bigint, reason: bigint): [bigint, bigint] {
    if (fid !== 0) return [SBI_ERR_NOT_SUPPORTED, 0n];
    if (type === 0n) this.opts.onSystemReset("shutdown", reason === 1n ? 1 : 0);
    else if (type === 1n || type === 2n) this.opts.onSystemReset("reboot", 0);
    else return [SBI_ERR_INVALID_PARAM, 0n];
    return [SBI_SUCCESS, 0n];
  }

  private dbcn(fid: number, count: bigint, lo: bigint, hi: bigint): [bigint, bigint] {
    const ram = this.opts.ram;
    switch (fid) {
      case 0: {
        const n = Number(count > BigInt(DBCN_MAX_WRITE) ? BigInt(DBCN_MAX_WRITE) : count);
        const addr = Number(lo) + Number(hi) * 2 ** 32;
        if (hi >= 1n << 20n || !ram.contains(addr, n)) return [SBI_ERR_INVALID_PARAM, 0n];
        this.opts.consoleWrite(ram.read(addr, n));
        return [SBI_SUCCESS, BigInt(n)];
      }
      case 1: {
        const addr = Number(lo) + Number(hi) * 2 ** 32;
        const max = Number(count > BigInt(DBCN_MAX_WRITE) ? BigInt(DBCN_MAX_WRITE) : count);
        if (hi >= 1n << 20n || !ram.contains(addr, max)) return [SBI_ERR_INVALID_PARAM, 0n];
        const data = this.opts.consoleRead?.(max) ?? new Uint8Array(0);
        ram.write(addr, data);
        return [SBI_SUCCESS, BigInt(data.length)];
      }
      case 2:
        this.opts.consoleWrite(Uint8Array.of(Number(count & 0xffn)));
        return [SBI_SUCCESS, 0n];
      default:
        return [SBI_ERR_NOT_SUPPORTED, 0n];
    }
  }
}

function extensionName(ext: number): string {
  switch (ext) {
    case EXT_BASE:
      return "base";
    case EXT_TIME:
      return "time";
    case EXT_IPI:
      return "ipi";
    case EXT_RFENCE:
      return "rfence";
    case EXT_HSM:
      return "hsm";
    case EXT_SRST:
      return "srst";
    case EXT_DBCN:
      return "dbcn";
    default:
      return "other";
  }
}
