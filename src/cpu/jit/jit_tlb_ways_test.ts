// The software TLB's two ways (cpu/hart_layout.ts): pages whose numbers share their low 11 bits
// take one index; a fill moves the entry it displaces to way 1, where the interpreter's translate()
// and compiled code's translate function find it and swap it back. Both tiers must keep the same
// entries, and a loop over two such pages must not fill (walk) the TLB again on every access.
import { test } from "node:test";
import assert from "node:assert/strict";
import { GuestRam } from "../../seams/guest_ram.js";
import { Bus } from "../../machine/bus.js";
import { Hart } from "../hart.js";
import { Asm } from "../testing/asm.js";
import { BlockCache } from "./block_cache.js";

const RAM_BASE = 0x8000_0000;
const SAME_INDEX = 0x80_0000; // 2,048 pages: the same TLB index
const PAGES = [RAM_BASE + 0x10_000, RAM_BASE + 0x10_000 + SAME_INDEX, RAM_BASE + 0x10_000 + 2 * SAME_INDEX];
const ITERATIONS = 300;
const S0 = 8, S1 = 9, S2 = 18, S3 = 19, S4 = 20, A0 = 10, A1 = 11, A2 = 12;

/** A loop loading and storing in `used` of PAGES each iteration (each from a register of its own). */
function machine(jit: boolean, used: number): Hart {
  const ram = new GuestRam(RAM_BASE, 32 << 20);
  const hart = new Hart({ hartId: 0, ram, vcpuDevices: new Bus(), time: { frequency: 10_000_000, now: () => 0 }, stateBlock: true });
  if (jit) hart.useJit(new BlockCache(ram, { threshold: 1 }));
  const a = new Asm(RAM_BASE);
  const bases = [S2, S3, S4];
  for (let i = 0; i < 3; i++) a.li(bases[i]!, PAGES[i]! + 8 * i);
  a.li(S0, ITERATIONS).li(S1, 0);
  a.label("loop");
  for (let i = 0; i < used; i++) a.ld(A0, bases[i]!, 0).add(S1, S1, A0).addi(A1, S1, i + 1).sd(A1, bases[i]!, 0);
  a.lw(A2, S2, 64).addi(A2, A2, 1).sw(A2, S2, 64);
  a.addi(S0, S0, -1).bne(S0, 0, "loop");
  a.label("done").jal(0, "done");
  ram.write(a.origin, a.bytesOut());
  hart.setPc(RAM_BASE);
  return hart;
}

/** Runs both tiers in lockstep over `budgets` in turn; the TLB fills of each. */
function lockstep(used: number, budgets: readonly number[], rounds: number): { interp: number; jit: number } {
  const interp = machine(false, used), jit = machine(true, used);
  for (let i = 0; i < rounds; i++) {
    const b = budgets[i % budgets.length]!;
    assert.equal(jit.run(b), interp.run(b), `run ${i} (budget ${b}): instructions retired`);
    assert.equal(jit.getPc(), interp.getPc(), `run ${i}: pc`);
    for (let r = 1; r < 32; r++) assert.equal(jit.getX(r), interp.getX(r), `run ${i}: x${r}`);
  }
  assert.equal(interp.getX(S0), 0n, "the loop ran to its end");
  assert.ok(jit.jitCache!.stats.instructionsCompiled > ITERATIONS * 10, "the loop ran compiled");
  return { interp: interp.tlbFills, jit: jit.tlbFills };
}

test("two pages at one TLB index: both tiers agree at every budget, and neither fills the TLB again each iteration", () => {
  const small = lockstep(2, [1, 2, 3, 5, 7, 11, 64, 100], 900);
  const { interp, jit } = lockstep(2, [1000], 10);
  for (const [tier, fills] of [["interpreter", interp], ["JIT", jit], ["JIT, small budgets", small.jit]] as const) {
    assert.ok(fills < 10, `${tier}: only the first fills (${fills} over ${ITERATIONS} iterations)`);
  }
});

test("three pages at one TLB index: entries leave way 1 the same way under both tiers", () => {
  lockstep(3, [1, 2, 3, 5, 7, 11, 64, 100], 1200);
  const { interp, jit } = lockstep(3, [1000], 10);
  assert.ok(interp >= ITERATIONS && jit >= ITERATIONS, `a third page at the index fills each iteration (${interp}, ${jit})`);
});
