import { test } from "node:test";
import assert from "node:assert/strict";
import { DeviceTimers } from "./device_timers.js";
import { GoldfishRtc } from "../devices/goldfish_rtc.js";

const ALARM_LOW = 0x08, ALARM_HIGH = 0x0c, IRQ_ENABLED = 0x10, CLEAR_ALARM = 0x14;

function rtcOnTimers(): { rtc: GoldfishRtc; timers: DeviceTimers; raised: () => boolean } {
  let level = false;
  const timers = new DeviceTimers();
  const rtc = new GoldfishRtc({ irq: { set: (l) => (level = l) }, onDeadlineChange: () => timers.replan() });
  timers.add(rtc);
  return { rtc, timers, raised: () => level };
}

function arm(rtc: GoldfishRtc, inMs: number): void {
  const at = rtc.guestNow() + BigInt(inMs) * 1_000_000n;
  rtc.write(IRQ_ENABLED, 4, 1);
  rtc.write(ALARM_HIGH, 4, Number(at >> 32n));
  rtc.write(ALARM_LOW, 4, Number(at & 0xffffffffn));
}

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
  return cond();
}

test("the RTC's alarm raises its interrupt when due with no guest access to wake it", async () => {
  const { rtc, timers, raised } = rtcOnTimers();
  arm(rtc, 30);
  assert.equal(raised(), false, "not before its time");
  assert.ok(await until(raised, 5000), "the device timers fired the alarm");
  timers.stop();
});

test("re-arming re-plans, clearing the alarm cancels it, and stop() ends every wait", async () => {
  const { rtc, timers, raised } = rtcOnTimers();
  arm(rtc, 60_000);
  arm(rtc, 20); // the later alarm is replaced by a sooner one
  assert.ok(await until(raised, 5000), "the re-armed alarm fired");

  const second = rtcOnTimers();
  arm(second.rtc, 20);
  second.rtc.write(CLEAR_ALARM, 4, 1);
  assert.equal(await until(second.raised, 200), false, "a cleared alarm never fires");

  const third = rtcOnTimers();
  arm(third.rtc, 20);
  third.timers.stop();
  assert.equal(await until(third.raised, 200), false, "stopped timers fire nothing");
  timers.stop();
  second.timers.stop();
});
