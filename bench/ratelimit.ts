// The disk rate limiter in real time: a 4 MiB/s limit under four concurrent readers, with an
// unlimited disk beside it (moved here from the unit tests: a rate over wall-clock time is a
// measurement, not a test; the arithmetic is tested with a fake clock in rate_limited_backend_test.ts).
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { emptyBlockStats, type BlockBackend } from "../src/storage/block_backend.js";
import { RateLimitedBackend } from "../src/storage/ratelimit/rate_limited_backend.js";

function memoryDisk(size: number): BlockBackend {
  const data = new Uint8Array(size);
  return {
    size, readOnly: false, id: "memory", queueDepth: 8, supportsDiscard: false,
    read: async (off, buf) => buf.set(data.subarray(off, off + buf.length)),
    write: async (off, buf) => data.set(buf, off),
    flush: async () => {}, discard: async () => {}, writeZeroes: async () => {},
    stats: emptyBlockStats, close: async () => {},
  };
}

export async function benchRateLimit(): Promise<void> {
  const bytesPerSecond = 4 << 20;
  const bucket = 256 * 1024;
  const limited = new RateLimitedBackend(memoryDisk(1 << 20), { bandwidth: { size: bucket, refillTimeMs: (bucket / bytesPerSecond) * 1000 } });
  const unlimited = new RateLimitedBackend(memoryDisk(1 << 20), {});
  const request = 16 * 1024;
  const start = performance.now();
  const deadline = start + 3000;
  let limitedBytes = 0;
  let lastDone = start;
  const limitedWorker = async (): Promise<void> => {
    const buf = new Uint8Array(request);
    while (performance.now() < deadline) {
      await limited.read(0, buf);
      limitedBytes += request;
      lastDone = performance.now();
    }
  };
  let unlimitedBytes = 0;
  const unlimitedWorker = async (): Promise<void> => {
    const buf = new Uint8Array(request);
    while (performance.now() < deadline) {
      for (let i = 0; i < 16; i++) await unlimited.read(0, buf);
      unlimitedBytes += 16 * request;
      await sleep(1);
    }
  };
  await Promise.all([limitedWorker(), limitedWorker(), limitedWorker(), limitedWorker(), unlimitedWorker()]);
  // The bucket starts full, so the first `bucket` bytes are free; the rest shows the enforced rate.
  const rate = (limitedBytes - bucket) / ((lastDone - start) / 1000);
  console.log("\n## Disk rate limiter (real time, 3 s)\n");
  console.log("| metric | value |\n|---|---|");
  console.log(`| limited disk, configured 4.00 MiB/s | ${(rate / 2 ** 20).toFixed(3)} MiB/s (${((rate / bytesPerSecond - 1) * 100).toFixed(2)}%) |`);
  console.log(`| unlimited disk beside it | ${(unlimitedBytes / 2 ** 20 / 3).toFixed(0)} MiB/s, ${unlimited.throttleStats().throttledRequests} requests throttled |`);
  await Promise.all([limited.close(), unlimited.close()]);
}
