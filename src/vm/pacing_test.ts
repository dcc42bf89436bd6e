import { test } from "node:test";
import assert from "node:assert/strict";
import { UNCAPPED_WINDOW_MS, VcpuPacer, type PacingClock } from "./pacing.js";

class FakeClock implements PacingClock {
  wall = 1000;
  cpu = 0;
  cpuReads = 0;
  now(): number {
    return this.wall;
  }
  cpuMs(): number {
    this.cpuReads++;
    return this.cpu;
  }
  /** The thread runs for `wallMs`, getting `cpuMs` of it on a host core. */
  run(wallMs: number, cpuMs = wallMs): void {
    this.wall += wallMs;
    this.cpu += cpuMs;
  }
}

/** A always-busy guest: 10 ms slices, each followed by the hold the pacer asks for. */
function runBusy(pacer: VcpuPacer, clock: FakeClock, totalMs: number, cpuShare = 1): void {
  const end = clock.wall + totalMs;
  while (clock.wall < end) {
    pacer.sliceStarted();
    clock.run(10, 10 * cpuShare);
    const hold = pacer.sliceEnded();
    if (hold > 0) {
      pacer.holdStarted();
      clock.wall += hold;
      pacer.holdEnded();
    }
  }
}

test("an uncapped VM is never held back and has no steal on an idle host", () => {
  const clock = new FakeClock();
  const pacer = new VcpuPacer(1, 1, clock);
  runBusy(pacer, clock, 1000);
  const s = pacer.stats();
  assert.equal(s.cpuMs, 1000);
  assert.equal(s.stealMs, 0);
});

for (const cap of [10, 30, 50, 85]) {
  test(`a busy vCPU capped at ${cap}% uses ${cap}% of a core and the rest is steal`, () => {
    const clock = new FakeClock();
    const pacer = new VcpuPacer(1, 1, clock);
    pacer.setCap(cap);
    const start = clock.wall;
    runBusy(pacer, clock, 20_000);
    const wall = clock.wall - start;
    const s = pacer.stats();
    assert.ok(Math.abs((s.cpuMs / wall) * 100 - cap) < 1, `used ${(s.cpuMs / wall) * 100}% under a ${cap}% cap`);
    assert.ok(Math.abs(s.cpuMs + s.stealMs - wall) < 1e-6, "every wall ms is either run or stolen");
    assert.equal(s.throttledMs, s.stealMs);
  });
}

test("the cap is per vCPU: 2 vCPUs at 25% on one thread get half a core", () => {
  const clock = new FakeClock();
  const pacer = new VcpuPacer(2, 1, clock);
  pacer.setCap(25);
  const start = clock.wall;
  runBusy(pacer, clock, 10_000);
  assert.ok(Math.abs(pacer.stats().cpuMs / (clock.wall - start) - 0.5) < 0.01);
});

test("a cap the threads cannot reach is no cap", () => {
  const clock = new FakeClock();
  const pacer = new VcpuPacer(2, 1, clock);
  pacer.setCap(60); // 1.2 cores on one thread
  runBusy(pacer, clock, 1000);
  assert.equal(pacer.stats().stealMs, 0);
});

test("host contention is steal too, and a cap is charged for CPU actually used", () => {
  const clock = new FakeClock();
  const pacer = new VcpuPacer(1, 1, clock);
  runBusy(pacer, clock, 1000, 0.6);
  const s = pacer.stats();
  assert.ok(Math.abs(s.cpuMs - 600) < 1e-6);
  assert.ok(Math.abs(s.stealMs - 400) < 1e-6);
  assert.equal(s.throttledMs, 0);
});

test("idle time banks only a short burst, and removing the cap ends holds at once", () => {
  const clock = new FakeClock();
  const pacer = new VcpuPacer(1, 1, clock);
  pacer.setCap(50);
  clock.wall += 60_000; // a long idle stretch
  pacer.sliceStarted();
  clock.run(200);
  const hold = pacer.sliceEnded();
  // 50 ms banked (100 ms window at 50%), 200 used: owes 150 ms of CPU = 300 ms of wall.
  assert.ok(Math.abs(hold - 300) < 1e-6, `hold ${hold}`);
  pacer.setCap(null);
  pacer.sliceStarted();
  clock.run(10);
  assert.equal(pacer.sliceEnded(), 0);
});

test("a cap that makes no sense is refused", () => {
  const pacer = new VcpuPacer(1, 1, new FakeClock());
  assert.throws(() => pacer.setCap(-5), /non-negative per cent/);
  assert.throws(() => pacer.setCap(Number.NaN), /non-negative per cent/);
});

test("CPU used between slices (devices, timers) is charged against the cap too", () => {
  const clock = new FakeClock();
  const pacer = new VcpuPacer(1, 1, clock);
  pacer.setCap(50);
  const start = clock.wall;
  const end = clock.wall + 10_000;
  while (clock.wall < end) {
    pacer.sliceStarted();
    clock.run(10);
    const hold = pacer.sliceEnded();
    clock.run(2); // device work after each slice
    if (hold > 0) {
      pacer.holdStarted();
      clock.wall += hold;
      pacer.holdEnded();
    }
  }
  const used = pacer.stats().cpuMs / (clock.wall - start);
  assert.ok(Math.abs(used - 0.5) < 0.01, `used ${used}`);
});

test("uncapped, the process's CPU is read once a window of slices, and the figures are exact at any moment", () => {
  const clock = new FakeClock();
  const pacer = new VcpuPacer(1, 1, clock);
  const reads = clock.cpuReads;
  runBusy(pacer, clock, 1050, 0.6); // 105 slices: 5 whole windows and one open
  assert.ok(clock.cpuReads - reads <= 1050 / UNCAPPED_WINDOW_MS + 1, `${clock.cpuReads - reads} reads of the CPU clock`);
  const s = pacer.stats();
  assert.ok(Math.abs(s.cpuMs - 630) < 1e-6, `cpu ${s.cpuMs}`);
  assert.ok(Math.abs(s.stealMs - 420) < 1e-6, `steal ${s.stealMs}`);
  pacer.setCap(50); // closes the open window: its CPU is not charged against the new cap
  pacer.sliceStarted();
  clock.run(10, 5);
  assert.equal(pacer.sliceEnded(), 0);
  assert.ok(Math.abs(pacer.stats().cpuMs - 635) < 1e-6);
});
