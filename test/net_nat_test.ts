// A NAT switch end to end: two VMs on one `switch create --nat` network fetch pages from an HTTP
// server on the host's loopback at the same time, one through the gateway address (the switch maps
// it to the host), one through passt's own address for the host, which the NAT routes as any outside
// address. Only loopback traffic: passt maps its gateway address to the host's 127.0.0.1.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureTestImage, nodevisor } from "./helpers.js";
import { VmProcess } from "./testing/vm_process.js";

test("two VMs on one NAT switch reach a server on the host's loopback", { timeout: 400_000 }, async (t) => {
  if (spawnSync("passt", ["--version"]).error) return t.skip("passt is not installed (apt-get install passt)");
  await ensureTestImage();
  const dir = mkdtempSync(join(tmpdir(), "nv-nat-"));
  const env = { NODEVISOR_SWITCH_DIR: dir };
  const seen: string[] = [];
  const server: Server = createServer((req, res) => {
    seen.push(`${req.url} from ${req.socket.remoteAddress}`);
    res.end(`host page for ${req.url}\n`);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  const vms: VmProcess[] = [];
  try {
    const created = await nodevisor(["switch", "create", "natlab", "--nat"], { env });
    assert.equal(created.status, 0, created.stderr);
    // The switch logs the address passt gave the host once the uplink has its lease.
    let host: string | null = null;
    for (let i = 0; i < 100 && host === null; i++) {
      host = /the host is at (\d+\.\d+\.\d+\.\d+)/.exec(readFileSync(join(dir, "natlab.log"), "utf8"))?.[1] ?? null;
      if (host === null) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(host !== null, `the NAT got no uplink address:\n${readFileSync(join(dir, "natlab.log"), "utf8")}`);
    const fetch = (name: string, target: string) =>
      VmProcess.nodevisor(["--name", name, "--net", "switch=natlab", "--", "sh", "-c",
        `ip route | grep default; for i in 1 2 3; do wget -q -T 10 -O - http://${target}:${port}/${name} && break; sleep 1; done; echo DONE`], env);
    vms.push(fetch("alpha", "gateway"), fetch("beta", host));
    const [a, b] = vms as [VmProcess, VmProcess];
    await a.waitFor(/DONE/);
    await b.waitFor(/DONE/);
    assert.match(a.stdout, /default via 10\.0\.3\.1/, "the switch is the VMs' router");
    assert.match(a.stdout, /host page for \/alpha/, `alpha:\n${a.stdout}\n${a.stderr}`);
    assert.match(b.stdout, /host page for \/beta/, `beta:\n${b.stdout}\n${b.stderr}`);
    assert.deepEqual(seen.sort(), ["/alpha from 127.0.0.1", "/beta from 127.0.0.1"]);
  } finally {
    await Promise.all(vms.map((v) => v.stop()));
    await nodevisor(["switch", "delete", "natlab"], { env });
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
