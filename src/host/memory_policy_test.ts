import assert from "node:assert/strict";
import { test } from "node:test";
import { planBalloons, type VmMemoryView } from "./memory_policy.js";

const MiB = 2 ** 20;
const settings = { enabled: true, lowWatermarkBytes: 256 * MiB, highWatermarkBytes: 512 * MiB, floorBytes: 128 * MiB };
const vm = (name: string, availableMiB: number, o: Partial<VmMemoryView> = {}): VmMemoryView => ({
  name, policy: true, ramBytes: 1536 * MiB, ceilingBytes: 1536 * MiB, targetBytes: 1536 * MiB, actualBytes: 1536 * MiB,
  availableBytes: availableMiB * MiB, majorFaultsDelta: 0, availableDropBytes: 0, statsAgeMs: 1000, ...o,
});
const host = (freeMiB: number) => ({ limitBytes: 3072 * MiB, usedBytes: (3072 - freeMiB) * MiB, osAvailableBytes: 20_000 * MiB });

test("below the low watermark, the guests with the most unused memory inflate until the high watermark is free", () => {
  const d = planBalloons(host(100), [vm("busy", 900), vm("idle1", 1300), vm("idle2", 1200)], settings);
  // Need 412 MiB; idle1 has 1300 - 307 (20% reserve) spare: it alone gives it all.
  assert.deepEqual(d.map((x) => [x.vm, x.kind, (x.fromBytes - x.toBytes) / MiB]), [["idle1", "inflate", 412]]);
  assert.equal(d[0]!.figures.hostFreeBytes, 100 * MiB);
  assert.match(d[0]!.reason, /100 MiB free, below the 256 MiB watermark/);
});

test("a guest short of memory or faulting deflates first and is never squeezed in the same round", () => {
  const squeezed = { targetBytes: 600 * MiB, actualBytes: 600 * MiB };
  const d = planBalloons(host(100), [vm("busy", 40, squeezed), vm("faulty", 1000, { ...squeezed, majorFaultsDelta: 500 }), vm("idle", 1300)], settings);
  assert.deepEqual(d.map((x) => [x.vm, x.kind, x.toBytes / MiB]), [["busy", "deflate", 984], ["faulty", "deflate", 984], ["idle", "inflate", 1124]]);
  assert.match(d[0]!.reason, /only 40 MiB available/);
  assert.match(d[1]!.reason, /500 major faults/);
});

test("a guest taking memory right now is busy, not idle: it is not squeezed", () => {
  const d = planBalloons(host(100), [vm("growing", 1300, { availableDropBytes: 200 * MiB }), vm("idle", 600)], settings);
  assert.deepEqual(d.map((x) => x.vm), ["idle"]);
});

test("nothing happens with the policy off, per host or per VM, with stale figures, or above the watermark", () => {
  assert.deepEqual(planBalloons(host(100), [vm("idle", 1300)], { ...settings, enabled: false }), []);
  assert.deepEqual(planBalloons(host(100), [vm("idle", 1300, { policy: false })], settings), []);
  assert.deepEqual(planBalloons(host(100), [vm("idle", 1300, { statsAgeMs: 60_000 })], settings), []);
  assert.deepEqual(planBalloons(host(300), [vm("idle", 1300)], settings), []);
});

test("inflation stops at the floor and counts balloons still on their way down", () => {
  const d = planBalloons(host(0), [vm("small", 1000, { targetBytes: 300 * MiB, actualBytes: 300 * MiB })], settings);
  assert.equal(d[0]!.toBytes, 128 * MiB);
  assert.deepEqual(planBalloons(host(100), [vm("moving", 1300, { targetBytes: 900 * MiB, actualBytes: 1400 * MiB }), vm("idle", 1300)], settings), []);
});

test("with plenty free, a squeezed guest gets a step back, never beyond its ceiling", () => {
  const d = planBalloons(host(2000), [vm("idle", 300, { targetBytes: 400 * MiB, actualBytes: 400 * MiB, ceilingBytes: 512 * MiB })], settings);
  assert.deepEqual(d.map((x) => [x.kind, x.toBytes / MiB]), [["deflate", 512]]);
});

test("a guest whose statistics are late is not squeezed: it may be too busy taking memory to answer", () => {
  const plan = planBalloons(host(100), [vm("late", 1300, { statsAgeMs: 8_000 }), vm("idle", 1300)], settings);
  assert.ok(plan.length > 0 && plan.every((d) => d.vm === "idle"), JSON.stringify(plan));
});
