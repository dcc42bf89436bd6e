// Hostile balloon traffic: random PFN arrays on the inflate and deflate queues, random ranges on the
// reporting queue, floods of statistics buffers and random config writes. The device must never
// throw out of the transport, and must release only pages the guest itself gave up or reported
// free, inside RAM, each at most once per message.
import assert from "node:assert/strict";
import { test } from "node:test";
import { GuestRam } from "../../../seams/guest_ram.js";
import { VirtioMmio, REG_CONFIG } from "../mmio.js";
import { FakeDriver, TestIrq } from "../testing/fake_driver.js";
import { VirtioBalloon } from "./device.js";

const BASE = 0x8000_0000;
const RAM = 8 << 20;
const PAGE = 4096;
const PAGES = RAM / PAGE;

function xorshift(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
}

test("random balloon traffic never throws and never releases a page the guest did not give up or report", () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    const next = xorshift(seed);
    const ram = new GuestRam(BASE, RAM);
    const released = new Uint32Array(PAGES);
    let outside = 0;
    const balloon = new VirtioBalloon({
      ramBase: BASE, ramBytes: RAM, reporting: true,
      release: (offset, length) => {
        if (offset < 0 || offset + length > RAM || offset % PAGE || length % PAGE) outside++;
        else for (let p = offset / PAGE; p < (offset + length) / PAGE; p++) released[p]!++;
        return true;
      },
    });
    const mmio = new VirtioMmio({ ram, device: balloon, irq: new TestIrq(), log: () => {} });
    const drv = new FakeDriver(ram, mmio);
    // The driver's own structures live in the first MiB; the guest "uses" the second MiB and never offers it.
    const qs = drv.init(4);
    const live = { from: 256, to: 512 };
    const offered = new Uint8Array(PAGES);
    for (let round = 0; round < 300; round++) {
      const q = next() % 4;
      const queue = qs[q]!;
      const buf = drv.heap.alloc(1024);
      if (q <= 1) {
        // PFNs: mostly in RAM, some outside, some repeated; never from the live range.
        const n = 1 + (next() % 200);
        for (let i = 0; i < n; i++) {
          let pfn = BASE / PAGE + (next() % (PAGES + 64)) - 32;
          const page = pfn - BASE / PAGE;
          if (page >= live.from && page < live.to) pfn += live.to - live.from;
          if (q === 0 && pfn - BASE / PAGE >= 0 && pfn - BASE / PAGE < PAGES) offered[pfn - BASE / PAGE] = 1;
          ram.writeU32(buf + (4 * i) % 1024, pfn >>> 0);
        }
        queue.publish(queue.build([{ addr: buf, len: Math.min(1024, 4 * n) + (next() % 3) }]));
      } else if (q === 2) {
        for (let i = 0; i < 1 + (next() % 4); i++) queue.publish(queue.build([{ addr: buf, len: next() % 1024 }]));
      } else {
        // Reported ranges, some overlapping, none in the live range.
        const segs = [];
        for (let i = 0; i < 1 + (next() % 4); i++) {
          const startPage = 512 + (next() % (PAGES - 600));
          const pages = 1 + (next() % 64);
          for (let p = startPage; p < Math.min(PAGES, startPage + pages); p++) offered[p] = 1;
          segs.push({ addr: BASE + startPage * PAGE, len: Math.min(PAGES - startPage, pages) * PAGE, write: true });
        }
        queue.publish(queue.build(segs));
      }
      assert.doesNotThrow(() => drv.notify(q), `seed ${seed} round ${round}`);
      if (next() % 8 === 0) mmio.write(REG_CONFIG + (next() % 16), ([1, 2, 4] as const)[next() % 3]!, next());
      if (next() % 16 === 0) balloon.setTarget(next() % (PAGES * 2));
      if (next() % 10 === 0) balloon.requestStats();
      for (const dq of qs) dq.takeUsed();
    }
    assert.equal(outside, 0, `seed ${seed}: released something outside RAM`);
    for (let p = 0; p < PAGES; p++) {
      if (released[p]! > 0) assert.equal(offered[p], 1, `seed ${seed}: page ${p} was released but the guest never gave it up`);
    }
    for (let p = live.from; p < live.to; p++) assert.equal(released[p], 0);
    const s = balloon.stats();
    assert.ok(s.badPfns > 0 && s.duplicateInflates + s.unknownDeflates > 0 && s.duplicateReports > 0, JSON.stringify(s));
    assert.ok(balloon.balloonPages <= PAGES);
  }
});
