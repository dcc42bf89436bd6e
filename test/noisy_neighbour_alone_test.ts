// CPU allocation with real VM processes: shares divide contended host CPU, a cap holds.
// Runs alone (scripts/test.mjs): other tests on the same host would take the CPU it measures.
// Tiny kernels that spin (`j .`) stand in for CPU hogs; the daemon is given one core for VMs,
// so two hogs contend even on a bigger host.

import { test } from "node:test";
import assert from "node:assert/strict";
import { startDaemon, testHost, waitFor } from "../src/host/testing/daemon_fixture.js";
import type { ApiClient } from "../src/host/api_client.js";

async function cpuMs(client: ApiClient, name: string): Promise<{ cpuMs: number; stealMs: number; at: number }> {
  const s = await client.call("GET", `/v1/vms/${name}/stats`);
  return { cpuMs: s.cpuMs, stealMs: s.stealMs, at: performance.now() };
}

test("two busy VMs at shares 1 and 4 on one core get CPU in about that ratio; steal is measured", { timeout: 120_000 }, async (t) => {
  const host = testHost(t);
  const { client } = await startDaemon(t, host, { capacity: { cores: 1, cpuOvercommit: 4 }, pollIntervalMs: 500 });
  await client.call("POST", "/v1/vms", { name: "hog", kernel: host.kernels.busy, memoryMiB: 32, cpuShares: 1 });
  await client.call("POST", "/v1/vms", { name: "web", kernel: host.kernels.busy, memoryMiB: 32, cpuShares: 4 });
  await client.call("POST", "/v1/vms/hog/actions", { action: "start" });
  await client.call("POST", "/v1/vms/web/actions", { action: "start" });
  await waitFor("the daemon to turn shares into caps", async () => {
    const [h, w] = await Promise.all([client.call("GET", "/v1/vms/hog"), client.call("GET", "/v1/vms/web")]);
    return h.effectiveCpuCap <= 22 && w.effectiveCpuCap >= 75 ? true : undefined;
  });
  await new Promise((r) => setTimeout(r, 1000));
  const [h0, w0] = await Promise.all([cpuMs(client, "hog"), cpuMs(client, "web")]);
  await new Promise((r) => setTimeout(r, 6000));
  const [h1, w1] = await Promise.all([cpuMs(client, "hog"), cpuMs(client, "web")]);
  const hogShare = (h1.cpuMs - h0.cpuMs) / (h1.at - h0.at);
  const webShare = (w1.cpuMs - w0.cpuMs) / (w1.at - w0.at);
  t.diagnostic(`hog ${(hogShare * 100).toFixed(1)}% of a core, web ${(webShare * 100).toFixed(1)}%; ratio ${(webShare / hogShare).toFixed(2)}`);
  assert.ok(webShare / hogShare > 2.5 && webShare / hogShare < 6, `web/hog CPU ratio ${webShare / hogShare}, wanted about 4`);
  assert.ok(hogShare < 0.25, `the hog used ${hogShare} of a core with a 20% part`);
  assert.ok(h1.stealMs - h0.stealMs > 0.6 * (h1.at - h0.at), "the hog's held-back time is reported as steal");
  const metrics = await client.call<string>("GET", "/metrics");
  assert.match(metrics, /^nodevisor_vm_steal_seconds_total\{vm="hog"\} [1-9]/m);
  assert.match(metrics, /^nodevisor_vm_cpu_cap_percent\{vm="hog"\} (1\d|2[0-2])$/m);
});

test("a capped VM stays within a few per cent of its cap, and a new cap applies without a restart", { timeout: 120_000 }, async (t) => {
  const host = testHost(t);
  const { client } = await startDaemon(t, host, { pollIntervalMs: 500 });
  await client.call("POST", "/v1/vms", { name: "capped", kernel: host.kernels.busy, memoryMiB: 32, cpuCap: 30 });
  const started = await client.call("POST", "/v1/vms/capped/actions", { action: "start" });
  for (const cap of [30, 60]) {
    if (cap !== 30) await client.call("PATCH", "/v1/vms/capped", { cpuCap: cap });
    await new Promise((r) => setTimeout(r, 1500));
    const a = await cpuMs(client, "capped");
    await new Promise((r) => setTimeout(r, 5000));
    const b = await cpuMs(client, "capped");
    const used = ((b.cpuMs - a.cpuMs) / (b.at - a.at)) * 100;
    t.diagnostic(`cap ${cap}%: used ${used.toFixed(1)}% of a core`);
    assert.ok(used <= cap + 4, `used ${used}% under a ${cap}% cap`);
    // A shared host may give less than the cap; far less means the pacing is wrong.
    assert.ok(used >= cap * 0.7, `used only ${used}% under a ${cap}% cap`);
  }
  assert.equal((await client.call("GET", "/v1/vms/capped")).pid, started.pid, "the cap changed without a restart");
});
