// Self-modifying code and DMA under the JIT: compiled code must never run after the guest memory
// it was compiled from changed — by the hart's own stores (with or without fence.i, which the
// interpreter does not need either) or by a device writing guest RAM (virtio DMA goes through
// GuestRam's accessors).
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import assert from "node:assert/strict";
import { GuestRam } from "../../seams/guest_ram.js";
import { Bus } from "../../machine/bus.js";
import { Hart } from "../hart.js";
import { Asm } from "../testing/asm.js";
import { encI } from "../encode.js";
import { BlockCache } from "./block_cache.js";

const RAM_BASE = 0x8000_0000;

function jitMachine(background = false): { hart: Hart; ram: GuestRam; cache: BlockCache } {
  const ram = new GuestRam(RAM_BASE, 1 << 20);
  const hart = new Hart({ hartId: 0, ram, vcpuDevices: new Bus(), time: { frequency: 10_000_000, now: () => 0 }, stateBlock: true });
  const cache = new BlockCache(ram, { threshold: 2, background });
  hart.useJit(cache);
  return { hart, ram, cache };
}

function runUntil(hart: Hart, pc: number, max = 5_000_000): void {
  let n = 0;
  while (hart.getPc() !== pc && n < max) n += hart.run(1000) || 1;
  assert.equal(hart.getPc(), pc, `the program did not reach 0x${pc.toString(16)} in ${max} instructions`);
}

/** Three rounds of a 1000-iteration loop adding 1 to x10; after each round the program rewrites that add to add 100. */
function selfPatchingProgram(fenceI: boolean): { asm: Asm; done: number } {
  const a = new Asm(RAM_BASE);
  const patched = encI(0x13, 10, 0, 10, 100); // addi x10, x10, 100
  a.li(10, 0).li(12, 3).li(14, patched);
  a.label("outer").li(11, 1000);
  a.label("loop");
  const patchAt = a.origin + a.bytesOut().length;
  a.addi(10, 10, 1).addi(11, 11, -1).bne(11, 0, "loop");
  a.li(13, patchAt).sw(14, 13, 0);
  if (fenceI) a.fenceI();
  a.addi(12, 12, -1).bne(12, 0, "outer");
  const done = a.origin + a.bytesOut().length;
  a.label("done").jal(0, "done");
  return { asm: a, done };
}

for (const fenceI of [true, false]) {
  test(`a program that rewrites its own compiled hot loop runs the new code (${fenceI ? "with" : "without"} fence.i)`, () => {
    const { hart, ram, cache } = jitMachine();
    const { asm, done } = selfPatchingProgram(fenceI);
    ram.write(asm.origin, asm.bytesOut());
    hart.setPc(asm.origin);
    runUntil(hart, done);
    assert.equal(hart.getX(10), 1000n + 2n * 1000n * 100n, "x10 after one round of +1 and two of +100");
    assert.ok(cache.stats.instructionsCompiled > 3000, `the loop ran compiled (${cache.stats.instructionsCompiled} instructions)`);
    assert.ok(cache.stats.invalidations >= 1, "the store dropped the page's code");
  });
}

/** A device writes `addi x10, x10, 7` at `at` (GuestRam's accessor, as virtio DMA does); the program runs again from `start` with x10 = 0. */
function deviceWritesAddi7AndReruns(hart: Hart, ram: GuestRam, at: number, start: number, done: number): void {
  const insn = new Uint8Array(4);
  new DataView(insn.buffer).setUint32(0, encI(0x13, 10, 0, 10, 7), true);
  ram.write(at, insn);
  hart.setX(10, 0n);
  hart.setPc(start);
  runUntil(hart, done);
}

