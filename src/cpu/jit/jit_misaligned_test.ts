// Misaligned loads and stores under the JIT: inside one page compiled code does them itself (wasm
// needs no alignment), across a page end it hands them to the interpreter; either way registers,
// memory and the retired count match the interpreter's byte-wise slow path, budget by budget.
import { test } from "node:test";
import assert from "node:assert/strict";
import { GuestRam } from "../../seams/guest_ram.js";
import { Bus } from "../../machine/bus.js";
import { Hart } from "../hart.js";
import { Asm } from "../testing/asm.js";
import { BlockCache } from "./block_cache.js";
import * as K from "../constants.js";

const RAM_BASE = 0x8000_0000;
const DATA = RAM_BASE + 0x10000;
const ITERATIONS = 200;
const S0 = 8, S2 = 18, A0 = 10, A1 = 11, A2 = 12;

/** A loop of loads and stores at `at` (offsets from DATA) of ld/sd, lw/sw and lh/sh. */
function machine(jit: boolean, at: readonly number[]): { hart: Hart; ram: GuestRam } {
  const ram = new GuestRam(RAM_BASE, 1 << 20);
  const hart = new Hart({ hartId: 0, ram, vcpuDevices: new Bus(), time: { frequency: 10_000_000, now: () => 0 }, stateBlock: true });
  if (jit) hart.useJit(new BlockCache(ram, { threshold: 1 }));
  const a = new Asm(RAM_BASE);
  a.li(S2, DATA).li(S0, ITERATIONS);
  a.label("loop");
  a.ld(A0, S2, at[0]!).addi(A0, A0, 0x11).sd(A0, S2, at[0]!);
  a.lw(A1, S2, at[1]!).xori(A1, A1, 0x5a5).sw(A1, S2, at[1]!);
  a.load(1, A2, S2, at[2]!).addi(A2, A2, 3).store(1, A2, S2, at[2]!);
  a.addi(S0, S0, -1).bne(S0, 0, "loop");
  a.label("done").jal(0, "done");
  ram.write(a.origin, a.bytesOut());
  const data = new Uint8Array(64);
  for (let i = 0; i < data.length; i++) data[i] = (i * 37 + 11) & 0xff;
  ram.write(DATA + at[0]! - 8, data);
  hart.setPc(RAM_BASE);
  return { hart, ram };
}

/** Runs both tiers in lockstep, `rounds` runs of the budgets in turn; the JIT's hand-backs, and its instructions run compiled and interpreted. */
function lockstep(at: readonly number[], budgets: readonly number[], rounds: number): { handBacks: number; compiled: number; interpreted: number } {
  const interp = machine(false, at), jit = machine(true, at);
  for (let i = 0; i < rounds; i++) {
    const b = budgets[i % budgets.length]!;
    const ni = interp.hart.run(b), nj = jit.hart.run(b);
    assert.equal(nj, ni, `run ${i} (budget ${b}): instructions retired`);
    assert.equal(jit.hart.getPc(), interp.hart.getPc(), `run ${i}: pc`);
    for (let r = 1; r < 32; r++) assert.equal(jit.hart.getX(r), interp.hart.getX(r), `run ${i}: x${r}`);
  }
  assert.equal(interp.hart.getX(S0), 0n, "the loop ran to its end");
  assert.deepEqual(jit.ram.read(DATA + at[0]! - 8, 64), interp.ram.read(DATA + at[0]! - 8, 64), "memory");
  const s = jit.hart.jitCache!.stats;
  const retired = Number(jit.hart.readCsr(K.CSR_MINSTRET));
  return { handBacks: s.handBacks, compiled: s.instructionsCompiled, interpreted: retired - s.instructionsCompiled };
}

const SMALL_BUDGETS = [1, 2, 3, 5, 7, 11, 64, 100];

test("misaligned loads and stores inside a page match the interpreter at every budget", () => {
  lockstep([3, 13, 21], SMALL_BUDGETS, 600);
});

test("misaligned loads and stores inside a page run compiled, not handed back", () => {
  // Budgets the loop fits in: a hand-back is then a TLB fill or an access compiled code declines.
  const { handBacks, compiled } = lockstep([3, 13, 21], [500], 10);
  assert.ok(compiled > ITERATIONS * 8, `the loop ran compiled (${compiled} instructions)`);
  assert.ok(handBacks < 10, `only the TLB's first fills were handed back (${handBacks} hand-backs)`);
});

test("misaligned accesses across a page end are handed to the interpreter and match it", () => {
  // ld at 0xffd, its last bytes in the next page; lw and lh misaligned inside that page.
  lockstep([0xffd, 0x1009, 0x1011], SMALL_BUDGETS, 600);
  const { handBacks, interpreted } = lockstep([0xffd, 0x1009, 0x1011], [500], 10);
  // Each iteration's ld and sd across the page end run in the interpreter (after a hand-back, it
  // may run on into the next iteration's before compiled code takes over again).
  assert.ok(interpreted >= 2 * ITERATIONS, `the accesses across the page end were interpreted (${interpreted} instructions, ${handBacks} hand-backs)`);
});
