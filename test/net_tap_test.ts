// Bridged mode: the NIC is a TAP device in a network namespace the test creates (needs root, as in CI);
// the guest pings the host side across it.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { CLI, ensureTestImage } from "./helpers.js";
import { VmProcess } from "./testing/vm_process.js";

const NS = `nvtap${process.pid}`;

function sh(cmd: string): { ok: boolean; out: string } {
  const r = spawnSync("sh", ["-c", cmd], { encoding: "utf8" });
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}` };
}

test("tap mode: a ping across a TAP device in a network namespace", { timeout: 300_000 }, async (t) => {
  if (process.getuid?.() !== 0) return t.skip("creating a network namespace and a TAP device needs root");
  if (!sh(`ip netns add ${NS}`).ok) return t.skip("this machine cannot create network namespaces");
  try {
    await ensureTestImage();
    const setup = sh(`ip netns exec ${NS} sh -c 'ip link set lo up && ip tuntap add dev tap0 mode tap && ip addr add 10.0.50.1/24 dev tap0 && ip link set tap0 up'`);
    assert.ok(setup.ok, setup.out);
    const vm = new VmProcess("ip", ["netns", "exec", NS, process.execPath, "--import", "tsx", CLI, "run", "--memory", "256M", "--net", "tap=tap0", "--",
      "sh", "-c", "ip addr add 10.0.50.2/24 dev eth0; ping -c 2 10.0.50.1"]);
    const status = await vm.exited;
    assert.equal(status, 0, vm.stdout + vm.stderr);
    assert.match(vm.stdout, /2 packets transmitted, 2 packets received/);
  } finally {
    sh(`ip netns del ${NS}`);
  }
});
