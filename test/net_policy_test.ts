// Per-NIC policy end to end: a firewall rule blocks what it should and nothing else, a rate-limited
// NIC cannot beat its limit, the drops show in query-stats, and the link can be pulled at run time.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureTestImage } from "./helpers.js";
import { VmProcess } from "./testing/vm_process.js";
import { ControlClient } from "../src/vm/control_client.js";
import type { VmStats } from "../src/vm/controller.js";

test("firewall, rate limit and link state of a NIC, with counters in query-stats", { timeout: 400_000 }, async () => {
  await ensureTestImage();
  const dir = mkdtempSync(join(tmpdir(), "nv-policy-"));
  const env = { NODEVISOR_SWITCH_DIR: dir };
  const control = join(dir, "alpha.ctl");
  const alpha = VmProcess.nodevisor(
    ["--name", "alpha", "--net", "switch=fw,deny=in:tcp:8080", "--control-socket", control, "--", "sh", "-c",
      "dd if=/dev/urandom of=/tmp/f bs=1K count=768 2>/dev/null; httpd -p 80 -h /tmp; httpd -p 8080 -h /tmp; echo READY; sleep 600"],
    env,
  );
  try {
    await alpha.waitFor(/READY/);
    // 768 KiB at 128 KiB/s from a full 128 KiB bucket cannot take less than 5 s.
    const beta = VmProcess.nodevisor(
      ["--name", "beta", "--net", "switch=fw,rx-bps=128K", "--", "sh", "-c",
        "ping -c 1 alpha >/dev/null && echo PING-OK; wget -q -T 4 -O /dev/null http://alpha:8080/f && echo 8080-OPEN || echo 8080-BLOCKED; " +
        "s=$(date +%s); wget -q -O /tmp/f http://alpha/f && echo 80-OK $(($(date +%s) - s)) $(wc -c </tmp/f)"],
      env,
    );
    await beta.exited;
    assert.match(beta.stdout, /PING-OK/, beta.stdout + beta.stderr);
    assert.match(beta.stdout, /8080-BLOCKED/);
    const m = /80-OK (\d+) (\d+)/.exec(beta.stdout);
    assert.ok(m, `the allowed port works:\n${beta.stdout}`);
    assert.equal(Number(m[2]), 768 * 1024);
    assert.ok(Number(m[1]) >= 4, `the rate limit held the copy to at least ~5 s, it took ${m[1]} s`);

    const vm = await ControlClient.connect(control, { timeoutMs: 5000 });
    try {
      const nic = (s: VmStats) => s.devices.find((d) => d.name === "net0")!;
      const before = nic(await vm.execute<VmStats>("query-stats"));
      assert.equal(before.kind, "virtio-net");
      assert.ok(before.counters!.dropsFirewall! >= 1, "the blocked SYNs were counted");
      assert.ok(before.counters!.bytesWritten! > 768 * 1024, "alpha sent the file");
      assert.equal(before.counters!.linkUp, 1);
      await vm.execute("set-link", { nic: "net0", up: false });
      assert.equal(nic(await vm.execute<VmStats>("query-stats")).counters!.linkUp, 0);
      await vm.execute("set-net-limits", { nic: "net0", "tx-bps": 1000000 });
    } finally {
      vm.close();
    }
  } finally {
    await alpha.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
