// The daemon end to end with the default Debian image: create, start, console over WebSocket,
// pause/resume, exec, graceful stop, delete — through `nodevisor vm` and the API.

import { test } from "node:test";
import { join } from "node:path";
import assert from "node:assert/strict";
import type WebSocket from "ws";
import { ensureTestImage, nodevisor } from "./helpers.js";
import { startDaemon, testHost, waitFor } from "../src/host/testing/daemon_fixture.js";
import type { VmView } from "../src/host/vm_manager.js";

/** A console viewer that collects everything it receives. */
function viewer(ws: WebSocket): { text: () => string; control: unknown[]; opened: Promise<void> } {
  let out = "";
  const control: unknown[] = [];
  ws.on("message", (d, binary) => {
    if (binary) out += d.toString();
    else control.push(JSON.parse(String(d)));
  });
  return { text: () => out, control, opened: new Promise((r) => ws.once("open", () => r())) };
}

test("a VM's whole life with the default image: create, start, console, pause/resume, exec, stop, delete", { timeout: 600_000 }, async (t) => {
  await ensureTestImage();
  const host = testHost(t);
  // A NIC from the spec on a test switch: VM processes inherit the daemon's environment, the switch starts with its first port.
  const savedSwitchDir = process.env.NODEVISOR_SWITCH_DIR;
  process.env.NODEVISOR_SWITCH_DIR = join(host.dir, "sw");
  t.after(() => (savedSwitchDir === undefined ? delete process.env.NODEVISOR_SWITCH_DIR : (process.env.NODEVISOR_SWITCH_DIR = savedSwitchDir)));
  const { client } = await startDaemon(t, host, { stopTimeoutMs: 60_000 });
  const vm = (...args: string[]) => nodevisor(["vm", "--socket", host.paths.apiSocket, ...args]);

  let r = await vm("create", "web1", "--memory", "128M", "--restart", "on-failure", "--net", "switch=life,mac=52:54:00:00:42:01");
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /VM web1 created \(1 vCPU, 128 MiB\)/);
  r = await vm("show", "web1");
  assert.match(r.stdout, /^nic eth0 +switch=life,mac=52:54:00:00:42:01$/m);
  r = await vm("start", "web1");
  assert.equal(r.status, 0, r.stderr);
  r = await vm("start", "web1");
  assert.deepEqual([r.status, r.stderr], [1, "nodevisor vm start: VM web1 is already running.\n"]);

  // Two viewers; the first asks to write and gets the keyboard, the second only watches.
  const writer = client.websocket("/v1/vms/web1/console?write=1");
  t.after(() => writer.close());
  const w = viewer(writer);
  await w.opened;
  await waitFor("the writer's hello", () => w.control.length > 0);
  const watcher = client.websocket("/v1/vms/web1/console?write=1");
  t.after(() => watcher.close());
  const v = viewer(watcher);
  await v.opened;
  await waitFor("the watcher's hello", () => v.control.length > 0);
  assert.deepEqual(w.control[0], { type: "hello", writer: true });
  assert.deepEqual(v.control[0], { type: "hello", writer: false });
  await waitFor("the shell prompt", () => /root@nodevisor:~# /.test(w.text()), 240_000);
  writer.send(JSON.stringify({ type: "resize", rows: 33, cols: 111 }));
  await new Promise((res) => setTimeout(res, 500));
  writer.send(Buffer.from("uname -m; stty size; echo TERM=$TERM\n"));
  await waitFor("uname's answer", () => /riscv64\r\n33 111\r\nTERM=xterm-256color/.test(w.text()), 60_000);
  writer.send(Buffer.from("ip -4 addr show eth0 | grep -o 'inet [0-9.]*'; cat /sys/class/net/eth0/address\n"));
  await waitFor("eth0's DHCP lease from the switch", () => /inet 10\.0\.3\.\d+\r\n52:54:00:00:42:01/.test(w.text()), 60_000);
  assert.match(v.text(), /riscv64/, "the watcher sees the same output");
  watcher.send(Buffer.from("reboot -f\n"));
  await waitFor("the refusal", () => v.control.some((m) => (m as { type: string }).type === "error"));

  r = await vm("pause", "web1");
  assert.equal(r.status, 0, r.stderr);
  assert.equal((await client.call<VmView>("GET", "/v1/vms/web1")).state, "paused");
  r = await vm("resume", "web1");
  assert.equal(r.status, 0, r.stderr);
  writer.send(Buffer.from("echo after-$((40+2))\n"));
  await waitFor("output after resume", () => w.text().includes("after-42"), 60_000);

  r = await vm("stats", "web1", "--json");
  assert.equal(r.status, 0, r.stderr);
  const stats = JSON.parse(r.stdout);
  assert.ok(stats.instructionsRetired > 1e8 && stats.memoryTouchedBytes > 0 && stats.cpuMs > 0);

  r = await vm("exec", "web1", "--", "sh", "-c", "uname -m; exit 3");
  assert.deepEqual([r.status, r.stdout], [3, "riscv64\n"], r.stderr);

  r = await vm("stop", "web1");
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /VM web1 is stopped/);
  const events = (await client.call("GET", "/v1/events?vm=web1")).events as Array<{ type: string; message: string }>;
  assert.equal(events.at(-1)!.message, "VM web1 powered off.", "the guest shut down cleanly, not by a kill");
  await waitFor("the console viewers to be told", () => w.control.some((m) => (m as { type: string }).type === "closed"));
  r = await vm("logs", "web1");
  assert.match(r.stdout, /riscv64/);
  r = await vm("delete", "web1");
  assert.equal(r.status, 0, r.stderr);
  r = await vm("show", "web1");
  assert.deepEqual([r.status, r.stderr], [3, "nodevisor vm show: VM web1 does not exist; `nodevisor vm list` shows the VMs.\n"]);
});
