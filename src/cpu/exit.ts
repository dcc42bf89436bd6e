// The vCPU boundary, as KVM draws it for QEMU and Firecracker: Hart.run(budget) executes guest
// code until something needs the VMM, and says why in an exit record. The VMM handles the exit
// (an MMIO access, an SBI call) and completes it on the hart before the next run().

/** The budget was spent (or a control change ended the slice): just run again. */
export const EXIT_BUDGET = 0;
/** The hart waits for an interrupt (WFI with nothing pending): sleep until one arrives. */
export const EXIT_WFI = 1;
/** The hart is stopped (HSM stop, or never started). */
export const EXIT_STOPPED = 2;
/**
 * A load or store to a device the vCPU does not serve itself. The VMM performs it on the bus and
 * calls completeMmio(value) or completeMmio(0, 0, true) for an access fault; the instruction then
 * re-executes and takes that result (KVM's MMIO exit and re-entry).
 */
export const EXIT_MMIO = 3;
/** An S-mode ecall (an SBI call, a0-a7 hold it) when Hart.sbiExits is set; completeSbi() retires it. */
export const EXIT_SBI = 4;

export type VcpuExitReason = typeof EXIT_BUDGET | typeof EXIT_WFI | typeof EXIT_STOPPED | typeof EXIT_MMIO | typeof EXIT_SBI;

/** One record per hart, reused across runs (no allocation per exit). */
export interface VcpuExit {
  reason: VcpuExitReason;
  /** Instructions retired by the run that ended with this exit. */
  retired: number;
  /** MMIO exits: guest-physical address, access size in bytes, direction and the value written. */
  mmioAddr: number;
  mmioSize: 1 | 2 | 4 | 8;
  mmioWrite: boolean;
  /** Value written (stores) or, after completeMmio, read (loads): low and high 32 bits. */
  mmioValueLo: number;
  mmioValueHi: number;
}

export function exitReasonName(reason: VcpuExitReason): string {
  switch (reason) {
    case EXIT_BUDGET: return "budget";
    case EXIT_WFI: return "wfi";
    case EXIT_STOPPED: return "stopped";
    case EXIT_MMIO: return "mmio";
    case EXIT_SBI: return "sbi";
    default: {
      const never: never = reason;
      return String(never);
    }
  }
}
