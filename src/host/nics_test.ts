// NICs in the VM spec, through the API: kept in the inventory, handed to the VM process as
// `--net` (tiny kernels: the VM process opens the NIC and joins the switch without booting
// Linux), changed for the next start.

import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startDaemon, testHost, waitFor } from "./testing/daemon_fixture.js";
import { answers } from "../net/switch/server.js";
import type { ApiClient } from "./api_client.js";
import type { VmView } from "./vm_manager.js";
import type { DeviceStats } from "../vm/controller.js";

const devices = (c: ApiClient, name: string): Promise<DeviceStats[]> =>
  waitFor(`stats of ${name}`, async () => {
    const s = await c.call("GET", `/v1/vms/${name}/stats`);
    return typeof s.cpuMs === "number" ? (s.devices as DeviceStats[]) : undefined;
  });

test("a VM's NICs go from its spec to its process: a switch port each, link state as asked, changed at the next start", async (t) => {
  const host = testHost(t);
  const switchDir = join(host.dir, "sw");
  const saved = process.env.NODEVISOR_SWITCH_DIR;
  process.env.NODEVISOR_SWITCH_DIR = switchDir; // VM processes inherit the daemon's environment
  t.after(() => (saved === undefined ? delete process.env.NODEVISOR_SWITCH_DIR : (process.env.NODEVISOR_SWITCH_DIR = saved)));
  const { client } = await startDaemon(t, host);
  const nicsA = [{ mode: "switch", switch: "t1", mac: "52:54:00:00:00:0a" }];
  const nicsB = [{ mode: "switch", switch: "t1", vlan: 7, linkUp: false, rxBps: 1000000 }];
  await client.call("POST", "/v1/vms", { name: "a", kernel: host.kernels.idle, memoryMiB: 32, nics: nicsA });
  await client.call("POST", "/v1/vms", { name: "b", kernel: host.kernels.idle, memoryMiB: 32, nics: nicsB });
  assert.deepEqual((await client.call<VmView>("GET", "/v1/vms/b")).spec.nics, nicsB);
  await client.call("POST", "/v1/vms/a/actions", { action: "start" });
  await client.call("POST", "/v1/vms/b/actions", { action: "start" });

  assert.ok(await answers(join(switchDir, "t1.sock")), "the first VM started switch t1");
  const netA = (await devices(client, "a")).find((d) => d.name === "net0");
  const netB = (await devices(client, "b")).find((d) => d.name === "net0");
  assert.equal(netA?.kind, "virtio-net");
  assert.deepEqual([netA!.counters!.linkUp, netB!.counters!.linkUp], [1, 0], "b's cable is unplugged as its spec asks");

  // A NIC change on a running VM waits for the next start.
  const edited = await client.call<VmView>("PATCH", "/v1/vms/a", { nics: [] });
  assert.deepEqual(edited.spec.nics, []);
  assert.ok((await devices(client, "a")).some((d) => d.name === "net0"), "still there until the restart");
  await client.call("POST", "/v1/vms/a/actions", { action: "kill" });
  await client.call("POST", "/v1/vms/a/actions", { action: "start" });
  const after = await waitFor("a's new process to report", async () => {
    const ds = await devices(client, "a");
    return ds.some((d) => d.name === "net0") ? undefined : ds;
  });
  assert.ok(after.every((d) => d.kind !== "virtio-net"));
});
