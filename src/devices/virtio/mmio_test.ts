import assert from "node:assert/strict";
import { test } from "node:test";
import { GuestRam } from "../../seams/guest_ram.js";
import {
  DESC_F_INDIRECT,
  DESC_F_NEXT,
  DESC_F_WRITE,
  F_EVENT_IDX,
  F_INDIRECT_DESC,
  F_VERSION_1,
  INT_CONFIG_CHANGE,
  INT_USED_BUFFER,
  STATUS_ACKNOWLEDGE,
  STATUS_DEVICE_NEEDS_RESET,
  STATUS_DRIVER,
  STATUS_DRIVER_OK,
  STATUS_FEATURES_OK,
} from "./constants.js";
import {
  MMIO_MAGIC,
  REG_CONFIG_GENERATION,
  REG_DEVICE_ID,
  REG_MAGIC,
  REG_QUEUE_DESC_LOW,
  REG_QUEUE_NUM,
  REG_QUEUE_NUM_MAX,
  REG_QUEUE_READY,
  REG_QUEUE_SEL,
  REG_STATUS,
  REG_VENDOR_ID,
  REG_VERSION,
  VirtioMmio,
} from "./mmio.js";
import { VirtioRng } from "./rng/device.js";
import { FakeDriver, TestIrq } from "./testing/fake_driver.js";

function setup(queueSize = 16) {
  const ram = new GuestRam(0x8000_0000, 1 << 20);
  const irq = new TestIrq();
  const logs: string[] = [];
  let n = 0;
  const dev = new VirtioRng({ queueSize, fill: (b) => b.fill(0xa0 + (n++ % 16)) });
  const mmio = new VirtioMmio({ ram, device: dev, irq, log: (m) => logs.push(m) });
  const drv = new FakeDriver(ram, mmio);
  return { ram, irq, logs, dev, mmio, drv };
}

/** Resets and brings the device up again, then passes one 64-byte buffer through it. */
function works(t: ReturnType<typeof setup>): void {
  const [q] = t.drv.init(1);
  const buf = t.drv.heap.alloc(64);
  q!.publish(q!.build([{ addr: buf, len: 64, write: true }]));
  t.drv.notify(0);
  assert.deepEqual(q!.takeUsed().map((u) => u.len), [64]);
  assert.ok(t.ram.read(buf, 64).every((b) => b >= 0xa0));
}

test("identification registers match virtio-mmio version 2", () => {
  const { mmio } = setup();
  assert.equal(mmio.read(REG_MAGIC, 4), MMIO_MAGIC);
  assert.equal(mmio.read(REG_VERSION, 4), 2);
  assert.equal(mmio.read(REG_DEVICE_ID, 4), 4);
  assert.equal(mmio.read(REG_VENDOR_ID, 4), 0x554d4551);
});

