import assert from "node:assert/strict";
import { test } from "node:test";
import { NicFilter } from "./firewall.js";
import { parseNetSpec } from "./spec.js";
import { arpRequest, frame, icmpEcho, ip, mac, tcp, udp } from "./testing/frames.js";

const VM = "52:54:00:00:00:01";
const PEER = "52:54:00:00:00:02";

function filter(spec: string, now = () => 0) {
  const c = parseNetSpec(spec ? `switch=lab,${spec}` : "switch=lab")!;
  return new NicFilter({ mac: mac(VM), firewall: c.firewall, antiSpoof: c.antiSpoof, now });
}

test("ordered rules: first match wins, by direction, protocol, CIDR and port range, then the default policy", () => {
  const f = filter("deny=in:tcp:10.0.3.66:22,allow=in:tcp:20-25,allow=in:icmp,policy-in=deny");
  const syn = (src: string, port: number) => tcp({ srcMac: PEER, dstMac: VM, src, dst: "10.0.3.100", srcPort: 40000, dstPort: port, flags: 2 });
  assert.equal(f.checkRx(syn("10.0.3.5", 22)), null);
  assert.equal(f.checkRx(syn("10.0.3.66", 22)), "firewall", "the deny before the allow wins");
  assert.equal(f.checkRx(syn("10.0.3.5", 80)), "firewall", "default policy");
  assert.equal(f.checkRx(icmpEcho({ srcMac: PEER, dstMac: VM, src: "10.0.3.5", dst: "10.0.3.100" })), null);
  assert.equal(f.checkRx(udp({ srcMac: PEER, dstMac: VM, src: "10.0.3.5", dst: "10.0.3.100", srcPort: 1, dstPort: 22 })), "firewall");
  assert.equal(f.checkTx(udp({ srcMac: VM, dstMac: PEER, src: "10.0.3.100", dst: "10.0.3.5", srcPort: 1, dstPort: 22 })), null, "out is allowed by default");
  assert.equal(f.checkRx(arpRequest(PEER, "10.0.3.5", "10.0.3.100")), null, "ARP is not IP: it passes");
  const v6 = frame(VM, PEER, "ipv6 payload", 0x86dd);
  assert.equal(f.checkRx(v6), "firewall", "IPv6 follows the default policy: no hole around the rules");
  assert.equal(filter("allow=in:any,policy-in=deny").checkRx(v6), null, "an allow for any protocol lets it in");
});

test("stateful: replies to an allowed connection pass; unrelated traffic does not; flows expire", () => {
  let t = 0;
  const f = filter("policy-in=deny", () => t);
  const out = tcp({ srcMac: VM, dstMac: PEER, src: "10.0.3.100", dst: "10.0.3.5", srcPort: 5555, dstPort: 80, flags: 2 });
  const reply = tcp({ srcMac: PEER, dstMac: VM, src: "10.0.3.5", dst: "10.0.3.100", srcPort: 80, dstPort: 5555, flags: 18 });
  const other = tcp({ srcMac: PEER, dstMac: VM, src: "10.0.3.5", dst: "10.0.3.100", srcPort: 80, dstPort: 5556, flags: 18 });
  assert.equal(f.checkRx(reply), "firewall", "no connection yet");
  assert.equal(f.checkTx(out), null);
  assert.equal(f.checkRx(reply), null);
  assert.equal(f.checkRx(other), "firewall");
  t = 301_000;
  assert.equal(f.checkRx(reply), "firewall", "the idle flow expired");
  // Ping out, reply in.
  assert.equal(f.checkTx(icmpEcho({ srcMac: VM, dstMac: PEER, src: "10.0.3.100", dst: "10.0.3.5" })), null);
  assert.equal(f.checkRx(icmpEcho({ srcMac: PEER, dstMac: VM, src: "10.0.3.5", dst: "10.0.3.100", reply: true })), null);
});

test("anti-spoofing: only the NIC's MAC; only its DHCP address once it has one", () => {
  const f = filter("");
  assert.equal(f.checkTx(udp({ srcMac: PEER, dstMac: "ff:ff:ff:ff:ff:ff", src: "0.0.0.0", dst: "255.255.255.255", srcPort: 68, dstPort: 67 })), "spoof");
  assert.equal(f.checkTx(udp({ srcMac: VM, dstMac: "ff:ff:ff:ff:ff:ff", src: "0.0.0.0", dst: "255.255.255.255", srcPort: 68, dstPort: 67 })), null);
  assert.equal(f.checkTx(icmpEcho({ srcMac: VM, dstMac: PEER, src: "10.0.3.77", dst: "10.0.3.5" })), null, "no address given yet: only the MAC is checked");
  // A DHCP ACK for our MAC gives 10.0.3.100.
  const dhcp = new Uint8Array(244 + 4);
  dhcp[0] = 2;
  new DataView(dhcp.buffer).setUint32(16, ip("10.0.3.100"));
  dhcp.set(mac(VM), 28);
  new DataView(dhcp.buffer).setUint32(236, 0x63825363);
  dhcp.set([53, 1, 5, 255], 240);
  assert.equal(f.checkRx(udp({ srcMac: PEER, dstMac: VM, src: "10.0.3.1", dst: "10.0.3.100", srcPort: 67, dstPort: 68, payload: dhcp })), null);
  assert.deepEqual(f.allowedAddresses, [ip("10.0.3.100")]);
  assert.equal(f.checkTx(icmpEcho({ srcMac: VM, dstMac: PEER, src: "10.0.3.77", dst: "10.0.3.5" })), "spoof");
  assert.equal(f.checkTx(icmpEcho({ srcMac: VM, dstMac: PEER, src: "10.0.3.100", dst: "10.0.3.5" })), null);
  assert.equal(f.checkTx(arpRequest(VM, "10.0.3.77", "10.0.3.5")), "spoof", "ARP from a foreign address");
  assert.equal(f.checkTx(new Uint8Array(8)), "malformed");
  assert.equal(filter("spoof=on").checkTx(icmpEcho({ srcMac: PEER, dstMac: VM, src: "1.2.3.4", dst: "10.0.3.5" })), null, "spoof=on turns the check off");
});
