// Threaded vCPUs under load, driven from outside: pause, resume, query-stats, powerdown and quit
// still work while every vCPU is busy, even when every hart spins with interrupts off.
// (That they use several host cores is smp_cores_alone_test.ts: it needs the host to itself.)
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ControlClient } from "../src/vm/control_client.js";
import type { VmStats, VmStatus } from "../src/vm/controller.js";
import { ensureTestImage } from "./helpers.js";
import { sleep, until, VmProcess } from "./testing/vm_process.js";
import { spinWithInterruptsOff } from "./testing/smp_guests.js";

before(ensureTestImage, { timeout: 600_000 });

const stats = (c: ControlClient) => c.execute<VmStats>("query-stats");

test("a 4-vCPU VM under load pauses, resumes, reports stats and powers down", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-smp4-"));
  const sock = join(dir, "vm.sock");
  const vm = VmProcess.nodevisor(["--cpus", "4", "--control-socket", sock]);
  try {
    const c = await vm.connect(sock);
    await vm.waitFor(/~# /, 900_000);
    const say = (s: string) => c.execute("console-write", { data: Buffer.from(`${s}\n`).toString("base64") });
    await say(`for k in 1 2 3 4; do while :; do :; done & done; echo LOAD-''ON`);
    await vm.waitFor(/LOAD-ON/);
    await sleep(1000);

    const a = await stats(c);
    await sleep(500);
    const b = await stats(c);
    assert.ok(b.instructionsRetired > a.instructionsRetired, "the busy vCPUs retire instructions");
    assert.equal((await c.execute<VmStatus>("query-status")).vcpus, 4);

    const asked = Date.now();
    await c.execute("pause");
    assert.ok(Date.now() - asked < 2000, "pause answers promptly under load");
    await sleep(200); // every vCPU parks within a quantum
    const p1 = (await stats(c)).instructionsRetired;
    await sleep(500);
    assert.equal((await stats(c)).instructionsRetired, p1, "a paused VM executes nothing on any vCPU");
    await c.execute("resume");
    await sleep(500);
    assert.ok((await stats(c)).instructionsRetired > p1, "resumed vCPUs run again");

    await say("kill %1 %2 %3 %4");
    await c.execute("powerdown");
    assert.equal(await vm.exited, 0, "the loaded guest shut down cleanly");
  } finally {
    await vm.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("4 harts spinning with interrupts off can still be paused, measured and quit", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-spin-"));
  const sock = join(dir, "vm.sock");
  const kernel = join(dir, "spin.img");
  writeFileSync(kernel, spinWithInterruptsOff(4));
  const vm = VmProcess.nodevisor(["--cpus", "4", "--kernel", kernel, "--control-socket", sock]);
  try {
    const c = await vm.connect(sock);
    await until(async () => (await stats(c)).instructionsRetired > 20_000_000, 60_000, "the spinning harts");
    await c.execute("pause");
    await sleep(200);
    const p1 = (await stats(c)).instructionsRetired;
    await sleep(300);
    assert.equal((await stats(c)).instructionsRetired, p1, "every spinning hart parked");
    await c.execute("resume");
    const asked = Date.now();
    await c.execute("quit");
    await vm.exited;
    assert.ok(Date.now() - asked < 5000, `quit took ${Date.now() - asked} ms`);
  } finally {
    await vm.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a VMM bug on a vCPU thread stops the VM as crashed (status 70, with the pc), never a hung process", async () => {
  const vm = VmProcess.nodevisor(["--cpus", "2", "--", "true"], { NODEVISOR_INJECT_FAULT: "vcpu" });
  const timer = setTimeout(() => void vm.stop(), 120_000);
  const status = await vm.exited;
  clearTimeout(timer);
  assert.equal(status, 70, vm.stderr);
  assert.match(vm.stderr, /internal error \(a nodevisor bug.*pc 0x[0-9a-f]+/s);
  assert.match(vm.stderr, /fault injected/);
});
