import assert from "node:assert/strict";
import { test } from "node:test";
import { GuestRam } from "../../../seams/guest_ram.js";
import { INT_USED_BUFFER, STATUS_DEVICE_NEEDS_RESET } from "../constants.js";
import { VirtioMmio } from "../mmio.js";
import { FakeDriver, TestIrq } from "../testing/fake_driver.js";
import { VirtioConsole } from "./device.js";

function setup(opts: { max?: number; throwing?: boolean } = {}) {
  const ram = new GuestRam(0x8000_0000, 1 << 20);
  const irq = new TestIrq();
  const out: string[] = [];
  const logs: string[] = [];
  const con = new VirtioConsole({
    onOutput: (d) => {
      if (opts.throwing) throw new Error("host pipe closed");
      out.push(new TextDecoder().decode(d));
    },
    maxBufferedInput: opts.max,
    queueSize: 8,
  });
  const mmio = new VirtioMmio({ ram, device: con, irq, log: (m) => logs.push(m) });
  const drv = new FakeDriver(ram, mmio);
  return { ram, irq, out, logs, con, mmio, drv };
}

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

test("guest output reaches onOutput in order, split across descriptors", () => {
  const t = setup();
  const [, tx] = t.drv.init(2);
  const a = t.drv.heap.put(enc("hello, "));
  const b = t.drv.heap.put(enc("world"));
  const c = t.drv.heap.put(enc("\n"));
  tx!.publish(tx!.build([{ addr: a, len: 7 }, { addr: b, len: 5 }]));
  tx!.publish(tx!.buildIndirect([{ addr: c, len: 1 }]));
  t.drv.notify(1);
  assert.deepEqual(t.out, ["hello, world", "\n"]);
  assert.deepEqual(tx!.takeUsed(), [
    { id: 0, len: 0 },
    { id: 2, len: 0 },
  ]);
  assert.equal(t.drv.ackInterrupt(), INT_USED_BUFFER);
  assert.equal(t.con.stats().bytesOut, 13);
});

test("host input waits for receive buffers, then fills them across chains", () => {
  const t = setup();
  t.con.input(enc("early")); // before the driver exists
  const [rx] = t.drv.init(2);
  t.con.input(enc(" bytes!"));
  assert.equal(rx!.usedIdx(), 0);
  const b1 = t.drv.heap.alloc(8);
  const b2 = t.drv.heap.alloc(8);
  rx!.publish(rx!.build([{ addr: b1, len: 8, write: true }]));
  rx!.publish(rx!.build([{ addr: b2, len: 8, write: true }]));
  t.drv.notify(0);
  assert.deepEqual(rx!.takeUsed(), [
    { id: 0, len: 8 },
    { id: 1, len: 4 },
  ]);
  assert.equal(new TextDecoder().decode(t.ram.read(b1, 8)) + new TextDecoder().decode(t.ram.read(b2, 4)), "early bytes!");
  assert.equal(t.irq.level, true);
  // A spare buffer stays posted until more input arrives.
  const b3 = t.drv.heap.alloc(8);
  rx!.publish(rx!.build([{ addr: b3, len: 8, write: true }]));
  t.drv.notify(0);
  assert.equal(rx!.takeUsed().length, 0);
  t.con.input(enc("x"));
  assert.deepEqual(rx!.takeUsed(), [{ id: 2, len: 1 }]);
  assert.equal(t.con.stats().bytesIn, 13);
});

test("input beyond the bound is dropped and counted", () => {
  const t = setup({ max: 4 });
  t.con.input(enc("abcdef"));
  assert.equal(t.con.stats().inputDropped, 2);
  assert.equal(t.con.stats().bufferedInput, 4);
  const state = t.con.save();
  assert.equal(Buffer.from(state.pendingInput, "base64").toString(), "abcd");
  const [rx] = t.drv.init(2);
  const b = t.drv.heap.alloc(16);
  rx!.publish(rx!.build([{ addr: b, len: 16, write: true }]));
  t.drv.notify(0);
  assert.deepEqual(rx!.takeUsed(), [{ id: 0, len: 4 }]);
});

test("a throwing output handler, a receive chain without writable space, a broken tx chain", () => {
  const t = setup({ throwing: true });
  const [rx, tx] = t.drv.init(2);
  const a = t.drv.heap.put(enc("x"));
  tx!.publish(tx!.build([{ addr: a, len: 1 }]));
  t.drv.notify(1);
  assert.equal(tx!.usedIdx(), 1);
  assert.ok(t.logs.some((l) => /host pipe closed/.test(l)));
  rx!.publish(rx!.build([{ addr: a, len: 1 }]));
  t.con.input(enc("y"));
  assert.deepEqual(rx!.takeUsed(), [{ id: 0, len: 0 }]);
  assert.equal(t.con.stats().errors, 2);
  assert.equal(t.drv.status() & STATUS_DEVICE_NEEDS_RESET, 0);
  tx!.publish(tx!.build([{ addr: t.ram.end, len: 1 }]));
  t.drv.notify(1);
  assert.ok(t.drv.status() & STATUS_DEVICE_NEEDS_RESET);
  // After a reset the device works again and the undelivered "y" is still there.
  const [rx2] = t.drv.init(2);
  const b = t.drv.heap.alloc(4);
  rx2!.publish(rx2!.build([{ addr: b, len: 4, write: true }]));
  t.drv.notify(0);
  assert.deepEqual(rx2!.takeUsed(), [{ id: 0, len: 1 }]);
  assert.equal(t.ram.read(b, 1)[0], "y".charCodeAt(0));
});
