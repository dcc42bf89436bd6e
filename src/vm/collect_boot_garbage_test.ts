import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { collectGarbageNow } from "./collect_boot_garbage.js";

/** Allocates and drops a big buffer in its own frame, so nothing on the caller's stack refers to it. */
function dropBigBuffer(): number {
  const big = new Uint8Array(64 * 2 ** 20).fill(1);
  return big[big.length - 1]! + process.memoryUsage().arrayBuffers;
}

test("a full collection gives back the memory of large buffers nothing refers to any more", async () => {
  const withBuffer = dropBigBuffer() - 1;
  // Backing stores are freed by V8's sweeper, which may finish a moment after the collection.
  for (let i = 0; i < 20 && process.memoryUsage().arrayBuffers > withBuffer - 32 * 2 ** 20; i++) {
    collectGarbageNow();
    await sleep(50);
  }
  assert.ok(process.memoryUsage().arrayBuffers < withBuffer - 32 * 2 ** 20, `array buffers ${withBuffer} → ${process.memoryUsage().arrayBuffers}`);
});
