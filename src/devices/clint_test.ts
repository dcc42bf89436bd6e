import { test } from "node:test";
import assert from "node:assert/strict";
import { Clint } from "./clint.js";

class FakeHart {
  mip = 0;
  calls = 0;
  setInterruptPending(bit: number, level: boolean): void {
    this.calls++;
    this.mip = level ? this.mip | (1 << bit) : this.mip & ~(1 << bit);
  }
}

function setup(n = 2) {
  const harts = Array.from({ length: n }, () => new FakeHart());
  const time = { frequency: 10_000_000, t: 1000, now() { return this.t; } };
  const clint = new Clint({ harts, time });
  return { harts, time, clint };
}

const MSIP = 1 << 3;
const MTIP = 1 << 7;

test("msip words set and clear MSIP on their own hart only", () => {
  const { harts, clint } = setup();
  clint.write(4, 4, 1);
  assert.equal(harts[1].mip, MSIP);
  assert.equal(harts[0].mip, 0);
  assert.equal(clint.read(4, 4), 1);
  clint.write(4, 4, 0xfffffffe); // only bit 0 counts
  assert.equal(harts[1].mip, 0);
  assert.equal(clint.read(4, 4), 0);
});

test("mtime reads the time source, low word first, consistently across the 32-bit halves", () => {
  const { clint, time } = setup();
  time.t = 0x1_ffff_fffe;
  assert.equal(clint.read(0xbff8, 4), 0xfffffffe);
  time.t = 0x2_0000_0005; // time moves between the two halves of one 8-byte load
  assert.equal(clint.read(0xbffc, 4), 1, "high word latched by the low-word read");
  assert.equal(clint.read(0xbffc, 4), 2, "a lone high-word read is fresh");
  clint.write(0xbff8, 4, 0);
  assert.equal(clint.read(0xbff8, 4), 5, "mtime writes are ignored");
});

test("MTIP follows mtimecmp against time, on write and on update()", () => {
  const { harts, time, clint } = setup();
  assert.equal(harts[0].mip, 0, "reset compare value never fires");
  clint.write(0x4000, 4, 2000); // low word, high still all-ones
  clint.write(0x4004, 4, 0);
  assert.equal(clint.read(0x4000, 4), 2000);
  assert.equal(clint.read(0x4004, 4), 0);
  assert.equal(harts[0].mip, 0);
  time.t = 1999;
  clint.update();
  assert.equal(harts[0].mip, 0);
  time.t = 2000;
  clint.update();
  assert.equal(harts[0].mip, MTIP);
  assert.equal(harts[1].mip, 0);
  const calls = harts[0].calls;
  clint.update();
  assert.equal(harts[0].calls, calls, "no repeated signalling while nothing changes");
  clint.write(0x4004, 4, 1); // move the deadline 2^32 ticks ahead
  assert.equal(harts[0].mip, 0, "rewriting mtimecmp clears MTIP at once");
});

test("nextDeadline is the earliest armed mtimecmp, or Infinity", () => {
  const { clint } = setup(3);
  assert.equal(clint.nextDeadline(), Infinity);
  clint.write(0x4010, 4, 5000);
  clint.write(0x4014, 4, 0);
  clint.write(0x4008, 4, 0);
  clint.write(0x400c, 4, 1);
  assert.equal(clint.nextDeadline(), 5000);
  clint.write(0x4010, 4, 0xffffffff);
  clint.write(0x4014, 4, 0xffffffff);
  assert.equal(clint.nextDeadline(), 0x1_0000_0000);
});

test("hostile accesses read 0 and change nothing", () => {
  const { harts, clint } = setup();
  for (const off of [1, 2, 0x3ffc, 0x4010, 0x5000, 0xbff0, 0xffff, 0x10000, -4, 0.5]) {
    for (const size of [1, 2, 4] as const) {
      clint.write(off, size, 0xffffffff);
      if (off !== 0xbff8 && off !== 0xbffc) assert.equal(clint.read(off, size), 0, `offset ${off} size ${size}`);
    }
  }
  clint.write(0, 2, 1); // not a 32-bit access
  assert.deepEqual(harts.map((h) => h.mip), [0, 0]);
  assert.equal(clint.nextDeadline(), Infinity);
});

test("save and restore carry msip and mtimecmp and re-drive the harts", () => {
  const a = setup();
  a.clint.write(0, 4, 1);
  a.clint.write(0x4008, 4, 500);
  a.clint.write(0x400c, 4, 0);
  const state = JSON.parse(JSON.stringify(a.clint.save()));
  const b = setup();
  b.clint.restore(state);
  assert.equal(b.harts[0].mip, MSIP);
  assert.equal(b.harts[1].mip, MTIP, "time 1000 is past 500");
  assert.equal(b.clint.read(0x4008, 4), 500);
  assert.equal(b.clint.nextDeadline(), 500);
});
