import { test } from "node:test";
import assert from "node:assert/strict";
import { capsFromShares, type CpuDemand } from "./cpu_policy.js";

const vm = (name: string, shares: number, wantedCores: number, vcpus = 1, userCap: number | null = null): CpuDemand => ({ name, shares, wantedCores, vcpus, userCap });

test("without contention every VM keeps its own cap", () => {
  const caps = capsFromShares(2, [vm("a", 1, 0.5), vm("b", 4, 0.5, 1, 30)]);
  assert.deepEqual([...caps], [["a", null], ["b", 30]]);
});

test("two busy VMs on one core split it by their shares", () => {
  const caps = capsFromShares(1, [vm("hog", 1, 1), vm("web", 4, 1)]);
  assert.deepEqual([...caps], [["hog", 20], ["web", 80]]);
});

test("a VM that wants less than its part leaves the rest to the others", () => {
  const caps = capsFromShares(1, [vm("idle", 4, 0.1), vm("busy", 1, 1), vm("busy2", 1, 1)]);
  assert.equal(caps.get("idle"), 10);
  assert.equal(caps.get("busy"), 45);
  assert.equal(caps.get("busy2"), 45);
});

test("the cap is per vCPU and never above the user's own cap", () => {
  const caps = capsFromShares(2, [vm("big", 1, 4, 4), vm("capped", 9, 1, 1, 50)]);
  assert.equal(caps.get("capped"), 50);
  assert.equal(caps.get("big"), 38); // 1.5 cores over 4 vCPUs
});
