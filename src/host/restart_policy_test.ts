// Restart policies on a clean end: a guest that powers off (exit 0) is started again under
// "always" and left stopped under "on-failure", each with its "died" event saying why.

import { test } from "node:test";
import assert from "node:assert/strict";
import { startDaemon, testHost, waitFor } from "./testing/daemon_fixture.js";
import type { ApiClient } from "./api_client.js";
import type { VmView } from "./vm_manager.js";

type Event = { type: string; message: string; data: Record<string, unknown> };

const vm = (c: ApiClient, name: string): Promise<VmView> => c.call<VmView>("GET", `/v1/vms/${name}`);
const events = async (c: ApiClient, name: string): Promise<Event[]> => (await c.call("GET", `/v1/events?vm=${name}&limit=1000`)).events as Event[];

test("stop or kill between a power-off and its restart calls the restart off", async (t) => {
  const host = testHost(t);
  // A long backoff, so the VM surely waits for its restart when it is killed.
  const { client } = await startDaemon(t, host, { restartBackoffMs: { first: 60_000, max: 60_000 } });
  await client.call("POST", "/v1/vms", { name: "always", kernel: host.kernels.poweroff, memoryMiB: 32, restartPolicy: "always" });
  await client.call("POST", "/v1/vms/always/actions", { action: "start" });
  await waitFor("the restart to be scheduled", async () => ((await events(client, "always")).some((e) => e.type === "restart-scheduled") ? true : undefined));
  const v = await client.call<VmView>("POST", "/v1/vms/always/actions", { action: "stop" });
  assert.deepEqual([v.state, v.desired], ["stopped", "stopped"]);
  assert.equal((await events(client, "always")).at(-1)!.message, "VM always will not be restarted: it was stopped while waiting for its restart.");
  const again = await client.call("POST", "/v1/vms/always/actions", { action: "kill" }).catch((e: Error) => e);
  assert.match(String(again), /not running/);
});

test("a guest that powers off cleanly is restarted under policy always, and not under on-failure", async (t) => {
  const host = testHost(t);
  const { client } = await startDaemon(t, host);
  await client.call("POST", "/v1/vms", { name: "always", kernel: host.kernels.poweroff, memoryMiB: 32, restartPolicy: "always" });
  await client.call("POST", "/v1/vms", { name: "onfail", kernel: host.kernels.poweroff, memoryMiB: 32, restartPolicy: "on-failure" });
  const first = await client.call<VmView>("POST", "/v1/vms/always/actions", { action: "start" });
  await client.call("POST", "/v1/vms/onfail/actions", { action: "start" });

  const again = await waitFor("the always VM to run again after powering off", async () => {
    const v = await vm(client, "always");
    return v.restarts >= 1 && v.state === "running" && v.pid !== first.pid ? v : undefined;
  });
  assert.equal(again.desired, "running");
  const alwaysEvents = await events(client, "always");
  const died = alwaysEvents.find((e) => e.type === "died")!;
  assert.equal(died.message, "VM always ended: the guest powered off.");
  assert.deepEqual(died.data, { code: 0, signal: null, reason: "poweroff", failed: false });
  const types = alwaysEvents.map((e) => e.type);
  const diedAt = types.indexOf("died");
  assert.deepEqual(types.slice(diedAt, diedAt + 3), ["died", "restart-scheduled", "restarted"]);
  assert.match(alwaysEvents[diedAt + 1]!.message, /restart policy always/);

  const stopped = await waitFor("the on-failure VM to be seen stopped", async () => {
    const v = await vm(client, "onfail");
    return v.state === "stopped" ? v : undefined;
  });
  assert.deepEqual([stopped.pid, stopped.desired, stopped.restarts, stopped.lastExit], [null, "stopped", 0, "the guest powered off"]);
  const onfailTypes = (await events(client, "onfail")).map((e) => e.type);
  assert.equal(onfailTypes.at(-1), "died");
  assert.ok(!onfailTypes.includes("restart-scheduled"), `no restart for a clean power-off under on-failure: ${onfailTypes.join(", ")}`);

  // Killing an "always" VM on purpose ends it for good, also between a power-off and its restart.
  await client.call("POST", "/v1/vms/always/actions", { action: "kill" });
  const killed = await vm(client, "always");
  assert.deepEqual([killed.desired, killed.pid], ["stopped", null]);
  await new Promise((r) => setTimeout(r, 2500)); // longer than the run plus the test daemon's backoff
  const later = await vm(client, "always");
  assert.deepEqual([later.state, later.desired, later.restarts], ["stopped", "stopped", killed.restarts]);
});
