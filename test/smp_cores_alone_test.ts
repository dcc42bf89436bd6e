// Threaded vCPUs run truly in parallel: busy vCPUs make the VM process use more than one host
// core (its CPU time against wall time). Runs alone after the other tests (scripts/test.mjs):
// on a host busy with other work the figure says nothing.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { VmStats } from "../src/vm/controller.js";
import { ensureTestImage } from "./helpers.js";
import { sleep, VmProcess } from "./testing/vm_process.js";
import { spinWithInterruptsOff } from "./testing/smp_guests.js";

before(ensureTestImage, { timeout: 600_000 });

/** CPU time (user + system) the process has used, in ms, from /proc. */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "latin1").replace(/^.*\) /, "").split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10; // utime, stime in 100 Hz ticks
}

/** A shell loop that keeps one vCPU busy far longer than the test looks (the JIT runs 20,000 rounds in ~1 s). */
const BUSY = "(i=0; while [ $i -lt 100000000 ]; do i=$((i+1)); done)";

test("--cpus 2: two CPU-bound guest processes use more than one host core", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-smp2-"));
  const sock = join(dir, "vm.sock");
  const vm = VmProcess.nodevisor(["--cpus", "2", "--control-socket", sock]);
  try {
    const c = await vm.connect(sock);
    await vm.waitFor(/~# /, 900_000);
    const say = (s: string) => c.execute("console-write", { data: Buffer.from(`${s}\n`).toString("base64") });
    await say(`echo BUSY-''START; ${BUSY} & ${BUSY} & wait; echo BUSY-''END`);
    await vm.waitFor(/BUSY-START/);
    await sleep(2000); // the guest's scheduler has spread the two processes by then
    const cpu0 = cpuMs(vm.pid);
    const t0 = Date.now();
    await sleep(4000);
    const ratio = (cpuMs(vm.pid) - cpu0) / (Date.now() - t0);
    console.log(`# two busy guest processes on --cpus 2: ${ratio.toFixed(2)} host cores`);
    assert.doesNotMatch(vm.stdout, /BUSY-END/, "the loops ran for the whole measurement");
    assert.ok(ratio > 1.1, `the VM used ${ratio.toFixed(2)} host cores for two busy vCPUs`);
    await c.execute("quit");
    await vm.exited;
  } finally {
    await vm.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("4 spinning vCPUs use more than one host core", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-spin-"));
  const sock = join(dir, "vm.sock");
  const kernel = join(dir, "spin.img");
  writeFileSync(kernel, spinWithInterruptsOff(4));
  const vm = VmProcess.nodevisor(["--cpus", "4", "--kernel", kernel, "--control-socket", sock]);
  try {
    const c = await vm.connect(sock);
    while ((await c.execute<VmStats>("query-stats")).instructionsRetired < 20_000_000) await sleep(100);
    const cpu0 = cpuMs(vm.pid);
    const t0 = Date.now();
    await sleep(3000);
    const cores = (cpuMs(vm.pid) - cpu0) / (Date.now() - t0);
    console.log(`# 4 spinning vCPUs: ${cores.toFixed(2)} host cores`);
    assert.ok(cores > 1.2, `4 spinning vCPUs used ${cores.toFixed(2)} host cores`);
    await c.execute("quit");
    await vm.exited;
  } finally {
    await vm.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
