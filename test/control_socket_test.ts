// The control socket against a real booted VM: the interface the daemon will depend on.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, existsSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ControlClient } from "../src/vm/control_client.js";
import type { InterruptsReport, VmStats, VmStatus } from "../src/vm/controller.js";
import { UART_IRQ } from "../src/machine/layout.js";
import { CLI, ROOT, ensureTestImage } from "./helpers.js";

before(ensureTestImage, { timeout: 600_000 });

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test("a VM is driven through its control socket: status, stats, pause/resume, console, powerdown", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nodevisor-ctl-"));
  const sock = join(dir, "vm.sock");
  const disk = join(dir, "data.raw");
  writeFileSync(disk, new Uint8Array(1 << 20)); // the guest reads its partition table at probe: requests to time
  const child = spawn(process.execPath, ["--import", "tsx", CLI, "run", "--control-socket", sock, "--disk", disk], { cwd: ROOT, stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  child.stdout.on("data", (d) => (stdout += d));
  const exited = new Promise<number | null>((r) => child.on("close", r));
  try {
    await waitFor(() => existsSync(sock), 60_000, "the control socket");
    const client = await ControlClient.connect(sock);
    assert.equal(client.greeting.nodevisor.protocol, 1);
    const events: string[] = [];
    for (const e of ["STOP", "RESUME", "SHUTDOWN", "POWERDOWN"]) client.on(e, () => events.push(e));
    let console = "";
    client.on("CONSOLE", (d: { data: string }) => (console += Buffer.from(d.data, "base64").toString()));
    await client.execute("console-attach");

    await waitFor(() => stdout.includes("~# "), 180_000, "the shell prompt");
    const status = await client.execute<VmStatus>("query-status");
    assert.equal(status.state, "running");
    assert.equal(status.vcpus, 1);

    await client.execute("console-write", { data: Buffer.from("echo ctl-$((6*7))\n").toString("base64") });
    await waitFor(() => console.includes("ctl-42"), 30_000, "the echoed command on the attached console");

    const stats = await client.execute<VmStats>("query-stats");
    assert.ok(stats.instructionsRetired > 100_000_000, `instructions retired: ${stats.instructionsRetired}`);
    assert.ok(Object.keys(stats.trapsByCause).length > 0, "traps are counted by cause");
    assert.ok(stats.devices.some((d) => d.kind === "virtio-rng" && d.requests > 0), JSON.stringify(stats.devices));
    const vda = stats.devices.find((d) => d.name === "vda")!;
    assert.equal(vda.kind, "virtio-blk");
    assert.ok(vda.requests > 0 && vda.latency!.count === vda.requests, `every request of vda is timed: ${JSON.stringify(vda)}`);
    assert.ok(vda.latency!.sumSeconds > 0 && vda.latency!.cumulativeCounts.at(-1)! <= vda.latency!.count);
    assert.deepEqual([vda.queueDepth!.current, vda.queueDepth!.max >= 1], [0, true]);

    // The guest's serial driver took the UART's interrupt: enabled in the S-mode context (SEIP, bit 9) of a hart, with a priority.
    const irq = await client.execute<InterruptsReport>("query-interrupts");
    assert.ok(irq.plic.contexts.some((c) => c.mipBit === 9 && c.enabled.includes(UART_IRQ)), JSON.stringify(irq.plic.contexts));
    assert.ok((irq.plic.sources.find((s) => s.id === UART_IRQ)?.priority ?? 0) > 0, JSON.stringify(irq.plic.sources));
    assert.equal(irq.uart.ier & 1, 1, `the driver listens for received data: ${JSON.stringify(irq.uart)}`);
    assert.equal(irq.harts.length, 1);
    assert.equal(irq.harts[0]!.stopped, false);
    assert.equal(Number(irq.harts[0]!.mie) & (1 << 9), 1 << 9, `the hart takes external interrupts: ${JSON.stringify(irq.harts[0])}`);

    events.length = 0; // a RESUME from the boot itself arrives when the client connected before it
    await client.execute("pause");
    assert.equal((await client.execute<VmStatus>("query-status")).state, "paused");
    const before = (await client.execute<VmStats>("query-stats")).instructionsRetired;
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await client.execute<VmStats>("query-stats")).instructionsRetired, before, "a paused VM executes nothing");
    await client.execute("resume");
    assert.equal((await client.execute<VmStatus>("query-status")).state, "running");

    await client.execute("powerdown");
    assert.equal(await exited, 0, "the guest shut down cleanly");
    assert.deepEqual(events.slice(0, 3), ["STOP", "RESUME", "POWERDOWN"]);
    client.close();
  } finally {
    child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
});
