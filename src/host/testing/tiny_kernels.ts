// Tiny RISC-V "Image" kernels for daemon tests: they boot in microseconds, so many VMs cost
// almost nothing. `idle` parks in WFI forever; `busy` spins forever (a CPU hog).

import { writeFileSync } from "node:fs";
import { join } from "node:path";

const WFI = 0x10500073;
const JUMP_BACK_4 = 0xffdff06f; // j -4
const JUMP_SELF = 0x0000006f; // j 0
const IMAGE_MAGIC = 0x5643534952; // "RISCV" at 0x30
const IMAGE_MAGIC2 = 0x05435352; // "RSC\x05" at 0x38

function image(code: number[]): Uint8Array {
  const buf = new Uint8Array(64);
  const dv = new DataView(buf.buffer);
  code.forEach((insn, i) => dv.setUint32(i * 4, insn >>> 0, true));
  dv.setBigUint64(0x30, BigInt(IMAGE_MAGIC), true);
  dv.setUint32(0x38, IMAGE_MAGIC2, true);
  return buf;
}

export function writeTinyKernels(dir: string): { idle: string; busy: string } {
  const idle = join(dir, "idle.Image");
  const busy = join(dir, "busy.Image");
  writeFileSync(idle, image([WFI, JUMP_BACK_4]));
  writeFileSync(busy, image([JUMP_SELF]));
  return { idle, busy };
}
