// Bare-metal S-mode "kernels" for SMP tests of the threaded vCPUs: RISC-V Image files that
// `nodevisor run --kernel FILE` boots under the built-in SBI, as it boots Linux.

import { Asm } from "../../src/cpu/testing/asm.js";
import { KERNEL_OFFSET, RAM_BASE } from "../../src/machine/layout.js";

const EXT_HSM = 0x48534d;
const A0 = 10, A1 = 11, A2 = 12, A6 = 16, A7 = 17, T0 = 5, T1 = 6;
const CSR_SSTATUS = 0x100;
const SSTATUS_SIE = 2;

/** Wraps code assembled at RAM_BASE + KERNEL_OFFSET in a RISC-V Linux Image header. */
function image(code: Uint8Array): Uint8Array {
  const header = new Uint8Array(64);
  const dv = new DataView(header.buffer);
  dv.setUint32(0, 0x0400006f, true); // j 64: over the header
  dv.setBigUint64(8, BigInt(KERNEL_OFFSET), true);
  dv.setBigUint64(16, BigInt(64 + code.length), true);
  dv.setUint32(0x38, 0x05435352, true); // "RSC\x05"
  const out = new Uint8Array(64 + code.length);
  out.set(header);
  out.set(code, 64);
  return out;
}

/**
 * Hart 0 starts harts 1..cpus-1 through SBI HSM; then every hart spins for ever with interrupts
 * off: nothing but the VMM can stop them.
 */
export function spinWithInterruptsOff(cpus: number): Uint8Array {
  const origin = RAM_BASE + KERNEL_OFFSET + 64;
  const a = new Asm(origin);
  a.jal(0, "main");
  const secondary = a.here; // harts 1.. start here
  a.csrrci(0, CSR_SSTATUS, SSTATUS_SIE);
  a.label("spin");
  a.addi(T0, T0, 1);
  a.jal(0, "spin");
  a.label("main");
  a.csrrci(0, CSR_SSTATUS, SSTATUS_SIE);
  a.bne(A0, 0, "spin");
  a.li(T0, 1);
  a.li(T1, cpus);
  a.label("start_next");
  a.bge(T0, T1, "spin");
  a.li(A7, EXT_HSM);
  a.li(A6, 0); // hart_start(hartid, start_addr, opaque)
  a.addi(A0, T0, 0);
  a.li(A1, secondary);
  a.li(A2, 0);
  a.ecall();
  a.addi(T0, T0, 1);
  a.jal(0, "start_next");
  return image(a.bytesOut());
}
