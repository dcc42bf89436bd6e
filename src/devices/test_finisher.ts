// SiFive test finisher, used through syscon-poweroff / syscon-reboot: one 32-bit register that ends the VM.
// It holds no state, so it has nothing to save or restore.

import type { MmioDevice } from "../seams/mmio.js";

const FINISHER_FAIL = 0x3333;
const FINISHER_PASS = 0x5555;
const FINISHER_RESET = 0x7777;
/** Size of the register window (as in QEMU virt). */
export const TEST_FINISHER_SIZE = 0x1000;

export interface TestFinisherOptions {
  /** Guest asked to power off: 0 for a clean shutdown, otherwise the failure code it gave. */
  onPowerOff: (exitCode: number) => void;
  onReset: () => void;
}

export class TestFinisher implements MmioDevice {
  readonly name = "test-finisher";
  private readonly onPowerOff: (exitCode: number) => void;
  private readonly onReset: () => void;

  constructor(options: TestFinisherOptions) {
    this.onPowerOff = options.onPowerOff;
    this.onReset = options.onReset;
  }

  read(_offset: number, _size: 1 | 2 | 4): number {
    return 0;
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    // 16-bit writes carry the command alone; the failure code needs the upper half of a 32-bit write.
    if (offset !== 0 || size === 1) return;
    const v = size === 2 ? value & 0xffff : value >>> 0;
    switch (v & 0xffff) {
      case FINISHER_PASS:
        this.onPowerOff(0);
        return;
      case FINISHER_FAIL:
        this.onPowerOff(v >>> 16 || 1); // a failure that reports code 0 still fails
        return;
      case FINISHER_RESET:
        this.onReset();
        return;
      default:
        return; // any other value is ignored, as on the real part
    }
  }
}
