import assert from "node:assert/strict";
import { test } from "node:test";
import { GuestRam } from "../../seams/guest_ram.js";
import { DESC_F_NEXT, DESC_F_WRITE } from "./constants.js";
import { gather, scatter, splitSegments } from "./descriptor_chain.js";
import { Virtqueue, VirtqueueError } from "./virtqueue.js";
import { DriverQueue, GuestHeap } from "./testing/fake_driver.js";

function setup(size = 4) {
  const ram = new GuestRam(0x8000_0000, 1 << 16);
  const heap = new GuestHeap(ram);
  const drv = new DriverQueue(ram, heap, 0, size);
  const q = new Virtqueue(ram, 0, size);
  q.descAddr = drv.desc;
  q.driverAddr = drv.avail;
  q.deviceAddr = drv.used;
  assert.equal(q.validate(), null);
  q.start();
  q.ready = true;
  return { ram, heap, drv, q };
}

test("indices wrap around at 2^16 on both rings", () => {
  const { heap, drv, q, ram } = setup(4);
  const start = 0xfffe;
  q.restore({ ...q.save(), nextAvail: start, nextUsed: start, signalledUsed: start });
  drv.setAvailIdx(start);
  ram.writeU16(drv.used + 2, start);
  drv.lastUsed = start;
  const buf = heap.alloc(8);
  for (let i = 0; i < 4; i++) {
    const head = drv.build([{ addr: buf, len: 8, write: true }]);
    drv.publish(head);
    const c = q.pop();
    assert.ok(c !== null);
    assert.equal(c.head, head);
    q.pushUsed(c.head, i);
  }
  assert.equal(q.pop(), null);
  assert.equal(drv.usedIdx(), 2);
  assert.deepEqual(drv.takeUsed().map((u) => u.len), [0, 1, 2, 3]);
});

test("a chain of exactly the queue size is accepted, one more is a loop", () => {
  const { heap, drv, q } = setup(4);
  const buf = heap.alloc(8);
  for (let i = 0; i < 4; i++) drv.writeDesc(drv.desc, i, buf, 2, DESC_F_WRITE | (i < 3 ? DESC_F_NEXT : 0), i + 1);
  drv.publish(0);
  const c = q.pop()!;
  assert.equal(c.writable.length, 4);
  assert.equal(c.writableBytes, 8);
  drv.writeDesc(drv.desc, 3, buf, 2, DESC_F_WRITE | DESC_F_NEXT, 0);
  drv.publish(0);
  assert.throws(() => q.pop(), VirtqueueError);
});

test("validate refuses bad sizes and misaligned rings", () => {
  const { q } = setup(4);
  q.size = 8; // above the maximum
  assert.match(q.validate()!, /not a power of two between 1 and 4/);
  q.size = 4;
  q.deviceAddr += 2;
  assert.match(q.validate()!, /used ring .* misaligned or outside RAM/);
  assert.throws(() => new Virtqueue(q["ram"], 0, 3), RangeError);
});

test("gather, scatter and splitSegments across segment boundaries", () => {
  const a = new Uint8Array([1, 2, 3]);
  const b = new Uint8Array([4, 5]);
  const c = new Uint8Array([6, 7, 8, 9]);
  assert.deepEqual([...gather([a, b, c], 2, 4)], [3, 4, 5, 6]);
  assert.deepEqual([...gather([a, b, c], 8)], [9]);
  assert.deepEqual([...gather([a], 5)], []);
  const { before, after } = splitSegments([a, b, c], 4);
  assert.deepEqual(before.map((s) => [...s]), [[1, 2, 3], [4]]);
  assert.deepEqual(after.map((s) => [...s]), [[5], [6, 7, 8, 9]]);
  const x = new Uint8Array(2);
  const y = new Uint8Array(3);
  assert.equal(scatter([x, y], new Uint8Array([9, 9, 9, 9, 9, 9, 9]), 1), 4);
  assert.deepEqual([...x, ...y], [0, 9, 9, 9, 9]);
});

test("a chain's device-writable buffers are marked dirty when it is used, after the device wrote them", () => {
  const { heap, drv, q, ram } = setup(4);
  const page = (addr: number): number => (addr - ram.base) >>> 12;
  const out = heap.alloc(16);
  const into = heap.alloc(8192);
  const head = drv.build([{ addr: out, len: 16, write: false }, { addr: into, len: 8192, write: true }]);
  drv.publish(head);
  const c = q.pop()!;
  ram.takeDirtyPages();
  c.writable[0]!.fill(0x42); // a DMA write through the live view marks nothing by itself
  assert.deepEqual([...ram.takeDirtyPages()], []);
  q.pushUsed(c.head, 8192);
  const marked = [...ram.takeDirtyPages()];
  for (let p = page(into); p <= page(into + 8191); p++) assert.ok(marked.includes(p), `page ${p} of the writable buffer is marked`);
  assert.ok(!marked.includes(page(out)) || page(out) === page(drv.used) || page(out) === page(into), "the device-readable buffer is not");
});
