import { test } from "node:test";
import assert from "node:assert/strict";
import { CodeShootdown, SHOOTDOWN_RING, type ShootdownTarget } from "./code_shootdown.js";

/** A reader's harts, recording what they were told to drop. */
function recorder(): ShootdownTarget & { pages: number[]; all: number } {
  const r = { pages: [] as number[], all: 0, dropWriteMappings: (p: number) => { r.pages.push(p); }, dropAllWriteMappings: () => { r.all++; } };
  return r;
}

test("an announcement settles once every other thread caught up, and parked or never-started threads do not hold it back", () => {
  const sab = CodeShootdown.create();
  const [a, b, c] = [0, 1, 2].map((t) => new CodeShootdown(sab, t));
  const rb = recorder(), rc = recorder();
  b!.unpark(rb);
  c!.unpark(rc);
  const seq = a!.announce(42);
  assert.equal(a!.settled(seq), false, "b and c run and have not caught up");
  b!.catchUp(rb);
  assert.equal(a!.settled(seq), false, "c has not caught up");
  c!.park();
  assert.equal(a!.settled(seq), true, "c waits parked: it runs no store until it unparks");
  assert.deepEqual(rb.pages, [42]);
  c!.unpark(rc);
  assert.deepEqual(rc.pages, [42], "unparking catches up before the hart runs");
  assert.equal(a!.settled(seq), true);
  const seq2 = a!.announce(43);
  assert.equal(a!.settled(seq2), false);
  b!.catchUp(rb);
  c!.catchUp(rc);
  assert.equal(a!.settled(seq2), true);
  assert.deepEqual(rb.pages, [42, 43]);
  assert.equal(a!.settled(0), true, "no announcement: nothing to wait for");
  b!.catchUp(rb);
  assert.deepEqual(rb.pages, [42, 43], "nothing twice");
  assert.deepEqual([rb.all, rc.all], [0, 0]);
});

test("a thread's own announcements are not its to act on, and two producers are kept apart", () => {
  const sab = CodeShootdown.create();
  const [a, b] = [0, 5].map((t) => new CodeShootdown(sab, t));
  const ra = recorder(), rb = recorder();
  a!.unpark(ra);
  b!.unpark(rb);
  const sa = a!.announce(1), sb = b!.announce(2);
  a!.catchUp(ra);
  b!.catchUp(rb);
  assert.deepEqual(ra.pages, [2]);
  assert.deepEqual(rb.pages, [1]);
  assert.ok(a!.settled(sa) && b!.settled(sb));
});

test("a reader that fell more than a ring behind drops all its write entries", () => {
  const sab = CodeShootdown.create();
  const [a, b] = [0, 1].map((t) => new CodeShootdown(sab, t));
  const rb = recorder();
  b!.unpark(rb);
  let seq = 0;
  for (let i = 0; i <= SHOOTDOWN_RING; i++) seq = a!.announce(i);
  assert.equal(a!.settled(seq), false);
  b!.catchUp(rb);
  assert.equal(rb.all, 1);
  assert.deepEqual(rb.pages, []);
  assert.equal(a!.settled(seq), true);
});

test("thread numbers outside the tables are refused", () => {
  assert.throws(() => new CodeShootdown(CodeShootdown.create(), 8), /JIT thread 8 has no shootdown ring/);
});
