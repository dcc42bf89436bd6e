// The balloon end to end with the default image: inflating a 1 GiB VM's balloon by 512 MiB takes
// that much from the guest's MemTotal and from the VM process's resident memory (/proc/PID/status),
// deflating gives it back; with free page reporting, memory a guest program touched and freed goes
// back to the host within seconds.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ControlClient } from "../src/vm/control_client.js";
import type { BalloonInfo } from "../src/vm/controller.js";
import { CLI, ensureTestImage } from "./helpers.js";
import { VmProcess } from "./testing/vm_process.js";
import { buildGuestProgramDisk, runFromDisk } from "./testing/guest_programs.js";

before(ensureTestImage, { timeout: 600_000 });

const MiB = 2 ** 20;

async function bootVm(dir: string, extra: string[]): Promise<{ vm: VmProcess; c: ControlClient; type: (line: string) => Promise<unknown>; rssMiB: () => number }> {
  const sock = join(dir, "vm.sock");
  const disk = buildGuestProgramDisk("mem_touch", dir);
  const vm = new VmProcess(process.execPath, ["--import", "tsx", CLI, "run", "--memory", "1G", "--disk", `${disk},readonly`, "--control-socket", sock, "--console", "none", ...extra]);
  const end = Date.now() + 120_000;
  while (!existsSync(sock)) {
    if (Date.now() > end) throw new Error(`no control socket; stderr: ${vm.stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const c = await ControlClient.connect(sock);
  await vm.waitFor(/~# /, 900_000);
  const type = (line: string) => c.execute("console-write", { data: Buffer.from(`${line}\n`).toString("base64") });
  await guest(vm, type, "dd if=/dev/vda of=/tmp/prog bs=512 2>/dev/null; chmod +x /tmp/prog");
  const rssMiB = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${vm.pid}/status`, "latin1"))![1]) / 1024;
  return { vm, c, type, rssMiB };
}

/** Runs a guest line and waits for the marker it prints last; returns the output before the marker. */
async function guest(vm: VmProcess, type: (l: string) => Promise<unknown>, line: string, ms = 300_000): Promise<string> {
  const tag = `M${Math.random().toString(36).slice(2, 8)}`;
  const from = vm.stdout.length;
  // The quotes keep the marker out of the echoed command line.
  await type(`${line}; echo ${tag}-E""ND`);
  const end = Date.now() + ms;
  for (;;) {
    const out = vm.stdout.slice(from);
    const at = out.search(new RegExp(`^${tag}-END`, "m"));
    if (at >= 0) return out.slice(0, at);
    if (Date.now() > end) throw new Error(`the guest did not finish "${line}"; stdout:\n${out.slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function waitBalloon(c: ControlClient, done: (b: BalloonInfo) => boolean, ms = 180_000): Promise<BalloonInfo> {
  const end = Date.now() + ms;
  for (;;) {
    const b = await c.execute<BalloonInfo>("query-balloon");
    if (done(b)) return b;
    if (Date.now() > end) throw new Error(`the balloon did not get there: ${JSON.stringify(b)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const memTotalKiB = (out: string): number => Number(/MemTotal:\s+(\d+)/.exec(out)![1]);

test("inflating a 1 GiB VM's balloon by 512 MiB takes it from MemTotal and from the process's resident memory; deflating gives it back", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-balloon-"));
  // Without free page reporting, memory the guest touched and freed stays resident: only the balloon can take it.
  const { vm, c, type, rssMiB } = await bootVm(dir, ["--balloon", "reporting=off"]);
  try {
    assert.match(await guest(vm, type, "/tmp/prog 800"), /touched 800 MiB/);
    const before = memTotalKiB(await guest(vm, type, "grep MemTotal /proc/meminfo"));
    const rssBefore = rssMiB();
    assert.ok(rssBefore > 800, `the guest touched 800 MiB but the VM process holds only ${rssBefore} MiB`);
    await c.execute("balloon", { value: 512 * MiB });
    const inflated = await waitBalloon(c, (b) => b.actual === 512 * MiB);
    assert.equal(inflated.balloonBytes, 512 * MiB);
    assert.equal(inflated.reclaim, "madvise", inflated.reclaimProblem ?? "");
    assert.equal(inflated.pagesReturned, 131072);
    const after = memTotalKiB(await guest(vm, type, "grep MemTotal /proc/meminfo"));
    assert.equal(before - after, 512 * 1024, `MemTotal went from ${before} to ${after} kB`);
    const rssAfter = rssMiB();
    console.log(`# inflate 512 MiB: VmRSS ${rssBefore.toFixed(0)} -> ${rssAfter.toFixed(0)} MiB`);
    assert.ok(rssBefore - rssAfter > 512 * 0.85, `VmRSS fell only from ${rssBefore} to ${rssAfter} MiB`);
    // A target below the floor or above RAM is refused with a sentence.
    await assert.rejects(c.execute("balloon", { value: 2 ** 31 }), /Cannot set the guest's memory to 2 GiB: choose a size from 64 MiB \(the floor\) to 1 GiB/);
    await assert.rejects(c.execute("balloon", { value: MiB }), /the floor/);

    await c.execute("balloon", { value: 1024 * MiB });
    await waitBalloon(c, (b) => b.actual === 1024 * MiB);
    assert.equal(memTotalKiB(await guest(vm, type, "grep MemTotal /proc/meminfo")), before);
    // 700 MiB: more than the 431 MiB the inflated guest had, less than all of it (deflated pages wait on per-CPU lists).
    assert.match(await guest(vm, type, "/tmp/prog 700"), /touched 700 MiB/, "the guest uses the memory again, and reads back what it wrote");
    await c.execute("quit");
    await vm.exited;
    assert.doesNotMatch(vm.stderr, /internal error/);
  } finally {
    await vm.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("free page reporting: 400 MiB a guest program touched goes back to the host within seconds of its exit", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-reporting-"));
  // Two vCPUs: they run on worker threads that share guest RAM with the device thread that returns pages.
  const { vm, c, type, rssMiB } = await bootVm(dir, ["--cpus", "2", "--balloon", "stats=2"]);
  try {
    await new Promise((r) => setTimeout(r, 5000)); // what boot freed is reported first
    const idle = rssMiB();
    assert.match(await guest(vm, type, "/tmp/prog 400 3"), /touched 400 MiB/);
    const busy = rssMiB();
    assert.ok(busy - idle > 350, `the guest touched 400 MiB but VmRSS rose only from ${idle} to ${busy} MiB`);
    const end = Date.now() + 30_000;
    let now = rssMiB();
    while (now > idle + 48 && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 500));
      now = rssMiB();
    }
    console.log(`# reporting: VmRSS idle ${idle.toFixed(0)}, holding 400 MiB ${busy.toFixed(0)}, after exit ${now.toFixed(0)} MiB`);
    assert.ok(now <= idle + 48, `VmRSS stayed at ${now} MiB (idle ${idle}, busy ${busy})`);
    const b = await c.execute<BalloonInfo>("query-balloon");
    assert.ok(b.pagesReported >= (350 * MiB) / 4096, JSON.stringify(b));
    assert.ok((b.guestStats.values.total ?? 0) > 900 * MiB, "the guest's statistics arrived");
  } finally {
    await vm.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
