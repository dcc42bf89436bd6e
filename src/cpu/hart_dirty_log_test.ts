// The dirty log from the vCPU store path: a write-TLB fill marks the page, so a store through an
// entry filled before a take is not seen again until the TLB is flushed (vm/live_copy.ts does).
import { test } from "node:test";
import assert from "node:assert/strict";
import { Asm } from "./testing/asm.js";
import { makeMachine, load, runTo, RAM_BASE } from "./testing/machine.js";

const DATA = RAM_BASE + 0x10_0000;
const page = (addr: number): number => (addr - RAM_BASE) / 4096;

test("stores mark their pages through the write-TLB fill; a flush makes the next store mark again", () => {
  const m = makeMachine();
  const a = new Asm(RAM_BASE);
  a.li(20, DATA).li(21, DATA + 3 * 4096).li(1, 0x1234);
  a.sd(1, 20, 0).sw(1, 21, 4);
  const first = a.here;
  a.sd(1, 20, 8);
  const second = a.here;
  a.sb(1, 20, 16).store(1, 1, 21, 2);
  const end = a.here;
  load(m, a);
  m.ram.takeDirtyPages();
  runTo(m, first);
  assert.deepEqual([...m.ram.takeDirtyPages()], [page(DATA), page(DATA + 3 * 4096)]);
  runTo(m, second);
  assert.deepEqual([...m.ram.takeDirtyPages()], [], "a store through a filled entry marks nothing");
  m.hart.flushTlb();
  runTo(m, end);
  assert.deepEqual([...m.ram.takeDirtyPages()], [page(DATA), page(DATA + 3 * 4096)], "after the flush both pages are marked again");
});