test("code a device writes over compiled code (DMA) runs instead of the stale compilation", () => {
  const { hart, ram, cache } = jitMachine();
  const a = new Asm(RAM_BASE);
  a.li(10, 0).li(11, 5000);
  a.label("loop");
  const addAt = a.origin + a.bytesOut().length;
  a.addi(10, 10, 1).addi(11, 11, -1).bne(11, 0, "loop");
  const done = a.origin + a.bytesOut().length;
  a.label("done").jal(0, "done");
  ram.write(a.origin, a.bytesOut());
  hart.setPc(a.origin);
  runUntil(hart, done);
  assert.equal(hart.getX(10), 5000n);
  const compiledBefore = cache.stats.instructionsCompiled;
  assert.ok(compiledBefore > 4000, `the loop ran compiled (${compiledBefore} instructions)`);
  // A device (virtio-blk completing a read) writes new code over the loop's add.
  deviceWritesAddi7AndReruns(hart, ram, addAt, a.origin, done);
  assert.equal(hart.getX(10), 35000n, "5000 iterations of the new add");
  assert.ok(cache.stats.invalidations >= 1, "the device write dropped the page's code");
  assert.ok(cache.stats.instructionsCompiled > compiledBefore + 4000, "the new code was compiled and ran compiled too");
});

test("a device write over a function compiled code reaches by an indirect call (the jump cache) runs the new code", () => {
  const { hart, ram, cache } = jitMachine();
  // The loop calls through x5 (jalr: `go`, which caches where the function's block is) a function in another page.
  const fnAt = RAM_BASE + 0x3000;
  const a = new Asm(RAM_BASE);
  a.li(10, 0).li(11, 5000).li(5, fnAt);
  a.label("loop").jalr(1, 5, 0).addi(11, 11, -1).bne(11, 0, "loop");
  const done = a.origin + a.bytesOut().length;
  a.label("done").jal(0, "done");
  const fn = new Asm(fnAt);
  fn.addi(10, 10, 1).jalr(0, 1, 0);
  ram.write(a.origin, a.bytesOut());
  ram.write(fn.origin, fn.bytesOut());
  hart.setPc(a.origin);
  runUntil(hart, done);
  assert.equal(hart.getX(10), 5000n);
  assert.ok(cache.stats.instructionsCompiled > 10_000, `the calls ran compiled (${cache.stats.instructionsCompiled} instructions)`);
  deviceWritesAddi7AndReruns(hart, ram, fnAt, a.origin, done);
  assert.equal(hart.getX(10), 35000n, "5000 calls of the new function");
});

/** A counting loop of `iterations` adds to x10, then `done: j done`. */
function countingLoop(iterations: number): { asm: Asm; addAt: number; done: number } {
  const a = new Asm(RAM_BASE);
  a.li(10, 0).li(11, iterations);
  a.label("loop");
  const addAt = a.origin + a.bytesOut().length;
  a.addi(10, 10, 1).addi(11, 11, -1).bne(11, 0, "loop");
  const done = a.origin + a.bytesOut().length;
  a.label("done").jal(0, "done");
  return { asm: a, addAt, done };
}

