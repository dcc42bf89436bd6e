import { test } from "node:test";
import assert from "node:assert/strict";
import { GuestRam } from "./guest_ram.js";

const BASE = 0x8000_0000;

test("the dirty log marks every page a device write touches, and a take clears it", () => {
  const ram = new GuestRam(BASE, 1 << 20);
  assert.deepEqual([...ram.takeDirtyPages()], []);
  ram.writeU32(BASE + 5 * 4096 + 8, 1);
  ram.write(BASE + 40 * 4096 - 2, new Uint8Array(4)); // straddles pages 39 and 40
  ram.writeU64(BASE + 255 * 4096, 7);
  ram.writeU16(BASE + 33 * 4096, 3);
  assert.equal(ram.dirtyPageCount(), 5);
  assert.deepEqual([...ram.takeDirtyPages()], [5, 33, 39, 40, 255]);
  assert.deepEqual([...ram.takeDirtyPages()], [], "a take clears the log");
  ram.readU32(BASE + 9 * 4096);
  assert.deepEqual([...ram.takeDirtyPages()], [], "reads mark nothing");
});

test("a worker's view of RAM shares the dirty log it is given", () => {
  const ram = new GuestRam(BASE, 1 << 20);
  const other = new GuestRam(BASE, 1 << 20, ram.memory, ram.dirty.buffer as SharedArrayBuffer);
  other.writeU32(BASE + 70 * 4096, 1);
  assert.deepEqual([...ram.takeDirtyPages()], [70]);
});
