// The sstatus accesses the JIT compiles (the kernel's interrupt save, disable and restore) against
// the interpreter, in lockstep: the value read (SD when FS is dirty), the bits written, and the
// interrupt a write enables, which both must take right after that instruction.
import { test } from "node:test";
import assert from "node:assert/strict";
import { GuestRam } from "../../seams/guest_ram.js";
import { Bus } from "../../machine/bus.js";
import { Hart } from "../hart.js";
import { Asm } from "../testing/asm.js";
import * as K from "../constants.js";
import { BlockCache } from "./block_cache.js";

const RAM_BASE = 0x8000_0000;
const S_PROGRAM = RAM_BASE + 0x2000, HANDLER = RAM_BASE + 0x3000;
const ITERATIONS = 50;
const T0 = 5, S0 = 8, S1 = 9, A0 = 10, A1 = 11, A2 = 12;

function machine(jit: boolean): Hart {
  const ram = new GuestRam(RAM_BASE, 1 << 20);
  const hart = new Hart({ hartId: 0, ram, vcpuDevices: new Bus(), time: { frequency: 10_000_000, now: () => 0 }, stateBlock: true });
  if (jit) hart.useJit(new BlockCache(ram, { threshold: 1 }));
  // M-mode: delegate SSIP, FS dirty, into S-mode at S_PROGRAM.
  const m = new Asm(RAM_BASE);
  m.li(T0, K.MIP_SSIP).csrrs(0, K.CSR_MIDELEG, T0);
  m.li(T0, K.MSTATUS_FS | (1 << 11)).csrrs(0, K.CSR_MSTATUS, T0);
  m.li(T0, S_PROGRAM).csrrw(0, K.CSR_MEPC, T0).mret();
  // S-mode: each round reads sstatus, disables interrupts, raises SSIP, and enables them again (the trap comes there).
  const s = new Asm(S_PROGRAM);
  s.li(T0, HANDLER).csrrw(0, K.CSR_STVEC, T0);
  s.li(T0, K.MIP_SSIP).csrrs(0, K.CSR_SIE, T0);
  s.li(S0, ITERATIONS).li(S1, 0);
  s.label("loop");
  s.csrrs(A0, K.CSR_SSTATUS, 0).csrrci(0, K.CSR_SSTATUS, 2).csrrsi(0, K.CSR_SIP, 2).addi(S0, S0, -1);
  s.csrrsi(A1, K.CSR_SSTATUS, 2).bne(S0, 0, "loop");
  s.label("done").jal(0, "done");
  const h = new Asm(HANDLER);
  h.csrrci(0, K.CSR_SIP, 2).addi(S1, S1, 1).csrrs(A2, K.CSR_SEPC, 0).sret();
  for (const a of [m, s, h]) ram.write(a.origin, a.bytesOut());
  hart.setPc(RAM_BASE);
  return hart;
}

test("compiled sstatus reads and writes match the interpreter step for step, and the interrupt a write enables is taken right after it", () => {
  const interp = machine(false), jit = machine(true);
  const budgets = [1, 2, 3, 5, 7, 11, 64, 100];
  for (let i = 0; i < 2000; i++) {
    const b = budgets[i % budgets.length]!;
    const ni = interp.run(b), nj = jit.run(b);
    assert.equal(nj, ni, `run ${i} (budget ${b}): instructions retired`);
    assert.equal(jit.getPc(), interp.getPc(), `run ${i}: pc`);
    for (let r = 1; r < 32; r++) assert.equal(jit.getX(r), interp.getX(r), `run ${i}: x${r}`);
    assert.equal(jit.readCsr(K.CSR_SSTATUS), interp.readCsr(K.CSR_SSTATUS), `run ${i}: sstatus`);
  }
  assert.equal(interp.getX(S1), BigInt(ITERATIONS), "one interrupt per round");
  assert.ok(interp.getX(A0) < 0n, "sstatus.SD (bit 63) read as set: FS is dirty");
  const stats = jit.jitCache!.stats;
  assert.ok(stats.instructionsCompiled > ITERATIONS * 4, `the rounds ran compiled (${stats.instructionsCompiled} instructions)`);
});
