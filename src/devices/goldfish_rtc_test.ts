import { test } from "node:test";
import assert from "node:assert/strict";
import { GoldfishRtc, systemClockNs } from "./goldfish_rtc.js";

function setup(start = 1_700_000_000_123_456_789n) {
  const clock = { t: start };
  const irq = { level: false, set(l: boolean) { this.level = l; } };
  const rtc = new GoldfishRtc({ irq, now: () => clock.t });
  return { clock, irq, rtc };
}

const readTime = (rtc: GoldfishRtc): bigint => {
  const lo = rtc.read(0x00, 4);
  const hi = rtc.read(0x04, 4);
  return (BigInt(hi) << 32n) | BigInt(lo);
};

test("TIME_LOW/TIME_HIGH give nanoseconds since the epoch, with the high word latched by the low read", () => {
  const { rtc, clock } = setup(0x1_ffff_fff0n);
  assert.equal(rtc.read(0x00, 4), 0xfffffff0);
  clock.t = 0x2_0000_0010n;
  assert.equal(rtc.read(0x04, 4), 1, "latched, not the newer high word");
  assert.equal(readTime(rtc), 0x2_0000_0010n);
});

test("the default clock is the host wall clock", () => {
  const rtc = new GoldfishRtc({ irq: { set() {} } });
  const seconds = Number(readTime(rtc) / 1_000_000_000n);
  assert.ok(Math.abs(seconds - Date.now() / 1000) < 5);
  const now = systemClockNs();
  assert.ok(now() <= now());
});

test("writing TIME_HIGH then TIME_LOW sets the guest clock, which keeps running", () => {
  const { rtc, clock } = setup();
  const wanted = 1_000_000_000_000_000_000n;
  rtc.write(0x04, 4, Number(wanted >> 32n));
  rtc.write(0x00, 4, Number(wanted & 0xffffffffn));
  assert.equal(readTime(rtc), wanted);
  clock.t += 5n;
  assert.equal(readTime(rtc), wanted + 5n);
});

test("an armed alarm fires when due, raises the IRQ only when enabled, and clears on CLEAR_INTERRUPT", () => {
  const { rtc, clock, irq } = setup(1000n);
  rtc.write(0x0c, 4, 0);
  rtc.write(0x08, 4, 2000);
  assert.equal(rtc.read(0x18, 4), 1, "armed");
  assert.equal(rtc.read(0x08, 4), 2000);
  rtc.update();
  assert.equal(irq.level, false);
  clock.t = 2000n;
  rtc.update();
  assert.equal(irq.level, false, "IRQ not enabled");
  assert.equal(rtc.read(0x18, 4), 0, "alarm consumed");
  rtc.write(0x10, 4, 1);
  assert.equal(rtc.read(0x10, 4), 1);
  assert.equal(irq.level, true, "pending alarm shows once enabled");
  rtc.write(0x1c, 4, 1);
  assert.equal(irq.level, false);
});

test("CLEAR_ALARM disarms; an alarm set in the past fires at once", () => {
  const { rtc, clock, irq } = setup(1000n);
  rtc.write(0x10, 4, 1);
  rtc.write(0x08, 4, 5000);
  assert.equal(rtc.nextAlarmHostNs(), 5000n);
  rtc.write(0x14, 4, 1);
  assert.equal(rtc.nextAlarmHostNs(), null);
  clock.t = 6000n;
  rtc.update();
  assert.equal(irq.level, false);
  rtc.write(0x08, 4, 10);
  assert.equal(irq.level, true);
});

test("hostile accesses never throw and change nothing", () => {
  const { rtc, irq } = setup(1000n);
  for (const off of [0x20, 0xffc, -4, 3, 0.5, 2 ** 40]) {
    for (const size of [1, 2, 4] as const) {
      rtc.write(off, size, 0xffffffff);
      assert.equal(rtc.read(off, size), 0);
    }
  }
  rtc.write(0x18, 4, 1); // ALARM_STATUS is read-only
  rtc.write(0x08, 2, 1); // narrow writes ignored
  assert.equal(rtc.read(0x18, 4), 0);
  assert.equal(rtc.read(0x00, 2), 0);
  assert.equal(readTime(rtc), 1000n);
  assert.equal(irq.level, false);
});

test("save and restore keep the guest's clock offset and a pending alarm interrupt", () => {
  const a = setup(1000n);
  a.rtc.write(0x04, 4, 0);
  a.rtc.write(0x00, 4, 50_000);
  a.rtc.write(0x10, 4, 1);
  a.rtc.write(0x08, 4, 49_000);
  assert.equal(a.irq.level, true);
  const state = JSON.parse(JSON.stringify(a.rtc.save()));
  const b = setup(2000n); // restored on a host whose clock is 1000 ns later
  b.rtc.restore(state);
  assert.equal(b.irq.level, true);
  assert.equal(readTime(b.rtc), 51_000n);
});
