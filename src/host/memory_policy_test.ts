import assert from "node:assert/strict";
import { test } from "node:test";
import { changeOver, planBalloons, trimReadings, type VmMemoryView } from "./memory_policy.js";

const MiB = 2 ** 20;
const settings = { enabled: true, lowWatermarkBytes: 256 * MiB, highWatermarkBytes: 512 * MiB, floorBytes: 128 * MiB };
const vm = (name: string, availableMiB: number, o: Partial<VmMemoryView> = {}): VmMemoryView => ({
  name, policy: true, ramBytes: 1536 * MiB, ceilingBytes: 1536 * MiB, targetBytes: 1536 * MiB, actualBytes: 1536 * MiB,
  availableBytes: availableMiB * MiB, majorFaultsDelta: 0, growthBytes: 0, cpuCores: 0.02, statsAgeMs: 1000, ...o,
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
  const d = planBalloons(host(100), [vm("growing", 1300, { growthBytes: 200 * MiB }), vm("idle", 600)], settings);
  assert.deepEqual(d.map((x) => x.vm), ["idle"]);
  // Figures with a gap say nothing of what the guest did in it: it is not squeezed either.
  assert.deepEqual(planBalloons(host(100), [vm("unknown", 1300, { growthBytes: null }), vm("idle", 600)], settings).map((x) => x.vm), ["idle"]);
});

test("a guest at work lends memory only after the idle ones, and only once every balloon has arrived", () => {
  const working = vm("working", 1300, { cpuCores: 0.9 });
  // The idle guest gives all it can spare; the rest waits for its balloon to arrive.
  let d = planBalloons(host(-400), [working, vm("idle", 600)], settings);
  assert.deepEqual(d.map((x) => x.vm), ["idle"]);
  // A balloon still moving: the working guest is left alone although memory is short.
  d = planBalloons(host(-400), [working, vm("idle", 300, { targetBytes: 900 * MiB, actualBytes: 1000 * MiB })], settings);
  assert.deepEqual(d, []);
  // Every balloon has arrived and the idle guest has nothing left: now the working one lends.
  d = planBalloons(host(-400), [working, vm("idle", 100, { targetBytes: 300 * MiB, actualBytes: 300 * MiB })], settings);
  assert.deepEqual(d.map((x) => x.vm), ["working"]);
  assert.equal(d[0]!.figures.cpuCores, 0.9);
});

test("changeOver: the rise and fall to the newest reading, unknown across a gap or before the window is covered", () => {
  const r = (pairs: [number, number][]) => pairs.map(([at, bytes]) => ({ at, bytes }));
  assert.deepEqual(changeOver(r([[0, 500], [5, 900], [10, 700], [20, 600]]), 21, 20, 10), { rise: 100, fall: 300 });
  // Only the reading at the window's start and those after it count.
  assert.deepEqual(changeOver(r([[0, 100], [5, 900], [10, 700], [20, 600]]), 25, 20, 10), { rise: 0, fall: 300 });
  assert.equal(changeOver(r([[10, 500], [20, 600]]), 21, 20, 10), null, "the window is not covered yet");
  assert.equal(changeOver(r([[0, 500], [2, 500], [19, 400]]), 21, 20, 10), null, "a gap of 17 inside the window");
  assert.equal(changeOver(r([[0, 500], [9, 500]]), 21, 20, 10), null, "the newest reading is older than the gap");
  assert.equal(changeOver([], 21, 20, 10), null);
  assert.deepEqual(trimReadings(r([[0, 1], [3, 2], [8, 3], [12, 4]]), 25, 20).map((x) => x.at), [3, 8, 12]);
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
