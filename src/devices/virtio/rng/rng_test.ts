import assert from "node:assert/strict";
import { test } from "node:test";
import { GuestRam } from "../../../seams/guest_ram.js";
import { VirtioMmio } from "../mmio.js";
import { FakeDriver, TestIrq } from "../testing/fake_driver.js";
import { VirtioRng } from "./device.js";

function setup() {
  const ram = new GuestRam(0x8000_0000, 1 << 20);
  const irq = new TestIrq();
  const rng = new VirtioRng();
  const mmio = new VirtioMmio({ ram, device: rng, irq });
  const drv = new FakeDriver(ram, mmio);
  return { ram, irq, rng, drv };
}

test("fills writable buffers with random bytes from node:crypto", () => {
  const t = setup();
  const [q] = t.drv.init(1);
  const a = t.drv.heap.alloc(4096);
  const b = t.drv.heap.alloc(4096);
  q!.publish(q!.build([{ addr: a, len: 4096, write: true }]));
  q!.publish(q!.buildIndirect([{ addr: b, len: 100, write: true }]));
  t.drv.notify(0);
  assert.deepEqual(q!.takeUsed(), [
    { id: 0, len: 4096 },
    { id: 1, len: 100 },
  ]);
  const bytes = t.ram.read(a, 4096);
  // 4096 random bytes: all 256 values should not be absent in bulk, and zeros must be rare.
  assert.ok(new Set(bytes).size > 200);
  assert.ok(bytes.filter((x) => x === 0).length < 64);
  assert.ok(t.ram.read(b, 100).some((x) => x !== 0));
  assert.equal(t.ram.read(b + 100, 1)[0], 0); // nothing past the buffer
  assert.equal(t.irq.level, true);
  assert.deepEqual(t.rng.stats(), { requests: 2, bytes: 4196, errors: 0 });
});

test("a request larger than 64 KiB is filled only up to 64 KiB; a readable-only request gets 0 bytes", () => {
  const t = setup();
  const [q] = t.drv.init(1);
  const a = t.drv.heap.alloc(100_000);
  q!.publish(q!.build([{ addr: a, len: 100_000, write: true }]));
  q!.publish(q!.build([{ addr: a, len: 16 }]));
  t.drv.notify(0);
  assert.deepEqual(q!.takeUsed(), [
    { id: 0, len: 65536 },
    { id: 1, len: 0 },
  ]);
  assert.equal(t.rng.stats().errors, 1);
});
