// A compile leaves out branch and jump targets the interpreter never went to: the interpreter marks
// where its taken transfers land (the taken-transfer map), and planBlocks follows only those. In a
// boot without a profile ~40% of the blocks compiled before never ran once.
import { test } from "node:test";
import assert from "node:assert/strict";
import { GuestRam } from "../../seams/guest_ram.js";
import { Bus } from "../../machine/bus.js";
import { Hart } from "../hart.js";
import { Asm } from "../testing/asm.js";
import { BlockCache } from "./block_cache.js";
import { MAX_BLOCK, TAKEN_MAP_BYTES, noteTaken, planBlocks, takenBefore } from "./block_scan.js";

const RAM_BASE = 0x8000_0000;

// A block from 0 with a side exit to 12 (after its ret), and at 12 a call whose return site is 16.
const sideExit = (): Asm => new Asm(0)
  .beq(5, 6, "out") // 0: leaves the block when taken
  .addi(7, 7, 1) // 4
  .jalr(0, 1, 0) // 8: ends the block
  .label("out")
  .jal(1, 0x2000) // 12: out of the page
  .addi(8, 8, 1) // 16: the call's return site
  .jalr(0, 1, 0); // 20

function page(asm: Asm): Uint16Array {
  const u8 = new Uint8Array(4096);
  u8.set(asm.bytesOut());
  return new Uint16Array(u8.buffer);
}

test("planBlocks compiles a branch target only where the interpreter took a transfer to it", () => {
  const code = page(sideExit());
  assert.deepEqual(planBlocks(code, 0, [0], null, MAX_BLOCK).map((s) => s.start), [0, 12, 16], "without a map: every target");
  const taken = new Uint8Array(TAKEN_MAP_BYTES);
  assert.deepEqual(planBlocks(code, 0, [0], null, MAX_BLOCK, undefined, undefined, taken).map((s) => s.start), [0], "12 never gone to: left out");
  noteTaken(taken, 12 >>> 1);
  assert.equal(takenBefore(taken, 12), true);
  assert.equal(takenBefore(taken, 16), false);
  assert.deepEqual(planBlocks(code, 0, [0], null, MAX_BLOCK, undefined, undefined, taken).map((s) => s.start), [0, 12, 16], "12 gone to: compiled, and the return site of its call");
  const entries = planBlocks(code, 0, [0, 16], null, MAX_BLOCK, undefined, undefined, new Uint8Array(TAKEN_MAP_BYTES)).map((s) => s.start);
  assert.deepEqual(entries, [0, 16], "an entry the interpreter ran from is compiled whatever the map says");
});

/** Runs a loop whose never-taken branch leaves the loop's block until the page is compiled; the page's compiled block starts. */
function compiledStarts(takenTargetsOnly: boolean): { starts: number[]; cold: number; loop: number; taken: Uint8Array; x10: bigint } {
  const ram = new GuestRam(RAM_BASE, 1 << 20);
  const hart = new Hart({ hartId: 0, ram, vcpuDevices: new Bus(), time: { frequency: 10_000_000, now: () => 0 }, stateBlock: true });
  const cache = new BlockCache(ram, { threshold: 4, background: false, takenTargetsOnly });
  hart.useJit(cache);
  const a = new Asm(RAM_BASE);
  a.li(10, 0).li(11, 0);
  const loop = a.here - RAM_BASE;
  a.label("loop")
    .addi(10, 10, 1)
    .beq(10, 11, "cold") // never taken: x11 stays 0
    .jal(0, "loop"); // ends the block; back to the loop
  const cold = a.here - RAM_BASE;
  a.label("cold")
    .addi(12, 12, 1)
    .jal(0, "loop");
  ram.write(a.origin, a.bytesOut());
  hart.setPc(a.origin);
  for (let i = 0; i < 200 && cache.stats.blocks === 0; i++) hart.run(64);
  hart.run(1000); // on in compiled code
  const info = cache.page(0);
  return { starts: [...(info.blocks?.keys() ?? [])].sort((x, y) => x - y), cold, loop, taken: cache.taken, x10: hart.getX(10) };
}

test("the interpreter marks where its branches and jumps went, and the page's compile leaves out the branch never taken", () => {
  const on = compiledStarts(true);
  assert.equal(takenBefore(on.taken, on.loop), true, "the jal back to the loop was taken");
  assert.equal(takenBefore(on.taken, on.cold), false, "the beq to cold never was");
  assert.ok(on.starts.length > 0, "the page compiled");
  assert.ok(!on.starts.includes(on.cold), `no block at cold (${on.cold}): blocks at ${on.starts.join(",")}`);
  const off = compiledStarts(false);
  assert.ok(off.starts.includes(off.cold), `without the map cold (${off.cold}) is compiled: blocks at ${off.starts.join(",")}`);
  assert.equal(on.x10, off.x10, "both ran the same instructions");
});
