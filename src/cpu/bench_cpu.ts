// Micro benchmark of the interpreter: an integer workload (array fill with an LCG, insertion
// sort, checksum) run in M-mode and in S-mode under Sv39, printing guest MIPS.
// Run: node --import tsx src/cpu/bench_cpu.ts [SECONDS] [--jit]
import { Asm } from "./testing/asm.js";
import { makeMachine, load, RAM_BASE } from "./testing/machine.js";
import type { TestMachine } from "./testing/machine.js";

const N = 512; // elements sorted per round (insertion sort: ~N^2/4 inner iterations)
const DATA = RAM_BASE + 0x10_0000;

/** The workload: loops forever, each round refills, sorts and checksums the array into x10. */
function program(origin: number, data: number): Asm {
  const a = new Asm(origin);
  a.li(20, data).li(21, N).li(10, 0).li(5, 12345);
  a.label("round");
  // Fill: x5 = x5 * 1103515245 + 12345 (64-bit), store words.
  a.li(6, 0).li(7, 1103515245).li(8, 12345);
  a.label("fill");
  a.op("mul", 5, 5, 7).add(5, 5, 8);
  a.slli(9, 6, 3).add(9, 9, 20).srli(11, 5, 16).sd(11, 9, 0);
  a.addi(6, 6, 1).blt(6, 21, "fill");
  // Insertion sort of 64-bit elements.
  a.li(6, 1);
  a.label("outer");
  a.slli(9, 6, 3).add(9, 9, 20).ld(12, 9, 0).addi(13, 6, -1);
  a.label("inner");
  a.blt(13, 0, "place");
  a.slli(14, 13, 3).add(14, 14, 20).ld(15, 14, 0);
  a.bge(12, 15, "place");
  a.sd(15, 14, 8).addi(13, 13, -1).jal(0, "inner");
  a.label("place");
  a.slli(14, 13, 3).add(14, 14, 20).sd(12, 14, 8);
  a.addi(6, 6, 1).blt(6, 21, "outer");
  // Checksum.
  a.li(6, 0);
  a.label("sum");
  a.slli(9, 6, 3).add(9, 9, 20).ld(11, 9, 0).op("xor", 10, 10, 11).slli(16, 10, 1).srli(17, 10, 63).op("or", 10, 16, 17);
  a.addi(6, 6, 1).blt(6, 21, "sum");
  a.jal(0, "round");
  return a;
}

function measure(m: TestMachine, label: string, seconds: number): number {
  const start = performance.now();
  const cpu0 = process.cpuUsage();
  let insns = 0;
  while (performance.now() - start < seconds * 1000) insns += m.hart.run(1_000_000);
  const ms = performance.now() - start;
  const cpu = process.cpuUsage(cpu0);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  // Per CPU-second as well: the machine is shared, wall-clock MIPS understate the interpreter.
  const mips = insns / cpuMs / 1000;
  console.log(`${label}: ${(insns / 1e6).toFixed(1)} M instructions, ${ms.toFixed(0)} ms wall = ${(insns / ms / 1000).toFixed(1)} MIPS; ` +
    `${cpuMs.toFixed(0)} ms CPU = ${mips.toFixed(1)} MIPS per CPU-second`);
  return mips;
}

/** Sv39 identity map of the first GiB of RAM with one 1 GiB superpage. */
function enableSv39(m: TestMachine): void {
  const root = RAM_BASE + 0x20_0000;
  const ppn = RAM_BASE / 4096;
  // PTE for VA 0x8000_0000 (VPN[2] = 2): leaf RWX, A, D.
  m.ram.writeU64(root + 2 * 8, ppn * 1024 + 0xcf);
  m.hart.enterSupervisorBoot(RAM_BASE, 0n, 0n);
  // satp = Sv39 | root PPN, set through a CSR write from the hart's slow path.
  const satp = (8n << 60n) | BigInt(root / 4096);
  const a = new Asm(RAM_BASE + 0x30_0000);
  a.li(5, satp).csrrw(0, 0x180, 5).sfenceVma().li(5, RAM_BASE).jalr(0, 5, 0);
  m.ram.write(a.origin, a.bytesOut());
  m.hart.setPc(a.origin);
  m.hart.run(a.bytesOut().length / 4);
}

const seconds = Number(process.argv.find((a, i) => i >= 2 && /^[0-9.]+$/.test(a)) ?? 3);
const jit = process.argv.includes("--jit");
{
  const m = makeMachine(8 << 20, { jit });
  load(m, program(RAM_BASE, DATA));
  measure(m, "M-mode, bare (warm-up)", 1);
  measure(m, "M-mode, bare", seconds);
}
{
  const m = makeMachine(8 << 20, { jit });
  load(m, program(RAM_BASE, DATA));
  enableSv39(m);
  measure(m, "S-mode, Sv39 (warm-up)", 0.5);
  measure(m, "S-mode, Sv39", seconds);
  if (jit) console.log(`jit: ${JSON.stringify(m.hart.jitCache?.stats)}`);
}
