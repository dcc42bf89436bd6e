// Memory overcommit end to end: three VMs promised 1.5 GiB each start on a daemon whose host limit
// is 3 GiB (overcommit ratio 1.5). Two idle guests fill their page cache from a disk, so their
// memory is resident on the host but unused; then the third really needs 1.2 GiB. The daemon's
// memory policy inflates the idle guests' balloons (their cache goes, and with it the host pages),
// every move is an event with its figures, and the busy guest finishes without its OOM killer.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ControlClient } from "../src/vm/control_client.js";
import { vmPaths } from "../src/host/paths.js";
import { startDaemon, testHost, waitFor } from "../src/host/testing/daemon_fixture.js";
import { ensureTestImage } from "./helpers.js";
import { buildGuestProgramDisk } from "./testing/guest_programs.js";

before(ensureTestImage, { timeout: 600_000 });

const MiB = 2 ** 20;
const GiB = 2 ** 30;

test("three 1.5 GiB VMs on a 3 GiB host: the policy takes memory from the idle ones and the busy one completes without the OOM killer", { timeout: 1_500_000 }, async (t) => {
  const host = testHost(t);
  const { daemon, client } = await startDaemon(t, host, {
    capacity: { cores: 2, memoryBytes: 3 * GiB, memoryOvercommit: 1.5, cpuOvercommit: 4 },
    pollIntervalMs: 1000,
  });
  const program = buildGuestProgramDisk("mem_touch", host.dir);
  const cache = join(host.dir, "cache.img");
  writeFileSync(cache, "");
  truncateSync(cache, 1200 * MiB); // sparse: reading it fills the guest's page cache with zeros
  const names = ["idle1", "idle2", "busy"];
  for (const name of names) {
    const disks = [{ path: program, readOnly: true }, ...(name === "busy" ? [] : [{ path: cache, readOnly: true }])];
    await client.call("POST", "/v1/vms", { name, memoryMiB: 1536, disks });
  }
  for (const name of names) await client.call("POST", `/v1/vms/${name}/actions`, { action: "start" });

  const consoles = new Map<string, ControlClient>();
  for (const name of names) {
    const c = await ControlClient.connect(vmPaths(host.paths, name).controlSocket);
    t.after(() => c.close());
    consoles.set(name, c);
  }
  const consoleText = (name: string): string => readFileSync(vmPaths(host.paths, name).consoleLog, "latin1");
  const type = (name: string, line: string) => consoles.get(name)!.execute("console-write", { data: Buffer.from(`${line}\n`).toString("base64") });
  for (const name of names) await waitFor(`${name}'s shell`, () => /~# /.test(consoleText(name)), 900_000);

  // The idle guests read a 1.2 GiB disk: their page cache becomes host memory they do not use.
  // fd 3 keeps the disk open: Linux drops a block device's cache at its last close.
  for (const name of ["idle1", "idle2"]) await type(name, `exec 3</dev/vdb; dd if=/dev/vdb of=/dev/null bs=1M 2>/dev/null; echo CACHED-$((6*7))`);
  for (const name of ["idle1", "idle2"]) await waitFor(`${name}'s cache`, () => /CACHED-42/.test(consoleText(name)), 600_000);
  type Event = { seq: number; vm: string; type: string; message: string; data: Record<string, number> };
  const allEvents = async (): Promise<Event[]> => (await client.call<{ events: Event[] }>("GET", "/v1/events?after=0&limit=1000")).events;
  const busyFrom = Math.max(0, ...(await allEvents()).map((e) => e.seq));
  // It holds the memory 15 s: the policy acts on readings up to 10 s old, and on the JIT the
  // guest touches 1.2 GiB faster than that, so a short hold could end before the policy saw it.
  await type("busy", "dd if=/dev/vda of=/tmp/prog bs=512 2>/dev/null; chmod +x /tmp/prog; /tmp/prog 1200 15; echo BUSY-$((6*7))");
  await waitFor("the busy guest's program", () => /BUSY-42/.test(consoleText("busy")), 900_000);
  const busyTo = Math.max(0, ...(await allEvents()).map((e) => e.seq));

  const busyOut = consoleText("busy");
  assert.match(busyOut, /touched 1200 MiB/, busyOut.slice(-2000));
  assert.doesNotMatch(busyOut, /oom-kill|Out of memory|lost its contents/, "the busy guest's OOM killer never fired");
  const events = await allEvents();
  const moves = events.filter((e) => e.type.startsWith("balloon-"));
  for (const e of moves) console.log(`# ${e.message}`);
  const inflates = moves.filter((e) => e.type === "balloon-inflate");
  assert.ok(inflates.some((e) => e.vm === "idle1") || inflates.some((e) => e.vm === "idle2"), `the policy inflated an idle guest; events: ${events.map((e) => `${e.vm} ${e.type}`).join(", ")}`);
  // Before and after its program, the busy guest is as idle as the others and may lend memory too.
  assert.ok(!inflates.some((e) => e.vm === "busy" && e.seq > busyFrom && e.seq <= busyTo), "the busy guest was not squeezed while it took memory");
  for (const e of inflates) {
    assert.ok(e.data.hostFreeBytes < 256 * MiB && e.data.availableBytes > 0 && e.data.toBytes < e.data.fromBytes, JSON.stringify(e.data));
  }
  // The idle guests' resident memory went back to the host.
  const touched = async (name: string): Promise<number> => (await client.call<{ memoryTouchedBytes: number }>("GET", `/v1/vms/${name}/stats`)).memoryTouchedBytes;
  // What the busy guest freed at its program's exit is reported back within seconds (the figure is sampled, up to 10 s old).
  let total = Infinity;
  const end = Date.now() + 60_000;
  while (total >= 3 * GiB && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 2000));
    total = (await touched("idle1")) + (await touched("idle2")) + (await touched("busy"));
  }
  console.log(`# guest RAM resident after the busy program: ${(total / MiB).toFixed(0)} MiB of a 3072 MiB limit`);
  assert.ok(total < 3 * GiB, `the VMs hold ${total / MiB} MiB, more than the host's 3 GiB`);
  await Promise.all(names.map((name) => client.call("POST", `/v1/vms/${name}/actions`, { action: "kill" })));
  daemon.close();
});
