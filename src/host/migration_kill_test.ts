// A daemon-driven live migration whose source VM process is killed in the middle of the copy:
// both daemons say the migration failed, their inventories stay consistent (no VM left "running"
// on a dead process, none restarted by itself), and the destination process does not live on as
// a half-received VM.

import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { randomFillSync } from "node:crypto";
import { existsSync } from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { join } from "node:path";
import { startDaemon, testHost, waitFor } from "./testing/daemon_fixture.js";
import { isAlive } from "./vm_process.js";
import { createQcow2 } from "../storage/qcow2/create.js";
import { openDisk } from "../storage/open.js";
import type { VmView } from "./vm_manager.js";
import { Frame } from "../vm/migration/stream.js";
import type { DaemonOptions } from "./daemon.js";

const MiB = 2 ** 20;
const capacity: DaemonOptions["capacity"] = { cores: 2, memoryBytes: 8 * 2 ** 30, cpuOvercommit: 4, memoryOvercommit: 1 };

/** Two daemons; on the first, VM m (a tiny idle kernel, restart policy no) runs with a disk holding `dataBytes` of random data. */
async function sourceAndDestination(t: TestContext, dataBytes: number) {
  const hostA = testHost(t);
  const hostB = testHost(t);
  const { client: a } = await startDaemon(t, hostA, { capacity });
  const { client: b } = await startDaemon(t, hostB, { capacity });
  const disk = join(hostA.dir, "data.qcow2");
  await createQcow2(disk, { size: dataBytes + 4 * MiB });
  const d = await openDisk(disk, { format: "qcow2" });
  await d.write(0, randomFillSync(new Uint8Array(dataBytes)));
  await d.close();
  await a.call("POST", "/v1/vms", { name: "m", kernel: hostA.kernels.idle, memoryMiB: 32, restartPolicy: "no", disks: [{ path: disk }] });
  await a.call("POST", "/v1/vms/m/actions", { action: "start" });
  const sourcePid = (await a.call<VmView>("GET", "/v1/vms/m")).pid!;
  return { hostA, hostB, a, b, sourcePid };
}

test("the source process killed in the middle of a migration: both daemons say it failed, and nothing half-received runs on", { timeout: 180_000 }, async (t) => {
  // A disk full of data, copied at 1 MiB/s: the migration lasts long enough to be killed in the middle.
  const { hostB, a, b, sourcePid } = await sourceAndDestination(t, 12 * MiB);

  const copy = join(hostB.dir, "copy.qcow2");
  const waiting = await b.call<VmView>("POST", "/v1/vms/m/receive", { listen: "tcp:127.0.0.1:0", spec: { disks: [{ path: copy }], restartPolicy: "always" } });
  const destinationPid = waiting.pid!;
  assert.ok(isAlive(destinationPid));
  await a.call("POST", "/v1/vms/m/migrate", { uri: waiting.migration!.uri, copyDisks: true, maxBandwidth: MiB });
  await waitFor("the disk copy to be under way", async () => ((await a.call<VmView>("GET", "/v1/vms/m")).migration?.disk?.bytesSent ?? 0) >= 2 * MiB, 60_000);
  process.kill(sourcePid, "SIGKILL");

  const source = await waitFor("the source daemon to see the migration fail", async () => {
    const v = await a.call<VmView>("GET", "/v1/vms/m");
    return v.migration?.status === "failed" && v.pid === null ? v : undefined;
  });
  assert.equal(source.state, "crashed", "a killed VM with restart policy no stays down");
  assert.equal(source.migratedTo, null, "it did not move");
  assert.match(source.migration!.error!, /the VM process ended during the migration/);
  const eventsA = (await a.call<{ events: Array<{ type: string; message: string }> }>("GET", "/v1/events?vm=m")).events;
  const failedA = eventsA.find((e) => e.type === "migration-failed");
  assert.ok(failedA !== undefined, `the failure is an event: ${eventsA.map((e) => e.type).join(", ")}`);
  assert.match(failedA.message, /^The migration of VM m to tcp:127\.0\.0\.1:\d+ failed: the VM process ended during the migration/);

  const destination = await waitFor("the destination daemon to see the migration fail", async () => {
    const v = await b.call<VmView>("GET", "/v1/vms/m");
    return v.state === "failed" ? v : undefined;
  });
  assert.deepEqual([destination.pid, destination.desired, destination.migration?.status], [null, "stopped", "failed"]);
  await waitFor("the destination process to end", () => !isAlive(destinationPid), 10_000);
  assert.equal(existsSync(copy), false, "the half-made disk copy is removed");
  // A while later the restart policy (always) has not brought a half-received VM to life.
  await new Promise((res) => setTimeout(res, 1500));
  const later = await b.call<VmView>("GET", "/v1/vms/m");
  assert.deepEqual([later.state, later.pid], ["failed", null]);
  const typesB = (await b.call<{ events: Array<{ type: string }> }>("GET", "/v1/events?vm=m")).events.map((e) => e.type);
  assert.deepEqual(typesB, ["created", "receiving", "receive-failed"]);
});