/** Waits (the event loop turning) until `cond` holds, for at most 30 s (the compile thread starts under tsx). */
async function until(cond: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 30_000;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting until ${what}`);
    await sleep(2);
  }
}

test("background compiles: the interpreter goes on while a page compiles on the compile thread, then its code runs", async () => {
  const { hart, ram, cache } = jitMachine(true);
  try {
    const { asm, done } = countingLoop(2_000_000);
    ram.write(asm.origin, asm.bytesOut());
    hart.setPc(asm.origin);
    await until(() => { hart.run(1000); return cache.stats.blocks > 0; }, "the loop's page has code");
    assert.ok(hart.getPc() !== done, "the loop was still running when its code arrived");
    runUntil(hart, done, 10_000_000);
    assert.equal(hart.getX(10), 2_000_000n);
    assert.ok(cache.stats.instructionsCompiled > 1_000_000, `most of the loop ran compiled (${cache.stats.instructionsCompiled} instructions)`);
  } finally {
    cache.close();
  }
});

test("background compiles: code compiled from bytes a device overwrote meanwhile is dropped on arrival, never run", async () => {
  const { hart, ram, cache } = jitMachine(true);
  try {
    const { asm, addAt, done } = countingLoop(5000);
    ram.write(asm.origin, asm.bytesOut());
    hart.setPc(asm.origin);
    while (cache.pendingCompiles === 0 && hart.getPc() !== done) hart.run(1);
    assert.equal(cache.pendingCompiles, 1, "the loop's page was sent to the compile thread");
    // While it compiles, a device writes new code over the loop's add: addi x10, x10, 7.
    const insn = new Uint8Array(4);
    new DataView(insn.buffer).setUint32(0, encI(0x13, 10, 0, 10, 7), true);
    ram.write(addAt, insn);
    await until(() => { cache.poll(); return cache.pendingCompiles === 0; }, "the compile thread replied");
    assert.equal(cache.stats.staleCompiles, 1, "the reply was dropped as stale");
    assert.equal(cache.stats.blocks, 0, "no code of the old bytes was installed");
    hart.setX(10, 0n);
    hart.setX(11, 5000n);
    hart.setPc(addAt); // the loop's head
    runUntil(hart, done);
    assert.equal(hart.getX(10), 35000n, "5000 iterations of the new add");
  } finally {
    cache.close();
  }
});

test("an instruction across a page end runs compiled, and a store to its upper half (in the next page) takes effect", () => {
  const { hart, ram, cache } = jitMachine();
  const rounds = 2, iterations = 3000;
  const a = new Asm(RAM_BASE);
  a.li(10, 0).li(12, rounds).li(13, RAM_BASE + 0x1000).li(14, encI(0x13, 10, 0, 10, 100) >>> 16);
  a.label("outer").li(11, iterations).jal(0, "loop");
  while (a.here < RAM_BASE + 0xff4) a.addi(0, 0, 0);
  a.half(0x0001); // c.nop: the loop starts at 0xff6
  a.label("loop").addi(11, 11, -1).addi(0, 0, 0);
  assert.equal(a.here, RAM_BASE + 0xffe);
  a.addi(10, 10, 1); // 0xffe-0x1001: its upper half is the first halfword of the next page
  a.bne(11, 0, "loop");
  a.store(1, 14, 13, 0); // sh: the add becomes addi x10, x10, 100
  a.addi(12, 12, -1).beq(12, 0, "done").jal(0, "outer");
  const done = a.here;
  a.label("done").jal(0, "done");
  ram.write(a.origin, a.bytesOut());
  hart.setPc(a.origin);
  runUntil(hart, done);
  assert.equal(hart.getX(10), BigInt(iterations * 1 + iterations * 100), "one round of +1, one of +100");
  assert.ok(cache.stats.instructionsCompiled > 0.8 * rounds * iterations * 4, `the loop ran compiled, across the page end (${cache.stats.instructionsCompiled} instructions compiled, ${cache.stats.missedEntries} missed entries)`);
});

test("background compiles: pages waiting together share one module, each page's code runs, and a page written meanwhile is left out", async () => {
  const { hart, ram, cache } = jitMachine(true);
  try {
    // A caller in page 0 calls a function in each of pages 1-3 (x10 += 1, 10, 100) 3,000 times.
    const fns = [1, 2, 3].map((k) => RAM_BASE + k * 0x1000);
    const a = new Asm(RAM_BASE);
    a.li(10, 0).li(11, 3000);
    a.label("loop");
    for (const at of fns) a.li(5, at).jalr(1, 5, 0);
    a.addi(11, 11, -1).bne(11, 0, "loop");
    const done = a.origin + a.bytesOut().length;
    a.label("done").jal(0, "done");
    ram.write(a.origin, a.bytesOut());
    fns.forEach((at, i) => {
      const f = new Asm(at);
      f.addi(10, 10, 10 ** i).jalr(0, 1, 0);
      ram.write(f.origin, f.bytesOut());
    });
    // All three asked for at once, before the compile thread has started: it finds them waiting together.
    for (const p of [1, 2, 3]) {
      const info = cache.page(p);
      info.entries.add(0);
      assert.equal(cache.compilePage(p, info), false, "compiled in the background");
    }
    // Page 3 is written (the same bytes) while its compile waits: its part of the module must not be installed.
    ram.write(fns[2]!, ram.read(fns[2]!, 8));
    await until(() => { cache.poll(); return cache.pendingCompiles === 0; }, "the compile thread replied");
    assert.equal(cache.stats.compiledTotal, 1, "one module for the pages that waited together");
    assert.equal(cache.stats.staleCompiles, 1, "the written page's part was dropped");
    assert.ok(cache.page(1).blocks !== null && cache.page(2).blocks !== null && cache.page(3).blocks === null);
    hart.setPc(a.origin);
    runUntil(hart, done);
    assert.equal(hart.getX(10), 3000n * 111n);
  } finally {
    cache.close();
  }
});
