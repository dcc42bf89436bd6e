import assert from "node:assert/strict";
import { test } from "node:test";
import { DISK_LATENCY_BOUNDS_SECONDS, LatencyHistogram, latencyQuantileBound } from "./latency.js";

test("observations fall in the first bucket whose bound is at or above them; counts are cumulative", () => {
  const h = new LatencyHistogram();
  for (const s of [0.00005, 0.00006, 0.001, 0.0011, 3, 60, -1]) h.observe(s);
  const snap = h.snapshot();
  const le = (b: number): number => snap.cumulativeCounts[snap.boundsSeconds.indexOf(b)]!;
  assert.deepEqual([le(0.00005), le(0.0001), le(0.001), le(0.0025), le(2.5), le(5)], [2, 3, 4, 5, 5, 6]);
  assert.equal(snap.count, 7); // the 60 s request is counted, above every bound (the +Inf bucket)
  assert.ok(Math.abs(snap.sumSeconds - 63.00221) < 1e-9);
  assert.equal(snap.boundsSeconds.length, DISK_LATENCY_BOUNDS_SECONDS.length);
});

test("quantile bounds: the smallest bound covering the share asked for", () => {
  const h = new LatencyHistogram();
  assert.equal(latencyQuantileBound(h.snapshot(), 0.5), null);
  for (let i = 0; i < 98; i++) h.observe(0.0002);
  h.observe(0.04);
  h.observe(10);
  assert.equal(latencyQuantileBound(h.snapshot(), 0.5), 0.00025);
  assert.equal(latencyQuantileBound(h.snapshot(), 0.99), 0.05);
  assert.equal(latencyQuantileBound(h.snapshot(), 1), Infinity);
});