test("Linux-style bring-up, notify, used ring, interrupt and ACK", () => {
  const t = setup();
  const f = t.drv.deviceFeatures();
  assert.ok(f & F_VERSION_1 && f & F_EVENT_IDX && f & F_INDIRECT_DESC);
  const [q] = t.drv.init(1, F_VERSION_1);
  assert.equal(t.drv.status(), STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
  const a = t.drv.heap.alloc(8);
  const b = t.drv.heap.alloc(24);
  q!.publish(q!.build([{ addr: a, len: 8, write: true }, { addr: b, len: 24, write: true }]));
  assert.equal(t.irq.level, false);
  t.drv.notify(0);
  assert.deepEqual(q!.takeUsed(), [{ id: 0, len: 32 }]);
  assert.equal(t.irq.level, true);
  assert.ok(t.ram.read(b, 24).every((x) => x >= 0xa0));
  assert.equal(t.drv.ackInterrupt(), INT_USED_BUFFER);
  assert.equal(t.irq.level, false);
  assert.equal(t.mmio.stats().deviceFailures, 0);
});

test("indirect descriptors are followed", () => {
  const t = setup();
  const [q] = t.drv.init(1);
  const a = t.drv.heap.alloc(10);
  const b = t.drv.heap.alloc(6);
  q!.publish(q!.buildIndirect([{ addr: a, len: 10, write: true }, { addr: b, len: 6, write: true }]));
  t.drv.notify(0);
  assert.deepEqual(q!.takeUsed(), [{ id: 0, len: 16 }]);
});

test("FEATURES_OK is refused without VERSION_1 and with features never offered", () => {
  const t = setup();
  assert.equal(t.drv.negotiate(F_EVENT_IDX), false);
  assert.equal(t.drv.status() & STATUS_FEATURES_OK, 0);
  // Accept a bit the device never offered by writing it directly.
  t.drv.w(REG_STATUS, 0);
  t.drv.w(REG_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
  t.drv.w(0x024, 1);
  t.drv.w(0x020, 1 | 4); // VERSION_1 plus bit 34
  t.drv.w(REG_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
  assert.equal(t.drv.status() & STATUS_FEATURES_OK, 0);
  works(t);
});

test("EVENT_IDX: interrupts only when used_event is crossed, avail_event tracks the device", () => {
  const t = setup();
  const [q] = t.drv.init(1);
  const buf = t.drv.heap.alloc(4);
  // First completion always interrupts.
  q!.publish(q!.build([{ addr: buf, len: 4, write: true }]));
  t.drv.notify(0);
  assert.equal(t.irq.raises, 1);
  assert.equal(q!.availEvent(), 1);
  t.drv.ackInterrupt();
  // The driver asks to be interrupted only after used idx passes 2 (i.e. at the 4th completion... used_event=2 means when idx becomes 3).
  q!.setUsedEvent(2);
  q!.publish(q!.build([{ addr: buf, len: 4, write: true }]));
  t.drv.notify(0); // used idx 2: no interrupt
  assert.equal(t.irq.raises, 1);
  q!.publish(q!.build([{ addr: buf, len: 4, write: true }]));
  t.drv.notify(0); // used idx 3: crosses used_event 2
  assert.equal(t.irq.raises, 2);
  assert.equal(q!.availEvent(), 3);
  t.drv.ackInterrupt();
  // A used_event the device has already passed asks for nothing.
  q!.setUsedEvent(2);
  q!.publish(q!.build([{ addr: buf, len: 4, write: true }]));
  t.drv.notify(0); // used idx 4
  assert.equal(t.irq.raises, 2);
  q!.setUsedEvent(4);
  q!.publish(q!.build([{ addr: buf, len: 4, write: true }]));
  t.drv.notify(0); // used idx 5 crosses 4
  assert.equal(t.irq.raises, 3);
});

test("without EVENT_IDX, VRING_AVAIL_F_NO_INTERRUPT suppresses interrupts", () => {
  const t = setup();
  const [q] = t.drv.init(1, F_VERSION_1);
  q!.setAvailFlags(1);
  const buf = t.drv.heap.alloc(4);
  q!.publish(q!.build([{ addr: buf, len: 4, write: true }]));
  t.drv.notify(0);
  assert.equal(q!.takeUsed().length, 1);
  assert.equal(t.irq.raises, 0);
});

test("queue registers: QueueNumMax, unknown queue, config generation", () => {
  const t = setup(16);
  t.drv.negotiate();
  t.drv.w(REG_QUEUE_SEL, 0);
  assert.equal(t.drv.r(REG_QUEUE_NUM_MAX), 16);
  t.drv.w(REG_QUEUE_SEL, 5);
  assert.equal(t.drv.r(REG_QUEUE_NUM_MAX), 0);
  t.drv.w(REG_QUEUE_READY, 1); // ignored: no such queue
  assert.equal(t.drv.r(REG_QUEUE_READY), 0);
  assert.equal(t.drv.r(REG_CONFIG_GENERATION), 0);
  assert.equal(t.drv.status() & STATUS_DEVICE_NEEDS_RESET, 0);
});

function expectBroken(t: ReturnType<typeof setup>, pattern: RegExp): void {
  assert.ok(t.drv.status() & STATUS_DEVICE_NEEDS_RESET, "status has DEVICE_NEEDS_RESET");
  assert.ok(t.mmio.stats().deviceFailures >= 1);
  assert.ok(t.logs.some((l) => pattern.test(l)), `a log line matches ${pattern}: ${t.logs.join(" | ")}`);
}

function expectConfigIrq(t: ReturnType<typeof setup>): void {
  assert.equal(t.irq.level, true);
  assert.ok(t.drv.ackInterrupt() & INT_CONFIG_CHANGE);
}

test("hostile: descriptor pointing outside RAM", () => {
  const t = setup();
  const [q] = t.drv.init(1);
  q!.publish(q!.build([{ addr: t.ram.end - 8, len: 16, write: true }]));
  t.drv.notify(0);
  expectBroken(t, /outside RAM/);
  expectConfigIrq(t);
  assert.equal(q!.usedIdx(), 0);
  // Further notifications are ignored until reset; then the device works again.
  t.drv.notify(0);
  works(t);
});

test("hostile: descriptor address above 2^53 and huge length", () => {
  const t = setup();
  const [q] = t.drv.init(1);
  q!.writeDesc(q!.desc, 0, 2 ** 63, 8, DESC_F_WRITE, 0);
  q!.publish(0);
  t.drv.notify(0);
  expectBroken(t, /outside RAM/);
  works(t);
  const t2 = setup();
  const [q2] = t2.drv.init(1);
  q2!.writeDesc(q2!.desc, 0, t2.ram.base, 0xffff_ffff, DESC_F_WRITE, 0);
  q2!.publish(0);
  t2.drv.notify(0);
  expectBroken(t2, /outside RAM/);
});

test("hostile: descriptor loop", () => {
  const t = setup();
  const [q] = t.drv.init(1);
  const buf = t.drv.heap.alloc(8);
  q!.writeDesc(q!.desc, 0, buf, 8, DESC_F_WRITE | DESC_F_NEXT, 1);
  q!.writeDesc(q!.desc, 1, buf, 8, DESC_F_WRITE | DESC_F_NEXT, 0);
  q!.publish(0);
  t.drv.notify(0);
  expectBroken(t, /longer than 16 descriptors/);
  works(t);
});

test("hostile: next index and head index out of range", () => {
  const t = setup();
  const [q] = t.drv.init(1);
  const buf = t.drv.heap.alloc(8);
  q!.writeDesc(q!.desc, 0, buf, 8, DESC_F_WRITE | DESC_F_NEXT, 999);
  q!.publish(0);
  t.drv.notify(0);
  expectBroken(t, /index 999 is outside/);
  works(t);
  const t2 = setup();
  const [q2] = t2.drv.init(1);
  q2!.publish(16);
  t2.drv.notify(0);
  expectBroken(t2, /index 16 is outside/);
});

test("hostile: indirect table of bad length, nested indirect, indirect with NEXT, indirect not negotiated", () => {
  const cases: [string, (t: ReturnType<typeof setup>) => void, RegExp, bigint?][] = [
    ["bad length", (t) => t.drv.heap.alloc(0), /not a non-zero multiple of 16/],
    ["nested", () => {}, /another indirect/],
    ["with NEXT", () => {}, /also has the NEXT flag/],
    ["not negotiated", () => {}, /was not negotiated/, F_VERSION_1],
  ];
  for (const [name, , pattern, accept] of cases) {
    const t = setup();
    const [q] = t.drv.init(1, accept ?? ~0n);
    const table = t.drv.heap.alloc(64);
    const buf = t.drv.heap.alloc(8);
    if (name === "bad length") q!.writeDesc(q!.desc, 0, table, 24, DESC_F_INDIRECT, 0);
    else if (name === "nested") {
      q!.writeDesc(table, 0, table, 16, DESC_F_INDIRECT, 0);
      q!.writeDesc(q!.desc, 0, table, 16, DESC_F_INDIRECT, 0);
    } else if (name === "with NEXT") {
      q!.writeDesc(table, 0, buf, 8, DESC_F_WRITE, 0);
      q!.writeDesc(q!.desc, 0, table, 16, DESC_F_INDIRECT | DESC_F_NEXT, 1);
    } else {
      q!.writeDesc(table, 0, buf, 8, DESC_F_WRITE, 0);
      q!.writeDesc(q!.desc, 0, table, 16, DESC_F_INDIRECT, 0);
    }
    q!.publish(0);
    t.drv.notify(0);
    expectBroken(t, pattern);
    works(t);
  }
});

test("hostile: indirect table outside RAM and loop inside an indirect table", () => {
  const t = setup();
  const [q] = t.drv.init(1);
  q!.writeDesc(q!.desc, 0, t.ram.end - 16, 32, DESC_F_INDIRECT, 0);
  q!.publish(0);
  t.drv.notify(0);
  expectBroken(t, /indirect table .* outside RAM/);
  const t2 = setup();
  const [q2] = t2.drv.init(1);
  const table = t2.drv.heap.alloc(32);
  const buf = t2.drv.heap.alloc(8);
  q2!.writeDesc(table, 0, buf, 8, DESC_F_WRITE | DESC_F_NEXT, 1);
  q2!.writeDesc(table, 1, buf, 8, DESC_F_WRITE | DESC_F_NEXT, 0);
  q2!.writeDesc(q2!.desc, 0, table, 32, DESC_F_INDIRECT, 0);
  q2!.publish(0);
  t2.drv.notify(0);
  expectBroken(t2, /longer than 2 descriptors/);
});

test("hostile: readable descriptor after a writable one", () => {
  const t = setup();
  const [q] = t.drv.init(1);
  const buf = t.drv.heap.alloc(8);
  q!.publish(q!.build([{ addr: buf, len: 4, write: true }, { addr: buf, len: 4 }]));
  t.drv.notify(0);
  expectBroken(t, /follows a device-writable/);
});

test("hostile: avail idx running ahead by more than the queue size", () => {
  const t = setup();
  const [q] = t.drv.init(1);
  q!.setAvailIdx(17);
  t.drv.notify(0);
  expectBroken(t, /moved 17 entries ahead/);
  works(t);
});

test("hostile: notify before DRIVER_OK and notify of a bogus queue are ignored", () => {
  const t = setup();
  t.drv.negotiate();
  const q = t.drv.setupQueue(0);
  const buf = t.drv.heap.alloc(8);
  q.publish(q.build([{ addr: buf, len: 8, write: true }]));
  t.drv.notify(0); // a ready queue: quietly left for activation (Linux's balloon does this)
  t.drv.notify(1); // a queue never set up: logged
  assert.equal(q.usedIdx(), 0);
  assert.equal(t.drv.status() & STATUS_DEVICE_NEEDS_RESET, 0);
  assert.deepEqual(t.logs.filter((l) => /before DRIVER_OK/.test(l)).map((l) => /queue (\d+)/.exec(l)?.[1]), ["1"]);
  t.drv.driverOk(); // buffers posted earlier are served at activation
  assert.equal(q.usedIdx(), 1);
  t.drv.notify(7);
  t.drv.notify(0xffff_ffff);
  assert.equal(t.drv.status() & STATUS_DEVICE_NEEDS_RESET, 0);
  assert.ok(t.mmio.stats().ignoredAccesses >= 3);
});

test("hostile: registers in the wrong order", () => {
  const t = setup();
  // DRIVER_OK without FEATURES_OK.
  t.drv.w(REG_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_DRIVER_OK);
  expectBroken(t, /without FEATURES_OK/);
  works(t);
  // QueueReady before FEATURES_OK.
  const t2 = setup();
  t2.drv.w(REG_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
  t2.drv.w(REG_QUEUE_SEL, 0);
  t2.drv.w(REG_QUEUE_READY, 1);
  expectBroken(t2, /before FEATURES_OK/);
  works(t2);
  // Queue size not a power of two, ring outside RAM.
  const t3 = setup();
  t3.drv.negotiate();
  t3.drv.w(REG_QUEUE_SEL, 0);
  t3.drv.w(REG_QUEUE_NUM, 3);
  t3.drv.w(REG_QUEUE_READY, 1);
  expectBroken(t3, /size 3 is not a power of two/);
  const t4 = setup();
  t4.drv.negotiate();
  t4.drv.w(REG_QUEUE_SEL, 0);
  t4.drv.w(REG_QUEUE_NUM, 16);
  t4.drv.w(REG_QUEUE_DESC_LOW, 0x10);
  t4.drv.w(REG_QUEUE_READY, 1);
  expectBroken(t4, /descriptor table .* outside RAM/);
  works(t4);
  // Features written after FEATURES_OK, byte-sized register access, read-only register write: ignored.
  const t5 = setup();
  t5.drv.negotiate();
  t5.drv.w(0x020, 0);
  t5.mmio.write(REG_STATUS, 1, 0);
  assert.equal(t5.mmio.read(REG_MAGIC, 2), 0);
  t5.drv.w(REG_MAGIC, 1);
  assert.equal(t5.drv.status() & STATUS_DEVICE_NEEDS_RESET, 0);
  assert.ok(t5.mmio.stats().ignoredAccesses >= 4);
});

test("reset drops interrupts and queue state; save/restore resumes a live device", () => {
  const t = setup();
  const [q] = t.drv.init(1);
  const buf = t.drv.heap.alloc(8);
  q!.publish(q!.build([{ addr: buf, len: 8, write: true }]));
  t.drv.notify(0);
  assert.equal(t.irq.level, true);
  const state = JSON.parse(JSON.stringify(t.mmio.save()));
  t.drv.w(REG_STATUS, 0);
  assert.equal(t.irq.level, false);
  assert.equal(t.drv.status(), 0);
  t.drv.w(REG_QUEUE_SEL, 0);
  assert.equal(t.drv.r(REG_QUEUE_READY), 0);
  // Restore into a fresh transport over the same RAM and continue where we left off.
  const irq2 = new TestIrq();
  const mmio2 = new VirtioMmio({ ram: t.ram, device: new VirtioRng({ queueSize: 16 }), irq: irq2 });
  mmio2.restore(state);
  assert.equal(irq2.level, true);
  assert.equal(mmio2.read(REG_STATUS, 4) & STATUS_DRIVER_OK, STATUS_DRIVER_OK);
  q!.publish(q!.build([{ addr: buf, len: 8, write: true }]));
  mmio2.write(0x050, 4, 0);
  assert.deepEqual(q!.takeUsed().map((u) => u.id), [0, 1]);
});
