// `--net user` through passt: the guest fetches a page from an HTTP server on the host's loopback
// (through the gateway address), and a hostfwd port on the host reaches the guest's httpd.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createServer, type Server } from "node:http";
import { createServer as createTcpServer, type AddressInfo } from "node:net";
import { ensureTestImage } from "./helpers.js";
import { VmProcess } from "./testing/vm_process.js";

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createTcpServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

test("user mode: the guest reaches the host's loopback through the gateway; hostfwd reaches the guest", { timeout: 300_000 }, async (t) => {
  if (spawnSync("passt", ["--version"]).error) return t.skip("passt is not installed (apt-get install passt)");
  await ensureTestImage();
  const server: Server = createServer((req, res) => res.end(`host page for ${req.url}\n`));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  const fwd = await freePort();
  const vm = VmProcess.nodevisor([
    "--net", `user,hostfwd=tcp:127.0.0.1:${fwd}-:80`, "--", "sh", "-c",
    `gw=$(ip route | awk '/default/ {print $3}'); wget -q -O - http://$gw:${port}/from-guest; ` +
    "echo 'guest page' > /tmp/index.html; httpd -p 80 -h /tmp; echo READY; sleep 600",
  ]);
  try {
    await vm.waitFor(/READY/);
    assert.match(vm.stdout, /host page for \/from-guest/);
    const res = await fetch(`http://127.0.0.1:${fwd}/index.html`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "guest page\n");
  } finally {
    await vm.stop();
    server.close();
  }
});
