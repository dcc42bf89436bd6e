import assert from "node:assert/strict";
import { test } from "node:test";
import { GuestRam } from "../../../seams/guest_ram.js";
import { VirtioMmio, REG_CONFIG } from "../mmio.js";
import { FakeDriver, TestIrq } from "../testing/fake_driver.js";
import { F_DEFLATE_ON_OOM, F_REPORTING, F_STATS_VQ, VirtioBalloon } from "./device.js";

const BASE = 0x8000_0000;
const RAM = 4 << 20;
const PAGE = 4096;
const BASE_PFN = BASE / PAGE;

function setup(opts: { reporting?: boolean; deflateOnOom?: boolean } = {}) {
  const ram = new GuestRam(BASE, RAM);
  const irq = new TestIrq();
  const released: [number, number][] = [];
  let now = 1000;
  const balloon = new VirtioBalloon({
    ramBase: BASE, ramBytes: RAM, reporting: opts.reporting ?? true, deflateOnOom: opts.deflateOnOom,
    release: (offset, length) => {
      released.push([offset, length]);
      return true;
    },
    now: () => now,
  });
  const mmio = new VirtioMmio({ ram, device: balloon, irq });
  const drv = new FakeDriver(ram, mmio);
  return { ram, irq, balloon, mmio, drv, released, tick: (ms: number) => (now += ms) };
}

function pfnBuffer(t: ReturnType<typeof setup>, pfns: number[]): { addr: number; len: number } {
  const bytes = new Uint8Array(pfns.length * 4);
  const v = new DataView(bytes.buffer);
  pfns.forEach((p, i) => v.setUint32(i * 4, p >>> 0, true));
  return { addr: t.drv.heap.put(bytes), len: bytes.length };
}

test("offers stats, reporting and (on request) DEFLATE_ON_OOM; the target shows in num_pages with a config interrupt", () => {
  const t = setup({ deflateOnOom: true });
  const features = t.drv.deviceFeatures();
  assert.equal(features & (F_STATS_VQ | F_REPORTING | F_DEFLATE_ON_OOM), F_STATS_VQ | F_REPORTING | F_DEFLATE_ON_OOM);
  assert.equal(setup({ reporting: false }).drv.deviceFeatures() & (F_REPORTING | F_DEFLATE_ON_OOM), 0n);
  t.drv.init(4);
  t.balloon.setTarget(100);
  assert.equal(t.mmio.read(REG_CONFIG, 4), 100);
  assert.equal(t.drv.ackInterrupt() & 2, 2);
  t.mmio.write(REG_CONFIG + 4, 4, 60); // the driver's `actual`
  t.mmio.write(REG_CONFIG, 4, 7); // num_pages is the host's: ignored
  assert.equal(t.balloon.reportedActual, 60);
  assert.equal(t.balloon.target, 100);
  assert.equal(t.balloon.stats().configWritesIgnored, 1);
  t.balloon.setTarget(1e12);
  assert.equal(t.balloon.target, RAM / PAGE, "the target never exceeds RAM");
});

test("inflate releases pages in runs; PFNs outside RAM, twice inflated or deflated unknown are ignored and counted", () => {
  const t = setup();
  const [inflate, deflate] = t.drv.init(4);
  t.balloon.setTarget(4);
  const b = pfnBuffer(t, [BASE_PFN + 11, BASE_PFN + 10, BASE_PFN + 12, BASE_PFN + 40, 5, BASE_PFN + RAM / PAGE, BASE_PFN + 10]);
  inflate!.publish(inflate!.build([b]));
  t.drv.notify(0);
  assert.deepEqual(inflate!.takeUsed(), [{ id: 0, len: 0 }]);
  assert.deepEqual(t.released, [[10 * PAGE, 3 * PAGE], [40 * PAGE, PAGE]]);
  assert.equal(t.balloon.balloonPages, 4);
  let s = t.balloon.stats();
  assert.equal(s.badPfns, 2);
  assert.equal(s.duplicateInflates, 1);
  assert.equal(s.releasedForRealPages, 4);
  // Deflate two (one at a time past the target: not OOM), one unknown.
  t.balloon.setTarget(2);
  deflate!.publish(deflate!.build([pfnBuffer(t, [BASE_PFN + 10, BASE_PFN + 11, BASE_PFN + 99])]));
  t.drv.notify(1);
  assert.equal(t.balloon.balloonPages, 2);
  s = t.balloon.stats();
  assert.equal(s.deflatedPages, 2);
  assert.equal(s.unknownDeflates, 1);
  assert.equal(s.oomDeflatedPages, 0);
  // At its target the guest takes a page back on its own: DEFLATE_ON_OOM.
  deflate!.publish(deflate!.build([pfnBuffer(t, [BASE_PFN + 40])]));
  t.drv.notify(1);
  assert.equal(t.balloon.stats().oomDeflatedPages, 1);
});

