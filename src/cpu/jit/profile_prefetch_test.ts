import { test } from "node:test";
import assert from "node:assert/strict";
import type { JitProfile, ProfiledPage } from "./jit_profile.js";
import { PREFETCH_RETRY, PREFETCH_TRIES, PrefetchPlan } from "./profile_prefetch.js";

const page = (hotAt: number, ram: number): ProfiledPage => ({ entries: [0], ages: [0], blocks: 1, hotAt, ram });

test("a prefetch plan hands out the pages of RAM it knows in the order they turned hot, at most as many as asked for", () => {
  const profile: JitProfile = new Map([["c", page(30, 3)], ["a", page(10, 1)], ["u", page(5, -1)], ["far", page(1, 4096)], ["b", page(20, 2)]]);
  const plan = new PrefetchPlan(profile, 256, 1e6);
  assert.equal(plan.nextAt, 10e6, "the earliest page with a RAM page inside RAM");
  assert.deepEqual(plan.due(9e6, 8), []);
  assert.deepEqual(plan.due(25e6, 1).map((c) => c.key), ["a"], "one asked for");
  assert.equal(plan.nextAt, 20e6);
  assert.deepEqual(plan.due(25e6, 8).map((c) => c.key), ["b"]);
  assert.deepEqual(plan.due(1e9, 8).map((c) => c.key), ["c"]);
  assert.equal(plan.nextAt, Infinity, "done: no page of unknown or outside RAM is ever handed out");
});

test("a candidate found with other code comes again PREFETCH_RETRY instructions later, PREFETCH_TRIES looks in all, in time order with the others", () => {
  const plan = new PrefetchPlan(new Map([["a", page(10, 1)], ["b", page(25, 2)]]), 256, 1e6);
  let at = 10e6;
  for (let look = 1; look <= PREFETCH_TRIES; look++) {
    const due = plan.due(at, 8);
    assert.deepEqual(due.map((c) => c.key), look === 2 ? ["b", "a"] : ["a"], `look ${look} at ${at}`);
    plan.again(due.at(-1)!, at);
    at += PREFETCH_RETRY;
    assert.equal(plan.nextAt, look === 1 ? 25e6 : look < PREFETCH_TRIES ? at : Infinity, "b's first look comes before a's second");
  }
  assert.deepEqual(plan.due(1e12, 8), [], `not looked at after ${PREFETCH_TRIES} looks`);
});
