import assert from "node:assert/strict";
import { test } from "node:test";
import { TokenBucketShaper } from "./shaper.js";

test("bytes and packets per second, each direction on its own, with a fake clock", () => {
  let t = 0;
  const s = new TokenBucketShaper({ tx: { bandwidth: { size: 10_000, refillTimeMs: 1000 } }, rx: { ops: { size: 2, refillTimeMs: 1000 } } }, () => t);
  assert.equal(s.admit("tx", 6000), 0);
  const wait = s.admit("tx", 6000);
  assert.ok(Math.abs(wait - 200) < 1e-6, `waits for the missing 2000 bytes: ${wait}`);
  t = 200;
  assert.equal(s.admit("tx", 6000), 0);
  // Over a simulated second of back-to-back 1500-byte frames, what passes is the rate.
  let sent = 0;
  for (t = 1000; t < 11_000; t += 1) while (s.admit("tx", 1500) === 0) sent += 1500;
  assert.ok(Math.abs(sent - 100_000) <= 10_000 + 1500, `~10 s × 10 kB/s, got ${sent}`);
  assert.equal(s.admit("rx", 100_000), 0, "rx has no byte limit");
  assert.equal(s.admit("rx", 1), 0);
  assert.ok(s.admit("rx", 1) > 0, "two packets per second");
  s.setLimits({});
  assert.equal(s.admit("rx", 1), 0, "limits removed at run time");
});
