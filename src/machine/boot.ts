// Places the boot payloads in RAM and sets the harts' entry state, for the two boot paths:
// the kernel entered directly in S-mode (built-in SBI), or an M-mode firmware (e.g. OpenSBI
// fw_dynamic) that then enters the kernel itself.

import { randomBytes } from "node:crypto";
import type { Board } from "./board.js";
import { BootImageError, loadFirmware, loadKernel, placeInRam, type LoadedPayload, type PayloadSource } from "./loader.js";
import { KERNEL_OFFSET } from "./layout.js";

export interface BootPayloads {
  kernel: PayloadSource | null;
  initrd: PayloadSource | null;
  firmware: PayloadSource | null;
  bootargs: string;
}

export interface BootLayout {
  kernel: LoadedPayload | null;
  firmware: LoadedPayload | null;
  initrd: { start: number; end: number } | null;
  dtb: number;
}

const PAGE = 4096;
/** Room reserved at the top of RAM for the device tree and the fw_dynamic info block. */
const TOP_RESERVE = 64 * 1024;
const FW_DYNAMIC_MAGIC = 0x4942534fn; // "OSBI"
const FW_DYNAMIC_VERSION = 2n;
const NEXT_MODE_S = 1n;

const alignDown = (v: number, a: number): number => Math.floor(v / a) * a;

/** Where an initrd of `size` bytes goes: as high as it fits, below the device tree's area at the top of RAM. */
export function initrdStart(ramEnd: number, size: number): number {
  return alignDown(ramEnd - TOP_RESERVE - size, PAGE);
}

/**
 * The guest-physical ranges a boot will copy files of these sizes into: a kernel Image at its usual
 * text offset (KERNEL_OFFSET; an Image asking for another one, or an ELF, is placed where it asks,
 * and the range is then only touched early) and the initrd (initrdStart).
 */
export function payloadRanges(ramBase: number, ramEnd: number, kernelBytes: number, initrdBytes: number): Array<{ gpa: number; length: number }> {
  const ranges: Array<{ gpa: number; length: number }> = [];
  if (kernelBytes > 0) ranges.push({ gpa: ramBase + KERNEL_OFFSET, length: Math.min(kernelBytes, ramEnd - ramBase - KERNEL_OFFSET) });
  const start = initrdStart(ramEnd, initrdBytes);
  if (initrdBytes > 0 && start >= ramBase) ranges.push({ gpa: start, length: initrdBytes });
  return ranges;
}

export function boot(board: Board, p: BootPayloads): BootLayout {
  const ram = board.ram;
  if (!p.kernel && !p.firmware) throw new BootImageError("Nothing to boot: give a kernel (--kernel) or a firmware (--firmware).");
  const firmware = p.firmware ? loadFirmware(ram, p.firmware) : null;
  if (firmware && p.kernel && firmware.end > ram.base + KERNEL_OFFSET) {
    throw new BootImageError(`Cannot boot: firmware "${p.firmware!.name}" is larger than the 2 MiB below the kernel.`);
  }
  const kernel = p.kernel ? loadKernel(ram, p.kernel) : null;

  const dtbArea = ram.end - TOP_RESERVE;
  let initrd: { start: number; end: number } | null = null;
  if (p.initrd) {
    const size = p.initrd.size;
    const start = initrdStart(ram.end, size);
    const floor = kernel ? kernel.end : firmware ? firmware.end : ram.base;
    if (start < floor) {
      throw new BootImageError(
        `Cannot fit initrd "${p.initrd.name}" (${(size / 2 ** 20).toFixed(1)} MiB) in RAM beside the kernel. Give the VM more --memory.`,
      );
    }
    placeInRam(ram, start, p.initrd, 0, size);
    initrd = { start, end: start + size };
  }

  const dtbBytes = board.deviceTree(p.bootargs, initrd, randomBytes(32));
  if (dtbBytes.length > TOP_RESERVE - 256) throw new BootImageError("The generated device tree is too large.");
  const dtb = dtbArea;
  ram.write(dtb, dtbBytes);

  const harts = board.harts;
  if (firmware) {
    // fw_dynamic_info: magic, version, next_addr, next_mode, options, boot_hart (-1: any).
    const info = dtbArea + TOP_RESERVE - 64;
    const words = [FW_DYNAMIC_MAGIC, FW_DYNAMIC_VERSION, BigInt(kernel ? kernel.entry : 0), NEXT_MODE_S, 0n, (1n << 64n) - 1n];
    words.forEach((w, i) => ram.view.setBigUint64(info - ram.base + i * 8, w, true));
    for (const h of harts) {
      h.privilege = 3;
      h.setPc(firmware.entry);
      h.setX(10, BigInt(h.hartId));
      h.setX(11, BigInt(dtb));
      h.setX(12, BigInt(info));
      h.stopped = false;
    }
  } else {
    harts.forEach((h, i) => {
      h.stopped = i !== 0;
    });
    harts[0]!.enterSupervisorBoot(kernel!.entry, 0n, BigInt(dtb));
  }
  return { kernel, firmware, initrd, dtb };
}