/**
 * Stands between a migration's source and destination: passes everything on until the destination
 * says READY (it has built the VM and waits for GO), then holds that for `holdMs` and calls `cut`.
 */
async function proxyCuttingAtReady(listenPath: string, destinationPath: string, holdMs: number, cut: (source: Socket, destination: Socket) => void): Promise<{ close: () => void; readySeen: () => boolean }> {
  let ready = false;
  const server = createServer((source) => {
    const destination = connect(destinationPath);
    source.on("error", () => {});
    destination.on("error", () => {});
    source.pipe(destination);
    destination.on("data", (chunk: Buffer) => {
      if (!ready && chunk[0] === Frame.READY) {
        ready = true;
        setTimeout(() => cut(source, destination), holdMs);
        return;
      }
      if (!ready) source.write(chunk);
    });
  });
  await new Promise<void>((res) => server.listen(listenPath, res));
  return { close: () => server.close(), readySeen: () => ready };
}

test("the source killed after the destination built the VM, before it handed the guest over: no half-received VM is taken for one that arrived", { timeout: 180_000 }, async (t) => {
  const { hostA, hostB, a, b, sourcePid } = await sourceAndDestination(t, MiB);

  const inbound = join(hostB.dir, "in.sock");
  const copy = join(hostB.dir, "copy.qcow2");
  const waiting = await b.call<VmView>("POST", "/v1/vms/m/receive", { listen: `unix:${inbound}`, spec: { disks: [{ path: copy }], restartPolicy: "always" } });
  const destinationPid = waiting.pid!;
  // The destination's control socket is open while it waits for GO: its daemon polls it meanwhile.
  const proxy = await proxyCuttingAtReady(join(hostA.dir, "proxy.sock"), inbound, 1500, (source, destination) => {
    process.kill(sourcePid, "SIGKILL");
    source.destroy();
    destination.destroy();
  });
  t.after(() => proxy.close());
  await a.call("POST", "/v1/vms/m/migrate", { uri: `unix:${join(hostA.dir, "proxy.sock")}`, copyDisks: true });

  const destination = await waitFor("the destination daemon to see the migration fail", async () => {
    const v = await b.call<VmView>("GET", "/v1/vms/m");
    return v.state === "failed" || v.state === "crashed" ? v : undefined;
  });
  assert.ok(proxy.readySeen(), "the destination had built the VM");
  assert.deepEqual([destination.state, destination.pid, destination.desired, destination.migration?.status], ["failed", null, "stopped", "failed"]);
  await waitFor("the destination process to end", () => !isAlive(destinationPid), 10_000);
  assert.equal(existsSync(copy), false, "the disk copy of a migration that did not happen is removed");
  await new Promise((res) => setTimeout(res, 1500));
  const later = await b.call<VmView>("GET", "/v1/vms/m");
  assert.deepEqual([later.state, later.pid], ["failed", null], "no restart policy brings a half-received VM to life");
  const typesB = (await b.call<{ events: Array<{ type: string }> }>("GET", "/v1/events?vm=m")).events.map((e) => e.type);
  assert.deepEqual(typesB, ["created", "receiving", "receive-failed"]);

  const source = await waitFor("the source daemon to see the migration fail", async () => {
    const v = await a.call<VmView>("GET", "/v1/vms/m");
    return v.migration?.status === "failed" && v.pid === null ? v : undefined;
  });
  assert.deepEqual([source.state, source.migratedTo], ["crashed", null]);
});
