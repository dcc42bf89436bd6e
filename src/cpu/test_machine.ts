// Test fixture: a hart with RAM at 0x8000_0000, an empty bus and a settable clock.
import { GuestRam } from "../machine/memory.js";
import { Bus } from "../machine/bus.js";
import { Hart } from "./hart.js";
import type { Asm } from "./test_asm.js";

export const RAM_BASE = 0x8000_0000;

export interface TestMachine {
  hart: Hart;
  ram: GuestRam;
  bus: Bus;
  clock: { frequency: number; ticks: number; now(): number };
}

export function makeMachine(ramSize = 4 << 20): TestMachine {
  const ram = new GuestRam(RAM_BASE, ramSize);
  const bus = new Bus();
  const clock = { frequency: 10_000_000, ticks: 0, now(): number { return this.ticks; } };
  const hart = new Hart({ hartId: 0, ram, bus, time: clock });
  hart.setPc(RAM_BASE);
  return { hart, ram, bus, clock };
}

/** Load the program at its origin and point the hart at it. */
export function load(m: TestMachine, asm: Asm): void {
  m.ram.write(asm.origin, asm.bytesOut());
  m.hart.setPc(asm.origin);
}

/** Step until pc reaches `end` (or `max` steps pass); returns steps taken. */
export function runTo(m: TestMachine, end: number, max = 100_000): number {
  let steps = 0;
  while (m.hart.getPc() !== end && steps < max) {
    m.hart.run(1);
    steps++;
  }
  if (m.hart.getPc() !== end) throw new Error(`hart did not reach 0x${end.toString(16)} (pc 0x${m.hart.getPc().toString(16)})`);
  return steps;
}
