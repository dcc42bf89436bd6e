import { test } from "node:test";
import assert from "node:assert/strict";
import { BlockRequestError, emptyBlockStats, type BlockBackend, type BlockStats } from "../block_backend.js";
import { RateLimitedBackend, type RateLimitTime } from "./rate_limited_backend.js";

/** A disk in memory, so the limiter is the only thing that takes time. */
class MemoryBackend implements BlockBackend {
  readonly readOnly = false;
  readonly id = "memory";
  readonly queueDepth = 8;
  readonly supportsDiscard = false;
  private readonly data: Uint8Array;
  private readonly counters: BlockStats = emptyBlockStats();
  constructor(readonly size: number) {
    this.data = new Uint8Array(size);
  }
  async read(offset: number, buf: Uint8Array): Promise<void> {
    buf.set(this.data.subarray(offset, offset + buf.length));
    this.counters.readRequests++;
    this.counters.bytesRead += buf.length;
  }
  async write(offset: number, data: Uint8Array): Promise<void> {
    this.data.set(data, offset);
    this.counters.writeRequests++;
    this.counters.bytesWritten += data.length;
  }
  async flush(): Promise<void> {
    this.counters.flushRequests++;
  }
  async discard(): Promise<void> {
    this.counters.discardRequests++;
  }
  async writeZeroes(offset: number, length: number): Promise<void> {
    this.data.fill(0, offset, offset + length);
  }
  stats(): BlockStats {
    return { ...this.counters };
  }
  async close(): Promise<void> {}
}

/** Virtual time: timers fire only when the test advances the clock. */
class FakeTime implements RateLimitTime {
  private t = 0;
  private nextId = 0;
  private timers: Array<{ id: number; due: number; fn: () => void }> = [];
  now = (): number => this.t;
  setTimer(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.push({ id, due: this.t + ms, fn });
    return id;
  }
  clearTimer(handle: unknown): void {
    this.timers = this.timers.filter((timer) => timer.id !== handle);
  }
  get pendingTimers(): number {
    return this.timers.length;
  }
  async advanceTo(target: number): Promise<void> {
    await settle();
    for (;;) {
      this.timers.sort((a, b) => a.due - b.due);
      const next = this.timers[0];
      if (next === undefined || next.due > target) break;
      this.timers.shift();
      this.t = next.due;
      next.fn();
      await settle();
    }
    this.t = target;
    await settle();
  }
}

async function settle(): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve));
}

/** Records, in virtual time, when each request completed. */
function track(time: FakeTime, log: Array<[string, number]>, name: string, p: Promise<void>): Promise<void> {
  return p.then(() => void log.push([name, time.now()]));
}

test("an ops limit admits a burst, then one request per token's worth of time, in FIFO order", async () => {
  const time = new FakeTime();
  const disk = new RateLimitedBackend(new MemoryBackend(1 << 20), { ops: { size: 2, refillTimeMs: 1000 } }, time);
  const log: Array<[string, number]> = [];
  const all = ["a", "b", "c", "d", "e"].map((n) => track(time, log, n, disk.read(0, new Uint8Array(512))));
  await time.advanceTo(2000);
  await Promise.all(all);
  assert.deepEqual(log, [["a", 0], ["b", 0], ["c", 500], ["d", 1000], ["e", 1500]]);
  assert.deepEqual(disk.throttleStats(), { throttledRequests: 3, totalWaitMs: 3000 });
  assert.equal(disk.stats().readRequests, 5);
});

test("a bandwidth limit charges bytes; flush costs no bandwidth but keeps its place in the queue", async () => {
  const time = new FakeTime();
  const disk = new RateLimitedBackend(new MemoryBackend(1 << 20), { bandwidth: { size: 4096, refillTimeMs: 100 } }, time);
  const log: Array<[string, number]> = [];
  await disk.write(0, new Uint8Array(4096));
  // The bucket is empty, but a flush needs no bandwidth and nobody waits ahead of it.
  await disk.flush();
  const done = [
    track(time, log, "r2k", disk.read(0, new Uint8Array(2048))),
    track(time, log, "flush", disk.flush()),
    track(time, log, "r1k", disk.read(0, new Uint8Array(1024))),
  ];
  await time.advanceTo(200);
  await Promise.all(done);
  assert.deepEqual(log, [["r2k", 50], ["flush", 50], ["r1k", 75]]);
  assert.equal(disk.stats().flushRequests, 2);
});

