// A hart's architectural state is its state block (hart_layout.ts): a second hart object over the
// same block — the board's object on the device thread, while a vCPU thread runs the hart — reads
// exactly what the running hart wrote, and a byte copy of the block carries the whole state.
import { test } from "node:test";
import assert from "node:assert/strict";
import { GuestRam } from "../seams/guest_ram.js";
import { Bus } from "../machine/bus.js";
import { Hart } from "./hart.js";
import { Asm } from "./testing/asm.js";
import { HART_TLB } from "./hart_layout.js";
import * as KC from "./constants.js";
import { C64_MSCRATCH, C64_MTVEC } from "./csr.js";

const RAM_BASE = 0x8000_0000;
const clock = { frequency: 10_000_000, now: () => 123_456 };
const hartOver = (ram: GuestRam): Hart => new Hart({ hartId: 0, ram, vcpuDevices: new Bus(), time: clock, stateBlock: true });

/** Writes CSRs of every kind (64-bit, mstatus, interrupt enables, PMP, FP, counters), takes a reservation, then spins. */
function program(): Asm {
  const a = new Asm(RAM_BASE);
  a.li(5, RAM_BASE + 0x1000).csrrw(0, KC.CSR_MTVEC, 5);
  a.li(6, 0x1234_5678).csrrw(0, KC.CSR_MSCRATCH, 6);
  a.li(7, 0x2000).csrrs(0, KC.CSR_MSTATUS, 7); // FS = initial
  a.csrrwi(0, KC.CSR_FRM, 3).csrrwi(0, KC.CSR_FFLAGS, 5);
  a.li(8, 0x222).csrrw(0, KC.CSR_MIE, 8).csrrw(0, KC.CSR_MIDELEG, 8);
  a.li(9, 0xb109).csrrw(0, KC.CSR_MEDELEG, 9);
  a.li(10, 0x1f).csrrw(0, KC.CSR_PMPCFG0, 10).li(11, -1).csrrw(0, KC.CSR_PMPADDR0, 11);
  a.csrrwi(0, KC.CSR_MINSTRET, 7).csrrwi(0, KC.CSR_MCOUNTINHIBIT, 1);
  a.li(12, RAM_BASE + 0x2000).amo(0x02, 8, 13, 12, 0); // lr.d: a reservation
  a.label("spin").addi(14, 14, 1).jal(0, "spin");
  return a;
}

test("another hart object over the block reads the running hart's whole state", () => {
  const ram = new GuestRam(RAM_BASE, 1 << 20);
  const reader = hartOver(ram); // built first, like the board's hart before the vCPU thread starts
  const runner = hartOver(ram);
  const asm = program();
  ram.write(asm.origin, asm.bytesOut());
  runner.setPc(asm.origin);
  runner.stimecmp = 999_999;
  runner.run(5_000);
  const state = runner.save();
  assert.equal(state.csr64[2 * C64_MSCRATCH], 0x1234_5678);
  assert.equal(state.csr64[2 * C64_MTVEC], RAM_BASE + 0x1000 | 0);
  assert.equal(state.pmpcfg[0], 0x1f);
  assert.equal(state.fflags, 5);
  assert.equal(state.frm, 3);
  assert.equal(state.mie, 0x222);
  assert.equal(state.reservationValid, true);
  assert.equal(state.stimecmp, 999_999);
  assert.ok(state.instret > 1000);
  assert.deepEqual(reader.save(), state);
});

test("a byte copy of the block is a copy of the hart", () => {
  const ram = new GuestRam(RAM_BASE, 1 << 20);
  const runner = hartOver(ram);
  const asm = program();
  ram.write(asm.origin, asm.bytesOut());
  runner.setPc(asm.origin);
  runner.run(3_000);
  const other = new GuestRam(RAM_BASE, 1 << 20);
  const copy = hartOver(other);
  new Uint8Array(other.buffer, other.hartStateOffset(0), HART_TLB).set(new Uint8Array(ram.buffer, ram.hartStateOffset(0), HART_TLB));
  assert.deepEqual(copy.save(), runner.save());
});
