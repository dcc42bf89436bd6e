// A hostile guest cannot make the VMM unresponsive, unbounded or deaf to signals. Each test
// boots a bare-metal attacker (test/testing/hostile_guests.ts) and asserts a bound the VMM
// promises (docs/limits.md): control-socket answers, resident memory, log volume, exit on a
// signal — never a speed. The control socket's answer time under an interrupt storm is measured
// alone (vmm_latency_alone_test.ts): a latency is what other tests on the same two cores distort.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { balloonAbuse, blockResetStorm, consoleFlood, interruptStorm, logFlood, spinForever } from "./testing/hostile_guests.js";
import { KILL_AFTER_MS, connect, quit, startVmm } from "./testing/vmm_rig.js";
import type { VmStats, VmStatus } from "../src/vm/controller.js";

test("SIGTERM and SIGINT end a VM under an interrupt storm within a few seconds", async () => {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    const vmm = startVmm(interruptStorm());
    try {
      const client = await connect(vmm);
      await client.execute("query-status");
      const t0 = performance.now();
      vmm.child.kill(signal);
      const { at } = await vmm.exited;
      assert.ok(at - t0 < 5000, `${signal} took ${(at - t0).toFixed(0)} ms to end the process`);
      client.close();
    } finally {
      vmm.cleanup();
    }
  }
});

test("4 vCPUs spinning with interrupts off: paused (nothing retires), resumed, counted and quit", async () => {
  const vmm = startVmm(spinForever(), ["--cpus", "4"]);
  try {
    const client = await connect(vmm);
    const retired = async (): Promise<number> => (await client.execute<VmStats>("query-stats")).instructionsRetired;
    const first = await retired();
    await new Promise((r) => setTimeout(r, 300));
    assert.ok((await retired()) > first, "the harts run");
    await client.execute("pause");
    assert.equal((await client.execute<VmStatus>("query-status")).state, "paused");
    const paused = await retired();
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await retired(), paused, "no hart retires an instruction while paused");
    await client.execute("resume");
    await new Promise((r) => setTimeout(r, 300));
    assert.ok((await retired()) > paused, "the harts run again");
    await quit(client);
    assert.equal((await vmm.exited).code, 0, vmm.stderrText());
    client.close();
  } finally {
    vmm.cleanup();
  }
});

test("a flood of ignored register writes logs a bounded amount, with the count of what was suppressed", async () => {
  const vmm = startVmm(logFlood(0));
  try {
    const client = await connect(vmm);
    await new Promise((r) => setTimeout(r, 2500));
    await quit(client);
    await vmm.exited;
    client.close();
    // 20 lines a second of at most ~600 bytes, plus one summary line a second.
    assert.ok(vmm.stderrBytes() < 64 * 1024, `the VMM wrote ${vmm.stderrBytes()} bytes of log in 2.5 s`);
    assert.match(vmm.stderrText(), /ignored: a 1-byte write/);
    assert.match(vmm.stderrText(), /\d+ more messages like these suppressed/);
  } finally {
    vmm.cleanup();
  }
});

test("100 MiB written to the status console (hvc2) costs no memory beyond a short line", async () => {
  // No disks: slot 0 is virtio-rng, then the stdout, stderr and status consoles.
  const vmm = startVmm(consoleFlood(3, 100));
  try {
    const { code, signal } = await vmm.exited;
    assert.equal(signal, null, `killed after ${KILL_AFTER_MS} ms; peak RSS ${vmm.peakRssMiB().toFixed(0)} MiB`);
    assert.equal(code, 0, vmm.stderrText());
    // Node and the VMM take ~100 MiB, guest RAM touched ~3 MiB; the old VMM reached 1.2-1.6 GiB here.
    assert.ok(vmm.peakRssMiB() < 300, `peak RSS ${vmm.peakRssMiB().toFixed(0)} MiB`);
  } finally {
    vmm.cleanup();
  }
});

test("virtio-blk reset with 16 x 32 MiB writes in flight, repeated: memory stays bounded and a rate-limited VM still exits", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-blk-"));
  const disk = join(dir, "d.img");
  writeFileSync(disk, new Uint8Array(64 << 20));
  const vmm = startVmm(blockResetStorm(0, 16, 32 << 20, 8), ["--disk", `${disk},bps=1M`]);
  try {
    const { code, signal } = await vmm.exited;
    assert.equal(signal, null, `killed after ${KILL_AFTER_MS} ms: the VM never exited; peak RSS ${vmm.peakRssMiB().toFixed(0)} MiB`);
    assert.equal(code, 0, vmm.stderrText());
    // Guest RAM touched: 32 MiB buffer; in-flight data is capped at 64 MiB + one request per disk.
    assert.ok(vmm.peakRssMiB() < 128 + 96 + 150, `peak RSS ${vmm.peakRssMiB().toFixed(0)} MiB`);
  } finally {
    vmm.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("hostile balloon traffic (PFNs outside RAM or aliasing a live page, pages twice, overlapping and out-of-RAM reports) frees no live page and crashes nothing", async () => {
  // No disks or NICs: the balloon follows the entropy source and the three consoles.
  const vmm = startVmm(balloonAbuse(4, 128 << 20));
  try {
    const { code, signal } = await vmm.exited;
    assert.equal(signal, null, `killed after ${KILL_AFTER_MS} ms: the VM never exited; ${vmm.stderrText()}`);
    assert.equal(code, 0, `the live page lost its contents, or the VMM failed: ${vmm.stderrText()}`);
    assert.match(vmm.stderrText(), /virtio-balloon.*outside RAM/);
    assert.doesNotMatch(vmm.stderrText(), /internal error/);
  } finally {
    vmm.cleanup();
  }
});