test("a request larger than the bucket is served rather than deadlocking, and later ones repay its excess", async () => {
  const time = new FakeTime();
  const disk = new RateLimitedBackend(new MemoryBackend(1 << 20), { bandwidth: { size: 1000, refillTimeMs: 1000, oneTimeBurst: 0 } }, time);
  const log: Array<[string, number]> = [];
  const done = [
    track(time, log, "small", disk.read(0, new Uint8Array(512))),
    // Needs a full bucket (1000 tokens) and leaves 3096 owed.
    track(time, log, "huge", disk.read(0, new Uint8Array(4096))),
    track(time, log, "after", disk.read(0, new Uint8Array(512))),
  ];
  await time.advanceTo(10_000);
  await Promise.all(done);
  assert.deepEqual(log, [["small", 0], ["huge", 512], ["after", 512 + 3096 + 512]]);
});

test("a small request never overtakes a waiting large one", async () => {
  const time = new FakeTime();
  const disk = new RateLimitedBackend(
    new MemoryBackend(1 << 20),
    { bandwidth: { size: 1024, refillTimeMs: 1000 }, ops: { size: 100, refillTimeMs: 1000 } },
    time,
  );
  const log: Array<[string, number]> = [];
  const done = [
    track(time, log, "first", disk.read(0, new Uint8Array(1024))),
    track(time, log, "big", disk.read(0, new Uint8Array(1024))),
    track(time, log, "flush", disk.flush()),
  ];
  await time.advanceTo(5000);
  await Promise.all(done);
  assert.deepEqual(log, [["first", 0], ["big", 1000], ["flush", 1000]]);
});

test("close fails waiting requests and stops the timer", async () => {
  const time = new FakeTime();
  const disk = new RateLimitedBackend(new MemoryBackend(1 << 20), { ops: { size: 1, refillTimeMs: 1000 } }, time);
  await disk.read(0, new Uint8Array(512));
  const waiting = disk.read(0, new Uint8Array(512));
  await settle();
  assert.equal(time.pendingTimers, 1);
  await disk.close();
  await assert.rejects(waiting, BlockRequestError);
  assert.equal(time.pendingTimers, 0);
  await assert.rejects(disk.read(0, new Uint8Array(512)), BlockRequestError);
});

test("aborted requests leave the queue at once, so a flush behind them does not wait for their tokens", async () => {
  const time = new FakeTime();
  const disk = new RateLimitedBackend(new MemoryBackend(1 << 20), { bandwidth: { size: 1024, refillTimeMs: 1000 } }, time);
  await disk.write(0, new Uint8Array(1024)); // empties the bucket
  const reset = new AbortController();
  const outcomes: string[] = [];
  const abandoned = [0, 1, 2].map((i) =>
    disk.write(0, new Uint8Array(1024), reset.signal).then(
      () => outcomes.push(`write ${i} ran`),
      (e: unknown) => outcomes.push(e instanceof BlockRequestError ? `write ${i} abandoned` : `write ${i}: ${e}`),
    ),
  );
  const log: Array<[string, number]> = [];
  const flushed = track(time, log, "flush", disk.flush());
  assert.equal(disk.queuedRequests, 4);
  reset.abort();
  await time.advanceTo(0);
  await Promise.all([...abandoned, flushed]);
  assert.deepEqual(outcomes, ["write 0 abandoned", "write 1 abandoned", "write 2 abandoned"]);
  assert.deepEqual(log, [["flush", 0]]);
  await assert.rejects(disk.read(0, new Uint8Array(512), reset.signal), BlockRequestError);
});

test("limits change while the disk runs: lifting them releases waiting requests at once", async () => {
  const time = new FakeTime();
  const disk = new RateLimitedBackend(new MemoryBackend(1 << 20), { ops: { size: 1, refillTimeMs: 1000 } }, time);
  const log: Array<[string, number]> = [];
  const done = ["a", "b", "c"].map((n) => track(time, log, n, disk.read(0, new Uint8Array(512))));
  await time.advanceTo(100);
  assert.deepEqual(log, [["a", 0]]);
  disk.setLimits({});
  await time.advanceTo(100);
  await Promise.all(done);
  assert.deepEqual(log, [["a", 0], ["b", 100], ["c", 100]]);
  disk.setLimits({ ops: { size: 2, refillTimeMs: 1000 } });
  const later = ["d", "e", "f"].map((n) => track(time, log, n, disk.read(0, new Uint8Array(512))));
  await time.advanceTo(700);
  await Promise.all(later);
  assert.deepEqual(log.slice(3), [["d", 100], ["e", 100], ["f", 600]]);
});
