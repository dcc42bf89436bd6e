// A paused VM's hart states carry the IPIs sent to harts that parked before taking them: the IPI
// lives only in the hart's control word until then, and a restored guest must still see it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { GuestRam } from "../seams/guest_ram.js";
import { Bus } from "../machine/bus.js";
import { Hart } from "../cpu/hart.js";
import { MIP_SSIP } from "../cpu/constants.js";
import { HartControl } from "./vcpu_control.js";
import { withWaitingIpi } from "./vcpu_threads.js";

const hart = (): Hart =>
  new Hart({ hartId: 0, ram: new GuestRam(0x8000_0000, 1 << 20), vcpuDevices: new Bus(), time: { frequency: 10_000_000, now: () => 0 }, stateBlock: true });

test("an IPI waiting in a parked hart's control word is pending in its saved state; none is made up", () => {
  const control = new HartControl();
  const state = hart().save();
  assert.equal(withWaitingIpi(state, control).mipSoftware & MIP_SSIP, 0, "no IPI sent: none pending");
  control.raiseSoftwareInterrupt();
  const saved = withWaitingIpi(state, control);
  assert.equal(saved.mipSoftware & MIP_SSIP, MIP_SSIP);
  const restored = hart();
  restored.restore(saved);
  assert.equal(restored.mip() & MIP_SSIP, MIP_SSIP, "the restored hart sees the IPI");
  assert.equal(state.mipSoftware & MIP_SSIP, 0, "the hart's own state is left alone (its thread takes the word on resume)");
});
