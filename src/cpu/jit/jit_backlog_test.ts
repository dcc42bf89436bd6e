// A page's first compile waits threshold + backlogVisits for each compile still in flight, so that
// pages that turn warm while the compile thread is busy are left to the interpreter.
import { test } from "node:test";
import assert from "node:assert/strict";
import { GuestRam } from "../../seams/guest_ram.js";
import { Bus } from "../../machine/bus.js";
import { Hart } from "../hart.js";
import { Asm } from "../testing/asm.js";
import { BlockCache, type BlockCacheOptions } from "./block_cache.js";

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

/** Interpreter visits (runs of one instruction) to a looping page before it has code. */
function visitsUntilCompiled(inFlight: number): number {
  const ram = new GuestRam(RAM_BASE, 1 << 20);
  const hart = new Hart({ hartId: 0, ram, vcpuDevices: new Bus(), time: { frequency: 10_000_000, now: () => 0 }, stateBlock: true });
  const cache = new BusyCache(ram, { threshold: 4, backlogVisits: 10, background: false }, inFlight);
  hart.useJit(cache);
  const a = new Asm(RAM_BASE);
  a.li(10, 0).label("loop").addi(10, 10, 1).jal(0, "loop");
  ram.write(a.origin, a.bytesOut());
  hart.setPc(a.origin);
  let visits = 0;
  while (cache.stats.blocks === 0 && visits < 1000) {
    hart.run(1);
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
