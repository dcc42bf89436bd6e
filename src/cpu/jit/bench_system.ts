// Micro benchmark of the JIT's hand-back round trip for a system instruction the compiler leaves
// to the interpreter (a CSR access, rdtime, sfence.vma of a 4 KiB page) and of a trap's: a loop of
// eight addi and one such instruction (or an illegal one, which an S-mode handler skips with four
// instructions: the sepc read and write and sret go to the interpreter too), S-mode under Sv39,
// printing nanoseconds an iteration against the loop alone.
// Run: node --import tsx src/cpu/jit/bench_system.ts [SECONDS]
import { Asm } from "../testing/asm.js";
import { makeMachine, load, RAM_BASE } from "../testing/machine.js";

/** Address the sfence.vma case names: outside RAM's 1 GiB superpage, so the fence drops one page's entries. */
const FENCED = 0x1000;
const ITERATIONS = 1 << 30;
/** Instructions an iteration retires besides the system instruction: 8 addi, the counter's addi and the branch. */
const LOOP_INSNS = 10;

/** Per case: what the loop adds to its eight addi, and the instructions that retires (a trap's instruction does not). */
const CASES: Record<string, [((a: Asm) => void) | null, number]> = {
  "loop alone": [null, 0],
  "csrw sscratch": [(a) => a.csrrw(0, 0x140, 5), 1],
  "csrr sscratch": [(a) => a.csrrs(9, 0x140, 0), 1],
  "csrr sstatus (compiled)": [(a) => a.csrrs(9, 0x100, 0), 1],
  "rdtime": [(a) => a.csrrs(9, 0xc01, 0), 1],
  "sfence.vma addr": [(a) => a.sfenceVma(7, 0), 1],
  "trap (illegal insn)": [(a) => a.word(-1), 4],
};
/** The S-mode trap handler: skips the instruction that trapped. */
const HANDLER = RAM_BASE + 0x1000;

function program(sys: ((a: Asm) => void) | null): Asm {
  const a = new Asm(RAM_BASE);
  a.label("loop");
  for (let i = 0; i < 8; i++) a.addi(8, 8, 1);
  sys?.(a);
  a.addi(5, 5, 1).blt(5, 6, "loop");
  return a;
}

/** Maps the first GiB of RAM with one superpage, enters S-mode, sets the loop's registers and jumps to it. */
function enterSv39(m: ReturnType<typeof makeMachine>): void {
  const root = RAM_BASE + 0x20_0000;
  m.ram.writeU64(root + 2 * 8, (RAM_BASE / 4096) * 1024 + 0xcf);
  m.hart.enterSupervisorBoot(RAM_BASE, 0n, 0n);
  const a = new Asm(RAM_BASE + 0x30_0000);
  const h = new Asm(HANDLER);
  h.csrrs(10, 0x141, 0).addi(10, 10, 4).csrrw(0, 0x141, 10).sret();
  m.ram.write(h.origin, h.bytesOut());
  a.li(5, (8n << 60n) | BigInt(root / 4096)).csrrw(0, 0x180, 5).sfenceVma().li(9, HANDLER).csrrw(0, 0x105, 9);
  a.li(5, 0).li(8, 0).li(6, ITERATIONS).li(7, FENCED).li(1, RAM_BASE).jalr(0, 1, 0);
  m.ram.write(a.origin, a.bytesOut());
  m.hart.setPc(a.origin);
  m.hart.run(a.bytesOut().length / 4);
}

const seconds = Number(process.argv.find((a, i) => i >= 2 && /^[0-9.]+$/.test(a)) ?? 1.5);
for (const [name, [sys, retires]] of Object.entries(CASES)) {
  const m = makeMachine(8 << 20, { jit: true });
  load(m, program(sys));
  enterSv39(m);
  const runFor = (ms: number): { n: number; ms: number } => {
    const t0 = performance.now();
    let n = 0;
    while (performance.now() - t0 < ms) n += m.hart.run(1_000_000);
    return { n, ms: performance.now() - t0 };
  };
  runFor(500); // compiled, and V8's optimizing tiers done
  const { n, ms } = runFor(seconds * 1000);
  const perIteration = (ms * 1e6) / (n / (LOOP_INSNS + retires));
  const s = m.hart.jitCache!.stats;
  console.log(`${name.padEnd(24)} ${perIteration.toFixed(1).padStart(7)} ns an iteration; hand-backs ${s.handBacks}, missed entries ${s.missedEntries}`);
}
