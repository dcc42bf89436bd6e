// Worker side of atomics_test.ts: one hart on the shared guest RAM runs the program at `pc`
// until it reaches `end`, then reports how many instructions it retired.
import { parentPort, workerData } from "node:worker_threads";
import { GuestRam } from "../../seams/guest_ram.js";
import type { MmioRouter } from "../../seams/mmio.js";
import { Hart } from "../hart.js";

const d = workerData as { memory: WebAssembly.Memory; base: number; size: number; hartId: number; pc: number; end: number; slowPathOnly?: boolean };
const noDevices: MmioRouter = { fault: true, readHigh: 0, claims: () => false, read: () => 0, write: () => {} };
const ram = new GuestRam(d.base, d.size, d.memory);
const hart = new Hart({ hartId: d.hartId, ram, vcpuDevices: noDevices, time: { frequency: 10_000_000, now: () => 0 } });
hart.slowPathOnly = d.slowPathOnly === true;
hart.setX(10, BigInt(d.hartId));
hart.setPc(d.pc);
let retired = 0;
while (hart.getPc() !== d.end) retired += hart.run(10_000);
parentPort!.postMessage(retired);
