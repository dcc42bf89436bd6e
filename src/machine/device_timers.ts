// One deadline mechanism for every timed device (today the goldfish RTC's alarm): a single
// host timer on the device thread, armed for the earliest deadline and re-planned whenever a
// device re-arms. The vCPUs never poll devices for time.

import type { TimedDevice } from "../seams/time.js";

/** Node's setTimeout cannot wait longer than this (about 24.8 days); longer waits re-plan. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export class DeviceTimers {
  private readonly devices: TimedDevice[] = [];
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  add(device: TimedDevice): void {
    this.devices.push(device);
    this.replan();
  }

  /** Waits for the earliest armed deadline (call after any device changed its alarm). */
  replan(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.stopped) return;
    let soonest: number | null = null;
    for (const d of this.devices) {
      const ms = d.msUntilDeadline();
      if (ms !== null && (soonest === null || ms < soonest)) soonest = ms;
    }
    if (soonest === null) return;
    this.timer = setTimeout(this.expire, Math.min(MAX_TIMEOUT_MS, Math.max(0, Math.ceil(soonest))));
    this.timer.unref(); // an alarm alone never keeps a finished VM process alive
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private readonly expire = (): void => {
    this.timer = null;
    for (const d of this.devices) {
      const ms = d.msUntilDeadline();
      if (ms !== null && ms <= 0) d.fire();
    }
    this.replan();
  };
}
