// Test fixture: a hart with RAM at 0x8000_0000, an empty bus and a settable clock. By default the
// bus's devices are served inside the vCPU; with `exits`, every device access is an MMIO exit
// that runTo() completes on the bus, as the VMM's vCPU loop does.
import { GuestRam } from "../../seams/guest_ram.js";
import { Bus } from "../../machine/bus.js";
import { Hart } from "../hart.js";
import { BlockCache } from "../jit/block_cache.js";
import { EXIT_MMIO } from "../exit.js";
import { dispatchExit } from "../../machine/exit_dispatch.js";
import type { Asm } from "./asm.js";

export const RAM_BASE = 0x8000_0000;

export interface TestMachine {
  hart: Hart;
  ram: GuestRam;
  bus: Bus;
  clock: { frequency: number; ticks: number; now(): number };
}

export function makeMachine(ramSize = 4 << 20, opts: { exits?: boolean; jit?: boolean } = {}): TestMachine {
  const ram = new GuestRam(RAM_BASE, ramSize);
  const bus = new Bus();
  const clock = { frequency: 10_000_000, ticks: 0, now(): number { return this.ticks; } };
  // The state block above RAM, as the board builds its harts.
  const hart = new Hart({ hartId: 0, ram, vcpuDevices: opts.exits ? new Bus() : bus, time: clock, stateBlock: true });
  if (opts.jit) hart.useJit(new BlockCache(ram));
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
    if (m.hart.exit.reason === EXIT_MMIO) completeMmioOnBus(m);
    steps++;
  }
  if (m.hart.getPc() !== end) throw new Error(`hart did not reach 0x${end.toString(16)} (pc 0x${m.hart.getPc().toString(16)})`);
  return steps;
}

/** Performs the hart's pending MMIO exit on the machine's bus, as the VMM does. */
export function completeMmioOnBus(m: TestMachine): void {
  dispatchExit(m.hart, { bus: m.bus });
}
