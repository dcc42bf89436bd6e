// Compiled code's data TLB fill (HartMemory.jitFill) against the interpreter, in lockstep: loads and
// stores that miss after sfence.vma are filled without leaving compiled code, a page fault found
// on such a fill is raised by the interpreter only (once, with the state it would have), and a
// store to a page with code goes to the interpreter, which runs the instruction it wrote next.
import { test } from "node:test";
import assert from "node:assert/strict";
import { GuestRam } from "../../seams/guest_ram.js";
import { Bus } from "../../machine/bus.js";
import { Hart } from "../hart.js";
import { Asm } from "../testing/asm.js";
import * as K from "../constants.js";
import { BlockCache } from "./block_cache.js";

const RAM_BASE = 0x8000_0000;
const ROOT = RAM_BASE + 0x1000, S_PROGRAM = RAM_BASE + 0x2000, HANDLER = RAM_BASE + 0x3000, DATA = RAM_BASE + 0x10_0000;
const UNMAPPED = 0x4000_0000; // root entry 1 is invalid: a load page fault
const ITERATIONS = 40;
const T0 = 5, T1 = 6, T2 = 7, S0 = 8, S2 = 18, S7 = 23, S8 = 24, S9 = 25, S3 = 19, S4 = 20, S5 = 21, S6 = 22, A0 = 10, A1 = 11, A2 = 12;
const ADDI = (rd: number, rs1: number, imm: number): number => ((imm & 0xfff) << 20) | (rs1 << 15) | (rd << 7) | 0x13;

function machine(jit: boolean): Hart {
  const ram = new GuestRam(RAM_BASE, 2 << 20);
  const hart = new Hart({ hartId: 0, ram, vcpuDevices: new Bus(), time: { frequency: 10_000_000, now: () => 0 }, stateBlock: true });
  if (jit) hart.useJit(new BlockCache(ram, { threshold: 1 }));
  // Sv39: RAM identity-mapped by one gigapage; nothing else.
  const pte = (BigInt(RAM_BASE / 4096) << 10n) | 0xcfn; // V R W X A D
  ram.writeU32(ROOT + 2 * 8, Number(pte & 0xffffffffn));
  ram.writeU32(ROOT + 2 * 8 + 4, Number(pte >> 32n));
  const m = new Asm(RAM_BASE);
  m.li(T0, (8n << 60n) | BigInt(ROOT / 4096)).csrrw(0, K.CSR_SATP, T0);
  m.li(T0, (1 << 13) | (1 << 15)).csrrs(0, K.CSR_MEDELEG, T0); // load and store page faults to S
  m.li(T0, K.MSTATUS_MPP).csrrc(0, K.CSR_MSTATUS, T0);
  m.li(T0, (1 << K.MSTATUS_MPP_SHIFT) | K.MSTATUS_SIE).csrrs(0, K.CSR_MSTATUS, T0); // into S-mode with SIE set
  m.li(T0, S_PROGRAM).csrrw(0, K.CSR_MEPC, T0).mret();
  // Assembled twice: the first pass finds where the patched instruction lands.
  const program = (patchAddr: number): { s: Asm; patchedAt: number } => {
    const s = new Asm(S_PROGRAM);
    s.li(T0, HANDLER).csrrw(0, K.CSR_STVEC, T0);
    s.li(S0, ITERATIONS).li(S2, DATA).li(S7, DATA + 4096).li(S8, DATA + 8192).li(S9, DATA + 12288).li(S3, UNMAPPED).li(S4, 0).li(S6, 0).li(T2, ADDI(S6, S6, 2)).li(S5, patchAddr);
    s.label("loop");
    s.sfenceVma(); // every entry goes: the accesses below miss
    s.jal(0, "filled"); // (the interpreter, which ran the fence, stops at a jump: compiled code goes on)
    s.label("filled");
    s.ld(A0, S2, 0).ld(A1, S7, 8).ld(A2, S8, 16).sd(A0, S9, 24); // four pages: filled inside compiled code
    s.ld(T1, S3, 0); // a page fault: the handler counts it and skips it
    s.addi(S0, S0, -1).bne(S0, 0, "loop");
    s.sw(T2, S5, 0); // patches the next instruction (this page has code)
    const patchedAt = s.here;
    s.addi(S6, S6, 1); // runs as addi s6, s6, 2
    s.label("done").jal(0, "done");
    return { s, patchedAt };
  };
  const { patchedAt } = program(S_PROGRAM + 0x100);
  const { s, patchedAt: again } = program(patchedAt);
  assert.equal(again, patchedAt);
  const h = new Asm(HANDLER);
  h.addi(S4, S4, 1).csrrs(T0, K.CSR_SEPC, 0).addi(T0, T0, 4).csrrw(0, K.CSR_SEPC, T0).sret();
  ram.write(m.origin, m.bytesOut());
  ram.write(s.origin, s.bytesOut());
  ram.write(h.origin, h.bytesOut());
  hart.setPc(RAM_BASE);
  return hart;
}

test("compiled code fills data TLB entries itself, leaves faults and stores to code to the interpreter, in lockstep with it", () => {
  const interp = machine(false), jit = machine(true);
  const budgets = [1, 3, 7, 64, 100, 500];
  for (let i = 0; i < 600; i++) {
    const b = budgets[i % budgets.length]!;
    const ni = interp.run(b), nj = jit.run(b);
    assert.equal(nj, ni, `run ${i} (budget ${b}): instructions retired`);
    assert.equal(jit.getPc(), interp.getPc(), `run ${i}: pc`);
    for (let r = 1; r < 32; r++) assert.equal(jit.getX(r), interp.getX(r), `run ${i}: x${r}`);
    for (const c of [K.CSR_SSTATUS, K.CSR_SCAUSE, K.CSR_STVAL, K.CSR_SEPC]) assert.equal(jit.readCsr(c), interp.readCsr(c), `run ${i}: CSR 0x${c.toString(16)}`);
  }
  assert.equal(interp.getX(S0), 0n, "every round ran");
  assert.equal(interp.getX(S4), BigInt(ITERATIONS), "one page fault a round");
  assert.equal(interp.getX(S6), 2n, "the patched instruction ran as written");
  const stats = jit.jitCache!.stats;
  assert.ok(stats.instructionsCompiled > ITERATIONS * 4, `the rounds ran compiled (${stats.instructionsCompiled} instructions)`);
  // Each round: sfence.vma and the fault go to the interpreter; the four misses do not (with them, 6 a round).
  assert.ok(stats.handBacks < ITERATIONS * 3, `${stats.handBacks} hand-backs in ${ITERATIONS} rounds`);
});
