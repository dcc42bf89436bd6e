// The control socket stays responsive under a hostile guest: a latency, so it runs alone (as the
// *_alone tests do: scripts/test.mjs), where only the VMM under test competes for the host's cores.
import { test } from "node:test";
import assert from "node:assert/strict";
import { performance } from "node:perf_hooks";
import { interruptStorm } from "./testing/hostile_guests.js";
import { connect, median, quit, startVmm, statusLatencies } from "./testing/vmm_rig.js";

test("an interrupt storm on the UART: the control socket answers within 100 ms and quit stops the VM within 1 s", async () => {
  const vmm = startVmm(interruptStorm());
  try {
    const client = await connect(vmm);
    const lat = await statusLatencies(client, 2000).catch((e: Error) => {
      throw new Error(`${e.message} VMM stderr: ${vmm.stderrText()}`);
    });
    // The promise is 100 ms; the median must meet it, and no answer may take ten times that.
    assert.ok(median(lat) < 100, `median query-status ${median(lat).toFixed(1)} ms: ${lat.map((x) => x.toFixed(0)).join(" ")}`);
    assert.ok(lat[lat.length - 1]! < 1000, `slowest query-status ${lat[lat.length - 1]!.toFixed(0)} ms`);
    const t0 = performance.now();
    await quit(client);
    const { at, code } = await vmm.exited;
    assert.equal(code, 0, vmm.stderrText());
    assert.ok(at - t0 < 1000, `quit took ${(at - t0).toFixed(0)} ms to end the process`);
    client.close();
  } finally {
    vmm.cleanup();
  }
});

