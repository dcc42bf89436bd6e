// Supervision: VM processes that die are restarted per policy; a daemon killed with SIGKILL
// leaves its VMs running, and the next daemon finds them and supervises them again.

import { test } from "node:test";
import assert from "node:assert/strict";
import { ApiClient } from "./api_client.js";
import { spawnDaemon, startDaemon, testHost, waitFor } from "./testing/daemon_fixture.js";
import { isAlive } from "./vm_process.js";
import type { VmView } from "./vm_manager.js";

const vm = (c: ApiClient, name: string): Promise<VmView> => c.call<VmView>("GET", `/v1/vms/${name}`);
const act = (c: ApiClient, name: string, action: string): Promise<VmView> => c.call<VmView>("POST", `/v1/vms/${name}/actions`, { action });

test("a VM process killed with SIGKILL is restarted per its policy, and its neighbour is unaffected", async (t) => {
  const host = testHost(t);
  const { client } = await startDaemon(t, host);
  await client.call("POST", "/v1/vms", { name: "flaky", kernel: host.kernels.idle, memoryMiB: 32, restartPolicy: "on-failure" });
  await client.call("POST", "/v1/vms", { name: "steady", kernel: host.kernels.idle, memoryMiB: 32, restartPolicy: "no" });
  const flaky = await act(client, "flaky", "start");
  const steady = await act(client, "steady", "start");

  process.kill(flaky.pid!, "SIGKILL");
  const restarted = await waitFor("flaky to be restarted", async () => {
    const v = await vm(client, "flaky");
    return v.state === "running" && v.pid !== flaky.pid ? v : undefined;
  });
  assert.equal(restarted.restarts, 1);
  assert.ok(isAlive(restarted.pid!));
  assert.match(restarted.lastExit ?? "", /killed by SIGKILL/);
  const events = (await client.call("GET", "/v1/events?vm=flaky")).events as Array<{ type: string; message: string; data: Record<string, unknown> }>;
  const died = events.find((e) => e.type === "died")!;
  assert.equal(died.message, "VM flaky ended: the VM process was killed by SIGKILL.");
  assert.deepEqual(died.data, { code: null, signal: "SIGKILL", reason: null, failed: true });
  assert.deepEqual(events.map((e) => e.type).slice(-3), ["died", "restart-scheduled", "restarted"]);

  const neighbour = await vm(client, "steady");
  assert.deepEqual([neighbour.state, neighbour.pid, neighbour.restarts], ["running", steady.pid, 0]);
  assert.ok(isAlive(steady.pid!));

  // Policy "no": a death is recorded and the VM stays down.
  process.kill(steady.pid!, "SIGKILL");
  const down = await waitFor("steady to be seen dead", async () => {
    const v = await vm(client, "steady");
    return v.state === "crashed" ? v : undefined;
  });
  assert.deepEqual([down.pid, down.desired, down.restarts], [null, "stopped", 0]);
  const metrics = await client.call<string>("GET", "/metrics");
  assert.match(metrics, /^nodevisor_vm_restarts_total\{vm="flaky"\} 1$/m);
});

test("the daemon killed with SIGKILL and started again finds its running VMs; nothing is lost from the inventory", async (t) => {
  const host = testHost(t);
  const first = await spawnDaemon(host);
  t.after(() => first.kill("SIGKILL"));
  const client = new ApiClient({ socketPath: host.paths.apiSocket });
  await client.call("POST", "/v1/vms", { name: "web", kernel: host.kernels.idle, memoryMiB: 32, restartPolicy: "on-failure", cpuShares: 300 });
  await client.call("POST", "/v1/vms", { name: "db", kernel: host.kernels.idle, memoryMiB: 48, vcpus: 2 });
  await client.call("POST", "/v1/vms", { name: "spare", kernel: host.kernels.idle, memoryMiB: 32 });
  await client.call("POST", "/v1/vms", { name: "auto", kernel: host.kernels.idle, memoryMiB: 32, autostart: true });
  const web = await act(client, "web", "start");
  const db = await act(client, "db", "start");
  await act(client, "db", "pause");
  const before = (await client.call("GET", "/v1/vms")).vms as VmView[];
  const eventsBefore = (await client.call("GET", "/v1/events?limit=1000")).events as unknown[];

  first.kill("SIGKILL");
  await new Promise((r) => first.once("exit", r));
  assert.ok(isAlive(web.pid!) && isAlive(db.pid!), "the VMs outlive their daemon");

  const second = await spawnDaemon(host, ["--stop-timeout", "1"]);
  t.after(() => second.kill("SIGKILL"));
  const after = (await client.call("GET", "/v1/vms")).vms as VmView[];
  assert.deepEqual(after.map((v) => v.name), ["auto", "db", "spare", "web"]);
  for (const v of before) assert.deepEqual(after.find((a) => a.name === v.name)!.spec, v.spec, `${v.name}'s spec survived`);
  const found = (n: string) => after.find((v) => v.name === n)!;
  assert.deepEqual([found("web").state, found("web").pid], ["running", web.pid]);
  assert.deepEqual([found("db").state, found("db").pid], ["paused", db.pid]);
  assert.equal(found("spare").state, "stopped");
  const auto = await waitFor("the autostart VM to run", async () => ((await vm(client, "auto")).state === "running" ? true : undefined));
  assert.ok(auto);
  const eventsAfter = (await client.call("GET", "/v1/events?limit=1000")).events as Array<{ type: string; vm: string }>;
  assert.deepEqual(eventsAfter.slice(0, eventsBefore.length), eventsBefore, "no event was lost");
  assert.deepEqual(eventsAfter.filter((e) => e.type === "adopted").map((e) => e.vm).sort(), ["db", "web"]);

  // Supervised again: the adopted VM's death is noticed and its policy applied.
  await act(client, "db", "resume");
  process.kill(web.pid!, "SIGKILL");
  const back = await waitFor("web to be restarted by the new daemon", async () => {
    const v = await vm(client, "web");
    return v.state === "running" && v.pid !== web.pid ? v : undefined;
  });
  assert.equal(back.restarts, 1);
  // The tiny guest ignores the power button: stop kills it after the timeout.
  assert.equal((await act(client, "db", "stop")).state, "stopped");
  const last = (await client.call("GET", "/v1/events?vm=db&limit=1000")).events.at(-1);
  assert.equal(last.message, "VM db was killed after not powering off within 1 s.");
});
