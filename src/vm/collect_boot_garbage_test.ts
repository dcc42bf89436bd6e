import { test } from "node:test";
import assert from "node:assert/strict";
import { collectGarbageNow } from "./collect_boot_garbage.js";

test("a full collection gives back the memory of large buffers nothing refers to any more", () => {
  const external = (): number => process.memoryUsage().arrayBuffers;
  let big: Uint8Array | null = new Uint8Array(64 * 2 ** 20).fill(1);
  const withBuffer = external();
  assert.ok(big.length > 0);
  big = null;
  collectGarbageNow();
  assert.ok(external() < withBuffer - 32 * 2 ** 20, `array buffers ${withBuffer} → ${external()}`);
});
