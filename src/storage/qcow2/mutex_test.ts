import assert from "node:assert/strict";
import { test } from "node:test";
import { IoGate, Mutex } from "./mutex.js";

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

test("the mutex runs holders one at a time, in arrival order", async () => {
  const m = new Mutex();
  const order: number[] = [];
  let inside = 0;
  await Promise.all(
    [0, 1, 2, 3].map((i) =>
      m.run(async () => {
        inside++;
        assert.equal(inside, 1);
        await tick();
        order.push(i);
        inside--;
      }),
    ),
  );
  assert.deepEqual(order, [0, 1, 2, 3]);
  assert.equal(m.locked, false);
});

test("the gate's drain waits for I/O in flight and holds back new I/O until reopened", async () => {
  const g = new IoGate();
  await g.enter();
  let drained = false;
  const draining = g.drain().then((reopen) => {
    drained = true;
    return reopen;
  });
  await tick();
  assert.equal(drained, false);
  let entered = false;
  const late = g.enter().then(() => (entered = true));
  g.leave();
  const reopen = await draining;
  await tick();
  assert.equal(entered, false);
  reopen();
  await late;
  assert.equal(entered, true);
  g.leave();
});
