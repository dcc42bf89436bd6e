import { test } from "node:test";
import assert from "node:assert/strict";
import { Scheduler } from "./scheduler.js";
import { VcpuPacer } from "./pacing.js";
import { VirtualClock } from "./clock.js";
import type { Hart } from "../cpu/hart.js";
import type { Clint } from "../devices/clint.js";

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A hart whose every run raises a device interrupt, as a guest hammering the UART would. */
function kickingHart(kick: () => void): Hart {
  return {
    stopped: false,
    waiting: false,
    stimecmp: Infinity,
    exit: { reason: 0 },
    setInterruptPending() {},
    run(budget: number) {
      kick();
      return budget;
    },
  } as unknown as Hart;
}

test("interrupts raised during a slice never start a second event-loop chain", async () => {
  let slices = 0;
  let running = true;
  let scheduler: Scheduler | null = null;
  const hart = kickingHart(() => scheduler?.kick());
  const clint = { update() {}, nextDeadline: () => Infinity } as unknown as Clint;
  scheduler = new Scheduler([hart], clint, new VirtualClock(), {
    afterSlice: () => slices++,
    onExit: () => 0,
    isRunning: () => running,
    onCrash: (e) => assert.fail(String(e)),
  });
  scheduler.kick();
  const turns = 12;
  for (let i = 0; i < turns; i++) await turn();
  running = false;
  scheduler.stop();
  // One chain runs one slice per event-loop turn; chains that multiplied would run 2^turns.
  assert.ok(slices >= 1 && slices <= turns + 1, `ran ${slices} slices in ${turns} event-loop turns`);
});

test("a kick while sleeping on the timer wakes exactly one chain", async () => {
  let slices = 0;
  let running = true;
  const hart = { stopped: false, waiting: true, stimecmp: Infinity, exit: { reason: 0 }, setInterruptPending() {}, run: () => 0 } as unknown as Hart;
  const clint = { update() {}, nextDeadline: () => Infinity } as unknown as Clint;
  const scheduler = new Scheduler([hart], clint, new VirtualClock(), {
    afterSlice: () => slices++,
    onExit: () => 0,
    isRunning: () => running,
    onCrash: (e) => assert.fail(String(e)),
  });
  scheduler.kick();
  await turn();
  assert.equal(slices, 1); // every hart waits: the scheduler now sleeps on its timer
  for (let i = 0; i < 5; i++) scheduler.kick();
  for (let i = 0; i < 5; i++) await turn();
  assert.equal(slices, 2);
  running = false;
  scheduler.stop();
});

test("sleeping in WFI wakes after the timer deadline, never before it (no wasted wake-ups)", async () => {
  const clock = new VirtualClock();
  const ticksPerMs = clock.frequency / 1000;
  let running = true;
  let wakes = 0;
  let early = 0;
  let dueThisSlice = false;
  const hart = {
    stopped: false,
    waiting: true,
    stimecmp: Infinity,
    exit: { reason: 0 },
    setInterruptPending(bit: number, on: boolean) {
      if (bit !== 5 || !on) return;
      dueThisSlice = true;
      // Re-arm 2.5 ms ahead: a fraction of a millisecond, which Math.floor would wake before.
      hart.stimecmp = clock.now() + 2.5 * ticksPerMs;
    },
    run: () => 0,
  } as unknown as Hart;
  const clint = { update() {}, nextDeadline: () => Infinity } as unknown as Clint;
  const scheduler = new Scheduler([hart], clint, clock, {
    afterSlice: () => {
      if (wakes++ > 0 && !dueThisSlice) early++;
      dueThisSlice = false;
    },
    onExit: () => 0,
    isRunning: () => running,
    onCrash: (e) => assert.fail(String(e)),
  });
  hart.stimecmp = clock.now() + 2.5 * ticksPerMs;
  scheduler.kick();
  while (wakes < 21) await new Promise((r) => setTimeout(r, 5));
  running = false;
  scheduler.stop();
  assert.equal(early, 0, `${early} of ${wakes - 1} wake-ups came before the deadline and found nothing due`);
});

test("a new cap ends a hold sized for the old one, and CPU used before begin() is not charged", async () => {
  // A pacer clock on which each run of the hart costs 0.01 ms of CPU (a slice of them is a hold of seconds at 1%).
  let cpu = 0;
  let wall = 0;
  const clock = { now: () => wall, cpuMs: () => cpu };
  const pacer = new VcpuPacer(1, 1, clock);
  let slices = 0;
  let running = true;
  const hart = { stopped: false, waiting: false, stimecmp: Infinity, exit: { reason: 0 }, setInterruptPending() {}, run: (budget: number) => ((cpu += 0.01), (wall += 0.01), budget) } as unknown as Hart;
  const clint = { update() {}, nextDeadline: () => Infinity } as unknown as Clint;
  const scheduler = new Scheduler([hart], clint, new VirtualClock(), { afterSlice: () => slices++, onExit: () => 0, isRunning: () => running, onCrash: (e) => assert.fail(String(e)), pacer });
  cpu += 5_000; // the process's CPU after the VM was built, before its guest runs (the kernel loading, the compile thread starting)
  scheduler.setCap(1);
  scheduler.begin();
  await turn();
  await turn();
  // Charged for its own slice only (the 5 s before begin() would have been a hold of minutes).
  assert.equal(slices, 1, "one slice, then a hold");
  assert.ok(pacer.stats().cpuMs < 5_000, `charged ${pacer.stats().cpuMs} ms`);
  for (let i = 0; i < 5; i++) await turn();
  assert.equal(slices, 1, "held at 1%");
  scheduler.setCap(100); // the daemon raises the cap: the hold ends, the VM runs at once
  for (let i = 0; i < 5; i++) await turn();
  running = false;
  scheduler.stop();
  assert.ok(slices > 1, `ran ${slices} slices after the cap was raised`);
});
