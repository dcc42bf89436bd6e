import { test } from "node:test";
import assert from "node:assert/strict";
import { Worker } from "node:worker_threads";
import { VirtualClock } from "./clock.js";

test("a paused clock stands still and resumes where it stopped", async () => {
  const c = new VirtualClock();
  c.pause();
  const t = c.now();
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(c.now(), t);
  c.resume();
  assert.ok(c.now() - t < 10 * 10_000, "no jump of the 30 ms spent paused");
  c.restore({ ticks: 5_000_000 });
  assert.ok(c.now() >= 5_000_000 && c.now() < 5_100_000);
});

test("a worker thread given the clock's shared state reads the same time", async () => {
  const c = new VirtualClock();
  c.restore({ ticks: 123_000_000 });
  c.pause();
  const entry = new URL("./testing/clock_worker.ts", import.meta.url).href;
  const w = new Worker(new URL("./testing/ts_worker.mjs", import.meta.url), { workerData: { entry, shared: c.shared } });
  const seen = await new Promise<number>((resolve, reject) => {
    w.once("message", resolve);
    w.once("error", reject);
  });
  await w.terminate();
  assert.equal(seen, c.now(), "the same paused reading on both threads");
});
