import { test } from "node:test";
import assert from "node:assert/strict";
import { GuestRam, HART_JC_GEN_OFFSET, JIT_LOOKUP_ENTRIES } from "./guest_ram.js";

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

test("every device write drops every JIT thread's compiled code on the pages it touches and marks them dirty, in one call", () => {
  const ram = new GuestRam(BASE, 4 << 20);
  const [t0, t3] = [ram.jitArea(0), ram.jitArea(3)]; // two JIT threads attach
  const compiled = [5, 33, 39, 40, 255, 300, 301];
  const keyOf = (p: number, po: number): number => 2 * (((p * 4096 + po) >>> 1) & (JIT_LOOKUP_ENTRIES - 1));
  for (const p of compiled) {
    ram.codePages[p] = t0.bit | t3.bit;
    t0.gates[p] = 7;
    t3.gates[p] = 7;
    t3.lookup[keyOf(p, 0x10)] = p * 4096 + 0x10 + 1;
    t3.lookup[keyOf(p, 0x10) + 1] = 9;
  }
  ram.codePages[600] = t0.bit; // never written below: keeps its code
  t0.gates[600] = 1;
  const alias = 5 + JIT_LOOKUP_ENTRIES / 2048; // page 5's lookup indexes, another page's block
  t3.lookup[keyOf(alias, 0x20)] = alias * 4096 + 0x20 + 1;
  ram.codePages[alias] = t3.bit;
  const gens = [0, 5].map((h) => ram.hartStateOffset(h) + HART_JC_GEN_OFFSET).map((off) => ram.i32[off >> 2]!);
  ram.writeU32(BASE + 5 * 4096 + 8, 1);
  ram.write(BASE + 40 * 4096 - 2, new Uint8Array(4)); // straddles pages 39 and 40
  ram.writeU64(BASE + 255 * 4096, 7);
  ram.writeU16(BASE + 33 * 4096, 3);
  ram.discarding(300 * 4096, 2 * 4096); // a balloon page range given back
  for (const p of compiled) {
    assert.equal(ram.codePages[p], 0, `no thread's code depends on page ${p} any more`);
    assert.equal(t0.gates[p], 0, `thread 0's dispatcher no longer enters page ${p}`);
    assert.equal(t3.gates[p], 0, `nor thread 3's`);
    assert.equal(t3.lookup[keyOf(p, 0x10)], 0, `thread 3's lookup no longer finds the block of page ${p}`);
    assert.equal(t3.lookup[keyOf(p, 0x10) + 1], 9, "its slot stays: a dispatcher reading the pair meanwhile finds its own function");
  }
  assert.equal(ram.codePages[600], t0.bit);
  assert.equal(t0.gates[600], 1);
  assert.equal(t3.lookup[keyOf(alias, 0x20)], alias * 4096 + 0x20 + 1, "a block of another page at the same lookup index stays");
  [0, 5].forEach((h, i) => assert.notEqual(ram.i32[(ram.hartStateOffset(h) + HART_JC_GEN_OFFSET) >> 2], gens[i], `hart ${h}'s jump cache moved on`));
  assert.deepEqual([...ram.takeDirtyPages()], compiled);
  // A DMA view drops code at once (the device may write it any time); its pages are marked dirty when the device is done.
  ram.slice(BASE + 600 * 4096, 16);
  assert.equal(ram.codePages[600], 0);
  assert.equal(t0.gates[600], 0);
  ram.deviceWrote(600 * 4096, 16);
  assert.deepEqual([...ram.takeDirtyPages()], [600]);
});

test("the JIT threads' tables are apart: one thread's gates and lookup are not another's", () => {
  const ram = new GuestRam(BASE, 4 << 20);
  const areas = [0, 1, 7].map((t) => ram.jitArea(t));
  assert.deepEqual(areas.map((a) => a.bit), [1, 2, 128]);
  areas.forEach((a, i) => { a.gates[10] = i + 1; a.lookup[4] = i + 1; new Int32Array(ram.buffer, a.marksOffset, 1)[0] = i + 1; });
  areas.forEach((a, i) => {
    assert.equal(a.gates[10], i + 1);
    assert.equal(a.lookup[4], i + 1);
    assert.equal(new Int32Array(ram.buffer, a.marksOffset, 1)[0], i + 1);
  });
  assert.equal(ram.u8.subarray(0, 4 << 20).some((b) => b !== 0), false, "guest RAM untouched");
  assert.throws(() => ram.jitArea(8), /JIT thread 8 has no tables/);
});

test("without a JIT no page holds code, so device writes do not look at the code-page flags", () => {
  const ram = new GuestRam(BASE, 4 << 20);
  // A flag no JIT set (no JIT ever took its tables): proof that the scan was skipped.
  ram.codePages[5] = 1;
  ram.writeU32(BASE + 5 * 4096, 1);
  ram.slice(BASE + 5 * 4096, 64);
  assert.equal(ram.codePages[5], 1);
  assert.deepEqual([...ram.takeDirtyPages()], [5], "the dirty log is kept all the same");
  void ram.jitArea(0); // a JIT attaches: from now on the flags are looked at
  ram.writeU32(BASE + 5 * 4096, 2);
  assert.equal(ram.codePages[5], 0);
});
