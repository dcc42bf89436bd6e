import { test } from "node:test";
import assert from "node:assert/strict";
import { TokenBucket } from "./token_bucket.js";

function clock(): { now: () => number; advance(ms: number): void } {
  let t = 1000;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

test("tokens are spent, refill continuously at size per refill time, and never exceed size", () => {
  const c = clock();
  const bucket = new TokenBucket({ size: 1000, refillTimeMs: 1000 }, c.now);
  assert.deepEqual(bucket.reduce(600), { kind: "success" });
  assert.equal(bucket.available, 400);
  assert.deepEqual(bucket.reduce(500), { kind: "failure" });
  assert.equal(bucket.available, 400, "a failed reduce consumes nothing");
  assert.equal(bucket.waitTimeMs(500), 100);
  c.advance(99);
  assert.deepEqual(bucket.reduce(500), { kind: "failure" });
  c.advance(1);
  assert.deepEqual(bucket.reduce(500), { kind: "success" });
  assert.equal(bucket.available, 0);
  c.advance(0.5);
  assert.equal(bucket.available, 0, "half a token is not a token");
  c.advance(0.5);
  assert.equal(bucket.available, 1, "but the half earned earlier is kept");
  c.advance(60_000);
  assert.equal(bucket.available, 1000);
});

test("the one-time burst is spent first, never refills, and pauses refilling while it lasts", () => {
  const c = clock();
  const bucket = new TokenBucket({ size: 100, refillTimeMs: 1000, oneTimeBurst: 50 }, c.now);
  assert.deepEqual(bucket.reduce(30), { kind: "success" });
  assert.equal(bucket.oneTimeBurst, 20);
  assert.equal(bucket.available, 100);
  assert.deepEqual(bucket.reduce(120), { kind: "success" });
  assert.equal(bucket.oneTimeBurst, 0);
  assert.equal(bucket.available, 0);
  c.advance(10_000);
  assert.equal(bucket.oneTimeBurst, 0);
  assert.equal(bucket.available, 100);
});

test("a request larger than the bucket is served from a full bucket and its excess is repaid over time", () => {
  const c = clock();
  const bucket = new TokenBucket({ size: 100, refillTimeMs: 1000 }, c.now);
  assert.deepEqual(bucket.reduce(250), { kind: "overConsumption", ratio: 1.5 });
  assert.equal(bucket.available, 0);
  // 150 tokens owed take 1500 ms, then one more token takes 10 ms.
  assert.equal(bucket.waitTimeMs(1), 1510);
  c.advance(1500);
  assert.equal(bucket.available, 0);
  c.advance(10);
  assert.equal(bucket.available, 1);
  // Another oversized request waits for a full bucket rather than being served at once.
  assert.deepEqual(bucket.reduce(300), { kind: "failure" });
  assert.equal(bucket.waitTimeMs(300), 990);
});

test("replenish returns tokens, to the burst while it lasts", () => {
  const c = clock();
  const bucket = new TokenBucket({ size: 100, refillTimeMs: 1000, oneTimeBurst: 10 }, c.now);
  bucket.reduce(5);
  bucket.replenish(3);
  assert.equal(bucket.oneTimeBurst, 8);
  bucket.reduce(58);
  assert.equal(bucket.available, 50);
  bucket.replenish(80);
  assert.equal(bucket.available, 100);
});

test("invalid configurations are refused", () => {
  assert.throws(() => new TokenBucket({ size: 0, refillTimeMs: 100 }), RangeError);
  assert.throws(() => new TokenBucket({ size: 10, refillTimeMs: 0 }), RangeError);
  assert.throws(() => new TokenBucket({ size: 10, refillTimeMs: 100, oneTimeBurst: -1 }), RangeError);
});
