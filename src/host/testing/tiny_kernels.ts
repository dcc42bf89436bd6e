// Tiny RISC-V "Image" kernels for daemon tests: they boot in microseconds, so many VMs cost
// almost nothing. `idle` parks in WFI forever; `busy` spins forever (a CPU hog); `poweroff`
// runs about a second, then powers off cleanly through the SBI system-reset call (exit 0).

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { encB, encI, encJ, encR, encU } from "../../cpu/encode.js";

const WFI = 0x10500073;
const JUMP_BACK_4 = 0xffdff06f; // j -4
const JUMP_SELF = 0x0000006f; // j 0
const IMAGE_MAGIC = 0x5643534952; // "RISCV" at 0x30
const IMAGE_MAGIC2 = 0x05435352; // "RSC\x05" at 0x38

const HEADER_BYTES = 64;

/** An Image whose code starts at 0 (at most 12 instructions) or, when longer, after the header. */
function image(code: number[]): Uint8Array {
  const inHeader = code.length * 4 <= 0x30;
  const buf = new Uint8Array(inHeader ? HEADER_BYTES : HEADER_BYTES + code.length * 4);
  const dv = new DataView(buf.buffer);
  if (inHeader) code.forEach((insn, i) => dv.setUint32(i * 4, insn >>> 0, true));
  else {
    dv.setUint32(0, encJ(0x6f, 0, HEADER_BYTES) >>> 0, true); // j over the header
    code.forEach((insn, i) => dv.setUint32(HEADER_BYTES + i * 4, insn >>> 0, true));
  }
  dv.setBigUint64(0x30, BigInt(IMAGE_MAGIC), true);
  dv.setUint32(0x38, IMAGE_MAGIC2, true);
  return buf;
}

const T0 = 5, T1 = 6, T2 = 7, A0 = 10, A1 = 11, A6 = 16, A7 = 17;
const CSR_TIME = 0xc01;
const SBI_EXT_SRST = 0x53525354;
const ONE_SECOND_OF_TICKS = 10_000_000; // TIMEBASE_HZ

/** Spins on the time CSR for about a second, then asks the SBI to shut the system down (reason: none). */
function poweroffAfterASecond(): number[] {
  return [
    encI(0x73, T0, 2, 0, CSR_TIME), // csrr t0, time
    encU(0x37, T2, (ONE_SECOND_OF_TICKS + 0x800) & 0xfffff000), // li t2, ONE_SECOND_OF_TICKS
    encI(0x13, T2, 0, T2, ONE_SECOND_OF_TICKS & 0xfff),
    encR(0x33, T0, 0, T0, T2, 0), // add t0, t0, t2
    encI(0x73, T1, 2, 0, CSR_TIME), // 1: csrr t1, time
    encB(0x63, 6, T1, T0, -4), // bltu t1, t0, 1b
    encU(0x37, A7, (SBI_EXT_SRST + 0x800) & 0xfffff000), // li a7, SRST
    encI(0x1b, A7, 0, A7, SBI_EXT_SRST & 0xfff),
    encI(0x13, A6, 0, 0, 0), // a6 = 0: system_reset
    encI(0x13, A0, 0, 0, 0), // a0 = 0: shutdown
    encI(0x13, A1, 0, 0, 0), // a1 = 0: no reason
    0x00000073, // ecall
    JUMP_SELF,
  ];
}

export function writeTinyKernels(dir: string): { idle: string; busy: string; poweroff: string } {
  const idle = join(dir, "idle.Image");
  const busy = join(dir, "busy.Image");
  const poweroff = join(dir, "poweroff.Image");
  writeFileSync(idle, image([WFI, JUMP_BACK_4]));
  writeFileSync(busy, image([JUMP_SELF]));
  writeFileSync(poweroff, image(poweroffAfterASecond()));
  return { idle, busy, poweroff };
}
