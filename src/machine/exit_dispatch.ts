// The VMM's side of the vCPU boundary: completes a hart's exit on the device thread, so devices
// and firmware never run on a vCPU's stack.

import type { Hart } from "../cpu/hart.js";
import { EXIT_MMIO, EXIT_SBI } from "../cpu/exit.js";
import type { MmioRouter } from "../seams/mmio.js";

export interface ExitServices {
  /** The board's bus: every device, including those the vCPU also serves itself. */
  bus: MmioRouter;
  /** The built-in SBI: answers the call in a0-a7 and writes a0/a1. Absent under guest firmware. */
  sbi?: { handle(hart: Hart): boolean };
}

/** Completes the hart's exit; returns the instructions an MMIO completion retired (completeMmio). */
export function dispatchExit(hart: Hart, s: ExitServices): number {
  const e = hart.exit;
  switch (e.reason) {
    case EXIT_MMIO:
      if (e.mmioWrite) {
        s.bus.write(e.mmioAddr, e.mmioSize, e.mmioValueLo, e.mmioValueHi);
        return hart.completeMmio(0, 0, s.bus.fault);
      }
      return hart.completeMmio(s.bus.read(e.mmioAddr, e.mmioSize), e.mmioSize === 8 ? s.bus.readHigh : 0, s.bus.fault);
    case EXIT_SBI:
      s.sbi?.handle(hart);
      hart.completeSbi();
      return 0;
    default:
      return 0; // budget, WFI and stopped need nothing from the VMM
  }
}
