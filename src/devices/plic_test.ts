import { test } from "node:test";
import assert from "node:assert/strict";
import { Plic, plicMmioSize } from "./plic.js";

class FakeHart {
  mip = 0;
  calls = 0;
  setInterruptPending(bit: number, level: boolean): void {
    this.calls++;
    this.mip = level ? this.mip | (1 << bit) : this.mip & ~(1 << bit);
  }
}

const MEIP = 1 << 11;
const SEIP = 1 << 9;
const prio = (src: number) => 4 * src;
const enable = (ctx: number, word = 0) => 0x2000 + 0x80 * ctx + 4 * word;
const threshold = (ctx: number) => 0x200000 + 0x1000 * ctx;
const claim = (ctx: number) => threshold(ctx) + 4;

function setup(nHarts = 2) {
  const harts = Array.from({ length: nHarts }, () => new FakeHart());
  const contexts = harts.flatMap((hart) => [
    { hart, bit: 11 },
    { hart, bit: 9 },
  ]);
  const plic = new Plic({ sources: 96, contexts });
  return { harts, plic };
}

test("a pending, enabled source above threshold raises the context's mip bit; claim and complete follow the line", () => {
  const { harts, plic } = setup();
  const uart = plic.irqLine(10);
  plic.write(prio(10), 4, 1);
  plic.write(enable(1), 4, 1 << 10); // hart 0 S-mode
  uart.set(true);
  assert.equal(harts[0].mip, SEIP);
  assert.equal(harts[1].mip, 0);
  assert.equal(plic.read(0x1000, 4), 1 << 10, "pending bit visible");
  assert.equal(plic.read(claim(1), 4), 10);
  assert.equal(harts[0].mip, 0, "claimed: no longer pending");
  assert.equal(plic.read(0x1000, 4), 0);
  assert.equal(plic.read(claim(1), 4), 0, "nothing else to claim");
  plic.write(claim(1), 4, 10); // complete while the line is still high
  assert.equal(harts[0].mip, SEIP, "still asserted: pending again");
  assert.equal(plic.read(claim(1), 4), 10);
  uart.set(false);
  plic.write(claim(1), 4, 10);
  assert.equal(harts[0].mip, 0);
  assert.equal(plic.read(0x1000, 4), 0);
});

test("claim returns the highest priority, lowest id on ties, and respects threshold", () => {
  const { harts, plic } = setup();
  for (const [src, p] of [[3, 2], [5, 6], [40, 6], [70, 1]]) {
    plic.write(prio(src), 4, p);
    plic.irqLine(src).set(true);
  }
  plic.write(enable(0, 0), 4, 0xffffffff);
  plic.write(enable(0, 1), 4, 0xffffffff);
  plic.write(enable(0, 2), 4, 0xffffffff);
  plic.write(threshold(0), 4, 1);
  assert.equal(harts[0].mip, MEIP);
  assert.deepEqual([plic.read(claim(0), 4), plic.read(claim(0), 4), plic.read(claim(0), 4)], [5, 40, 3]);
  assert.equal(plic.read(claim(0), 4), 0, "source 70 is at the threshold, not above");
  assert.equal(harts[0].mip, 0);
  plic.write(threshold(0), 4, 0);
  assert.equal(harts[0].mip, MEIP);
  assert.equal(plic.read(claim(0), 4), 70);
});

test("priority 0 never interrupts; enables are per context; a lowered line withdraws its request", () => {
  const { harts, plic } = setup();
  const line = plic.irqLine(33);
  plic.write(enable(3, 1), 4, 1 << 1); // hart 1 S-mode, source 33
  line.set(true);
  assert.equal(harts[1].mip, 0, "priority 0");
  plic.write(prio(33), 4, 3);
  assert.equal(harts[1].mip, SEIP);
  assert.equal(harts[0].mip, 0);
  line.set(false);
  assert.equal(harts[1].mip, 0);
  assert.equal(plic.read(claim(3), 4), 0);
});

test("completion of a source not enabled in the context, or not claimed, is ignored", () => {
  const { harts, plic } = setup();
  const line = plic.irqLine(7);
  plic.write(prio(7), 4, 1);
  plic.write(enable(0), 4, 1 << 7);
  line.set(true);
  assert.equal(plic.read(claim(0), 4), 7);
  plic.write(claim(1), 4, 7); // context 1 does not enable source 7
  assert.equal(harts[0].mip, 0, "still in flight");
  plic.write(claim(0), 4, 7);
  assert.equal(harts[0].mip, MEIP);
});

test("registers are WARL: source 0, bits beyond the last source and priorities above 7 do not stick", () => {
  const { plic } = setup();
  plic.write(prio(0), 4, 5);
  assert.equal(plic.read(prio(0), 4), 0);
  plic.write(prio(1), 4, 0xffffffff);
  assert.equal(plic.read(prio(1), 4), 7);
  plic.write(enable(0, 0), 4, 0xffffffff);
  assert.equal(plic.read(enable(0, 0), 4), 0xfffffffe);
  plic.write(enable(0, 2), 4, 0xffffffff);
  assert.equal(plic.read(enable(0, 2), 4), 0xffffffff, "sources 64..95 exist");
  plic.write(enable(0, 3), 4, 0xffffffff);
  assert.equal(plic.read(enable(0, 3), 4), 0, "sources 96.. do not");
  plic.write(threshold(2), 4, 100);
  assert.equal(plic.read(threshold(2), 4), 7);
  assert.throws(() => plic.irqLine(0), /valid sources are 1 to 95/);
  assert.throws(() => plic.irqLine(96), RangeError);
});

test("hostile accesses read 0, are ignored, and never throw", () => {
  const { harts, plic } = setup();
  plic.irqLine(1).set(true);
  plic.write(prio(1), 4, 1);
  for (const off of [2, 0x1000, 0x1ffc, 0x2000 + 0x80 * 4, 0x1ffffc, 0x200000 + 0x1000 * 4, 0x200008, plic.size, -4, 0.5, 2 ** 40]) {
    for (const size of [1, 2, 4] as const) {
      plic.write(off, size, 0xffffffff);
      plic.read(off, size);
    }
  }
  plic.write(claim(0), 4, 0x7fffffff);
  plic.write(claim(0), 2, 1);
  assert.equal(plic.read(prio(1), 2), 0, "sub-word reads return 0");
  assert.equal(plic.read(0x1000, 4), 2, "source 1 still pending: pending writes are ignored");
  assert.deepEqual(harts.map((h) => h.mip), [0, 0]);
  assert.equal(plic.size, plicMmioSize(4));
  assert.equal(plicMmioSize(2 * 8), 0x210000);
});

test("save and restore carry every register and re-drive the contexts", () => {
  const a = setup();
  a.plic.write(prio(9), 4, 4);
  a.plic.write(prio(8), 4, 2);
  a.plic.write(enable(1), 4, (1 << 9) | (1 << 8));
  a.plic.write(threshold(1), 4, 1);
  a.plic.irqLine(9).set(true);
  a.plic.irqLine(8).set(true);
  assert.equal(a.plic.read(claim(1), 4), 9);
  const state = JSON.parse(JSON.stringify(a.plic.save()));
  const b = setup();
  b.plic.restore(state);
  assert.equal(b.harts[0].mip, SEIP, "source 8 is pending");
  assert.equal(b.plic.read(claim(1), 4), 8);
  b.plic.write(claim(1), 4, 9); // the claim taken before the snapshot completes after it
  assert.equal(b.plic.read(claim(1), 4), 9, "line 9 still high: pending again");
  assert.equal(b.plic.read(threshold(1), 4), 1);
});
