// End to end over a nodevisor switch with the default image: DHCP from the switch, names in its DNS,
// a 20 MB TCP copy between two VMs, and VLAN isolation with a trunk port that sees both VLANs.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureTestImage } from "./helpers.js";
import { VmProcess } from "./testing/vm_process.js";

function switchDir(): { env: NodeJS.ProcessEnv; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "nv-net-"));
  return { env: { NODEVISOR_SWITCH_DIR: dir }, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

test("two VMs on a switch get addresses by DHCP, ping each other by name and copy 20 MB over TCP intact", { timeout: 400_000 }, async () => {
  await ensureTestImage();
  const { env, cleanup } = switchDir();
  const alpha = VmProcess.nodevisor(
    ["--name", "alpha", "--net", "switch=lab", "--", "sh", "-c",
      "ip -4 -o addr show eth0; dd if=/dev/urandom of=/tmp/f bs=1M count=20 2>/dev/null; md5sum /tmp/f; echo READY; httpd -f -p 80 -h /tmp"],
    env,
  );
  try {
    const addr = await alpha.waitFor(/inet (10\.0\.3\.\d+)\//);
    const sum = (await alpha.waitFor(/([0-9a-f]{32})  \/tmp\/f\nREADY/))[1];
    const beta = VmProcess.nodevisor(
      ["--name", "beta", "--net", "switch=lab", "--", "sh", "-c",
        "cat /etc/resolv.conf; ping -c 2 alpha && wget -q -O /tmp/f http://alpha/f && md5sum /tmp/f"],
      env,
    );
    const status = await beta.exited;
    assert.equal(status, 0, `beta failed:\n${beta.stdout}\n${beta.stderr}`);
    assert.match(beta.stdout, /nameserver 10\.0\.3\.1/);
    assert.match(beta.stdout, new RegExp(`PING alpha \\(${addr[1]!.replace(/\./g, "\\.")}\\)`), "the switch's DNS knows alpha");
    assert.match(beta.stdout, /2 packets transmitted, 2 packets received/);
    assert.match(beta.stdout, new RegExp(`${sum}  /tmp/f`), "the copy has alpha's checksum");
  } finally {
    await alpha.stop();
    cleanup();
  }
});

test("VMs on different VLANs of one switch cannot reach each other; a trunk port reaches both", { timeout: 400_000 }, async () => {
  await ensureTestImage();
  const { env, cleanup } = switchDir();
  // Each access VM also holds an address in the other's subnet, so only the switch can keep them apart.
  const access = (vlan: number, mine: string, other: string, peer: string) =>
    VmProcess.nodevisor(
      ["--name", `v${vlan}`, "--net", `switch=vl,vlan=${vlan}`, "--", "sh", "-c",
        `ip addr add ${mine}/24 dev eth0; ip addr add ${other}/24 dev eth0; echo READY; ` +
        `i=0; until ping -c 1 -W 1 ${mine.replace(/\d+$/, "3")} >/dev/null; do i=$((i+1)); [ $i -lt 90 ] || break; done; ` +
        `ping -c 3 -W 1 ${peer} >/dev/null && echo PEER-REACHABLE || echo PEER-UNREACHABLE; sleep 600`],
      env,
    );
  const v10 = access(10, "10.0.10.1", "10.0.20.9", "10.0.20.2");
  const v20 = access(20, "10.0.20.2", "10.0.10.9", "10.0.10.1");
  let trunk: VmProcess | null = null;
  try {
    await v10.waitFor(/READY/);
    await v20.waitFor(/READY/);
    trunk = VmProcess.nodevisor(
      ["--name", "trunk", "--net", "switch=vl,trunk=10,20", "--", "sh", "-c",
        "for v in 10 20; do ip link add link eth0 name eth0.$v type vlan id $v && ip addr add 10.0.$v.3/24 dev eth0.$v && ip link set eth0.$v up; done; " +
        // Retried like the access VMs' wait: on a loaded host a fresh VLAN interface's first ARP may go unanswered.
        "reach() { i=0; until ping -c 1 -W 2 $1 >/dev/null; do i=$((i+1)); [ $i -lt 30 ] || return 1; done; }; " +
        "if reach 10.0.10.1 && reach 10.0.20.2; then echo TRUNK-OK; else echo TRUNK-FAILED; ip -d addr; fi; sleep 600"],
      env,
    );
    assert.match((await trunk.waitFor(/TRUNK-(OK|FAILED)/))[0], /TRUNK-OK/, `the trunk reached neither or one VLAN:\n${trunk.stdout}`);
    assert.match((await v10.waitFor(/PEER-(UN)?REACHABLE/))[0], /PEER-UNREACHABLE/);
    assert.match((await v20.waitFor(/PEER-(UN)?REACHABLE/))[0], /PEER-UNREACHABLE/);
  } finally {
    await Promise.all([v10.stop(), v20.stop(), trunk?.stop()]);
    cleanup();
  }
});
