// The NAT against a real passt, without a CPU: the uplink gets its address by passt's DHCP, and a
// SYN a VM sends to the gateway address reaches a TCP server on the host's loopback, whose SYN+ACK
// comes back translated.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createServer, type AddressInfo } from "node:net";
import { test } from "node:test";
import { internetChecksum, ipv4ToString, parseIpv4Packet, pseudoHeaderSum } from "../ethernet.js";
import { startPasst } from "../passt.js";
import { mac, tcp } from "../testing/frames.js";
import { NatRouter } from "./nat.js";
import { defaultNetworkConfig } from "./network.js";

const GW_MAC = "52:54:fe:00:03:01";

test("NAT through a real passt: DHCP on the uplink, and a VM's SYN to the gateway reaches the host's loopback", { timeout: 30_000 }, async (t) => {
  if (spawnSync("passt", ["--version"]).error) return t.skip("passt is not installed (apt-get install passt)");
  let accepted = 0;
  const server = createServer((s) => {
    accepted++;
    s.destroy();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  const uplink = await startPasst({ hostForwards: [], mac: mac(GW_MAC) });
  const inside: Uint8Array[] = [];
  const nat = new NatRouter({ network: defaultNetworkConfig(), mac: mac(GW_MAC), sendInside: (f) => inside.push(f), uplink });
  try {
    nat.start();
    for (let i = 0; i < 100 && nat.lease === null; i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(nat.lease !== null, "passt answered DHCP");
    nat.fromVm(tcp({ srcMac: "52:54:00:00:00:01", dstMac: GW_MAC, src: "10.0.3.100", dst: "10.0.3.1", srcPort: 40000, dstPort: port, flags: 2 }));
    for (let i = 0; i < 100 && inside.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    const synAck = inside[0]!;
    const v = parseIpv4Packet(synAck, 14)!;
    assert.deepEqual([ipv4ToString(v.src), v.srcPort, ipv4ToString(v.dst), v.dstPort, v.tcpFlags], ["10.0.3.1", port, "10.0.3.100", 40000, 0x12]);
    assert.equal(internetChecksum(synAck, 14, 34), 0);
    const end = 14 + v.totalLength;
    assert.equal(internetChecksum(synAck, 34, end, pseudoHeaderSum(v.src, v.dst, 6, end - 34)), 0, "the TCP checksum is right after translation");
    for (let i = 0; i < 100 && accepted === 0; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(accepted, 1, "the host's server saw the connection");
  } finally {
    await nat.close();
    server.close();
  }
});