test("statistics: the driver's buffer is parsed and held; requestStats hands it back; extra buffers are returned and counted", () => {
  const t = setup();
  const qs = t.drv.init(4);
  const statsQ = qs[2]!;
  const entries: [number, number][] = [[4, 300 * 2 ** 20], [6, 400 * 2 ** 20], [3, 12345], [99, 1]];
  const bytes = new Uint8Array(entries.length * 10);
  const v = new DataView(bytes.buffer);
  entries.forEach(([tag, val], i) => {
    v.setUint16(i * 10, tag, true);
    v.setUint32(i * 10 + 2, val % 2 ** 32, true);
    v.setUint32(i * 10 + 6, Math.floor(val / 2 ** 32), true);
  });
  const buf = { addr: t.drv.heap.put(bytes), len: bytes.length };
  statsQ.publish(statsQ.build([buf]));
  t.drv.notify(2);
  assert.deepEqual(statsQ.takeUsed(), [], "the buffer stays with the device until it wants figures");
  assert.deepEqual(t.balloon.guest, { updatedAt: 1000, values: { free: 300 * 2 ** 20, available: 400 * 2 ** 20, minorFaults: 12345 } });
  assert.equal(t.balloon.stats().statsBadEntries, 1);
  assert.equal(t.balloon.requestStats(), true);
  assert.deepEqual(statsQ.takeUsed(), [{ id: 0, len: 0 }]);
  assert.equal(t.balloon.requestStats(), false, "nothing to hand back until the driver answers");
  // A flood: three buffers at once; the device keeps the newest.
  for (let i = 0; i < 3; i++) statsQ.publish(statsQ.build([buf]));
  t.drv.notify(2);
  assert.equal(statsQ.takeUsed().length, 2);
  assert.equal(t.balloon.stats().statsFlood, 2);
});

test("free page reporting: each range goes back once; overlaps and pages already in the balloon are counted", () => {
  const t = setup();
  const qs = t.drv.init(4);
  const report = qs[3]!;
  qs[0]!.publish(qs[0]!.build([pfnBuffer(t, [BASE_PFN + 600])]));
  t.drv.notify(0);
  t.released.length = 0;
  const mib = 1 << 20;
  report.publish(report.build([
    { addr: BASE + 2 * mib, len: 2 * mib, write: true },
    { addr: BASE + 3 * mib, len: mib / 2, write: true }, // inside the first: twice
  ]));
  t.drv.notify(3);
  assert.deepEqual(report.takeUsed(), [{ id: 0, len: 0 }]);
  // 512 pages, minus page 600 which is in the balloon: two runs.
  assert.deepEqual(t.released, [[512 * PAGE, 88 * PAGE], [601 * PAGE, (1024 - 601) * PAGE]]);
  const s = t.balloon.stats();
  assert.equal(s.reportedPages, 511);
  assert.equal(s.duplicateReports, 128);
  assert.equal(s.reportsInBalloon, 1);
});

test("without STATS_VQ negotiated, reporting takes queue 2, as Linux numbers it", () => {
  const t = setup();
  const qs = t.drv.init(3, ~F_STATS_VQ);
  qs[2]!.publish(qs[2]!.build([{ addr: BASE + (1 << 20), len: 8192, write: true }]));
  t.drv.notify(2);
  assert.deepEqual(t.released, [[256 * PAGE, 2 * PAGE]]);
});

test("save and restore keep the target, the balloon's pages and the held statistics buffer", () => {
  const t = setup();
  const qs = t.drv.init(4);
  t.balloon.setTarget(3);
  qs[0]!.publish(qs[0]!.build([pfnBuffer(t, [BASE_PFN + 1, BASE_PFN + 2, BASE_PFN + 1000])]));
  t.drv.notify(0);
  const state = JSON.parse(JSON.stringify(t.balloon.save()));
  const u = setup();
  u.balloon.restore(state);
  assert.equal(u.balloon.balloonPages, 3);
  assert.equal(u.balloon.target, 3);
  assert.throws(() => u.balloon.restore({ ...state, version: 9 }), /version 9/);
});
