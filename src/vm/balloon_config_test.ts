import assert from "node:assert/strict";
import { test } from "node:test";
import { checkBalloonTarget, DEFAULT_BALLOON, parseBalloonSpec } from "./balloon_config.js";

test("--balloon settings parse, and each mistake is one sentence naming the fix", () => {
  assert.deepEqual(parseBalloonSpec(""), DEFAULT_BALLOON);
  assert.equal(DEFAULT_BALLOON.statsIntervalSec, 0, "no polling unless asked for, as on QEMU");
  assert.deepEqual(parseBalloonSpec("reporting=off,deflate-on-oom=on,stats=2,floor=128M"), {
    reporting: false, deflateOnOom: true, statsIntervalSec: 2, floorBytes: 128 * 2 ** 20,
  });
  assert.throws(() => parseBalloonSpec("reporting=maybe"), /Cannot use --balloon reporting=maybe: write reporting=on or reporting=off\./);
  assert.throws(() => parseBalloonSpec("stats=0.1"), /choose 0 \(never\) or 0.5 to 3600 seconds/);
  assert.throws(() => parseBalloonSpec("stats="), /statistics every NaN s/);
  assert.throws(() => parseBalloonSpec("floor=lots"), /write a size such as 128M/);
  assert.throws(() => parseBalloonSpec("colour=red"), /the settings are reporting=on\|off/);
});

test("a target must leave the guest between the floor and its RAM", () => {
  const GiB = 2 ** 30;
  assert.doesNotThrow(() => checkBalloonTarget(GiB / 2, GiB, 64 * 2 ** 20));
  assert.doesNotThrow(() => checkBalloonTarget(GiB, GiB, 64 * 2 ** 20));
  assert.throws(() => checkBalloonTarget(2 * GiB, GiB, 64 * 2 ** 20), /Cannot set the guest's memory to 2 GiB: choose a size from 64 MiB \(the floor\) to 1 GiB \(its RAM\)\./);
  assert.throws(() => checkBalloonTarget(-5, GiB, 64 * 2 ** 20), /memory to -5:/);
  assert.throws(() => checkBalloonTarget(NaN, GiB, 0), /memory to NaN/);
});
