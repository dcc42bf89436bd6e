import { test } from "node:test";
import assert from "node:assert/strict";
import { CODE_PAGE, CODE_PAGE_DMA_WRITTEN, GuestRam } from "./guest_ram.js";

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

test("every device write drops compiled code on the pages it touches and marks them dirty, in one call", () => {
  const ram = new GuestRam(BASE, 4 << 20);
  const slots = ram.jitSlots; // a JIT attaches
  const compiled = [5, 33, 39, 40, 255, 300, 301];
  for (const p of compiled) {
    ram.codePages[p] = CODE_PAGE;
    slots[p] = 7;
  }
  ram.codePages[600] = CODE_PAGE; // never written below: keeps its code
  ram.writeU32(BASE + 5 * 4096 + 8, 1);
  ram.write(BASE + 40 * 4096 - 2, new Uint8Array(4)); // straddles pages 39 and 40
  ram.writeU64(BASE + 255 * 4096, 7);
  ram.writeU16(BASE + 33 * 4096, 3);
  ram.discarding(300 * 4096, 2 * 4096); // a balloon page range given back
  for (const p of compiled) {
    assert.equal(ram.codePages[p], CODE_PAGE_DMA_WRITTEN, `page ${p} is marked written by a device`);
    assert.equal(slots[p], 0, `the JIT's dispatcher no longer enters page ${p}`);
  }
  assert.equal(ram.codePages[600], CODE_PAGE);
  assert.deepEqual([...ram.takeDirtyPages()], compiled);
  // A DMA view drops code at once (the device may write it any time); its pages are marked dirty when the device is done.
  ram.codePages[600] = CODE_PAGE;
  ram.slice(BASE + 600 * 4096, 16);
  assert.equal(ram.codePages[600], CODE_PAGE_DMA_WRITTEN);
  ram.deviceWrote(600 * 4096, 16);
  assert.deepEqual([...ram.takeDirtyPages()], [600]);
});

test("without a JIT no page holds code, so device writes do not look at the code-page flags", () => {
  const ram = new GuestRam(BASE, 4 << 20);
  // A flag no JIT set (no JIT ever took the slot table): proof that the scan was skipped.
  ram.codePages[5] = CODE_PAGE;
  ram.writeU32(BASE + 5 * 4096, 1);
  ram.slice(BASE + 5 * 4096, 64);
  assert.equal(ram.codePages[5], CODE_PAGE);
  assert.deepEqual([...ram.takeDirtyPages()], [5], "the dirty log is kept all the same");
  void ram.jitSlots; // a JIT attaches: from now on the flags are looked at
  ram.writeU32(BASE + 5 * 4096, 2);
  assert.equal(ram.codePages[5], CODE_PAGE_DMA_WRITTEN);
});
