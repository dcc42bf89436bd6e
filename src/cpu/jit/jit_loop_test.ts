// Loops inside one compiled block (a branch back into its own block is a wasm `loop`, not a call
// per iteration) and the translations a block reuses between accesses from one base register:
// the same program runs on a JIT hart and on an interpreter-only hart, in slices of every size from
// 1 to 97 instructions so that the budget runs out at every point of the loop, and registers, pc,
// instret, trap CSRs and RAM must match after every slice.
import { test } from "node:test";
import assert from "node:assert/strict";
import { GuestRam } from "../../seams/guest_ram.js";
import { Bus } from "../../machine/bus.js";
import { Hart } from "../hart.js";
import { Asm } from "../testing/asm.js";
import * as K from "../constants.js";
import { EXIT_MMIO } from "../exit.js";
import { dispatchExit } from "../../machine/exit_dispatch.js";
import { BlockCache } from "./block_cache.js";

const RAM_BASE = 0x8000_0000;
const RAM_SIZE = 1 << 20;

interface Machine { hart: Hart; ram: GuestRam; bus: Bus; cache: BlockCache | null }

function machine(jit: boolean): Machine {
  const ram = new GuestRam(RAM_BASE, RAM_SIZE);
  const bus = new Bus();
  const hart = new Hart({ hartId: 0, ram, vcpuDevices: bus, time: { frequency: 10_000_000, now: () => 0 }, stateBlock: true });
  const cache = jit ? new BlockCache(ram, { threshold: 2, background: false }) : null;
  if (cache) hart.useJit(cache);
  return { hart, ram, bus, cache };
}

/** One slice; an access past RAM is an MMIO exit, which the empty bus faults. */
function slice(m: Machine, n: number): number {
  const k = m.hart.run(n);
  if (m.hart.exit.reason === EXIT_MMIO) dispatchExit(m.hart, { bus: m.bus });
  return k;
}

/**
 * A fill-and-sum loop whose head is mid-block (after a store from its base register), a count-down loop that is a whole
 * block by itself, and a copy loop that runs off the end of RAM (an access fault mid-loop, taken to
 * mtvec, which ends the program). Stores and loads from one base register a frame apart, one of
 * them across a page end.
 */
function program(): { asm: Asm; done: number } {
  const a = new Asm(RAM_BASE);
  a.li(5, RAM_BASE + 0x1000).csrrw(0, K.CSR_MTVEC, 5);
  // 1: six calls of a fill-and-sum loop: x10 walks a buffer that straddles a page end; x13 sums what was stored
  a.li(13, 0).li(20, 6);
  a.label("outer").jal(1, "fill_sum").addi(20, 20, -1).bne(20, 0, "outer");
  // 2: a tight count-down loop, its own block
  a.li(12, 3000);
  a.label("count").addi(12, 12, -1).addi(16, 16, 3).bne(12, 0, "count");
  // 3: copies doublewords towards the end of RAM until the store faults
  a.li(10, RAM_BASE + 0x3f00).li(17, RAM_BASE + RAM_SIZE - 200);
  a.label("copy").ld(14, 10, 0).addi(10, 10, 8).ld(15, 10, 0).add(14, 14, 15); // x10 moves between two loads from it
  a.sd(14, 17, 0).sd(14, 17, 8).addi(17, 17, 16).jal(0, "copy");
  // the subroutine of 1 (a call target starts a block): a translation from x10 before its loop head
  a.label("fill_sum").li(10, RAM_BASE + 0x3f00).li(11, 80).sd(0, 10, -8);
  a.label("fill");
  a.sd(11, 10, 0).sd(13, 10, 8).ld(14, 10, 0).ld(15, 10, 8).add(13, 13, 14).add(13, 13, 15);
  a.addi(10, 10, 16).addi(11, 11, -1).bne(11, 0, "fill");
  a.jalr(0, 1, 0);
  return { asm: a, done: RAM_BASE + 0x1000 };
}

/** The program, and at mtvec a jump to itself. */
function load(m: Machine, asm: Asm): void {
  m.ram.write(asm.origin, asm.bytesOut());
  const spin = new Asm(RAM_BASE + 0x1000);
  spin.label("done").jal(0, "done");
  m.ram.write(spin.origin, spin.bytesOut());
  m.hart.setPc(asm.origin);
}

/** What differs between the two harts: registers, pc, instret, trap CSRs, and RAM bytes [from, to) (offsets). */
function differences(jit: Hart, interp: Hart, jitRam: GuestRam, interpRam: GuestRam, from = 0, to = RAM_SIZE): string[] {
  const out: string[] = [];
  if (jit.getPc() !== interp.getPc()) out.push(`pc: jit 0x${jit.getPc().toString(16)}, interpreter 0x${interp.getPc().toString(16)}`);
  for (let r = 1; r < 32; r++) if (jit.getX(r) !== interp.getX(r)) out.push(`x${r}: jit 0x${jit.getX(r).toString(16)}, interpreter 0x${interp.getX(r).toString(16)}`);
  if (jit.instret !== interp.instret) out.push(`instret: jit ${jit.instret}, interpreter ${interp.instret}`);
  for (const csr of [K.CSR_MCAUSE, K.CSR_MEPC, K.CSR_MTVAL]) {
    if (jit.readCsr(csr) !== interp.readCsr(csr)) out.push(`CSR 0x${csr.toString(16)}: jit ${jit.readCsr(csr)}, interpreter ${interp.readCsr(csr)}`);
  }
  const a = jitRam.u8, b = interpRam.u8;
  for (let i = from; i < to && out.length < 8; i++) if (a[i] !== b[i]) out.push(`RAM byte 0x${(RAM_BASE + i).toString(16)}: jit ${a[i]}, interpreter ${b[i]}`);
  return out;
}

test("loops inside compiled blocks and reused translations retire exactly what the interpreter does, whatever the budget", () => {
  const { asm, done } = program();
  for (const size of [1, 2, 3, 5, 7, 13, 31, 97]) {
    const jit = machine(true), interp = machine(false);
    load(jit, asm);
    load(interp, asm);
    for (let n = 0; n < 100_000 && jit.hart.getPc() !== done; n++) {
      const a = slice(jit, size), b = slice(interp, size);
      assert.equal(a, b, `slice ${size}, step ${n}: run() retired ${a} on the JIT, ${b} on the interpreter`);
      assert.deepEqual(differences(jit.hart, interp.hart, jit.ram, interp.ram, 0x3e00, 0x4600), [], `slice ${size}, step ${n}`);
    }
    assert.deepEqual(differences(jit.hart, interp.hart, jit.ram, interp.ram), [], `slice ${size}, at the end`);
    assert.equal(jit.hart.getPc(), done, `slice ${size}: the program ran to its fault handler`);
    assert.equal(jit.hart.readCsr(K.CSR_MCAUSE), 7n, "a store access fault ended the copy loop");
    assert.equal(jit.hart.getX(12), 0n);
    assert.equal(jit.hart.getX(16), 9000n);
    if (size >= 31) assert.ok(jit.cache!.stats.instructionsCompiled > 4000, `slice ${size}: the loops ran compiled (${jit.cache!.stats.instructionsCompiled} instructions)`);
  }
});
