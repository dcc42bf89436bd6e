// A page's first compile waits threshold + backlogVisits for each compile still in flight, so that
// pages that turn warm while the compile thread is busy are left to the interpreter; a long run in
// a page counts as more than one visit.
import { test } from "node:test";
import assert from "node:assert/strict";
import { GuestRam } from "../../seams/guest_ram.js";
import { Bus } from "../../machine/bus.js";
import { Hart } from "../hart.js";
import { Asm } from "../testing/asm.js";
import { BlockCache, COLD_INSTRUCTIONS_PER_VISIT_LOG2, COLD_RUN, type BlockCacheOptions } from "./block_cache.js";

const RAM_BASE = 0x8000_0000;

/** A cache that reports `inFlight` background compiles waiting (it compiles on the vCPU thread). */
class BusyCache extends BlockCache {
  constructor(ram: GuestRam, opts: BlockCacheOptions, private readonly waiting: number) {
    super(ram, opts);
  }
  override get pendingCompiles(): number {
    return this.waiting;
  }
}

/** Interpreter visits (runs of `perVisit` instructions) to a looping page before it has code. */
function visitsUntilCompiled(inFlight: number, threshold = 4, perVisit = 1): number {
  const ram = new GuestRam(RAM_BASE, 1 << 20);
  const hart = new Hart({ hartId: 0, ram, vcpuDevices: new Bus(), time: { frequency: 10_000_000, now: () => 0 }, stateBlock: true });
  const cache = new BusyCache(ram, { threshold, backlogVisits: 10, background: false }, inFlight);
  hart.useJit(cache);
  const a = new Asm(RAM_BASE);
  a.li(10, 0).label("loop").addi(10, 10, 1).jal(0, "loop");
  ram.write(a.origin, a.bytesOut());
  hart.setPc(a.origin);
  let visits = 0;
  while (cache.stats.blocks === 0 && visits < 1000) {
    hart.run(perVisit);
    visits++;
  }
  return visits;
}

test("a page's first compile waits backlogVisits longer for each compile in flight", () => {
  const idle = visitsUntilCompiled(0);
  const busy = visitsUntilCompiled(2);
  assert.ok(idle <= 5, `with nothing in flight the page compiles at the threshold (${idle} visits)`);
  assert.equal(busy - idle, 2 * 10, `two compiles in flight add 2 x 10 visits (${idle} -> ${busy})`);
});

test("a run of many instructions in a page without code counts as more than one visit", () => {
  const short = visitsUntilCompiled(0, 64, 1);
  const long = visitsUntilCompiled(0, 64, COLD_RUN); // each run loops inside the page
  const weight = 1 + (COLD_RUN >> COLD_INSTRUCTIONS_PER_VISIT_LOG2);
  assert.ok(short >= 64 && short <= 65, `runs of one instruction: the threshold's 64 visits (${short})`);
  assert.ok(long <= Math.ceil(64 / weight) + 1, `runs of ${COLD_RUN} instructions count ${weight} visits each (${long} runs)`);
});
