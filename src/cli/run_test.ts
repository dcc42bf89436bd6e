import { test } from "node:test";
import assert from "node:assert/strict";
import { parseDiskSpec } from "./run.js";

test("--disk flags: read-only, format and Firecracker-style limits", () => {
  const d = parseDiskSpec("/tmp/a.qcow2,readonly,format=qcow2,bps=10M,burst=64M,iops=500");
  assert.equal(d.path, "/tmp/a.qcow2");
  assert.equal(d.readOnly, true);
  assert.equal(d.format, "qcow2");
  assert.deepEqual(d.limits, {
    bandwidth: { size: 10 << 20, refillTimeMs: 1000, oneTimeBurst: 64 << 20 },
    ops: { size: 500, refillTimeMs: 1000 },
  });
});

test("--disk refuses unknown flags and bad amounts with the list of known ones", () => {
  assert.throws(() => parseDiskSpec("a.img,fast"), /unknown disk flag "fast".*bps=RATE/);
  assert.throws(() => parseDiskSpec("a.img,bps=lots"), /needs a positive amount/);
  assert.throws(() => parseDiskSpec("a.img,burst=1M"), /needs a bps= limit/);
  assert.throws(() => parseDiskSpec("a.img,format=vdi"), /unknown disk flag/);
});
